//! [`InFlight`]: the background joins and withdrawals of one participant, counted
//! so that a caller that gives up on a campaign can wait until none is left.

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

impl InFlight {
    /// Runs `fut` as a detached task on the library runtime, counted until it ends.
    pub(super) fn spawn(self: &Arc<Self>, fut: impl Future<Output = ()> + Send + 'static) {
        let this = self.clone();
        this.running.fetch_add(1, Ordering::SeqCst);
        runtime::spawn_detached(async move {
            fut.await;
            this.running.fetch_sub(1, Ordering::SeqCst);
            this.finished.notify_waiters();
        });
    }

    /// Waits, at most `limit`, until no counted task runs.
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
