//! ballot's logs, and the one sink every surface without a `tracing` subscriber
//! of its own (C, Python, Node, the CLI) routes them through.
//!
//! # What is recorded
//!
//! The core records through [`tracing`], under targets that start with `ballot`:
//!
//! - one span per client, `ballot_client`, with the fields `backend` (the URL's
//!   scheme) and `client` (a number unique in the process), and one per election
//!   handle, `ballot_election`, inside its client's, with the field `election`;
//! - an event at every change of an election's state, for every event a handle
//!   delivers (`elected`, `suspended`, `reconnected`, `lost` with its reason,
//!   `resigned`, `ended`, `error`), at each automatic requeue, at each change of
//!   the session's health (suspended, lost, reconnected, a new session) and at
//!   each keepalive that failed.
//!
//! Levels: `warn` for what takes or may take leadership away (suspended, lost,
//! errors, a lost session), `info` for the other changes of a handle or a
//! session, `debug` for state transitions, leader changes and single keepalive
//! failures. Nothing is recorded per successful keepalive.
//!
//! **Secrets are never recorded**: no userinfo, token or query of a URL, no
//! credential, no value (a leader change names the key and term, not the value).
//!
//! A Rust program sees these through its own subscriber (for example
//! `tracing-subscriber`'s `fmt`), with the spans' fields as context. With no
//! subscriber installed, a record costs one relaxed atomic load at its call site.
//!
//! # The sink
//!
//! [`set_sink`] installs, once per process, a global subscriber that hands each
//! enabled record, as a [`Record`], to one sink. Records cross a bounded queue
//! (1,024) to one library thread, `ballot-log`, which calls the sink one record at
//! a time, in order; so the thread that records never waits for the sink (a
//! Python sink needs the GIL, which that thread may be waiting to give back). A
//! record that finds the queue full is dropped and counted; the next record that
//! fits is preceded by a `warn` record saying how many were dropped.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};

use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::{LookupSpan, Registry};

use crate::error::{Error, ErrorKind, Result};
use crate::sync::PerProcess;

/// A record's importance, most important first. Codes (1 to 5) are stable: the
/// C ABI's `ballot_log_level` uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Level {
    /// Something failed that the caller did not ask about.
    Error = 1,
    /// Leadership is or may be gone: suspended, lost, a lost session, an error event.
    Warn = 2,
    /// Other changes of a handle or of a session: elected, resigned, reconnected,
    /// ended, a requeue, a new session, a client connected or closed.
    Info = 3,
    /// State transitions, leader changes, single keepalive failures.
    Debug = 4,
    /// Reserved for finer records; nothing is recorded at this level yet.
    Trace = 5,
}

impl Level {
    /// Every level, most important first.
    pub const ALL: [Level; 5] = [Level::Error, Level::Warn, Level::Info, Level::Debug, Level::Trace];

    /// The level's name: `error`, `warn`, `info`, `debug` or `trace`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }

    /// The level of a stable code (1 to 5), if any.
    pub fn from_code(code: u32) -> Option<Level> {
        Level::ALL.get((code as usize).checked_sub(1)?).copied()
    }

