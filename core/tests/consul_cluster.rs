//! Consul as deployed: 3 servers with their data on disk behind a client agent
//! (the harness kind `consul-cluster`), ballot talking to the client agent.
//! SIGKILL of the Raft leader server under a ballot leader, `consul lock` through
//! the client agent, a rolling restart of the servers (data kept, terms keep
//! increasing), a restart of the client agent under a leader. These tests change
//! the cluster, so they run one at a time.
#![cfg(feature = "consul")]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballot::{Client, Election, Event, LostReason, Options, State};
use futures_util::StreamExt;

mod common;
use common::consul_lock::{self, ConsulLock};
use common::harness::{facts, harness};
use common::{unique, wait_event, wait_state};

const LIVE: Duration = Duration::from_secs(15);
/// The session TTL of the setup (Consul's minimum).
const TTL: Duration = Duration::from_secs(10);

static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: start consul-cluster with tests/servers/harness.py (tests/run.sh does)")
    })
}

/// Restarts member `i` when dropped (with its data), so a failing test leaves a
/// whole cluster behind.
struct Restore(usize);

impl Drop for Restore {
    fn drop(&mut self) {
        harness("BALLOT_TEST_CONSUL_CLUSTER", &["restart-member", "consul-cluster", &self.0.to_string()]);
    }
}

fn url(ns: &str) -> String {
    format!("{}/{ns}?lock_delay=0s&ttl=10s", env("BALLOT_TEST_CONSUL_CLUSTER"))
}

async fn connect(url: &str) -> Client {
    Client::connect(url, Options::default()).await.unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

async fn live<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    common::within(LIVE, what, f).await
}

/// The Raft leader's server RPC address as the agent on `http_port` sees it ("" when none).
async fn raft_leader_seen_by(http_port: &str) -> String {
    let Ok(r) = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{http_port}/v1/status/leader"))
        .timeout(Duration::from_secs(1))
        .send()
        .await
    else {
        return String::new();
    };
    r.json::<String>().await.unwrap_or_default()
}

/// Counts the moments at which two handles both say they lead, until dropped.
struct NeverTwo {
    stop: Arc<AtomicBool>,
    both: Arc<AtomicUsize>,
}

