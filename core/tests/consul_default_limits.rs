//! One client holds many elections against a `consul agent -dev` with Consul's
//! default limits (200 HTTP connections per client address; issue 18). The test
//! starts its own agent (the harness kind `consul-default`) in a state directory of
//! its own and stops it at the end: 1,000 elections led by one client, the
//! connections the process holds to the agent counted, a loss and an `end()` that
//! reach leaders whose waits are beyond the budget of direct blocking queries, and
//! waiting candidates beyond that budget that win after their leaders resign.
#![cfg(feature = "consul")]

use std::path::PathBuf;
use std::time::Duration;

use ballot::{Client, Election, Event, LostReason, Options, State};
use futures_util::{stream, StreamExt};

mod common;
use common::{unique, wait_event, wait_state, within};

/// Elections led by the one client: five times what the agent's limit would allow
/// with one connection per blocking query.
const ELECTIONS: usize = 1000;
/// Waiting candidates: more than the whole budget of direct blocking queries (64).
const WAITING: usize = 70;
/// Consul's default `limits.http_max_conns_per_client`.
const AGENT_LIMIT: usize = 200;
const LIVE: Duration = Duration::from_secs(30);

/// The agent this test started; stopped (by the harness, by PID) when dropped.
struct Agent {
    dir: PathBuf,
    addr: String,
}

fn harness(args: &[&str], dir: &PathBuf) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/servers/harness.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args(args)
        .arg("--dir")
        .arg(dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("python3 must be installed");
    assert!(out.status.success(), "harness {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Agent {
    fn start() -> Agent {
        let dir = std::env::temp_dir().join(unique("ballot-consul-default"));
        let out = harness(&["start", "consul-default"], &dir);
        let addr = out
            .lines()
            .find_map(|l| l.strip_prefix("BALLOT_TEST_CONSUL_DEFAULT_HTTP_ADDR="))
            .expect("the harness names the agent's HTTP address")
            .trim_matches('\'')
            .to_string();
        Agent { dir, addr }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        harness(&["stop"], &self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Established TCP connections of this network namespace to `port` on loopback:
/// this process's connections to the agent (nothing else talks to it).
fn connections_to(port: u16) -> usize {
    let text = std::fs::read_to_string("/proc/net/tcp").expect("reading /proc/net/tcp");
    let want = format!(":{port:04X}");
    text.lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[2].ends_with(&want) && f[3] == "01"
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_holds_1000_elections_under_the_default_connection_limit() {
    let agent = Agent::start();
    let port: u16 = agent.addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
    let ns = unique("limits");
    let url = format!("consul://{}/{ns}?lock_delay=0s&ttl=10s", agent.addr);
    let client = Client::connect(&url, Options::default()).await.expect("connect");

    // 1,000 leaders on one client. Each keeps a loss watch and an epoch watch:
    // 2,000 waits, which one connection each would put far above the limit.
    let led: Vec<(Election, u64)> = within(
        Duration::from_secs(300),
        "1,000 campaigns",
        stream::iter(0..ELECTIONS)
            .map(|i| {
                let client = client.clone();
                async move {
                    let e = client.election(&format!("e{i}")).expect("a valid name");
                    let l = e.campaign(format!("v{i}")).await.unwrap_or_else(|err| panic!("campaign e{i}: {err}"));
                    (e, l.term())
                }
            })
            .buffered(64)
            .collect(),
    )
    .await;
    let (elections, terms): (Vec<Election>, Vec<u64>) = led.into_iter().unzip();
    assert!(elections.iter().all(|e| e.state() == State::Leader));
    let held = connections_to(port);
    assert!(held < AGENT_LIMIT, "{held} connections to the agent: its limit is {AGENT_LIMIT}");

    // A loss and an end() reach the leaders whose waits the shared query serves
    // (the last elections: the direct budget was spent long before them).
    let wakes = ballot::__consul_shared_wakes();
    let lost = &elections[ELECTIONS - 1];
    let mut events = lost.events();
    let http = reqwest::Client::new();
    let lock_key = format!("http://{}/v1/kv/{ns}/e{}/.lock", agent.addr, ELECTIONS - 1);
    let deleted = http.delete(&lock_key).send().await.expect("DELETE .lock");
    assert!(deleted.status().is_success(), "{}", deleted.status());
    wait_event(&mut events, LIVE, "Lost(Deleted) after .lock was deleted", |ev| {
        matches!(ev, Event::Lost { reason: LostReason::Deleted })
    })
    .await;
    let other = Client::connect(&url, Options::default()).await.expect("connect the other client");
    other.election(&format!("e{}", ELECTIONS - 2)).unwrap().end().await.expect("end()");
    wait_state(&elections[ELECTIONS - 2], State::Ended, LIVE).await;
    assert!(ballot::__consul_shared_wakes() > wakes, "the shared query woke none of these waits");

    // Waiting candidates on the same client, one per election, more than the whole
    // budget: most wait through the shared query. Each wins once its leader resigns.
    let waiting: Vec<Election> = (0..WAITING).map(|i| client.election(&format!("e{i}")).unwrap()).collect();
    let campaigns: Vec<_> = waiting
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, e)| tokio::spawn(async move { e.campaign(format!("w{i}")).await.map(|l| l.term()) }))
        .collect();
    for e in &elections[..WAITING] {
        common::participants_until(e, LIVE, "the second candidate is queued", |p| p.len() == 2).await;
    }
    let before = ballot::__consul_shared_wakes();
    for e in &elections[..WAITING] {
        e.resign().await.expect("resign");
    }
    for (i, c) in campaigns.into_iter().enumerate() {
        let term = within(LIVE, "the waiting candidate wins", c).await.expect("the task").expect("campaign");
        assert!(term > terms[i], "e{i}: term {term} after {}", terms[i]);
        assert_eq!(waiting[i].state(), State::Leader, "e{i}");
    }
    assert!(ballot::__consul_shared_wakes() > before, "no waiting candidate was woken by the shared query");
    let held = connections_to(port);
    assert!(held < AGENT_LIMIT, "{held} connections to the agent: its limit is {AGENT_LIMIT}");

    other.close().await.expect("close");
    client.close().await.expect("close");
}
