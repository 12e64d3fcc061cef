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

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

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
}

#[derive(Debug)]
struct Inner {
    generation: u64,
    last_ack_sent: Option<Instant>,
    disconnected: bool,
    lost: bool,
}

impl SessionTracker {
    /// A tracker for a session with `ttl` (None: the session cannot expire while the
    /// process lives, as on the local backend). `margin` is subtracted from the TTL.
    pub(crate) fn new(ttl: Option<Duration>, margin: Duration) -> std::sync::Arc<Self> {
        let (tx, _) = watch::channel(SessionStatus { generation: 0, health: Health::Lost });
        let t = std::sync::Arc::new(SessionTracker {
            tx,
            inner: Mutex::new(Inner { generation: 0, last_ack_sent: None, disconnected: false, lost: true }),
            ttl,
            margin,
            wake: Arc::new(Notify::new()),
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
                        Some(at) => {
                            tokio::select! {
                                _ = tokio::time::sleep_until(at) => {}
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

    /// Subscribes to status changes.
    pub(crate) fn subscribe(&self) -> watch::Receiver<SessionStatus> {
        self.tx.subscribe()
    }

    /// The status now, recomputed against the clock (so a process resumed after a
    /// SIGSTOP sees `Lost` before any timer has run).
    pub(crate) fn status(&self) -> SessionStatus {
        self.evaluate();
        *self.tx.borrow()
    }

    /// A new session was established; `sent_at` is when its creation request was sent.
    pub(crate) fn new_session(&self, sent_at: Instant) -> u64 {
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
    pub(crate) fn acked(&self, generation: u64, sent_at: Instant) {
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
        self.evaluate();
    }

    /// Recomputes health, publishes a change, and returns when it must be
    /// recomputed next (None: only on an external event).
    fn evaluate(&self) -> Option<Instant> {
        let now = Instant::now();
        let (status, next) = {
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
                            next = Some(deadline);
                            Health::Suspended
                        } else {
                            next = Some(overdue);
                            Health::Healthy
                        }
                    }
                    _ if i.disconnected => Health::Suspended,
                    _ => Health::Healthy,
                }
            };
            (SessionStatus { generation: i.generation, health }, next)
        };
        self.tx.send_if_modified(|cur| {
            if *cur != status {
                *cur = status;
                true
            } else {
                false
            }
        });
        next
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

    #[tokio::test(start_paused = true)]
    async fn suspends_when_overdue_and_loses_at_deadline() {
        let t = SessionTracker::new(Some(Duration::from_secs(10)), Duration::from_secs(2));
        let start = Instant::now();
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
        t.acked(g, Instant::now());
        assert_eq!(t.status().health, Health::Lost);
        let g2 = t.new_session(Instant::now());
        assert_eq!(t.status(), SessionStatus { generation: g2, health: Health::Healthy });
        assert!(g2 > g);
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_counts_from_send_time_not_ack_time() {
        let t = SessionTracker::new(Some(Duration::from_secs(10)), Duration::from_secs(1));
        let g = t.new_session(Instant::now());
        let sent = Instant::now();
        tokio::time::advance(Duration::from_secs(4)).await;
        t.acked(g, sent); // a slow ack of an old send does not extend anything
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(t.status().health, Health::Lost);
    }

    #[tokio::test(start_paused = true)]
    async fn timer_publishes_without_polling() {
        let t = SessionTracker::new(Some(Duration::from_secs(4)), Duration::from_secs(1));
        let mut rx = t.subscribe();
        t.new_session(Instant::now());
        rx.borrow_and_update();
        rx.changed().await.unwrap();
        assert_eq!(rx.borrow().health, Health::Suspended);
        rx.changed().await.unwrap();
        assert_eq!(rx.borrow().health, Health::Lost);
    }

    #[test]
    fn disconnect_and_expiry_and_stale_generations() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let t = SessionTracker::new(None, Duration::ZERO);
            let g = t.new_session(Instant::now());
            t.disconnected(g + 7); // another generation: ignored
            assert_eq!(t.status().health, Health::Healthy);
            t.disconnected(g);
            assert_eq!(t.status().health, Health::Suspended);
            t.acked(g, Instant::now());
            assert_eq!(t.status().health, Health::Healthy);
            t.expired(g);
            assert_eq!(t.status().health, Health::Lost);
        });
    }
}
