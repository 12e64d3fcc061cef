//! `ballot` and etcd's own `etcdctl elect` on one election, against the real etcd
//! that `tests/run.sh` starts: they exclude each other, each shows the other's
//! leader, and each takes over when the other leader goes away.
#![cfg(feature = "etcd")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ballot");
const LIVE: Duration = Duration::from_secs(15);
const QUIET: Duration = Duration::from_millis(1500);

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run `bash tests/run.sh`, or start etcd with tests/servers/harness.py and export its env"
        )
    })
}

/// A child process whose stdout lines arrive on a channel.
struct Proc {
    child: Child,
    lines: Receiver<String>,
    what: String,
}

impl Proc {
    fn spawn(what: &str, cmd: &mut Command) -> Proc {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| {
            panic!("{what}: cannot start: {e} (is etcdctl installed? tests/servers/install.sh etcd)")
        });
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Proc { child, lines, what: what.to_string() }
    }

    /// The next line, within `LIVE`.
    fn line(&self) -> String {
        self.lines.recv_timeout(LIVE).unwrap_or_else(|_| panic!("{}: no output line within {LIVE:?}", self.what))
    }

    /// Reads lines until one satisfies `f`.
    fn until(&self, f: impl Fn(&str) -> bool) -> String {
        loop {
            let l = self.line();
            if f(&l) {
                return l;
            }
        }
    }

    /// Asserts that nothing is printed for a while.
    fn quiet(&self) {
        if let Ok(l) = self.lines.recv_timeout(QUIET) {
            panic!("{}: printed {l:?} but should be waiting", self.what);
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of a child we own; no memory is passed.
        let r = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(r, 0, "kill {}", self.what);
    }

    fn wait(mut self) -> std::process::ExitStatus {
        for _ in 0..LIVE.as_millis() / 10 {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        panic!("{}: did not exit", self.what);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn etcdctl(endpoints: &str) -> Command {
    let mut c = Command::new("etcdctl");
    c.env("ETCDCTL_API", "3").arg(format!("--endpoints={endpoints}"));
    c
}

fn ballot(url: &str) -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("BALLOT_BACKEND").args(["--backend", url]);
    c
}

/// `ballot leader NAME --json`: (value, key).
fn ballot_leader(url: &str, name: &str) -> (String, String) {
    let out = ballot(url).args(["leader", name, "--json"]).output().unwrap();
    assert!(out.status.success(), "ballot leader: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["value"].as_str().unwrap().to_string(), v["key"].as_str().unwrap().to_string())
}

/// The first leader `etcdctl elect -l NAME` shows: (key, value).
fn etcdctl_observed_leader(endpoints: &str, name: &str) -> (String, String) {
    let obs = Proc::spawn("etcdctl elect -l", etcdctl(endpoints).args(["elect", "-l", name]));
    let key = obs.line();
    let value = obs.line();
    (key, value)
}

#[test]
fn ballot_and_etcdctl_elect_share_one_election() {
    let (url, eps) = (env("BALLOT_TEST_ETCD"), env("BALLOT_TEST_ETCD_ENDPOINTS"));
    let name = format!("interop-{}-{:x}", std::process::id(), std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos());

    // ballot leads; etcdctl waits and sees ballot's value.
    let a = Proc::spawn("ballot campaign a", ballot(&url).args(["campaign", &name, "ballot-a"]));
    let elected = a.until(|l| l.starts_with("elected"));
    let a_key = elected.split("key=").nth(1).unwrap().to_string();
    assert!(a_key.starts_with(&format!("{name}/")), "{elected}");
    let e = Proc::spawn("etcdctl elect", etcdctl(&eps).args(["elect", &name, "etcd-b"]));
    e.quiet();
    assert_eq!(etcdctl_observed_leader(&eps, &name), (a_key.clone(), "ballot-a".to_string()));

    // ballot resigns (SIGTERM): etcdctl takes over, and ballot shows its leader.
    a.signal(libc::SIGTERM);
    let e_key = e.line();
    assert_eq!(e.line(), "etcd-b");
    assert!(e_key.starts_with(&format!("{name}/")) && e_key != a_key, "{e_key}");
    assert!(a.wait().success());
    assert_eq!(ballot_leader(&url, &name), ("etcd-b".to_string(), e_key.clone()));

    // A ballot candidate waits behind etcdctl's leader ...
    let c = Proc::spawn("ballot campaign c", ballot(&url).args(["campaign", &name, "ballot-c"]));
    assert_eq!(c.line(), "campaigning");
    c.quiet();
    // ... and wins when etcdctl resigns (SIGINT).
    e.signal(libc::SIGINT);
    let elected = c.until(|l| l.starts_with("elected"));
    let c_key = elected.split("key=").nth(1).unwrap().to_string();
    assert!(e.wait().success());
    assert_eq!(etcdctl_observed_leader(&eps, &name), (c_key, "ballot-c".to_string()));
    c.signal(libc::SIGTERM);
    assert!(c.wait().success());

    // `ballot end` leaves nothing that etcdctl would take for a candidate: the next
    // `etcdctl elect` wins at once.
    let out = ballot(&url).args(["end", &name]).output().unwrap();
    assert!(out.status.success(), "ballot end: {}", String::from_utf8_lossy(&out.stderr));
    let z = Proc::spawn("etcdctl elect z", etcdctl(&eps).args(["elect", &name, "etcd-z"]));
    let z_key = z.line();
    assert_eq!(z.line(), "etcd-z");
    assert_eq!(etcdctl_observed_leader(&eps, &name), (z_key, "etcd-z".to_string()));
}

#[test]
fn etcdctl_takes_over_from_a_crashed_ballot_leader_after_its_ttl() {
    let (url, eps) = (env("BALLOT_TEST_ETCD"), env("BALLOT_TEST_ETCD_ENDPOINTS"));
    let name = format!("crash-{}-{:x}", std::process::id(), std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos());
    let short = format!("{url}?ttl=2s");
    let a = Proc::spawn("ballot campaign", ballot(&short).args(["campaign", &name, "ballot-a"]));
    a.until(|l| l.starts_with("elected"));
    let e = Proc::spawn("etcdctl elect", etcdctl(&eps).args(["elect", &name, "etcd-b"]));
    e.quiet();
    a.signal(libc::SIGKILL);
    let killed = std::time::Instant::now();
    e.line();
    assert_eq!(e.line(), "etcd-b");
    let took = killed.elapsed();
    eprintln!("etcdctl elected {took:?} after SIGKILL of the ballot leader (ttl 2s)");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(ballot_leader(&url, &name).0, "etcd-b");
    e.signal(libc::SIGINT);
    assert!(e.wait().success());
}

/// `ballot participants NAME [--json]` (stdout, asserting success).
fn ballot_participants(url: &str, name: &str, json: bool) -> String {
    let mut c = ballot(url);
    c.args(["participants", name]);
    if json {
        c.arg("--json");
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "ballot participants: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Waits until `ballot participants NAME --json` lists `n` participants.
fn participants_json(url: &str, name: &str, n: usize) -> Vec<serde_json::Value> {
    let until = std::time::Instant::now() + LIVE;
    loop {
        let v: serde_json::Value = serde_json::from_str(&ballot_participants(url, name, true)).unwrap();
        let list = v.as_array().expect("a JSON array").clone();
        if list.len() == n {
            return list;
        }
        assert!(std::time::Instant::now() < until, "{n} participants not within {LIVE:?}: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `ballot participants` lists an `etcdctl elect` candidate (its value not UTF-8)
/// among ballot's own, in queue order, as text and as JSON.
#[test]
fn ballot_participants_lists_an_etcdctl_elect_candidate_in_order() {
    use std::os::unix::ffi::OsStrExt;
    let (url, eps) = (env("BALLOT_TEST_ETCD"), env("BALLOT_TEST_ETCD_ENDPOINTS"));
    let name = format!("parts-{}-{:x}", std::process::id(), std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos());
    assert_eq!(ballot_participants(&url, &name, false), "", "nobody campaigns");
    assert_eq!(ballot_participants(&url, &name, true), "[]\n");
    let a = Proc::spawn("ballot campaign a", ballot(&url).args(["campaign", &name, "ballot-a"]));
    let a_key = a.until(|l| l.starts_with("elected")).split("key=").nth(1).unwrap().to_string();
    // Its output (the value, not UTF-8) is not read: the participants say it all.
    let mut e = etcdctl(&eps)
        .arg("elect")
        .arg(&name)
        .arg(std::ffi::OsStr::from_bytes(b"etcd-\xff\x1b[2J"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcdctl must be installed (tests/servers/install.sh etcd)");
    let list = participants_json(&url, &name, 2);
    let c = Proc::spawn("ballot campaign c", ballot(&url).args(["campaign", &name, "ballot-c"]));
    assert_eq!(c.line(), "campaigning");
    let list3 = participants_json(&url, &name, 3);
    assert_eq!(list3[..2], list[..]);
    assert_eq!(list3[0], serde_json::json!({"key": a_key, "value": "ballot-a", "leader": true}));
    let e_key = list3[1]["key"].as_str().unwrap().to_string();
    assert!(e_key.starts_with(&format!("{name}/")) && e_key != a_key, "{e_key}");
    assert_eq!(list3[1], serde_json::json!({"key": e_key, "value_hex": "657463642dff1b5b324a", "leader": false}));
    let c_key = list3[2]["key"].as_str().unwrap().to_string();
    assert_eq!(list3[2], serde_json::json!({"key": c_key, "value": "ballot-c", "leader": false}));
    assert_eq!(
        ballot_participants(&url, &name, false),
        format!(
            "leader key={a_key} value=ballot-a\nwaiting key={e_key} value=etcd-\\xff\\u{{1b}}[2J\nwaiting key={c_key} value=ballot-c\n"
        )
    );
    // ballot's leader resigns: etcdctl's candidate leads.
    a.signal(libc::SIGTERM);
    assert!(a.wait().success());
    let list = participants_json(&url, &name, 2);
    assert_eq!((list[0]["key"].as_str(), list[0]["leader"].as_bool()), (Some(e_key.as_str()), Some(true)));
    assert_eq!((list[1]["key"].as_str(), list[1]["leader"].as_bool()), (Some(c_key.as_str()), Some(false)));
    // SAFETY: kill(2) on the pid of a child we own.
    assert_eq!(unsafe { libc::kill(e.id() as i32, libc::SIGINT) }, 0);
    assert!(e.wait().unwrap().success());
    c.until(|l| l.starts_with("elected"));
    c.signal(libc::SIGTERM);
    assert!(c.wait().success());
}
