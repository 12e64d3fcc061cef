//! The `ballot` command: leader election from the shell.

// The doc comments of the clap types are `--help` text, read by people in a
// terminal, not markdown: `<temp dir>` there is not an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

mod demo;
mod generate;
mod procs;
mod run;
mod serve;
mod supervise;

use std::process::ExitCode;

use ballot::{Client, Election, ErrorKind, Event, Leader, Options};
use clap::{Parser, Subcommand};
use futures_util::StreamExt;

/// Exit codes, documented in `--help`.
mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NO_LEADER: u8 = 3;
    pub const LOST: u8 = 4;
    pub const ENDED: u8 = 5;
}

const AFTER_HELP: &str = "\
Backends (--backend or $BALLOT_BACKEND; default: the local backend in $XDG_STATE_HOME/ballot,
that is ~/.local/state/ballot, or /var/lib/ballot for root):
  file:///var/run/ballot                         local, single host, no server
  etcd://[user:pass@]h1:2379[,h2:2379][/ns]      etcds:// for TLS
  zk://[user:pass@]h1:2181[,h2:2181][/chroot]    zks://...?ca=ca.pem&cert=..&key=.. for TLS
  consul://[token@]h:8500[/ns]                   consuls:// for TLS
  postgres://user:pass@h:5432[,h2]/db[/ns]       ?sslmode=verify-full&sslrootcert=ca.pem
                                                 &schema=ballot&pooler=transaction (PgBouncer)
  Common options: ?ttl=10s&margin=2s&connect_timeout=5s

Exit codes:
  0  success
  1  error (stderr names the kind and the cause)
  2  usage error or invalid argument
  3  `leader`: the election has no leader
  4  leadership was lost (`campaign`, `run` without --requeue)
  5  the election was ended by `ballot end` or end()
  `run` exits with its command's status when the command ends on its own
  (128+N if a signal N killed it).";

const RUN_HELP: &str = "\
The command runs under a supervisor (`ballot __supervise`), in a process group of
its own, with BALLOT_TERM, BALLOT_ELECTION and BALLOT_KEY in its environment.
`ballot run` and the supervisor are child subreapers: every process the command
starts stays their descendant, also one that leaves the process group or the
session (setsid, double fork). Stopping the command means SIGTERM to all of them,
SIGKILL to whatever is left, repeated until nothing is left, and every process
reaped, before `ballot run` resigns or campaigns again.

When the command must stop:
  it exited               the rest of its tree: SIGTERM, SIGKILL after --grace;
                          then resign and exit with its status (--requeue: again)
  SIGINT or SIGTERM       the same, then resign; a second signal: SIGKILL at once
  lost, ended             SIGKILL at once, whatever --grace says: at a loss the
                          library withdraws this candidate's record, so another
                          candidate may win as soon as the server hears of it
  suspended               --on-suspend stop (default): SIGSTOP to the tree, SIGCONT
                          when leadership is confirmed again (SIGKILL if it is
                          lost instead); keep: it runs on
  `ballot run` is killed  (even by SIGKILL) the supervisor SIGKILLs the tree. On
                          the local backend it holds the leader lock until the
                          tree is gone, so no other candidate is elected before;
                          on etcd, ZooKeeper, Consul and PostgreSQL the session outlives
                          `ballot run` by its TTL, far longer than that takes.

Limits: a process that is not a descendant (started through systemd, cron, ssh or
a D-Bus service) is not covered. If `ballot run` and its supervisor are both
SIGKILLed (`kill -9` of both, the OOM killer), the command itself dies
(PR_SET_PDEATHSIG) but processes it started may remain. A process in
uninterruptible sleep dies only when it wakes; `ballot run` waits for it, and
keeps leading while it can. A `ballot run` that is itself paused (SIGSTOP, a
frozen VM) cannot stop anything in time: give resources BALLOT_TERM as a fencing
token. No cgroup is used.";

#[derive(Parser, Debug)]
#[command(name = "ballot", version, about = "Leader election on etcd, ZooKeeper, Consul, PostgreSQL or the local host", after_help = AFTER_HELP)]
struct Cli {
    /// Backend URL. Default: $BALLOT_BACKEND, else file://$XDG_STATE_HOME/ballot
    /// (~/.local/state/ballot; /var/lib/ballot for root).
    #[arg(long, global = true, value_name = "URL")]
    backend: Option<String>,

