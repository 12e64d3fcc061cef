//! ZooKeeper-specific behaviour, against the real servers that tests/servers/harness.py
//! started (`BALLOT_TEST_ZK`, `BALLOT_TEST_ZK_ENSEMBLE`, `BALLOT_TEST_ZK_TLS`): interop
//! with Curator's LeaderLatch, digest auth and ACLs, a leader paused past its session
//! timeout, a member of the ensemble paused or killed under a leader, a server gone
//! silent under a join (through a relay the test controls), TLS (`zks://`) with its
//! refusals.
#![cfg(feature = "zookeeper")]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ballot::{Client, ErrorKind, Event, Options, State};
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

mod common;
use common::harness::{facts, harness};
use common::{unique, wait_event};

const LIVE: Duration = Duration::from_secs(20);

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: start the servers with tests/servers/harness.py (tests/run.sh does)")
    })
}

fn unix_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

async fn live<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIVE, f).await.unwrap_or_else(|_| panic!("{what}: not done within {LIVE:?}"))
}

async fn connect(url: &str, ttl: Duration) -> Client {
    Client::connect(url, Options::default().with_ttl(ttl)).await.unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

// ---------------------------------------------------------------------------
// Curator interop

/// A running `LatchMain` (core/tests/zk_interop/LatchMain.java).
struct Latch {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

const CURATOR_CP: &[&str] = &[
    "/usr/share/java/curator-client.jar",
    "/usr/share/java/curator-framework.jar",
    "/usr/share/java/curator-recipes.jar",
    "/usr/share/java/guava.jar",
    "/usr/share/java/zookeeper.jar",
    "/usr/share/java/zookeeper-jute.jar",
    "/usr/share/java/slf4j-api.jar",
    "/usr/share/java/slf4j-nop.jar",
];

/// Compiles LatchMain once per test process into a temporary directory.
fn latch_classes() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        for jar in CURATOR_CP {
            assert!(
                std::path::Path::new(jar).exists(),
                "{jar} is missing: install libcurator-recipes-java (tests/servers/install.sh zookeeper)"
            );
        }
        let out = std::env::temp_dir().join(unique("ballot-latchmain"));
        std::fs::create_dir_all(&out).unwrap();
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/zk_interop/LatchMain.java");
        let st = std::process::Command::new("javac")
            .arg("-d")
            .arg(&out)
            .arg("-cp")
            .arg(CURATOR_CP.join(":"))
            .arg(&src)
            .status()
            .expect("javac (Java 17) must be installed");
        assert!(st.success(), "javac failed on {}", src.display());
        out
    })
    .clone()
}

impl Latch {
    async fn start(connect: &str, path: &str, id: &str) -> Latch {
        let cp = format!("{}:{}", latch_classes().display(), CURATOR_CP.join(":"));
        let mut child = Command::new("java")
            .args(["-cp", &cp, "LatchMain", connect, path, id])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("java must be installed");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut l = Latch { child, stdin, lines };
        l.expect("STARTED").await;
        l
    }

    async fn line(&mut self) -> String {
        live("a line from LatchMain", self.lines.next_line()).await.unwrap().expect("LatchMain exited")
    }

    async fn expect(&mut self, want: &str) {
        loop {
            let l = self.line().await;
            if l == want {
                return;
            }
            assert!(!l.starts_with("UNKNOWN"), "{l}");
        }
    }

    /// The next line within `d`, if any.
    async fn line_within(&mut self, d: Duration) -> Option<String> {
        tokio::time::timeout(d, self.lines.next_line()).await.ok().and_then(|r| r.ok().flatten())
    }

