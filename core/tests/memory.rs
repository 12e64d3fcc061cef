//! The engine on the in-process backend (`memory://`), under tokio's paused time.
//!
//! Each test lends its current-thread runtime to the library
//! (`ballot::memory::use_current_runtime`), so the engine's tasks and timers run
//! on the paused clock: nothing here sleeps for real, and a wait for something
//! that never comes fails at once on its (virtual) liveness bound instead of
//! hanging. Each test uses its own store name, so tests running in parallel in
//! this process do not meet.
//!
//! These are also the examples of a user's own test: elect, hand off, end, and a
//! session that expires.

use std::time::Duration;

use ballot::{Client, Election, ErrorKind, Event, Events, LostReason, Options, State};

/// A liveness bound. Paused time makes it free; it only turns a hang into a
/// failure.
const LIVE: Duration = Duration::from_secs(3600);

async fn live<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIVE, f).await.unwrap_or_else(|_| panic!("{what}: never happened (paused time)"))
}

async fn connect(url: &str) -> Client {
    Client::connect(url, Options::default()).await.unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// Reads events until one matches `want`; returns the ones read, the match last.
async fn until(events: &mut Events, what: &str, want: impl Fn(&Event) -> bool) -> Vec<Event> {
    live(what, async {
        let mut seen = Vec::new();
        loop {
            match events.recv().await {
                Some(ev) => {
                    let done = want(&ev);
                    seen.push(ev);
                    if done {
                        return seen;
                    }
                }
                None => panic!("{what}: the event stream ended first: {seen:?}"),
            }
        }
    })
    .await
}

/// The campaign of `e` with `value`, running in the background.
fn campaign(e: &Election, value: &'static str) -> tokio::task::JoinHandle<ballot::Result<ballot::Leadership>> {
    let e = e.clone();
    tokio::spawn(async move { e.campaign(value).await })
}

/// Lets every ready task run, ballot's included (they share this thread).
async fn settle() {
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn elected_then_a_successor_takes_over_after_resign() {
    let _rt = ballot::memory::use_current_runtime().unwrap();
    let (a, b) = (connect("memory://handoff").await, connect("memory://handoff").await);
    let (ea, eb) = (a.election("svc").unwrap(), b.election("svc").unwrap());
    let (mut a_events, mut b_events) = (ea.events(), eb.events());

    let first = live("a elected", ea.campaign("a")).await.unwrap();
    assert_eq!((ea.state(), first.term(), first.value()), (State::Leader, 1, &b"a"[..]));
    let waiting = campaign(&eb, "b");
    settle().await;
    assert!(!waiting.is_finished(), "b waits while a leads");
    assert_eq!(eb.state(), State::Campaigning);

    ea.resign().await.unwrap();
    let second = live("b elected", waiting).await.unwrap().unwrap();
    assert_eq!((eb.state(), ea.state(), second.term()), (State::Leader, State::Idle, 2));
    until(&mut a_events, "a resigned", |e| matches!(e, Event::Resigned)).await;
    until(&mut b_events, "b elected", |e| matches!(e, Event::Elected { term: 2 })).await;
    let l = a.election("svc").unwrap().leader().await.unwrap().expect("b leads");
    assert_eq!((l.value.as_slice(), l.term, l.key.as_str()), (&b"b"[..], 2, second.key()));
}

#[tokio::test(start_paused = true)]
async fn an_expired_session_gives_lost_and_the_next_candidate_wins() {
    let _rt = ballot::memory::use_current_runtime().unwrap();
    let url = "memory://expiry";
    let (a, b, c) = (connect(url).await, connect(url).await, connect(url).await);
    let (ea, eb, ec) = (a.election("svc").unwrap(), b.election("svc").unwrap(), c.election("svc").unwrap());
    let mut a_events = ea.events();
    let first = ea.campaign("a").await.unwrap();
    let (wb, wc) = (campaign(&eb, "b"), campaign(&ec, "c"));
    settle().await;

    ballot::memory::expire_session(&a).unwrap();
    // The next in the queue wins (FIFO: b joined before c), with the next term.
    let second = live("b elected", wb).await.unwrap().unwrap();
    assert_eq!((second.value(), second.term()), (&b"b"[..], first.term() + 1));
    let lost = until(&mut a_events, "a lost", |e| matches!(e, Event::Lost { .. })).await;
    assert!(matches!(lost.last(), Some(Event::Lost { reason: LostReason::SessionLost })), "{lost:?}");
    assert!(!first.is_current());
    // With auto-requeue (the default) a campaigns again, under its new session,
    // behind c.
    eb.resign().await.unwrap();
    assert_eq!(live("c elected", wc).await.unwrap().unwrap().term(), 3);
    ec.resign().await.unwrap();
    until(&mut a_events, "a elected again", |e| matches!(e, Event::Elected { term: 4 })).await;
    assert_eq!(ea.state(), State::Leader);
}

/// The safety rule on memory://: from the moment the session expires, the old
/// leader's handle does not read `Leader`, though its successor may already lead
/// and its own `Lost` is still on the way.
#[tokio::test(start_paused = true)]
async fn an_expired_leader_stops_reading_leader_at_once() {
    let _rt = ballot::memory::use_current_runtime().unwrap();
    let (a, b) = (connect("memory://at-once").await, connect("memory://at-once").await);
    let (ea, eb) = (a.election("svc").unwrap(), b.election("svc").unwrap());
    let lead = ea.campaign("a").await.unwrap();
    let waiting = campaign(&eb, "b");
    settle().await;
    // No await between the expiry and the checks: ballot's tasks (on this thread)
    // have not run yet.
    ballot::memory::expire_session(&a).unwrap();
    assert_ne!(ea.state(), State::Leader, "a expired leader reads Leader");
    assert!(!lead.is_current(), "an expired leadership is current");
    assert_eq!(ea.proclaim("a2").await.unwrap_err().kind(), ErrorKind::NotLeader);
    live("b elected", waiting).await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn end_ends_everyone() {
    let _rt = ballot::memory::use_current_runtime().unwrap();
    let url = "memory://end";
    let (a, b, o) = (connect(url).await, connect(url).await, connect(url).await);
    let (ea, eb, eo) = (a.election("svc").unwrap(), b.election("svc").unwrap(), o.election("svc").unwrap());
    let (mut a_events, mut o_events) = (ea.events(), eo.events());
    let first = ea.campaign("a").await.unwrap();
    let waiting = campaign(&eb, "b");
    settle().await;

    eo.end().await.unwrap();
    assert_eq!(live("b's campaign", waiting).await.unwrap().unwrap_err().kind(), ErrorKind::Ended);
    until(&mut a_events, "a ended", |e| matches!(e, Event::Ended)).await;
    until(&mut o_events, "observer ended", |e| matches!(e, Event::Ended)).await;
    assert_eq!((ea.state(), eb.state(), eo.state()), (State::Ended, State::Ended, State::Ended));
    assert!(!first.is_current());
    assert_eq!(ea.campaign("again").await.unwrap_err().kind(), ErrorKind::Ended);
    // The name is free again for new handles, and terms go on.
    let fresh = connect(url).await.election("svc").unwrap();
    assert_eq!(fresh.leader().await.unwrap(), None);
    assert!(fresh.campaign("c").await.unwrap().term() > first.term());
}

#[tokio::test(start_paused = true)]
async fn suspend_and_resume_give_suspended_and_reconnected() {
    let _rt = ballot::memory::use_current_runtime().unwrap();
    let (a, b) = (connect("memory://suspend").await, connect("memory://suspend").await);
    let (ea, eb) = (a.election("svc").unwrap(), b.election("svc").unwrap());
    let mut events = ea.events();
    let lead = ea.campaign("a").await.unwrap();
    let waiting = campaign(&eb, "b");

    ballot::memory::suspend_session(&a).unwrap();
    assert_eq!(ea.state(), State::Suspended);
    until(&mut events, "suspended", |e| matches!(e, Event::Suspended)).await;
    assert_eq!(ea.proclaim("x").await.unwrap_err().kind(), ErrorKind::NotLeader);
    // The session lives on: nobody else wins meanwhile, however long it lasts.
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(!waiting.is_finished(), "b won while a's session was alive");

    ballot::memory::resume_session(&a).unwrap();
    until(&mut events, "reconnected", |e| matches!(e, Event::Reconnected)).await;
    assert!(lead.is_current());
    ea.proclaim("a2").await.unwrap();

    // Suspended, then expired: the leadership is lost and b wins.
    ballot::memory::suspend_session(&a).unwrap();
    ballot::memory::expire_session(&a).unwrap();
    let lost = until(&mut events, "lost", |e| matches!(e, Event::Lost { .. })).await;
    assert!(matches!(lost.last(), Some(Event::Lost { reason: LostReason::SessionLost })), "{lost:?}");
    live("b elected", waiting).await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn without_auto_requeue_an_expired_session_fails_the_waiting_campaign() {
    let _rt = ballot::memory::use_current_runtime().unwrap();
    let url = "memory://no-requeue";
    let a = connect(url).await;
    let b = Client::connect(url, Options::default().with_auto_requeue(false)).await.unwrap();
    let (ea, eb) = (a.election("svc").unwrap(), b.election("svc").unwrap());
    ea.campaign("a").await.unwrap();
    let waiting = campaign(&eb, "b");
    settle().await;
    ballot::memory::expire_session(&b).unwrap();
    assert_eq!(live("b's campaign", waiting).await.unwrap().unwrap_err().kind(), ErrorKind::SessionLost);
    assert_eq!(eb.state(), State::Idle);
    // b's next session campaigns normally.
    let waiting = campaign(&eb, "b2");
    settle().await;
    ea.resign().await.unwrap();
    assert_eq!(live("b elected", waiting).await.unwrap().unwrap().value(), b"b2");
}

#[tokio::test(start_paused = true)]
async fn names_and_namespaces_choose_the_election() {
    let _rt = ballot::memory::use_current_runtime().unwrap();
    let one = connect("memory://names-one").await;
    let same = connect("memory://names-one").await;
    let other = connect("memory://names-two").await;
    let nested = connect("memory://names-one/team").await;
    let e = one.election("team/svc").unwrap();
    let lead = e.campaign("x").await.unwrap();
    let read = |c: &Client, name: &str| c.election(name).unwrap();
    assert_eq!(read(&same, "team/svc").leader().await.unwrap().map(|l| l.term), Some(lead.term()));
    // The URL's path is a namespace, as on the other backends.
    assert_eq!(read(&nested, "svc").leader().await.unwrap().map(|l| l.term), Some(lead.term()));
    // Another name is another store.
    assert_eq!(read(&other, "team/svc").leader().await.unwrap(), None);
    assert_eq!(read(&one, "svc").leader().await.unwrap(), None);
    assert_eq!(one.max_value_len(), 1 << 20);
    assert_eq!(nested.url(), "memory://names-one/team");
}

#[tokio::test]
async fn urls_that_make_no_sense_here_are_invalid_argument() {
    for (url, needle) in [
        ("memory://", "no name"),
        ("memory://x:1234", "no port"),
        ("memory://a,b", "several"),
        ("memory://alice:s3cret@x", "no user"),
        ("memory://t0ken@x", "no user"),
        ("memory://x?ttl=5s", "\"ttl\""),
        ("memory://x?margin=1s", "\"margin\""),
        ("memory://x?lock_delay=0s", "unknown option"),
        ("memory://x?session_timeout=6s", "unknown option"),
        ("memory://x?tls=1", "unknown option"),
        ("memory://x/../y", "namespace"),
    ] {
        let err = Client::connect(url, Options::default()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{url}: {err}");
        assert!(err.to_string().contains(needle), "{url}: {err}");
        assert!(!err.to_string().contains("s3cret") && !err.to_string().contains("t0ken"), "{err}");
    }
    // The option that makes sense (connect is immediate) is taken.
    connect("memory://x?connect_timeout=1s").await.close().await.unwrap();
}

#[tokio::test]
async fn the_session_helpers_refuse_other_clients_and_closed_ones() {
    let dir = std::env::temp_dir().join(format!("ballot-memory-test-{}", std::process::id()));
    let file = connect(&format!("file://{}", dir.display())).await;
    let err = ballot::memory::expire_session(&file).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("memory://"), "{err}");
    file.close().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);

    let m = connect("memory://refuse").await;
    m.close().await.unwrap();
    for r in
        [ballot::memory::expire_session(&m), ballot::memory::suspend_session(&m), ballot::memory::resume_session(&m)]
    {
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Closed);
    }
}

#[test]
fn lending_needs_a_current_thread_runtime() {
    assert_eq!(ballot::memory::use_current_runtime().unwrap_err().kind(), ErrorKind::InvalidArgument);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    let err = rt.block_on(async { ballot::memory::use_current_runtime().unwrap_err() });
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("current-thread"), "{err}");
}

/// Without lending its runtime, a test still works on memory:// (the engine runs
/// on the library's runtime, in real time), from async code and from the blocking
/// API alike; a client dropped without close() leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_runtime_and_the_blocking_api_work_too() {
    let url = "memory://unlent";
    // Without auto-requeue, so that b wins whether or not it joined before the
    // expiry (nothing public tells when a waiting candidate has joined).
    let a = Client::connect(url, Options::default().with_auto_requeue(false)).await.unwrap();
    let ea = a.election("svc").unwrap();
    ea.campaign("a").await.unwrap();
    let b = tokio::task::spawn_blocking(move || {
        let b = ballot::blocking::Client::connect(url, Options::default()).unwrap();
        let eb = b.election("svc").unwrap();
        let lead = eb.campaign(b"b", Some(Duration::from_secs(30))).unwrap();
        (b, eb, lead)
    });
    ballot::memory::expire_session(&a).unwrap();
    let (b, eb, lead) = tokio::time::timeout(Duration::from_secs(30), b).await.unwrap().unwrap();
    assert_eq!(lead.value(), b"b");
    // Dropped without close(): its session goes, as a process that died.
    tokio::task::spawn_blocking(move || drop((eb, b))).await.unwrap();
    let reader = connect(url).await.election("svc").unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while reader.leader().await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the dropped client's leadership went");
}