    /// Print the library's log records at LEVEL and above to stderr: off, error,
    /// warn, info, debug or trace. Default: $BALLOT_LOG, else off.
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start N candidate processes, kill the leader, print the timeline and the failover time.
    Demo {
        /// How many candidate processes.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=64))]
        candidates: u32,
    },
    /// Campaign and hold leadership until SIGINT/SIGTERM, then resign.
    Campaign {
        /// Election name.
        election: String,
        /// Value to campaign with.
        value: String,
        /// Also print the CLOCK_MONOTONIC time of each event (used by `demo`).
        #[arg(long, hide = true)]
        monotonic: bool,
        /// Serve GET /metrics (Prometheus text format 0.0.4) and GET /healthz (200
        /// while the session is healthy and leadership is not suspended, else 503,
        /// with a one-line reason) on HOST:PORT, e.g. 127.0.0.1:9464.
        #[arg(long, value_name = "HOST:PORT", value_parser = serve::parse_addr)]
        metrics_addr: Option<String>,
    },
    /// Run CMD only while leader; stop its whole process tree when leadership ends.
    #[command(after_long_help = RUN_HELP)]
    Run {
        /// Election name.
        election: String,
        /// Value to campaign with (default: <hostname>:<pid>).
        #[arg(long)]
        value: Option<String>,
        /// Time between SIGTERM and SIGKILL when the command must stop because it
        /// exited (what it left behind) or `ballot run` was told to stop (ms, s or
        /// m). Not after a loss of leadership: then SIGKILL comes at once.
        #[arg(long, default_value = "10s", value_name = "DURATION")]
        grace: String,
        /// What to do with the command while leadership is suspended: `stop`
        /// (SIGSTOP, SIGCONT when confirmed again) or `keep` it running.
        #[arg(long, value_enum, default_value = "stop", value_name = "WHAT")]
        on_suspend: run::OnSuspend,
        /// Campaign again when the command exits or leadership is lost, instead of
        /// exiting; also after a campaign that failed on a connection, timeout, lost
        /// session or backend error (after a loss or a failure, under a new session).
        #[arg(long)]
        requeue: bool,
        /// Serve GET /metrics (Prometheus text format 0.0.4) and GET /healthz (200
        /// while the session is healthy and leadership is not suspended, else 503,
        /// with a one-line reason) on HOST:PORT, e.g. 127.0.0.1:9464.
        #[arg(long, value_name = "HOST:PORT", value_parser = serve::parse_addr)]
        metrics_addr: Option<String>,
        /// The command and its arguments (after --).
        #[arg(last = true, required = true, num_args = 1..)]
        cmd: Vec<String>,
    },
    /// Print the leader's value, term and key; exit 3 when there is none.
    Leader {
        /// Election name.
        election: String,
        /// Print JSON: {"value":..,"term":..,"key":..}.
        #[arg(long)]
        json: bool,
    },
    /// Print the candidates in queue order, the leader first: one line each,
    /// `leader key=K value=V` or `waiting key=K value=V` (nothing when nobody
    /// campaigns).
    Participants {
        /// Election name.
        election: String,
        /// Print one JSON array: [{"key":..,"value":..,"leader":true|false},..] in
        /// queue order, with "value_hex" instead of "value" for a value that is
        /// not UTF-8.
        #[arg(long)]
        json: bool,
    },
    /// Print one line per leader change until interrupted.
    Observe {
        /// Election name.
        election: String,
        /// Print JSON lines (null when there is no leader).
        #[arg(long)]
        json: bool,
    },
    /// End the election for every participant.
    End {
        /// Election name.
        election: String,
    },
    /// Print the SQL that creates or upgrades the PostgreSQL backend's schema, for
    /// databases where the applications' role may not run DDL: apply it once as
    /// the schema's owner (psql -v ON_ERROR_STOP=1 -f FILE), then ballot only reads it.
    #[cfg(feature = "postgres")]
    PgSchema {
        /// The schema (the URL's schema= option).
        #[arg(long, default_value = "ballot", value_name = "NAME")]
        schema: String,
        /// The version the schema is at (0: it does not exist yet); only later
        /// migrations are printed. `SELECT max(version) FROM ballot.schema_migrations`.
        #[arg(long, default_value_t = 0, value_name = "VERSION")]
        from: i32,
        /// Also grant ROLE the least privileges that running elections and
        /// is_leader() need (repeatable).
        #[arg(long, value_name = "ROLE")]
        grant: Vec<String>,
    },
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    if n.is_empty() {
        return Err(format!("{s:?}: expected a number and a unit, as 10s"));
    }
    let too_long = || format!("{s:?} is too long");
    let n: u64 = n.parse().map_err(|_| too_long())?;
    let secs = |mult: u64| n.checked_mul(mult).map(std::time::Duration::from_secs).ok_or_else(too_long);
    match unit {
        "ms" => Ok(std::time::Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        _ => Err(format!("{s:?}: unit must be ms, s or m")),
    }
}

/// Text that is safe to print to a terminal: control characters (C0, DEL, C1),
/// the bidirectional overrides and isolates, and invalid UTF-8 are written as
/// escapes, and so is the backslash, so that the text reads back unambiguously.
pub(crate) fn escape(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() || is_bidi_control(c) => {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// The characters that reorder the text around them (embeddings, overrides,
/// isolates, marks): printed raw they can make a value look like another.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{61c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// JSON whose strings carry no character that could drive a terminal: serde_json
/// already escapes C0 controls; DEL, C1 controls and bidirectional controls are
/// escaped here too (still valid JSON, and the same strings once parsed).
fn json_for_terminal(v: &serde_json::Value) -> String {
    use std::fmt::Write;
    let raw = v.to_string();
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_control() || is_bidi_control(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// A failure that ends the command with an exit code and (maybe) a message.
pub(crate) struct Fail {
    code: u8,
    message: Option<String>,
}

impl From<ballot::Error> for Fail {
    fn from(e: ballot::Error) -> Fail {
        let code = match e.kind() {
            ErrorKind::InvalidArgument => exit::USAGE,
            ErrorKind::Ended => exit::ENDED,
            _ => exit::ERROR,
        };
        Fail { code, message: Some(format!("{}: {}", e.kind(), e.message())) }
    }
}

impl Fail {
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Fail {
        Fail { code, message: Some(message.into()) }
    }
    pub(crate) fn code(code: u8) -> Fail {
        Fail { code, message: None }
    }
    pub(crate) fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }
}

pub(crate) type CliResult = Result<u8, Fail>;

fn main() -> ExitCode {
    // `ballot run` starts this binary again as the supervisor of its command; that
    // process has no runtime and no clap.
    let mut args = std::env::args_os();
    match args.nth(1) {
        Some(a) if a == "__supervise" => return supervise::main(args.collect()),
        // Outside clap, so that the man pages and completions it writes do not
        // offer it.
        Some(a) if a == "__generate" => return generate::main(args.collect()),
        _ => {}
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if let Err(m) = start_logging(cli.log_level.as_deref()) {
        eprintln!("ballot: error: invalid_argument: {m}");
        return ExitCode::from(exit::USAGE);
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ballot: error: internal: cannot start the runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let outcome = rt.block_on(dispatch(cli));
    // Records cross a library thread: print those made so far before exiting.
    ballot::logging::flush(std::time::Duration::from_secs(1));
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            if let Some(m) = f.message {
                eprintln!("ballot: error: {m}");
            }
            ExitCode::from(f.code)
        }
    }
}

/// Sends the library's records to stderr at the level of `--log-level`, else of
/// `BALLOT_LOG`; nothing when neither is set.
fn start_logging(flag: Option<&str>) -> Result<(), String> {
    use ballot::logging::{self, Level};
    let level = match flag {
        Some(l) => Level::parse(l).map_err(|e| format!("--log-level: {}", e.message()))?,
        None => logging::level_from_env().map_err(|e| e.message().to_string())?,
    };
    if level.is_some() {
        logging::set_sink(level, Some(logging::stderr_sink())).map_err(|e| e.message().to_string())?;
    }
    Ok(())
}

pub(crate) fn backend_url(flag: Option<String>) -> String {
    flag.or_else(|| std::env::var("BALLOT_BACKEND").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(ballot::default_backend_url)
}

async fn dispatch(cli: Cli) -> CliResult {
    match cli.command {
        Command::Demo { candidates } => demo::demo(cli.backend, candidates).await,
        Command::Campaign { election, value, monotonic, metrics_addr } => {
            let mut health = serve::HealthSlot::default();
            if let Some(addr) = &metrics_addr {
                health = serve::HealthSlot::serving();
                serve::start(addr, health.clone()).await?;
            }
            let client = connect(cli.backend, Options::default()).await?;
            campaign(&client, &election, &value, monotonic, &health).await
        }
        Command::Run { election, value, grace, on_suspend, requeue, metrics_addr, cmd } => {
            let grace =
                parse_duration(&grace).map_err(|m| Fail::new(exit::USAGE, format!("invalid_argument: --grace {m}")))?;
            let options = Options::default().with_auto_requeue(false);
            let mut health = serve::HealthSlot::default();
            if let Some(addr) = &metrics_addr {
                health = serve::HealthSlot::serving();
                serve::start(addr, health.clone()).await?;
            }
            let opts = run::RunOptions { value, grace, requeue, on_suspend, cmd, health };
            run::run(cli.backend, options, &election, opts).await
        }
        Command::Leader { election, json } => {
            let client = connect(cli.backend, Options::default()).await?;
            let e = client.election(&election)?;
            let leader = e.leader().await?;
            client.close().await?;
            match leader {
                Some(l) => {
                    println!("{}", format_leader(Some(&l), json));
                    Ok(exit::OK)
                }
                None if json => {
                    println!("null");
                    Ok(exit::NO_LEADER)
                }
                None => Err(Fail::new(exit::NO_LEADER, format!("no_leader: election {election:?} has no leader"))),
            }
        }
        Command::Participants { election, json } => {
            let client = connect(cli.backend, Options::default()).await?;
            let list = client.election(&election)?.participants().await?;
            client.close().await?;
            print!("{}", format_participants(&list, json));
            Ok(exit::OK)
        }
        Command::Observe { election, json } => {
            let client = connect(cli.backend, Options::default()).await?;
            let e = client.election(&election)?;
            observe(&e, json).await
        }
        #[cfg(feature = "postgres")]
        Command::PgSchema { schema, from, grant } => {
            let script = ballot::postgres::schema_script(&schema, from, &grant)?;
            print!("{script}");
            Ok(exit::OK)
        }
        Command::End { election } => {
            let client = connect(cli.backend, Options::default()).await?;
            client.election(&election)?.end().await?;
            println!("ended {election}");
            client.close().await?;
            Ok(exit::OK)
        }
    }
}

pub(crate) async fn connect(backend: Option<String>, options: Options) -> Result<Client, Fail> {
    let url = backend_url(backend);
    refuse_in_process(&url)?;
    Ok(Client::connect(&url, options).await?)
}

/// Refuses `memory://`: its elections live inside one process, and every `ballot`
/// command is a process of its own, so no other candidate could ever see the
/// election and each one would lead alone.
pub(crate) fn refuse_in_process(url: &str) -> Result<(), Fail> {
    let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
    if scheme.eq_ignore_ascii_case("memory") {
        return Err(ballot::Error::new(
            ErrorKind::InvalidArgument,
            "memory:// elections live inside one process, and each ballot command runs in its own, so no other \
             candidate would see this one; use file:// for the processes of one host, or a server backend",
        )
        .into());
    }
    Ok(())
}

/// `term=T key=K value=V`, or the JSON object.
pub(crate) fn format_leader(l: Option<&Leader>, json: bool) -> String {
    match (l, json) {
        (None, true) => "null".into(),
        (None, false) => "no leader".into(),
        (Some(l), true) => {
            let mut o = serde_json::Map::new();
            insert_value(&mut o, &l.value);
            o.insert("term".into(), l.term.into());
            o.insert("key".into(), l.key.clone().into());
            json_for_terminal(&serde_json::Value::Object(o))
        }
        (Some(l), false) => format!("term={} key={} value={}", l.term, escape(l.key.as_bytes()), escape(&l.value)),
    }
}

/// Puts `value` into a JSON object: as the string "value" when it is UTF-8,
/// else as "value_hex" (lowercase hex), so that no byte is lost or replaced.
fn insert_value(o: &mut serde_json::Map<String, serde_json::Value>, value: &[u8]) {
    match std::str::from_utf8(value) {
        Ok(s) => o.insert("value".into(), s.into()),
        Err(_) => o.insert("value_hex".into(), value.iter().map(|b| format!("{b:02x}")).collect::<String>().into()),
    };
}

/// The participants as lines (`leader key=K value=V`, `waiting key=K value=V`,
/// escaped like `format_leader`), or as one JSON array line.
pub(crate) fn format_participants(list: &[ballot::Participant], json: bool) -> String {
    if json {
        let items = list
            .iter()
            .map(|p| {
                let mut o = serde_json::Map::new();
                o.insert("key".into(), p.key.clone().into());
                insert_value(&mut o, &p.value);
                o.insert("leader".into(), p.leader.into());
                serde_json::Value::Object(o)
            })
            .collect();
        return format!("{}\n", json_for_terminal(&serde_json::Value::Array(items)));
    }
    list.iter()
        .map(|p| {
            let role = if p.leader { "leader" } else { "waiting" };
            format!("{role} key={} value={}\n", escape(p.key.as_bytes()), escape(&p.value))
        })
        .collect()
}

pub(crate) fn monotonic_ns() -> u128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we pass; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

/// SIGINT and SIGTERM, caught for as long as this lives: a signal that arrives
/// while nobody waits in [`Terminations::recv`] is kept for the next call.
pub(crate) struct Terminations {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

impl Terminations {
    pub(crate) fn new() -> Terminations {
        use tokio::signal::unix::{signal, SignalKind};
        Terminations { int: signal(SignalKind::interrupt()).ok(), term: signal(SignalKind::terminate()).ok() }
    }

    /// Resolves on the next SIGINT or SIGTERM, with the signal number. Cancel-safe.
    pub(crate) async fn recv(&mut self) -> i32 {
        let (Some(int), Some(term)) = (self.int.as_mut(), self.term.as_mut()) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = int.recv() => libc::SIGINT,
            _ = term.recv() => libc::SIGTERM,
        }
    }
}

async fn campaign(
    client: &Client,
    election: &str,
    value: &str,
    monotonic: bool,
    health: &serve::HealthSlot,
) -> CliResult {
    let e = client.election(election)?;
    health.set(&e);
    let mut events = e.events();
    let stamp = |line: String| {
        if monotonic {
            println!("{line} mono_ns={}", monotonic_ns());
        } else {
            println!("{line}");
        }
    };
    // Caught from here on: a signal that arrives while an event is handled is kept.
    let mut signals = Terminations::new();
    stamp("campaigning".into());
    let lead = tokio::select! {
        r = e.campaign(value) => r?,
        _ = signals.recv() => {
            client.close().await?;
            return Ok(exit::OK);
        }
    };
    stamp(format!("elected term={} key={}", lead.term(), escape(lead.key().as_bytes())));
    loop {
        tokio::select! {
            ev = events.next() => match ev {
                Some(Event::Elected { term }) if term != lead.term() => stamp(format!("elected term={term}")),
                Some(Event::Suspended) => stamp("suspended".into()),
                Some(Event::Reconnected) => stamp("reconnected".into()),
                Some(Event::Lost { reason }) => stamp(format!("lost reason={reason}")),
                Some(Event::Error(err)) => eprintln!("ballot: warning: {err}"),
                Some(Event::Ended) | None => {
                    stamp("ended".into());
                    return Ok(exit::ENDED);
                }
                _ => {}
            },
            _ = signals.recv() => {
                let r = e.resign().await;
                stamp("resigned".into());
                client.close().await?;
                return match r {
                    Ok(()) => Ok(exit::OK),
                    Err(err) if err.kind() == ErrorKind::NotLeader => Ok(exit::OK),
                    Err(err) => Err(err.into()),
                };
            }
        }
    }
}

async fn observe(e: &Election, json: bool) -> CliResult {
    let mut changes = e.observe();
    let mut signals = Terminations::new();
    loop {
        tokio::select! {
            item = changes.next() => match item {
                Some(Ok(l)) => println!("{}", format_leader(l.as_ref(), json)),
                Some(Err(err)) if err.kind() == ErrorKind::Ended => {
                    println!("{}", if json { "{\"ended\":true}" } else { "ended" });
                    return Ok(exit::ENDED);
                }
                Some(Err(err)) if err.kind() == ErrorKind::Closed => return Err(err.into()),
                Some(Err(err)) => eprintln!("ballot: warning: {err}"),
                None => return Ok(exit::OK),
            },
            _ = signals.recv() => return Ok(exit::OK),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn grace_durations() {
        assert_eq!(parse_duration("250ms").unwrap(), std::time::Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), std::time::Duration::from_secs(120));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("s").is_err());
        // Overflow is an error, not a panic or a wrapped value.
        assert!(parse_duration("307445734561825861m").unwrap_err().contains("too long"));
        assert!(parse_duration("99999999999999999999s").unwrap_err().contains("too long"));
    }

    #[test]
    fn escapes_what_could_drive_a_terminal() {
        assert_eq!(escape(b"node-1 caf\xc3\xa9"), "node-1 caf\u{e9}");
        assert_eq!(escape(b"\x1b[2J\x07a\\b\n\x7f"), "\\u{1b}[2J\\u{7}a\\\\b\\n\\u{7f}");
        assert_eq!(escape("\u{9b}31m \u{202e}x".as_bytes()), "\\u{9b}31m \\u{202e}x");
        assert_eq!(escape(b"\xff\xfe"), "\\xff\\xfe");
        let v = serde_json::json!({"value": "\u{1b}]0;t\u{7}\u{9b}\u{7f}\u{202e}"});
        let j = json_for_terminal(&v);
        assert!(j.chars().all(|c| !c.is_control() && !is_bidi_control(c)), "{j}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&j).unwrap(), v);
    }
}
