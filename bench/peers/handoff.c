/* ballot's C ABI: the same graceful handoff as `ballot-bench handoff`, for the
 * surfaces table of bench/run.py.
 *
 *   handoff URL ROUNDS WARMUP SETTLE_MS ELECTION
 *
 * Two clients (two sessions) in this process. Each candidate campaigns with
 * ballot_election_campaign_async; its callback stamps CLOCK_MONOTONIC. The
 * leader's ballot_election_resign is called at t0; t1 is the successor's
 * callback stamp. Prints one JSON object on stdout. Every wait is bounded. */
#include <ballot.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int won_idx = -1;
static ballot_result won_res;
static struct timespec won_at;

static double ms_between(struct timespec a, struct timespec b) {
    return (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
}

static void done(void *user_data, ballot_result result, uint64_t term, const ballot_error *error) {
    (void)term;
    (void)error;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&mu);
    if (result != BALLOT_RESULT_CANCELLED) {
        won_idx = (int)(intptr_t)user_data;
        won_res = result;
        won_at = now;
        pthread_cond_signal(&cv);
    }
    pthread_mutex_unlock(&mu);
}

/* Waits up to 60 s for a campaign to end; returns the winner's index or -1. */
static int wait_won(struct timespec *at) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 60;
    pthread_mutex_lock(&mu);
    while (won_idx < 0) {
        if (pthread_cond_timedwait(&cv, &mu, &deadline) == ETIMEDOUT) break;
    }
    int i = won_idx;
    if (i >= 0 && won_res != BALLOT_RESULT_OK) i = -1;
    *at = won_at;
    won_idx = -1;
    pthread_mutex_unlock(&mu);
    return i;
}

static int fail(const char *what, ballot_error *err) {
    fprintf(stderr, "error: %s: %s\n", what, err ? ballot_error_message(err) : "?");
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s URL ROUNDS WARMUP SETTLE_MS ELECTION\n", argv[0]);
        return 2;
    }
    const char *url = argv[1], *name = argv[5];
    int rounds = atoi(argv[2]), warmup = atoi(argv[3]), settle = atoi(argv[4]);
    ballot_client *c[2];
    ballot_election *e[2];
    ballot_error *err = NULL;
    const char *val[2] = {"candidate-0", "candidate-1"};
    for (int i = 0; i < 2; i++) {
        if (ballot_client_connect(url, NULL, &c[i], &err) != BALLOT_RESULT_OK) return fail("connect", err);
        if (ballot_election_new(c[i], name, &e[i], &err) != BALLOT_RESULT_OK) return fail("election", err);
    }
    struct timespec at, t0;
    ballot_election_campaign_async(e[0], (const uint8_t *)val[0], strlen(val[0]), done, (void *)(intptr_t)0, NULL);
    if (wait_won(&at) != 0) return fail("first campaign", NULL);
    int leader = 0;
    ballot_election_campaign_async(e[1], (const uint8_t *)val[1], strlen(val[1]), done, (void *)(intptr_t)1, NULL);
    double *samples = calloc((size_t)rounds, sizeof(double));
    for (int r = 0; r < warmup + rounds; r++) {
        usleep((useconds_t)settle * 1000);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (ballot_election_resign(e[leader], &err) != BALLOT_RESULT_OK) return fail("resign", err);
        int next = wait_won(&at);
        if (next < 0 || next == leader) return fail("successor campaign", NULL);
        ballot_election_campaign_async(e[leader], (const uint8_t *)val[leader], strlen(val[leader]), done,
                                       (void *)(intptr_t)leader, NULL);
        leader = next;
        if (r >= warmup) samples[r - warmup] = ms_between(t0, at);
    }
    printf("{\"what\": \"ballot C ABI handoff\", \"rounds\": %d, \"samples_ms\": [", rounds);
    for (int i = 0; i < rounds; i++) printf("%s%.6f", i ? ", " : "", samples[i]);
    printf("]}\n");
    fflush(stdout);
    for (int i = 0; i < 2; i++) {
        ballot_election_free(e[i], NULL);
        ballot_client_close(c[i], NULL);
        ballot_client_free(c[i]);
    }
    free(samples);
    return 0;
}
