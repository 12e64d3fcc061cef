//! Prometheus metrics of every client and election handle of this process, read as
//! a typed [`snapshot`] or as Prometheus text ([`render_prometheus`], exposition
//! format 0.0.4, built from the snapshot).
//!
//! One process-wide registry holds a series set per client (label `client`, a small
//! per-process number, and `backend`, the URL scheme) and per election handle
//! (`election`, the election name, as well). Labels never carry a value, a key or a
//! URL, so their number is bounded by the handles a process makes.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `ballot_leader` | gauge | backend, client, election | 1 while the handle leads (its state is `leader`) |
//! | `ballot_campaigning` | gauge | backend, client, election | 1 while the handle waits to win |
//! | `ballot_elections_won_total` | counter | backend, client, election | leaderships won |
//! | `ballot_leadership_lost_total` | counter | backend, client, election, reason | leaderships lost, by `LostReason` |
//! | `ballot_handoff_wait_seconds` | histogram | backend, client, election | from a candidate's join to its win |
//! | `ballot_session_healthy` | gauge | backend, client | 1 while the client's session is healthy |
//! | `ballot_session_deadline_seconds` | gauge | backend, client | time left before the session's local deadline |
//! | `ballot_keepalive_rtt_seconds` | histogram | backend, client | from a keepalive's send to its answer |
//!
//! Where the values come from: the gauges are read when the snapshot is taken (the
//! handle's state as [`Election::state`](crate::Election::state) reads it, the
//! session's health and deadline against the boot-time clock), so they cost nothing
//! between scrapes. Counters and histograms are atomics, updated by the engine's
//! state transitions and by the session tracker when a keepalive is answered; the
//! hot path never allocates or locks.
//!
//! Lifetime: the series of a handle disappear when it is closed (or dropped), and a
//! client's when it is closed, counters included. A later handle gets a new
//! `client` number, so a series never continues another's count: Prometheus sees a
//! series that ended, and `rate()`/`increase()` over the others stay right. Two
//! handles of one client on the same election share one label set; their samples
//! are added together.
//!
//! A forked child starts with an empty registry (handles made in the parent are
//! closed in the child).
//!
//! # Examples
//!
//! ```
//! let text = ballot::metrics::render_prometheus();
//! assert!(text.contains("# TYPE ballot_leader gauge"));
//! let snap = ballot::metrics::snapshot();
//! assert!(snap.families.iter().any(|f| f.name == "ballot_keepalive_rtt_seconds"));
//! ```

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::model::{LostReason, State};
use crate::sync::{lock, PerProcess};

/// Whether a family counts, measures or distributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetricType {
    /// Only goes up (while its series lives).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations counted into cumulative buckets, with their sum and count.
    Histogram,
}

impl MetricType {
    /// The name Prometheus' `# TYPE` line uses: `counter`, `gauge`, `histogram`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        }
    }
}

/// One bucket of a histogram: how many observations were at most `le` (cumulative).
/// The last bucket's `le` is `+Inf` and its count is the histogram's count.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Bucket {
    /// The upper bound, inclusive, in the family's unit.
    pub le: f64,
    /// Observations at most `le`.
    pub count: u64,
}

/// A histogram's value.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HistogramValue {
    /// Cumulative buckets in increasing `le`, the last one `+Inf`.
    pub buckets: Vec<Bucket>,
    /// The sum of the observations.
    pub sum: f64,
    /// The number of observations.
    pub count: u64,
}

/// A sample's value: a number for counters and gauges, buckets for histograms.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SampleValue {
    /// A counter's or a gauge's value.
    Number(f64),
    /// A histogram's buckets, sum and count.
    Histogram(HistogramValue),
}

/// One series of a family: its labels (name, value) and its value.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Sample {
    /// Label names and values, in a fixed order (`backend`, `client`, `election`, `reason`).
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: SampleValue,
}

/// A metric family: its name, help text, type and series.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Family {
    /// The metric name as exposed (a counter's ends in `_total`).
    pub name: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricType,
    /// The series now (possibly none).
    pub samples: Vec<Sample>,
}

/// Every family of ballot at one moment, always in the same order and always all of
/// them (a family with no live handle has no samples).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Snapshot {
    /// The families.
    pub families: Vec<Family>,
}

/// What a health endpoint answers for one election handle: see
/// [`Election::health_check`](crate::Election::health_check).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthCheck {
    /// True while the client's session is healthy and the handle is not suspended,
    /// ended or closed.
    pub ok: bool,
    /// One line saying why, with no value, key or URL in it.
    pub reason: String,
}

