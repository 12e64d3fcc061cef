//! `ballot demo`: N candidate processes, kill the leader, measure the failover.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::{exit, format_leader, monotonic_ns, CliResult, Fail};

const ELECTION: &str = "demo";
const WAIT: Duration = Duration::from_secs(20);

struct Line {
    who: usize,
    text: String,
    mono_ns: u128,
}

fn parse(who: usize, raw: &str) -> Line {
    let (text, mono) = match raw.rsplit_once(" mono_ns=") {
        Some((t, m)) => (t.to_string(), m.parse().unwrap_or_else(|_| monotonic_ns())),
        None => (raw.to_string(), monotonic_ns()),
    };
    Line { who, text, mono_ns: mono }
}

fn ms(from: u128, to: u128) -> f64 {
    to.saturating_sub(from) as f64 / 1e6
}

/// Removes the demo's directory and kills leftover candidates, whatever happens.
struct Cleanup {
    dir: Option<std::path::PathBuf>,
    children: Vec<tokio::process::Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.start_kill();
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

pub(crate) async fn demo(backend: Option<String>, n: u32) -> CliResult {
    let n = n as usize;
    let mut cleanup = Cleanup { dir: None, children: Vec::new() };
    let url = match backend {
        Some(u) => u,
        None => {
            let dir =
                std::env::temp_dir().join(format!("ballot-demo-{}-{}", std::process::id(), monotonic_ns() % 1_000_000));
            cleanup.dir = Some(dir.clone());
            format!("file://{}", dir.display())
        }
    };
    let exe =
        std::env::current_exe().map_err(|e| Fail::new(exit::ERROR, format!("cannot find the ballot binary: {e}")))?;
    crate::refuse_in_process(&url)?;
    println!(
        "ballot demo: {n} candidate processes campaign in election {ELECTION:?} on {}",
        ballot::surface::shown_url(&url)
    );
    let start = monotonic_ns();
    let (tx, mut rx) = mpsc::unbounded_channel::<Line>();
    let mut pids = Vec::new();
    for i in 0..n {
        let mut child = tokio::process::Command::new(&exe)
            .args(["--backend", &url, "campaign", ELECTION, &format!("candidate-{i}"), "--monotonic"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Fail::new(exit::ERROR, format!("cannot start candidate {i}: {e}")))?;
        pids.push(child.id().unwrap_or(0));
        let Some(out) = child.stdout.take() else {
            return Err(Fail::new(exit::ERROR, "candidate stdout missing"));
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if tx.send(parse(i, &l)).is_err() {
                    return;
                }
            }
        });
        cleanup.children.push(child);
    }
    drop(tx);

    let show = |l: &Line, pids: &[u32]| {
        println!("{:>9.1} ms  candidate-{} (pid {:>6})  {}", ms(start, l.mono_ns), l.who, pids[l.who], l.text);
    };
    let mut campaigning = 0;
    let mut leader: Option<(usize, String)> = None;
    let deadline = tokio::time::Instant::now() + WAIT;
    while campaigning < n || leader.is_none() {
        let l = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .map_err(|_| {
                Fail::new(exit::ERROR, "timeout: the candidates did not start and elect a leader within 20 s")
            })?
            .ok_or_else(|| Fail::new(exit::ERROR, "the candidates exited before electing a leader"))?;
        show(&l, &pids);
        if l.text == "campaigning" {
            campaigning += 1;
        } else if let Some(rest) = l.text.strip_prefix("elected ") {
            leader = Some((l.who, rest.to_string()));
        }
    }
    let Some((old, old_term)) = leader else { return Err(Fail::new(exit::ERROR, "no leader")) };
    // Let every follower reach its blocking wait before the crash.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let kill_at = monotonic_ns();
    // SAFETY: signalling a child we started and have not reaped.
    unsafe { libc::kill(pids[old] as i32, libc::SIGKILL) };
    println!(
        "{:>9.1} ms  candidate-{old} (pid {:>6})  killed with SIGKILL while leading ({old_term})",
        ms(start, kill_at),
        pids[old]
    );

    let deadline = tokio::time::Instant::now() + WAIT;
    let (new, failover) = loop {
        let l = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .map_err(|_| Fail::new(exit::ERROR, "timeout: no new leader within 20 s of killing the leader"))?
            .ok_or_else(|| Fail::new(exit::ERROR, "the candidates exited without a new leader"))?;
        show(&l, &pids);
        if l.who != old && l.text.starts_with("elected ") {
            break (l.who, ms(kill_at, l.mono_ns));
        }
    };

    let client = ballot::Client::connect(&url, ballot::Options::default()).await?;
    let now = client.election(ELECTION)?.leader().await?;
    println!("{:>9.1} ms  leader() now: {}", ms(start, monotonic_ns()), format_leader(now.as_ref(), false));
    client.close().await?;
    if now.as_ref().map(|l| l.value.as_slice()) != Some(format!("candidate-{new}").as_bytes()) {
        return Err(Fail::new(exit::ERROR, format!("leader() does not show candidate-{new} as leader")));
    }

    // Stop the rest: each resigns on SIGTERM.
    for (i, c) in cleanup.children.iter_mut().enumerate() {
        if i != old {
            if let Some(pid) = c.id() {
                // SAFETY: signalling our own child.
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
        }
    }
    for c in &mut cleanup.children {
        let _ = tokio::time::timeout(Duration::from_secs(5), c.wait()).await;
    }
    println!("failover {failover:.1} ms");
    Ok(exit::OK)
}
