/* A C program that reads ballot's log records through its callback: campaign and
 * resign on memory:// and wait for the records of those changes. Exits 0 and
 * prints "logging: N checks passed" on success. */
#include "harness.h"

#include <string.h>

#define MAX_LINES 256
#define LINE_MAX_LEN 256

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    int on_caller_thread;
    pthread_t caller;
    char lines[MAX_LINES][LINE_MAX_LEN];
} log_book;

static void on_log(void *user_data, ballot_log_level level, const char *message, const char *backend,
                   const char *election) {
    log_book *b = (log_book *)user_data;
    pthread_mutex_lock(&b->mu);
    if (pthread_equal(pthread_self(), b->caller)) b->on_caller_thread++;
    if (b->n < MAX_LINES) {
        snprintf(b->lines[b->n], LINE_MAX_LEN, "%d|%s|%s|%s", (int)level, backend ? backend : "-",
                 election ? election : "-", message);
        b->n++;
    }
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

/* Waits until a record line equal to `want` has arrived. */
static void wait_line(log_book *b, const char *want, long timeout_ms) {
    double until = now_ms() + (double)timeout_ms;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        for (int i = 0; i < b->n; i++) {
            if (strcmp(b->lines[i], want) == 0) {
                pthread_mutex_unlock(&b->mu);
                checks++;
                return;
            }
        }
        if (now_ms() > until) {
            pthread_mutex_unlock(&b->mu);
            FAIL("no log record \"%s\" within %ld ms", want, timeout_ms);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&b->cv, &b->mu, &ts);
    }
}

int main(void) {
    static log_book book;
    char url[64], want[LINE_MAX_LEN];
    ballot_client *c = NULL;
    ballot_election *e = NULL;
    uint64_t term = 0;

    pthread_mutex_init(&book.mu, NULL);
    pthread_cond_init(&book.cv, NULL);
    book.caller = pthread_self();

    /* Bad levels are refused; NULL callback means off and is fine. */
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_set_log_callback(6, on_log, &book, err_out));
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_set_log_callback(0xffffffffu, on_log, &book, err_out));
    OK(ballot_set_log_callback(BALLOT_LOG_LEVEL_DEBUG, NULL, NULL, err_out));
    OK(ballot_set_log_callback(BALLOT_LOG_LEVEL_DEBUG, on_log, &book, err_out));

    snprintf(url, sizeof url, "memory://clog-%ld", (long)getpid());
    OK(ballot_client_connect(url, NULL, &c, err_out));
    OK(ballot_election_new(c, "svc", &e, err_out));
    OK(ballot_election_campaign(e, (const uint8_t *)"secret-value", 12, 10000, &term, err_out));
    snprintf(want, sizeof want, "%d|memory|svc|elected term=%llu", (int)BALLOT_LOG_LEVEL_INFO,
             (unsigned long long)term);
    wait_line(&book, want, 10000);
    snprintf(want, sizeof want, "%d|memory|svc|state idle -> campaigning", (int)BALLOT_LOG_LEVEL_DEBUG);
    wait_line(&book, want, 10000);
    OK(ballot_election_resign(e, err_out));
    snprintf(want, sizeof want, "%d|memory|svc|resigned", (int)BALLOT_LOG_LEVEL_INFO);
    wait_line(&book, want, 10000);

    /* Off: once the call returns the callback is never called again, so the
     * book can be read without a race and then destroyed. */
    OK(ballot_set_log_callback(BALLOT_LOG_LEVEL_OFF, on_log, &book, err_out));
    pthread_mutex_lock(&book.mu);
    CHECK(book.on_caller_thread == 0);
    for (int i = 0; i < book.n; i++) CHECK(strstr(book.lines[i], "secret-value") == NULL);
    pthread_mutex_unlock(&book.mu);

    OK(ballot_election_free(e, err_out));
    ballot_client_free(c);
    pthread_mutex_destroy(&book.mu);
    pthread_cond_destroy(&book.cv);
    printf("logging: %d checks passed\n", checks);
    return 0;
}
