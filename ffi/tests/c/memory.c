/* A user's own test of leader logic on memory:// (an in-process backend, no
 * server): elect, hand off, end. Two clients of one store share its elections.
 * Exits 0 and prints "memory: N checks passed" on success. */
#include "harness.h"

int main(void) {
    char url[64];
    ballot_client *a = NULL, *b = NULL, *bad = NULL;
    ballot_election *ea = NULL, *eb = NULL;
    ballot_leader *l = NULL;
    const uint8_t *value = NULL;
    size_t len = 0;
    uint64_t term = 0;
    done o;

    done_init(&o);
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
    CHECK(done_calls(&o) == 0);
    OK(ballot_election_resign(ea, err_out));
    wait_done(&o, 10000);
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