    async fn send(&mut self, cmd: &str) {
        self.stdin.write_all(format!("{cmd}\n").as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Curator's `LeaderLatch.getLeader().getId()`.
    async fn leader_id(&mut self) -> String {
        self.send("leader").await;
        loop {
            let l = self.line().await;
            if let Some(id) = l.strip_prefix("LEADER_IS ") {
                return id.to_string();
            }
            if l == "LEADER_IS" {
                return String::new();
            }
        }
    }
    /// Curator's `LeaderLatch.getParticipants()`: ids in Curator's order, the
    /// leader's marked with `*`.
    async fn participants(&mut self) -> String {
        self.send("participants").await;
        loop {
            let l = self.line().await;
            if let Some(list) = l.strip_prefix("PARTICIPANTS ") {
                return list.to_string();
            }
        }
    }
}

/// ballot's participants as Curator's `participants` prints them.
fn as_curator(list: &[ballot::Participant]) -> String {
    list.iter()
        .map(|p| format!("{}{}", String::from_utf8_lossy(&p.value), if p.leader { "*" } else { "" }))
        .collect::<Vec<_>>()
        .join(",")
}

/// A Curator `LeaderLatch` among ballot candidates: `participants()` lists it in
/// its place, and agrees with Curator's own `getParticipants()`, before and
/// after the queue moves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_include_a_curator_latch_in_queue_order() {
    let base = env("BALLOT_TEST_ZK");
    let hosts = env("BALLOT_TEST_ZK_CONNECT");
    let name = unique("parts");
    let path = format!("/{name}");
    let (a, b) = (connect(&base, Duration::from_secs(4)).await, connect(&base, Duration::from_secs(4)).await);
    let (ea, eb, reader) = (a.election(&name).unwrap(), b.election(&name).unwrap(), b.election(&name).unwrap());
    ea.campaign("ballot-1").await.unwrap();
    let mut java = Latch::start(&hosts, &path, "java-1").await;
    let until =
        |n: usize| common::participants_until(&reader, LIVE, "participants", move |p| p.len() == n && p[0].leader);
    // Curator makes its node in the background after `start()`: wait for it, so
    // that ballot-2 joins after it.
    until(2).await;
    let wb = tokio::spawn({
        let eb = eb.clone();
        async move { eb.campaign("ballot-2").await }
    });
    let list = until(3).await;
    assert_eq!(as_curator(&list), "ballot-1*,java-1,ballot-2");
    assert_eq!(java.participants().await, "ballot-1*,java-1,ballot-2", "Curator's own view agrees");
    let latch = &list[1];
    assert!(latch.key.starts_with(&format!("{path}/_c_")) && latch.key.contains("-latch-"), "{}", latch.key);

    // The ballot leader resigns: the latch leads, in both views.
    ea.resign().await.unwrap();
    java.expect("LEADER").await;
    let list = until(2).await;
    assert_eq!(as_curator(&list), "java-1*,ballot-2");
    assert_eq!(java.participants().await, "java-1*,ballot-2");
    assert_eq!(reader.leader().await.unwrap().map(|l| l.key), Some(list[0].key.clone()));
    // The latch closes: ballot-2 leads.
    java.send("close").await;
    java.expect("CLOSED").await;
    live("ballot-2 wins", wb).await.unwrap().unwrap();
    assert_eq!(as_curator(&until(1).await), "ballot-2*");
    eb.resign().await.unwrap();
    java.send("exit").await;
    let _ = java.child.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_leader_latch_and_ballot_exclude_each_other_and_agree() {
    let base = env("BALLOT_TEST_ZK");
    let hosts = env("BALLOT_TEST_ZK_CONNECT");
    let name = unique("interop");
    let path = format!("/{name}");

    // Curator leads first; ballot waits and sees Curator's id as the leader's value.
    let mut java = Latch::start(&hosts, &path, "java-1").await;
    java.expect("LEADER").await;
    let c = connect(&base, Duration::from_secs(4)).await;
    let e = c.election(&name).unwrap();
    let e2 = e.clone();
    let mut waiting = tokio::spawn(async move { e2.campaign("ballot-1").await });
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), &mut waiting).await.is_err(),
        "ballot won beside Curator"
    );
    let seen = e.leader().await.unwrap().expect("a leader");
    assert_eq!(seen.value, b"java-1");
    assert!(seen.key.starts_with(&format!("{path}/_c_")) && seen.key.contains("-latch-"), "{}", seen.key);
    assert_eq!(java.leader_id().await, "java-1");

    // Curator steps down: ballot takes over, and Curator agrees.
    java.send("close").await;
    java.expect("CLOSED").await;
    let lead = live("ballot after Curator closed", waiting).await.unwrap().unwrap();
    assert!(lead.term() > seen.term, "terms increase across implementations");
    let mut java2 = Latch::start(&hosts, &path, "java-2").await;
    assert_eq!(java2.leader_id().await, "ballot-1");
    assert_eq!(java.leader_id().await, "ballot-1", "a closed latch still reads the leader");
    assert_eq!(java2.line_within(Duration::from_millis(1500)).await, None, "Curator won beside ballot");

    // ballot steps down: Curator takes over.
    e.resign().await.unwrap();
    java2.expect("LEADER").await;
    assert_eq!(e.leader().await.unwrap().map(|l| l.value), Some(b"java-2".to_vec()));

    // end() from ballot: ballot participants end, Curator's latch is not disturbed
    // (the epoch marker is never its predecessor), and a ballot handle made after
    // the end still queues behind Curator and wins when it leaves for good.
    let waiter = c.election(&name).unwrap();
    let w2 = waiter.clone();
    let ended = tokio::spawn(async move { w2.campaign("ballot-old").await });
    common::wait_state(&waiter, State::Campaigning, LIVE).await;
    c.election(&name).unwrap().end().await.unwrap();
    assert_eq!(live("ended", ended).await.unwrap().unwrap_err().kind(), ErrorKind::Ended);
    assert_eq!(java2.line_within(Duration::from_millis(1000)).await, None, "Curator reacted to end()");
    assert_eq!(java2.leader_id().await, "java-2");
    let fresh = connect(&base, Duration::from_secs(4)).await.election(&name).unwrap();
    let f2 = fresh.clone();
    let mut after = tokio::spawn(async move { f2.campaign("ballot-new").await });
    assert!(tokio::time::timeout(Duration::from_millis(1000), &mut after).await.is_err());
    // Curator's leader dies without closing: its session expires and ballot leads.
    java2.child.start_kill().unwrap();
    let killed = Instant::now();
    let lead = live("ballot after Curator was killed", after).await.unwrap().unwrap();
    assert_eq!(lead.value(), b"ballot-new");
    eprintln!("takeover after SIGKILL of the Curator leader: {:?}", killed.elapsed());
    assert_eq!(java.leader_id().await, "ballot-new");
    java.send("exit").await;
    let _ = java.child.wait().await;
}

