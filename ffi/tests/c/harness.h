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

#endif
