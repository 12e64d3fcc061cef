//! The supervisor of `ballot run`'s command: `ballot __supervise`, started by
//! `ballot run` for each term, never by a user.
//!
//! It is a fresh single-threaded process (the `ballot` binary again, through
//! exec), a child subreaper in a process group of its own, and the parent of the
//! command, which it starts in another process group. Every process of the
//! command's tree is its descendant for as long as it lives, orphans included.
//!
//! It takes one-byte orders from `ballot run` on a socket (fd `--ctl`) and reports
//! on it with 8-byte frames. When the socket reaches end-of-file, `ballot run` is
//! gone (exited or SIGKILLed: the kernel closes its end either way, whichever
//! thread forked us), and the supervisor SIGKILLs the whole tree. It does not rely
//! on `PR_SET_PDEATHSIG`, which fires when the *thread* that forked it ends.
//!
//! It exits once the command has exited and it has no child left, so its exit
//! tells `ballot run` that the tree is gone. On the local backend it holds a
//! duplicate of the leader lock (fd `--hold`) until then: if `ballot run` is
//! SIGKILLed, the lock, and with it the election, is released only after the tree.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use crate::procs;

/// Orders from `ballot run` (one byte each).
pub(crate) mod order {
    /// SIGTERM to the tree, then SIGCONT if it was stopped, so that it can handle it.
    pub(crate) const TERM: u8 = b'T';
    /// SIGKILL to the tree, again and again until nothing is left.
    pub(crate) const KILL: u8 = b'K';
    /// SIGSTOP to the tree (leadership suspended).
    pub(crate) const STOP: u8 = b'S';
    /// SIGCONT to the tree if it was stopped (leadership confirmed again).
    pub(crate) const CONT: u8 = b'C';
}

/// Reports to `ballot run`: 8-byte frames, a tag and a little-endian `i32`.
pub(crate) mod report {
    /// The command runs; the value is its pid.
    pub(crate) const RUNNING: u8 = b'R';
    /// The command exited; the value is its raw wait status.
    pub(crate) const EXITED: u8 = b'X';
    /// The command could not be started (the supervisor printed why); it exits.
    pub(crate) const START_FAILED: u8 = b'E';
}

/// Signals the supervisor ignores, restored for the command as they were.
const SHIELDED: [i32; 7] =
    [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU];

fn send(ctl: i32, tag: u8, value: i32) {
    let mut frame = [0u8; 8];
    frame[0] = tag;
    frame[4..].copy_from_slice(&value.to_le_bytes());
    // SAFETY: writing from a buffer we own. A broken socket means `ballot run` is
    // gone, which the read side notices.
    unsafe { libc::write(ctl, frame.as_ptr().cast(), frame.len()) };
}

fn set_cloexec(fd: i32) -> bool {
    // SAFETY: fcntl on a descriptor number; no memory is passed.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) == 0 }
}

struct Args {
    ctl: i32,
    hold: Option<i32>,
    cmd: Vec<OsString>,
}

fn parse(args: Vec<OsString>) -> Option<Args> {
    let mut it = args.into_iter();
    let (mut ctl, mut hold) = (None, None);
    while let Some(a) = it.next() {
        match a.to_str()? {
            "--ctl" => ctl = Some(it.next()?.to_str()?.parse().ok()?),
            "--hold" => hold = Some(it.next()?.to_str()?.parse().ok()?),
            "--" => break,
            _ => return None,
        }
    }
    let cmd: Vec<OsString> = it.collect();
    if cmd.is_empty() {
        return None;
    }
    Some(Args { ctl: ctl?, hold, cmd })
}

