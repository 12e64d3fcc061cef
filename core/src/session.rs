//! Session health and the local deadline of the safety rule.
//!
//! A backend feeds this tracker with what it observes (a keepalive or heartbeat was
//! acknowledged, the connection dropped, the server said the session expired, a new
//! session replaced it). The tracker turns that into [`Health`] and enforces:
//!
//! ```text
//! deadline = time the last acknowledged keepalive was *sent* + TTL - safety margin
//! ```
//!
//! Measuring from the send time (not the receive time) means a slow reply can only
//! make the deadline earlier, and a server that resets TTLs (for example an etcd
//! leader change) cannot extend our own idea of validity. The health becomes
//! `Suspended` when an acknowledgement is overdue (half the TTL since the last
//! acknowledged send) or the connection drops, and `Lost` at the deadline.
//!
//! # Which clock
//!
//! Every time here is a [`Stamp`] of `CLOCK_BOOTTIME`, which keeps counting while the
//! host is suspended. `CLOCK_MONOTONIC` (tokio's and std's `Instant`) stops during a
//! suspend, so a deadline measured with it would still lie ahead after a resume and
//! a leader would read `Leader` until its next keepalive failed, while the server
//! had expired the session long before. A tokio timer still drives the wake-ups,
//! but it only prompts a re-evaluation against the boot-time clock; it sleeps at most
//! [`WAKE_AT_LEAST_EVERY`], so a resume is noticed within that bound even when no
//! one reads the state. Reading the state ([`SessionTracker::status`]) always
//! re-evaluates, so it is right at once.
//!
//! What no local clock can see is a process or a VM that is *paused* (SIGSTOP, a
//! hypervisor pause, a stop-the-world stall): its clocks may keep counting, but it
//! does not run, so it cannot check anything between its last check and the moment it
//! acts. A leader that checked its state, was paused past the deadline and then
//! wrote to a resource did so without knowing. That is what the fencing token
//! (`term`) is for: the resource refuses a write carrying an older term than one it
//! has seen.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::metrics::{ClientSeries, SessionProbe};

/// The longest the tracker's timer sleeps between two evaluations while a deadline
/// is pending. tokio's timers count `CLOCK_MONOTONIC`, which stops while the host is
/// suspended; this bounds how long after a resume a passed deadline goes unreported
/// when nobody reads the state.
pub(crate) const WAKE_AT_LEAST_EVERY: Duration = Duration::from_secs(1);

/// A reading of `CLOCK_BOOTTIME` (time since boot, suspend included): when a session
/// request or keepalive was sent. Take it with [`Stamp::now`] just before sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(Duration);

impl Stamp {
    /// The boot-time clock now.
    pub(crate) fn now() -> Stamp {
        Stamp(boottime())
    }

    fn saturating_sub(self, other: Stamp) -> Duration {
        self.0.saturating_sub(other.0)
    }

    /// `self + d`, or None when the clock cannot hold it.
    fn checked_add(self, d: Duration) -> Option<Stamp> {
        self.0.checked_add(d).map(Stamp)
    }
}

impl std::ops::Add<Duration> for Stamp {
    type Output = Stamp;
    fn add(self, d: Duration) -> Stamp {
        Stamp(self.0.saturating_add(d))
    }
}