impl HealthCheck {
    pub(crate) fn new(ok: bool, reason: impl Into<String>) -> HealthCheck {
        HealthCheck { ok, reason: reason.into() }
    }
}

/// Keepalive round trips: loopback answers take well under a millisecond, a TTL is
/// seconds.
const RTT_BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Join to win: an immediate win takes milliseconds, a queued candidate waits for
/// the leaders before it.
const HANDOFF_BUCKETS: [f64; 15] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0];

/// Every reason a leadership is lost, in the order of the `reason` label's samples.
const LOST_REASONS: [LostReason; 3] = [LostReason::SessionLost, LostReason::Deleted, LostReason::NotOwner];

/// A histogram of durations, lock-free: one counter per bucket (not cumulative;
/// the snapshot adds them up) and the sum in nanoseconds.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    /// `bounds.len() + 1` counters, the last for `+Inf`.
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self.bounds.iter().position(|b| secs <= *b).unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn value(&self) -> HistogramValue {
        let mut acc = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            acc += c.load(Ordering::Relaxed);
            let le = self.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push(Bucket { le, count: acc });
        }
        HistogramValue { buckets, sum: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9, count: acc }
    }
}

/// What the snapshot reads of a session when it is taken (the session tracker).
pub(crate) trait SessionProbe: Send + Sync {
    /// Whether the session is healthy now.
    fn healthy(&self) -> bool;
    /// Time left before the local deadline (zero once passed); None when the
    /// session has no deadline (it cannot expire while the process lives).
    fn deadline_left(&self) -> Option<Duration>;
}

/// What the snapshot reads of an election handle when it is taken.
pub(crate) trait HandleProbe: Send + Sync {
    /// The state as `Election::state` reads it.
    fn state(&self) -> State;
}

/// The series of one client. Owned by its connection and its session tracker; the
/// registry only holds it weakly.
#[derive(Debug)]
pub(crate) struct ClientSeries {
    client: u64,
    backend: String,
    rtt: Histogram,
    closed: AtomicBool,
    probe: OnceLock<Weak<dyn SessionProbe>>,
}

impl ClientSeries {
    /// Registers the series of a new client (`client`: its per-process number,
    /// `backend`: its URL scheme).
    pub(crate) fn register(client: u64, backend: &str) -> Arc<ClientSeries> {
        let s = Arc::new(ClientSeries {
            client,
            backend: backend.to_string(),
            rtt: Histogram::new(&RTT_BUCKETS),
            closed: AtomicBool::new(false),
            probe: OnceLock::new(),
        });
        let mut r = lock(REGISTRY.get());
        r.clients.retain(|w| w.strong_count() > 0);
        r.clients.push(Arc::downgrade(&s));
        s
    }

    /// The session the gauges read.
    pub(crate) fn set_probe(&self, probe: Weak<dyn SessionProbe>) {
        let _ = self.probe.set(probe);
    }

    /// A keepalive sent `rtt` ago was answered.
    pub(crate) fn keepalive_answered(&self, rtt: Duration) {
        self.rtt.observe(rtt);
    }

    /// The client was closed: its series go.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    fn labels(&self) -> Vec<(&'static str, String)> {
        vec![("backend", self.backend.clone()), ("client", self.client.to_string())]
    }
}

/// The series of one election handle. Owned by its participant; the registry only
/// holds it weakly.
#[derive(Debug)]
pub(crate) struct HandleSeries {
    labels: Vec<(&'static str, String)>,
    won: AtomicU64,
    lost: [AtomicU64; LOST_REASONS.len()],
    handoff: Histogram,
    /// When the current campaign joined: nanoseconds after [`base`] plus one; 0
    /// while not campaigning.
    joined_at: AtomicU64,
    probe: OnceLock<Weak<dyn HandleProbe>>,
}

/// The origin of `joined_at`.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn since_base() -> u64 {
    u64::try_from(base().elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
}

impl HandleSeries {
    /// Registers the series of a new handle of `client` on `election`.
    pub(crate) fn register(client: &ClientSeries, election: &str) -> Arc<HandleSeries> {
        let mut labels = client.labels();
        labels.push(("election", election.to_string()));
        let s = Arc::new(HandleSeries {
            labels,
            won: AtomicU64::new(0),
            lost: Default::default(),
            handoff: Histogram::new(&HANDOFF_BUCKETS),
            joined_at: AtomicU64::new(0),
            probe: OnceLock::new(),
        });
        let mut r = lock(REGISTRY.get());
        r.handles.retain(|w| w.strong_count() > 0);
        r.handles.push(Arc::downgrade(&s));
        s
    }

