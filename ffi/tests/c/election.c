/* Runs elections through the C ABI against the backend URL in argv[1]: two
 * candidates, handoff, events in order, leader query, proclaim, cancel from
 * another thread, timeout, free with a pending async campaign, end, reentrancy,
 * and use after close. Exits 0 and prints "election: N checks passed" on success. */
#include "harness.h"

#define MAX_EVENTS 64

/* What one event callback saw, filled on the event thread. */
typedef struct recorder {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ballot_event_kind kinds[MAX_EVENTS];
    uint64_t terms[MAX_EVENTS];
    int n;
    int freed;                   /* user_data_free calls */
    pthread_t cb_thread;         /* the thread the callback ran on */
    int cb_threads_differ;       /* the callback ever ran on two threads */
    ballot_election *self;       /* for the reentrancy check */
    ballot_result free_inside;   /* what ballot_election_free gave inside the callback */
    ballot_result free_inside_err; /* the code of the error it stored in err_out */
    ballot_election *replace_e;  /* on the first event, re-register on this election ... */
    struct recorder *replace_with; /* ... with this recorder */
    ballot_result replaced;      /* what that re-registration returned */
} recorder;

static void recorder_init(recorder *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->free_inside = BALLOT_RESULT_OK;
}

static void on_free(void *user_data);