// ---------------------------------------------------------------------------
// Auth and ACLs

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_keep_other_identities_out_and_wrong_credentials_are_auth_errors() {
    let connect_str = env("BALLOT_TEST_ZK_CONNECT");
    let ns = unique("auth");
    let good = format!("zk://owner:s3cret@{connect_str}/{ns}");
    let c = connect(&good, Duration::from_secs(4)).await;
    let e = c.election("svc").unwrap();
    let lead = e.campaign("owner").await.unwrap();

    // A plain client can neither delete the candidate node nor read the election.
    let anon = zookeeper_client::Client::connect(&connect_str).await.unwrap();
    let node = format!("/{ns}{}", lead.key());
    assert_eq!(anon.delete(&node, None).await, Err(zookeeper_client::Error::NoAuth));
    assert_eq!(anon.list_children(&format!("/{ns}/svc")).await, Err(zookeeper_client::Error::NoAuth));
    assert!(e.leader().await.unwrap().is_some_and(|l| l.key == lead.key()), "the node survived");
    assert_eq!(e.state(), State::Leader);
    // The node's ACL is creator-only, for the digest identity.
    let authed =
        zookeeper_client::Client::connector().with_auth("digest", b"owner:s3cret").connect(&connect_str).await.unwrap();
    let (acls, _) = authed.get_acl(&node).await.unwrap();
    assert_eq!(acls.len(), 1, "{acls:?}");
    assert_eq!((acls[0].scheme(), acls[0].id().split(':').next()), ("digest", Some("owner")));

    // Wrong password, no credentials: Auth errors, at connect (the chroot is theirs).
    for url in [format!("zk://owner:wrong@{connect_str}/{ns}"), format!("zk://{connect_str}/{ns}")] {
        let err = Client::connect(&url, Options::default()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Auth, "{url}: {err}");
        assert!(!err.to_string().contains("wrong"), "no password in messages: {err}");
    }
    // Without a chroot, on the first operation that touches the owner's nodes.
    let name = unique("auth-root");
    let root_owner = connect(&format!("zk://owner:s3cret@{connect_str}"), Duration::from_secs(4)).await;
    root_owner.election(&name).unwrap().campaign("x").await.unwrap();
    let intruder = connect(&format!("zk://owner:wrong@{connect_str}"), Duration::from_secs(4)).await;
    let ie = intruder.election(&name).unwrap();
    assert_eq!(ie.leader().await.unwrap_err().kind(), ErrorKind::Auth);
    assert_eq!(ie.campaign("y").await.unwrap_err().kind(), ErrorKind::Auth);
    // A token is not a ZooKeeper credential.
    let err = Client::connect(&format!("zk://token@{connect_str}"), Options::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_timeout_option_sets_the_ttl_in_force() {
    let base = env("BALLOT_TEST_ZK");
    let c = Client::connect(&format!("{base}/{}?session_timeout=3s", unique("st")), Options::default()).await.unwrap();
    assert_eq!(c.options().ttl(), Duration::from_secs(3));
    assert_eq!(c.options().safety_margin(), Duration::from_millis(600));
    let err = Client::connect(&format!("{base}?session_timeout=3s&ttl=5s"), Options::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    // The server clamps what it is asked for (2..20 ticks); the TTL reported is the
    // negotiated one, so the safety deadline is computed from it.
    let c = Client::connect(&format!("{base}?session_timeout=1s"), Options::default()).await.unwrap();
    assert!(c.options().ttl() >= Duration::from_secs(1), "{:?}", c.options().ttl());
    assert_eq!(c.election("a/./b").unwrap_err().kind(), ErrorKind::InvalidArgument);
}

/// Issue 15: `session_timeout=` is the TTL on ZooKeeper, so a different TTL from
/// `Options::with_ttl` contradicts it and is refused before anything is sent; the
/// same TTL is no contradiction. (No server: nothing listens on port 1.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_timeout_and_a_ttl_from_the_options_must_agree() {
    let url = "zk://127.0.0.1:1?session_timeout=3s&connect_timeout=2s";
    let err = Client::connect(url, Options::default().with_ttl(Duration::from_secs(5))).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("session_timeout"), "{err}");
    let err = Client::connect(url, Options::default().with_ttl(Duration::from_secs(3))).await.unwrap_err();
    assert_ne!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_value_round_trips_and_one_more_byte_is_refused() {
    let c = connect(&format!("{}/{}", env("BALLOT_TEST_ZK"), unique("big")), Duration::from_secs(4)).await;
    let e = c.election("svc").unwrap();
    // 1 MiB less 4 KiB, which leaves room for the path and the framing in
    // ZooKeeper's 1 MiB packet limit (jute.maxbuffer).
    let max = (1 << 20) - 4096;
    let err = e.campaign(vec![b'v'; max + 1]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    e.campaign(vec![b'v'; max]).await.unwrap();
    let l = e.leader().await.unwrap().unwrap();
    assert_eq!(l.value.len(), max);
    e.proclaim(vec![b'w'; max]).await.unwrap();
    assert_eq!(e.leader().await.unwrap().unwrap().value, vec![b'w'; max]);
    let err = e.proclaim(vec![b'x'; max + 1]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}

/// A leader's resign deletes its node by the version its own watch saw, without
/// reading it first, while that watch is quiet. A proclaim just before changes
/// the version while the watch's notification may still be on its way: the
/// resign must still remove the node (falling back to a read), every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resign_right_after_a_proclaim_removes_the_node() {
    let ns = unique("resign");
    let c = connect(&format!("{}/{ns}", env("BALLOT_TEST_ZK")), Duration::from_secs(4)).await;
    let zk = zookeeper_client::Client::connect(&format!("{}/{ns}", env("BALLOT_TEST_ZK_CONNECT")))
        .await
        .expect("a plain session to read the election");
    let e = c.election("svc").unwrap();
    for round in 0..20 {
        let lead = e.campaign("v").await.unwrap();
        if round % 2 == 1 {
            e.proclaim(format!("v{round}")).await.unwrap();
        }
        e.resign().await.unwrap();
        assert_eq!(zk.check_stat(lead.key()).await.unwrap(), None, "round {round}: the node is still there");
    }
}

// ---------------------------------------------------------------------------
// A leader paused past its session timeout

/// Not a test: the leader process that `paused_leader_never_acts_after_another_won`
/// starts and stops. It does nothing unless that test set `BALLOT_ZK_CHILD_URL`.
#[test]
#[ignore = "helper process, started by paused_leader_never_acts_after_another_won"]
fn zk_child_leader() {
    let (Ok(url), Ok(name)) = (std::env::var("BALLOT_ZK_CHILD_URL"), std::env::var("BALLOT_ZK_CHILD_ELECTION")) else {
        return;
    };
    let c = ballot::blocking::Client::connect(&url, Options::default().with_ttl(Duration::from_secs(4))).unwrap();
    let e = c.election(&name).unwrap();
    let _sub = e
        .on_event(|ev| {
            let kind = match ev {
                Event::Elected { .. } => "Elected",
                Event::Suspended => "Suspended",
                Event::Reconnected => "Reconnected",
                Event::Lost { .. } => "Lost",
                _ => return,
            };
            println!("EVENT {kind} {}", unix_ms());
        })
        .unwrap();
    e.campaign(b"child", None).unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        // What a real leader does before each unit of work: check that it leads.
        if e.state() == State::Leader {
            println!("LEADING {}", unix_ms());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_leader_never_acts_after_another_won() {
    let url = format!("{}/{}", env("BALLOT_TEST_ZK"), unique("pause"));
    let name = "svc";
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "zk_child_leader", "--ignored", "--nocapture", "--test-threads=1"])
        .env("BALLOT_ZK_CHILD_URL", &url)
        .env("BALLOT_ZK_CHILD_ELECTION", name)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap().to_string();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    live("child leads", async {
        loop {
            let l = lines.next_line().await.unwrap().expect("child exited");
            if l.contains("LEADING ") {
                return;
            }
        }
    })
    .await;
    let c = connect(&url, Duration::from_secs(4)).await;
    let e = c.election(name).unwrap();
    let e2 = e.clone();
    let mut mine = tokio::spawn(async move { e2.campaign("parent").await });
    assert!(tokio::time::timeout(Duration::from_millis(500), &mut mine).await.is_err());
    // Freeze the leader past its session timeout: the server expires it and hands
    // leadership to us while the leader cannot run a single instruction.
    let stop = std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    assert!(stop.success());
    let stopped = Instant::now();
    let lead = tokio::time::timeout(Duration::from_secs(15), mine).await;
    let won_at = unix_ms();
    let _ = std::process::Command::new("kill").args(["-CONT", &pid]).status();
    let lead = lead.expect("no takeover while the leader was paused").unwrap().unwrap();
    eprintln!("takeover {:?} after SIGSTOP of the leader", stopped.elapsed());
    assert_eq!(lead.value(), b"parent");
    // After SIGCONT the old leader reports the loss and never claims to lead again.
    let mut after = Vec::new();
    let lost = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(l)) = lines.next_line().await {
            after.push(l.clone());
            if l.contains("EVENT Lost") {
                return true;
            }
        }
        false
    })
    .await;
    // And keeps not leading for a while (it re-campaigns and waits behind us).
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(Some(l)) = lines.next_line().await {
            after.push(l);
        }
    })
    .await;
    assert_eq!(lost, Ok(true), "the paused leader reported Lost: {after:?}");
    for l in &after {
        if let Some(ts) = l.split("LEADING ").nth(1) {
            let ts: u128 = ts.trim().parse().unwrap();
            assert!(ts < won_at, "the old leader acted as leader at {ts} after we won at {won_at}: {after:?}");
        }
    }
    assert_eq!(e.state(), State::Leader);
    // The old leader campaigned again under a new session (auto-requeue): it wins
    // once we step down.
    e.resign().await.unwrap();
    live("the old leader is elected again", async {
        loop {
            let l = lines.next_line().await.unwrap().expect("child exited");
            if l.contains("EVENT Elected") {
                return;
            }
        }
    })
    .await;
    let again = e.leader().await.unwrap().expect("a leader");
    assert_eq!(again.value, b"child");
    assert!(again.term > lead.term());
    let _ = child.kill().await;
}

