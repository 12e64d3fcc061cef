/* ballot_metrics through the C ABI on memory:// (no server): a leader's gauges,
 * counters and join-to-win histogram in the snapshot, the accessors' NULL and
 * out-of-range checks, the Prometheus text as an owned string, and the series
 * gone once the handle is freed. Exits 0 and prints "metrics: N checks passed". */
#include "harness.h"

#include <math.h>
#include <string.h>

/* The index of family `name`, or exit. */
static size_t family_index(const ballot_metrics *m, const char *name) {
    for (size_t f = 0; f < ballot_metrics_family_count(m); f++) {
        const char *n = NULL;
        OK(ballot_metrics_family(m, f, &n, NULL, NULL, NULL, err_out));
        if (strcmp(n, name) == 0) return f;
    }
    FAIL("no family %s", name);
    return 0;
}

/* The index of the sample of family `f` whose election label is `election` (and
 * whose reason label is `reason` when not NULL); -1 when there is none. */
static long sample_of(const ballot_metrics *m, size_t f, const char *election, const char *reason) {
    size_t samples = 0;
    OK(ballot_metrics_family(m, f, NULL, NULL, NULL, &samples, err_out));
    for (size_t s = 0; s < samples; s++) {
        size_t labels = 0;
        int election_ok = 0, reason_ok = reason == NULL;
        OK(ballot_metrics_sample_label_count(m, f, s, &labels, err_out));
        for (size_t l = 0; l < labels; l++) {
            const char *k = NULL, *v = NULL;
            OK(ballot_metrics_sample_label(m, f, s, l, &k, &v, err_out));
            if (strcmp(k, "election") == 0 && strcmp(v, election) == 0) election_ok = 1;
            if (reason && strcmp(k, "reason") == 0 && strcmp(v, reason) == 0) reason_ok = 1;
        }
        if (election_ok && reason_ok) return (long)s;
    }
    return -1;
}

static double value_of(const ballot_metrics *m, const char *family, const char *election) {
    size_t f = family_index(m, family);
    long s = sample_of(m, f, election, NULL);
    double v = NAN;
    if (s < 0) FAIL("no %s sample for %s", family, election);
    OK(ballot_metrics_sample_value(m, f, (size_t)s, &v, err_out));
    return v;
}

int main(void) {
    char url[64], name[64];
    ballot_client *c = NULL;
    ballot_election *e = NULL;
    ballot_metrics *m = NULL;
    uint64_t term = 0;
    char *text = NULL;

    snprintf(url, sizeof url, "memory://cmetrics-%ld", (long)getpid());
    unique_name(name, sizeof name, "cmetrics");
    OK(ballot_client_connect(url, NULL, &c, err_out));
    OK(ballot_election_new(c, name, &e, err_out));
    OK(ballot_election_campaign(e, (const uint8_t *)"secret-value", 12, 10000, &term, err_out));

    OK(ballot_metrics_snapshot(&m, err_out));
    CHECK(ballot_metrics_family_count(m) == 8);
    {
        const char *n = NULL, *help = NULL;
        ballot_metric_type type = 0;
        size_t samples = 0;
        OK(ballot_metrics_family(m, 0, &n, &help, &type, &samples, err_out));
        CHECK(strcmp(n, "ballot_leader") == 0);
        CHECK(strlen(help) > 0);
        CHECK(type == BALLOT_METRIC_TYPE_GAUGE);
        CHECK(samples >= 1);
        OK(ballot_metrics_family(m, family_index(m, "ballot_elections_won_total"), NULL, NULL, &type, NULL, err_out));
        CHECK(type == BALLOT_METRIC_TYPE_COUNTER);
    }
    CHECK(value_of(m, "ballot_leader", name) == 1.0);
    CHECK(value_of(m, "ballot_campaigning", name) == 0.0);
    CHECK(value_of(m, "ballot_elections_won_total", name) == 1.0);
    {
        size_t f = family_index(m, "ballot_leadership_lost_total");
        long s = sample_of(m, f, name, "session_lost");
        double v = -1;
        CHECK(s >= 0);
        OK(ballot_metrics_sample_value(m, f, (size_t)s, &v, err_out));
        CHECK(v == 0.0);
    }
    {
        size_t f = family_index(m, "ballot_handoff_wait_seconds");
        long s = sample_of(m, f, name, NULL);
        size_t buckets = 0;
        double sum = -1, le = 0;
        uint64_t count = 0, bcount = 0;
        ballot_metric_type type = 0;
        CHECK(s >= 0);
        OK(ballot_metrics_family(m, f, NULL, NULL, &type, NULL, err_out));
        CHECK(type == BALLOT_METRIC_TYPE_HISTOGRAM);
        OK(ballot_metrics_sample_histogram(m, f, (size_t)s, &buckets, &sum, &count, err_out));
        CHECK(count == 1 && sum >= 0.0 && buckets > 1);
        OK(ballot_metrics_sample_bucket(m, f, (size_t)s, buckets - 1, &le, &bcount, err_out));
        CHECK(isinf(le) && bcount == 1);
        EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_metrics_sample_bucket(m, f, (size_t)s, buckets, &le, &bcount, err_out));
        /* A gauge is not a histogram. */
        EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_metrics_sample_histogram(m, 0, 0, &buckets, &sum, &count, err_out));
    }
    /* Out of range and NULL. */
    {
        size_t n = 0;
        const char *k = NULL, *v = NULL;
        double d = 0;
        size_t families = ballot_metrics_family_count(m);
        EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_metrics_family(m, families, NULL, NULL, NULL, NULL, err_out));
        EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_metrics_sample_label_count(m, 0, 100000, &n, err_out));
        EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_metrics_sample_label(m, 0, 0, 100, &k, &v, err_out));
        EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_metrics_sample_value(m, 0, 0, NULL, err_out));
        EXPECT(BALLOT_RESULT_NULL_PARAMETER, ballot_metrics_sample_value(NULL, 0, 0, &d, err_out));
    }
    ballot_metrics_free(m);
    m = NULL;

    OK(ballot_metrics_prometheus(&text, err_out));
    CHECK(strstr(text, "# TYPE ballot_leader gauge\n") != NULL);
    CHECK(strstr(text, "# TYPE ballot_handoff_wait_seconds histogram\n") != NULL);
    CHECK(strstr(text, name) != NULL);
    CHECK(strstr(text, "secret-value") == NULL);
    ballot_string_free(text);
    ballot_string_free(NULL);

    /* A freed handle's series are gone (its close completes on a library thread). */
    OK(ballot_election_free(e, err_out));
    {
        double until = now_ms() + 10000;
        for (;;) {
            long s;
            OK(ballot_metrics_snapshot(&m, err_out));
            s = sample_of(m, family_index(m, "ballot_leader"), name, NULL);
            ballot_metrics_free(m);
            if (s == -1) break;
            if (now_ms() > until) FAIL("the freed handle's series stayed");
            sleep_ms(10);
        }
    }
    ballot_metrics_free(NULL);
    ballot_client_free(c);
    printf("metrics: %d checks passed\n", checks);
    return 0;
}
