/* Runs N create/campaign/resign/free cycles in one process (argv[2], default
 * 10000) against the backend URL in argv[1], and measures the resident set size
 * (VmRSS) after a warm-up and at the end. Prints one line per checkpoint and
 * "cycles: rss_growth_kib=<K>". Fails if memory grows by more than argv[3] KiB
 * (default 2048) between the warm-up and the end. */
#include "harness.h"

static long rss_kib(void) {
    char line[256];
    long kib = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) FAIL("cannot read /proc/self/status");
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kib = strtol(line + 6, NULL, 10);
    fclose(f);
    if (kib < 0) FAIL("no VmRSS line");
    return kib;
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : NULL;
    long n = argc > 2 ? strtol(argv[2], NULL, 10) : 10000;
    long limit_kib = argc > 3 ? strtol(argv[3], NULL, 10) : 2048;
    long warm = n / 10, i;
    long rss_warm = 0, rss_end;
    char name[128];
    ballot_client *c = NULL;
    double t0;

    if (!url || n < 10) FAIL("usage: cycles BACKEND_URL [N>=10] [LIMIT_KIB]");
    unique_name(name, sizeof name, "cycles");
    OK(ballot_client_connect(url, NULL, &c, err_out));
    t0 = now_ms();
    for (i = 1; i <= n; i++) {
        ballot_election *e = NULL;
        uint64_t term = 0;
        ballot_state st;
        OK(ballot_election_new(c, name, &e, err_out));
        OK(ballot_election_campaign(e, (const uint8_t *)"cycle", 5, 10000, &term, err_out));
        OK(ballot_election_resign(e, err_out));
        OK(ballot_election_state(e, &st, err_out));
        if (st != BALLOT_STATE_IDLE) FAIL("cycle %ld: state %s after resign", i, ballot_state_str(st));
        OK(ballot_election_free(e, err_out));
        if (i == warm) {
            rss_warm = rss_kib();
            printf("cycles: after %ld cycles rss_kib=%ld\n", i, rss_warm);
        }
    }
    rss_end = rss_kib();
    printf("cycles: after %ld cycles rss_kib=%ld (%.3f ms per cycle)\n", n, rss_end, (now_ms() - t0) / n);
    printf("cycles: rss_growth_kib=%ld between cycle %ld and cycle %ld\n", rss_end - rss_warm, warm, n);
    ballot_client_free(c);
    if (rss_end - rss_warm > limit_kib)
        FAIL("memory grew by %ld KiB over %ld cycles (limit %ld KiB)", rss_end - rss_warm, n - warm, limit_kib);
    printf("cycles: %d checks passed\n", checks);
    return 0;
}
