/* The scenario every language runs (Python test_table.py, Node table.test.js):
 * campaign, a successor waits, resign, end. The set of event names that the two
 * handles report, by ballot_event_kind_str(), must be exactly {elected,
 * leader_changed, resigned, ended}, and each handle's last event is ended.
 *
 *     scenario BACKEND_URL [LIMIT_MS]
 *
 * Exits 0 and prints "scenario: NAMES" and "scenario: N checks passed". */
#include "harness.h"

static const char *const WANT[] = {"elected", "leader_changed", "resigned", "ended"};
#define N_WANT (sizeof WANT / sizeof WANT[0])

/* Adds the names of `r`'s events to `seen` (a set of at most 16 names). */
static void collect(recorder *r, const char **seen, int *n_seen) {
    int i, j;
    pthread_mutex_lock(&r->mu);
    for (i = 0; i < r->n; i++) {
        const char *name = ballot_event_kind_str(r->kinds[i]);
        for (j = 0; j < *n_seen && strcmp(seen[j], name) != 0; j++) {
        }
        if (j == *n_seen && *n_seen < 16) seen[(*n_seen)++] = name;
    }
    pthread_mutex_unlock(&r->mu);
}

static ballot_event_kind last_kind(recorder *r) {
    ballot_event_kind k;
    pthread_mutex_lock(&r->mu);
    k = r->n > 0 ? r->kinds[r->n - 1] : 0;
    pthread_mutex_unlock(&r->mu);
    return k;
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : NULL;
    long limit = limit_ms_arg(argc, argv);
    char name[128];
    ballot_client *ca = NULL, *cb = NULL;
    ballot_election *a = NULL, *b = NULL;
    recorder ra, rb;
    done db;
    const char *seen[16];
    int n_seen = 0, i;
    size_t w;

    if (!url) FAIL("usage: scenario BACKEND_URL [LIMIT_MS]");
    unique_name(name, sizeof name, "scenario");
    OK(ballot_client_connect(url, NULL, &ca, err_out));
    OK(ballot_client_connect(url, NULL, &cb, err_out));
    OK(ballot_election_new(ca, name, &a, err_out));
    OK(ballot_election_new(cb, name, &b, err_out));
    recorder_init(&ra);
    recorder_init(&rb);
    OK(ballot_election_on_event(a, recorder_on_event, &ra, recorder_on_free, err_out));
    OK(ballot_election_on_event(b, recorder_on_event, &rb, recorder_on_free, err_out));

    /* Campaign: a wins, and its watch names it. */
    OK(ballot_election_campaign(a, (const uint8_t *)"a", 1, limit, NULL, err_out));
    wait_leader_changed(&ra, "a", limit);

    /* A successor waits. */
    done_init(&db);
    OK(ballot_election_campaign_async(b, (const uint8_t *)"b", 1, on_done, &db, err_out));
    wait_state(b, BALLOT_STATE_CAMPAIGNING, limit);

    /* Resign: b takes over. */
    OK(ballot_election_resign(a, err_out));
    wait_done(&db, limit);
    CHECK(db.result == BALLOT_RESULT_OK);
    wait_leader_changed(&rb, "b", limit);

    /* End: both handles hear it. */
    OK(ballot_election_end(b, err_out));
    wait_event(&ra, BALLOT_EVENT_KIND_ENDED, limit);
    wait_event(&rb, BALLOT_EVENT_KIND_ENDED, limit);
    CHECK(last_kind(&ra) == BALLOT_EVENT_KIND_ENDED);
    CHECK(last_kind(&rb) == BALLOT_EVENT_KIND_ENDED);

    collect(&ra, seen, &n_seen);
    collect(&rb, seen, &n_seen);
    printf("scenario:");
    for (i = 0; i < n_seen; i++) printf(" %s", seen[i]);
    printf("\n");
    CHECK(n_seen == (int)N_WANT);
    for (w = 0; w < N_WANT; w++) {
        int found = 0;
        for (i = 0; i < n_seen; i++) found |= strcmp(seen[i], WANT[w]) == 0;
        if (!found) FAIL("no %s event among the names seen", WANT[w]);
    }

    OK(ballot_election_free(a, err_out));
    OK(ballot_election_free(b, err_out));
    CHECK(recorder_freed(&ra) == 1 && recorder_freed(&rb) == 1);
    ballot_client_free(ca);
    ballot_client_free(cb);
    pthread_mutex_destroy(&ra.mu);
    pthread_mutex_destroy(&rb.mu);
    pthread_mutex_destroy(&db.mu);
    printf("scenario: %d checks passed\n", checks);
    return 0;
}
