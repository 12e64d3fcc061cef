//! The processes of a `ballot run` tree: who descends from whom (read from
//! `/proc`), signalling them without a pid-reuse race, and reaping.
//!
//! Both `ballot run` and its supervisor are child subreapers, so every orphan of
//! the command's tree is re-parented to one of them and stays a descendant: walking
//! the parent links in `/proc` finds also a process that left the command's process
//! group or session (`setsid`, a double fork).

use std::collections::HashMap;

/// One process as `/proc/PID/stat` shows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Proc {
    pub(crate) pid: i32,
    ppid: i32,
    /// The state letter; `Z` (zombie) and `X` (dead) are gone for our purposes.
    state: u8,
    /// Start time in clock ticks since boot: with the pid, it names one process.
    start: u64,
}

impl Proc {
    fn gone(&self) -> bool {
        matches!(self.state, b'Z' | b'X')
    }
}

/// Parses `/proc/PID/stat`. The command name may contain spaces and parentheses,
/// so the fields are counted from the last `)`.
fn stat(pid: i32) -> Option<Proc> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split(' ').collect();
    Some(Proc {
        pid,
        state: *fields.first()?.as_bytes().first()?,
        ppid: fields.get(1)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// Every process now on the system, by pid.
fn all() -> HashMap<i32, Proc> {
    let mut map = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return map };
    for entry in dir.flatten() {
        if let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
            if let Some(p) = stat(pid) {
                map.insert(pid, p);
            }
        }
    }
    map
}

/// The descendants of `root` that have not exited, parents before children.
pub(crate) fn descendants(root: i32) -> Vec<Proc> {
    let procs = all();
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in procs.values() {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut out = Vec::new();
    let mut queue = std::collections::VecDeque::from([root]);
    while let Some(pid) = queue.pop_front() {
        for &c in children.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
            // A zombie's children were already re-parented; nothing descends from it.
            if let Some(p) = procs.get(&c).filter(|p| !p.gone()) {
                out.push(*p);
                queue.push_back(c);
            }
        }
    }
    out
}

/// Sends `sig` to `p` if it is still the process that was read (same pid and start
/// time): through a pidfd, so that a pid freed and reused in between is never hit.
pub(crate) fn signal(p: &Proc, sig: i32) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, p.pid, 0) } as i32;
    if fd < 0 {
        if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            // Linux before 5.3: the small race of a plain kill is all there is.
            if stat(p.pid).is_some_and(|now| now.start == p.start) {
                // SAFETY: kill(2) takes no memory.
                unsafe { libc::kill(p.pid, sig) };
            }
        }
        return;
    }
    // The pidfd names whatever process had the pid when it was opened; it is ours
    // if that process still has the start time we read.
    if stat(p.pid).is_some_and(|now| now.start == p.start) {
        // SAFETY: pidfd_send_signal on a descriptor we own, with no siginfo (NULL).
        unsafe { libc::syscall(libc::SYS_pidfd_send_signal, fd, sig, std::ptr::null::<libc::siginfo_t>(), 0) };
    }
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
}

/// Sends `sig` to every live descendant of `root`; returns how many there were.
pub(crate) fn signal_descendants(root: i32, sig: i32) -> usize {
    let procs = descendants(root);
    for p in &procs {
        signal(p, sig);
    }
    procs.len()
}

/// What [`reap`] found.
#[derive(Debug, Default)]
pub(crate) struct Reaped {
    /// (pid, raw wait status) of each child reaped.
    pub(crate) exited: Vec<(i32, i32)>,
    /// Whether this process has no child left at all (`ECHILD`).
    pub(crate) none_left: bool,
}

/// Reaps every child of this process that has exited, without blocking.
pub(crate) fn reap() -> Reaped {
    let mut r = Reaped::default();
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into the int we pass.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            r.exited.push((pid, status));
            continue;
        }
        if pid < 0 {
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => r.none_left = true,
                _ => {}
            }
        }
        return r;
    }
}

/// Makes this process a child subreaper: orphans among its descendants are
/// re-parented to it instead of to init.
pub(crate) fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_grandchild_and_not_itself() {
        let mut sh = std::process::Command::new("sh").args(["-c", "sleep 30 & wait"]).spawn().unwrap();
        let me = std::process::id() as i32;
        let shell = sh.id() as i32;
        // Other tests of this process start children of their own at the same
        // time: wait for the shell's child itself, not for a number of processes.
        let mut found = Vec::new();
        for _ in 0..500 {
            found = descendants(me);
            if found.iter().any(|p| p.ppid == shell) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(found.iter().any(|p| p.pid == shell), "{found:?}");
        assert!(found.iter().any(|p| p.ppid == shell), "the sleep: {found:?}");
        assert!(found.iter().all(|p| p.pid != me));
        for p in found.iter().rev().filter(|p| p.pid == shell || p.ppid == shell) {
            signal(p, libc::SIGKILL);
        }
        let _ = sh.wait();
    }

    /// Why the supervisor watches a socket and not `PR_SET_PDEATHSIG`: the signal
    /// comes when the *thread* that forked the child ends, although the process
    /// lives on (prctl(2)). Checked here, on the running kernel.
    #[test]
    fn pdeathsig_fires_when_the_forking_thread_ends() {
        use std::os::unix::process::CommandExt;
        let child = std::thread::spawn(|| {
            let mut c = std::process::Command::new("sleep");
            c.arg("30");
            // SAFETY: prctl with integer arguments, between fork and exec.
            unsafe {
                c.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            c.spawn().unwrap()
        })
        .join()
        .unwrap();
        // The forking thread has ended; this process has not.
        let status = {
            let mut child = child;
            child.wait().unwrap()
        };
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    }

    #[test]
    fn a_stat_with_spaces_and_parentheses_in_the_name_parses() {
        let me = stat(std::process::id() as i32).unwrap();
        assert_eq!(me.ppid, std::os::unix::process::parent_id() as i32);
        assert!(me.start > 0 && !me.gone());
    }
}