/// `CLOCK_BOOTTIME` on Linux and Android; elsewhere `CLOCK_MONOTONIC`, which on those
/// systems may stop during a suspend (documented in the README's safety section).
fn boottime() -> Duration {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const CLOCK: libc::clockid_t = libc::CLOCK_BOOTTIME;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    const CLOCK: libc::clockid_t = libc::CLOCK_MONOTONIC;
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes it. It
    // cannot fail for a clock id the system defines.
    let rc = unsafe { libc::clock_gettime(CLOCK, &mut ts) };
    if rc != 0 {
        // Unreachable on the systems above. The largest reading makes every deadline
        // look passed (safe), never valid.
        return Duration::MAX;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Where the tracker reads the time. Tests inject a clock that can jump as a
/// suspend does.
#[derive(Debug, Clone)]
pub(crate) enum Clock {
    /// `CLOCK_BOOTTIME`.
    Boot,
    /// Tests only: tokio's (pausable) time plus a settable suspended time.
    #[cfg(test)]
    Test(Arc<TestClock>),
}

impl Clock {
    fn now(&self) -> Stamp {
        match self {
            Clock::Boot => Stamp::now(),
            #[cfg(test)]
            Clock::Test(c) => c.now(),
        }
    }
}

/// A clock for tests: it advances with tokio's time (so `start_paused` and
/// `advance` drive it) and [`suspend`](TestClock::suspend) moves it forward alone,
/// as `CLOCK_BOOTTIME` moves during a host suspend while `CLOCK_MONOTONIC` stands.
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct TestClock {
    base: tokio::time::Instant,
    suspended: Mutex<Duration>,
}

#[cfg(test)]
impl TestClock {
    pub(crate) fn new() -> Arc<TestClock> {
        Arc::new(TestClock { base: tokio::time::Instant::now(), suspended: Mutex::new(Duration::ZERO) })
    }

    pub(crate) fn now(&self) -> Stamp {
        // Starts one hour after "boot", so that subtracting never saturates.
        let suspended = *self.suspended.lock().unwrap_or_else(|p| p.into_inner());
        Stamp(Duration::from_secs(3600) + self.base.elapsed() + suspended)
    }

    /// The host sleeps for `d`: boot time moves, tokio's time does not.
    pub(crate) fn suspend(&self, d: Duration) {
        *self.suspended.lock().unwrap_or_else(|p| p.into_inner()) += d;
    }
}

/// What the engine may conclude about the session right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    /// Acknowledged recently; leadership held under this session is valid.
    Healthy,
    /// Acknowledgements are overdue or the connection dropped; leadership may be
    /// lost soon and must not be acted upon.
    Suspended,
    /// The session is gone, or its local deadline passed.
    Lost,
}

/// The session generation and its health. A backend that replaces a lost session
/// bumps the generation; entries made under an older generation are dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionStatus {
    pub(crate) generation: u64,
    pub(crate) health: Health,
}

/// Tracks one backend session. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub(crate) struct SessionTracker {
    tx: watch::Sender<SessionStatus>,
    inner: Mutex<Inner>,
    ttl: Option<Duration>,
    margin: Duration,
    wake: Arc<Notify>,
    clock: Clock,
    /// The client's span, once the client is made: the parent of the session's records.
    span: std::sync::OnceLock<tracing::Span>,
    /// The client's metrics, once the client is made: keepalive round trips go there.
    metrics: std::sync::OnceLock<Arc<ClientSeries>>,
}

#[derive(Debug)]
struct Inner {
    generation: u64,
    last_ack_sent: Option<Stamp>,
    disconnected: bool,
    lost: bool,
}

impl SessionTracker {
    /// A tracker for a session with `ttl` (None: the session cannot expire while the
    /// process lives, as on the local backend). `margin` is subtracted from the TTL.
    pub(crate) fn new(ttl: Option<Duration>, margin: Duration) -> std::sync::Arc<Self> {
        Self::with_clock(ttl, margin, Clock::Boot)
    }

