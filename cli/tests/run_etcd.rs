//! `ballot run` against the real etcd that `tests/run.sh` starts: its command's
//! whole tree is gone before another candidate can win, also when `ballot run` is
//! SIGKILLed, when the command ignores SIGTERM and the lease is revoked or runs out,
//! and it is paused while leadership is suspended.
//!
//! The tests freeze the etcd server (SIGSTOP) in turn, so they run one at a time.
#![cfg(feature = "etcd")]

mod common;

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;

/// One test at a time: a frozen server would disturb the others.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Freezes the etcd server (SIGSTOP) until dropped (SIGCONT), also when the test fails.
struct Frozen(i32);

impl Frozen {
    fn new() -> Frozen {
        let pid: i32 = env("BALLOT_TEST_ETCD_PID").parse().unwrap();
        // SAFETY: kill(2) on the server the harness started for these tests.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// issue 14: a SIGKILLed `ballot run` left its command's grandchildren running.
#[test]
fn sigkill_of_run_leaves_no_descendant_before_the_next_leader() {
    let _serial = serial();
    sigkill_of_run_leaves_nothing_behind(&format!("{}?ttl=2s", env("BALLOT_TEST_ETCD")));
}

/// issue 14: `--grace` (10 s by default) ran past the moment the server could let
/// another candidate win. A command that ignores SIGTERM must be SIGKILLed when the
/// lease is revoked (the record is gone: at once), not after the grace.
#[test]
fn a_command_ignoring_sigterm_is_killed_at_once_when_the_lease_is_revoked() {
    let _serial = serial();
    let (url, eps) = (env("BALLOT_TEST_ETCD"), env("BALLOT_TEST_ETCD_ENDPOINTS"));
    let name = unique("run-revoke");
    let script = "trap '' TERM; sleep 1000 & sleep 1000; :";
    let mut a =
        Proc::spawn("ballot run", ballot(&url).args(["run", &name, "--grace", "600s", "--", "sh", "-c", script]), true);
    let elected = a.until("elected");
    let key = elected.split("key=").nth(1).unwrap().split(';').next().unwrap().to_string();
    let lease = key.rsplit('/').next().unwrap();
    let t = command_tree(&a, 2);
    let pids: Vec<i32> = t.iter().map(|(p, _)| *p).collect();
    let _cleanup = KillOnDrop(pids.clone());
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={eps}"))
        .args(["lease", "revoke", lease])
        .output()
        .unwrap();
    assert!(out.status.success(), "etcdctl lease revoke {lease}: {}", String::from_utf8_lossy(&out.stderr));
    let revoked = Instant::now();
    let lost = a.until("leadership lost");
    // A liveness bound far below the 600 s grace.
    assert_eq!(a.wait(Duration::from_secs(10)).code(), Some(4), "exit 4: lost");
    eprintln!("{lost}\nthe tree was gone {:?} after the revoke", revoked.elapsed());
    let left: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "{left:?} of {t:?} outlived `ballot run`");
}

/// The same command under a session that runs out (the server frozen past the
/// TTL): SIGKILL comes at `Lost`, not after the grace, so before the server can
/// expire the lease, and the next leader is elected only after the tree is gone.
#[test]
fn a_command_ignoring_sigterm_is_killed_before_the_lease_can_expire() {
    let _serial = serial();
    let url = format!("{}?ttl=3s", env("BALLOT_TEST_ETCD"));
    let name = unique("run-expire");
    let script = "trap '' TERM; sleep 1000 & sleep 1000; :";
    let mut a =
        Proc::spawn("ballot run", ballot(&url).args(["run", &name, "--grace", "600s", "--", "sh", "-c", script]), true);
    let t = command_tree(&a, 2);
    let pids: Vec<i32> = t.iter().map(|(p, _)| *p).collect();
    let _cleanup = KillOnDrop(pids.clone());
    let b = Proc::spawn("ballot campaign b", ballot(&url).args(["campaign", &name, "b"]), false);
    b.until("campaigning");
    let frozen = Frozen::new();
    let lost = a.until("leadership lost");
    // A liveness bound far below the 600 s grace.
    assert_eq!(a.wait(Duration::from_secs(10)).code(), Some(4));
    let left: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "{left:?} of {t:?} outlived `ballot run`");
    assert!(lost.contains("killing the command (SIGKILL)"), "SIGKILL at once, not after the grace: {lost}");
    drop(frozen);
    b.until("elected");
}

