//! The `ballot` binary, driven as a user would.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ballot");

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ballot-cli-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn backend(dir: &Path) -> String {
    format!("file://{}", dir.join("backend").display())
}

fn ballot(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env_remove("BALLOT_BACKEND").output().unwrap()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

/// Whether `pid` runs (a zombie, dead but not yet reaped by its new parent, does not).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

fn spawn_run(url: &str, log: &Path) -> Child {
    let script = format!("echo \"start $$ $BALLOT_TERM $BALLOT_ELECTION\" >> {}; exec sleep 60", log.display());
    Command::new(BIN)
        .args(["--backend", url, "run", "jobs/nightly", "--grace", "1s", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn run_starts_only_one_child_and_hands_over_on_sigkill() {
    let dir = tmpdir("run");
    let (url, log) = (backend(&dir), dir.join("log"));
    let mut a = spawn_run(&url, &log);
    wait_until("first child starts", Duration::from_secs(10), || lines(&log).len() == 1);
    let mut b = spawn_run(&url, &log);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(lines(&log).len(), 1, "a second child started while the first leader lives: {:?}", lines(&log));
    let first: Vec<String> = lines(&log)[0].split(' ').map(str::to_owned).collect();
    let (child_a, term_a): (i32, u64) = (first[1].parse().unwrap(), first[2].parse().unwrap());
    assert_eq!(first[3], "jobs/nightly");

    a.kill().unwrap(); // SIGKILL of the leading `ballot run`
    let took = wait_until("the other child starts", Duration::from_secs(1), || lines(&log).len() == 2);
    eprintln!("handover after SIGKILL: {took:?}");
    let second: Vec<String> = lines(&log)[1].split(' ').map(str::to_owned).collect();
    let term_b: u64 = second[2].parse().unwrap();
    assert!(term_b > term_a, "BALLOT_TERM increases: {term_a} -> {term_b}");
    // The orphaned child died with its `ballot run` (PR_SET_PDEATHSIG).
    wait_until("the first child is gone", Duration::from_millis(200), || !alive(child_a));
    let _ = a.wait();

    // SIGTERM: the child is stopped and leadership released.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(b.id() as i32, libc::SIGTERM) };
    let status = b.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    let out = ballot(&["--backend", &url, "leader", "jobs/nightly"]);
    assert_eq!(out.status.code(), Some(3), "no leader after the run stopped");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn run_exits_with_the_commands_status_and_resigns() {
    let dir = tmpdir("status");
    let url = backend(&dir);
    let out = ballot(&["--backend", &url, "run", "e", "--", "sh", "-c", "test \"$BALLOT_TERM\" -ge 1 && exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(ballot(&["--backend", &url, "leader", "e"]).status.code(), Some(3));
    let out = ballot(&["--backend", &url, "run", "e", "--", "/nonexistent/cmd"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot start"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn demo_prints_a_timeline_and_the_failover_last() {
    let out = ballot(&["demo"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("killed with SIGKILL while leading"), "{stdout}");
    assert_eq!(stdout.matches(" elected term=").count(), 2, "{stdout}");
    let last = stdout.lines().last().unwrap();
    let ms: f64 = last
        .strip_prefix("failover ")
        .and_then(|r| r.strip_suffix(" ms"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("last line {last:?}"));
    // A liveness bound only; the figure itself is reported by bench/.
    assert!(ms > 0.0 && ms < 5000.0, "{last}");
}

#[test]
fn leader_observe_end_and_campaign() {
    let dir = tmpdir("cmds");
    let url = backend(&dir);
    let mut camp = Command::new(BIN)
        .args(["--backend", &url, "campaign", "svc", "node-1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(camp.stdout.take().unwrap());
    let mut line = String::new();
    use std::io::BufRead;
    loop {
        line.clear();
        out.read_line(&mut line).unwrap();
        if line.starts_with("elected ") {
            break;
        }
    }
    assert!(line.starts_with("elected term=1 key="), "{line}");
    let l = ballot(&["--backend", &url, "leader", "svc", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&l.stdout).unwrap();
    assert_eq!((v["value"].as_str(), v["term"].as_u64()), (Some("node-1"), Some(1)));
    assert!(v["key"].as_str().is_some());

    let mut obs = Command::new(BIN).args(["--backend", &url, "observe", "svc"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut olines = std::io::BufReader::new(obs.stdout.take().unwrap()).lines();
    assert!(olines.next().unwrap().unwrap().starts_with("term=1 "));
    let end = ballot(&["--backend", &url, "end", "svc"]);
    assert!(end.status.success());
    assert_eq!(camp.wait().unwrap().code(), Some(5), "campaign exits 5 when ended");
    let rest: Vec<String> = olines.map(|l| l.unwrap()).collect();
    assert_eq!(rest.last().map(String::as_str), Some("ended"), "{rest:?}");
    assert_eq!(obs.wait().unwrap().code(), Some(5));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_input_is_one_line_with_the_kind_and_exit_2() {
    for args in [
        vec!["--backend", "nope://x", "leader", "svc"],
        vec!["--backend", "file:///tmp/x?bogus=1", "leader", "svc"],
        vec!["--backend", "file:///tmp/ballot-cli-bad", "leader", "a//b"],
        vec!["--backend", "file:///tmp/ballot-cli-bad", "leader", ""],
    ] {
        let out = ballot(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("ballot: error: invalid_argument: "), "{err}");
    }
    let out = ballot(&["leader"]);
    assert_eq!(out.status.code(), Some(2));
    let help = ballot(&["--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Exit codes:"));
}