    /// [`new`](Self::new) with the clock to read.
    pub(crate) fn with_clock(ttl: Option<Duration>, margin: Duration, clock: Clock) -> std::sync::Arc<Self> {
        let (tx, _) = watch::channel(SessionStatus { generation: 0, health: Health::Lost });
        let t = std::sync::Arc::new(SessionTracker {
            tx,
            inner: Mutex::new(Inner { generation: 0, last_ack_sent: None, disconnected: false, lost: true }),
            ttl,
            margin,
            wake: Arc::new(Notify::new()),
            clock,
            span: std::sync::OnceLock::new(),
            metrics: std::sync::OnceLock::new(),
        });
        if ttl.is_some() {
            let weak = std::sync::Arc::downgrade(&t);
            let wake = t.wake.clone();
            let timer = async move {
                loop {
                    let notified = wake.notified();
                    let Some(t) = weak.upgrade() else { return };
                    let next = t.evaluate();
                    drop(t);
                    match next {
                        Some(after) => {
                            tokio::select! {
                                _ = tokio::time::sleep(after.min(WAKE_AT_LEAST_EVERY)) => {}
                                _ = notified => {}
                            }
                        }
                        None => notified.await,
                    }
                }
            };
            // Backends build trackers from library-runtime tasks; tests build them
            // on their own (possibly time-paused) runtime.
            match tokio::runtime::Handle::try_current() {
                Ok(h) => drop(h.spawn(timer)),
                Err(_) => crate::runtime::spawn_detached(timer),
            }
        }
        t
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means a panic elsewhere; the data stays consistent
        // because every update is a single assignment.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the session's changes under `span` (the client's) from now on.
    pub(crate) fn set_span(&self, span: tracing::Span) {
        let _ = self.span.set(span);
    }

    /// Measures keepalive round trips into `series` from now on, and lets its gauges
    /// read this session's health and deadline when a snapshot is taken.
    pub(crate) fn set_metrics(self: &Arc<Self>, series: Arc<ClientSeries>) {
        let weak = Arc::downgrade(self);
        series.set_probe(weak);
        let _ = self.metrics.set(series);
    }

    fn span(&self) -> &tracing::Span {
        static NONE: std::sync::OnceLock<tracing::Span> = std::sync::OnceLock::new();
        self.span.get().unwrap_or_else(|| NONE.get_or_init(tracing::Span::none))
    }

    /// Subscribes to status changes.
    pub(crate) fn subscribe(&self) -> watch::Receiver<SessionStatus> {
        self.tx.subscribe()
    }

    /// The status now, recomputed against the boot-time clock (so a process resumed
    /// after a SIGSTOP, or a host resumed from suspend, sees `Lost` before any timer
    /// has run).
    pub(crate) fn status(&self) -> SessionStatus {
        self.evaluate();
        *self.tx.borrow()
    }

    /// A new session was established; `sent_at` is when its creation request was sent.
    pub(crate) fn new_session(&self, sent_at: Stamp) -> u64 {
        let g = {
            let mut i = self.lock();
            i.generation += 1;
            i.last_ack_sent = Some(sent_at);
            i.disconnected = false;
            i.lost = false;
            i.generation
        };
        self.evaluate();
        self.wake.notify_one();
        g
    }

    // Fed by the network backends; the local backend's session never changes.
    #[cfg_attr(not(test), allow(dead_code))]
    /// A keepalive or heartbeat for `generation`, sent at `sent_at`, was acknowledged.
    pub(crate) fn acked(&self, generation: u64, sent_at: Stamp) {
        // Every backend's keepalive answer comes here, so its round trip is measured
        // once, for all of them. An answer for an old session is still a round trip.
        if let Some(m) = self.metrics.get() {
            m.keepalive_answered(self.clock.now().saturating_sub(sent_at));
        }
        {
            let mut i = self.lock();
            if i.generation != generation || i.lost {
                return;
            }
            if i.last_ack_sent.is_none_or(|prev| sent_at > prev) {
                i.last_ack_sent = Some(sent_at);
            }
            i.disconnected = false;
        }
        self.evaluate();
        self.wake.notify_one();
    }

    // Fed by the network backends; the local backend's session never changes.
    #[cfg_attr(not(test), allow(dead_code))]
    /// The connection under `generation` dropped (the session may still be alive).
    pub(crate) fn disconnected(&self, generation: u64) {
        {
            let mut i = self.lock();
            if i.generation != generation {
                return;
            }
            i.disconnected = true;
        }
        tracing::debug!(target: "ballot", parent: self.span(), generation, "a keepalive failed: no answer, or the connection dropped");
        self.evaluate();
    }

    // Fed by the network backends; the local backend's session never changes.
    #[cfg_attr(not(test), allow(dead_code))]
    /// The server said the session under `generation` is gone.
    pub(crate) fn expired(&self, generation: u64) {
        {
            let mut i = self.lock();
            if i.generation != generation {
                return;
            }
            i.lost = true;
        }
        tracing::warn!(target: "ballot", parent: self.span(), generation, "the server says the session has expired");
        self.evaluate();
    }

    /// Recomputes health, publishes a change, and returns how long from now it must
    /// be recomputed at the latest (None: only on an external event).
    fn evaluate(&self) -> Option<Duration> {
        let now = self.clock.now();
        let (status, next, disconnected) = {
            let mut i = self.lock();
            let mut next = None;
            let health = if i.lost {
                Health::Lost
            } else {
                match (self.ttl, i.last_ack_sent) {
                    (Some(ttl), Some(sent)) => {
                        // The TTL is user input (bounded by `Options`' ranges); a
                        // deadline the clock cannot represent is treated as passed,
                        // never as "no deadline".
                        let deadline = sent.checked_add(ttl.saturating_sub(self.margin)).unwrap_or(now);
                        let overdue = sent.checked_add(ttl / 2).unwrap_or(now);
                        if now >= deadline {
                            i.lost = true;
                            Health::Lost
                        } else if now >= overdue || i.disconnected {
                            next = Some(deadline.saturating_sub(now));
                            Health::Suspended
                        } else {
                            next = Some(overdue.saturating_sub(now));
                            Health::Healthy
                        }
                    }
                    _ if i.disconnected => Health::Suspended,
                    _ => Health::Healthy,
                }
            };
            (SessionStatus { generation: i.generation, health }, next, i.disconnected)
        };
        let mut before = None;
        self.tx.send_if_modified(|cur| {
            if *cur != status {
                before = Some(*cur);
                *cur = status;
                true
            } else {
                false
            }
        });
        if let Some(before) = before {
            self.record(before, status, disconnected);
        }
        next
    }
}

impl SessionTracker {
    /// Records a change of the published status.
    fn record(&self, before: SessionStatus, now: SessionStatus, disconnected: bool) {
        let span = self.span();
        let generation = now.generation;
        if now.generation != before.generation {
            tracing::info!(target: "ballot", parent: span, generation, "new session");
            return;
        }
        match now.health {
            Health::Lost => {
                tracing::warn!(target: "ballot", parent: span, generation, "session lost: it was not confirmed before its deadline, or the server expired it")
            }
            Health::Suspended if disconnected => {
                tracing::warn!(target: "ballot", parent: span, generation, "session suspended: the server cannot be reached")
            }
            Health::Suspended => {
                tracing::warn!(target: "ballot", parent: span, generation, "session suspended: no keepalive was answered for half the TTL")
            }
            Health::Healthy => tracing::info!(target: "ballot", parent: span, generation, "session reconnected"),
        }
    }
}

impl SessionProbe for SessionTracker {
    fn healthy(&self) -> bool {
        self.status().health == Health::Healthy
    }

