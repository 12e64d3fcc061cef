/* Runs elections through the C ABI against the backend URL in argv[1]: two
 * candidates, handoff, events in order, leader query, proclaim, cancel from
 * another thread, timeout, free with a pending async campaign, end, reentrancy,
 * and use after close. Exits 0 and prints "election: N checks passed" on success. */
#include "harness.h"

/* The harness's recorder, plus the reentrancy checks this program makes from
 * inside the callback. `rec` comes first, so a probe's address is its recorder's. */
typedef struct probe {
    recorder rec;
    ballot_election *self;         /* for the reentrancy check */
    ballot_result free_inside;     /* what ballot_election_free gave inside the callback */
    ballot_result free_inside_err; /* the code of the error it stored in err_out */
    ballot_election *replace_e;    /* on the first event, re-register on this election ... */
    struct probe *replace_with;    /* ... with this probe */
    ballot_result replaced;        /* what that re-registration returned */
} probe;

static void probe_init(probe *p) {
    memset(p, 0, sizeof *p);
    recorder_init(&p->rec);
    p->free_inside = BALLOT_RESULT_OK;
}

static void on_event(void *user_data, const ballot_event *ev) {
    probe *r = (probe *)user_data;
    /* Freeing its own election from inside its callback must be refused. The event
     * is recorded after that attempt: the main thread reads free_inside once it sees
     * the event (under the recorder's lock), so it must be set by then. */
    if (ev->kind == BALLOT_EVENT_KIND_ELECTED && r->self) {
        ballot_error *err = NULL;
        r->free_inside = ballot_election_free(r->self, &err);
        r->free_inside_err = err ? ballot_error_result(err) : BALLOT_RESULT_OK;
        ballot_error_free(err);
    }
    recorder_record(&r->rec, ev);
    /* Replacing its own registration from inside the callback is allowed. */
    if (ev->kind == BALLOT_EVENT_KIND_ELECTED && r->replace_e && r->replace_with) {
        ballot_election *e = r->replace_e;
        r->replace_e = NULL;
        r->replaced = ballot_election_on_event(e, on_event, r->replace_with, recorder_on_free, NULL);
    }
}

/* A blocking campaign on another thread, for the cancellation check. */
typedef struct blocked {
    ballot_election *e;
    ballot_result result;
} blocked;

static void *campaign_thread(void *arg) {
    blocked *b = (blocked *)arg;
    b->result = ballot_election_campaign(b->e, (const uint8_t *)"c", 1, -1, NULL, NULL);
    return NULL;
}

