//! The hold of a won leadership: a task that watches the session's health and the
//! backend's word on the entry, and feeds what it sees to the state machine
//! (suspended, reconnected after the entry was verified, lost).

use std::sync::Arc;
use std::time::Duration;

use super::machine::{Input, Next, Ticket};
use super::participant::{EntryRef, Participant};
use crate::model::LostReason;

/// How long the hold waits before asking again whether the entry is still ours,
/// when the backend could not answer.
const VERIFY_RETRY: Duration = Duration::from_millis(200);

/// A campaign to start again after a loss, for `ticket`, with `value`.
pub(super) struct Requeue {
    pub(super) ticket: Ticket,
    pub(super) value: Vec<u8>,
}

/// Watches the leadership of `ticket`, won with `entry` under the session
/// `generation`, until it ends. Returns the campaign to start again when the
/// leadership was lost and auto-requeue is on.
pub(super) async fn hold(p: &Arc<Participant>, ticket: Ticket, entry: EntryRef, generation: u64) -> Option<Requeue> {
    let tracker = p.backend().session().clone();
    let mut sessions = tracker.subscribe();
    loop {
        match p.step(Input::SessionSeen { ticket, generation, session: tracker.status() }) {
            Next::Verify => match entry.0.verify().await {
                Ok(owned) => match p.step(Input::Verified { ticket, generation, owned, session: tracker.status() }) {
                    Next::LookAgain => continue,
                    Next::Proceed => {}
                    next => return requeue(next),
                },
                Err(_) => {
                    // Could not check yet: stay suspended and look again shortly.
                    tokio::time::sleep(VERIFY_RETRY).await;
                    continue;
                }
            },
            Next::Proceed => {}
            next => return requeue(next),
        }
        let lost = tokio::select! {
            reason = entry.0.lost() => reason,
            r = sessions.changed() => match r {
                Ok(()) => continue,
                // The tracker is gone: no report of this session will come again.
                Err(_) => LostReason::SessionLost,
            },
        };
        return requeue(p.step(Input::LeadershipLost { ticket, reason: lost }));
    }
}

fn requeue(next: Next<EntryRef>) -> Option<Requeue> {
    match next {
        Next::Requeue { ticket, value } => Some(Requeue { ticket, value }),
        _ => None,
    }
}
