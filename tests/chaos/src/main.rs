//! `ballot-chaos`: one candidate process of the chaos suite (`tests/chaos`).
//!
//! It campaigns on one election and logs, as JSON lines stamped with the host-wide
//! `CLOCK_MONOTONIC`, every change of its *belief* that it leads:
//!
//! - `lead` (with the term) when ballot says it was elected (`Elected`, or a won
//!   `campaign`) or confirmed again (`Reconnected`), and the handle's state reads
//!   `Leader` at that moment;
//! - `unlead` (with the reason) at `Suspended`, `Lost`, `Resigned`, `Ended`, or as
//!   soon as [`ballot::Election::state`] stops reading `Leader` (which happens at the
//!   session's local deadline, even before the background task reports `Lost`).
//!
//! While it believes it leads, it does "leader work": every tick it checks
//! `state()` again and writes `W <id> <term> <seq>` to the fenced store that the
//! driver (`tests/chaos/chaos.py`) runs on 127.0.0.1. The store accepts a write only
//! when its term is at least the highest term it has seen.
//!
//! The process stops by itself: on SIGTERM/SIGINT (it resigns first), after
//! `--max-secs`, and when its parent dies (`PR_SET_PDEATHSIG`).
//!
//! `ballot-chaos writer` is the leader work of the suite's `run` mode instead, in
//! which each candidate is a `ballot run` process: started (through a shell
//! wrapper) as the command of `ballot run`, it writes `W <id> $BALLOT_TERM <seq>`
//! to the fenced store every tick until it is killed. It believes nothing and
//! checks nothing: stopping it in time is `ballot run`'s job. Its first line to the
//! store, `H <id> <term> <supervisor pid> <pid> <wrapper pid>`, names the command's
//! processes from it up and the supervisor of `ballot run`, whose deaths the driver
//! watches.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ballot::{Client, Election, Event, Options, State};
use clap::Parser;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::{timeout, Instant};

/// Command line of one candidate.
#[derive(Debug, Parser)]
#[command(name = "ballot-chaos", about = "One candidate of the ballot chaos suite")]
struct Args {
    /// Backend URL (`file://DIR`, `etcd://...`, `zk://...`, `consul://...`).
    #[arg(long)]
    url: String,
    /// Election name.
    #[arg(long)]
    election: String,
    /// Candidate id: also the value it campaigns with.
    #[arg(long)]
    id: String,
    /// JSON-lines log file (appended to).
    #[arg(long)]
    log: PathBuf,
    /// Fenced store address (must be on 127.0.0.1).
    #[arg(long)]
    store: String,
    /// Session TTL in milliseconds.
    #[arg(long, default_value_t = 3000)]
    ttl_ms: u64,
    /// Safety margin in milliseconds (default: ballot's, TTL/5).
    #[arg(long)]
    margin_ms: Option<u64>,
    /// Leader-work tick in milliseconds: state check and one store write.
    #[arg(long, default_value_t = 20)]
    tick_ms: u64,
    /// Exit by itself after this many seconds.
    #[arg(long, default_value_t = 3600)]
    max_secs: u64,
    /// Deliberately unsafe, to show that the checker catches it: keep believing in
    /// a leadership through `Suspended` and `Lost`, and do not re-check `state()`
    /// before leader work (only a resign or an end stops the belief).
    #[arg(long)]
    unsafe_ignore_loss: bool,
}

/// The host-wide monotonic clock (`CLOCK_MONOTONIC`) in nanoseconds; the driver
/// reads the same clock with `time.monotonic_ns()`.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we pass; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// The JSON-lines log. Each record is written with one `write` call on an
/// `O_APPEND` file, so a SIGKILL never leaves half a line behind.
#[derive(Debug)]
struct Log {
    file: File,
    id: String,
}

impl Log {
    fn open(path: &PathBuf, id: &str) -> std::io::Result<Log> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Log { file, id: id.to_string() })
    }

    /// Writes one record `{"t": <monotonic ns>, "id": .., "ev": .., ...fields}`.
    fn write(&mut self, ev: &str, fields: Value) {
        let mut rec = json!({ "t": monotonic_ns(), "id": self.id, "ev": ev });
        if let (Some(r), Value::Object(f)) = (rec.as_object_mut(), fields) {
            r.extend(f);
        }
        let mut line = rec.to_string();
        line.push('\n');
        // A full disk must not stop the candidate; the checker sees the gap.
        let _ = self.file.write_all(line.as_bytes());
    }
}

