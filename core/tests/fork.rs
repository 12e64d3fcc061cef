//! A forked child gets its own library runtime. tokio does not support a runtime
//! used across fork(): the child inherits the parent's runtime object but none of
//! its threads, so before the runtime was keyed by process a child's first client
//! hung forever. Its own test binary; its tests take `SERIAL`, so no other test
//! thread is alive at fork().

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ballot::blocking::Client;
use ballot::{ErrorKind, Options};

mod common;

/// Held by every test here: a fork while another test runs would copy that test's
/// locks in whatever state they are.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits for `pid` (our child) up to `limit`; kills it after that and panics.
fn reap(pid: libc::pid_t, limit: Duration, what: &str) -> libc::c_int {
    let deadline = Instant::now() + limit;
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return status;
        }
        if Instant::now() > deadline {
            // SAFETY: kills and reaps our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("{what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_forked_child_can_connect_and_campaign() {
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("ballot-fork-test-{}", std::process::id()));
    let url = format!("file://{}", dir.display());
    // The parent builds the runtime and uses it before forking.
    let parent = Client::connect(&url, Options::default()).expect("parent connect");
    let e = parent.election("fork/parent").expect("election");
    e.campaign(b"parent", Some(Duration::from_secs(10))).expect("parent campaign");

    // SAFETY: the child only calls the library and then `_exit`s; it never returns
    // into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = Client::connect(&url, Options::default())
            .and_then(|c| c.election("fork/child"))
            .and_then(|e| e.campaign(b"child", Some(Duration::from_secs(10))).map(|l| l.term()))
            .is_ok();
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let status = reap(pid, Duration::from_secs(30), "the forked child hung: its library runtime had no threads");
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child status {status}");
    assert_eq!(e.state(), ballot::State::Leader, "the child must not disturb the parent");
    parent.close().expect("close");
    std::fs::remove_dir_all(dir).ok();
}

/// A child made by fork() without exec shares the leader's lock (one open file
/// description). A resign in the parent must free the election anyway, while the
/// child still lives: the lock is released explicitly, not by closing.
#[test]
fn a_resign_in_the_parent_frees_the_election_while_a_forked_child_lives() {
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("ballot-fork-resign-{}", std::process::id()));
    let url = format!("file://{}", dir.display());
    let a = Client::connect(&url, Options::default()).expect("connect a");
    let b = Client::connect(&url, Options::default()).expect("connect b");
    let ea = a.election("fork/resign").expect("election");
    let eb = b.election("fork/resign").expect("election");
    let first = ea.campaign(b"a", Some(Duration::from_secs(10))).expect("a campaigns");

    let mut fds = [0; 2];
    // SAFETY: a pipe for our own child; `fds` has room for both ends.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child only reads a pipe and `_exit`s (async-signal-safe calls).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let mut byte = 0u8;
        // SAFETY: reads one byte into a local; then ends the child without running
        // the parent's exit handlers or destructors.
        unsafe {
            libc::close(fds[1]);
            libc::read(fds[0], (&mut byte as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    // SAFETY: our copy of the read end.
    unsafe { libc::close(fds[0]) };

    ea.resign().expect("a resigns");
    let won = eb.campaign(b"b", Some(Duration::from_secs(5)));
    // Let the child go before asserting, so that a failure does not leave it behind.
    // SAFETY: closing our write end ends the child's read.
    unsafe { libc::close(fds[1]) };
    let status = reap(pid, Duration::from_secs(30), "the forked child did not exit");
    assert!(libc::WIFEXITED(status), "child status {status}");
    let second = won.expect("b must win once a resigned, even while a's forked child lives");
    assert!(second.term() > first.term());
    a.close().expect("close a");
    b.close().expect("close b");
    std::fs::remove_dir_all(dir).ok();
}

/// A child forked from a process that used ZooKeeper cannot use the ZooKeeper
/// client library (its I/O reactor does not survive fork); its connect fails at
/// once with a `Connection` error that says why, for plain and TLS URLs alike.
/// Before ballot checked, such a connect mostly failed with an unrelated error
/// and sometimes hung for good (a forked Python child on zk-tls, in CI).
#[test]
fn a_child_forked_after_zookeeper_was_used_is_refused_at_once() {
    let _serial = serial();
    for kind in ["zk", "zk-tls"] {
        let Some(b) = common::backend(kind) else { continue };
        let url = b.with_query(&format!("{}/{}", b.url, common::unique("fork")));
        let parent = Client::connect(&url, Options::default().with_ttl(b.ttl)).expect("parent connect");
        let e = parent.election("svc").expect("election");
        e.campaign(b"parent", Some(Duration::from_secs(10))).expect("parent campaign");
        for round in 0..5 {
            let mut fds = [0; 2];
            // SAFETY: a pipe for the child's report.
            assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
            // SAFETY: the child calls the library, writes to the pipe and `_exit`s;
            // it never returns into the test harness.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                let report = match Client::connect(&url, Options::default().with_ttl(b.ttl)) {
                    Ok(_) => "connected".to_string(),
                    Err(e) if e.kind() == ErrorKind::Connection => format!("connection: {e}"),
                    Err(e) => format!("other: {e}"),
                };
                // SAFETY: writes the report to the pipe and ends the child without
                // running the parent's exit handlers.
                unsafe {
                    libc::write(fds[1], report.as_ptr().cast(), report.len());
                    libc::_exit(0);
                }
            }
            // SAFETY: the parent's copy of the write end.
            unsafe { libc::close(fds[1]) };
            let what = format!("{kind} round {round}: the forked child's connect hung");
            let status = reap(pid, Duration::from_secs(30), &what);
            assert!(libc::WIFEXITED(status), "{kind}: child status {status}");
            let mut buf = vec![0u8; 4096];
            // SAFETY: reads the child's report from our end of the pipe, then closes it.
            let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
            unsafe { libc::close(fds[0]) };
            let report = String::from_utf8_lossy(&buf[..n.max(0) as usize]).to_string();
            assert!(
                report.starts_with("connection: ") && report.contains("forked from process"),
                "{kind} round {round}: {report}"
            );
        }
        assert_eq!(e.state(), ballot::State::Leader, "{kind}: the children must not disturb the parent");
        parent.close().expect("close");
    }
}
