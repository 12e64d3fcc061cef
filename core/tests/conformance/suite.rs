//! The behaviour every backend must have. Each function takes a fresh backend URL.

use std::time::{Duration, Instant};

use ballot::{blocking, Client, Election, ErrorKind, Event, Options, State};
use futures_util::StreamExt;

use crate::common::{backend_of, wait_state};

/// How long a candidate is watched to see that it keeps waiting (a check that can
/// only fail on a real second winner, never on a slow machine).
const SHORT: Duration = Duration::from_millis(300);
const LIVE: Duration = Duration::from_secs(10);

async fn connect(url: &str) -> Client {
    Client::connect(url, options(url)).await.unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// The description's TTL for the backend of `url`, unless the URL gives its own: a
/// TTL given in both places must agree.
fn options(url: &str) -> Options {
    if url.contains("ttl=") {
        Options::default()
    } else {
        Options::default().with_ttl(backend_of(url).ttl)
    }
}

/// Campaigns `e` and asserts that it wins at once and leads: no candidate that
/// should have withdrawn is still queued ahead of it (it would be elected first
/// and hold it up). A wait on a state, where a sleep and a look at `leader()`
/// would race with a late withdrawal.
async fn wins_at_once(e: &Election, value: &str) {
    let lead = live("a campaign behind withdrawn candidates", e.campaign(value)).await.unwrap();
    let now = e.leader().await.unwrap().expect("a leader");
    assert_eq!((now.value.as_slice(), now.term), (value.as_bytes(), lead.term()));
}

fn name() -> String {
    crate::unique("svc")
}

/// Awaits `f` with a generous liveness bound.
async fn live<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIVE, f).await.unwrap_or_else(|_| panic!("{what}: not done within {LIVE:?}"))
}

async fn still_pending<T>(f: &mut (impl std::future::Future<Output = T> + Unpin)) -> bool {
    tokio::time::timeout(SHORT, f).await.is_err()
}

pub async fn exactly_one_winner_among_concurrent_candidates(url: &str) {
    const N: usize = 5;
    let n = name();
    let mut clients = Vec::new();
    for _ in 0..N {
        clients.push(connect(url).await);
    }
    let elections: Vec<Election> = clients.iter().map(|c| c.election(&n).unwrap()).collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (i, e) in elections.iter().enumerate() {
        let (e, tx) = (e.clone(), tx.clone());
        tokio::spawn(async move {
            let lead = e.campaign(format!("c{i}")).await;
            let _ = tx.send((i, lead));
        });
    }
    let mut terms = Vec::new();
    for round in 0..N {
        let (i, lead) = live("a winner", rx.recv()).await.unwrap();
        let lead = lead.unwrap();
        // Nobody else may win while `i` leads.
        assert!(still_pending(&mut Box::pin(rx.recv())).await, "a second winner in round {round}");
        let leaders = elections.iter().filter(|e| e.state() == State::Leader).count();
        assert_eq!(leaders, 1, "exactly one handle in state Leader");
        assert_eq!(elections[i].state(), State::Leader);
        terms.push(lead.term());
        elections[i].resign().await.unwrap();
    }
    assert!(terms.windows(2).all(|w| w[0] < w[1]), "terms strictly increase: {terms:?}");
}

pub async fn waiting_campaign_returns_only_after_resign(url: &str) {
    let n = name();
    let (a, b) = (connect(url).await, connect(url).await);
    let (ea, eb) = (a.election(&n).unwrap(), b.election(&n).unwrap());
    live("a campaign", ea.campaign("a")).await.unwrap();
    let eb2 = eb.clone();
    let mut waiting = tokio::spawn(async move { eb2.campaign("b").await });
    assert!(still_pending(&mut waiting).await, "b must wait while a leads");
    assert_eq!(eb.state(), State::Campaigning);
    ea.resign().await.unwrap();
    let lead = live("b after resign", waiting).await.unwrap().unwrap();
    assert_eq!(eb.state(), State::Leader);
    assert_eq!(ea.state(), State::Idle);
    assert_eq!(lead.value(), b"b");
}

pub async fn resign_hands_over_and_terms_increase(url: &str) {
    let n = name();
    let c = connect(url).await;
    let (e1, e2) = (c.election(&n).unwrap(), c.election(&n).unwrap());
    let l1 = e1.campaign("one").await.unwrap();
    let e2c = e2.clone();
    let t = tokio::spawn(async move { e2c.campaign("two").await });
    wait_state(&e2, State::Campaigning, LIVE).await;
    e1.resign().await.unwrap();
    let l2 = live("handover", t).await.unwrap().unwrap();
    assert!(l2.term() > l1.term());
    let seen = e1.leader().await.unwrap().expect("a leader");
    assert_eq!((seen.value.as_slice(), seen.term), (&b"two"[..], l2.term()));
    assert_eq!(e1.resign().await.unwrap_err().kind(), ErrorKind::NotLeader, "resign when idle");
}

pub async fn proclaim_changes_value_not_term(url: &str) {
    let n = name();
    let c = connect(url).await;
    let e = c.election(&n).unwrap();
    let lead = e.campaign("v1").await.unwrap();
    e.proclaim("v2").await.unwrap();
    let l = e.leader().await.unwrap().unwrap();
    assert_eq!((l.value.as_slice(), l.term, l.key.as_str()), (&b"v2"[..], lead.term(), lead.key()));
    let other = c.election(&n).unwrap();
    assert_eq!(other.proclaim("x").await.unwrap_err().kind(), ErrorKind::NotLeader);
}

