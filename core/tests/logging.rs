//! ballot's records as a surface without a `tracing` subscriber of its own (C,
//! Python, Node, the CLI) receives them through `ballot::logging::set_sink`.
//!
//! The sink is global to the process, so this binary has one test that runs
//! its phases in order.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ballot::logging::{set_sink, Level, Record};
use ballot::{Client, ErrorKind, Event, Options, State};

use common::{backend, unique, wait_event, wait_state, within};

const LIVE: Duration = Duration::from_secs(20);

struct Seen {
    records: Mutex<Vec<Record>>,
    count: tokio::sync::watch::Sender<usize>,
}

fn seen() -> Arc<Seen> {
    Arc::new(Seen { records: Mutex::new(Vec::new()), count: tokio::sync::watch::channel(0).0 })
}

impl Seen {
    fn sink(self: &Arc<Self>) -> ballot::logging::Sink {
        let me = self.clone();
        Arc::new(move |r: &Record| {
            let n = {
                let mut v = me.records.lock().unwrap();
                v.push(r.clone());
                v.len()
            };
            me.count.send_replace(n);
        })
    }

    fn of(&self, election: &str) -> Vec<Record> {
        self.records.lock().unwrap().iter().filter(|r| r.election.as_deref() == Some(election)).cloned().collect()
    }

    fn all(&self) -> Vec<Record> {
        self.records.lock().unwrap().clone()
    }

    /// Waits until a record that `f` accepts has arrived (records cross a thread).
    async fn until(&self, what: &str, f: impl Fn(&Record) -> bool) -> Record {
        let mut rx = self.count.subscribe();
        within(LIVE, what, async {
            loop {
                if let Some(r) = self.records.lock().unwrap().iter().find(|r| f(r)) {
                    return r.clone();
                }
                rx.changed().await.unwrap();
            }
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_reach_the_sink_with_backend_and_election_and_no_secret() {
    let log = seen();
    set_sink(Some(Level::Debug), Some(log.sink())).unwrap();

    // The engine's records, on memory:// (the engine is the same on every backend).
    let url = format!("memory://{}", unique("log"));
    let (a, b) = (
        Client::connect(&url, Options::default()).await.unwrap(),
        Client::connect(&url, Options::default()).await.unwrap(),
    );
    let name = unique("svc");
    let (ea, eb) = (a.election(&name).unwrap(), b.election(&name).unwrap());
    let secret_value = "value-that-must-not-be-logged";
    let lead = ea.campaign(secret_value).await.unwrap();
    let eb2 = eb.clone();
    let waiting = tokio::spawn(async move { eb2.campaign(secret_value).await });
    wait_state(&eb, State::Campaigning, LIVE).await;
    ea.resign().await.unwrap();
    let lb = within(LIVE, "b wins", waiting).await.unwrap().unwrap();
    let mut events = eb.events();
    ballot::memory::suspend_session(&b).unwrap();
    wait_event(&mut events, LIVE, "b suspended", |e| matches!(e, Event::Suspended)).await;
    ballot::memory::resume_session(&b).unwrap();
    wait_event(&mut events, LIVE, "b reconnected", |e| matches!(e, Event::Reconnected)).await;
    eb.end().await.unwrap();
    let elected = log
        .until("b's elected record", |r| {
            r.election.as_deref() == Some(&*name) && r.message == format!("elected term={}", lb.term())
        })
        .await;
    assert_eq!(elected.level, Level::Info);
    assert_eq!(elected.backend.as_deref(), Some("memory"));
    for (level, message) in [
        (Level::Info, format!("elected term={}", lead.term())),
        (Level::Debug, "state idle -> campaigning".to_string()),
        (Level::Debug, "state campaigning -> leader".to_string()),
        (Level::Info, "resigned".to_string()),
        (Level::Warn, "suspended: do not act as leader".to_string()),
        (Level::Info, "reconnected: leading again".to_string()),
        (Level::Info, "ended".to_string()),
    ] {
        log.until(&format!("{level} {message}"), |r| {
            r.election.as_deref() == Some(&*name) && r.level == level && r.message == message
        })
        .await;
    }
    // The session's own records carry the client's backend, not an election.
    let suspended = log
        .until("the session's suspension", |r| {
            r.message.starts_with("session suspended") && r.backend.as_deref() == Some("memory")
        })
        .await;
    assert_eq!(suspended.level, Level::Warn);
    assert_eq!(suspended.election, None);
    assert!(log.of(&name).iter().all(|r| !r.message.contains(secret_value)), "a value was logged: {:?}", log.of(&name));
    a.close().await.unwrap();
    b.close().await.unwrap();

    // A real server's URL with a password: the records name the backend and never
    // show the password.
    if let Some(pg) = backend("pg") {
        let password = pg.fact("PASSWORD").to_string();
        let url = pg.fresh_url(&unique("ns"));
        assert!(url.contains(&password), "the pg test URL carries the password: {url}");
        let c = Client::connect(&url, Options::default()).await.unwrap();
        let name = unique("pg");
        let e = c.election(&name).unwrap();
        e.campaign("x").await.unwrap();
        e.resign().await.unwrap();
        c.close().await.unwrap();
        let connected = log
            .until("pg connected", |r| {
                r.backend.as_deref() == Some("postgres") && r.message.starts_with("connected to")
            })
            .await;
        assert!(connected.message.contains("***@"), "{connected:?}");
        log.until("pg resigned", |r| r.election.as_deref() == Some(&*name) && r.message == "resigned").await;
        log.until("pg closed", |r| r.backend.as_deref() == Some("postgres") && r.message == "client closed").await;
        let leaked: Vec<_> = log.all().into_iter().filter(|r| r.line().contains(&password)).collect();
        assert!(leaked.is_empty(), "the password was logged: {leaked:?}");
    }

    // Off: nothing more arrives.
    set_sink(None, None).unwrap();
    let before = log.all().len();
    let c = Client::connect(&format!("memory://{}", unique("off")), Options::default()).await.unwrap();
    let e = c.election("quiet").unwrap();
    e.campaign("x").await.unwrap();
    c.close().await.unwrap();
    // A record made while off is never queued; one made after turning on again is
    // delivered, so once it arrives nothing from the quiet phase can follow it.
    set_sink(Some(Level::Info), Some(log.sink())).unwrap();
    let c = Client::connect(&format!("memory://{}", unique("on")), Options::default()).await.unwrap();
    let marker = unique("marker");
    let e = c.election(&marker).unwrap();
    e.campaign("x").await.unwrap();
    log.until("the record after turning on", |r| {
        r.election.as_deref() == Some(&*marker) && r.message.starts_with("elected")
    })
    .await;
    let after: Vec<_> = log.all()[before..].to_vec();
    assert!(after.iter().all(|r| r.election.as_deref() != Some("quiet")), "records while off: {after:?}");
    assert!(after.iter().all(|r| r.level <= Level::Info), "a debug record at level info: {after:?}");
    c.close().await.unwrap();

    // A level name that is not one.
    assert_eq!(Level::parse("chatty").unwrap_err().kind(), ErrorKind::InvalidArgument);
}
