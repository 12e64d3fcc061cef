/* A user's own test of leader logic on memory:// (an in-process backend, no
 * server): elect, hand off, end. Two clients of one store share its elections.
 * Exits 0 and prints "memory: N checks passed" on success. */
#include "harness.h"

/* The outcome of b's campaign, from the library's thread. */
typedef struct outcome {
    pthread_mutex_t mu;
    int done;
    ballot_result result;
    uint64_t term;
} outcome;

static void on_done(void *user_data, ballot_result result, uint64_t term, const ballot_error *err) {
    outcome *o = (outcome *)user_data;
    (void)err;
    pthread_mutex_lock(&o->mu);
    o->done = 1;
    o->result = result;
    o->term = term;
    pthread_mutex_unlock(&o->mu);
}

static int is_done(outcome *o) {
    int d;
    pthread_mutex_lock(&o->mu);
    d = o->done;
    pthread_mutex_unlock(&o->mu);
    return d;
}

int main(void) {
    char url[64];
    ballot_client *a = NULL, *b = NULL, *bad = NULL;
    ballot_election *ea = NULL, *eb = NULL;
    ballot_leader *l = NULL;
    const uint8_t *value = NULL;
    size_t len = 0;
    uint64_t term = 0;
    double until;
    outcome o;

    memset(&o, 0, sizeof o);
    pthread_mutex_init(&o.mu, NULL);
    snprintf(url, sizeof url, "memory://ctest-%ld", (long)getpid());
    OK(ballot_client_connect(url, NULL, &a, err_out));
    OK(ballot_client_connect(url, NULL, &b, err_out));
    OK(ballot_election_new(a, "svc", &ea, err_out));
    OK(ballot_election_new(b, "svc", &eb, err_out));

    /* Elect. */
    OK(ballot_election_campaign(ea, (const uint8_t *)"a", 1, 10000, &term, err_out));
    CHECK(term == 1);
    CHECK(state_of(ea) == BALLOT_STATE_LEADER);

    /* Hand off: b waits while a leads, and wins when a resigns. */
    OK(ballot_election_campaign_async(eb, (const uint8_t *)"b", 1, on_done, &o, err_out));
    wait_state(eb, BALLOT_STATE_CAMPAIGNING, 10000);
    CHECK(!is_done(&o));
    OK(ballot_election_resign(ea, err_out));
    until = now_ms() + 10000;
    while (!is_done(&o)) {
        if (now_ms() > until) FAIL("b was not elected after a resigned");
        sleep_ms(1);
    }
    CHECK(o.result == BALLOT_RESULT_OK && o.term == 2);
    CHECK(state_of(ea) == BALLOT_STATE_IDLE);
    OK(ballot_election_leader(ea, &l, err_out));
    ballot_leader_value(l, &value, &len);
    CHECK(ballot_leader_term(l) == 2 && len == 1 && value[0] == 'b');
    ballot_leader_free(l);

    /* End: every participant is ended; a campaign on an ended handle is refused. */
    OK(ballot_election_end(ea, err_out));
    wait_state(eb, BALLOT_STATE_ENDED, 10000);
    CHECK(state_of(ea) == BALLOT_STATE_ENDED);
    EXPECT(BALLOT_RESULT_ENDED, ballot_election_campaign(ea, (const uint8_t *)"a", 1, 1000, &term, err_out));

    /* A URL option that makes no sense for memory:// is refused. */
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_client_connect("memory://x?ttl=5s", NULL, &bad, err_out));
    CHECK(bad == NULL);

    OK(ballot_election_free(ea, err_out));
    OK(ballot_election_free(eb, err_out));
    ballot_client_free(a);
    ballot_client_free(b);
    pthread_mutex_destroy(&o.mu);
    printf("memory: %d checks passed\n", checks);
    return 0;
}
