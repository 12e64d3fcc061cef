/* ballot_options against ballot_client_connect: the URL and the options agree or
 * are refused, and credentials and TLS files set only through the options reach
 * the real servers that need them.
 *
 *   options local DIR                      URL vs options, no server needed
 *   options etcd-auth URL USER PASSWORD PREFIX
 *   options etcd-tls URL CA CERT KEY       (URL is etcds://host:port)
 *   options consul-acl URL TOKEN           (URL without the token)
 *
 * Prints "options: N checks passed". */
#include "harness.h"

/* Secrets used below; no error message may show any of them. */
static const char *const hidden[] = {"al1ce", "s3cret", "0ther", "tok3n", "t0ken2", NULL};

/* Asserts that a call gave `expected`, with a message in `err` that contains
 * `want` and none of `hidden`. Frees `err`. */
static void refused(ballot_result r, ballot_error *err, ballot_result expected, const char *want, const char *call,
                    int line) {
    const char *msg = err ? ballot_error_message(err) : "(no error)";
    const char *const *h;
    checks++;
    if (r != expected)
        FAIL("line %d: %s gave %s (%s), expected %s", line, call, ballot_result_str(r), msg,
             ballot_result_str(expected));
    if (!strstr(msg, want)) FAIL("line %d: the message does not name %s: %s", line, want, msg);
    for (h = hidden; *h; h++)
        if (strstr(msg, *h)) FAIL("line %d: the message shows a secret: %s", line, msg);
    ballot_error_free(err);
}