/// issue 14: a suspended leader must not act. By default the command's tree is
/// stopped (SIGSTOP) on `Suspended` and continued on `Reconnected`; with
/// `--on-suspend keep` it runs on.
#[test]
fn suspended_leadership_pauses_the_command_until_reconnected() {
    let _serial = serial();
    // A long TTL leaves time between Suspended (TTL/2) and Lost (TTL - margin).
    let url = format!("{}?ttl=8s", env("BALLOT_TEST_ETCD"));
    let script = "sleep 1000 & sleep 1000; :";
    let (n1, n2) = (unique("run-stop"), unique("run-keep"));
    let mut stop = Proc::spawn("ballot run", ballot(&url).args(["run", &n1, "--", "sh", "-c", script]), true);
    let mut keep = Proc::spawn(
        "ballot run --on-suspend keep",
        ballot(&url).args(["run", &n2, "--on-suspend", "keep", "--", "sh", "-c", script]),
        true,
    );
    // The command's processes, without the supervisor (the first).
    let stop_cmd: Vec<i32> = command_tree(&stop, 2).iter().skip(1).map(|(p, _)| *p).collect();
    let keep_cmd: Vec<i32> = command_tree(&keep, 2).iter().skip(1).map(|(p, _)| *p).collect();
    let _cleanup = KillOnDrop(stop_cmd.iter().chain(&keep_cmd).copied().collect());
    let frozen = Frozen::new();
    stop.until("pausing the command");
    keep.until("the command keeps running");
    wait_for("the command's tree is stopped", Duration::from_secs(2), || {
        stop_cmd.iter().all(|&p| state(p) == Some('T'))
    });
    assert!(keep_cmd.iter().all(|&p| state(p) != Some('T')), "--on-suspend keep: {keep_cmd:?}");
    drop(frozen);
    stop.until("resuming the command");
    wait_for("the command's tree runs again", Duration::from_secs(2), || {
        stop_cmd.iter().all(|&p| state(p).is_some_and(|s| s != 'T'))
    });
    stop.signal(libc::SIGTERM);
    keep.signal(libc::SIGTERM);
    assert_eq!(stop.wait(LIVE).code(), Some(128 + libc::SIGTERM));
    assert_eq!(keep.wait(LIVE).code(), Some(128 + libc::SIGTERM));
    assert!(stop_cmd.iter().chain(&keep_cmd).all(|&p| !alive(p)));
}

/// `--requeue` keeps a waiting `ballot run` in the election when its session is
/// lost under it (the lease revoked): it exited with `session_lost` before.
#[test]
fn requeue_campaigns_again_when_the_session_is_lost_while_waiting() {
    let _serial = serial();
    let (url, eps) = (env("BALLOT_TEST_ETCD"), env("BALLOT_TEST_ETCD_ENDPOINTS"));
    let name = unique("run-requeue");
    let dir = std::env::temp_dir().join(unique("ballot-run-requeue"));
    std::fs::create_dir_all(&dir).unwrap();
    let started = dir.join("started");
    let a = Proc::spawn("ballot campaign a", ballot(&url).args(["campaign", &name, "a"]), false);
    a.until("elected");
    let script = format!("echo $BALLOT_TERM > {}; exec sleep 1000", started.display());
    let mut b = Proc::spawn(
        "ballot run --requeue",
        ballot(&url).args(["run", &name, "--requeue", "--", "sh", "-c", &script]),
        true,
    );
    let etcdctl = |args: &[&str]| {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={eps}"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "etcdctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let prefix = format!("{name}/");
    let mut keys = Vec::new();
    wait_for("b queues", LIVE, || {
        keys = etcdctl(&["get", &prefix, "--prefix", "--keys-only", "--sort-by=CREATE"])
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        keys.len() == 2
    });
    let b_lease = keys[1].rsplit('/').next().unwrap().to_string();
    etcdctl(&["lease", "revoke", &b_lease]);
    b.until("campaigning again");
    a.signal(libc::SIGTERM);
    wait_for("b's command starts", LIVE, || started.exists());
    b.signal(libc::SIGTERM);
    assert_eq!(b.wait(LIVE).code(), Some(128 + libc::SIGTERM));
    let _ = std::fs::remove_dir_all(dir);
}

/// Found by the chaos suite's run mode: at `Lost` the library withdraws the record
/// at once, so when the connection works again at that moment another candidate
/// wins within milliseconds. A command that ignores SIGTERM was SIGKILLed only
/// after the safety margin, and ran beside the next leader's command.
#[test]
fn a_loss_kills_at_once_because_the_next_candidate_may_win_at_once() {
    let _serial = serial();
    let url = env("BALLOT_TEST_ETCD");
    let name = unique("run-handover");
    let script = "trap '' TERM; sleep 1000 & sleep 1000; :";
    let short = format!("{url}?ttl=3s");
    let mut a = Proc::spawn(
        "ballot run",
        ballot(&short).args(["run", &name, "--grace", "600s", "--", "sh", "-c", script]),
        true,
    );
    // The command's processes: the supervisor (the first) only kills and reaps.
    let t: Vec<(i32, String)> = command_tree(&a, 2).into_iter().skip(1).collect();
    let pids: Vec<i32> = t.iter().map(|(p, _)| *p).collect();
    let _cleanup = KillOnDrop(pids.clone());
    // b's session outlives the freeze below; a's does not.
    let long = format!("{url}?ttl=20s");
    let b = Proc::spawn("ballot campaign b", ballot(&long).args(["campaign", &name, "b"]), false);
    b.until("campaigning");
    let frozen = Frozen::new();
    a.until("leadership lost");
    // The server hears a's withdrawal as soon as it runs again, and b wins.
    drop(frozen);
    b.until("elected");
    let left: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "b was elected while {left:?} of {t:?} ran");
    assert_eq!(a.wait(LIVE).code(), Some(4));
}
