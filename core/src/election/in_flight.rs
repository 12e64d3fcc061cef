//! [`InFlight`]: the background joins and withdrawals of one participant, counted
//! so that a caller that gives up on a campaign, or closes, can wait until none is
//! left.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::runtime;

/// Background work of one participant that must finish before the participant
/// leaves nothing behind on the server (joins that may still land, withdrawals),
/// and a wake-up each time one finishes. Shared through an `Arc` by the
/// participant and the tasks it counts.
#[derive(Debug, Default)]
pub(super) struct InFlight {
    running: AtomicUsize,
    finished: Notify,
}

/// One unit of counted work: the count goes down when it is dropped. A join's
/// token travels with the entry it made until the state machine has taken the
/// entry (or handed it to a counted withdrawal), so that the count never reads
/// zero while an entry is on its way from the join to the machine.
#[derive(Debug)]
pub(super) struct InFlightToken(Arc<InFlight>);

impl Drop for InFlightToken {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
        self.0.finished.notify_waiters();
    }
}

impl InFlight {
    /// Counts one unit of work until the returned token is dropped.
    fn token(self: &Arc<Self>) -> InFlightToken {
        self.running.fetch_add(1, Ordering::SeqCst);
        InFlightToken(self.clone())
    }

    /// Runs `fut` as a detached task on the library runtime, counted until it ends.
    pub(super) fn spawn(self: &Arc<Self>, fut: impl Future<Output = ()> + Send + 'static) {
        self.spawn_with(move |token| async move {
            fut.await;
            drop(token);
        });
    }

    /// As [`spawn`](Self::spawn), handing `make` the token that counts the task:
    /// the future it returns must own the token (the count ends when the token is
    /// dropped), and may pass it on to extend the count past the task's end.
    pub(super) fn spawn_with<F: Future<Output = ()> + Send + 'static>(
        self: &Arc<Self>,
        make: impl FnOnce(InFlightToken) -> F,
    ) {
        let token = self.token();
        // The token is moved into the task's future: it is dropped when the task
        // ends, or with the future if the runtime is gone and cannot run it.
        runtime::spawn_detached(make(token));
    }

    /// Waits, at most `limit`, until no counted work is left.
    pub(super) async fn wait_until_none(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let finished = self.finished.notified();
            if self.running.load(Ordering::SeqCst) == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, finished).await.is_err() {
                return;
            }
        }
    }
}
