//! The panic boundary around every exported function, and the small helpers that
//! turn C arguments into Rust values with the documented result codes.

use std::ffi::CStr;
use std::os::raw::c_char;

use crate::handle::Boxed;
use crate::result::{ballot_result, Failure};

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
        $crate::result::finish(r, $err_out)
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

/// A handle lent for the call, or `NULL_PARAMETER` naming `what`.
///
/// # Safety
/// `p` is NULL or a live handle made by this library.
pub(crate) unsafe fn arg<'a, T: Boxed>(p: *const T, what: &str) -> Result<&'a T, Failure> {
    // SAFETY: guaranteed by the caller.
    unsafe { T::borrow(p) }.ok_or_else(|| Failure::null(what))
}

/// A handle lent mutably for the call, or `NULL_PARAMETER` naming `what`.
///
/// # Safety
/// `p` is NULL or a live handle made by this library that no other thread uses.
pub(crate) unsafe fn arg_mut<'a, T: Boxed>(p: *mut T, what: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: guaranteed by the caller.
    unsafe { T::borrow_mut(p) }.ok_or_else(|| Failure::null(what))
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that stays valid during the call.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    // SAFETY: guaranteed by the caller.
    unsafe { utf8_arg(p, what, true) }
}

/// A NUL-terminated UTF-8 string argument that is a secret (a password, a
/// token): an error names the argument but says nothing about its content, not
/// even where its first invalid byte is.
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn secret_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    // SAFETY: guaranteed by the caller.
    unsafe { utf8_arg(p, what, false) }
}

/// # Safety
/// As [`str_arg`].
unsafe fn utf8_arg<'a>(p: *const c_char, what: &str, show_offset: bool) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: guaranteed by the caller.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|e| {
        let at = if show_offset { format!(" (invalid byte at offset {})", e.valid_up_to()) } else { String::new() };
        Failure::new(ballot_result::InvalidUtf8, format!("{what} is not valid UTF-8{at}"))
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
