/* Calls every exported function with bad input (NULL for each pointer, invalid
 * UTF-8, empty and oversized names and values, handles after close and after
 * end) and asserts the documented result code. Backend URL in argv[1]. */
#include "harness.h"

static void never_called_done(void *u, ballot_result r, uint64_t t, const ballot_error *e) {
    (void)u; (void)r; (void)t; (void)e;
    FAIL("a done callback was called for a refused campaign");
}
static void never_called_event(void *u, const ballot_event *e) {
    (void)u; (void)e;
}
static int frees = 0;
static void count_free(void *u) {
    (void)u;
    frees++;
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : NULL;
    char name[128];
    ballot_client *c = NULL, *c2 = NULL;
    ballot_election *e = NULL, *e2 = NULL;
    ballot_leader *l = NULL;
    ballot_error *err = NULL;
    ballot_state st = BALLOT_STATE_IDLE;
    const uint8_t *v = (const uint8_t *)"sentinel";
    size_t len = 99;
    uint64_t term = 7;
    const char bad_utf8[] = {'s', 'v', (char)0xC3, (char)0x28, 0};
    char long_name[300];
    size_t big = (1u << 20) + 1;
    uint8_t *huge = (uint8_t *)calloc(big, 1);

    if (!url) FAIL("usage: bad_input BACKEND_URL");
    if (!huge) FAIL("out of memory");
    memset(huge, 'x', big);
    unique_name(name, sizeof name, "bad");

    /* Static strings and NULL-tolerant accessors. */
    CHECK(strcmp(ballot_result_str(BALLOT_RESULT_OK), "ok") == 0);
    CHECK(strcmp(ballot_result_str(BALLOT_RESULT_NULL_PARAMETER), "null_parameter") == 0);
    CHECK(strcmp(ballot_result_str(BALLOT_RESULT_CANCELLED), "cancelled") == 0);
    CHECK(strcmp(ballot_result_str(9999), "unknown") == 0);
    CHECK(strcmp(ballot_state_str(BALLOT_STATE_LEADER), "leader") == 0);
    CHECK(strcmp(ballot_state_str(77), "unknown") == 0);
    CHECK(ballot_version() != NULL && strlen(ballot_version()) > 0);
    CHECK(ballot_error_message(NULL) == NULL);
    CHECK(ballot_error_result(NULL) == BALLOT_RESULT_NULL_PARAMETER);
    ballot_error_free(NULL);
    CHECK(ballot_leader_term(NULL) == 0);
    CHECK(ballot_leader_key(NULL) == NULL);
    ballot_leader_value(NULL, &v, &len);
    CHECK(v == NULL && len == 0);
    ballot_leader_value(NULL, NULL, NULL);
    ballot_leader_free(NULL);
    ballot_client_free(NULL);
    CHECK(ballot_election_free(NULL) == BALLOT_RESULT_OK);

    /* connect */
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_client_connect(NULL, NULL, &c, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_client_connect(url, NULL, NULL, err_out));
    EXPECT(BALLOT_RESULT_INVALID_UTF8, ballot_client_connect(bad_utf8, NULL, &c, err_out));
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_client_connect("", NULL, &c, err_out));
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_client_connect("nope://x", NULL, &c, err_out));
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_client_connect("file:///tmp/x?bogus=1", NULL, &c, err_out));
    {
        ballot_client_options o = {0};
        o.ttl_ms = 1000;
        o.safety_margin_ms = 5000; /* margin >= TTL */
        EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_client_connect(url, &o, &c, err_out));
    }
    CHECK(c == NULL); /* outputs are written only on success */
    /* err_out NULL is fine; the code is still returned. */
    CHECK(ballot_client_connect(NULL, NULL, &c, NULL) == BALLOT_RESULT_NULL_PARAMETER);
    /* the error carries a message naming the parameter */
    CHECK(ballot_client_connect(NULL, NULL, &c, &err) == BALLOT_RESULT_NULL_PARAMETER);
    CHECK(err != NULL && strstr(ballot_error_message(err), "url") != NULL);
    CHECK(ballot_error_result(err) == BALLOT_RESULT_NULL_PARAMETER);
    ballot_error_free(err);
    err = NULL;
    {
        ballot_client_options o = {0};
        o.ttl_ms = 10000; /* Consul's minimum */
        o.connect_timeout_ms = 5000;
        OK(ballot_client_connect(url, &o, &c, err_out));
    }
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_client_close(NULL, err_out));

    /* election_new */
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_new(NULL, name, &e, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_new(c, NULL, &e, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_new(c, name, NULL, err_out));
    EXPECT(BALLOT_RESULT_INVALID_UTF8, ballot_election_new(c, bad_utf8, &e, err_out));
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_election_new(c, "", &e, err_out));
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_election_new(c, "a//b", &e, err_out));
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_election_new(c, "/lead", &e, err_out));
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_election_new(c, "tab\there", &e, err_out));
    memset(long_name, 'n', 257);
    long_name[257] = 0;
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_election_new(c, long_name, &e, err_out));
    long_name[256] = 0;
    OK(ballot_election_new(c, long_name, &e2, err_out)); /* exactly 256 bytes is allowed */
    OK(ballot_election_free(e2));
    e2 = NULL;
    CHECK(e == NULL);
    OK(ballot_election_new(c, name, &e, err_out));

    /* campaign */
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_campaign(NULL, (const uint8_t *)"v", 1, 100, NULL, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_campaign(e, NULL, 1, 100, NULL, err_out));
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_election_campaign(e, NULL, 0, 100, NULL, err_out));
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_election_campaign(e, (const uint8_t *)"", 0, 100, NULL, err_out));
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_election_campaign(e, huge, big, 100, &term, err_out));
    CHECK(term == 7);
    CHECK(state_of(e) == BALLOT_STATE_IDLE);

    /* campaign_async: refused synchronously, callback never called */
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_campaign_async(NULL, (const uint8_t *)"v", 1, never_called_done, NULL));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_campaign_async(e, (const uint8_t *)"v", 1, NULL, NULL));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_campaign_async(e, NULL, 5, never_called_done, NULL));

    /* the other operations */
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_cancel(NULL));
    OK(ballot_election_cancel(e)); /* nothing running: fine */
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_proclaim(NULL, (const uint8_t *)"v", 1, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_proclaim(e, NULL, 3, err_out));
    EXPECT(BALLOT_RESULT_NOT_LEADER, ballot_election_proclaim(e, (const uint8_t *)"v", 1, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_resign(NULL, err_out));
    EXPECT(BALLOT_RESULT_NOT_LEADER, ballot_election_resign(e, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_leader(NULL, &l, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_leader(e, NULL, err_out));
    EXPECT(BALLOT_RESULT_NO_LEADER, ballot_election_leader(e, &l, err_out));
    CHECK(l == NULL);
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_end(NULL, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_state(NULL, &st));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_state(e, NULL));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_on_event(NULL, never_called_event, NULL, count_free));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_on_event(e, NULL, NULL, count_free));
    CHECK(frees == 0); /* a refused registration leaves user_data to the caller */

    /* Oversized and empty values while leading. */
    OK(ballot_election_campaign(e, (const uint8_t *)"v", 1, 10000, &term, err_out));
    CHECK(term > 0);
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_election_proclaim(e, huge, big, err_out));
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_election_proclaim(e, NULL, 0, err_out));
    /* A large value within every backend's limit (Consul's is 512 KiB). */
    OK(ballot_election_proclaim(e, huge, 256 * 1024, err_out));
    {
        const uint8_t *lv = NULL;
        size_t ll = 0;
        OK(ballot_election_leader(e, &l, err_out));
        ballot_leader_value(l, &lv, &ll);
        CHECK(ll == 256 * 1024 && lv[0] == 'x' && lv[ll - 1] == 'x');
        CHECK(ballot_leader_term(l) == term);
        ballot_leader_free(l);
        l = NULL;
    }
    /* Replacing a registration frees the old user_data once. */
    OK(ballot_election_on_event(e, never_called_event, NULL, count_free));
    OK(ballot_election_on_event(e, never_called_event, NULL, count_free));
    CHECK(frees == 1);

    /* After end: ENDED everywhere, end again is fine. */
    OK(ballot_election_end(e, err_out));
    OK(ballot_election_end(e, err_out));
    EXPECT(BALLOT_RESULT_ENDED, ballot_election_campaign(e, (const uint8_t *)"v", 1, 100, NULL, err_out));
    EXPECT(BALLOT_RESULT_ENDED, ballot_election_proclaim(e, (const uint8_t *)"v", 1, err_out));
    EXPECT(BALLOT_RESULT_ENDED, ballot_election_resign(e, err_out));
    EXPECT(BALLOT_RESULT_ENDED, ballot_election_leader(e, &l, err_out));
    OK(ballot_election_state(e, &st));
    CHECK(st == BALLOT_STATE_ENDED);

    /* After client close: CLOSED everywhere. */
    OK(ballot_client_connect(url, NULL, &c2, err_out));
    OK(ballot_election_new(c2, name, &e2, err_out));
    OK(ballot_client_close(c2, err_out));
    EXPECT(BALLOT_RESULT_CLOSED, ballot_election_new(c2, name, &e, err_out));
    EXPECT(BALLOT_RESULT_CLOSED, ballot_election_campaign(e2, (const uint8_t *)"v", 1, 100, NULL, err_out));
    EXPECT(BALLOT_RESULT_CLOSED, ballot_election_proclaim(e2, (const uint8_t *)"v", 1, err_out));
    EXPECT(BALLOT_RESULT_CLOSED, ballot_election_resign(e2, err_out));
    EXPECT(BALLOT_RESULT_CLOSED, ballot_election_leader(e2, &l, err_out));
    EXPECT(BALLOT_RESULT_CLOSED, ballot_election_end(e2, err_out));
    OK(ballot_election_state(e2, &st));
    CHECK(st == BALLOT_STATE_CLOSED);
    OK(ballot_election_cancel(e2));
    OK(ballot_election_free(e2));
    ballot_client_free(c2); /* free after close is fine */

    OK(ballot_election_free(e));
    CHECK(frees == 2);
    ballot_client_free(c);
    free(huge);
    printf("bad_input: %d checks passed\n", checks);
    return 0;
}