static void on_event(void *user_data, const ballot_event *ev) {
    recorder *r = (recorder *)user_data;
    pthread_mutex_lock(&r->mu);
    if (r->n == 0)
        r->cb_thread = pthread_self();
    else if (!pthread_equal(r->cb_thread, pthread_self()))
        r->cb_threads_differ = 1;
    if (r->n < MAX_EVENTS) {
        r->kinds[r->n] = ev->kind;
        r->terms[r->n] = ev->kind == BALLOT_EVENT_KIND_LEADER_CHANGED && ev->leader
                             ? ballot_leader_term(ev->leader)
                             : ev->term;
        r->n++;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    /* Freeing its own election from inside its callback must be refused. */
    if (ev->kind == BALLOT_EVENT_KIND_ELECTED && r->self) {
        ballot_error *err = NULL;
        r->free_inside = ballot_election_free(r->self, &err);
        r->free_inside_err = err ? ballot_error_result(err) : BALLOT_RESULT_OK;
        ballot_error_free(err);
    }
    /* Replacing its own registration from inside the callback is allowed. */
    if (ev->kind == BALLOT_EVENT_KIND_ELECTED && r->replace_e && r->replace_with) {
        ballot_election *e = r->replace_e;
        r->replace_e = NULL;
        r->replaced = ballot_election_on_event(e, on_event, r->replace_with, on_free, NULL);
    }
}

static void on_free(void *user_data) {
    recorder *r = (recorder *)user_data;
    pthread_mutex_lock(&r->mu);
    r->freed++;
    pthread_mutex_unlock(&r->mu);
}

/* Index of the first event of `kind` at or after `from`, or -1. */
static int find(recorder *r, int from, ballot_event_kind kind) {
    int i, at = -1;
    pthread_mutex_lock(&r->mu);
    for (i = from; i < r->n; i++)
        if (r->kinds[i] == kind) { at = i; break; }
    pthread_mutex_unlock(&r->mu);
    return at;
}

#define wait_event(r, kind, timeout_ms) wait_event_at(r, kind, timeout_ms, __LINE__)

static int wait_event_at(recorder *r, ballot_event_kind kind, long timeout_ms, int line) {
    double until = now_ms() + timeout_ms;
    int at;
    while ((at = find(r, 0, kind)) < 0) {
        if (now_ms() > until) FAIL("line %d: no %s event within %ld ms", line, ballot_event_kind_str(kind), timeout_ms);
        sleep_ms(2);
    }
    return at;
}

/* The completion of ballot_election_campaign_async. */
typedef struct done {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    ballot_result result;
    uint64_t term;
    char message[256];
    ballot_election *self;       /* for the reentrancy check */
    ballot_result free_inside;   /* what ballot_election_free gave inside the callback */
} done;

static void done_init(done *d) {
    memset(d, 0, sizeof *d);
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
}

static void on_done(void *user_data, ballot_result result, uint64_t term, const ballot_error *err) {
    done *d = (done *)user_data;
    pthread_mutex_lock(&d->mu);
    d->calls++;
    d->result = result;
    d->term = term;
    if (err) snprintf(d->message, sizeof d->message, "%s", ballot_error_message(err));
    /* Freeing its own election from its completion callback must be refused. */
    if (d->self) d->free_inside = ballot_election_free(d->self, NULL);
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static void wait_done(done *d, long timeout_ms) {
    double until = now_ms() + timeout_ms;
    for (;;) {
        int calls;
        pthread_mutex_lock(&d->mu);
        calls = d->calls;
        pthread_mutex_unlock(&d->mu);
        if (calls > 0) return;
        if (now_ms() > until) FAIL("the async campaign did not complete within %ld ms", timeout_ms);
        sleep_ms(2);
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
    char name[128], name2[128];
    ballot_client *ca = NULL, *cb = NULL;
    ballot_election *ea = NULL, *eb = NULL, *ec = NULL, *ed = NULL, *ee = NULL;
    recorder ra, rb;
    done db, dd;
    blocked bc;
    pthread_t t;
    uint64_t t1 = 0, t2 = 0, tmp = 0;
    int i;

    if (!url) FAIL("usage: election BACKEND_URL");
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

    recorder_init(&ra);
    recorder_init(&rb);
    rb.self = eb;
    OK(ballot_election_on_event(ea, on_event, &ra, on_free, err_out));
    OK(ballot_election_on_event(eb, on_event, &rb, on_free, err_out));

    /* A wins; B waits asynchronously. */
    OK(ballot_election_campaign(ea, (const uint8_t *)"a", 1, 10000, &t1, err_out));
    CHECK(t1 > 0);
    CHECK(state_of(ea) == BALLOT_STATE_LEADER);
    done_init(&db);
    db.self = eb;
    OK(ballot_election_campaign_async(eb, (const uint8_t *)"b", 1, on_done, &db, err_out));
    wait_state(eb, BALLOT_STATE_CAMPAIGNING, 10000);
    sleep_ms(50);
    CHECK(db.calls == 0);
    expect_leader(eb, "a", t1);
    EXPECT(BALLOT_RESULT_NOT_LEADER, ballot_election_proclaim(eb, (const uint8_t *)"x", 1, err_out));
    EXPECT(BALLOT_RESULT_INVALID_ARGUMENT, ballot_election_campaign(ea, (const uint8_t *)"a", 1, 10, NULL, err_out));

    /* Proclaim changes the value, not the term. */
    OK(ballot_election_proclaim(ea, (const uint8_t *)"a2", 2, err_out));
    expect_leader(eb, "a2", t1);

    /* Handoff: A resigns, B's async campaign completes with a higher term. */
    OK(ballot_election_resign(ea, err_out));
    wait_done(&db, 10000);
    CHECK(db.calls == 1);
    CHECK(db.result == BALLOT_RESULT_OK);
    CHECK(db.free_inside == BALLOT_RESULT_REENTRANT);
    t2 = db.term;
    CHECK(t2 > t1);
    CHECK(state_of(eb) == BALLOT_STATE_LEADER);
    CHECK(state_of(ea) == BALLOT_STATE_IDLE);
    expect_leader(ea, "b", t2);

    /* Events, in order: A elected(t1) then resigned; B elected(t2). */
    wait_event(&rb, BALLOT_EVENT_KIND_ELECTED, 10000);
    {
        int el = wait_event(&ra, BALLOT_EVENT_KIND_ELECTED, 10000);
        int rs = wait_event(&ra, BALLOT_EVENT_KIND_RESIGNED, 10000);
        int prev = 0;
        CHECK(el < rs);
        CHECK(ra.terms[el] == t1);
        CHECK(find(&ra, el + 1, BALLOT_EVENT_KIND_ELECTED) < 0);
        CHECK(rb.terms[find(&rb, 0, BALLOT_EVENT_KIND_ELECTED)] == t2);
        pthread_mutex_lock(&ra.mu);
        /* Every kind seen has its canonical name. */
        CHECK(strcmp(ballot_event_kind_str(ra.kinds[el]), "elected") == 0);
        CHECK(strcmp(ballot_event_kind_str(ra.kinds[rs]), "resigned") == 0);
        for (i = 0; i < ra.n; i++) CHECK(strcmp(ballot_event_kind_str(ra.kinds[i]), "unknown") != 0);
        /* Leader changes never go back in term. */
        for (i = 0; i < ra.n; i++) {
            if (ra.kinds[i] != BALLOT_EVENT_KIND_LEADER_CHANGED || ra.terms[i] == 0) continue;
            CHECK((int)ra.terms[i] >= prev);
            prev = (int)ra.terms[i];
        }
        pthread_mutex_unlock(&ra.mu);
        /* Callbacks ran on one library thread, never this one. */
        CHECK(!ra.cb_threads_differ);
        CHECK(!pthread_equal(ra.cb_thread, pthread_self()));
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
    wait_state(ec, BALLOT_STATE_CAMPAIGNING, 10000);
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
        wait_state(ec, BALLOT_STATE_CAMPAIGNING, 10000);
        OK(ballot_election_cancel(ec, err_out));
        wait_done(&dc, 10000);
        CHECK(dc.calls == 1);
        CHECK(dc.result == BALLOT_RESULT_CANCELLED);
        CHECK(dc.term == 0);
        CHECK(strstr(dc.message, "cancelled") != NULL);
        wait_state(ec, BALLOT_STATE_IDLE, 10000);
    }

    /* A timeout withdraws the candidate. */
    {
        double t0 = now_ms();
        EXPECT(BALLOT_RESULT_TIMEOUT, ballot_election_campaign(ec, (const uint8_t *)"c", 1, 200, &tmp, err_out));
        CHECK(now_ms() - t0 >= 190);
        CHECK(state_of(ec) == BALLOT_STATE_IDLE);
    }

    /* Freeing a handle with a pending async campaign completes it with CANCELLED
     * before the free returns. */
    OK(ballot_election_new(ca, name, &ed, err_out));
    done_init(&dd);
    OK(ballot_election_campaign_async(ed, (const uint8_t *)"d", 1, on_done, &dd, err_out));
    wait_state(ed, BALLOT_STATE_CAMPAIGNING, 10000);
    OK(ballot_election_free(ed, err_out));
    CHECK(dd.calls == 1);
    CHECK(dd.result == BALLOT_RESULT_CANCELLED);

    /* End: every participant gets ENDED. */
    OK(ballot_election_end(ea, err_out));
    wait_event(&rb, BALLOT_EVENT_KIND_ENDED, 10000);
    wait_state(eb, BALLOT_STATE_ENDED, 10000);
    CHECK(state_of(ea) == BALLOT_STATE_ENDED);
    EXPECT(BALLOT_RESULT_ENDED, ballot_election_proclaim(eb, (const uint8_t *)"x", 1, err_out));
    EXPECT(BALLOT_RESULT_ENDED, ballot_election_campaign(ea, (const uint8_t *)"a", 1, 100, NULL, err_out));
    OK(ballot_election_end(ea, err_out));

    /* Terms keep increasing when the name is used again. */
    OK(ballot_election_new(cb, name, &ee, err_out));
    OK(ballot_election_campaign(ee, (const uint8_t *)"e", 1, 10000, &tmp, err_out));
    CHECK(tmp > t2);
    OK(ballot_election_free(ee, err_out));

    /* Freeing calls each user_data_free exactly once, after the last callback. */
    OK(ballot_election_free(ea, err_out));
    OK(ballot_election_free(eb, err_out));
    CHECK(ra.freed == 1);
    CHECK(rb.freed == 1);

    /* A callback that replaces its own registration: the old user_data is freed
     * once, after its last call; the new registration gets the events that follow. */
    {
        recorder r1, r2;
        ballot_election *ef = NULL;
        recorder_init(&r1);
        recorder_init(&r2);
        OK(ballot_election_new(ca, name2, &ef, err_out));
        r1.replace_e = ef;
        r1.replace_with = &r2;
        OK(ballot_election_on_event(ef, on_event, &r1, on_free, err_out));
        OK(ballot_election_campaign(ef, (const uint8_t *)"f", 1, 10000, NULL, err_out));
        wait_event(&r1, BALLOT_EVENT_KIND_ELECTED, 10000);
        /* The old user_data is released right after the replacing call returns. */
        {
            double until = now_ms() + 10000;
            int freed = 0;
            while (!freed) {
                pthread_mutex_lock(&r1.mu);
                freed = r1.freed;
                pthread_mutex_unlock(&r1.mu);
                if (!freed && now_ms() > until) FAIL("the replaced registration's user_data was not freed");
                if (!freed) sleep_ms(2);
            }
        }
        OK(ballot_election_resign(ef, err_out));
        wait_event(&r2, BALLOT_EVENT_KIND_RESIGNED, 10000);
        CHECK(r1.replaced == BALLOT_RESULT_OK);
        CHECK(find(&r1, 0, BALLOT_EVENT_KIND_RESIGNED) < 0);
        OK(ballot_election_free(ef, err_out));
        CHECK(r1.freed == 1);
        CHECK(r2.freed == 1);
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
