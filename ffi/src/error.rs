//! The functions C calls on result codes and errors: `ballot_result_str`,
//! `ballot_error_message`, `ballot_error_result` and `ballot_error_free`.

use std::os::raw::c_char;

use crate::handle::Boxed;
use crate::result::{ballot_error, ballot_result};

/// The static name of a result code, such as `"ok"`, `"not_leader"` or
/// `"null_parameter"`; `"unknown"` for a value that is not a code.
///
/// `code` is a `ballot_result` value; any `uint32_t` is accepted.
///
/// Ownership: the string is static; do not free it. Thread: any. Never fails.
#[no_mangle]
pub extern "C" fn ballot_result_str(code: u32) -> *const c_char {
    ffi_boundary_value!(c"unknown".as_ptr(), { ballot_result::name(code).as_ptr() })
}

/// The message of an error: one line naming the code and the cause, for example
/// `"invalid_argument: election name \"a//b\" has an empty segment ..."`.
///
/// Ownership: the string belongs to `error` and lives until
/// `ballot_error_free(error)`. NULL: returns NULL when `error` is NULL.
/// Thread: any.
///
/// # Safety
/// `error` is NULL or an error made by libballot and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn ballot_error_message(error: *const ballot_error) -> *const c_char {
    ffi_boundary_value!(std::ptr::null(), {
        // SAFETY: guaranteed by the caller.
        match unsafe { ballot_error::borrow(error) } {
            Some(e) => e.message.as_ptr(),
            None => std::ptr::null(),
        }
    })
}

/// The result code of an error (never `BALLOT_RESULT_OK`).
///
/// NULL: returns `BALLOT_RESULT_NULL_PARAMETER` when `error` is NULL.
/// Thread: any.
///
/// # Safety
/// `error` is NULL or an error made by libballot and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn ballot_error_result(error: *const ballot_error) -> ballot_result {
    ffi_boundary_value!(ballot_result::Panic, {
        // SAFETY: guaranteed by the caller.
        match unsafe { ballot_error::borrow(error) } {
            Some(e) => e.code,
            None => ballot_result::NullParameter,
        }
    })
}

/// Frees an error returned through an `err_out` argument.
///
/// Ownership: takes `error`; it must not be used afterwards. NULL: no-op.
/// Thread: any.
///
/// # Safety
/// `error` is NULL or an error made by libballot and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn ballot_error_free(error: *mut ballot_error) {
    // SAFETY: guaranteed by the caller.
    ffi_boundary_value!((), { unsafe { ballot_error::free(error) } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_the_panic_code_with_its_message() {
        let mut err: *mut ballot_error = std::ptr::null_mut();
        let r = ffi_boundary!(&mut err, {
            if err.is_null() {
                panic!("boom");
            }
            Ok(())
        });
        assert_eq!(r, ballot_result::Panic);
        let msg = unsafe { std::ffi::CStr::from_ptr(ballot_error_message(err)) };
        assert!(msg.to_str().unwrap().contains("boom"), "{msg:?}");
        unsafe { ballot_error_free(err) };
    }
}