    fn deadline_left(&self) -> Option<Duration> {
        let ttl = self.ttl?;
        let now = self.clock.now();
        let i = self.lock();
        if i.lost {
            return Some(Duration::ZERO);
        }
        let deadline = i.last_ack_sent?.checked_add(ttl.saturating_sub(self.margin)).unwrap_or(now);
        Some(deadline.saturating_sub(now))
    }
}

impl Drop for SessionTracker {
    fn drop(&mut self) {
        // Lets the timer task notice that the tracker is gone.
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(ttl: Option<Duration>, margin: Duration) -> (Arc<SessionTracker>, Arc<TestClock>) {
        let c = TestClock::new();
        (SessionTracker::with_clock(ttl, margin, Clock::Test(c.clone())), c)
    }

    #[tokio::test(start_paused = true)]
    async fn suspends_when_overdue_and_loses_at_deadline() {
        let (t, c) = tracker(Some(Duration::from_secs(10)), Duration::from_secs(2));
        let start = c.now();
        let g = t.new_session(start);
        assert_eq!(t.status(), SessionStatus { generation: g, health: Health::Healthy });
        tokio::time::advance(Duration::from_millis(4_900)).await;
        assert_eq!(t.status().health, Health::Healthy);
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(t.status().health, Health::Suspended);
        // An ack of a keepalive sent before the deadline revives it.
        t.acked(g, start + Duration::from_secs(5));
        assert_eq!(t.status().health, Health::Healthy);
        // No more acks: lost at sent + ttl - margin = 5 + 8 = 13 s.
        tokio::time::advance(Duration::from_millis(7_800)).await;
        assert_eq!(t.status().health, Health::Suspended);
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(t.status().health, Health::Lost);
        // Late acks cannot revive a lost session; only a new session can.
        t.acked(g, c.now());
        assert_eq!(t.status().health, Health::Lost);
        let g2 = t.new_session(c.now());
        assert_eq!(t.status(), SessionStatus { generation: g2, health: Health::Healthy });
        assert!(g2 > g);
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_counts_from_send_time_not_ack_time() {
        let (t, c) = tracker(Some(Duration::from_secs(10)), Duration::from_secs(1));
        let g = t.new_session(c.now());
        let sent = c.now();
        tokio::time::advance(Duration::from_secs(4)).await;
        t.acked(g, sent); // a slow ack of an old send does not extend anything
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(t.status().health, Health::Lost);
    }

    #[tokio::test(start_paused = true)]
    async fn timer_publishes_without_polling() {
        let (t, c) = tracker(Some(Duration::from_secs(4)), Duration::from_secs(1));
        let mut rx = t.subscribe();
        t.new_session(c.now());
        rx.borrow_and_update();
        rx.changed().await.unwrap();
        assert_eq!(rx.borrow().health, Health::Suspended);
        rx.changed().await.unwrap();
        assert_eq!(rx.borrow().health, Health::Lost);
    }

    /// A host suspend moves the boot-time clock and not tokio's: a reading right
    /// after the resume sees the session lost, and the timer reports it within
    /// `WAKE_AT_LEAST_EVERY` of tokio's time, with no keepalive and no reader.
    #[tokio::test(start_paused = true)]
    async fn a_host_suspend_past_the_deadline_is_lost_at_resume() {
        let (t, c) = tracker(Some(Duration::from_secs(10)), Duration::from_secs(2));
        let g = t.new_session(c.now());
        tokio::time::advance(Duration::from_secs(3)).await;
        t.acked(g, c.now());
        assert_eq!(t.status().health, Health::Healthy);

        // Suspended for a minute; the server expired the session meanwhile.
        c.suspend(Duration::from_secs(60));
        assert_eq!(t.status().health, Health::Lost, "read at once after the resume");

        // The same, heard by a subscriber that never reads the status itself.
        let (t, c) = tracker(Some(Duration::from_secs(10)), Duration::from_secs(2));
        let g = t.new_session(c.now());
        let mut rx = t.subscribe();
        assert_eq!(*rx.borrow_and_update(), SessionStatus { generation: g, health: Health::Healthy });
        // Lets the timer task run and go to sleep before the host does.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let resumed = tokio::time::Instant::now();
        c.suspend(Duration::from_secs(60));
        let st = *rx.wait_for(|s| s.health != Health::Healthy).await.unwrap();
        assert_eq!(st, SessionStatus { generation: g, health: Health::Lost });
        assert!(
            resumed.elapsed() <= WAKE_AT_LEAST_EVERY,
            "reported {:?} after the resume (tokio time), bound {WAKE_AT_LEAST_EVERY:?}",
            resumed.elapsed()
        );
    }

    /// A suspend shorter than the deadline leaves the session valid.
    #[tokio::test(start_paused = true)]
    async fn a_short_suspend_keeps_the_session() {
        let (t, c) = tracker(Some(Duration::from_secs(10)), Duration::from_secs(2));
        let g = t.new_session(c.now());
        c.suspend(Duration::from_secs(2));
        assert_eq!(t.status(), SessionStatus { generation: g, health: Health::Healthy });
        c.suspend(Duration::from_secs(4)); // 6 s since the send: overdue
        assert_eq!(t.status().health, Health::Suspended);
        t.acked(g, c.now());
        assert_eq!(t.status().health, Health::Healthy);
    }

    /// The production clock is CLOCK_BOOTTIME: never behind CLOCK_MONOTONIC (it is
    /// ahead by the time the host spent suspended), and it moves forward.
    #[test]
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn the_clock_is_boottime() {
        let a = Stamp::now();
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: a valid, writable timespec.
        assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) }, 0);
        let mono = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
        let b = Stamp::now();
        assert!(b >= a);
        assert!(b.0 >= mono, "boottime {:?} behind monotonic {mono:?}", b.0);
    }

    #[test]
    fn disconnect_and_expiry_and_stale_generations() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let t = SessionTracker::new(None, Duration::ZERO);
            let g = t.new_session(Stamp::now());
            t.disconnected(g + 7); // another generation: ignored
            assert_eq!(t.status().health, Health::Healthy);
            t.disconnected(g);
            assert_eq!(t.status().health, Health::Suspended);
            t.acked(g, Stamp::now());
            assert_eq!(t.status().health, Health::Healthy);
            t.expired(g);
            assert_eq!(t.status().health, Health::Lost);
        });
    }
}
