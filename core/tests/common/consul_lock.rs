//! `consul lock NAME CMD` as a child process, for the interop tests of the Consul
//! backend (`consul.rs` on the plain agents, `consul_cluster.rs` through the
//! cluster's client agent).

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;

use super::{unique, within};

/// A running `consul lock NAME CMD`: CMD prints LOCKED once the lock is held and
/// runs until [`finish`](ConsulLock::finish) creates its stop file. Killed when
/// dropped.
pub struct ConsulLock {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    stop: PathBuf,
}

impl ConsulLock {
    /// Starts it against the agent at `addr` (`HOST:PORT`), with an ACL token if given.
    pub fn start_on(name: &str, addr: &str, token: Option<&str>) -> ConsulLock {
        let stop = std::env::temp_dir().join(unique("consul-lock-stop"));
        let cmd = format!("echo LOCKED; while [ ! -e '{}' ]; do sleep 0.05; done", stop.display());
        let mut command = tokio::process::Command::new("consul");
        command.args(["lock", name, &cmd]).env("CONSUL_HTTP_ADDR", addr).env_remove("CONSUL_HTTP_TOKEN");
        if let Some(t) = token {
            command.env("CONSUL_HTTP_TOKEN", t);
        }
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot run `consul` (tests/servers/install.sh consul installs it)");
        let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        ConsulLock { child, lines, stop }
    }

    /// Whether the child printed LOCKED within `within`.
    pub async fn locked_within(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, async {
            while let Some(l) = self.lines.next_line().await.unwrap() {
                if l.contains("LOCKED") {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false)
    }

    /// Lets CMD end, so `consul lock` releases the lock and exits; fails the test
    /// unless it exits with success within `bound`.
    pub async fn finish(mut self, bound: Duration) {
        std::fs::write(&self.stop, b"").unwrap();
        let st = within(bound, "consul lock exits", self.child.wait()).await.unwrap();
        assert!(st.success(), "consul lock exited with {st}");
        let _ = std::fs::remove_file(&self.stop);
    }
}

/// `consul lock` and ballot exclude each other on `e`'s election: ballot leads,
/// then `start` starts the lock, whose child does not run until ballot resigns;
/// then ballot waits (for `hold`, at least) until the child ends, and wins with a
/// higher term than the lock holder's. `live` bounds each wait for something that
/// must happen.
pub async fn excludes_ballot(e: &ballot::Election, start: impl FnOnce() -> ConsulLock, hold: Duration, live: Duration) {
    let lead = e.campaign("ballot").await.unwrap();
    let mut lock = start();
    assert!(!lock.locked_within(Duration::from_millis(1500)).await, "consul lock ran while ballot leads");
    e.resign().await.unwrap();
    assert!(lock.locked_within(live).await, "consul lock did not take over after resign");
    let holder = e.leader().await.unwrap().expect("consul lock holds");
    assert!(holder.term > lead.term());
    let e2 = e.clone();
    let mut campaign = tokio::spawn(async move { e2.campaign("ballot again").await });
    assert!(tokio::time::timeout(hold, &mut campaign).await.is_err(), "ballot won a held lock");
    lock.finish(live).await;
    let again = within(live, "ballot after consul lock", campaign).await.unwrap().unwrap();
    assert!(again.term() > holder.term);
}
