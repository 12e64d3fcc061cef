/* Calls every exported function with bad input (NULL for each pointer, invalid
 * UTF-8, empty and oversized names and values, durations out of range, handles
 * after close and after end) and asserts the documented result code. Backend URL
 * in argv[1]. */
#include "harness.h"

/* Asserts that `call` fails with `expected` and that its error message contains
 * `want` and none of the strings in `hidden` (NULL-terminated). */
static void expect_message(ballot_result r, ballot_error *err, ballot_result expected, const char *want,
                           const char *const *hidden, int line) {
    const char *msg = err ? ballot_error_message(err) : "";
    checks++;
    if (r != expected) FAIL("line %d: got %s (%s), expected %s", line, ballot_result_str(r), msg, ballot_result_str(expected));
    if (!err || ballot_error_result(err) != r) FAIL("line %d: no error, or one with another code, in err_out", line);
    if (!strstr(msg, want)) FAIL("line %d: the message does not name %s: %s", line, want, msg);
    for (; hidden && *hidden; hidden++)
        if (strstr(msg, *hidden)) FAIL("line %d: the message shows %s: %s", line, *hidden, msg);
    ballot_error_free(err);
}

#define EXPECT_MSG(expected, want, hidden, call)                                 \
    do {                                                                         \
        ballot_error *m_ = NULL;                                                 \
        ballot_error **err_out = &m_;                                            \
        ballot_result r_ = (call);                                               \
        expect_message(r_, m_, (expected), (want), (hidden), __LINE__);          \
    } while (0)

/* The options setters: NULL, invalid UTF-8, empty values, durations out of range;
 * a refused value leaves the options as they were. */