/// The supervisor's `main`: `args` are the arguments after `__supervise`.
pub(crate) fn main(args: Vec<OsString>) -> ExitCode {
    let Some(args) = parse(args) else {
        eprintln!("ballot: error: internal: `ballot __supervise` is started by `ballot run` only");
        return ExitCode::from(crate::exit::USAGE);
    };
    let ctl = args.ctl;
    // Exec'd as /proc/self/exe, this process would show as `exe` in ps and top.
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"ballot".as_ptr(), 0, 0, 0) };
    // Our descriptors must not reach the command: a command holding the socket
    // would hide our death from `ballot run`, one holding the lock could keep it.
    if !set_cloexec(ctl) || args.hold.is_some_and(|fd| !set_cloexec(fd)) {
        eprintln!("ballot: error: internal: the supervisor's descriptors are not open");
        return ExitCode::from(crate::exit::ERROR);
    }
    if let Err(e) = procs::become_subreaper() {
        eprintln!("ballot: error: internal: cannot become a child subreaper: {e}");
        return ExitCode::from(crate::exit::ERROR);
    }
    // Signals meant for a job or a terminal are not for us: we stop the tree on
    // orders, or when `ballot run` is gone.
    let mut saved = [libc::SIG_DFL; SHIELDED.len()];
    for (i, &sig) in SHIELDED.iter().enumerate() {
        // SAFETY: installing SIG_IGN, no handler code.
        saved[i] = unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
    // SIGCHLD through a signalfd, so one poll waits for orders and exits alike.
    // SAFETY: sigset functions on a set we own; signalfd on it.
    let sigfd = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
    };
    if sigfd < 0 {
        eprintln!("ballot: error: internal: signalfd: {}", std::io::Error::last_os_error());
        return ExitCode::from(crate::exit::ERROR);
    }

    // SAFETY: getpid cannot fail.
    let me = unsafe { libc::getpid() };
    let mut c = std::process::Command::new(&args.cmd[0]);
    c.args(&args.cmd[1..]);
    // SAFETY: only async-signal-safe calls between fork and exec (this process is
    // single-threaded anyway).
    unsafe {
        c.pre_exec(move || {
            // Its own process group, so a terminal's or a job's signals to ours
            // (there are none) and to `ballot run`'s do not reach it directly.
            libc::setpgid(0, 0);
            // If the supervisor dies (only SIGKILL can do that), the command dies with it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != me {
                libc::_exit(crate::exit::LOST as i32);
            }
            for (i, &sig) in SHIELDED.iter().enumerate() {
                libc::signal(sig, saved[i]);
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let child = match c.spawn() {
        Ok(ch) => ch.id() as i32,
        Err(e) => {
            eprintln!("ballot: error: cannot start {:?}: {e}", args.cmd[0]);
            send(ctl, report::START_FAILED, 0);
            return ExitCode::from(crate::exit::ERROR);
        }
    };
    send(ctl, report::RUNNING, child);

    let mut child_running = true;
    let mut stopped = false;
    let mut killing = false;
    let mut ctl_open = true;
    loop {
        let reaped = procs::reap();
        for &(pid, status) in &reaped.exited {
            if pid == child {
                child_running = false;
                send(ctl, report::EXITED, status);
            }
        }
        if reaped.none_left {
            // The command and everything it left behind are gone and reaped.
            return ExitCode::SUCCESS;
        }
        if killing {
            kill_tree(me, child, child_running, libc::SIGKILL);
        }
        let mut fds = [
            libc::pollfd { fd: sigfd, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: if ctl_open { ctl } else { -1 }, events: libc::POLLIN, revents: 0 },
        ];
        // While killing, look again soon: a process may fork until SIGKILL lands.
        let timeout = if killing { 20 } else { -1 };
        // SAFETY: poll over an array we own.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if fds[0].revents != 0 {
            let mut buf = [0u8; 128 * 8];
            // SAFETY: draining the signalfd into a buffer we own (the reap above does the work).
            while unsafe { libc::read(sigfd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        }
        if ctl_open && fds[1].revents != 0 {
            let mut buf = [0u8; 64];
            // SAFETY: reading into a buffer we own.
            let n = unsafe { libc::read(ctl, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            if n <= 0 {
                // `ballot run` is gone: nothing may run without it.
                ctl_open = false;
                killing = true;
                continue;
            }
            for &b in &buf[..n as usize] {
                match b {
                    order::TERM => {
                        kill_tree(me, child, child_running, libc::SIGTERM);
                        if stopped {
                            kill_tree(me, child, child_running, libc::SIGCONT);
                            stopped = false;
                        }
                    }
                    order::KILL => killing = true,
                    order::STOP if !killing => {
                        kill_tree(me, child, child_running, libc::SIGSTOP);
                        stopped = true;
                    }
                    order::CONT if !killing && stopped => {
                        kill_tree(me, child, child_running, libc::SIGCONT);
                        stopped = false;
                    }
                    _ => {}
                }
            }
        }
    }
}

/// `sig` to the command's process group (while the command is unreaped, its pid
/// cannot name another group) and to every descendant, twice for SIGSTOP so that a
/// child forked during the first pass is caught.
fn kill_tree(me: i32, child: i32, child_running: bool, sig: i32) {
    let passes = if sig == libc::SIGSTOP { 2 } else { 1 };
    for _ in 0..passes {
        if child_running {
            // SAFETY: kill(2) takes no memory.
            unsafe { libc::kill(-child, sig) };
        }
        procs::signal_descendants(me, sig);
    }
}
