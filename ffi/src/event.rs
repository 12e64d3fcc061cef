//! Events, their names, and the C side of a callback registration.

use std::ffi::{c_void, CString};
use std::os::raw::c_char;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ballot::{Event, LostReason};

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

/// The canonical name of an event kind: `"elected"`, `"suspended"`,
/// `"reconnected"`, `"lost"`, `"resigned"`, `"leader_changed"`, `"ended"` or
/// `"error"` (the constant's name in lower case, without its prefix), or the
/// name of a kind that a later libballot adds; `"unknown"` for a value that is
/// no kind. `kind` is a `ballot_event_kind` value; any `uint32_t` is accepted.
///
/// Ownership: the string is static; do not free it. Thread: any. Never fails.
#[no_mangle]
pub extern "C" fn ballot_event_kind_str(kind: u32) -> *const c_char {
    // The core's table names the kinds; C only looks them up by code.
    ffi_boundary_value!(c"unknown".as_ptr(), {
        ballot::EventKind::from_code(kind).map_or(c"unknown", ballot::EventKind::as_c_str).as_ptr()
    })
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
    /// What happened: a `ballot_event_kind`. A kind that a later libballot adds
    /// arrives by its code, with the other fields empty; ignore kinds you do not
    /// know (`ballot_event_kind_str` names them).
    pub kind: u32,
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
    /// The election handle the registration belongs to, known by its address
    /// only (see `callback.rs`).
    owner: *const c_void,
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
        owner: *const c_void,
        armed: Arc<AtomicBool>,
    ) -> Sink {
        Sink { cb, user_data, free, owner, armed }
    }

    pub(crate) fn deliver(&mut self, ev: &Event) {
        let mut out = ballot_event {
            kind: ev.kind().code(),
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
            Event::Elected { term } => out.term = *term,
            Event::Lost { reason } => {
                out.reason = match reason {
                    LostReason::SessionLost => ballot_lost_reason::SessionLost,
                    LostReason::Deleted => ballot_lost_reason::Deleted,
                    LostReason::NotOwner => ballot_lost_reason::NotOwner,
                    // A reason added to the core later still reports a loss.
                    _ => ballot_lost_reason::SessionLost,
                };
            }
            Event::LeaderChanged(l) => {
                leader = l.as_ref().map(ballot_leader::new);
                if let Some(l) = &leader {
                    out.term = l.term();
                    out.leader = l;
                }
            }
            Event::Error(e) => {
                out.error = ballot_result::from_kind(e.kind());
                message = CString::new(e.to_string().replace('\0', "\\0")).unwrap_or_default();
                out.message = message.as_ptr();
            }
            // The kinds without a payload, and any the core adds later: passed on
            // by their code, as every surface does with a kind it does not know.
            _ => {}
        }
        let _guard = crate::callback::enter(self.owner);
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

#[cfg(test)]
mod tests {
    use super::*;
    use ballot::EventKind;
    use std::ffi::CStr;

    /// The core kind of each C constant. Exhaustive: a constant added to the
    /// enum does not compile here until it names its core kind.
    fn core_kind(kind: ballot_event_kind) -> EventKind {
        match kind {
            ballot_event_kind::Elected => EventKind::Elected,
            ballot_event_kind::Suspended => EventKind::Suspended,
            ballot_event_kind::Reconnected => EventKind::Reconnected,
            ballot_event_kind::Lost => EventKind::Lost,
            ballot_event_kind::Resigned => EventKind::Resigned,
            ballot_event_kind::LeaderChanged => EventKind::LeaderChanged,
            ballot_event_kind::Ended => EventKind::Ended,
            ballot_event_kind::Error => EventKind::Error,
        }
    }

    /// Each C constant is the core kind of the same code, and its name follows
    /// from the constant by one rule (`LEADER_CHANGED` is `"leader_changed"`).
    #[test]
    fn every_constant_is_the_core_kind_of_its_code_and_name() {
        use ballot_event_kind::*;
        let all = [Elected, Suspended, Reconnected, Lost, Resigned, LeaderChanged, Ended, Error];
        assert_eq!(all.len(), EventKind::ALL.len(), "a core kind has no C constant");
        for kind in all {
            assert_eq!(core_kind(kind).code(), kind as u32, "{kind:?}");
            let snake: String = format!("{kind:?}")
                .chars()
                .enumerate()
                .flat_map(|(i, c)| {
                    let sep = (i > 0 && c.is_ascii_uppercase()).then_some('_');
                    sep.into_iter().chain(std::iter::once(c.to_ascii_lowercase()))
                })
                .collect();
            // SAFETY: the function returns a static NUL-terminated string.
            let got = unsafe { CStr::from_ptr(ballot_event_kind_str(kind as u32)) };
            assert_eq!(got.to_str().unwrap(), snake);
            assert_eq!(core_kind(kind).as_str(), snake);
        }
        for code in [0, 9, u32::MAX] {
            // SAFETY: as above.
            assert_eq!(unsafe { CStr::from_ptr(ballot_event_kind_str(code)) }, c"unknown");
        }
    }
}
