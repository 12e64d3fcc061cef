//! Helpers of the CLI tests that drive `ballot run` and `ballot campaign`
//! processes against the real servers that `tests/run.sh` starts.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ballot");
pub const LIVE: Duration = Duration::from_secs(20);

pub fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run `bash tests/run.sh`, or start etcd with tests/servers/harness.py and export its env"
        )
    })
}

pub fn unique(tag: &str) -> String {
    format!("{tag}-{}-{:x}", std::process::id(), std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos())
}

/// A child process whose stdout or stderr lines arrive on a channel; killed when dropped.
pub struct Proc {
    pub child: Child,
    pub lines: Receiver<String>,
    pub what: String,
}

impl Proc {
    pub fn spawn(what: &str, cmd: &mut Command, stderr: bool) -> Proc {
        cmd.env_remove("BALLOT_BACKEND");
        let mut child = if stderr {
            cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
        } else {
            cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap()
        };
        let out: Box<dyn std::io::Read + Send> =
            if stderr { Box::new(child.stderr.take().unwrap()) } else { Box::new(child.stdout.take().unwrap()) };
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

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Reads lines until one contains `text`, within `LIVE`.
    pub fn until(&self, text: &str) -> String {
        let end = Instant::now() + LIVE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(text) => return l,
                Ok(_) => {}
                Err(_) => panic!("{}: no line with {text:?} within {LIVE:?}", self.what),
            }
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of a child we own.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Waits for the exit, within `limit`.
    pub fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{}: did not exit within {limit:?}", self.what);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SIGKILLs the given processes when dropped, so that a failed test leaves nothing.
pub struct KillOnDrop(pub Vec<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &p in &self.0 {
            if alive(p) {
                // SAFETY: kill(2); these are processes this test started.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
    }
}

pub fn ballot(url: &str) -> Command {
    let mut c = Command::new(BIN);
    c.args(["--backend", url]);
    c
}

/// The state letter of `pid`, None once it is gone from /proc.
pub fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

/// The kernel's `PF_EXITING`: set when a task enters `exit`, before its descriptors
/// (and so its flocks) are released.
const PF_EXITING: u64 = 0x4;

/// Whether `pid` can still run code of its own: not a zombie (dead but not yet
/// reaped), and not exiting. A process releases its descriptors, and so its locks,
/// during its exit but shows its zombie state only at the end of it; a test that
/// reads the state as soon as the lock was taken over could see one still running
/// (it did, about 1 run in 18 on a loaded machine).
pub fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let Some((_, rest)) = stat.rsplit_once(") ") else { return false };
    // Fields after the name: state, ppid, pgrp, session, tty_nr, tpgid, flags.
    let f: Vec<&str> = rest.split(' ').collect();
    let exiting = f.get(6).and_then(|x| x.parse::<u64>().ok()).is_some_and(|flags| flags & PF_EXITING != 0);
    !matches!(f.first(), Some(&"Z") | Some(&"X")) && !exiting
}

/// The live descendants of `root`, parents first, as (pid, command name).
pub fn tree(root: i32) -> Vec<(i32, String)> {
    let mut procs = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let (Some(open), Some((head, rest))) = (stat.find(" ("), stat.rsplit_once(") ")) else { continue };
        let f: Vec<&str> = rest.split(' ').collect();
        if f[0] != "Z" && f[0] != "X" {
            procs.push((pid, f[1].parse::<i32>().unwrap(), head[open + 2..].to_string()));
        }
    }
    let mut out = Vec::new();
    let mut parents = vec![root];
    while let Some(p) = parents.pop() {
        for (pid, ppid, comm) in &procs {
            if *ppid == p {
                out.push((*pid, comm.clone()));
                parents.push(*pid);
            }
        }
    }
    out
}

/// The command's processes under `ballot run` (`run`), once `n` sleeps run: the
/// supervisor first, then the command's tree.
pub fn command_tree(run: &Proc, n: usize) -> Vec<(i32, String)> {
    let end = Instant::now() + LIVE;
    loop {
        let t = tree(run.pid());
        if t.iter().filter(|(_, c)| c == "sleep").count() >= n {
            return t;
        }
        assert!(Instant::now() < end, "{}: the command did not start: {t:?}", run.what);
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `ballot run` on `url` with a command of two `sleep`s, SIGKILLed while a
/// `ballot campaign` waits: when the campaign is elected, no process of the
/// command's tree runs any more.
pub fn sigkill_of_run_leaves_nothing_behind(url: &str) {
    let name = unique("run-kill");
    let a = Proc::spawn(
        "ballot run",
        ballot(url).args(["run", &name, "--", "sh", "-c", "sleep 1000 & sleep 1000; :"]),
        true,
    );
    let t = command_tree(&a, 2);
    let pids: Vec<i32> = t.iter().map(|(p, _)| *p).collect();
    let _cleanup = KillOnDrop(pids.clone());
    let b = Proc::spawn("ballot campaign b", ballot(url).args(["campaign", &name, "b"]), false);
    b.until("campaigning");
    a.signal(libc::SIGKILL);
    b.until("elected");
    let left: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "b was elected while {left:?} of {t:?} ran");
}