// The engine's transitions that need its async side (tasks, watches, the
// session), each driven on memory:// under paused time. The transitions alone
// are tested row by row in `core/src/election/machine_tests.rs`.

/// `resign()` of a waiting candidate withdraws it: its campaign fails with
/// `Cancelled` (not with the withdrawal's error), and the handle is Idle and can
/// campaign again.
#[tokio::test(start_paused = true)]
async fn resign_of_a_waiting_candidate_fails_its_campaign_with_cancelled() {
    let _rt = ballot::memory::use_current_runtime().unwrap();
    let (a, b) = (connect("memory://engine-cancel").await, connect("memory://engine-cancel").await);
    let (ea, eb) = (a.election("svc").unwrap(), b.election("svc").unwrap());
    ea.campaign("a").await.unwrap();
    let waiting = campaign(&eb, "b");
    settle().await;
    eb.resign().await.unwrap();
    assert_eq!(live("b's campaign", waiting).await.unwrap().unwrap_err().kind(), ErrorKind::Cancelled);
    assert_eq!(eb.state(), State::Idle);
    // Nothing of b is left in the queue: after a resigns, b's new campaign wins.
    let again = campaign(&eb, "b2");
    settle().await;
    ea.resign().await.unwrap();
    assert_eq!(live("b elected", again).await.unwrap().unwrap().value(), b"b2");
}