    /// The handle the gauges read.
    pub(crate) fn set_probe(&self, probe: Weak<dyn HandleProbe>) {
        let _ = self.probe.set(probe);
    }

    /// The handle's state changed from `before` to `after` (a state of the machine).
    pub(crate) fn transition(&self, before: State, after: State) {
        if after == State::Campaigning && before != State::Campaigning {
            self.joined_at.store(since_base(), Ordering::Relaxed);
        } else if before == State::Campaigning {
            let joined = self.joined_at.swap(0, Ordering::Relaxed);
            if after == State::Leader && joined != 0 {
                self.handoff.observe(Duration::from_nanos(since_base().saturating_sub(joined)));
            }
        }
    }

    /// The handle won a leadership.
    pub(crate) fn won(&self) {
        self.won.fetch_add(1, Ordering::Relaxed);
    }

    /// The handle lost its leadership for `reason`.
    pub(crate) fn lost(&self, reason: LostReason) {
        if let Some(i) = LOST_REASONS.iter().position(|r| *r == reason) {
            self.lost[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Default)]
struct Registry {
    clients: Vec<Weak<ClientSeries>>,
    handles: Vec<Weak<HandleSeries>>,
}

static REGISTRY: PerProcess<Mutex<Registry>> = PerProcess::new(|| Mutex::new(Registry::default()));

/// Adds `value` to the sample of `family` with `labels`, or appends a new one.
fn add(family: &mut Family, labels: Vec<(&'static str, String)>, value: SampleValue) {
    if let Some(s) = family.samples.iter_mut().find(|s| s.labels == labels) {
        match (&mut s.value, value) {
            (SampleValue::Number(a), SampleValue::Number(b)) => *a += b,
            (SampleValue::Histogram(a), SampleValue::Histogram(b)) => {
                for (x, y) in a.buckets.iter_mut().zip(b.buckets) {
                    x.count += y.count;
                }
                a.sum += b.sum;
                a.count += b.count;
            }
            _ => {}
        }
    } else {
        family.samples.push(Sample { labels, value });
    }
}

fn family(name: &'static str, kind: MetricType, help: &'static str) -> Family {
    Family { name, help, kind, samples: Vec::new() }
}

/// Every family of ballot now, read from the live clients and handles of this
/// process. Takes the registry's lock briefly and reads each handle's state.
///
/// Thread-safe; callable from any thread, inside or outside an async runtime.
pub fn snapshot() -> Snapshot {
    let (clients, handles): (Vec<_>, Vec<_>) = {
        let mut r = lock(REGISTRY.get());
        r.clients.retain(|w| w.strong_count() > 0);
        r.handles.retain(|w| w.strong_count() > 0);
        (r.clients.iter().filter_map(Weak::upgrade).collect(), r.handles.iter().filter_map(Weak::upgrade).collect())
    };
    let mut leader = family("ballot_leader", MetricType::Gauge, "1 while this election handle leads, else 0.");
    let mut campaigning =
        family("ballot_campaigning", MetricType::Gauge, "1 while this election handle waits to win, else 0.");
    let mut won = family("ballot_elections_won_total", MetricType::Counter, "Leaderships won by this election handle.");
    let mut lost = family(
        "ballot_leadership_lost_total",
        MetricType::Counter,
        "Leaderships this election handle lost, by reason.",
    );
    let mut handoff = family(
        "ballot_handoff_wait_seconds",
        MetricType::Histogram,
        "Time from a candidate's join to its win, in seconds.",
    );
    let mut healthy =
        family("ballot_session_healthy", MetricType::Gauge, "1 while the client's session is healthy, else 0.");
    let mut deadline = family(
        "ballot_session_deadline_seconds",
        MetricType::Gauge,
        "Time left before the session's local deadline (last answered keepalive's send + TTL - safety margin), in seconds.",
    );
    let mut rtt = family(
        "ballot_keepalive_rtt_seconds",
        MetricType::Histogram,
        "Time from a keepalive's send to its answer, in seconds.",
    );
    for h in &handles {
        let Some(state) = h.probe.get().and_then(Weak::upgrade).map(|p| p.state()) else { continue };
        if state == State::Closed {
            continue;
        }
        let bool_value = |b: bool| SampleValue::Number(if b { 1.0 } else { 0.0 });
        add(&mut leader, h.labels.clone(), bool_value(state == State::Leader));
        add(&mut campaigning, h.labels.clone(), bool_value(state == State::Campaigning));
        add(&mut won, h.labels.clone(), SampleValue::Number(h.won.load(Ordering::Relaxed) as f64));
        for (reason, n) in LOST_REASONS.iter().zip(&h.lost) {
            let mut labels = h.labels.clone();
            labels.push(("reason", reason.as_str().to_string()));
            add(&mut lost, labels, SampleValue::Number(n.load(Ordering::Relaxed) as f64));
        }
        add(&mut handoff, h.labels.clone(), SampleValue::Histogram(h.handoff.value()));
    }
    for c in &clients {
        if c.closed.load(Ordering::Relaxed) {
            continue;
        }
        let Some(probe) = c.probe.get().and_then(Weak::upgrade) else { continue };
        add(&mut healthy, c.labels(), SampleValue::Number(if probe.healthy() { 1.0 } else { 0.0 }));
        if let Some(left) = probe.deadline_left() {
            add(&mut deadline, c.labels(), SampleValue::Number(left.as_secs_f64()));
        }
        add(&mut rtt, c.labels(), SampleValue::Histogram(c.rtt.value()));
    }
    Snapshot { families: vec![leader, campaigning, won, lost, handoff, healthy, deadline, rtt] }
}

/// [`snapshot`] in the Prometheus text exposition format, version 0.0.4 (serve it
/// with `Content-Type: text/plain; version=0.0.4`).
pub fn render_prometheus() -> String {
    render(&snapshot())
}

/// `snapshot` in the Prometheus text exposition format, version 0.0.4.
pub fn render(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    for f in &snapshot.families {
        let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(f.help));
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.as_str());
        for s in &f.samples {
            match &s.value {
                SampleValue::Number(v) => line(&mut out, f.name, "", &s.labels, None, *v),
                SampleValue::Histogram(h) => {
                    for b in &h.buckets {
                        line(&mut out, f.name, "_bucket", &s.labels, Some(b.le), b.count as f64);
                    }
                    line(&mut out, f.name, "_sum", &s.labels, None, h.sum);
                    line(&mut out, f.name, "_count", &s.labels, None, h.count as f64);
                }
            }
        }
    }
    out
}

fn line(out: &mut String, name: &str, suffix: &str, labels: &[(&'static str, String)], le: Option<f64>, v: f64) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        for (k, val) in labels {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "{k}=\"{}\"", escape_label(val));
        }
        if let Some(le) = le {
            if !first {
                out.push(',');
            }
            let _ = write!(out, "le=\"{}\"", number(le));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", number(v));
}

/// A float as Prometheus writes one: `+Inf`, `-Inf`, `NaN`, or Rust's shortest form.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_inf() {
        let h = Histogram::new(&RTT_BUCKETS);
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(2));
        h.observe(Duration::from_secs(60));
        let v = h.value();
        assert_eq!(v.count, 3);
        assert_eq!(v.buckets.len(), RTT_BUCKETS.len() + 1);
        assert_eq!(v.buckets[0], Bucket { le: 0.0005, count: 1 });
        assert_eq!(v.buckets[2], Bucket { le: 0.0025, count: 2 });
        assert_eq!(v.buckets[RTT_BUCKETS.len() - 1].count, 2);
        assert_eq!(v.buckets.last().unwrap().le, f64::INFINITY);
        assert_eq!(v.buckets.last().unwrap().count, 3);
        assert!((v.sum - 60.0023).abs() < 1e-9);
    }

    #[test]
    fn text_escapes_labels_and_writes_histograms() {
        let mut f = family("x_seconds", MetricType::Histogram, "a \\ help\nline");
        let h = Histogram::new(&[1.0]);
        h.observe(Duration::from_millis(500));
        add(&mut f, vec![("election", "a\"b\\c".into())], SampleValue::Histogram(h.value()));
        add(&mut f, vec![("election", "a\"b\\c".into())], SampleValue::Histogram(h.value()));
        let text = render(&Snapshot { families: vec![f] });
        assert_eq!(
            text,
            "# HELP x_seconds a \\\\ help\\nline\n# TYPE x_seconds histogram\n\
             x_seconds_bucket{election=\"a\\\"b\\\\c\",le=\"1\"} 2\n\
             x_seconds_bucket{election=\"a\\\"b\\\\c\",le=\"+Inf\"} 2\n\
             x_seconds_sum{election=\"a\\\"b\\\\c\"} 1\n\
             x_seconds_count{election=\"a\\\"b\\\\c\"} 2\n"
        );
    }
}
