//! ballot's log records handed to a C callback (`ballot_set_log_callback`).

use std::ffi::CString;
use std::os::raw::{c_char, c_void};
use std::sync::Arc;

use ballot::logging::{self, Level, Record};

use crate::result::{ballot_error, ballot_result, Failure};

/// The level of a log record, most important first; the `level` argument of
/// `ballot_set_log_callback` delivers that level and those above it.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ballot_log_level {
    /// No records (only as the `level` argument).
    Off = 0,
    /// Something failed that the caller did not ask about.
    Error = 1,
    /// Leadership is or may be gone: suspended, lost, a lost session, an error event.
    Warn = 2,
    /// Other changes of a handle or a session: elected, resigned, reconnected, ended,
    /// a requeue, a new session, a client connected or closed.
    Info = 3,
    /// State transitions, leader changes, single keepalive failures.
    Debug = 4,
    /// Finer records (none yet).
    Trace = 5,
}

impl ballot_log_level {
    fn of(level: Level) -> ballot_log_level {
        match level {
            Level::Error => ballot_log_level::Error,
            Level::Warn => ballot_log_level::Warn,
            Level::Info => ballot_log_level::Info,
            Level::Debug => ballot_log_level::Debug,
            Level::Trace => ballot_log_level::Trace,
        }
    }
}

/// Receives one log record. `message` says what happened (with the record's other
/// fields appended as ` key=value`); `backend` (the URL's scheme) and `election`
/// name what it concerns, or are NULL. The strings are NUL-terminated UTF-8 lent
/// for the call only: copy what you keep.
///
/// Thread: called on one library thread (`ballot-log`), one record at a time, in
/// the order they were made; never on a caller's thread. It may call any ballot
/// function except `ballot_set_log_callback`. A slow callback makes records drop
/// (a queue of 1,024), never an election wait; the drop is reported by a `warn`
/// record.
pub type ballot_log_cb = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        level: ballot_log_level,
        message: *const c_char,
        backend: *const c_char,
        election: *const c_char,
    ),
>;

/// A callback and its `user_data`, which C lets any thread use.
struct Callback {
    cb: unsafe extern "C" fn(*mut c_void, ballot_log_level, *const c_char, *const c_char, *const c_char),
    user_data: *mut c_void,
}

// SAFETY: the caller of `ballot_set_log_callback` promises that the callback and
// `user_data` may be used from the library's log thread.
unsafe impl Send for Callback {}
// SAFETY: as above; the log thread is the only caller, one record at a time.
unsafe impl Sync for Callback {}

impl Callback {
    fn deliver(&self, r: &Record) {
        let text = |s: &str| CString::new(s.replace('\0', "\\0")).unwrap_or_default();
        let message = text(&r.message);
        let backend = r.backend.as_deref().map(text);
        let election = r.election.as_deref().map(text);
        let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
        // SAFETY: the strings live until the call returns; the callback's contract
        // is the caller's (see `ballot_log_cb`).
        unsafe {
            (self.cb)(self.user_data, ballot_log_level::of(r.level), message.as_ptr(), ptr(&backend), ptr(&election))
        }
    }
}

/// Sends ballot's log records at `level` (a `ballot_log_level`) and above to `cb`,
/// replacing the callback set before. `BALLOT_LOG_LEVEL_OFF` or a NULL `cb`
/// stops the records.
///
/// When this returns, the callback it replaced is not running and is never called
/// again, so its `user_data` may be freed. Records never hold a secret (no
/// password, token, userinfo or value).
///
/// Errors: `BALLOT_RESULT_INVALID_ARGUMENT` for a level that is not a
/// `ballot_log_level`, when called from inside the log callback, or when the
/// process already has another global Rust `tracing` subscriber. Thread: any.
///
/// # Safety
/// `cb`, if not NULL, and `user_data` must be usable from another thread until the
/// callback is replaced. `err_out` is NULL or a valid `ballot_error *` slot.
#[no_mangle]
pub unsafe extern "C" fn ballot_set_log_callback(
    level: u32,
    cb: ballot_log_cb,
    user_data: *mut c_void,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        let level = match level {
            0 => None,
            n => Some(Level::from_code(n).ok_or_else(|| {
                Failure::invalid(format!("{n} is not a ballot_log_level (0 for off, 1 for error to 5 for trace)"))
            })?),
        };
        let sink = cb.map(|cb| {
            let c = Callback { cb, user_data };
            Arc::new(move |r: &Record| c.deliver(r)) as logging::Sink
        });
        logging::set_sink(level, sink)?;
        Ok(())
    })
}