/* Runs `call`, which must fail with `expected` and a message naming `want`. */
#define REFUSED(expected, want, call)                                  \
    do {                                                               \
        ballot_error *m_ = NULL;                                       \
        ballot_error **err_out = &m_;                                  \
        ballot_result r_ = (call);                                     \
        refused(r_, m_, (expected), (want), #call, __LINE__);          \
    } while (0)

/* Whether an error message is about the URL and the options disagreeing. */
static int about_contradiction(const char *msg) {
    return strstr(msg, "twice") || strstr(msg, "differ") || strstr(msg, "contradicts") || strstr(msg, "disagree");
}

/* Connects with `o` where nothing listens (or to a file that does not exist):
 * the URL and the options must be accepted, so the connect fails for another
 * reason than their disagreeing. */
static void accepted_then_failed(const char *url, const ballot_options *o) {
    ballot_client *c = NULL;
    ballot_error *err = NULL;
    ballot_result r = ballot_client_connect(url, o, &c, &err);
    const char *msg = err ? ballot_error_message(err) : "";
    checks++;
    if (r == BALLOT_RESULT_OK) FAIL("connect %s succeeded, but nothing listens there", url);
    if (about_contradiction(msg)) FAIL("connect %s: the URL and the options were refused: %s", url, msg);
    ballot_error_free(err);
}

static ballot_options *options(void) {
    ballot_options *o = NULL;
    OK(ballot_options_new(&o, err_out));
    /* Nothing listens where these tests connect to: fail fast. */
    OK(ballot_options_set_connect_timeout(o, 2000, err_out));
    return o;
}

static void local(const char *dir) {
    char url[600];
    ballot_options *o;
    ballot_client *c = NULL, *c2 = NULL;

    /* Durations: one place, or both with the same value, is fine; the default is no
     * setting; different values are refused, naming the option. */
    o = options();
    OK(ballot_options_set_ttl(o, 3000, err_out));
    snprintf(url, sizeof url, "file://%s?ttl=3s", dir);
    OK(ballot_client_connect(url, o, &c, err_out));
    /* One options object serves several connects; the clients do not need it. */
    snprintf(url, sizeof url, "file://%s", dir);
    OK(ballot_client_connect(url, o, &c2, err_out));
    ballot_options_free(o);
    OK(ballot_client_close(c, err_out));
    ballot_client_free(c);
    ballot_client_free(c2);
    c = c2 = NULL;

    o = options();
    snprintf(url, sizeof url, "file://%s?ttl=10s&connect_timeout=2s", dir);
    OK(ballot_client_connect(url, o, &c, err_out)); /* 10 s is the default, not a setting */
    ballot_client_free(c);
    c = NULL;
    OK(ballot_options_set_ttl(o, 4000, err_out));
    snprintf(url, sizeof url, "file://%s?ttl=3s", dir);
    REFUSED(BALLOT_RESULT_INVALID_ARGUMENT, "ttl=3s", ballot_client_connect(url, o, &c, err_out));
    /* A refused setter left the TTL as it was: still 4 s, still refused. */
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_options_set_ttl(o, 0, err_out));
    REFUSED(BALLOT_RESULT_INVALID_ARGUMENT, "ttl=3s", ballot_client_connect(url, o, &c, err_out));
    snprintf(url, sizeof url, "file://%s?ttl=4s", dir);
    OK(ballot_client_connect(url, o, &c, err_out));
    ballot_client_free(c);
    c = NULL;
    OK(ballot_options_set_safety_margin(o, 2000, err_out));
    snprintf(url, sizeof url, "file://%s?margin=1s", dir);
    REFUSED(BALLOT_RESULT_INVALID_ARGUMENT, "margin=1s", ballot_client_connect(url, o, &c, err_out));
    snprintf(url, sizeof url, "file://%s?connect_timeout=5s", dir);
    REFUSED(BALLOT_RESULT_INVALID_ARGUMENT, "connect_timeout=5s", ballot_client_connect(url, o, &c, err_out));
    /* ZooKeeper's session_timeout= is its TTL: a different ttl contradicts it. */
    REFUSED(BALLOT_RESULT_INVALID_ARGUMENT, "session_timeout",
            ballot_client_connect("zk://127.0.0.1:1?session_timeout=3s", o, &c, err_out));
    accepted_then_failed("zk://127.0.0.1:1?session_timeout=4s", o);
    CHECK(c == NULL);
    ballot_options_free(o);

    /* Credentials: the same ones in both places are fine; others, or another kind,
     * are refused without showing either. */
    o = options();
    OK(ballot_options_set_username(o, "al1ce", err_out));
    OK(ballot_options_set_password(o, "s3cret", err_out));
    accepted_then_failed("etcd://al1ce:s3cret@127.0.0.1:1", o);
    accepted_then_failed("etcd://127.0.0.1:1", o);
    OK(ballot_options_set_password(o, "0ther", err_out));
    REFUSED(BALLOT_RESULT_INVALID_ARGUMENT, "credentials",
            ballot_client_connect("etcd://al1ce:s3cret@127.0.0.1:1", o, &c, err_out));
    REFUSED(BALLOT_RESULT_INVALID_ARGUMENT, "credentials",
            ballot_client_connect("zk://al1ce:s3cret@127.0.0.1:1", o, &c, err_out));
    REFUSED(BALLOT_RESULT_INVALID_ARGUMENT, "credentials",
            ballot_client_connect("consul://tok3n@127.0.0.1:1", o, &c, err_out));
    ballot_options_free(o);
    o = options();
    OK(ballot_options_set_token(o, "t0ken2", err_out));
    REFUSED(BALLOT_RESULT_INVALID_ARGUMENT, "credentials",
            ballot_client_connect("consul://tok3n@127.0.0.1:1", o, &c, err_out));
    OK(ballot_options_set_token(o, "tok3n", err_out));
    accepted_then_failed("consul://tok3n@127.0.0.1:1", o);
    ballot_options_free(o);

    /* TLS files: the same file is fine, another is refused; tls=0 contradicts them
     * (on Consul it was silently ignored). */
    o = options();
    OK(ballot_options_set_tls_ca(o, "/nonexistent/ca.pem", err_out));
    accepted_then_failed("etcds://127.0.0.1:1?ca=/nonexistent/ca.pem", o);
    REFUSED(BALLOT_RESULT_INVALID_ARGUMENT, "ca=",
            ballot_client_connect("etcds://127.0.0.1:1?ca=/nonexistent/other.pem", o, &c, err_out));
    REFUSED(BALLOT_RESULT_INVALID_ARGUMENT, "ca=",
            ballot_client_connect("consuls://127.0.0.1:1?ca=/nonexistent/other.pem", o, &c, err_out));
    REFUSED(BALLOT_RESULT_INVALID_ARGUMENT, "tls=0",
            ballot_client_connect("etcd://127.0.0.1:1?tls=0", o, &c, err_out));
    REFUSED(BALLOT_RESULT_INVALID_ARGUMENT, "tls=0",
            ballot_client_connect("consul://127.0.0.1:1?tls=0", o, &c, err_out));
    OK(ballot_options_set_tls_cert(o, "/nonexistent/cert.pem", err_out));
    OK(ballot_options_set_tls_key(o, "/nonexistent/key.pem", err_out));
    REFUSED(BALLOT_RESULT_INVALID_ARGUMENT, "cert=",
            ballot_client_connect("etcds://127.0.0.1:1?cert=/nonexistent/c2.pem", o, &c, err_out));
    REFUSED(BALLOT_RESULT_INVALID_ARGUMENT, "key=",
            ballot_client_connect("etcds://127.0.0.1:1?key=/nonexistent/k2.pem", o, &c, err_out));
    CHECK(c == NULL);
    ballot_options_free(o);
}

