/* A leader election from C: campaign, lead, proclaim, read the leader, resign.
 *
 *   cc examples/c/election.c $(pkg-config --cflags --libs ballot) -o election-c
 *   ./election-c [BACKEND_URL]     (default: $BALLOT_BACKEND, else the local backend)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ballot.h>

/* Runs on a libballot thread, one event at a time, in order. */
static void on_event(void *user_data, const ballot_event *ev) {
    const char *who = (const char *)user_data;
    switch (ev->kind) {
    case BALLOT_EVENT_KIND_ELECTED: printf("[%s] event: elected, term %llu\n", who, (unsigned long long)ev->term); break;
    case BALLOT_EVENT_KIND_SUSPENDED: printf("[%s] event: suspended: stop acting as leader\n", who); break;
    case BALLOT_EVENT_KIND_LEADER_CHANGED: break;
    default: printf("[%s] event: %s\n", who, ballot_event_kind_str(ev->kind)); break;
    }
}

static int fail(const char *what, ballot_error *err) {
    fprintf(stderr, "%s: %s\n", what, ballot_error_message(err));
    ballot_error_free(err);
    return 1;
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : getenv("BALLOT_BACKEND");
    char local[512];
    ballot_options *options = NULL;
    ballot_client *client = NULL;
    ballot_election *election = NULL;
    ballot_leader *leader = NULL;
    ballot_error *err = NULL;
    uint64_t term = 0;
    const uint8_t *value;
    size_t len;

    if (!url) {
        const char *tmp = getenv("TMPDIR");
        snprintf(local, sizeof local, "file://%s/ballot", tmp ? tmp : "/tmp");
        url = local;
    }
    printf("libballot %s, backend %s\n", ballot_version(), url);
    /* Options may also come from the URL (?ttl=10s); the two must then agree. */
    if (ballot_options_new(&options, &err) != BALLOT_RESULT_OK ||
        ballot_options_set_ttl(options, 10000, &err) != BALLOT_RESULT_OK)
        return fail("options", err);
    if (ballot_client_connect(url, options, &client, &err) != BALLOT_RESULT_OK) return fail("connect", err);
    ballot_options_free(options); /* the client keeps what it needs */
    if (ballot_election_new(client, "example/c", &election, &err) != BALLOT_RESULT_OK) return fail("election", err);
    ballot_election_on_event(election, on_event, (void *)"c", NULL, NULL);

    /* Wait at most 10 s to win. */
    if (ballot_election_campaign(election, (const uint8_t *)"node-1", 6, 10000, &term, &err) != BALLOT_RESULT_OK)
        return fail("campaign", err);
    printf("elected with term %llu\n", (unsigned long long)term);

    if (ballot_election_proclaim(election, (const uint8_t *)"node-1 v2", 9, &err) != BALLOT_RESULT_OK)
        return fail("proclaim", err);
    if (ballot_election_leader(election, &leader, &err) != BALLOT_RESULT_OK) return fail("leader", err);
    ballot_leader_value(leader, &value, &len);
    printf("leader: value \"%.*s\", term %llu\n", (int)len, (const char *)value,
           (unsigned long long)ballot_leader_term(leader));
    ballot_leader_free(leader);

    if (ballot_election_resign(election, &err) != BALLOT_RESULT_OK) return fail("resign", err);
    ballot_election_free(election, NULL); /* waits for a running callback */
    ballot_client_free(client);
    printf("resigned; done\n");
    return 0;
}
