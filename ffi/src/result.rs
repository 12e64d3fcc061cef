//! Result codes, the error detail, and the failure on its way to C. The
//! functions that C calls on them are in `error.rs`.

use std::ffi::{CStr, CString};

use ballot::ErrorKind;

use crate::handle::Boxed;

/// The outcome of a libballot call. `BALLOT_RESULT_OK` (0) is success; every other
/// value names what went wrong. Codes 1 to 12 are one per kind of ballot error
/// (the same kinds as the Rust `ErrorKind`, the Python exception classes and the
/// Node error codes); codes from 100 on are errors of the C boundary itself.
///
/// Codes are never renumbered. A retired code stays reserved here as a comment.
/// `ballot_result_str` gives a static name for each code.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ballot_result {
    /// Success.
    Ok = 0,
    /// A value given by the caller is not acceptable: an election name (empty,
    /// longer than 256 bytes, an empty segment, a control character), a value
    /// (empty or larger than the backend's limit), a URL or an option, or an
    /// operation that the handle's current state does not allow (for example
    /// campaigning twice). The error message names the problem.
    InvalidArgument = 1,
    /// The backend could not be reached or the connection broke.
    Connection = 2,
    /// The operation did not finish within its timeout.
    Timeout = 3,
    /// The operation needs leadership and this handle does not hold it.
    NotLeader = 4,
    /// The election has no leader.
    NoLeader = 5,
    /// The session was lost while the operation ran.
    SessionLost = 6,
    /// The election was ended by `ballot_election_end` (from any participant).
    Ended = 7,
    /// The client or election was closed (`ballot_client_close` or
    /// `ballot_client_free`).
    Closed = 8,
    /// The backend refused the credentials or the permission.
    Auth = 9,
    /// The backend answered with an error that fits no other code.
    Backend = 10,
    /// A bug or broken invariant inside ballot (please report it).
    Internal = 11,
    /// The operation was cancelled: by `ballot_election_cancel`, by a resign that
    /// withdrew a waiting campaign, or by `ballot_election_free` for a pending
    /// `ballot_election_campaign_async`.
    Cancelled = 12,
    /// A required pointer argument was NULL. The error message names it.
    NullParameter = 100,
    /// A string argument was not valid UTF-8.
    InvalidUtf8 = 101,
    /// A panic inside libballot was caught at the boundary (a bug; please report
    /// it). The handle may be in an unspecified but memory-safe state.
    Panic = 102,
    /// The call was made from inside a callback of the same election, where it
    /// would wait for itself (`ballot_election_free` from that election's event
    /// callback or campaign completion callback). Nothing was done.
    Reentrant = 103,
}

impl ballot_result {
    pub(crate) fn from_kind(kind: ErrorKind) -> ballot_result {
        match kind {
            ErrorKind::InvalidArgument => ballot_result::InvalidArgument,
            ErrorKind::Connection => ballot_result::Connection,
            ErrorKind::Timeout => ballot_result::Timeout,
            ErrorKind::NotLeader => ballot_result::NotLeader,
            ErrorKind::NoLeader => ballot_result::NoLeader,
            ErrorKind::SessionLost => ballot_result::SessionLost,
            ErrorKind::Ended => ballot_result::Ended,
            ErrorKind::Closed => ballot_result::Closed,
            ErrorKind::Auth => ballot_result::Auth,
            ErrorKind::Backend => ballot_result::Backend,
            ErrorKind::Cancelled => ballot_result::Cancelled,
            // ErrorKind is non-exhaustive; a kind added to the core without a code
            // here is a bug of this crate, which a unit test catches.
            _ => ballot_result::Internal,
        }
    }

    /// The static name of `code`: the core's name of an error kind, or the
    /// name of a result of the C boundary itself.
    pub(crate) fn name(code: u32) -> &'static CStr {
        if let Some(kind) = ErrorKind::from_code(code) {
            return kind.as_c_str();
        }
        match code {
            0 => c"ok",
            100 => c"null_parameter",
            101 => c"invalid_utf8",
            102 => c"panic",
            103 => c"reentrant",
            _ => c"unknown",
        }
    }
}

/// The detail of a failed call: its result code and a message naming the cause.
///
/// Made by libballot and handed to the caller through an `err_out` argument; the
/// caller owns it and frees it with `ballot_error_free`. It is immutable, so it
/// may be read from any thread.
#[derive(Debug)]
pub struct ballot_error {
    pub(crate) code: ballot_result,
    pub(crate) message: CString,
}

impl Boxed for ballot_error {}

/// A failure on its way to C: a code and a message.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: ballot_result,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: ballot_result, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into() }
    }

    /// An `INVALID_ARGUMENT` failure, worded as the core's errors are
    /// (`"invalid_argument: ..."`).
    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure::from(ballot::Error::new(ErrorKind::InvalidArgument, message))
    }

    pub(crate) fn null(what: &str) -> Failure {
        Failure::new(ballot_result::NullParameter, format!("{what} is NULL"))
    }

    pub(crate) fn panic(payload: Box<dyn std::any::Any + Send>) -> Failure {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with no message".to_string());
        Failure::new(ballot_result::Panic, format!("a panic inside libballot was caught: {what}"))
    }
}

impl From<ballot::Error> for Failure {
    fn from(e: ballot::Error) -> Failure {
        Failure::new(ballot_result::from_kind(e.kind()), e.to_string())
    }
}

impl From<Failure> for ballot_error {
    fn from(f: Failure) -> ballot_error {
        // A NUL inside a message (say, from a backend's reply) would cut it short;
        // replacing it keeps the rest readable.
        let message = CString::new(f.message.replace('\0', "\\0")).unwrap_or_default();
        ballot_error { code: f.code, message }
    }
}

/// Turns the outcome of an exported function into its result code, and stores the
/// error detail in `*err_out` (a new `ballot_error` owned by the caller) when the
/// call failed and `err_out` is not NULL.
pub(crate) fn finish(r: Result<(), Failure>, err_out: *mut *mut ballot_error) -> ballot_result {
    match r {
        Ok(()) => ballot_result::Ok,
        Err(f) => {
            let code = f.code;
            if !err_out.is_null() {
                // SAFETY: the caller passes either NULL or a writable pointer.
                unsafe { ballot_error::from(f).write_to(err_out) };
            }
            code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_code_per_kind_in_order_and_never_renumbered() {
        for (i, kind) in ErrorKind::ALL.iter().enumerate() {
            let code = ballot_result::from_kind(*kind) as u32;
            assert_eq!(code, i as u32 + 1, "{kind:?}");
            let name = ballot_result::name(code);
            assert_eq!(name.to_str().unwrap(), kind.as_str());
        }
        assert_eq!(ballot_result::NullParameter as u32, 100);
        assert_eq!(ballot_result::InvalidUtf8 as u32, 101);
        assert_eq!(ballot_result::Panic as u32, 102);
        assert_eq!(ballot_result::Reentrant as u32, 103);
    }
}