    /// Reads a level name as `BALLOT_LOG` and `--log-level` take it: one of the
    /// names above (any case; `warning` too), or `off` for no records (None).
    ///
    /// # Errors
    ///
    /// `InvalidArgument` naming the accepted names.
    pub fn parse(text: &str) -> Result<Option<Level>> {
        let t = text.trim().to_ascii_lowercase();
        if t == "off" || t == "none" {
            return Ok(None);
        }
        if t == "warning" {
            return Ok(Some(Level::Warn));
        }
        Level::ALL.iter().find(|l| l.as_str() == t).map(|l| Some(*l)).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("unknown log level {text:?}: use off, error, warn, info, debug or trace"),
            )
        })
    }

    fn of(level: &tracing::Level) -> Level {
        match *level {
            tracing::Level::ERROR => Level::Error,
            tracing::Level::WARN => Level::Warn,
            tracing::Level::INFO => Level::Info,
            tracing::Level::DEBUG => Level::Debug,
            _ => Level::Trace,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record as a sink receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its level.
    pub level: Level,
    /// What happened, followed by the record's other fields as ` key=value`.
    pub message: String,
    /// The backend (the URL's scheme) of the client it concerns, if any.
    pub backend: Option<String>,
    /// The election it concerns, if any.
    pub election: Option<String>,
}

impl Record {
    /// The record on one line, as the CLI and `BALLOT_LOG` print it:
    /// `ballot warn backend=etcd election=svc: session suspended: ...`.
    pub fn line(&self) -> String {
        format!("ballot {} {}", self.level, self.text())
    }

    /// The record without its level, for loggers that show the level and the
    /// logger's name themselves: `backend=etcd election=svc: session suspended: ...`.
    pub fn text(&self) -> String {
        let mut s = String::new();
        if let Some(b) = &self.backend {
            let _ = write!(s, "backend={b} ");
        }
        if let Some(e) = &self.election {
            let _ = write!(s, "election={e} ");
        }
        if s.is_empty() {
            return self.message.clone();
        }
        s.pop();
        let _ = write!(s, ": {}", self.message);
        s
    }
}

/// Where records go. Called on the `ballot-log` thread, one record at a time.
pub type Sink = Arc<dyn Fn(&Record) + Send + Sync>;

/// The most detailed level delivered (a [`Level`] code), 0 for none.
static MAX: AtomicU8 = AtomicU8::new(0);
/// The sink, boxed: a pointer swapped without a lock, because a lock that a
/// thread of the parent holds at `fork()` would stay held for ever in the child.
/// Null for none.
static SINK: AtomicPtr<Sink> = AtomicPtr::new(std::ptr::null_mut());
/// Whether ballot's subscriber became the process's global one (else why not).
static INSTALLED: OnceLock<std::result::Result<(), String>> = OnceLock::new();

/// Sends ballot's records at `level` and above to `sink`, replacing the sink
/// before it; `None` for either stops the records (the subscriber stays
/// installed, at the cost of an atomic load per record and of keeping the spans).
/// When it returns, the sink it replaced is not running and is never called again.
///
/// The first call that gives a sink installs ballot's subscriber as the process's
/// global `tracing` subscriber. Thread-safe.
///
/// # Errors
///
/// `InvalidArgument` when another global `tracing` subscriber was installed
/// first (a Rust program that has one reads ballot's records through it), or
/// when called from inside the sink.
pub fn set_sink(level: Option<Level>, sink: Option<Sink>) -> Result<()> {
    let on = level.is_some() && sink.is_some();
    if on {
        let installed = INSTALLED.get_or_init(|| {
            tracing::subscriber::set_global_default(Registry::default().with(SinkLayer)).map_err(|e| e.to_string())
        });
        if let Err(e) = installed {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("another tracing subscriber is installed in this process ({e}); ballot's records go to it"),
            ));
        }
    }
    if IN_SINK.with(|c| c.get()) {
        return Err(Error::new(ErrorKind::InvalidArgument, "the log sink cannot be replaced from inside a call to it"));
    }
    let fresh = match sink {
        Some(sink) if on => Box::into_raw(Box::new(sink)),
        _ => std::ptr::null_mut(),
    };
    MAX.store(if on { level.map_or(0, |l| l as u8) } else { 0 }, Ordering::SeqCst);
    let old = SINK.swap(fresh, Ordering::SeqCst);
    // A call of the old sink may be in progress on this process's log thread (it
    // marks itself calling before it loads the pointer): wait for it, so that the
    // old sink is not running once this returns and can be dropped.
    QUEUES.get().wait_idle();
    if !old.is_null() {
        // SAFETY: `old` came from `Box::into_raw` above, was swapped out so no new
        // call can load it, and the only thread that called it is done with it (a
        // thread of a parent process that forked does not exist here).
        drop(unsafe { Box::from_raw(old) });
    }
    Ok(())
}

thread_local! {
    /// Set on the `ballot-log` thread while it calls the sink.
    static IN_SINK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The level a surface starts with when its user set none: `BALLOT_LOG`, if set.
///
/// # Errors
///
/// `InvalidArgument` for a `BALLOT_LOG` that is not a level name.
pub fn level_from_env() -> Result<Option<Level>> {
    match std::env::var("BALLOT_LOG") {
        Ok(v) if !v.trim().is_empty() => {
            Level::parse(&v).map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("BALLOT_LOG: {}", e.message())))
        }
        _ => Ok(None),
    }
}

/// A sink that prints [`Record::line`] to standard error.
pub fn stderr_sink() -> Sink {
    Arc::new(|r: &Record| eprintln!("{}", r.line()))
}

fn ours(meta: &Metadata<'_>) -> bool {
    meta.target().starts_with("ballot")
}

/// The fields of a span or an event, as a record wants them.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
    backend: Option<String>,
    election: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "backend" => self.backend = Some(value.to_string()),
            "election" => self.election = Some(value.to_string()),
            name => {
                let _ = write!(self.rest, " {name}={value}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            "backend" => self.backend = Some(format!("{value:?}")),
            "election" => self.election = Some(format!("{value:?}")),
            name => {
                let _ = write!(self.rest, " {name}={value:?}");
            }
        }
    }
}

struct SinkLayer;

impl<S> Layer<S> for SinkLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        // Others' records (the HTTP, gRPC and SQL clients') are never ours to
        // deliver: their call sites are switched off for good.
        if ours(meta) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _: Context<'_, S>) -> bool {
        // Spans are always kept: a record made after the level was raised still
        // finds its client and election.
        ours(meta) && (meta.is_span() || Level::of(meta.level()) as u8 <= MAX.load(Ordering::Relaxed))
    }

    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(f) = span.extensions().get::<Fields>() {
                    fields.backend = fields.backend.take().or_else(|| f.backend.clone());
                    fields.election = fields.election.take().or_else(|| f.election.clone());
                }
            }
        }
        fields.message.push_str(&fields.rest);
        enqueue(Record {
            level: Level::of(event.metadata().level()),
            message: fields.message,
            backend: fields.backend,
            election: fields.election,
        });
    }
}

