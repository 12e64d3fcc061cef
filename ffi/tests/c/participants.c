/* ballot_election_participants through the C ABI against the backend URL in
 * argv[1] (liveness bound in ms in argv[2]): the queue in order with the leader
 * first, keys, values (one not UTF-8) and leader flags, the queue moving on after
 * a resign, the NULL and out-of-range checks, and ENDED after end(). Exits 0 and
 * prints "participants: N checks passed" on success. */
#include "harness.h"

typedef struct blocked {
    ballot_election *e;
    const char *value;
    size_t len;
    ballot_result result;
} blocked;

static void *campaign_thread(void *arg) {
    blocked *b = (blocked *)arg;
    b->result = ballot_election_campaign(b->e, (const uint8_t *)b->value, b->len, -1, NULL, NULL);
    return NULL;
}

/* Reads the participants until there are `n` and the first leads. */
static ballot_participants *wait_participants(ballot_election *e, size_t n, long limit) {
    double until = now_ms() + limit;
    for (;;) {
        ballot_participants *p = NULL;
        bool first_leads = false;
        OK(ballot_election_participants(e, &p, err_out));
        if (ballot_participants_len(p) == n &&
            (n == 0 || (ballot_participants_is_leader(p, 0, &first_leads, NULL) == BALLOT_RESULT_OK && first_leads)))
            return p;
        ballot_participants_free(p);
        if (now_ms() > until) FAIL("%zu participants not within %ld ms", n, limit);
        sleep_ms(20);
    }
}

static void expect_item(ballot_participants *p, size_t i, const char *value, size_t len, bool leader) {
    const uint8_t *v = NULL;
    size_t n = 0;
    const char *key = NULL;
    bool is_leader = !leader;
    OK(ballot_participants_value(p, i, &v, &n, err_out));
    CHECK(n == len && memcmp(v, value, len) == 0);
    OK(ballot_participants_is_leader(p, i, &is_leader, err_out));
    CHECK(is_leader == leader);
    OK(ballot_participants_key(p, i, &key, err_out));
    CHECK(key != NULL && strlen(key) > 0);
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : NULL;
    long limit = limit_ms_arg(argc, argv);
    char name[128];
    ballot_client *c = NULL;
    ballot_election *ea = NULL, *eb = NULL, *ec = NULL, *reader = NULL;
    ballot_participants *p = NULL;
    ballot_leader *l = NULL;
    blocked bb = {0}, bc = {0};
    pthread_t tb, tc;
    const char *key0 = NULL, *key1 = NULL;
    const uint8_t *v = NULL;
    size_t n = 0;
    bool leader = false;

    if (!url) FAIL("usage: participants URL [LIMIT_MS]");
    unique_name(name, sizeof name, "parts");
    OK(ballot_client_connect(url, NULL, &c, err_out));
    OK(ballot_election_new(c, name, &ea, err_out));
    OK(ballot_election_new(c, name, &eb, err_out));
    OK(ballot_election_new(c, name, &ec, err_out));
    OK(ballot_election_new(c, name, &reader, err_out));

    /* Nobody campaigns: an empty list, not an error. */
    OK(ballot_election_participants(reader, &p, err_out));
    CHECK(p != NULL && ballot_participants_len(p) == 0);
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_participants_key(p, 0, &key0, err_out));
    ballot_participants_free(p);

    /* a leads, b and c queue behind it in that order. */
    OK(ballot_election_campaign(ea, (const uint8_t *)"a", 1, limit, NULL, err_out));
    bb = (blocked){eb, "b", 1, BALLOT_RESULT_OK};
    CHECK(pthread_create(&tb, NULL, campaign_thread, &bb) == 0);
    ballot_participants_free(wait_participants(reader, 2, limit));
    bc = (blocked){ec, "c\xff\x00", 3, BALLOT_RESULT_OK};
    CHECK(pthread_create(&tc, NULL, campaign_thread, &bc) == 0);
    p = wait_participants(reader, 3, limit);
    expect_item(p, 0, "a", 1, true);
    expect_item(p, 1, "b", 1, false);
    expect_item(p, 2, "c\xff\x00", 3, false);
    OK(ballot_election_leader(reader, &l, err_out));
    OK(ballot_participants_key(p, 0, &key0, err_out));
    CHECK(strcmp(key0, ballot_leader_key(l)) == 0);
    ballot_leader_free(l);
    OK(ballot_participants_key(p, 1, &key1, err_out));
    CHECK(strcmp(key0, key1) != 0);

    /* Bad input: NULLs, an index out of range; outputs untouched on failure. */
    CHECK(ballot_participants_len(NULL) == 0);
    ballot_participants_free(NULL);
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_participants(NULL, &(ballot_participants *){NULL}, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_participants(reader, NULL, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_participants_key(NULL, 0, &key1, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_participants_key(p, 0, NULL, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_participants_value(p, 0, NULL, &n, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_participants_value(p, 0, &v, NULL, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_participants_is_leader(p, 0, NULL, err_out));
    v = (const uint8_t *)"untouched";
    n = 9;
    leader = true;
    key1 = "untouched";
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_participants_value(p, 3, &v, &n, err_out));
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_participants_is_leader(p, 3, &leader, err_out));
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_participants_key(p, (size_t)-1, &key1, err_out));
    CHECK(n == 9 && leader && strcmp(key1, "untouched") == 0);
    /* err_out may be NULL. */
    CHECK(ballot_participants_key(p, 3, &key1, NULL) == BALLOT_RESULT_INVALID_ARGUMENT);
    ballot_participants_free(p);

    /* a resigns: b leads, c waits. */
    OK(ballot_election_resign(ea, err_out));
    CHECK(pthread_join(tb, NULL) == 0);
    CHECK(bb.result == BALLOT_RESULT_OK);
    p = wait_participants(reader, 2, limit);
    expect_item(p, 0, "b", 1, true);
    expect_item(p, 1, "c\xff\x00", 3, false);
    ballot_participants_free(p);

    /* Ended: this handle says so. */
    OK(ballot_election_end(reader, err_out));
    EXPECT(BALLOT_RESULT_ENDED, ballot_election_participants(reader, &(ballot_participants *){NULL}, err_out));
    CHECK(pthread_join(tc, NULL) == 0);
    CHECK(bc.result == BALLOT_RESULT_ENDED);

    OK(ballot_election_free(ea, err_out));
    OK(ballot_election_free(eb, err_out));
    OK(ballot_election_free(ec, err_out));
    OK(ballot_election_free(reader, err_out));
    ballot_client_free(c);
    printf("participants: %d checks passed\n", checks);
    return 0;
}
