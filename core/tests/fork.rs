//! A forked child gets its own library runtime. tokio does not support a runtime
//! used across fork(): the child inherits the parent's runtime object but none of
//! its threads, so before the runtime was keyed by process a child's first client
//! hung forever. Its own test binary, so no other test thread is alive at fork().

use std::time::{Duration, Instant};

use ballot::blocking::Client;
use ballot::Options;

#[test]
fn a_forked_child_can_connect_and_campaign() {
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
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if Instant::now() > deadline {
            // SAFETY: kills and reaps our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the forked child hung: its library runtime had no threads");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child status {status}");
    assert_eq!(e.state(), ballot::State::Leader, "the child must not disturb the parent");
    parent.close().expect("close");
    std::fs::remove_dir_all(dir).ok();
}