/* Campaigns once on `url` with `o`, reads the leader back, and ends the election. */
static void elect(const char *url, const ballot_options *o, const char *tag) {
    char name[128];
    ballot_client *c = NULL;
    ballot_election *e = NULL;
    ballot_leader *l = NULL;
    uint64_t term = 0;
    const uint8_t *v = NULL;
    size_t len = 0;
    unique_name(name, sizeof name, tag);
    OK(ballot_client_connect(url, o, &c, err_out));
    OK(ballot_election_new(c, name, &e, err_out));
    OK(ballot_election_campaign(e, (const uint8_t *)tag, strlen(tag), 30000, &term, err_out));
    CHECK(term > 0);
    OK(ballot_election_leader(e, &l, err_out));
    ballot_leader_value(l, &v, &len);
    CHECK(len == strlen(tag) && memcmp(v, tag, len) == 0 && ballot_leader_term(l) == term);
    ballot_leader_free(l);
    OK(ballot_election_end(e, err_out));
    OK(ballot_election_free(e, err_out));
    OK(ballot_client_close(c, err_out));
    ballot_client_free(c);
    printf("options: %s: elected with term %llu\n", tag, (unsigned long long)term);
}

/* A connect that the server refuses (AUTH; CONNECTION for a TLS handshake it
 * breaks off); the message must not show `secret`. */
static void refused_by_server(const char *url, const ballot_options *o, const char *secret) {
    ballot_client *c = NULL;
    ballot_error *err = NULL;
    ballot_result r = ballot_client_connect(url, o, &c, &err);
    const char *msg = err ? ballot_error_message(err) : "";
    checks++;
    if (r != BALLOT_RESULT_AUTH && r != BALLOT_RESULT_CONNECTION)
        FAIL("connect %s gave %s (%s), expected auth or connection", url, ballot_result_str(r), msg);
    if (secret && strstr(msg, secret)) FAIL("the error shows the secret: %s", msg);
    ballot_error_free(err);
    CHECK(c == NULL);
}

/* Options with a connect timeout: long for the connects that must succeed under
 * ASan or valgrind on a busy machine, short for the ones a server refuses. */
static ballot_options *patient(uint64_t timeout_ms) {
    ballot_options *o = NULL;
    OK(ballot_options_new(&o, err_out));
    OK(ballot_options_set_connect_timeout(o, timeout_ms, err_out));
    return o;
}

/* Without credentials, or with a wrong password, the server refuses `url`
 * (without showing the password); with `user` and `password` set only in `o`,
 * it runs an election. */
static void credentials_reach(const char *url, ballot_options *o, ballot_options *bad, const char *user,
                              const char *password, const char *tag) {
    refused_by_server(url, bad, NULL);
    OK(ballot_options_set_username(bad, user, err_out));
    OK(ballot_options_set_password(bad, "wr0ng-pa55word", err_out));
    refused_by_server(url, bad, "wr0ng-pa55word");
    OK(ballot_options_set_username(o, user, err_out));
    OK(ballot_options_set_password(o, password, err_out));
    elect(url, o, tag);
}