/// A leader that lost its session campaigns again with the value it proclaimed
/// last, not the one it first campaigned with.
#[tokio::test(start_paused = true)]
async fn a_requeue_after_a_loss_campaigns_with_the_proclaimed_value() {
    let _rt = ballot::memory::use_current_runtime().unwrap();
    let (a, b) = (connect("memory://engine-requeue").await, connect("memory://engine-requeue").await);
    let (ea, eb) = (a.election("svc").unwrap(), b.election("svc").unwrap());
    let mut a_events = ea.events();
    ea.campaign("a1").await.unwrap();
    ea.proclaim("a2").await.unwrap();
    let waiting = campaign(&eb, "b");
    settle().await;
    ballot::memory::expire_session(&a).unwrap();
    live("b elected", waiting).await.unwrap().unwrap();
    until(&mut a_events, "a lost", |e| matches!(e, Event::Lost { .. })).await;
    assert_eq!(ea.state(), State::Campaigning, "auto-requeue campaigns again at once");
    eb.resign().await.unwrap();
    until(&mut a_events, "a elected again", |e| matches!(e, Event::Elected { .. })).await;
    let l = eb.leader().await.unwrap().expect("a leads again");
    assert_eq!(l.value, b"a2");
}

/// `resign()` of a suspended leader: `Resigned`, Idle, and the next candidate wins
/// at once (the entry is withdrawn, not left for the session to expire).
#[tokio::test(start_paused = true)]
async fn resign_while_suspended_hands_over() {
    let _rt = ballot::memory::use_current_runtime().unwrap();
    let (a, b) = (connect("memory://engine-suspended-resign").await, connect("memory://engine-suspended-resign").await);
    let (ea, eb) = (a.election("svc").unwrap(), b.election("svc").unwrap());
    let mut events = ea.events();
    let lead = ea.campaign("a").await.unwrap();
    let waiting = campaign(&eb, "b");
    settle().await;
    ballot::memory::suspend_session(&a).unwrap();
    until(&mut events, "suspended", |e| matches!(e, Event::Suspended)).await;
    ea.resign().await.unwrap();
    let seen = until(&mut events, "resigned", |e| matches!(e, Event::Resigned | Event::Lost { .. })).await;
    assert!(matches!(seen.last(), Some(Event::Resigned)), "{seen:?}");
    assert_eq!(ea.state(), State::Idle);
    assert!(!lead.is_current());
    assert!(live("b elected", waiting).await.unwrap().unwrap().term() > lead.term());
    // The session comes back: nothing is reconnected, the resignation holds.
    ballot::memory::resume_session(&a).unwrap();
    settle().await;
    assert_eq!(ea.state(), State::Idle);
}