// ---------------------------------------------------------------------------
// The ensemble: the member under a leader is paused (the connection is cut) or
// killed. These tests change the ensemble, so they run one at a time.

static ENSEMBLE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A four-letter word's answer from the member on `port`.
fn four_letters(port: &str, word: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(format!("127.0.0.1:{port}")) else { return String::new() };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(word.as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Resumes or restarts member `i` when dropped, so a failing test leaves a whole
/// ensemble behind.
struct Restore {
    action: &'static str,
    member: String,
}

impl Drop for Restore {
    fn drop(&mut self) {
        harness("BALLOT_TEST_ZK_ENSEMBLE", &[self.action, "zk-ensemble", &self.member]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_off_leader_is_suspended_then_lost_before_another_wins() {
    let _one = ENSEMBLE.lock().await;
    let f = facts("BALLOT_TEST_ZK_ENSEMBLE");
    let ns = unique("cut");
    // The leader talks to a follower only, so that pausing it cuts just this client off.
    let i = (0..3)
        .find(|i| four_letters(&f[&format!("BALLOT_TEST_ZK_ENSEMBLE_{i}_PORT")], "srvr").contains("Mode: follower"))
        .expect("a follower");
    let others: Vec<String> = (0..3)
        .filter(|j| *j != i)
        .map(|j| format!("127.0.0.1:{}", f[&format!("BALLOT_TEST_ZK_ENSEMBLE_{j}_PORT")]))
        .collect();
    let a = connect(&format!("{}/{ns}", f[&format!("BALLOT_TEST_ZK_ENSEMBLE_{i}_URL")]), Duration::from_secs(4)).await;
    let b = connect(&format!("zk://{}/{ns}", others.join(",")), Duration::from_secs(4)).await;
    let (ea, eb) = (a.election("svc").unwrap(), b.election("svc").unwrap());
    let mut a_events = ea.events();
    ea.campaign("a").await.unwrap();
    let eb2 = eb.clone();
    let b_wins = tokio::spawn(async move {
        let l = eb2.campaign("b").await;
        (Instant::now(), l)
    });
    common::wait_state(&eb, State::Campaigning, LIVE).await;
    harness("BALLOT_TEST_ZK_ENSEMBLE", &["pause-member", "zk-ensemble", &i.to_string()]);
    let _restore = Restore { action: "resume-member", member: i.to_string() };
    let cut = Instant::now();
    let suspended = wait_event(&mut a_events, LIVE, "Suspended", |e| matches!(e, Event::Suspended)).await;
    assert_ne!(ea.state(), State::Leader);
    let lost = wait_event(&mut a_events, LIVE, "Lost", |e| matches!(e, Event::Lost { .. })).await;
    let (won, lead) = live("b wins", b_wins).await.unwrap();
    let lead = lead.unwrap();
    eprintln!("after the cut: Suspended {:?}, Lost {:?}, other leader {:?}", suspended - cut, lost - cut, won - cut);
    assert!(suspended <= lost && lost < won, "Suspended, then Lost, before another candidate won");
    assert_eq!(lead.value(), b"b");
    assert_ne!(ea.state(), State::Leader);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_member_under_a_leader_keeps_the_election_going() {
    let _one = ENSEMBLE.lock().await;
    let f = facts("BALLOT_TEST_ZK_ENSEMBLE");
    let url = format!("{}/{}", env("BALLOT_TEST_ZK_ENSEMBLE"), unique("kill"));
    let a = connect(&url, Duration::from_secs(6)).await;
    let b = connect(&url, Duration::from_secs(6)).await;
    let (ea, eb) = (a.election("svc").unwrap(), b.election("svc").unwrap());
    let mut a_events = ea.events();
    let lead = ea.campaign("a").await.unwrap();
    let eb2 = eb.clone();
    let mut b_wins = tokio::spawn(async move { eb2.campaign("b").await });
    // Which member serves the leader's session: the node's ephemeral owner, found in
    // the members' connection lists.
    let raw = zookeeper_client::Client::connect(&env("BALLOT_TEST_ZK_ENSEMBLE_CONNECT")).await.unwrap();
    let chroot = url.rsplit_once('/').unwrap().1;
    let (_, stat) = raw.get_data(&format!("/{chroot}{}", lead.key())).await.unwrap();
    let sid = format!("sid=0x{:x}", stat.ephemeral_owner as u64);
    drop(raw);
    let i = (0..3)
        .find(|i| four_letters(&f[&format!("BALLOT_TEST_ZK_ENSEMBLE_{i}_PORT")], "cons").contains(&sid))
        .expect("the member that serves the leader's session");
    harness("BALLOT_TEST_ZK_ENSEMBLE", &["kill-member", "zk-ensemble", &i.to_string()]);
    let _restore = Restore { action: "restart-member", member: i.to_string() };
    let killed = Instant::now();
    wait_event(&mut a_events, LIVE, "Suspended", |e| matches!(e, Event::Suspended)).await;
    wait_event(&mut a_events, LIVE, "Reconnected", |e| matches!(e, Event::Reconnected)).await;
    eprintln!("leader reconnected {:?} after its member was killed", killed.elapsed());
    assert_eq!(ea.state(), State::Leader, "the session moved to another member with its leadership");
    assert!(tokio::time::timeout(Duration::from_millis(500), &mut b_wins).await.is_err(), "two leaders");
    // The election carries on: a hand-over still works.
    ea.resign().await.unwrap();
    let lb = live("b after resign", b_wins).await.unwrap().unwrap();
    assert!(lb.term() > lead.term());
    assert_eq!(eb.leader().await.unwrap().map(|l| l.value), Some(b"b".to_vec()));
}

/// CURATOR-696: while a leader is cut off, its node is replaced by one of the same
/// name owned by another session. After the reconnect, the old leader must find
/// that the node is not its own and step down instead of leading again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnected_leader_checks_that_its_node_is_still_its_own() {
    let _one = ENSEMBLE.lock().await;
    let f = facts("BALLOT_TEST_ZK_ENSEMBLE");
    let ns = unique("owner");
    let i = (0..3)
        .find(|i| four_letters(&f[&format!("BALLOT_TEST_ZK_ENSEMBLE_{i}_PORT")], "srvr").contains("Mode: follower"))
        .expect("a follower");
    let others: Vec<String> = (0..3)
        .filter(|j| *j != i)
        .map(|j| format!("127.0.0.1:{}", f[&format!("BALLOT_TEST_ZK_ENSEMBLE_{j}_PORT")]))
        .collect();
    let a = connect(&format!("{}/{ns}", f[&format!("BALLOT_TEST_ZK_ENSEMBLE_{i}_URL")]), Duration::from_secs(10)).await;
    let ea = a.election("svc").unwrap();
    let mut a_events = ea.events();
    let lead = ea.campaign("a").await.unwrap();
    let impostor =
        zookeeper_client::Client::connect(&format!("{}/{ns}", others.join(","))).await.expect("impostor session");

    harness("BALLOT_TEST_ZK_ENSEMBLE", &["pause-member", "zk-ensemble", &i.to_string()]);
    let restore = Restore { action: "resume-member", member: i.to_string() };
    wait_event(&mut a_events, LIVE, "Suspended", |e| matches!(e, Event::Suspended)).await;
    // Same path, same data, another owner.
    impostor.delete(lead.key(), None).await.unwrap();
    impostor
        .create(
            lead.key(),
            b"a",
            &zookeeper_client::CreateMode::Ephemeral.with_acls(zookeeper_client::Acls::anyone_all()),
        )
        .await
        .unwrap();
    drop(restore); // resume: the leader's session reconnects, still alive
    let outcome = live("the old leader decides", async {
        while let Some(ev) = a_events.next().await {
            match ev {
                Event::Reconnected => return Err("claimed leadership again on a node it does not own"),
                Event::Lost { reason } => return Ok(reason),
                _ => {}
            }
        }
        Err("events ended")
    })
    .await;
    let reason = outcome.unwrap();
    eprintln!("the reconnected leader stepped down: {reason}");
    assert_ne!(ea.state(), State::Leader);
    // Stepping down removed nothing that belongs to the other session. A read on
    // the old leader's session first: ZooKeeper answers a session's requests in
    // order, so a delete it sent while stepping down is applied by now.
    let _ = ea.leader().await;
    let (_, stat) = impostor.get_data(lead.key()).await.expect("the other session's node is still there");
    assert_eq!(stat.ephemeral_owner, impostor.session_id().0);
    drop(impostor);
}

// ---------------------------------------------------------------------------
// A server that goes silent, through a relay the test controls.

/// A TCP relay to a ZooKeeper server that can go silent: its connections stay
/// open but nothing passes either way, as with a frozen server or a partition
/// that drops packets. Only this test's client goes through it, so the shared
/// server stays untouched.
struct Relay {
    port: u16,
    silent: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(upstream: String) -> Relay {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let silent = std::sync::Arc::new(AtomicBool::new(false));
        let flag = silent.clone();
        let task = tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let flag = flag.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(up) = tokio::net::TcpStream::connect(&upstream).await else { return };
                    let (mut dr, mut dw) = down.into_split();
                    let (mut ur, mut uw) = up.into_split();
                    // Reads go on while silent (and are dropped), so no side sees
                    // the connection close.
                    async fn pump(
                        r: &mut tokio::net::tcp::OwnedReadHalf,
                        w: &mut tokio::net::tcp::OwnedWriteHalf,
                        silent: &AtomicBool,
                    ) {
                        use tokio::io::AsyncReadExt;
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            match r.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) if !silent.load(Ordering::SeqCst) => {
                                    if w.write_all(&buf[..n]).await.is_err() {
                                        return;
                                    }
                                }
                                Ok(_) => {}
                            }
                        }
                    }
                    tokio::join!(pump(&mut dr, &mut uw, &flag), pump(&mut ur, &mut dw, &flag));
                });
            }
        });
        Relay { port, silent, task }
    }

    fn silence(&self, on: bool) {
        self.silent.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A join reads the election's epoch first, retrying while the connection is down.
/// Joins run to completion even when their campaign is given up, so that read must
/// stop by itself: when the server stays silent for a session timeout, the join
/// fails with a `Connection` error (the campaign's error; under auto-requeue an
/// `Error` event) instead of retrying for as long as the silence lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_gives_up_reading_the_epoch_of_a_silent_server() {
    let relay = Relay::start(env("BALLOT_TEST_ZK_CONNECT")).await;
    let ns = unique("silent");
    let ttl = Duration::from_secs(4);
    let c = connect(&format!("zk://127.0.0.1:{}/{ns}", relay.port), ttl).await;
    let e = c.election("svc").unwrap();
    // The election's watch is open before the silence, so that the campaign goes
    // straight to the join.
    let mut observed = e.observe();
    assert_eq!(live("the first snapshot", observed.next()).await.unwrap().unwrap(), None);

    relay.silence(true);
    let cut = Instant::now();
    // The session still reads healthy for a while (its last answer is recent), so
    // the campaign joins at once, and the join's first read meets the silence.
    let bound = ttl + Duration::from_secs(10);
    let r = tokio::time::timeout(bound, e.campaign("a"))
        .await
        .unwrap_or_else(|_| panic!("the campaign still waited {bound:?} after the server went silent"));
    let err = r.expect_err("no leader can be elected through a silent server");
    eprintln!("the campaign failed {:?} after the silence: {err}", cut.elapsed());
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");

    // Heard again: the client gets a session and the election works.
    relay.silence(false);
    let lead = live("a campaign after the silence", async {
        loop {
            match e.campaign("a").await {
                Ok(l) => return l,
                Err(err) => {
                    eprintln!("campaign while the session comes back: {err}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    })
    .await;
    assert_eq!(lead.value(), b"a");
    c.close().await.unwrap();
}

// ---------------------------------------------------------------------------
// TLS (`zk-tls`: secureClientPort on Netty, client certificates required)

/// `zks://HOST:PORT/ns?ca=..&cert=..&key=..` on the harness's TLS server, with the
/// userinfo `auth` (`user:password@`, or empty) and `extra` options.
fn zks_url(host: &str, auth: &str, ns: &str, ca: &str, extra: &str) -> String {
    let port = env("BALLOT_TEST_ZK_TLS_PORT");
    let (cert, key) = (env("BALLOT_TEST_ZK_TLS_CERT"), env("BALLOT_TEST_ZK_TLS_KEY"));
    format!("zks://{auth}{host}:{port}/{ns}?ca={ca}&cert={cert}&key={key}{extra}")
}

/// A TLS connect that must fail: within the connect timeout (2 s, plus slack for a
/// loaded machine, still below the 5 s default), as a `Connection` error that
/// names TLS and `why`.
async fn refused_over_tls(url: &str, why: &[&str]) {
    let err = common::within(Duration::from_secs(4), url, Client::connect(url, Options::default()))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{url}: {err}");
    let msg = err.to_string();
    assert!(msg.contains("TLS"), "the error names TLS: {msg}");
    assert!(why.iter().any(|w| msg.contains(w)), "the error says why ({why:?}): {msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_sessions_carry_digest_credentials_and_their_acls() {
    let ca = env("BALLOT_TEST_ZK_TLS_CA");
    let ns = unique("tls");
    let good = zks_url("127.0.0.1", "owner:s3cret-tls@", &ns, &ca, "");
    let a = connect(&good, Duration::from_secs(4)).await;
    assert!(!format!("{a:?} {}", a.url()).contains("s3cret-tls"), "password shown: {a:?}");
    let n = unique("svc");
    let e = a.election(&n).unwrap();
    let lead = e.campaign("over tls").await.unwrap();
    let b = connect(&good, Duration::from_secs(4)).await;
    let l = b.election(&n).unwrap().leader().await.unwrap().unwrap();
    assert_eq!((l.value.as_slice(), l.term), (&b"over tls"[..], lead.term()));
    // The candidate node's ACL is creator-only. Over TLS, ZooKeeper authenticates
    // the client certificate too (scheme x509), so the creator is the digest
    // identity and the certificate's subject: both get the node.
    let tls = zookeeper_client::TlsOptions::new()
        .with_pem_ca(&std::fs::read_to_string(&ca).unwrap())
        .unwrap()
        .with_pem_identity(
            &std::fs::read_to_string(env("BALLOT_TEST_ZK_TLS_CERT")).unwrap(),
            &std::fs::read_to_string(env("BALLOT_TEST_ZK_TLS_KEY")).unwrap(),
        )
        .unwrap();
    let raw = zookeeper_client::Client::connector()
        .with_tls(tls)
        .with_auth("digest", b"owner:s3cret-tls")
        .secure_connect(&env("BALLOT_TEST_ZK_TLS_CONNECT"))
        .await
        .unwrap();
    let (acls, _) = raw.get_acl(&format!("/{ns}{}", lead.key())).await.unwrap();
    let mut ids: Vec<_> =
        acls.iter().map(|a| format!("{}:{}", a.scheme(), a.id().split(':').next().unwrap_or(""))).collect();
    ids.sort();
    assert_eq!(ids, ["digest:owner", "x509:CN=ballot"], "{acls:?}");
    // So a wrong password with the same certificate still reaches the nodes, and
    // is no error: the certificate is the identity that matters.
    let url = zks_url("127.0.0.1", "owner:wrong@", &ns, &ca, "");
    let c = Client::connect(&url, Options::default()).await.unwrap();
    assert_eq!(c.election(&n).unwrap().leader().await.unwrap().map(|l| l.term), Some(lead.term()));
    c.close().await.unwrap();
    b.close().await.unwrap();
    a.close().await.unwrap();
    // The same over `zk://` with `tls=1`, and with the files in the options.
    let port = env("BALLOT_TEST_ZK_TLS_PORT");
    let (cert, key) = (env("BALLOT_TEST_ZK_TLS_CERT"), env("BALLOT_TEST_ZK_TLS_KEY"));
    let tls1 = format!("zk://owner:s3cret-tls@127.0.0.1:{port}/{ns}?tls=1&ca={ca}&cert={cert}&key={key}");
    let files = ballot::TlsOptions { ca: Some(ca.clone().into()), cert: Some(cert.into()), key: Some(key.into()) };
    let by_options = Options::default().with_tls(files);
    for (url, o) in [(tls1, Options::default()), (format!("zks://owner:s3cret-tls@127.0.0.1:{port}/{ns}"), by_options)]
    {
        let c = Client::connect(&url, o).await.unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(c.election(&n).unwrap().leader().await.unwrap(), None, "{url}: the leader resigned");
        c.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_that_the_ca_did_not_sign_is_refused_naming_tls() {
    let url = zks_url("127.0.0.1", "", &unique("tls"), &env("BALLOT_TEST_ZK_TLS_OTHER_CA"), "&connect_timeout=2s");
    // An unrelated CA (another name): rustls finds no issuer for the server's certificate.
    refused_over_tls(&url, &["invalid peer certificate: UnknownIssuer"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_name_that_the_certificate_does_not_hold_is_refused_naming_tls() {
    // The harness's certificate names IP 127.0.0.1 only.
    let url = zks_url("localhost", "", &unique("tls"), &env("BALLOT_TEST_ZK_TLS_CA"), "&connect_timeout=2s");
    refused_over_tls(&url, &["certificate not valid for name \"localhost\""]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zks_to_a_plaintext_server_never_falls_back() {
    let port = env("BALLOT_TEST_ZK_PORT");
    let (ca, cert, key) = (env("BALLOT_TEST_ZK_TLS_CA"), env("BALLOT_TEST_ZK_TLS_CERT"), env("BALLOT_TEST_ZK_TLS_KEY"));
    let url = format!("zks://127.0.0.1:{port}?ca={ca}&cert={cert}&key={key}&connect_timeout=2s");
    refused_over_tls(&url, &["closed the connection", "no hosts", "no session"]).await;
    // And plaintext to the TLS server finds no ZooKeeper there either.
    let plain = format!("zk://127.0.0.1:{}?connect_timeout=2s", env("BALLOT_TEST_ZK_TLS_PORT"));
    let err = Client::connect(&plain, Options::default()).await.map(|_| ()).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout), "{err}");
}

/// A server that accepts the TCP connection and never answers the handshake: a
/// `Connection` error that names TLS within the connect timeout, not a hang and
/// not the connect's `Timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_silent_in_the_handshake_is_a_connection_error_within_the_connect_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = listener.accept().await {
            conns.push(c);
        }
    });
    let (ca, cert, key) = (env("BALLOT_TEST_ZK_TLS_CA"), env("BALLOT_TEST_ZK_TLS_CERT"), env("BALLOT_TEST_ZK_TLS_KEY"));
    let url = format!("zks://127.0.0.1:{port}?ca={ca}&cert={cert}&key={key}&connect_timeout=2s");
    refused_over_tls(&url, &["no session within"]).await;
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_options_that_cannot_work_are_invalid_arguments() {
    let (ca, cert, key) = (env("BALLOT_TEST_ZK_TLS_CA"), env("BALLOT_TEST_ZK_TLS_CERT"), env("BALLOT_TEST_ZK_TLS_KEY"));
    for (url, says) in [
        (format!("zks://127.0.0.1:1?cert={cert}&key={key}"), "ca="),
        (format!("zks://127.0.0.1:1?ca={ca}&cert={cert}"), "both cert and key"),
        (format!("zks://127.0.0.1:1?ca={ca}&tls=0"), "tls=0"),
        (format!("zk://127.0.0.1:1?ca={ca}"), "need TLS"),
        ("zks://127.0.0.1:1?ca=/nonexistent/ca.pem".to_string(), "/nonexistent/ca.pem"),
        (format!("zks://127.0.0.1:1?ca={key}"), "ca"),
    ] {
        let err = Client::connect(&url, Options::default()).await.map(|_| ()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{url}: {err}");
        assert!(err.to_string().contains(says), "{url}: {err}");
    }
}