static void etcd_auth(const char *base, const char *user, const char *password, const char *prefix) {
    char url[600], ns[200];
    ballot_options *o = patient(30000), *bad = patient(5000);
    /* A namespace inside the prefix that the user's role may write. */
    unique_name(ns, sizeof ns, "opts");
    snprintf(url, sizeof url, "%s/%s%s", base, prefix, strchr(ns, '/') + 1);
    credentials_reach(url, o, bad, user, password, "etcd-auth");
    ballot_options_free(o);
    ballot_options_free(bad);
}

static void etcd_tls(const char *base, const char *ca, const char *cert, const char *key) {
    char url[600];
    ballot_options *o = patient(30000), *bad = patient(5000);
    if (strncmp(base, "etcds://", 8) != 0) FAIL("expected an etcds:// URL, got %s", base);
    /* The server asks for a client certificate: without one it refuses. */
    OK(ballot_options_set_tls_ca(bad, ca, err_out));
    refused_by_server(base, bad, NULL);
    OK(ballot_options_set_tls_ca(o, ca, err_out));
    OK(ballot_options_set_tls_cert(o, cert, err_out));
    OK(ballot_options_set_tls_key(o, key, err_out));
    elect(base, o, "etcds");
    /* The options alone turn TLS on, also under the plain etcd:// scheme. */
    snprintf(url, sizeof url, "etcd://%s", base + 8);
    elect(url, o, "etcd-tls-by-options");
    ballot_options_free(o);
    ballot_options_free(bad);
}

static void consul_acl(const char *base, const char *token) {
    ballot_options *o = patient(30000), *bad = patient(5000);
    /* Only the options may give a token here. */
    unsetenv("CONSUL_HTTP_TOKEN");
    OK(ballot_options_set_ttl(o, 10000, err_out)); /* Consul's minimum */
    OK(ballot_options_set_ttl(bad, 10000, err_out));
    refused_by_server(base, bad, NULL);
    OK(ballot_options_set_token(bad, "00000000-0000-0000-0000-00000000bad0", err_out));
    refused_by_server(base, bad, "00000000-0000-0000-0000-00000000bad0");
    OK(ballot_options_set_token(o, token, err_out));
    elect(base, o, "consul-acl");
    ballot_options_free(o);
    ballot_options_free(bad);
}

/* PostgreSQL: the user and password only in the options (the URL has none, and
 * neither PGUSER nor PGPASSWORD is set), then TLS checked against the test CA
 * given only in the options. */
static void pg(const char *base, const char *user, const char *password, const char *ca) {
    char url[600], tls_url[700];
    ballot_options *o = patient(30000), *bad = patient(5000);
    unsetenv("PGUSER");
    unsetenv("PGPASSWORD");
    snprintf(url, sizeof url, "%s/opts-%ld", base, (long)getpid());
    credentials_reach(url, o, bad, user, password, "pg");
    OK(ballot_options_set_tls_ca(o, ca, err_out));
    snprintf(tls_url, sizeof tls_url, "%s?sslmode=verify-full", url);
    elect(tls_url, o, "pg-verify-full");
    ballot_options_free(o);
    ballot_options_free(bad);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "local") == 0 && argc == 3)
        local(argv[2]);
    else if (strcmp(mode, "etcd-auth") == 0 && argc == 6)
        etcd_auth(argv[2], argv[3], argv[4], argv[5]);
    else if (strcmp(mode, "etcd-tls") == 0 && argc == 6)
        etcd_tls(argv[2], argv[3], argv[4], argv[5]);
    else if (strcmp(mode, "consul-acl") == 0 && argc == 4)
        consul_acl(argv[2], argv[3]);
    else if (strcmp(mode, "pg") == 0 && argc == 6)
        pg(argv[2], argv[3], argv[4], argv[5]);
    else
        FAIL("usage: options local DIR | etcd-auth URL USER PASSWORD PREFIX | etcd-tls URL CA CERT KEY | "
             "consul-acl URL TOKEN | pg URL USER PASSWORD CA");
    printf("options: %d checks passed\n", checks);
    return 0;
}
