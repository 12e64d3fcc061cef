//! `ballot run`: run a command only while leader, and never leave any process of
//! it running without a leader.
//!
//! ```text
//! ballot run            child subreaper; holds the session; decides when to stop
//!  └ ballot __supervise child subreaper, own process group; executes the stops;
//!     │                 SIGKILLs the tree when `ballot run` is gone (see supervise.rs)
//!     └ CMD             own process group, and whatever it starts
//! ```
//!
//! Stopping means SIGTERM to the tree, SIGKILL to whatever is left after the
//! grace, repeated until nothing is left, and every process reaped, before this
//! process resigns or campaigns again.

use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::ExitStatus;
use std::time::Duration;

use ballot::{Client, Election, ErrorKind, Event, Events, Leadership, LostReason, Options};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::supervise::{order, report};
use crate::{escape, exit, procs, CliResult, Fail, Terminations};

/// What `ballot run` does with its command while leadership is suspended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OnSuspend {
    /// SIGSTOP the command's tree; SIGCONT when leadership is confirmed again.
    Stop,
    /// Let it run.
    Keep,
}

/// How `ballot run` was asked to behave.
pub(crate) struct RunOptions {
    pub(crate) value: Option<String>,
    pub(crate) grace: Duration,
    pub(crate) requeue: bool,
    pub(crate) on_suspend: OnSuspend,
    pub(crate) cmd: Vec<String>,
    /// Where `--metrics-addr`'s `/healthz` looks: each campaign's handle.
    pub(crate) health: crate::serve::HealthSlot,
}

/// The pause before `--requeue` campaigns again after a failed campaign.
const CAMPAIGN_RETRY: Duration = Duration::from_millis(500);

/// Whether a failed campaign is worth another one: the server or the session may
/// come back; refused credentials, a bad argument or an ended election do not.
fn retryable(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::SessionLost | ErrorKind::Backend)
}

enum Outcome {
    Exited(ExitStatus),
    Lost(LostReason),
    Ended,
    Signal(i32),
    SupervisorGone,
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn status_code(s: ExitStatus) -> u8 {
    match (s.code(), s.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(sig)) => (128 + sig) as u8,
        _ => exit::ERROR,
    }
}

/// A message from the supervisor.
enum Report {
    Running,
    Exited(ExitStatus),
    StartFailed,
    /// End of file: the supervisor exited, so the tree is gone (or it was killed).
    Gone,
}

/// The running supervisor of one term's command.
struct Supervisor {
    pid: i32,
    orders: tokio::net::unix::OwnedWriteHalf,
    reports: mpsc::UnboundedReceiver<Report>,
    gone: bool,
}

impl Supervisor {
    /// Starts `ballot __supervise` (this binary again), which starts the command.
    /// `hold` is a descriptor the supervisor keeps open until the tree is gone.
    async fn start(cmd: &[String], env: [(&str, String); 3], hold: Option<RawFd>) -> Result<Supervisor, Fail> {
        let internal = |what: &str, e: std::io::Error| Fail::new(exit::ERROR, format!("internal: {what}: {e}"));
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(|e| internal("socketpair", e))?;
        let theirs_fd = theirs.as_raw_fd();
        let mut c = std::process::Command::new("/proc/self/exe");
        c.arg0("ballot").arg("__supervise").arg("--ctl").arg(theirs_fd.to_string());
        if let Some(fd) = hold {
            c.arg("--hold").arg(fd.to_string());
        }
        c.arg("--").args(cmd).envs(env);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            c.pre_exec(move || {
                // Its own group: a terminal's SIGINT to ours, or a `kill -- -PGID`
                // of ours, must not take the supervisor down with us.
                libc::setpgid(0, 0);
                // The two descriptors the supervisor needs survive the exec, in the
                // child only.
                libc::fcntl(theirs_fd, libc::F_SETFD, 0);
                if let Some(fd) = hold {
                    libc::fcntl(fd, libc::F_SETFD, 0);
                }
                Ok(())
            });
        }
        let child = c.spawn().map_err(|e| internal("cannot start the supervisor", e))?;
        // Our copy of its end must go, or its death would not close the socket.
        drop(theirs);
        let pid = child.id() as i32;
        ours.set_nonblocking(true).map_err(|e| internal("socket", e))?;
        let stream = tokio::net::UnixStream::from_std(ours).map_err(|e| internal("socket", e))?;
        let (mut rd, orders) = stream.into_split();
        let (tx, reports) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut frame = [0u8; 8];
            while rd.read_exact(&mut frame).await.is_ok() {
                let value = i32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
                let r = match frame[0] {
                    report::RUNNING => Report::Running,
                    report::EXITED => Report::Exited(ExitStatus::from_raw(value)),
                    report::START_FAILED => Report::StartFailed,
                    _ => continue,
                };
                if tx.send(r).is_err() {
                    return;
                }
            }
            let _ = tx.send(Report::Gone);
        });
        let mut sup = Supervisor { pid, orders, reports, gone: false };
        match sup.next().await {
            Report::Running => Ok(sup),
            // It printed why; its exit ends the socket.
            Report::StartFailed => {
                sup.wait_gone().await;
                Err(Fail::code(exit::ERROR))
            }
            _ => {
                sup.wait_gone().await;
                Err(Fail::new(exit::ERROR, "internal: the supervisor ended before starting the command"))
            }
        }
    }

    async fn next(&mut self) -> Report {
        if self.gone {
            return std::future::pending().await;
        }
        let r = self.reports.recv().await.unwrap_or(Report::Gone);
        if matches!(r, Report::Gone) {
            self.gone = true;
            self.reap();
        }
        r
    }

    async fn order(&mut self, o: u8) {
        if !self.gone {
            // A failed write means it is gone; the reader reports that.
            let _ = self.orders.write_all(&[o]).await;
        }
    }

    async fn wait_gone(&mut self) {
        while !self.gone {
            self.next().await;
        }
    }

    /// Reaps the supervisor once its socket closed (it closes only by its exit).
    fn reap(&self) {
        let mut status = 0;
        // SAFETY: waitpid on our own child; the status goes into an int we own.
        while unsafe { libc::waitpid(self.pid, &mut status, 0) } < 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
        {}
    }
}

