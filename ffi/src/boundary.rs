//! The panic boundary around every exported function, and the small helpers that
//! turn C arguments into Rust values with the documented result codes.

use std::ffi::CStr;
use std::os::raw::c_char;

use crate::result::{ballot_error, ballot_result, Failure};

/// Runs `$body` (a block evaluating to `Result<(), Failure>`) so that no panic
/// crosses into C, writes `*$err_out` on failure, and evaluates to the
/// `ballot_result`.
macro_rules! ffi_boundary {
    ($err_out:expr, $body:block) => {{
        let r: Result<(), $crate::result::Failure> =
            match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
                Ok(r) => r,
                Err(p) => Err($crate::result::Failure::panic(p)),
            };
        $crate::boundary::finish(r, $err_out)
    }};
}

/// Runs `$body` (evaluating to the function's return value) and gives
/// `$on_panic` if it panics; for the functions that cannot report an error.
macro_rules! ffi_boundary_value {
    ($on_panic:expr, $body:block) => {{
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(v) => v,
            Err(_) => $on_panic,
        }
    }};
}

/// Turns the outcome into the result code and stores the error detail.
pub(crate) fn finish(r: Result<(), Failure>, err_out: *mut *mut ballot_error) -> ballot_result {
    match r {
        Ok(()) => ballot_result::Ok,
        Err(f) => {
            let code = f.code;
            if !err_out.is_null() {
                // SAFETY: the caller passes either NULL or a writable pointer.
                unsafe { *err_out = Box::into_raw(Box::new(ballot_error::from(f))) };
            }
            code
        }
    }
}

/// A shared reference to a handle, or `NULL_PARAMETER` naming `what`.
///
/// # Safety
/// `p` is NULL or points to a live `T` made by this library.
pub(crate) unsafe fn arg<'a, T>(p: *const T, what: &str) -> Result<&'a T, Failure> {
    // SAFETY: guaranteed by the caller.
    unsafe { p.as_ref() }.ok_or_else(|| Failure::null(what))
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that stays valid during the call.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: guaranteed by the caller.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|e| {
        Failure::new(
            ballot_result::InvalidUtf8,
            format!("{what} is not valid UTF-8 (invalid byte at offset {})", e.valid_up_to()),
        )
    })
}

/// A byte-buffer argument: `(NULL, 0)` is the empty buffer, `(NULL, n > 0)` is
/// `NULL_PARAMETER`.
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes.
pub(crate) unsafe fn bytes_arg<'a>(p: *const u8, len: usize, what: &str) -> Result<&'a [u8], Failure> {
    if p.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(Failure::null(what));
    }
    // SAFETY: guaranteed by the caller.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Checks an output pointer before any work is done, so that a NULL output does
/// not cost a campaign.
pub(crate) fn out_arg<T>(p: *mut T, what: &str) -> Result<(), Failure> {
    if p.is_null() {
        return Err(Failure::null(what));
    }
    Ok(())
}

/// Whether the calling thread is inside a callback of the election at `e`, which
/// is where `ballot_election_free(e)` must refuse with `REENTRANT`.
pub(crate) fn in_callback_of(e: *const crate::election::ballot_election) -> bool {
    CALLBACK_OF.with(|c| c.get() == e as usize)
}

/// Marks the calling thread as running a callback of `e` until the guard drops.
pub(crate) fn enter_callback(e: *const crate::election::ballot_election) -> CallbackGuard {
    let prev = CALLBACK_OF.with(|c| c.replace(e as usize));
    CallbackGuard { prev }
}

pub(crate) struct CallbackGuard {
    prev: usize,
}

impl Drop for CallbackGuard {
    fn drop(&mut self) {
        CALLBACK_OF.with(|c| c.set(self.prev));
    }
}

thread_local! {
    static CALLBACK_OF: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}