impl NeverTwo {
    fn watch(handles: Vec<Election>) -> NeverTwo {
        let (stop, both) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let (s, b) = (stop.clone(), both.clone());
        tokio::spawn(async move {
            while !s.load(Ordering::SeqCst) {
                if handles.iter().filter(|e| e.state() == State::Leader).count() > 1 {
                    b.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        NeverTwo { stop, both }
    }

    fn seen(&self) -> usize {
        self.both.load(Ordering::SeqCst)
    }
}

impl Drop for NeverTwo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The first `Elected` of either event stream with a term above `above`: which
/// stream (0 or 1), its term, and when it arrived.
async fn next_elected(streams: [&mut ballot::Events; 2], above: u64) -> (usize, u64, Instant) {
    let [x, y] = streams;
    loop {
        let (i, ev) = tokio::select! {
            ev = x.next() => (0, ev),
            ev = y.next() => (1, ev),
        };
        match ev {
            Some(Event::Elected { term }) if term > above => return (i, term, Instant::now()),
            Some(_) => {}
            None => panic!("events ended before a new leader was elected"),
        }
    }
}

/// Issue 20: two candidates through the client agent (TTL 10 s, no lock delay),
/// SIGKILL of the Raft leader server. The servers take 5 to 18 s to elect another
/// Raft leader (Consul's default timing), so the ballot leader's session runs past
/// its local deadline: it is told `suspended`, then `lost`. Consul still holds
/// that session and its lock, and a new Raft leader gives it 2 x TTL more; the
/// client destroys the session it lost as soon as the cluster answers, so the
/// next candidate takes over within a TTL of the cluster's return (it waited 20 s
/// longer before), and at no moment do two candidates lead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_raft_leader_server_hands_over_once_the_cluster_answers() {
    let _one = CLUSTER.lock().await;
    let f = facts("BALLOT_TEST_CONSUL_CLUSTER");
    let url = url(&unique("raftkill"));
    let (a, b) = (connect(&url).await, connect(&url).await);
    let (ea, eb) = (a.election("svc").unwrap(), b.election("svc").unwrap());
    let (mut a_events, mut b_events) = (ea.events(), eb.events());
    let lead = ea.campaign("a").await.unwrap();
    let eb2 = eb.clone();
    let _b_campaign = tokio::spawn(async move { eb2.campaign("b").await });
    wait_state(&eb, State::Campaigning, LIVE).await;
    let two = NeverTwo::watch(vec![ea.clone(), eb.clone()]);

    let old: usize = harness("BALLOT_TEST_CONSUL_CLUSTER", &["consul-leader"]).trim().parse().expect("a leader index");
    let old_addr = format!("127.0.0.1:{}", f[&format!("BALLOT_TEST_CONSUL_CLUSTER_{old}_SERVER_PORT")]);
    harness("BALLOT_TEST_CONSUL_CLUSTER", &["kill-member", "consul-cluster", &old.to_string()]);
    let _restore = Restore(old);
    let killed = Instant::now();
    // When a surviving server knows a new Raft leader.
    let survivors: Vec<String> =
        (0..3).filter(|i| *i != old).map(|i| f[&format!("BALLOT_TEST_CONSUL_CLUSTER_{i}_PORT")].clone()).collect();
    let back = tokio::spawn(async move {
        loop {
            for p in &survivors {
                let l = raft_leader_seen_by(p).await;
                if !l.is_empty() && l != old_addr {
                    return Instant::now();
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    // The old leader is told, in order, before anyone else leads.
    let bound = 2 * LIVE + TTL;
    let suspended = wait_event(&mut a_events, bound, "Suspended", |e| matches!(e, Event::Suspended)).await;
    let lost = wait_event(&mut a_events, bound, "Lost", |e| matches!(e, Event::Lost { .. })).await;
    let (who, term, elected) =
        common::within(bound, "a new leader", next_elected([&mut a_events, &mut b_events], lead.term())).await;
    let back = common::within(bound, "a new Raft leader", back).await.unwrap();
    eprintln!(
        "after SIGKILL of the Raft leader server: suspended {:.1?}, lost {:.1?}, new Raft leader {:.1?}, \
         new ballot leader ({}) {:.1?}: {:.1?} after the cluster answered again",
        suspended - killed,
        lost - killed,
        back - killed,
        ["a", "b"][who],
        elected - killed,
        elected.saturating_duration_since(back),
    );
    assert!(suspended <= lost && lost <= elected, "suspended, then lost, before a new leader");
    assert!(
        elected.saturating_duration_since(back) <= TTL,
        "the next candidate took {:?} after the cluster had a Raft leader again (bound: the TTL, {TTL:?})",
        elected.saturating_duration_since(back)
    );
    assert!(term > lead.term());
    assert_eq!(two.seen(), 0, "two candidates led at once");
    let now = ea.leader().await.unwrap().expect("a leader");
    assert_eq!(now.term, term);
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// `consul lock` through the client agent.
fn consul_lock(name: &str) -> ConsulLock {
    ConsulLock::start_on(name, &env("BALLOT_TEST_CONSUL_CLUSTER_HTTP_ADDR"), None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_lock_through_the_client_agent_excludes_ballot() {
    let _one = CLUSTER.lock().await;
    // No namespace: `consul lock NAME` and ballot's `NAME` are the same lock.
    let name = unique("interop");
    let c = connect(&format!("{}?lock_delay=0s", env("BALLOT_TEST_CONSUL_CLUSTER"))).await;
    let e = c.election(&name).unwrap();
    consul_lock::excludes_ballot(&e, || consul_lock(&name), Duration::from_millis(1500), LIVE).await;
    c.close().await.unwrap();
}

/// Every server restarted in turn, the Raft leader among them, each from its own
/// data directory: the election's keys survive and terms keep increasing (a `-dev`
/// agent forgets both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_restarted_with_their_data_keep_terms_increasing() {
    let _one = CLUSTER.lock().await;
    let url = url(&unique("restart"));
    let c = connect(&url).await;
    c.election("svc").unwrap().end().await.unwrap();
    let e = c.election("svc").unwrap();
    let mut last = e.campaign("v0").await.unwrap().term();
    e.resign().await.unwrap();
    let leader_first: usize =
        harness("BALLOT_TEST_CONSUL_CLUSTER", &["consul-leader"]).trim().parse().expect("a leader index");
    let order: Vec<usize> = std::iter::once(leader_first).chain((0..3).filter(|i| *i != leader_first)).collect();
    for i in order {
        harness("BALLOT_TEST_CONSUL_CLUSTER", &["restart-member", "consul-cluster", &i.to_string()]);
        // The client's session may have been lost while the Raft leader was away;
        // either way the campaign wins under a term above every earlier one.
        let e = c.election("svc").unwrap();
        let lead = live("campaign after a server restart", e.campaign(format!("v{i}"))).await.unwrap();
        assert!(lead.term() > last, "term {} after {last} (server {i} restarted)", lead.term());
        last = lead.term();
        e.resign().await.unwrap();
    }
    // An end() now is the second one: the first survived every restart.
    let watcher = c.election("svc").unwrap();
    let mut events = watcher.events();
    let w2 = watcher.clone();
    let _camp = tokio::spawn(async move { w2.campaign("w").await });
    wait_state(&watcher, State::Leader, LIVE).await;
    c.election("svc").unwrap().end().await.unwrap();
    wait_event(&mut events, LIVE, "Ended", |ev| matches!(ev, Event::Ended)).await;
    let (st, body) = {
        let r = reqwest::get(format!(
            "http://{}/v1/kv/{}/svc/.epoch?raw",
            env("BALLOT_TEST_CONSUL_CLUSTER_HTTP_ADDR"),
            url.split('/').nth(3).unwrap().split('?').next().unwrap()
        ))
        .await
        .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!((st, body.trim()), (200, "2"), "the epoch counted both end() calls across the restarts");
    c.close().await.unwrap();
}

/// The client agent ballot talks to is killed under a leader and started again:
/// the leader is told `suspended`, then `reconnected` (the session outlived the
/// agent) or `lost` (Consul invalidated it with the agent's node), and in the
/// second case it campaigns again and leads under a higher term.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_of_the_client_agent_under_a_leader() {
    let _one = CLUSTER.lock().await;
    let client = env("BALLOT_TEST_CONSUL_CLUSTER_CLIENT_INDEX");
    let c = connect(&url(&unique("agent"))).await;
    let e = c.election("svc").unwrap();
    let mut events = e.events();
    let lead = e.campaign("a").await.unwrap();
    harness("BALLOT_TEST_CONSUL_CLUSTER", &["kill-member", "consul-cluster", &client]);
    let restore = Restore(client.parse().unwrap());
    let killed = Instant::now();
    wait_event(&mut events, TTL, "Suspended", |ev| matches!(ev, Event::Suspended)).await;
    assert_ne!(e.state(), State::Leader);
    drop(restore); // the agent comes back with its data
    let outcome = live("Reconnected or Lost", async {
        while let Some(ev) = events.next().await {
            match ev {
                Event::Reconnected => return None,
                Event::Lost { reason } => return Some(reason),
                _ => {}
            }
        }
        panic!("events ended");
    })
    .await;
    eprintln!("after the client agent's restart ({:.1?}): {outcome:?}", killed.elapsed());
    match outcome {
        None => assert_eq!(e.state(), State::Leader),
        Some(reason) => {
            assert!(matches!(reason, LostReason::SessionLost | LostReason::Deleted), "{reason:?}");
            // Requeued at once: elected again, above the old term.
            let term = live("elected again", async {
                loop {
                    if let Some(Event::Elected { term }) = events.next().await {
                        return term;
                    }
                }
            })
            .await;
            assert!(term > lead.term());
        }
    }
    let now = e.leader().await.unwrap().expect("a leader");
    assert_eq!(now.value, b"a");
    c.close().await.unwrap();
}