/// `close()` while a campaign waits fails it with `Closed`; while a leadership is
/// suspended it ends the leadership (`lost()` resolves) and hands over.
#[tokio::test(start_paused = true)]
async fn close_ends_a_waiting_campaign_and_a_suspended_leadership() {
    let _rt = ballot::memory::use_current_runtime().unwrap();
    let url = "memory://engine-close";
    let (a, b) = (connect(url).await, connect(url).await);
    let (ea, eb) = (a.election("svc").unwrap(), b.election("svc").unwrap());
    let lead = ea.campaign("a").await.unwrap();
    let waiting = campaign(&eb, "b");
    settle().await;
    eb.close().await;
    assert_eq!(live("b's campaign", waiting).await.unwrap().unwrap_err().kind(), ErrorKind::Closed);
    assert_eq!(eb.state(), State::Closed);

    let c = connect(url).await;
    let ec = c.election("svc").unwrap();
    let waiting = campaign(&ec, "c");
    settle().await;
    ballot::memory::suspend_session(&a).unwrap();
    ea.close().await;
    live("a's leadership ends", lead.lost()).await;
    assert_eq!(ea.state(), State::Closed);
    assert_eq!(ea.campaign("again").await.unwrap_err().kind(), ErrorKind::Closed);
    assert_eq!(live("c elected", waiting).await.unwrap().unwrap().value(), b"c");
}