/// What this candidate believes about its own leadership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Belief {
    /// Not leading.
    None,
    /// Leading with this term: leader work is allowed.
    Leader(u64),
    /// Was leading with this term, now in doubt: no leader work.
    Suspended(u64),
}

/// One connection to the fenced store, reopened after any error.
#[derive(Debug)]
struct Store {
    addr: String,
    conn: Option<BufReader<TcpStream>>,
}

impl Store {
    /// Sends one write and returns the store's answer line (`OK <max>` or `STALE <max>`).
    async fn write(&mut self, id: &str, term: u64, seq: u64) -> std::io::Result<String> {
        if self.conn.is_none() {
            let s = TcpStream::connect(&self.addr).await?;
            s.set_nodelay(true)?;
            self.conn = Some(BufReader::new(s));
        }
        let res = async {
            let c = self.conn.as_mut().ok_or_else(|| std::io::Error::other("no connection"))?;
            c.get_mut().write_all(format!("W {id} {term} {seq}\n").as_bytes()).await?;
            let mut answer = String::new();
            if c.read_line(&mut answer).await? == 0 {
                return Err(std::io::Error::other("store closed the connection"));
            }
            Ok(answer.trim().to_string())
        }
        .await;
        if res.is_err() {
            self.conn = None;
        }
        res
    }
}

/// The candidate's state: its election handle, its belief and its log.
#[derive(Debug)]
struct Candidate {
    id: String,
    log: Log,
    belief: Belief,
    store: Store,
    seq: u64,
    /// The last `Event::Error`, quoted when the handle drops out of the election.
    last_error: Option<String>,
    /// `--unsafe-ignore-loss`.
    ignore_loss: bool,
}

impl Candidate {
    /// Believes it leads with `term` if the handle's state confirms it.
    fn lead(&mut self, election: &Election, term: u64, why: &str) {
        let state = election.state();
        if state != State::Leader {
            self.log.write("lead_refused", json!({ "term": term, "why": why, "state": state.as_str() }));
            // Elected, then suspended before this event was handled: the
            // `Reconnected` that may follow gives this term back.
            if state == State::Suspended {
                self.belief = Belief::Suspended(term);
            }
            return;
        }
        if self.belief != Belief::Leader(term) {
            self.belief = Belief::Leader(term);
            self.log.write("lead", json!({ "term": term, "why": why }));
        }
    }

    /// Stops believing it leads; `suspended` keeps the term for a `Reconnected`.
    fn unlead(&mut self, why: &str, suspended: bool) {
        if self.ignore_loss && (why == "suspended" || why.starts_with("lost:") || why.starts_with("state:")) {
            return;
        }
        let next = match (self.belief, suspended) {
            (Belief::Leader(t), true) | (Belief::Suspended(t), true) => Belief::Suspended(t),
            _ => Belief::None,
        };
        if let Belief::Leader(t) = self.belief {
            self.log.write("unlead", json!({ "term": t, "why": why }));
        }
        self.belief = next;
    }

    fn on_event(&mut self, election: &Election, ev: Event) {
        match ev {
            Event::Elected { term } => {
                self.log.write("event", json!({ "kind": "elected", "term": term }));
                self.lead(election, term, "elected");
            }
            Event::Suspended => {
                self.log.write("event", json!({ "kind": "suspended" }));
                self.unlead("suspended", true);
            }
            Event::Reconnected => {
                self.log.write("event", json!({ "kind": "reconnected" }));
                if let Belief::Suspended(t) = self.belief {
                    self.lead(election, t, "reconnected");
                }
            }
            Event::Lost { reason } => {
                self.log.write("event", json!({ "kind": "lost", "reason": reason.as_str() }));
                self.unlead(&format!("lost:{reason}"), false);
            }
            Event::Resigned => {
                self.log.write("event", json!({ "kind": "resigned" }));
                self.unlead("resigned", false);
            }
            Event::Ended => {
                self.log.write("event", json!({ "kind": "ended" }));
                self.unlead("ended", false);
            }
            Event::LeaderChanged(l) => {
                let (term, value) = match &l {
                    Some(l) => (Some(l.term), Some(String::from_utf8_lossy(&l.value).into_owned())),
                    None => (None, None),
                };
                self.log.write("event", json!({ "kind": "leader_changed", "term": term, "value": value }));
            }
            Event::Error(e) => {
                self.log.write("event", json!({ "kind": "error", "error": e.to_string() }));
                self.last_error = Some(e.to_string());
            }
            other => {
                self.log.write("event", json!({ "kind": format!("{other:?}") }));
            }
        }
    }

