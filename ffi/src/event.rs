//! Events and their callback registration.

use std::ffi::{c_void, CString};
use std::os::raw::c_char;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ballot::{Event, LostReason};

use crate::election::ballot_election;
use crate::leader::ballot_leader;
use crate::result::ballot_result;

/// What an event reports. New kinds may be added; ignore kinds you do not know.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ballot_event_kind {
    /// This handle became leader; `term` is the new term.
    Elected = 1,
    /// Leadership is in doubt (the session's health is unknown): stop acting as
    /// leader until `RECONNECTED`. `LOST` follows if it cannot be confirmed.
    Suspended = 2,
    /// Leadership was confirmed again after `SUSPENDED`.
    Reconnected = 3,
    /// Leadership is gone; `reason` says why. Reported no later than the earliest
    /// moment at which the backend could let another candidate win.
    Lost = 4,
    /// This handle resigned.
    Resigned = 5,
    /// The election's leader changed; `leader` is the new one, or NULL when the
    /// election has no leader.
    LeaderChanged = 6,
    /// The election was ended by `ballot_election_end`. No event follows.
    Ended = 7,
    /// A background error (a broken watch, a failed re-campaign); `error` and
    /// `message` describe it. The handle keeps working where it can.
    Error = 8,
}

/// Why leadership was lost (the `reason` of a `BALLOT_EVENT_KIND_LOST` event).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ballot_lost_reason {
    /// Not a `LOST` event.
    None = 0,
    /// The session expired, or its local deadline passed.
    SessionLost = 1,
    /// The leader's record was deleted or taken over.
    Deleted = 2,
    /// After a reconnect, the record no longer belonged to this session.
    NotOwner = 3,
}

/// One event of an election handle, lent to a `ballot_event_cb` for the duration of
/// the call. Fields that do not apply to `kind` are 0 or NULL. Fields may be
/// added at the end in later versions; the struct is always made by libballot.
#[repr(C)]
#[derive(Debug)]
pub struct ballot_event {
    /// What happened.
    pub kind: ballot_event_kind,
    /// `ELECTED`: the new term. `LEADER_CHANGED`: the new leader's term, or 0.
    pub term: u64,
    /// `LOST`: why. Otherwise `BALLOT_LOST_REASON_NONE`.
    pub reason: ballot_lost_reason,
    /// `LEADER_CHANGED`: the new leader, or NULL when there is none. Borrowed for
    /// the call; do not free it.
    pub leader: *const ballot_leader,
    /// `ERROR`: the error's code. Otherwise `BALLOT_RESULT_OK`.
    pub error: ballot_result,
    /// `ERROR`: the error's message, NUL-terminated. Otherwise NULL. Borrowed for
    /// the call.
    pub message: *const c_char,
}

/// An event callback: `user_data` is the pointer given at registration, `event`
/// is borrowed for the call.
///
/// It runs on the client's event thread, a thread owned by libballot (never the
/// registering thread and never a runtime worker), one event at a time and in
/// order. It may call any libballot function, except `ballot_election_free` on its
/// own election, which returns `BALLOT_RESULT_REENTRANT`. A slow callback delays
/// the events of every election of the same client.
pub type ballot_event_cb = Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const ballot_event)>;

/// Releases the `user_data` of a registration. libballot calls it exactly once,
/// when nothing can call the callback any more: when the registration is replaced,
/// or from `ballot_election_free`. It runs on the thread that made that call,
/// or on the event thread when that call was made from inside the callback.
pub type ballot_user_data_free = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// The C side of a registration: calls the callback and, when dropped (after the
/// last call), releases `user_data`.
pub(crate) struct Sink {
    cb: unsafe extern "C" fn(*mut c_void, *const ballot_event),
    user_data: *mut c_void,
    free: ballot_user_data_free,
    owner: *const ballot_election,
    /// Set once the registration succeeded; before that, dropping the sink must
    /// leave `user_data` to the caller.
    armed: Arc<AtomicBool>,
}

// SAFETY: the C contract of ballot_election_on_event is that `user_data` may be
// used from the library's event thread; the sink is only ever used by one thread
// at a time (the dispatcher holds it behind a mutex).
unsafe impl Send for Sink {}

impl Sink {
    pub(crate) fn new(
        cb: unsafe extern "C" fn(*mut c_void, *const ballot_event),
        user_data: *mut c_void,
        free: ballot_user_data_free,
        owner: *const ballot_election,
        armed: Arc<AtomicBool>,
    ) -> Sink {
        Sink { cb, user_data, free, owner, armed }
    }

    pub(crate) fn deliver(&mut self, ev: &Event) {
        let mut out = ballot_event {
            kind: ballot_event_kind::Error,
            term: 0,
            reason: ballot_lost_reason::None,
            leader: std::ptr::null(),
            error: ballot_result::Ok,
            message: std::ptr::null(),
        };
        // Both live until the callback returns.
        let leader;
        let message;
        match ev {
            Event::Elected { term } => {
                out.kind = ballot_event_kind::Elected;
                out.term = *term;
            }
            Event::Suspended => out.kind = ballot_event_kind::Suspended,
            Event::Reconnected => out.kind = ballot_event_kind::Reconnected,
            Event::Lost { reason } => {
                out.kind = ballot_event_kind::Lost;
                out.reason = match reason {
                    LostReason::SessionLost => ballot_lost_reason::SessionLost,
                    LostReason::Deleted => ballot_lost_reason::Deleted,
                    LostReason::NotOwner => ballot_lost_reason::NotOwner,
                    // A reason added to the core later still reports a loss.
                    _ => ballot_lost_reason::SessionLost,
                };
            }
            Event::Resigned => out.kind = ballot_event_kind::Resigned,
            Event::LeaderChanged(l) => {
                out.kind = ballot_event_kind::LeaderChanged;
                leader = l.as_ref().map(ballot_leader::new);
                if let Some(l) = &leader {
                    out.term = l.term();
                    out.leader = l;
                }
            }
            Event::Ended => out.kind = ballot_event_kind::Ended,
            Event::Error(e) => {
                out.kind = ballot_event_kind::Error;
                out.error = ballot_result::from_kind(e.kind());
                message = CString::new(e.to_string().replace('\0', "\\0")).unwrap_or_default();
                out.message = message.as_ptr();
            }
            // Event is non-exhaustive: an event kind this library does not know
            // yet is not passed on (the header promises only the kinds above).
            _ => return,
        }
        let _guard = crate::boundary::enter_callback(self.owner);
        // SAFETY: the callback was given by the caller for exactly this use.
        unsafe { (self.cb)(self.user_data, &out) };
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if !self.armed.load(Ordering::SeqCst) {
            return;
        }
        if let Some(f) = self.free {
            // SAFETY: called once, after the last call of the callback.
            unsafe { f(self.user_data) };
        }
    }
}