/// On the local backend, the descriptor of this process that holds the election's
/// leader lock (an exclusive `flock` on the election's directory; before the
/// directory lock, on a file named `leader.lock`), duplicated for the supervisor.
/// It keeps the lock, and so the election, from being released before the
/// command's tree is gone if `ballot run` is SIGKILLed. The only other exclusive
/// `flock` the backend takes is the short one on the file `state.lock`.
fn leader_lock_dup() -> Option<RawFd> {
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|s| s.parse::<RawFd>().ok()) else { continue };
        let Ok(target) = std::fs::read_link(entry.path()) else { continue };
        let is_leader_lock = target.file_name().is_some_and(|n| n == "leader.lock") || target.is_dir();
        if !is_leader_lock {
            continue;
        }
        let Ok(info) = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")) else { continue };
        if info.lines().any(|l| l.starts_with("lock:") && l.contains("FLOCK") && l.contains("WRITE")) {
            // SAFETY: duplicating a descriptor of this process, close-on-exec.
            let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
            return (dup >= 0).then_some(dup);
        }
    }
    None
}

/// Kills and reaps every descendant of this process that is still there: orphans
/// re-parented to us if the supervisor itself was killed. Returns when none is left.
async fn sweep() {
    // SAFETY: getpid cannot fail.
    let me = unsafe { libc::getpid() };
    let started = Instant::now();
    let mut warned = Duration::ZERO;
    loop {
        let reaped = procs::reap();
        let left = procs::signal_descendants(me, libc::SIGKILL);
        if left == 0 && reaped.none_left {
            return;
        }
        if started.elapsed() > warned + Duration::from_secs(5) {
            warned = started.elapsed();
            eprintln!("ballot: {left} process(es) of the command are still there after SIGKILL; waiting");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The latest moment SIGKILL may come after `outcome`, counted from `now`.
fn kill_deadline(outcome: &Outcome, grace: Duration, now: Instant) -> Instant {
    match outcome {
        // Still leading: the command's own time to finish, and ours.
        Outcome::Exited(_) | Outcome::Signal(_) => {
            now.checked_add(grace).unwrap_or(now + Duration::from_secs(86400 * 365))
        }
        // At `Lost` the library withdraws this candidate's record at once, so the
        // next candidate may win as soon as the server hears of it: the safety
        // margin before the session's expiry is not ours to spend. After an end()
        // the election starts anew; a lost supervisor leaves nobody in charge.
        Outcome::Lost(_) | Outcome::Ended | Outcome::SupervisorGone => now,
    }
}

/// Stops the command's tree: SIGTERM now, SIGKILL at `kill_at` (earlier if
/// leadership goes while waiting), until the supervisor reports the tree gone; then
/// sweeps. Returns the command's status if it was reported.
async fn stop(
    sup: &mut Supervisor,
    mut kill_at: Instant,
    events: &mut Events,
    grace: Duration,
    signals: &mut Terminations,
) -> Option<ExitStatus> {
    let mut status = None;
    let mut killing = false;
    if kill_at <= Instant::now() {
        sup.order(order::KILL).await;
        killing = true;
    } else {
        sup.order(order::TERM).await;
    }
    let mut events_open = true;
    while !sup.gone {
        tokio::select! {
            r = sup.next() => if let Report::Exited(s) = r { status = Some(s) },
            _ = tokio::time::sleep_until(kill_at), if !killing => {
                eprintln!("ballot: the command did not stop in time; sending SIGKILL");
                sup.order(order::KILL).await;
                killing = true;
            }
            ev = events.next(), if events_open && !killing => {
                let now = Instant::now();
                let tighter = match ev {
                    Some(Event::Lost { reason }) => kill_deadline(&Outcome::Lost(reason), grace, now),
                    Some(Event::Ended) | None => {
                        events_open = false;
                        now
                    }
                    _ => kill_at,
                };
                kill_at = kill_at.min(tighter);
            }
            _ = signals.recv(), if !killing => kill_at = Instant::now(),
        }
    }
    sweep().await;
    status
}

/// How one campaign ended.
enum Campaign {
    Won(Election, Events, Leadership),
    Failed(ballot::Error),
    Signal(i32),
}

/// Campaigns once on a new handle, reading its events meanwhile (a fresh
/// subscription each term, so that no event of an earlier term is taken for one of
/// this term).
async fn campaign(
    client: &Client,
    election: &str,
    value: &str,
    signals: &mut Terminations,
    health: &crate::serve::HealthSlot,
) -> Campaign {
    let e = match client.election(election) {
        Ok(e) => e,
        Err(err) => return Campaign::Failed(err),
    };
    health.set(&e);
    let mut events = e.events();
    let won = {
        let campaign = e.campaign(value);
        tokio::pin!(campaign);
        loop {
            tokio::select! {
                r = &mut campaign => break r,
                Some(ev) = events.next() => if let Event::Error(err) = ev { eprintln!("ballot: warning: {err}") },
                sig = signals.recv() => return Campaign::Signal(sig),
            }
        }
    };
    match won {
        Ok(lead) => Campaign::Won(e, events, lead),
        Err(err) => Campaign::Failed(err),
    }
}

/// Closes `old` and connects again, retrying while the backend cannot be reached:
/// a new session, so that nothing the old one held (a lock a withdrawal failed to
/// release) can keep the election from moving on. Err(signal) if told to stop.
async fn fresh_client(
    old: Client,
    backend: &Option<String>,
    options: &Options,
    signals: &mut Terminations,
) -> Result<Client, i32> {
    let _ = old.close().await;
    loop {
        match crate::connect(backend.clone(), options.clone()).await {
            Ok(c) => return Ok(c),
            Err(f) => eprintln!("ballot: warning: {}; connecting again", f.message().unwrap_or("cannot connect")),
        }
        tokio::select! {
            _ = tokio::time::sleep(CAMPAIGN_RETRY) => {}
            sig = signals.recv() => return Err(sig),
        }
    }
}

pub(crate) async fn run(backend: Option<String>, options: Options, election: &str, opts: RunOptions) -> CliResult {
    procs::become_subreaper()
        .map_err(|e| Fail::new(exit::ERROR, format!("internal: cannot become a child subreaper: {e}")))?;
    let mut client = crate::connect(backend.clone(), options.clone()).await?;
    let value = opts.value.clone().unwrap_or_else(|| format!("{}:{}", hostname(), std::process::id()));
    let local = client.url().starts_with("file:");
    let mut signals = Terminations::new();
    loop {
        let (e, mut events, lead) = match campaign(&client, election, &value, &mut signals, &opts.health).await {
            Campaign::Won(e, events, lead) => (e, events, lead),
            // With --requeue, a server that is down or a session lost while waiting
            // is not the end: campaign again, under a new session.
            Campaign::Failed(err) if opts.requeue && retryable(err.kind()) => {
                eprintln!("ballot: warning: campaign failed ({}: {}); campaigning again", err.kind(), err.message());
                let pause = tokio::select! {
                    _ = tokio::time::sleep(CAMPAIGN_RETRY) => None,
                    sig = signals.recv() => Some(sig),
                };
                let fresh = match pause {
                    None => fresh_client(client, &backend, &options, &mut signals).await,
                    Some(sig) => {
                        client.close().await?;
                        Err(sig)
                    }
                };
                client = match fresh {
                    Ok(c) => c,
                    Err(sig) => return Ok((128 + sig) as u8),
                };
                continue;
            }
            Campaign::Failed(err) => {
                let _ = client.close().await;
                return Err(err.into());
            }
            Campaign::Signal(sig) => {
                client.close().await?;
                return Ok((128 + sig) as u8);
            }
        };
        eprintln!(
            "ballot: elected term={} key={}; starting {}",
            lead.term(),
            escape(lead.key().as_bytes()),
            escape(opts.cmd[0].as_bytes())
        );
        let hold = if local { leader_lock_dup() } else { None };
        let env = [
            ("BALLOT_TERM", lead.term().to_string()),
            ("BALLOT_ELECTION", election.to_string()),
            ("BALLOT_KEY", lead.key().to_string()),
        ];
        let started = Supervisor::start(&opts.cmd, env, hold).await;
        if let Some(fd) = hold {
            // SAFETY: closing our duplicate; the supervisor has its own.
            unsafe { libc::close(fd) };
        }
        let mut sup = match started {
            Ok(s) => s,
            Err(f) => {
                let _ = e.resign().await;
                client.close().await?;
                return Err(f);
            }
        };
        let mut paused = false;
        let outcome = loop {
            tokio::select! {
                r = sup.next() => match r {
                    Report::Exited(s) => break Outcome::Exited(s),
                    Report::Gone => break Outcome::SupervisorGone,
                    _ => {}
                },
                ev = events.next() => match ev {
                    Some(Event::Lost { reason }) => break Outcome::Lost(reason),
                    Some(Event::Ended) | None => break Outcome::Ended,
                    Some(Event::Suspended) => match opts.on_suspend {
                        OnSuspend::Stop => {
                            eprintln!("ballot: leadership suspended; pausing the command (SIGSTOP)");
                            sup.order(order::STOP).await;
                            paused = true;
                        }
                        OnSuspend::Keep => {
                            eprintln!("ballot: leadership suspended; the command keeps running (--on-suspend keep)")
                        }
                    },
                    Some(Event::Reconnected) if paused => {
                        eprintln!("ballot: leadership confirmed again; resuming the command (SIGCONT)");
                        sup.order(order::CONT).await;
                        paused = false;
                    }
                    Some(Event::Reconnected) => eprintln!("ballot: leadership confirmed again"),
                    Some(Event::Error(err)) => eprintln!("ballot: warning: {err}"),
                    _ => {}
                },
                sig = signals.recv() => break Outcome::Signal(sig),
            }
        };
        let kill_at = kill_deadline(&outcome, opts.grace, Instant::now());
        if kill_at <= Instant::now() {
            // Before anything else, even a line on stderr.
            sup.order(order::KILL).await;
        }
        match &outcome {
            Outcome::Exited(status) => {
                eprintln!("ballot: command exited ({status}); stopping what it left, then resigning")
            }
            Outcome::Lost(reason) => eprintln!("ballot: leadership lost ({reason}); killing the command (SIGKILL)"),
            Outcome::Ended => eprintln!("ballot: the election was ended; killing the command"),
            Outcome::Signal(_) => eprintln!("ballot: stopping the command, then resigning"),
            Outcome::SupervisorGone => eprintln!("ballot: the supervisor of the command died; killing what is left"),
        }
        let reported = stop(&mut sup, kill_at, &mut events, opts.grace, &mut signals).await;
        match outcome {
            Outcome::Exited(status) => {
                match e.resign().await {
                    Ok(()) => {}
                    Err(err) if err.kind() == ErrorKind::NotLeader => {}
                    Err(err) => return Err(err.into()),
                }
                if !opts.requeue {
                    client.close().await?;
                    return Ok(status_code(status));
                }
            }
            Outcome::Lost(_) if opts.requeue => {
                // A new session for the next campaign: see fresh_client.
                drop(e);
                client = match fresh_client(client, &backend, &options, &mut signals).await {
                    Ok(c) => c,
                    Err(sig) => return Ok((128 + sig) as u8),
                };
            }
            Outcome::Lost(_) => {
                client.close().await?;
                return Err(Fail::code(exit::LOST));
            }
            Outcome::Ended => {
                client.close().await?;
                return Err(Fail::code(exit::ENDED));
            }
            Outcome::Signal(sig) => {
                let _ = e.resign().await;
                client.close().await?;
                return Ok((128 + sig) as u8);
            }
            Outcome::SupervisorGone => {
                let _ = e.resign().await;
                client.close().await?;
                let why = reported.map_or("no status".to_string(), |s| s.to_string());
                return Err(Fail::new(exit::ERROR, format!("internal: the supervisor of the command died ({why})")));
            }
        }
    }
}
