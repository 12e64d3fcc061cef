//! The `ballot` command: leader election from the shell.

// The doc comments of the clap types are `--help` text, read by people in a
// terminal, not markdown: `<temp dir>` there is not an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

mod demo;
mod run;

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
Backends (--backend or $BALLOT_BACKEND; default: the local backend in the temp dir):
  file:///var/run/ballot                         local, single host, no server
  etcd://[user:pass@]h1:2379[,h2:2379][/ns]      etcds:// for TLS
  zk://[user:pass@]h1:2181[,h2:2181][/chroot]
  consul://[token@]h:8500[/ns]                   consuls:// for TLS
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

#[derive(Parser, Debug)]
#[command(name = "ballot", version, about = "Leader election on etcd, ZooKeeper, Consul or the local host", after_help = AFTER_HELP)]
struct Cli {
    /// Backend URL. Default: $BALLOT_BACKEND, else file://<temp dir>/ballot.
    #[arg(long, global = true, value_name = "URL")]
    backend: Option<String>,

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
    },
    /// Run CMD only while leader; stop it on loss (SIGTERM, then SIGKILL after --grace).
    Run {
        /// Election name.
        election: String,
        /// Value to campaign with (default: <hostname>:<pid>).
        #[arg(long)]
        value: Option<String>,
        /// Time between SIGTERM and SIGKILL when the command must stop.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        grace: std::time::Duration,
        /// Campaign again when the command exits or leadership is lost, instead of exiting.
        #[arg(long)]
        requeue: bool,
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
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("{s:?}: expected a number and a unit, as 10s"))?;
    match unit {
        "ms" => Ok(std::time::Duration::from_millis(n)),
        "s" => Ok(std::time::Duration::from_secs(n)),
        "m" => Ok(std::time::Duration::from_secs(n * 60)),
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
}

pub(crate) type CliResult = Result<u8, Fail>;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ballot: error: internal: cannot start the runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            if let Some(m) = f.message {
                eprintln!("ballot: error: {m}");
            }
            ExitCode::from(f.code)
        }
    }
}

pub(crate) fn backend_url(flag: Option<String>) -> String {
    flag.or_else(|| std::env::var("BALLOT_BACKEND").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(ballot::default_backend_url)
}

async fn dispatch(cli: Cli) -> CliResult {
    match cli.command {
        Command::Demo { candidates } => demo::demo(cli.backend, candidates).await,
        Command::Campaign { election, value, monotonic } => {
            let client = connect(cli.backend, Options::default()).await?;
            campaign(&client, &election, &value, monotonic).await
        }
        Command::Run { election, value, grace, requeue, cmd } => {
            let client = connect(cli.backend, Options::default().with_auto_requeue(false)).await?;
            run::run(&client, &election, value, grace, requeue, cmd).await
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
        Command::Observe { election, json } => {
            let client = connect(cli.backend, Options::default()).await?;
            let e = client.election(&election)?;
            observe(&e, json).await
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
    Ok(Client::connect(&backend_url(backend), options).await?)
}

/// `term=T key=K value=V`, or the JSON object.
pub(crate) fn format_leader(l: Option<&Leader>, json: bool) -> String {
    match (l, json) {
        (None, true) => "null".into(),
        (None, false) => "no leader".into(),
        (Some(l), true) => {
            let mut o = serde_json::Map::new();
            match std::str::from_utf8(&l.value) {
                Ok(s) => o.insert("value".into(), s.into()),
                Err(_) => {
                    o.insert("value_hex".into(), l.value.iter().map(|b| format!("{b:02x}")).collect::<String>().into())
                }
            };
            o.insert("term".into(), l.term.into());
            o.insert("key".into(), l.key.clone().into());
            json_for_terminal(&serde_json::Value::Object(o))
        }
        (Some(l), false) => format!("term={} key={} value={}", l.term, escape(l.key.as_bytes()), escape(&l.value)),
    }
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

/// Resolves on SIGINT or SIGTERM, with the signal number.
pub(crate) async fn terminated() -> i32 {
    Terminations::new().recv().await
}

async fn campaign(client: &Client, election: &str, value: &str, monotonic: bool) -> CliResult {
    let e = client.election(election)?;
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
        assert!(parse_duration("10").is_err());
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