    /// One tick of leader work: re-check the state, then write to the fenced store.
    async fn tick(&mut self, election: &Election) {
        let Belief::Leader(term) = self.belief else { return };
        let state = election.state();
        if state != State::Leader && !self.ignore_loss {
            self.unlead(&format!("state:{state}"), state == State::Suspended);
            return;
        }
        self.seq += 1;
        let seq = self.seq;
        match timeout(Duration::from_millis(500), self.store.write(&self.id, term, seq)).await {
            Ok(Ok(answer)) if answer.starts_with("OK") => {}
            Ok(Ok(answer)) => self.log.write("write_refused", json!({ "term": term, "seq": seq, "answer": answer })),
            Ok(Err(e)) => self.log.write("write_error", json!({ "term": term, "seq": seq, "error": e.to_string() })),
            Err(_) => {
                self.store.conn = None;
                self.log.write("write_error", json!({ "term": term, "seq": seq, "error": "timeout" }));
            }
        }
    }
}

/// Connects, retrying (a server may be down while a fault is injected) until `deadline`.
async fn connect(args: &Args, log: &mut Log, deadline: Instant) -> Option<Client> {
    let mut opts = Options::default().with_ttl(Duration::from_millis(args.ttl_ms));
    if let Some(m) = args.margin_ms {
        opts = opts.with_safety_margin(Duration::from_millis(m));
    }
    let mut attempt = 0u32;
    while Instant::now() < deadline {
        attempt += 1;
        match Client::connect(&args.url, opts.clone()).await {
            Ok(c) => {
                let o = c.options();
                log.write(
                    "connected",
                    json!({
                        "attempt": attempt,
                        "ttl_ms": o.ttl().as_millis() as u64,
                        "margin_ms": o.safety_margin().as_millis() as u64,
                    }),
                );
                return Some(c);
            }
            Err(e) => {
                log.write("connect_error", json!({ "attempt": attempt, "error": e.to_string() }));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    None
}

async fn run(args: Args, mut log: Log) -> ExitCode {
    let deadline = Instant::now() + Duration::from_secs(args.max_secs);
    log.write("start", json!({ "pid": std::process::id() }));
    let (Ok(mut sigterm), Ok(mut sigint)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        log.write("exit", json!({ "why": "cannot install signal handlers" }));
        return ExitCode::FAILURE;
    };
    let client = tokio::select! {
        c = connect(&args, &mut log, deadline) => match c {
            Some(c) => c,
            None => {
                log.write("exit", json!({ "why": "could not connect" }));
                return ExitCode::FAILURE;
            }
        },
        _ = sigterm.recv() => return ExitCode::SUCCESS,
        _ = sigint.recv() => return ExitCode::SUCCESS,
    };
    let election = match client.election(&args.election) {
        Ok(e) => e,
        Err(e) => {
            log.write("exit", json!({ "why": format!("bad election: {e}") }));
            return ExitCode::FAILURE;
        }
    };
    let mut events = election.events();
    let store = Store { addr: args.store.clone(), conn: None };
    let mut cand = Candidate {
        id: args.id.clone(),
        log,
        belief: Belief::None,
        store,
        seq: 0,
        last_error: None,
        ignore_loss: args.unsafe_ignore_loss,
    };
    let mut campaign = Box::pin(election.campaign(args.id.as_bytes()));
    let mut campaigning = true;
    let mut retry_at: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(args.tick_ms.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let why = loop {
        tokio::select! {
            biased;
            _ = sigterm.recv() => break "sigterm",
            _ = sigint.recv() => break "sigint",
            _ = tokio::time::sleep_until(deadline) => break "max_secs",
            ev = events.recv() => match ev {
                Some(ev) => cand.on_event(&election, ev),
                None => {
                    cand.unlead("events_ended", false);
                    break "events_ended";
                }
            },
            r = &mut campaign, if campaigning => {
                campaigning = false;
                match r {
                    Ok(lead) => cand.lead(&election, lead.term(), "campaign"),
                    Err(e) => {
                        cand.log.write("campaign_error", json!({ "error": e.to_string(), "kind": format!("{:?}", e.kind()) }));
                        retry_at = Some(Instant::now() + Duration::from_millis(500));
                    }
                }
            },
            _ = tick.tick() => {
                cand.tick(&election).await;
                // With auto-requeue on (the default), a handle that has not resigned is
                // never Idle: it leads or campaigns. If it is, ballot gave up on it;
                // the checker counts that, and the candidate joins again by itself.
                if !campaigning && retry_at.is_none() && election.state() == State::Idle {
                    cand.unlead("dropped", false);
                    cand.log.write("dropped", json!({ "last_error": cand.last_error.take() }));
                    retry_at = Some(Instant::now());
                }
                if let Some(at) = retry_at {
                    let state = election.state();
                    if Instant::now() >= at && matches!(state, State::Idle) {
                        retry_at = None;
                        campaigning = true;
                        cand.log.write("campaign_retry", json!({}));
                        campaign = Box::pin(election.campaign(args.id.as_bytes()));
                    } else if !matches!(state, State::Idle) {
                        retry_at = None;
                    }
                }
            },
        }
    };
    // Stop believing first, then give leadership back (bounded).
    cand.unlead(why, false);
    drop(campaign);
    let _ = timeout(Duration::from_secs(2), election.resign()).await;
    let _ = timeout(Duration::from_secs(2), client.close()).await;
    cand.log.write("exit", json!({ "why": why }));
    ExitCode::SUCCESS
}

/// `(ppid, command line)` of `pid`, from `/proc`.
fn parent_and_cmdline(pid: u32) -> Option<(u32, Vec<String>)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ppid = stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    Some((ppid, args))
}

/// The command's processes from this one up (this process and its ancestors
/// below the supervisor of `ballot run`), and the supervisor's pid (0 if none was
/// found).
fn tree_pids() -> (Vec<u32>, u32) {
    let mut pids = vec![std::process::id()];
    let mut pid = std::process::id();
    for _ in 0..8 {
        let Some((ppid, _)) = parent_and_cmdline(pid) else { break };
        let Some((_, args)) = parent_and_cmdline(ppid) else { break };
        if ppid <= 1 || args.iter().any(|a| a == "run") {
            break; // `ballot run` itself: no supervisor below it
        }
        if args.iter().any(|a| a == "__supervise") {
            return (pids, ppid);
        }
        pids.push(ppid);
        pid = ppid;
    }
    (pids, 0)
}

/// `ballot-chaos writer --store ADDR --id ID [--tick-ms N]`: see the crate docs.
fn writer(args: &[String]) -> ExitCode {
    use std::io::{BufRead, BufReader};
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let (Some(store), Some(id)) = (opt("--store"), opt("--id")) else {
        eprintln!("ballot-chaos writer: --store and --id are required");
        return ExitCode::FAILURE;
    };
    let tick = Duration::from_millis(opt("--tick-ms").and_then(|t| t.parse().ok()).unwrap_or(20));
    let Some(term) = std::env::var("BALLOT_TERM").ok().and_then(|t| t.parse::<u64>().ok()) else {
        eprintln!("ballot-chaos writer: BALLOT_TERM is not set (it runs under `ballot run`)");
        return ExitCode::FAILURE;
    };
    let (pids, supervisor) = tree_pids();
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    let hello = format!("H {id} {term} {supervisor} {}\n", pids.join(" "));
    // One line out, one answer back.
    fn exchange(w: &mut std::net::TcpStream, r: &mut BufReader<std::net::TcpStream>, msg: &str) -> std::io::Result<()> {
        w.write_all(msg.as_bytes())?;
        let mut answer = String::new();
        if r.read_line(&mut answer)? == 0 {
            return Err(std::io::Error::other("store closed the connection"));
        }
        Ok(())
    }
    let mut seq = 0u64;
    loop {
        let opened = std::net::TcpStream::connect(&store).and_then(|s| {
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            let r = BufReader::new(s.try_clone()?);
            Ok((s, r))
        });
        let Ok((mut w, mut r)) = opened else {
            std::thread::sleep(tick);
            continue;
        };
        // Every connection starts with the hello, so the driver knows the tree.
        if exchange(&mut w, &mut r, &hello).is_err() {
            std::thread::sleep(tick);
            continue;
        }
        loop {
            seq += 1;
            if exchange(&mut w, &mut r, &format!("W {id} {term} {seq}\n")).is_err() {
                break;
            }
            std::thread::sleep(tick);
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).is_some_and(|a| a == "writer") {
        // No PR_SET_PDEATHSIG here: whether this process outlives its leadership is
        // what the run mode checks.
        return writer(&argv[2..]);
    }
    let args = Args::parse();
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers and touches no memory of ours.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let log = match Log::open(&args.log, &args.id) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ballot-chaos: cannot open log {}: {e}", args.log.display());
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ballot-chaos: cannot build a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(args, log))
}