pub async fn leader_from_a_non_candidate(url: &str) {
    let n = name();
    let (a, reader) = (connect(url).await, connect(url).await);
    let r = reader.election(&n).unwrap();
    assert_eq!(r.leader().await.unwrap(), None, "no leader before anyone campaigns");
    // The handle must outlive the check: dropping the last clone withdraws the leader.
    let ea = a.election(&n).unwrap();
    let lead = ea.campaign(b"\x00binary\xff").await.unwrap();
    let l = r.leader().await.unwrap().expect("leader visible to another client");
    assert_eq!(l.value, b"\x00binary\xff");
    assert_eq!((l.term, l.key.as_str()), (lead.term(), lead.key()));
    assert_eq!(r.state(), State::Idle);
}

pub async fn observe_never_goes_back(url: &str) {
    let n = name();
    let (c, o) = (connect(url).await, connect(url).await);
    let obs = o.election(&n).unwrap();
    let mut changes = obs.observe();
    assert_eq!(live("first item", changes.next()).await.unwrap().unwrap(), None);
    let mut last_term = 0;
    for i in 0..5 {
        let e = c.election(&n).unwrap();
        let lead = e.campaign(format!("v{i}")).await.unwrap();
        // Read until this leader shows up; everything before must not go back.
        loop {
            let item = live("observe", changes.next()).await.unwrap().unwrap();
            if let Some(l) = item {
                assert!(l.term >= last_term, "observe went back from {last_term} to {}", l.term);
                last_term = l.term;
                if l.term == lead.term() {
                    assert_eq!(l.value, format!("v{i}").into_bytes());
                    break;
                }
            }
        }
        e.resign().await.unwrap();
    }
}

/// Run in a child process by `killed_leader_process_is_replaced`.
pub fn child_candidate_main() {
    let (Ok(url), Ok(name)) = (std::env::var("BALLOT_CHILD_URL"), std::env::var("BALLOT_CHILD_ELECTION")) else {
        return;
    };
    let c = blocking::Client::connect(&url, options(&url)).unwrap();
    let e = c.election(&name).unwrap();
    let lead = e.campaign(b"child", None).unwrap();
    println!("CHILD elected term={}", lead.term());
    std::thread::sleep(Duration::from_secs(120));
}

