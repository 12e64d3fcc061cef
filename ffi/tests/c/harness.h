/* Small helpers shared by the C test programs (not part of libballot). */
#ifndef BALLOT_TEST_HARNESS_H
#define BALLOT_TEST_HARNESS_H

#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ballot.h"

static int checks = 0;

#define FAIL(...)                                                   \
    do {                                                            \
        fprintf(stderr, "%s:%d: FAILED: ", __FILE__, __LINE__);     \
        fprintf(stderr, __VA_ARGS__);                               \
        fprintf(stderr, "\n");                                      \
        exit(1);                                                    \
    } while (0)

#define CHECK(cond)                                  \
    do {                                             \
        checks++;                                    \
        if (!(cond)) FAIL("%s", #cond);              \
    } while (0)

/* Asserts that `call` returns `expected`; frees the error it reported. */
#define EXPECT(expected, call)                                                                   \
    do {                                                                                         \
        ballot_error *e_ = NULL;                                                                 \
        ballot_error **err_out = &e_;                                                            \
        ballot_result r_ = (call);                                                               \
        (void)err_out;                                                                           \
        checks++;                                                                                \
        if (r_ != (expected))                                                                    \
            FAIL("%s returned %s (%s), expected %s", #call, ballot_result_str(r_),              \
                 e_ ? ballot_error_message(e_) : "no message", ballot_result_str(expected));     \
        if (r_ != BALLOT_RESULT_OK && e_ != NULL && ballot_error_result(e_) != r_)               \
            FAIL("%s: the error's code %u differs from the result %u", #call,                    \
                 (unsigned)ballot_error_result(e_), (unsigned)r_);                               \
        ballot_error_free(e_);                                                                   \
    } while (0)

#define OK(call) EXPECT(BALLOT_RESULT_OK, call)

static inline double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static inline void sleep_ms(long ms) {
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

/* A name unique to this run, so that runs against a shared server never meet. */
static inline void unique_name(char *buf, size_t n, const char *tag) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(buf, n, "ctest/%s-%ld-%ld", tag, (long)getpid(), (long)ts.tv_nsec);
}

static inline ballot_state state_of(const ballot_election *e) {
    ballot_state s = BALLOT_STATE_CLOSED;
    OK(ballot_election_state(e, &s, err_out));
    return s;
}

/* Waits (bounded) until `e` reaches `want`. */
static inline void wait_state(const ballot_election *e, ballot_state want, long timeout_ms) {
    double until = now_ms() + timeout_ms;
    while (state_of(e) != want) {
        if (now_ms() > until)
            FAIL("state stayed %s, expected %s", ballot_state_str(state_of(e)), ballot_state_str(want));
        sleep_ms(2);
    }
}

/* The liveness bound of a program run against `url`: argv[2] when the driver
 * (c_programs.rs) gives one from the backend description, else 10 s. */
static inline long limit_ms_arg(int argc, char **argv) {
    long v = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
    return v > 0 ? v : 10000;
}

/* ---- events: what one ballot_event_cb registration saw ---- */

#define MAX_EVENTS 64
#define VALUE_MAX 32

typedef struct recorder {
    pthread_mutex_t mu;
    ballot_event_kind kinds[MAX_EVENTS];
    /* ELECTED: the term; LEADER_CHANGED: the new leader's term (0 for none). */
    uint64_t terms[MAX_EVENTS];
    /* LEADER_CHANGED: the new leader's value (NUL-terminated, cut at VALUE_MAX - 1). */
    char values[MAX_EVENTS][VALUE_MAX];
    int n;
    int freed;             /* user_data_free calls */
    pthread_t cb_thread;   /* the thread the callback first ran on */
    int cb_threads_differ; /* the callback ever ran on two threads */
} recorder;

static inline void recorder_init(recorder *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
}

/* Appends `ev` to `r` (thread-safe); the body of recorder_on_event. */
static inline void recorder_record(recorder *r, const ballot_event *ev) {
    pthread_mutex_lock(&r->mu);
    if (r->n == 0)
        r->cb_thread = pthread_self();
    else if (!pthread_equal(r->cb_thread, pthread_self()))
        r->cb_threads_differ = 1;
    if (r->n < MAX_EVENTS) {
        r->kinds[r->n] = ev->kind;
        r->terms[r->n] = ev->kind == BALLOT_EVENT_KIND_LEADER_CHANGED && ev->leader ? ballot_leader_term(ev->leader)
                                                                                     : ev->term;
        r->values[r->n][0] = '\0';
        if (ev->kind == BALLOT_EVENT_KIND_LEADER_CHANGED && ev->leader) {
            const uint8_t *v = NULL;
            size_t len = 0;
            ballot_leader_value(ev->leader, &v, &len);
            if (len > VALUE_MAX - 1) len = VALUE_MAX - 1;
            memcpy(r->values[r->n], v, len);
            r->values[r->n][len] = '\0';
        }
        r->n++;
    }
    pthread_mutex_unlock(&r->mu);
}

/* A ballot_event_cb recording into the `recorder` given as user_data. */
static inline void recorder_on_event(void *user_data, const ballot_event *ev) {
    recorder_record((recorder *)user_data, ev);
}

/* A ballot_user_data_free counting its calls in the `recorder`. */
static inline void recorder_on_free(void *user_data) {
    recorder *r = (recorder *)user_data;
    pthread_mutex_lock(&r->mu);
    r->freed++;
    pthread_mutex_unlock(&r->mu);
}

static inline int recorder_freed(recorder *r) {
    int f;
    pthread_mutex_lock(&r->mu);
    f = r->freed;
    pthread_mutex_unlock(&r->mu);
    return f;
}

/* Index of the first event of `kind` at or after `from` (and, when `value` is not
 * NULL, naming the leader `value`), or -1. */
static inline int recorder_find_value(recorder *r, int from, ballot_event_kind kind, const char *value) {
    int i, at = -1;
    pthread_mutex_lock(&r->mu);
    for (i = from; i < r->n; i++)
        if (r->kinds[i] == kind && (!value || strcmp(r->values[i], value) == 0)) {
            at = i;
            break;
        }
    pthread_mutex_unlock(&r->mu);
    return at;
}

static inline int recorder_find(recorder *r, int from, ballot_event_kind kind) {
    return recorder_find_value(r, from, kind, NULL);
}

/* Waits (bounded) for an event of `kind` (naming the leader `value` unless NULL);
 * gives its index. */
#define wait_event(r, kind, timeout_ms) wait_event_at(r, kind, NULL, timeout_ms, __LINE__)
#define wait_leader_changed(r, value, timeout_ms) \
    wait_event_at(r, BALLOT_EVENT_KIND_LEADER_CHANGED, value, timeout_ms, __LINE__)

static inline int wait_event_at(recorder *r, ballot_event_kind kind, const char *value, long timeout_ms, int line) {
    double until = now_ms() + timeout_ms;
    int at;
    while ((at = recorder_find_value(r, 0, kind, value)) < 0) {
        if (now_ms() > until)
            FAIL("line %d: no %s event%s%s within %ld ms", line, ballot_event_kind_str(kind), value ? " naming " : "",
                 value ? value : "", timeout_ms);
        sleep_ms(2);
    }
    return at;
}

/* ---- the completion of ballot_election_campaign_async ---- */

typedef struct done {
    pthread_mutex_t mu;
    int calls;
    ballot_result result;
    uint64_t term;
    char message[256];
    ballot_election *self;     /* when set, the callback tries to free it (reentrancy check) */
    ballot_result free_inside; /* what ballot_election_free gave inside the callback */
} done;

static inline void done_init(done *d) {
    memset(d, 0, sizeof *d);
    pthread_mutex_init(&d->mu, NULL);
}

/* A ballot_done_cb filling the `done` given as user_data. */
static inline void on_done(void *user_data, ballot_result result, uint64_t term, const ballot_error *err) {
    done *d = (done *)user_data;
    pthread_mutex_lock(&d->mu);
    d->calls++;
    d->result = result;
    d->term = term;
    if (err) snprintf(d->message, sizeof d->message, "%s", ballot_error_message(err));
    /* Freeing its own election from its completion callback must be refused. */
    if (d->self) d->free_inside = ballot_election_free(d->self, NULL);
    pthread_mutex_unlock(&d->mu);
}

static inline int done_calls(done *d) {
    int calls;
    pthread_mutex_lock(&d->mu);
    calls = d->calls;
    pthread_mutex_unlock(&d->mu);
    return calls;
}

/* Waits (bounded) until the campaign completed. */
static inline void wait_done(done *d, long timeout_ms) {
    double until = now_ms() + timeout_ms;
    while (done_calls(d) == 0) {
        if (now_ms() > until) FAIL("the async campaign did not complete within %ld ms", timeout_ms);
        sleep_ms(2);
    }
}

#endif