static void options_bad_input(const char *url) {
    static const char *const no_secret[] = {"s3cr", "tok3n", "al1ce", "offset", NULL};
    const char bad_secret[] = {'s', '3', 'c', 'r', (char)0xC3, (char)0x28, 0};
    const char bad_path[] = {'/', 't', 'm', 'p', '/', (char)0xFF, 0};
    ballot_options *o = NULL;
    ballot_client *c = NULL;

    ballot_options_free(NULL);
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_options_new(NULL, err_out));
    OK(ballot_options_new(&o, err_out));
    CHECK(o != NULL);

    /* NULL options, for every setter. */
    EXPECT_MSG(BALLOT_RESULT_NULL_PARAMETER, "options", NULL, ballot_options_set_ttl(NULL, 10000, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_options_set_safety_margin(NULL, 1000, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_options_set_connect_timeout(NULL, 1000, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_options_set_auto_requeue(NULL, false, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_options_set_username(NULL, "u", err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_options_set_password(NULL, "p", err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_options_set_token(NULL, "t", err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_options_set_tls_ca(NULL, "/ca.pem", err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_options_set_tls_cert(NULL, "/cert.pem", err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_options_set_tls_key(NULL, "/key.pem", err_out));
    /* NULL strings. */
    EXPECT_MSG(BALLOT_RESULT_NULL_PARAMETER, "username", NULL, ballot_options_set_username(o, NULL, err_out));
    EXPECT_MSG(BALLOT_RESULT_NULL_PARAMETER, "password", NULL, ballot_options_set_password(o, NULL, err_out));
    EXPECT_MSG(BALLOT_RESULT_NULL_PARAMETER, "token", NULL, ballot_options_set_token(o, NULL, err_out));
    EXPECT_MSG(BALLOT_RESULT_NULL_PARAMETER, "tls_ca", NULL, ballot_options_set_tls_ca(o, NULL, err_out));
    EXPECT_MSG(BALLOT_RESULT_NULL_PARAMETER, "tls_cert", NULL, ballot_options_set_tls_cert(o, NULL, err_out));
    EXPECT_MSG(BALLOT_RESULT_NULL_PARAMETER, "tls_key", NULL, ballot_options_set_tls_key(o, NULL, err_out));
    /* Invalid UTF-8: a secret's error says nothing of its content, not even where. */
    EXPECT_MSG(BALLOT_RESULT_INVALID_UTF8, "username", no_secret, ballot_options_set_username(o, bad_secret, err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_UTF8, "password", no_secret, ballot_options_set_password(o, bad_secret, err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_UTF8, "token", no_secret, ballot_options_set_token(o, bad_secret, err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_UTF8, "tls_ca", NULL, ballot_options_set_tls_ca(o, bad_path, err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_UTF8, "tls_cert", NULL, ballot_options_set_tls_cert(o, bad_path, err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_UTF8, "tls_key", NULL, ballot_options_set_tls_key(o, bad_path, err_out));
    /* Empty values. */
    EXPECT_MSG(BALLOT_RESULT_INVALID_ARGUMENT, "username is empty", NULL, ballot_options_set_username(o, "", err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_ARGUMENT, "password is empty", NULL, ballot_options_set_password(o, "", err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_ARGUMENT, "token is empty", NULL, ballot_options_set_token(o, "", err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_ARGUMENT, "tls_ca is empty", NULL, ballot_options_set_tls_ca(o, "", err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_ARGUMENT, "tls_cert is empty", NULL, ballot_options_set_tls_cert(o, "", err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_ARGUMENT, "tls_key is empty", NULL, ballot_options_set_tls_key(o, "", err_out));
    /* Durations out of range, huge ones included; the bounds themselves are fine. */
    EXPECT_MSG(BALLOT_RESULT_INVALID_ARGUMENT, "ttl", NULL, ballot_options_set_ttl(o, 0, err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_ARGUMENT, "ttl", NULL, ballot_options_set_ttl(o, 999, err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_ARGUMENT, "ttl", NULL, ballot_options_set_ttl(o, 86400001, err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_ARGUMENT, "ttl", NULL, ballot_options_set_ttl(o, UINT64_MAX, err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_ARGUMENT, "margin", NULL, ballot_options_set_safety_margin(o, 86400001, err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_ARGUMENT, "margin", NULL, ballot_options_set_safety_margin(o, UINT64_MAX, err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_ARGUMENT, "connect_timeout", NULL, ballot_options_set_connect_timeout(o, 0, err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_ARGUMENT, "connect_timeout", NULL, ballot_options_set_connect_timeout(o, 3600001, err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_ARGUMENT, "connect_timeout", NULL, ballot_options_set_connect_timeout(o, UINT64_MAX, err_out));
    OK(ballot_options_set_ttl(o, 86400000, err_out));
    OK(ballot_options_set_ttl(o, 1000, err_out));
    OK(ballot_options_set_safety_margin(o, 0, err_out));
    OK(ballot_options_set_connect_timeout(o, 3600000, err_out));
    OK(ballot_options_set_connect_timeout(o, 1, err_out));
    OK(ballot_options_set_auto_requeue(o, true, err_out));
    /* What depends on several options is checked at connect: a margin not below the TTL. */
    OK(ballot_options_set_safety_margin(o, 5000, err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_ARGUMENT, "margin", NULL, ballot_client_connect(url, o, &c, err_out));
    CHECK(c == NULL);
    ballot_options_free(o);

    /* Credentials from their parts: a username needs its password (checked at connect),
     * a token goes alone (refused where it is set, both ways round); no message shows
     * any of them. */
    OK(ballot_options_new(&o, err_out));
    OK(ballot_options_set_username(o, "al1ce", err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_ARGUMENT, "password", no_secret, ballot_client_connect(url, o, &c, err_out));
    OK(ballot_options_set_password(o, "s3cret", err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_ARGUMENT, "token", no_secret, ballot_options_set_token(o, "tok3n", err_out));
    ballot_options_free(o);
    OK(ballot_options_new(&o, err_out));
    OK(ballot_options_set_token(o, "tok3n", err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_ARGUMENT, "token", no_secret, ballot_options_set_username(o, "al1ce", err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_ARGUMENT, "token", no_secret, ballot_options_set_password(o, "s3cret", err_out));
    ballot_options_free(o);
    OK(ballot_options_new(&o, err_out));
    OK(ballot_options_set_password(o, "s3cret", err_out));
    EXPECT_MSG(BALLOT_RESULT_INVALID_ARGUMENT, "username", no_secret, ballot_client_connect(url, o, &c, err_out));
    CHECK(c == NULL);
    ballot_options_free(o);
}

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
    CHECK(strcmp(ballot_event_kind_str(BALLOT_EVENT_KIND_ELECTED), "elected") == 0);
    CHECK(strcmp(ballot_event_kind_str(BALLOT_EVENT_KIND_SUSPENDED), "suspended") == 0);
    CHECK(strcmp(ballot_event_kind_str(BALLOT_EVENT_KIND_RECONNECTED), "reconnected") == 0);
    CHECK(strcmp(ballot_event_kind_str(BALLOT_EVENT_KIND_LOST), "lost") == 0);
    CHECK(strcmp(ballot_event_kind_str(BALLOT_EVENT_KIND_RESIGNED), "resigned") == 0);
    CHECK(strcmp(ballot_event_kind_str(BALLOT_EVENT_KIND_LEADER_CHANGED), "leader_changed") == 0);
    CHECK(strcmp(ballot_event_kind_str(BALLOT_EVENT_KIND_ENDED), "ended") == 0);
    CHECK(strcmp(ballot_event_kind_str(BALLOT_EVENT_KIND_ERROR), "error") == 0);
    CHECK(strcmp(ballot_event_kind_str(0), "unknown") == 0);
    CHECK(strcmp(ballot_event_kind_str(9), "unknown") == 0);

    /* Log levels: only 0 (off) to 5 (trace); a NULL callback is "off". */
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_set_log_callback(6, NULL, NULL, err_out));
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_set_log_callback(UINT32_MAX, NULL, NULL, err_out));
    OK(ballot_set_log_callback(BALLOT_LOG_LEVEL_INFO, NULL, NULL, err_out));
    OK(ballot_set_log_callback(BALLOT_LOG_LEVEL_OFF, NULL, NULL, NULL));
    CHECK(strcmp(ballot_event_kind_str(UINT32_MAX), "unknown") == 0);
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
    CHECK(ballot_participants_len(NULL) == 0);
    {
        const char *k = "untouched";
        bool is = true;
        EXPECT_MSG(BALLOT_RESULT_NULL_PARAMETER, "list", NULL, ballot_participants_key(NULL, 0, &k, err_out));
        EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_participants_value(NULL, 0, &v, &len, err_out));
        EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_participants_is_leader(NULL, 0, &is, err_out));
        CHECK(strcmp(k, "untouched") == 0 && is);
    }
    ballot_participants_free(NULL);
    /* Metrics: NULL handles and outputs, indexes out of range; outputs untouched. */
    CHECK(ballot_metrics_family_count(NULL) == 0);
    EXPECT_MSG(BALLOT_RESULT_NULL_PARAMETER, "out", NULL, ballot_metrics_snapshot(NULL, err_out));
    {
        ballot_metrics *m = NULL;
        const char *k = "untouched", *mv = "untouched";
        size_t n = 7;
        double d = 7.0;
        uint64_t u = 7;
        char *text = NULL;
        EXPECT_MSG(BALLOT_RESULT_NULL_PARAMETER, "metrics", NULL,
                   ballot_metrics_family(NULL, 0, &k, &mv, NULL, &n, err_out));
        EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_metrics_sample_label_count(NULL, 0, 0, &n, err_out));
        EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_metrics_sample_label(NULL, 0, 0, 0, &k, &mv, err_out));
        EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_metrics_sample_value(NULL, 0, 0, &d, err_out));
        EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_metrics_sample_histogram(NULL, 0, 0, &n, &d, &u, err_out));
        EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_metrics_sample_bucket(NULL, 0, 0, 0, &d, &u, err_out));
        EXPECT_MSG(BALLOT_RESULT_NULL_PARAMETER, "text_out", NULL, ballot_metrics_prometheus(NULL, err_out));
        OK(ballot_metrics_snapshot(&m, err_out));
        EXPECT(BALLOT_RESULT_INVALID_ARGUMENT,
               ballot_metrics_family(m, ballot_metrics_family_count(m), &k, &mv, NULL, &n, err_out));
        EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_metrics_sample_label_count(m, 99, 0, &n, err_out));
        EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_metrics_sample_label(m, 0, 1000000, 0, &k, &mv, err_out));
        EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_metrics_sample_label(m, 0, 0, 0, NULL, &mv, err_out));
        EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_metrics_sample_value(m, 0, 1000000, &d, err_out));
        EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_metrics_sample_histogram(m, 0, 1000000, &n, &d, &u, err_out));
        EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_metrics_sample_bucket(m, 0, 0, 0, NULL, &u, err_out));
        EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_metrics_sample_bucket(m, 99, 0, 0, &d, &u, err_out));
        CHECK(strcmp(k, "untouched") == 0 && strcmp(mv, "untouched") == 0 && n == 7 && d == 7.0 && u == 7);
        ballot_metrics_free(m);
        OK(ballot_metrics_prometheus(&text, err_out));
        CHECK(text != NULL && strstr(text, "# TYPE ballot_leader gauge") != NULL);
        ballot_string_free(text);
    }
    ballot_metrics_free(NULL);
    ballot_string_free(NULL);
    ballot_client_free(NULL);
    CHECK(ballot_election_free(NULL, NULL) == BALLOT_RESULT_OK);
    CHECK(ballot_election_free(NULL, &err) == BALLOT_RESULT_OK && err == NULL);

    options_bad_input(url);

    /* connect */
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_client_connect(NULL, NULL, &c, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_client_connect(url, NULL, NULL, err_out));
    EXPECT(BALLOT_RESULT_INVALID_UTF8, ballot_client_connect(bad_utf8, NULL, &c, err_out));
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_client_connect("", NULL, &c, err_out));
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_client_connect("nope://x", NULL, &c, err_out));
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_client_connect("file:///tmp/x?bogus=1", NULL, &c, err_out));
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
        ballot_options *o = NULL;
        OK(ballot_options_new(&o, err_out));
        OK(ballot_options_set_ttl(o, 10000, err_out)); /* Consul's minimum */
        OK(ballot_options_set_connect_timeout(o, 5000, err_out));
        OK(ballot_client_connect(url, o, &c, err_out));
        ballot_options_free(o); /* the client does not need it any more */
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
    OK(ballot_election_free(e2, err_out));
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
    EXPECT_MSG(BALLOT_RESULT_NULL_PARAMETER, "election", NULL,
               ballot_election_campaign_async(NULL, (const uint8_t *)"v", 1, never_called_done, NULL, err_out));
    EXPECT_MSG(BALLOT_RESULT_NULL_PARAMETER, "cb", NULL,
               ballot_election_campaign_async(e, (const uint8_t *)"v", 1, NULL, NULL, err_out));
    EXPECT_MSG(BALLOT_RESULT_NULL_PARAMETER, "value", NULL,
               ballot_election_campaign_async(e, NULL, 5, never_called_done, NULL, err_out));

    /* the other operations */
    EXPECT_MSG(BALLOT_RESULT_NULL_PARAMETER, "election", NULL, ballot_election_cancel(NULL, err_out));
    CHECK(ballot_election_cancel(NULL, NULL) == BALLOT_RESULT_NULL_PARAMETER);
    OK(ballot_election_cancel(e, err_out)); /* nothing running: fine */
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_proclaim(NULL, (const uint8_t *)"v", 1, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_proclaim(e, NULL, 3, err_out));
    EXPECT(BALLOT_RESULT_NOT_LEADER, ballot_election_proclaim(e, (const uint8_t *)"v", 1, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_resign(NULL, err_out));
    EXPECT(BALLOT_RESULT_NOT_LEADER, ballot_election_resign(e, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_leader(NULL, &l, err_out));
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_leader(e, NULL, err_out));
    EXPECT(BALLOT_RESULT_NO_LEADER, ballot_election_leader(e, &l, err_out));
    CHECK(l == NULL);
    {
        ballot_participants *ps = NULL;
        const char *k = NULL;
        EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_participants(NULL, &ps, err_out));
        EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_participants(e, NULL, err_out));
        CHECK(ps == NULL);
        OK(ballot_election_participants(e, &ps, err_out));
        CHECK(ps != NULL && ballot_participants_len(ps) == 0);
        EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_participants_key(ps, 0, &k, err_out));
        CHECK(k == NULL);
        ballot_participants_free(ps);
    }
    EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_election_end(NULL, err_out));
    EXPECT_MSG(BALLOT_RESULT_NULL_PARAMETER, "election", NULL, ballot_election_state(NULL, &st, err_out));
    EXPECT_MSG(BALLOT_RESULT_NULL_PARAMETER, "state_out", NULL, ballot_election_state(e, NULL, err_out));
    EXPECT_MSG(BALLOT_RESULT_NULL_PARAMETER, "election", NULL,
               ballot_election_on_event(NULL, never_called_event, NULL, count_free, err_out));
    EXPECT_MSG(BALLOT_RESULT_NULL_PARAMETER, "cb", NULL, ballot_election_on_event(e, NULL, NULL, count_free, err_out));
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
    OK(ballot_election_on_event(e, never_called_event, NULL, count_free, err_out));
    OK(ballot_election_on_event(e, never_called_event, NULL, count_free, err_out));
    CHECK(frees == 1);

    /* After end: ENDED everywhere, end again is fine. */
    OK(ballot_election_end(e, err_out));
    OK(ballot_election_end(e, err_out));
    EXPECT(BALLOT_RESULT_ENDED, ballot_election_campaign(e, (const uint8_t *)"v", 1, 100, NULL, err_out));
    EXPECT(BALLOT_RESULT_ENDED, ballot_election_proclaim(e, (const uint8_t *)"v", 1, err_out));
    EXPECT(BALLOT_RESULT_ENDED, ballot_election_resign(e, err_out));
    EXPECT(BALLOT_RESULT_ENDED, ballot_election_leader(e, &l, err_out));
    EXPECT(BALLOT_RESULT_ENDED, ballot_election_participants(e, &(ballot_participants *){NULL}, err_out));
    OK(ballot_election_state(e, &st, err_out));
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
    EXPECT(BALLOT_RESULT_CLOSED, ballot_election_participants(e2, &(ballot_participants *){NULL}, err_out));
    EXPECT(BALLOT_RESULT_CLOSED, ballot_election_end(e2, err_out));
    OK(ballot_election_state(e2, &st, err_out));
    CHECK(st == BALLOT_STATE_CLOSED);
    OK(ballot_election_cancel(e2, err_out));
    OK(ballot_election_free(e2, err_out));
    ballot_client_free(c2); /* free after close is fine */

    OK(ballot_election_free(e, err_out));
    CHECK(frees == 2);
    ballot_client_free(c);
    free(huge);
    printf("bad_input: %d checks passed\n", checks);
    return 0;
}