pub async fn killed_leader_process_is_replaced(url: &str) {
    use tokio::io::AsyncBufReadExt;
    let n = name();
    if url.starts_with("memory:") {
        // memory:// state is per process: a child would have a store of its own.
        // What a killed process is to a server, an expired session is here.
        // Without auto-requeue, so that the survivor wins even if it joins only
        // after the expiry.
        let dying = Client::connect(url, Options::default().with_auto_requeue(false)).await.unwrap();
        let c = connect(url).await;
        let leader = dying.election(&n).unwrap();
        let term = leader.campaign("doomed").await.unwrap().term();
        let e = c.election(&n).unwrap();
        let e2 = e.clone();
        let mut t = tokio::spawn(async move { e2.campaign("survivor").await });
        assert!(still_pending(&mut t).await, "must wait while the leader lives");
        ballot::memory::expire_session(&dying).unwrap();
        let lead = live("a new leader after the expiry", t).await.unwrap().unwrap();
        assert!(lead.term() > term);
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = tokio::process::Command::new(exe)
        .args(["--exact", "child_candidate", "--ignored", "--nocapture", "--test-threads=1"])
        .env("BALLOT_CHILD_URL", url)
        .env("BALLOT_CHILD_ELECTION", &n)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let child_term: u64 = live("child elected", async {
        loop {
            let l = lines.next_line().await.unwrap().expect("child exited before being elected");
            // libtest prints "test child_candidate ... " on the same line.
            if let Some(t) = l.split("CHILD elected term=").nth(1) {
                return t.trim().parse().unwrap();
            }
        }
    })
    .await;
    let c = connect(url).await;
    let ttl = c.options().ttl();
    let e = c.election(&n).unwrap();
    let e2 = e.clone();
    let mut t = tokio::spawn(async move { e2.campaign("survivor").await });
    assert!(still_pending(&mut t).await, "must wait while the child leads");
    child.start_kill().unwrap();
    // The backend's expiry of the dead session, as the description bounds it
    // (Consul may keep a silent session for up to 2 x TTL); timing is bench/'s.
    let bound = backend_of(url).takeover;
    let lead = tokio::time::timeout(bound, t)
        .await
        .unwrap_or_else(|_| panic!("no new leader within the takeover bound {bound:?} (ttl {ttl:?})"))
        .unwrap()
        .unwrap();
    assert!(lead.term() > child_term);
    let _ = child.wait().await;
}

pub async fn end_reaches_every_participant(url: &str) {
    let n = name();
    let (a, b, o, d) = (connect(url).await, connect(url).await, connect(url).await, connect(url).await);
    let (ea, eb, eo, ed) =
        (a.election(&n).unwrap(), b.election(&n).unwrap(), o.election(&n).unwrap(), d.election(&n).unwrap());
    let mut a_events = ea.events();
    let mut o_events = eo.events();
    let mut changes = eo.observe();
    live("observe start", changes.next()).await.unwrap().unwrap();
    ea.campaign("a").await.unwrap();
    let eb2 = eb.clone();
    let waiting = tokio::spawn(async move { eb2.campaign("b").await });
    wait_state(&eb, State::Campaigning, LIVE).await;
    ed.end().await.unwrap();
    assert_eq!(ed.state(), State::Ended);
    let err = live("waiting campaign ends", waiting).await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Ended);
    for (who, ev) in [("leader", &mut a_events), ("observer", &mut o_events)] {
        live(who, async {
            while let Some(e) = ev.next().await {
                if matches!(e, Event::Ended) {
                    return;
                }
            }
            panic!("{who}: events ended without Ended");
        })
        .await;
    }
    assert_eq!(ea.state(), State::Ended);
    assert_eq!(eb.state(), State::Ended);
    assert_eq!(eo.state(), State::Ended);
    assert_eq!(ea.campaign("again").await.unwrap_err().kind(), ErrorKind::Ended);
    loop {
        match live("observe ends", changes.next()).await {
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                assert_eq!(e.kind(), ErrorKind::Ended);
                break;
            }
            None => panic!("observe ended without Err(Ended)"),
        }
    }
    assert!(changes.next().await.is_none());
    // The leader stepped down.
    let fresh = connect(url).await.election(&n).unwrap();
    live("leader cleared", async {
        while fresh.leader().await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

pub async fn cancelled_campaign_leaves_no_entry(url: &str) {
    let n = name();
    let (a, b) = (connect(url).await, connect(url).await);
    let (ea, eb) = (a.election(&n).unwrap(), b.election(&n).unwrap());
    ea.campaign("a").await.unwrap();
    {
        let mut fut = Box::pin(eb.campaign("b"));
        assert!(still_pending(&mut fut).await);
    } // dropped: withdrawn
    assert_eq!(eb.state(), State::Idle);
    ea.resign().await.unwrap();
    // The cancelled candidate must not win later: a wins again at once.
    wins_at_once(&ea, "a2").await;
    ea.resign().await.unwrap();
    // The handle is reusable.
    let lead = live("campaign again", eb.campaign("b2")).await.unwrap();
    assert_eq!(lead.value(), b"b2");
}

/// A campaign may be given up at any moment, also while its entry is being
/// written. Whatever the server applies after that is withdrawn: it neither wins
/// later nor holds up the candidates that come after it (a Consul candidate key
/// registered after its clean-up had run once blocked the queue for good).
pub async fn campaign_given_up_at_any_moment_leaves_nothing(url: &str) {
    let n = name();
    let (a, b, c) = (connect(url).await, connect(url).await, connect(url).await);
    let (ea, eb) = (a.election(&n).unwrap(), b.election(&n).unwrap());
    ea.campaign("a").await.unwrap();
    for micros in (0..12_000).step_by(500) {
        let r = tokio::time::timeout(Duration::from_micros(micros), eb.campaign("b")).await;
        assert!(r.is_err(), "b cannot win while a leads");
        assert_eq!(eb.state(), State::Idle);
    }
    ea.resign().await.unwrap();
    // A given-up candidate must not win later: a wins again at once.
    wins_at_once(&ea, "a2").await;
    ea.resign().await.unwrap();
    let ec = c.election(&n).unwrap();
    let lead = live("a later candidate of another client wins", ec.campaign("c")).await.unwrap();
    assert_eq!(lead.value(), b"c");
}

pub async fn timeout_around_campaign_withdraws(url: &str) {
    let n = name();
    let (a, b) = (connect(url).await, connect(url).await);
    let (ea, eb) = (a.election(&n).unwrap(), b.election(&n).unwrap());
    ea.campaign("a").await.unwrap();
    assert!(tokio::time::timeout(SHORT, eb.campaign("b")).await.is_err());
    assert_eq!(eb.state(), State::Idle);
    // A resign racing with the withdrawal must not hand leadership to b: a wins
    // again at once.
    ea.resign().await.unwrap();
    wins_at_once(&ea, "a").await;
    // resign() withdraws a pending campaign, which then fails with Cancelled.
    let eb2 = eb.clone();
    let pending = tokio::spawn(async move { eb2.campaign("b").await });
    wait_state(&eb, State::Campaigning, LIVE).await;
    eb.resign().await.unwrap();
    assert_eq!(live("cancelled", pending).await.unwrap().unwrap_err().kind(), ErrorKind::Cancelled);
}

pub async fn events_arrive_in_order(url: &str) {
    let n = name();
    let c = connect(url).await;
    let e = c.election(&n).unwrap();
    let mut ev = e.events();
    let mut seen = Vec::new();
    // Collects events until `stop` matches one.
    async fn until(ev: &mut ballot::Events, seen: &mut Vec<Event>, stop: impl Fn(&Event) -> bool) {
        live("events", async {
            while let Some(x) = ev.next().await {
                let done = stop(&x);
                seen.push(x);
                if done {
                    return;
                }
            }
            panic!("event stream ended early: {seen:?}");
        })
        .await
    }
    let lead = e.campaign("x").await.unwrap();
    let term = lead.term();
    until(&mut ev, &mut seen, |x| matches!(x, Event::LeaderChanged(Some(l)) if l.term == term)).await;
    e.resign().await.unwrap();
    until(&mut ev, &mut seen, |x| matches!(x, Event::LeaderChanged(None))).await;
    let pos =
        |f: &dyn Fn(&Event) -> bool| seen.iter().position(f).unwrap_or_else(|| panic!("missing event in {seen:?}"));
    let elected = pos(&|x| matches!(x, Event::Elected { term: t } if *t == term));
    let resigned = pos(&|x| matches!(x, Event::Resigned));
    let cleared = pos(&|x| matches!(x, Event::LeaderChanged(None)));
    assert!(elected < resigned && resigned < cleared, "{seen:?}");
    assert_eq!(seen.iter().filter(|x| matches!(x, Event::Elected { .. })).count(), 1, "{seen:?}");
}

pub async fn bad_input_gives_the_right_kind(url: &str) {
    let c = connect(url).await;
    for bad in ["", "/svc", "svc/", "a//b", "a\0b", "tab\there"] {
        assert_eq!(c.election(bad).unwrap_err().kind(), ErrorKind::InvalidArgument, "name {bad:?}");
    }
    assert_eq!(c.election(&"n".repeat(257)).unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert!(c.election(&"n".repeat(256)).is_ok());
    let e = c.election(&name()).unwrap();
    assert_eq!(e.campaign(b"").await.unwrap_err().kind(), ErrorKind::InvalidArgument, "empty value");
    let huge = vec![b'x'; (1 << 20) + 1];
    assert_eq!(e.campaign(&huge).await.unwrap_err().kind(), ErrorKind::InvalidArgument, "value over 1 MiB");
    assert_eq!(e.state(), State::Idle, "a rejected campaign changes nothing");
    e.campaign("ok").await.unwrap();
    assert_eq!(e.campaign("twice").await.unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(e.proclaim(&huge).await.unwrap_err().kind(), ErrorKind::InvalidArgument);
    for (u, needle) in [
        ("not a url", "malformed"),
        ("redis://127.0.0.1", "unknown backend scheme"),
        ("etcd://127.0.0.1:2379?bogus=1", "unknown option"),
        ("file:///tmp/x?ttl=fast", "ttl"),
        ("file:///tmp/x?ttl=1s&margin=2s", "margin"),
        ("etcd://h:70000", "port"),
    ] {
        let err = Client::connect(u, Options::default()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{u}: {err}");
        assert!(err.to_string().contains(needle), "{u}: {err}");
    }
}

pub async fn use_after_close_is_closed(url: &str) {
    let c = connect(url).await;
    let n = name();
    let e = c.election(&n).unwrap();
    e.campaign("x").await.unwrap();
    // A campaign of a new handle, still starting its watch when the client closes.
    let starting = tokio::spawn({
        let e2 = c.election(&n).unwrap();
        async move { e2.campaign("w").await }
    });
    tokio::task::yield_now().await;
    c.close().await.unwrap();
    assert_eq!(live("the starting campaign", starting).await.unwrap().unwrap_err().kind(), ErrorKind::Closed);
    assert_eq!(e.state(), State::Closed);
    assert_eq!(c.election(&n).unwrap_err().kind(), ErrorKind::Closed);
    assert_eq!(e.campaign("y").await.unwrap_err().kind(), ErrorKind::Closed);
    assert_eq!(e.proclaim("y").await.unwrap_err().kind(), ErrorKind::Closed);
    assert_eq!(e.resign().await.unwrap_err().kind(), ErrorKind::Closed);
    assert_eq!(e.leader().await.unwrap_err().kind(), ErrorKind::Closed);
    assert_eq!(e.end().await.unwrap_err().kind(), ErrorKind::Closed);
    c.close().await.unwrap(); // idempotent
                              // Closing released the leadership.
    let other = connect(url).await.election(&n).unwrap();
    live("released", async {
        while other.leader().await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // A closed election handle on an open client.
    let c2 = connect(url).await;
    let e2 = c2.election(&n).unwrap();
    e2.close().await;
    assert_eq!(e2.campaign("z").await.unwrap_err().kind(), ErrorKind::Closed);
}

pub async fn close_leaves_no_leader_even_with_a_waiting_handle(url: &str) {
    let n = name();
    let (c, reader) = (connect(url).await, connect(url).await);
    let (e1, e2) = (c.election(&n).unwrap(), c.election(&n).unwrap());
    e1.campaign("first").await.unwrap();
    let e2c = e2.clone();
    let pending = tokio::spawn(async move { e2c.campaign("second").await });
    wait_state(&e2, State::Campaigning, LIVE).await;
    c.close().await.unwrap();
    // Right after close returns: the waiting handle must not have slipped in.
    assert_eq!(reader.election(&n).unwrap().leader().await.unwrap(), None);
    assert_eq!(live("pending campaign", pending).await.unwrap().unwrap_err().kind(), ErrorKind::Closed);
    assert_eq!((e1.state(), e2.state()), (State::Closed, State::Closed));
}

pub async fn terms_increase_across_clients_and_end(url: &str) {
    let n = name();
    let t1 = {
        let c = connect(url).await;
        let t = c.election(&n).unwrap().campaign("a").await.unwrap().term();
        c.close().await.unwrap();
        t
    };
    let c = connect(url).await;
    let e = c.election(&n).unwrap();
    let t2 = e.campaign("b").await.unwrap().term();
    assert!(t2 > t1, "new client: {t2} > {t1}");
    e.end().await.unwrap();
    let e3 = c.election(&n).unwrap();
    let t3 = live("campaign after end", e3.campaign("c")).await.unwrap().term();
    assert!(t3 > t2, "after end(): {t3} > {t2}");
}

pub async fn blocking_facade_timeouts_cancel_and_callbacks(url: &str) {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        let n = name();
        let c = blocking::Client::connect(&url, Options::default()).unwrap();
        let (a, b) = (c.election(&n).unwrap(), c.election(&n).unwrap());
        // Events on the library's event thread; the callback calls the blocking API.
        let (tx, rx) = std::sync::mpsc::channel();
        let b2 = b.clone();
        let sub = a
            .on_event(move |ev| {
                let thread = std::thread::current().name().map(str::to_owned);
                let state = b2.state(); // blocking API from the callback
                let leader = b2.leader().map(|l| l.map(|l| l.term));
                let _ = tx.send((format!("{ev:?}"), thread, state, leader, blocking::in_event_callback()));
            })
            .unwrap();
        let lead = a.campaign(b"a", Some(Duration::from_secs(10))).unwrap();
        let (ev, thread, _, leader, inside) = rx.recv_timeout(LIVE).unwrap();
        assert!(ev.starts_with("Elected") || ev.starts_with("LeaderChanged"), "{ev}");
        assert_eq!(thread.as_deref(), Some("ballot-events"));
        assert!(inside);
        assert!(leader.is_ok());
        // Timeout: withdrawn, kind Timeout.
        let err = b.campaign(b"b", Some(Duration::from_millis(200))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert_eq!(b.state(), State::Idle);
        // Cancel from another thread, once the campaign waits.
        let token = blocking::CancelToken::new();
        let (t2, b3) = (token.clone(), b.clone());
        let canceller = std::thread::spawn(move || {
            let until = Instant::now() + LIVE;
            while b3.state() != State::Campaigning && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            t2.cancel();
        });
        let err = b.campaign_with(b"b", None, Some(&token)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Cancelled);
        canceller.join().unwrap();
        assert_eq!(b.state(), State::Idle);
        // Observer with a timeout stays usable.
        let mut obs = b.observe();
        let first = obs.next_timeout(Some(LIVE)).unwrap().unwrap();
        assert_eq!(first.map(|l| l.term), Some(lead.term()));
        assert_eq!(obs.next_timeout(Some(Duration::from_millis(100))).unwrap_err().kind(), ErrorKind::Timeout);
        a.resign().unwrap();
        assert_eq!(obs.next_timeout(Some(LIVE)).unwrap().unwrap(), None);
        sub.cancel();
        c.close().unwrap();
        assert_eq!(a.leader().unwrap_err().kind(), ErrorKind::Closed);
    })
    .await
    .unwrap();
}

/// A campaign watches only the epoch; `events()` and `observe()` asked for later,
/// on a handle that already campaigns or leads, still follow every leader change,
/// and `end()` still reaches handles that never asked.
pub async fn following_the_leader_starts_on_demand(url: &str) {
    let n = name();
    let (a, b, o, d) = (connect(url).await, connect(url).await, connect(url).await, connect(url).await);
    let (ea, eb, eo, ed) =
        (a.election(&n).unwrap(), b.election(&n).unwrap(), o.election(&n).unwrap(), d.election(&n).unwrap());
    let lead_a = ea.campaign("a").await.unwrap();
    let eb2 = eb.clone();
    let waiting = tokio::spawn(async move { eb2.campaign("b").await });
    wait_state(&eb, State::Campaigning, LIVE).await;
    // Widened while leading: the current leader comes first.
    let mut ev = ea.events();
    async fn leader_change(ev: &mut ballot::Events, value: &[u8]) -> u64 {
        live("LeaderChanged", async {
            while let Some(x) = ev.next().await {
                if let Event::LeaderChanged(Some(l)) = x {
                    if l.value == value {
                        return l.term;
                    }
                }
            }
            panic!("events ended before the leader {value:?}");
        })
        .await
    }
    assert_eq!(leader_change(&mut ev, b"a").await, lead_a.term());
    // Widened while campaigning, and by a non-candidate that observes.
    let mut changes = eo.observe();
    let first = live("observe", changes.next()).await.unwrap().unwrap().expect("a leader");
    assert_eq!(first.value, b"a");
    ea.resign().await.unwrap();
    let lead_b = live("b wins", waiting).await.unwrap().unwrap();
    assert!(lead_b.term() > lead_a.term());
    assert_eq!(leader_change(&mut ev, b"b").await, lead_b.term());
    loop {
        let l = live("observe b", changes.next()).await.unwrap().unwrap();
        if l.is_some_and(|l| l.value == b"b") {
            break;
        }
    }
    // b leads without ever watching the leader: end() must still reach it.
    ed.end().await.unwrap();
    live("b ends", async {
        while eb.state() != State::Ended {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(!lead_b.is_current());
    assert_eq!(eb.campaign("again").await.unwrap_err().kind(), ErrorKind::Ended);
    live("a ends", async {
        while ea.state() != State::Ended {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Issue 14: the one naming rule refuses `.` and `..` segments, and segments that
/// could collide with ballot's own entries, on every backend, before anything
/// reaches the server; dots inside a segment still work on the real server.
pub async fn reserved_name_segments_are_refused(url: &str) {
    let c = connect(url).await;
    let n = name();
    for bad in [
        ".".to_string(),
        "..".to_string(),
        format!("{n}/."),
        format!("{n}/.."),
        format!("{n}/../../x"),
        format!("{n}/./x"),
        format!("{n}/.lock"),
        format!("{n}/.candidates"),
        format!("{n}/.epoch"),
        format!("{n}/~ballot-epoch"),
        format!("{n}/latch-0000000001"),
    ] {
        let err = c.election(&bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "name {bad:?}: {err}");
    }
    let ok = format!("{n}/v1.2/a..b");
    let e = c.election(&ok).unwrap();
    let lead = live("campaign", e.campaign("dots")).await.unwrap();
    let l = connect(url).await.election(&ok).unwrap().leader().await.unwrap().unwrap();
    assert_eq!((l.value.as_slice(), l.term), (&b"dots"[..], lead.term()));
    e.resign().await.unwrap();
    // The URL's namespace follows the same rule (a file:// path is a directory).
    if !url.starts_with("file:") {
        let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
        for seg in ["..", ".", ".lock"] {
            let bad = format!("{base}/{seg}?{query}");
            let err = Client::connect(&bad, Options::default()).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad}: {err}");
            assert!(err.to_string().contains("namespace"), "{err}");
        }
    }
}

/// Everything an error shows: its message, `Debug`, and its sources.
fn error_text(e: &ballot::Error) -> String {
    let mut s = format!("{e} {e:?}");
    let mut src = std::error::Error::source(e);
    while let Some(x) = src {
        s.push_str(&format!(" | {x} {x:?}"));
        src = x.source();
    }
    s
}

/// `url` with `userinfo` in place of its own (the Consul ACL agent's URL has a
/// token), and with `host` in place of its hosts when given.
fn with_userinfo(url: &str, userinfo: &str, host: Option<&str>) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let rest = match host {
        Some(h) => {
            let cut = rest.find(['/', '?']).unwrap_or(rest.len());
            format!("{h}{}", &rest[cut..])
        }
        None => rest.to_string(),
    };
    format!("{scheme}://{userinfo}@{rest}")
}

/// Issue 14: a user, password or token with `/`, `?`, `#` or `@` in it is parsed
/// as one (the userinfo ends at the last `@`), and no part of it shows in an
/// error, in `Debug` or in the URL the client reports: against the real server,
/// against an address where nothing listens, and with a bad percent escape.
pub async fn secrets_in_the_url_never_show(url: &str) {
    let consul = url.starts_with("consul");
    // The first one is the issue's: it used to give `port "s3cr" of host "alice"`.
    let secrets = ["s3cr/et", "s3cr?et@z", "s3cr#et/x@y", "s3cret"];
    let hidden = ["alice", "sekrit", "s3cr", "et@z", "x@y"];
    let check = |what: &str, shown: &str| {
        for h in hidden {
            assert!(!shown.contains(h), "{what} shows {h:?}: {shown}");
        }
    };
    let opts = || Options::default().with_ttl(Duration::from_secs(10)).with_connect_timeout(Duration::from_secs(3));
    for secret in secrets {
        let userinfo = if consul { secret.to_string() } else { format!("alice-sekrit:{secret}") };
        let real = with_userinfo(url, &userinfo, None);
        match Client::connect(&real, opts()).await {
            Ok(c) => {
                check("url()", c.url());
                check("Debug", &format!("{c:?} {:?}", c.options()));
                assert!(c.url().contains("***@"), "{}", c.url());
                // The credentials are in use: servers without auth take them or
                // ignore them, and the client works.
                let e = c.election(&name()).unwrap();
                match e.campaign("x").await {
                    Ok(_) => e.resign().await.unwrap(),
                    Err(err) => check("campaign error", &error_text(&err)),
                }
                c.close().await.unwrap();
            }
            Err(e) => {
                check("connect error", &error_text(&e));
                if url.starts_with("file:") || url.starts_with("memory:") {
                    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
                }
            }
        }
        if !url.starts_with("file:") {
            let nobody = with_userinfo(url, &userinfo, Some("127.0.0.1:1"));
            let e = Client::connect(&nobody, opts()).await.unwrap_err();
            check("unreachable", &error_text(&e));
        }
    }
    let escape = with_userinfo(url, if consul { "s3cr%zzet" } else { "alice-sekrit:s3cr%zzet" }, None);
    let e = Client::connect(&escape, opts()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    check("bad escape", &error_text(&e));
}

/// `url` with option `key=value`, replacing any `key=` it had.
fn with_option(url: &str, key: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let mut pairs: Vec<String> =
        query.split('&').filter(|p| !p.is_empty() && !p.starts_with(&format!("{key}="))).map(String::from).collect();
    pairs.push(format!("{key}={value}"));
    format!("{base}?{}", pairs.join("&"))
}

/// Issue 14: every duration option, in the URL or from `Options`, has a range; a
/// value out of it is `InvalidArgument` naming the option, never a panic
/// (`connect_timeout=18000000000000000000s` used to overflow `Instant + Duration`).
/// The blocking facade takes any timeout.
pub async fn out_of_range_durations_are_invalid_argument(url: &str) {
    let mut opts = vec!["ttl", "margin", "connect_timeout"];
    if url.starts_with("zk:") {
        opts.push("session_timeout");
    }
    if url.starts_with("consul") {
        opts.push("lock_delay");
    }
    for opt in opts {
        for v in ["18000000000000000000s", "18446744073709551615ms", "5124095576030431h", "25h"] {
            let u = with_option(url, opt, v);
            let err = Client::connect(&u, Options::default()).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{opt}={v}: {err}");
            assert!(err.to_string().contains(opt), "{opt}={v}: {err}");
        }
    }
    let builders: [(&str, Options); 5] = [
        ("ttl", Options::default().with_ttl(Duration::MAX)),
        ("ttl", Options::default().with_ttl(Duration::from_secs(18_000_000_000_000_000_000))),
        ("margin", Options::default().with_safety_margin(Duration::MAX)),
        ("connect_timeout", Options::default().with_connect_timeout(Duration::MAX)),
        ("connect_timeout", Options::default().with_connect_timeout(Duration::from_secs(3601))),
    ];
    for (opt, o) in builders {
        let err = Client::connect(url, o).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{opt}: {err}");
        assert!(err.to_string().contains(opt), "{opt}: {err}");
    }
    // The largest values in range connect.
    let c = Client::connect(&with_option(url, "connect_timeout", "1h"), Options::default()).await.unwrap();
    c.close().await.unwrap();
    // Timeouts of the blocking facade: any value, `Duration::MAX` included.
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        let c = blocking::Client::connect(&url, Options::default()).unwrap();
        let e = c.election(&name()).unwrap();
        e.campaign(b"x", Some(Duration::MAX)).unwrap();
        let mut obs = e.observe();
        assert!(obs.next_timeout(Some(Duration::MAX)).unwrap().unwrap().is_some());
        c.close().unwrap();
    })
    .await
    .unwrap();
}

/// The limit each backend documents (README, "Values").
fn documented_value_limit(url: &str) -> usize {
    match url.split("://").next().unwrap() {
        "file" | "memory" | "etcd" | "etcds" | "postgres" | "postgresql" => 1 << 20,
        "zk" | "zks" => (1 << 20) - 4096,
        "consul" | "consuls" => 384_000,
        other => panic!("no documented limit for {other}"),
    }
}

/// `url` with the longest namespace a URL may have (256 bytes), made of `"`, which
/// JSON escapes as two bytes (the worst case of Consul's transaction bodies); a
/// file:// URL is returned as it is (its path is a directory).
fn longest_namespace(url: &str) -> String {
    if url.starts_with("file:") {
        return url.to_string();
    }
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let (scheme, rest) = base.split_once("://").unwrap();
    let (hosts, ns) = rest.split_once('/').unwrap_or((rest, ""));
    let ns = if ns.is_empty() { "x".to_string() } else { ns.to_string() };
    let pad = ballot::MAX_NAME_LEN - ns.len() - 1;
    format!("{scheme}://{hosts}/{ns}/{}?{query}", "\"".repeat(pad))
}

/// Issue 14: a value exactly at the backend's limit works on the real server, with
/// the longest namespace and name (campaign, read back, proclaim, handoffs between
/// several candidates that all hold such values); one byte more fails at once with
/// `InvalidArgument` naming the limit, and never holds up the candidates after it.
/// (On Consul a 400,000-byte value used to run into the campaign's timeout: it
/// travels base64-encoded in a transaction body limited to 512 KiB.)
pub async fn values_up_to_the_limit_work_and_larger_ones_hold_up_nobody(url: &str) {
    let url = longest_namespace(url);
    let (a, b) = (connect(&url).await, connect(&url).await);
    let max = a.max_value_len();
    assert_eq!(max, documented_value_limit(&url));
    let n = name();
    let n = format!("{n}/{}", "\"".repeat(ballot::MAX_NAME_LEN - n.len() - 1));
    let full = move |seed: u8| -> Vec<u8> { (0..max).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect() };
    let over = vec![b'o'; max + 1];

    // No leader: a refused value, then a normal candidate, which wins at once.
    let refused = b.election(&n).unwrap();
    let err = live("oversize campaign", refused.campaign(&over)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains(&max.to_string()), "names the limit: {err}");
    assert_eq!(refused.state(), State::Idle);
    let ea = a.election(&n).unwrap();
    let lead = live("campaign after a refused value", ea.campaign(full(1))).await.unwrap();
    let l = live("leader", b.election(&n).unwrap().leader()).await.unwrap().unwrap();
    assert_eq!((l.value == full(1), l.term), (true, lead.term()), "the value at the limit reads back whole");
    live("proclaim at the limit", ea.proclaim(full(2))).await.unwrap();
    assert!(live("leader", b.election(&n).unwrap().leader()).await.unwrap().unwrap().value == full(2));
    assert_eq!(ea.proclaim(&over).await.unwrap_err().kind(), ErrorKind::InvalidArgument);

    // A leader: a refused value, then candidates at the limit, queued behind it;
    // every handoff goes through.
    assert_eq!(live("oversize", refused.campaign(&over)).await.unwrap_err().kind(), ErrorKind::InvalidArgument);
    let mut clients = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..4u8 {
        let c = connect(&url).await;
        let e = c.election(&n).unwrap();
        tasks.push(tokio::spawn(async move {
            let won = e.campaign(full(10 + i)).await;
            (i, e, won)
        }));
        clients.push(c);
    }
    let watcher = b.election(&n).unwrap();
    let mut obs = watcher.observe();
    ea.resign().await.unwrap();
    let mut last = lead.term();
    while !tasks.is_empty() {
        let (done, _, rest) = live("next leader", futures_util::future::select_all(tasks)).await;
        tasks = rest;
        let (i, e, won) = done.unwrap();
        let won = won.unwrap();
        assert!(won.term() > last, "terms increase: {} after {last}", won.term());
        last = won.term();
        let l = live("leader", b.election(&n).unwrap().leader()).await.unwrap().unwrap();
        assert_eq!(l.term, won.term());
        assert!(l.value == full(10 + i), "the leader's whole value");
        live("observed", async {
            loop {
                match obs.next().await.unwrap().unwrap() {
                    Some(l) if l.term == won.term() => return assert!(l.value == full(10 + i)),
                    _ => {}
                }
            }
        })
        .await;
        e.resign().await.unwrap();
    }
    for c in clients {
        c.close().await.unwrap();
    }
}

/// [`crate::common::participants_until`] within the suite's liveness bound.
async fn participants_until(
    e: &Election,
    what: &str,
    done: impl Fn(&[ballot::Participant]) -> bool,
) -> Vec<ballot::Participant> {
    crate::common::participants_until(e, LIVE, what, done).await
}

fn summary(p: &[ballot::Participant]) -> Vec<(Vec<u8>, bool)> {
    p.iter().map(|p| (p.value.clone(), p.leader)).collect()
}

pub async fn participants_list_the_queue_in_order(url: &str) {
    let n = name();
    let (a, b, c, r) = (connect(url).await, connect(url).await, connect(url).await, connect(url).await);
    let (ea, eb, ec, er) =
        (a.election(&n).unwrap(), b.election(&n).unwrap(), c.election(&n).unwrap(), r.election(&n).unwrap());
    assert_eq!(er.participants().await.unwrap(), vec![], "an election nobody joined has no participants");
    let lead = ea.campaign("a").await.unwrap();
    let wb = tokio::spawn({
        let eb = eb.clone();
        async move { eb.campaign("b").await }
    });
    // Joined one after the other, so that the queue order is known.
    participants_until(&er, "b queued", |p| p.len() == 2).await;
    let wc = tokio::spawn({
        let ec = ec.clone();
        async move { ec.campaign(b"c\xff\x00").await }
    });
    let p = participants_until(&er, "c queued", |p| p.len() == 3).await;
    assert_eq!(
        summary(&p),
        vec![(b"a".to_vec(), true), (b"b".to_vec(), false), (b"c\xff\x00".to_vec(), false)],
        "{p:?}"
    );
    assert_eq!(p[0].key, lead.key(), "the leader's key is the one its campaign reported");
    assert_eq!(p[0].key, er.leader().await.unwrap().expect("a leader").key);
    assert!(p[1].key != p[0].key && p[2].key != p[1].key && p[2].key != p[0].key, "{p:?}");
    // The leader's latest value.
    ea.proclaim("a2").await.unwrap();
    assert_eq!(er.participants().await.unwrap()[0].value, b"a2");
    // A resignation moves the queue on.
    ea.resign().await.unwrap();
    let lb = live("b wins", wb).await.unwrap().unwrap();
    let p = participants_until(&er, "a gone", |p| p.len() == 2 && p[0].leader).await;
    assert_eq!(summary(&p), vec![(b"b".to_vec(), true), (b"c\xff\x00".to_vec(), false)], "{p:?}");
    assert_eq!(p[0].key, lb.key());
    // The blocking facade reads the same list.
    let bl = {
        let (url, n) = (url.to_string(), n.clone());
        tokio::task::spawn_blocking(move || {
            let c = blocking::Client::connect(&url, options(&url)).unwrap();
            let p = c.election(&n).unwrap().participants();
            c.close().unwrap();
            p
        })
        .await
        .unwrap()
        .unwrap()
    };
    assert_eq!(summary(&bl), summary(&p));
    // Ended: the handle that saw it says so; a new handle sees no candidate left.
    er.end().await.unwrap();
    assert_eq!(er.participants().await.unwrap_err().kind(), ErrorKind::Ended);
    assert_eq!(live("c ends", wc).await.unwrap().unwrap_err().kind(), ErrorKind::Ended);
    let fresh = connect(url).await.election(&n).unwrap();
    participants_until(&fresh, "the ended round empties", |p| p.is_empty()).await;
    // Closed.
    r.close().await.unwrap();
    assert_eq!(er.participants().await.unwrap_err().kind(), ErrorKind::Closed);
}