const QUEUE: usize = 1024;

struct Queue {
    tx: Option<mpsc::SyncSender<Record>>,
    dropped: AtomicU64,
    /// Records queued, and records the thread is done with (delivered or not).
    queued: AtomicU64,
    done: std::sync::Mutex<u64>,
    progress: std::sync::Condvar,
    /// Set by the log thread while it may be calling the sink.
    calling: std::sync::atomic::AtomicBool,
}

impl Queue {
    /// Waits until the log thread is not calling a sink it loaded before now.
    fn wait_idle(&self) {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        while self.calling.load(Ordering::SeqCst) {
            done = match self.progress.wait_timeout(done, std::time::Duration::from_millis(50)) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

/// Waits until the records made before this call have been handed to the sink,
/// at most `limit`; for a process about to exit. Returns whether they all were.
/// Thread: any but the sink's own (there it returns false at once).
pub fn flush(limit: std::time::Duration) -> bool {
    if IN_SINK.with(|c| c.get()) {
        return false;
    }
    let q = QUEUES.get();
    let want = q.queued.load(Ordering::SeqCst);
    let deadline = std::time::Instant::now() + limit;
    let mut done = q.done.lock().unwrap_or_else(|p| p.into_inner());
    while *done < want {
        let now = std::time::Instant::now();
        if now >= deadline {
            return false;
        }
        done = match q.progress.wait_timeout(done, deadline - now) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        };
    }
    true
}

/// Per process: a forked child starts its own thread on its first record.
static QUEUES: PerProcess<Queue> = PerProcess::new(|| {
    let (tx, rx) = mpsc::sync_channel::<Record>(QUEUE);
    let started = std::thread::Builder::new().name("ballot-log".into()).spawn(move || {
        IN_SINK.with(|c| c.set(true));
        for record in rx {
            let q = QUEUES.get();
            q.calling.store(true, Ordering::SeqCst);
            let sink = SINK.load(Ordering::SeqCst);
            // SAFETY: a non-null pointer is a live box: `set_sink` frees a box only
            // after swapping it out and waiting until `calling` is false.
            if let Some(sink) = unsafe { sink.as_ref() } {
                // A sink that panics loses its record, not the thread.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink(&record)));
            }
            let mut done = q.done.lock().unwrap_or_else(|p| p.into_inner());
            q.calling.store(false, Ordering::SeqCst);
            *done += 1;
            drop(done);
            q.progress.notify_all();
        }
    });
    Queue {
        tx: started.ok().map(|_| tx),
        dropped: AtomicU64::new(0),
        queued: AtomicU64::new(0),
        done: std::sync::Mutex::new(0),
        progress: std::sync::Condvar::new(),
        calling: std::sync::atomic::AtomicBool::new(false),
    }
});

fn enqueue(record: Record) {
    let q = QUEUES.get();
    let Some(tx) = &q.tx else { return };
    let dropped = q.dropped.swap(0, Ordering::SeqCst);
    if dropped > 0 {
        let note = Record {
            level: Level::Warn,
            message: format!("{dropped} log records were dropped: the log sink did not keep up"),
            backend: None,
            election: None,
        };
        q.queued.fetch_add(1, Ordering::SeqCst);
        if tx.try_send(note).is_err() {
            q.queued.fetch_sub(1, Ordering::SeqCst);
            q.dropped.fetch_add(dropped, Ordering::SeqCst);
        }
    }
    q.queued.fetch_add(1, Ordering::SeqCst);
    if tx.try_send(record).is_err() {
        q.queued.fetch_sub(1, Ordering::SeqCst);
        q.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_keep_their_codes() {
        for (i, l) in Level::ALL.iter().enumerate() {
            assert_eq!(*l as u32, i as u32 + 1);
            assert_eq!(Level::from_code(i as u32 + 1), Some(*l));
            assert_eq!(Level::parse(&l.as_str().to_uppercase()).unwrap(), Some(*l));
        }
        assert_eq!(Level::from_code(0), None);
        assert_eq!(Level::from_code(6), None);
        assert_eq!(Level::parse("off").unwrap(), None);
        assert_eq!(Level::parse("warning").unwrap(), Some(Level::Warn));
        let e = Level::parse("loud").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("\"loud\""), "{e}");
    }

    #[test]
    fn a_line_names_backend_and_election() {
        let r = Record {
            level: Level::Warn,
            message: "lost reason=session_lost".into(),
            backend: Some("etcd".into()),
            election: Some("svc".into()),
        };
        assert_eq!(r.line(), "ballot warn backend=etcd election=svc: lost reason=session_lost");
        let bare = Record { level: Level::Info, message: "m".into(), backend: None, election: None };
        assert_eq!(bare.line(), "ballot info m");
    }
}