static void expect_leader(ballot_election *e, const char *value, uint64_t term) {
    ballot_leader *l = NULL;
    const uint8_t *v = NULL;
    size_t len = 0;
    OK(ballot_election_leader(e, &l, err_out));
    ballot_leader_value(l, &v, &len);
    CHECK(len == strlen(value) && memcmp(v, value, len) == 0);
    CHECK(ballot_leader_term(l) == term);
    CHECK(ballot_leader_key(l) != NULL && strlen(ballot_leader_key(l)) > 0);
    ballot_leader_free(l);
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : NULL;
    long limit = limit_ms_arg(argc, argv);
    char name[128], name2[128];
    ballot_client *ca = NULL, *cb = NULL;
    ballot_election *ea = NULL, *eb = NULL, *ec = NULL, *ed = NULL, *ee = NULL;
    probe ra, rb;
    done db, dd;
    blocked bc;
    pthread_t t;
    uint64_t t1 = 0, t2 = 0, tmp = 0;
    int i;

    if (!url) FAIL("usage: election BACKEND_URL [LIMIT_MS]");
    CHECK(strcmp(ballot_version(), BALLOT_VERSION) == 0);
    unique_name(name, sizeof name, "svc");
    unique_name(name2, sizeof name2, "svc2");

    /* Two clients: two sessions, two candidates. */
    OK(ballot_client_connect(url, NULL, &ca, err_out));
    OK(ballot_client_connect(url, NULL, &cb, err_out));
    OK(ballot_election_new(ca, name, &ea, err_out));
    OK(ballot_election_new(cb, name, &eb, err_out));
    CHECK(state_of(ea) == BALLOT_STATE_IDLE);
    EXPECT(BALLOT_RESULT_NO_LEADER, ballot_election_leader(ea, &(ballot_leader *){NULL}, err_out));

    probe_init(&ra);
    probe_init(&rb);
    rb.self = eb;
    OK(ballot_election_on_event(ea, on_event, &ra, recorder_on_free, err_out));
    OK(ballot_election_on_event(eb, on_event, &rb, recorder_on_free, err_out));

    /* A wins; B waits asynchronously. */
    OK(ballot_election_campaign(ea, (const uint8_t *)"a", 1, limit, &t1, err_out));
    CHECK(t1 > 0);
    CHECK(state_of(ea) == BALLOT_STATE_LEADER);
    done_init(&db);
    db.self = eb;
    OK(ballot_election_campaign_async(eb, (const uint8_t *)"b", 1, on_done, &db, err_out));
    wait_state(eb, BALLOT_STATE_CAMPAIGNING, limit);
    CHECK(done_calls(&db) == 0);
    expect_leader(eb, "a", t1);
    EXPECT(BALLOT_RESULT_NOT_LEADER, ballot_election_proclaim(eb, (const uint8_t *)"x", 1, err_out));
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_election_campaign(ea, (const uint8_t *)"a", 1, 10, NULL, err_out));

    /* Proclaim changes the value, not the term. */
    OK(ballot_election_proclaim(ea, (const uint8_t *)"a2", 2, err_out));
    expect_leader(eb, "a2", t1);

    /* Handoff: A resigns, B's async campaign completes with a higher term. */
    OK(ballot_election_resign(ea, err_out));
    wait_done(&db, limit);
    CHECK(db.calls == 1);
    CHECK(db.result == BALLOT_RESULT_OK);
    CHECK(db.free_inside == BALLOT_RESULT_REENTRANT);
    t2 = db.term;
    CHECK(t2 > t1);
    CHECK(state_of(eb) == BALLOT_STATE_LEADER);
    CHECK(state_of(ea) == BALLOT_STATE_IDLE);
    expect_leader(ea, "b", t2);

    /* Events, in order: A elected(t1) then resigned; B elected(t2). */
    wait_event(&rb.rec, BALLOT_EVENT_KIND_ELECTED, limit);
    {
        int el = wait_event(&ra.rec, BALLOT_EVENT_KIND_ELECTED, limit);
        int rs = wait_event(&ra.rec, BALLOT_EVENT_KIND_RESIGNED, limit);
        int prev = 0;
        CHECK(el < rs);
        CHECK(ra.rec.terms[el] == t1);
        CHECK(recorder_find(&ra.rec, el + 1, BALLOT_EVENT_KIND_ELECTED) < 0);
        CHECK(rb.rec.terms[recorder_find(&rb.rec, 0, BALLOT_EVENT_KIND_ELECTED)] == t2);
        pthread_mutex_lock(&ra.rec.mu);
        /* Every kind seen has its canonical name. */
        CHECK(strcmp(ballot_event_kind_str(ra.rec.kinds[el]), "elected") == 0);
        CHECK(strcmp(ballot_event_kind_str(ra.rec.kinds[rs]), "resigned") == 0);
        for (i = 0; i < ra.rec.n; i++) CHECK(strcmp(ballot_event_kind_str(ra.rec.kinds[i]), "unknown") != 0);
        /* Leader changes never go back in term. */
        for (i = 0; i < ra.rec.n; i++) {
            if (ra.rec.kinds[i] != BALLOT_EVENT_KIND_LEADER_CHANGED || ra.rec.terms[i] == 0) continue;
            CHECK((int)ra.rec.terms[i] >= prev);
            prev = (int)ra.rec.terms[i];
        }
        pthread_mutex_unlock(&ra.rec.mu);
        /* Callbacks ran on one library thread, never this one. */
        CHECK(!ra.rec.cb_threads_differ);
        CHECK(!pthread_equal(ra.rec.cb_thread, pthread_self()));
    }
    /* _free from inside its own callback was refused, with the error in err_out,
     * and the handle still works. */
    CHECK(rb.free_inside == BALLOT_RESULT_REENTRANT);
    CHECK(rb.free_inside_err == BALLOT_RESULT_REENTRANT);
    CHECK(state_of(eb) == BALLOT_STATE_LEADER);

    /* Cancel a blocking campaign from another thread. */
    OK(ballot_election_new(ca, name, &ec, err_out));
    bc.e = ec;
    bc.result = BALLOT_RESULT_OK;
    CHECK(pthread_create(&t, NULL, campaign_thread, &bc) == 0);
    wait_state(ec, BALLOT_STATE_CAMPAIGNING, limit);
    OK(ballot_election_cancel(ec, err_out));
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(bc.result == BALLOT_RESULT_CANCELLED);
    CHECK(state_of(ec) == BALLOT_STATE_IDLE);
    expect_leader(ec, "b", t2);

    /* Cancel an asynchronous campaign from this thread: its callback gets CANCELLED. */
    {
        done dc;
        done_init(&dc);
        OK(ballot_election_campaign_async(ec, (const uint8_t *)"c", 1, on_done, &dc, err_out));
        wait_state(ec, BALLOT_STATE_CAMPAIGNING, limit);
        OK(ballot_election_cancel(ec, err_out));
        wait_done(&dc, limit);
        CHECK(dc.calls == 1);
        CHECK(dc.result == BALLOT_RESULT_CANCELLED);
        CHECK(dc.term == 0);
        CHECK(strstr(dc.message, "cancelled") != NULL);
        wait_state(ec, BALLOT_STATE_IDLE, limit);
    }

    /* A timeout withdraws the candidate. */
    EXPECT(BALLOT_RESULT_TIMEOUT, ballot_election_campaign(ec, (const uint8_t *)"c", 1, 200, &tmp, err_out));
    CHECK(state_of(ec) == BALLOT_STATE_IDLE);
    expect_leader(ec, "b", t2);

    /* Freeing a handle with a pending async campaign completes it with CANCELLED
     * before the free returns. */
    OK(ballot_election_new(ca, name, &ed, err_out));
    done_init(&dd);
    OK(ballot_election_campaign_async(ed, (const uint8_t *)"d", 1, on_done, &dd, err_out));
    wait_state(ed, BALLOT_STATE_CAMPAIGNING, limit);
    OK(ballot_election_free(ed, err_out));
    CHECK(dd.calls == 1);
    CHECK(dd.result == BALLOT_RESULT_CANCELLED);

    /* End: every participant gets ENDED. */
    OK(ballot_election_end(ea, err_out));
    wait_event(&rb.rec, BALLOT_EVENT_KIND_ENDED, limit);
    wait_state(eb, BALLOT_STATE_ENDED, limit);
    CHECK(state_of(ea) == BALLOT_STATE_ENDED);
    EXPECT(BALLOT_RESULT_ENDED, ballot_election_proclaim(eb, (const uint8_t *)"x", 1, err_out));
    EXPECT(BALLOT_RESULT_ENDED, ballot_election_campaign(ea, (const uint8_t *)"a", 1, 100, NULL, err_out));
    OK(ballot_election_end(ea, err_out));

    /* Terms keep increasing when the name is used again. */
    OK(ballot_election_new(cb, name, &ee, err_out));
    OK(ballot_election_campaign(ee, (const uint8_t *)"e", 1, limit, &tmp, err_out));
    CHECK(tmp > t2);
    OK(ballot_election_free(ee, err_out));

    /* Freeing calls each user_data_free exactly once, after the last callback. */
    OK(ballot_election_free(ea, err_out));
    OK(ballot_election_free(eb, err_out));
    CHECK(recorder_freed(&ra.rec) == 1);
    CHECK(recorder_freed(&rb.rec) == 1);

    /* A callback that replaces its own registration: the old user_data is freed
     * once, after its last call; the new registration gets the events that follow. */
    {
        probe r1, r2;
        ballot_election *ef = NULL;
        probe_init(&r1);
        probe_init(&r2);
        OK(ballot_election_new(ca, name2, &ef, err_out));
        r1.replace_e = ef;
        r1.replace_with = &r2;
        OK(ballot_election_on_event(ef, on_event, &r1, recorder_on_free, err_out));
        OK(ballot_election_campaign(ef, (const uint8_t *)"f", 1, limit, NULL, err_out));
        wait_event(&r1.rec, BALLOT_EVENT_KIND_ELECTED, limit);
        /* The old user_data is released right after the replacing call returns. */
        {
            double until = now_ms() + limit;
            while (!recorder_freed(&r1.rec)) {
                if (now_ms() > until) FAIL("the replaced registration's user_data was not freed");
                sleep_ms(2);
            }
        }
        OK(ballot_election_resign(ef, err_out));
        wait_event(&r2.rec, BALLOT_EVENT_KIND_RESIGNED, limit);
        CHECK(r1.replaced == BALLOT_RESULT_OK);
        CHECK(recorder_find(&r1.rec, 0, BALLOT_EVENT_KIND_RESIGNED) < 0);
        OK(ballot_election_free(ef, err_out));
        CHECK(recorder_freed(&r1.rec) == 1);
        CHECK(recorder_freed(&r2.rec) == 1);
    }

    /* Use after close: the handles stay valid and say CLOSED. */
    OK(ballot_election_new(ca, name2, &ea, err_out));
    OK(ballot_client_close(ca, err_out));
    OK(ballot_client_close(ca, err_out));
    CHECK(state_of(ea) == BALLOT_STATE_CLOSED);
    CHECK(state_of(ec) == BALLOT_STATE_CLOSED);
    EXPECT(BALLOT_RESULT_CLOSED, ballot_election_campaign(ea, (const uint8_t *)"a", 1, 100, NULL, err_out));
    EXPECT(BALLOT_RESULT_CLOSED, ballot_election_leader(ea, &(ballot_leader *){NULL}, err_out));
    EXPECT(BALLOT_RESULT_CLOSED, ballot_election_new(ca, name2, &ed, err_out));
    OK(ballot_election_free(ea, err_out));
    OK(ballot_election_free(ec, err_out));
    ballot_client_free(ca);
    ballot_client_free(cb);

    printf("election: %d checks passed\n", checks);
    return 0;
}
