//! The plain data that the engine and the backends share: who leads
//! ([`Leader`]), where a handle stands ([`State`]), why leadership ended
//! ([`LostReason`]) and what a handle reports ([`Event`]).
//!
//! This file sits at the bottom of the crate, beside `error.rs`: it imports
//! nothing of the engine or of a backend, so both can build on it.

use std::fmt;

use crate::error::Error;

/// The leader of an election as the backend records it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Leader {
    /// The value the leader campaigned or proclaimed with.
    pub value: Vec<u8>,
    /// The fencing token: strictly increasing over the successive leaders of the
    /// election, also across `end()`, backend restarts and reconnects.
    pub term: u64,
    /// The leader's key as the backend names it (etcd key, ZooKeeper node path,
    /// Consul session, local holder id).
    pub key: String,
}

impl Leader {
    pub(crate) fn new(value: Vec<u8>, term: u64, key: String) -> Leader {
        Leader { value, term, key }
    }
}

/// One candidate of an election, as [`Election::participants`] lists it.
///
/// [`Election::participants`]: crate::Election::participants
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Participant {
    /// The candidate's key as the backend names it. For the leader it is the key
    /// that [`Leader::key`] reports; see the README for each backend's form.
    pub key: String,
    /// The value the candidate campaigned with (for the leader, its latest
    /// proclaimed value). Empty when the backend does not know it (a
    /// `consul lock` holder that stored no value).
    pub value: Vec<u8>,
    /// Whether this candidate leads. Only the first participant can.
    pub leader: bool,
}

impl Participant {
    pub(crate) fn new(key: String, value: Vec<u8>, leader: bool) -> Participant {
        Participant { key, value, leader }
    }
}

/// Where an election handle stands.
///
/// ```text
/// Idle --campaign--> Campaigning --won--> Leader --resign--> Idle
///                         ^                 |  ^
///                         |              suspend  reconnect (ownership re-verified)
///                         |                 v  |
///                         +----lost------ Suspended
/// Any state --end() by anyone--> Ended (terminal)      Any state --close--> Closed (terminal)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Not a candidate.
    Idle,
    /// Waiting to win.
    Campaigning,
    /// Leading, and the session is healthy.
    Leader,
    /// Was leading, but the session's health is in doubt: do not act as leader. Either
    /// `Reconnected` (back to `Leader`) or `Lost` follows.
    Suspended,
    /// The election was ended by `end()`. Terminal.
    Ended,
    /// The handle or its client was closed. Terminal.
    Closed,
}

impl State {
    /// A short stable name (`"leader"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Campaigning => "campaigning",
            State::Leader => "leader",
            State::Suspended => "suspended",
            State::Ended => "ended",
            State::Closed => "closed",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why leadership was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LostReason {
    /// The session expired, or its local deadline (TTL minus safety margin since
    /// the last acknowledged keepalive was sent) passed.
    SessionLost,
    /// The leader's record was deleted or taken over by someone else.
    Deleted,
    /// After a reconnect, the record no longer belonged to this session.
    NotOwner,
}

impl LostReason {
    /// A short stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            LostReason::SessionLost => "session_lost",
            LostReason::Deleted => "deleted",
            LostReason::NotOwner => "not_owner",
        }
    }
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to an election handle, in order.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// This handle became leader with `term`.
    Elected {
        /// The new term (fencing token).
        term: u64,
    },
    /// Leadership is in doubt; stop acting as leader until `Reconnected`.
    Suspended,
    /// Leadership was confirmed again after `Suspended`.
    Reconnected,
    /// Leadership is gone. Reported no later than the earliest moment the backend
    /// could let another candidate win.
    Lost {
        /// Why.
        reason: LostReason,
    },
    /// This handle resigned.
    Resigned,
    /// The election's leader changed (None: no leader).
    LeaderChanged(Option<Leader>),
    /// The election was ended. No event follows.
    Ended,
    /// A background error (a broken watch, a failed re-campaign). The handle keeps
    /// working where it can.
    Error(Error),
}
