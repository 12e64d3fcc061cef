//! `ballot_options`: the settings of `ballot_client_connect`, opaque, with one
//! setter per option, so that options can be added without breaking the ABI
//! (wasmtime's `wasm_config_t`).

use std::os::raw::c_char;
use std::time::Duration;

use ballot::OptionValue;

use crate::boundary::{arg_mut, out_arg, secret_arg, str_arg};
use crate::handle::Boxed;
use crate::result::{ballot_error, ballot_result, Failure};

/// Settings for `ballot_client_connect`: made by `ballot_options_new` with every
/// option at its default, changed by the `ballot_options_set_*` functions, freed
/// by `ballot_options_free`.
///
/// The options are `ttl`, `safety_margin`, `connect_timeout`, `auto_requeue`,
/// `username`, `password`, `token`, `tls_ca`, `tls_cert` and `tls_key`; each has
/// the setter `ballot_options_set_<option>`. Setting an option again replaces its
/// value. A setter checks its value at once and leaves the options unchanged when
/// it refuses it; a token and a username or password exclude each other, so
/// setting one kind after the other is refused there too. What depends on
/// several options or on the URL (a margin below the TTL, a username with its
/// password, the URL agreeing with the options) is checked by
/// `ballot_client_connect`.
///
/// The URL and the options: the TTL, the margin, the connect timeout, the
/// credentials and the TLS files may also be given in the backend URL (`ttl=`,
/// `margin=`, `connect_timeout=`, `user:password@`, `TOKEN@`, `ca=`, `cert=`,
/// `key=`). Neither place overrides the other. An option given in one place is
/// used; one given in both with the same value is used too; one given in both
/// with different values makes `ballot_client_connect` fail with
/// `BALLOT_RESULT_INVALID_ARGUMENT`, and a message that names the option but
/// never shows a password, token or user name. So does `tls=0` in the URL beside
/// a `tls_*` option, and, on ZooKeeper, a `session_timeout=` in the URL that
/// differs from the `ttl` set here.
///
/// Threads: an options object may be used from any thread, but not from two at
/// once while one of them sets an option. `ballot_client_connect` only reads it,
/// so one options object may serve many connects, also concurrently.
// Every setter goes through the core's one parser of options
// (`ballot::Options::set`), so C takes the same options with the same checks as
// Python and Node; only the NULL, UTF-8 and empty checks of a C string are here.
#[derive(Debug, Default)]
pub struct ballot_options {
    inner: ballot::Options,
}

impl Boxed for ballot_options {}

impl ballot_options {
    /// The core's options, as set.
    pub(crate) fn options(&self) -> ballot::Options {
        self.inner.clone()
    }
}

/// The body of every setter: at the C boundary, sets option `name` of `options`
/// to the value that `value` makes (through the core's table); on any failure
/// nothing changes.
///
/// # Safety
/// `options` is NULL or a live options object that no other thread uses;
/// `err_out` is NULL or writable; `value` reads only what its setter's caller
/// guarantees.
unsafe fn set(
    options: *mut ballot_options,
    name: &str,
    value: impl FnOnce() -> Result<OptionValue, Failure>,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY: guaranteed by the caller.
        let o = unsafe { arg_mut(options, "options") }?;
        Ok(o.inner.set(name, value()?)?)
    })
}

fn millis(ms: u64) -> Result<OptionValue, Failure> {
    Ok(OptionValue::Duration(Duration::from_millis(ms)))
}

/// A string option's value: checked, not empty, and copied.
///
/// # Safety
/// `value` is NULL or a NUL-terminated string valid for the call.
unsafe fn text(value: *const c_char, what: &str, secret: bool) -> Result<OptionValue, Failure> {
    // SAFETY: guaranteed by the caller.
    let s = if secret { unsafe { secret_arg(value, what) } } else { unsafe { str_arg(value, what) } }?;
    if s.is_empty() {
        return Err(Failure::invalid(format!("{what} is empty")));
    }
    Ok(OptionValue::Text(s.to_string()))
}

/// Makes an options object with every option at its default. On success `*out`
/// receives it, owned by the caller, freed with `ballot_options_free`.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` (`out` NULL).
///
/// Thread: any; does not block.
///
/// # Safety
/// `out` and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_options_new(
    out: *mut *mut ballot_options,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        out_arg(out, "out")?;
        // SAFETY: checked above.
        unsafe { ballot_options::default().write_to(out) };
        Ok(())
    })
}

/// Frees an options object. Clients connected with it do not need it any more.
///
/// Ownership: takes `options`; it must not be used afterwards. NULL: no-op.
/// Thread: any, while no other thread uses `options`.
///
/// # Safety
/// `options` is NULL or an options object made by `ballot_options_new`, not yet
/// freed.
#[no_mangle]
pub unsafe extern "C" fn ballot_options_free(options: *mut ballot_options) {
    // SAFETY: guaranteed by the caller.
    ffi_boundary_value!((), { unsafe { ballot_options::free(options) } })
}

/// Sets the session TTL in milliseconds: how long the backend keeps the session
/// of a silent client. Default 10000; from 1000 (1 s) to 86400000 (24 h).
/// Consul's minimum is 10000; ZooKeeper's server may clamp it. The URL's `ttl=`
/// (or, on ZooKeeper, `session_timeout=`) must agree with it.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `INVALID_ARGUMENT` (out of
/// range; the options are unchanged).
///
/// Thread: any, while no other thread uses `options`; does not block.
///
/// # Safety
/// `options` is NULL or a live options object; `err_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_options_set_ttl(
    options: *mut ballot_options,
    ttl_ms: u64,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    // SAFETY: guaranteed by the caller.
    unsafe { set(options, "ttl", || millis(ttl_ms), err_out) }
}

/// Sets the safety margin in milliseconds: leadership is reported lost at the
/// send time of the last acknowledged keepalive + TTL - margin. Default TTL/5;
/// from 0 to 86400000 (24 h), and below the TTL (checked at connect). The URL's
/// `margin=` must agree with it.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `INVALID_ARGUMENT` (out of
/// range; the options are unchanged).
///
/// Thread: any, while no other thread uses `options`; does not block.
///
/// # Safety
/// `options` is NULL or a live options object; `err_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_options_set_safety_margin(
    options: *mut ballot_options,
    margin_ms: u64,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    // SAFETY: guaranteed by the caller.
    unsafe { set(options, "safety_margin", || millis(margin_ms), err_out) }
}

/// Sets how long `ballot_client_connect` may take before it fails with
/// `BALLOT_RESULT_TIMEOUT`, in milliseconds. Default 5000; from 1 to 3600000
/// (1 h). The URL's `connect_timeout=` must agree with it.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `INVALID_ARGUMENT` (out of
/// range; the options are unchanged).
///
/// Thread: any, while no other thread uses `options`; does not block.
///
/// # Safety
/// `options` is NULL or a live options object; `err_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_options_set_connect_timeout(
    options: *mut ballot_options,
    timeout_ms: u64,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    // SAFETY: guaranteed by the caller.
    unsafe { set(options, "connect_timeout", || millis(timeout_ms), err_out) }
}

/// Sets whether a leader that lost its leadership (say, because its session
/// expired) joins the election again with its last value. Default true. Such a
/// campaign rides out transient failures, each reported as a
/// `BALLOT_EVENT_KIND_ERROR` event.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`.
///
/// Thread: any, while no other thread uses `options`; does not block.
///
/// # Safety
/// `options` is NULL or a live options object; `err_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_options_set_auto_requeue(
    options: *mut ballot_options,
    on: bool,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    // SAFETY: guaranteed by the caller.
    unsafe { set(options, "auto_requeue", || Ok(OptionValue::Bool(on)), err_out) }
}

/// Sets the user name (etcd, ZooKeeper digest), given with
/// `ballot_options_set_password`. The URL's `user:password@` must be the same.
/// `username` is NUL-terminated UTF-8, not empty, and copied. It never appears
/// in an error message.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `INVALID_UTF8`;
/// `INVALID_ARGUMENT` (empty). On failure the options are unchanged.
///
/// Thread: any, while no other thread uses `options`; does not block.
///
/// # Safety
/// `options` is NULL or a live options object; `username` is NULL or a
/// NUL-terminated string; `err_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_options_set_username(
    options: *mut ballot_options,
    username: *const c_char,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    // SAFETY (both): guaranteed by the caller.
    unsafe { set(options, "username", || text(username, "username", true), err_out) }
}

/// Sets the password that goes with `ballot_options_set_username`. `password` is
/// NUL-terminated UTF-8, not empty, and copied; no error message ever shows it,
/// nor where it is not valid UTF-8.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `INVALID_UTF8`;
/// `INVALID_ARGUMENT` (empty). On failure the options are unchanged.
///
/// Thread: any, while no other thread uses `options`; does not block.
///
/// # Safety
/// `options` is NULL or a live options object; `password` is NULL or a
/// NUL-terminated string; `err_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_options_set_password(
    options: *mut ballot_options,
    password: *const c_char,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    // SAFETY (both): guaranteed by the caller.
    unsafe { set(options, "password", || text(password, "password", true), err_out) }
}

/// Sets a token (a Consul ACL token), instead of a username and password. The
/// URL's `TOKEN@` must be the same. `token` is NUL-terminated UTF-8, not empty,
/// and copied; no error message ever shows it.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `INVALID_UTF8`;
/// `INVALID_ARGUMENT` (empty). On failure the options are unchanged.
///
/// Thread: any, while no other thread uses `options`; does not block.
///
/// # Safety
/// `options` is NULL or a live options object; `token` is NULL or a
/// NUL-terminated string; `err_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_options_set_token(
    options: *mut ballot_options,
    token: *const c_char,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    // SAFETY (both): guaranteed by the caller.
    unsafe { set(options, "token", || text(token, "token", true), err_out) }
}

/// Sets the PEM file of the CA certificates that verify the server (etcd,
/// Consul), and turns TLS on. Without it TLS trusts the system's roots. The URL's
/// `ca=` must name the same file. `path` is NUL-terminated UTF-8, not empty, and
/// copied; the file is read at connect.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `INVALID_UTF8`;
/// `INVALID_ARGUMENT` (empty). On failure the options are unchanged.
///
/// Thread: any, while no other thread uses `options`; does not block.
///
/// # Safety
/// `options` is NULL or a live options object; `path` is NULL or a
/// NUL-terminated string; `err_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_options_set_tls_ca(
    options: *mut ballot_options,
    path: *const c_char,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    // SAFETY (both): guaranteed by the caller.
    unsafe { set(options, "tls_ca", || text(path, "tls_ca", false), err_out) }
}

/// Sets the PEM file of the client certificate for mutual TLS, and turns TLS on;
/// it needs `ballot_options_set_tls_key` too (checked at connect). The URL's
/// `cert=` must name the same file. `path` is NUL-terminated UTF-8, not empty,
/// and copied; the file is read at connect.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `INVALID_UTF8`;
/// `INVALID_ARGUMENT` (empty). On failure the options are unchanged.
///
/// Thread: any, while no other thread uses `options`; does not block.
///
/// # Safety
/// `options` is NULL or a live options object; `path` is NULL or a
/// NUL-terminated string; `err_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_options_set_tls_cert(
    options: *mut ballot_options,
    path: *const c_char,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    // SAFETY (both): guaranteed by the caller.
    unsafe { set(options, "tls_cert", || text(path, "tls_cert", false), err_out) }
}

/// Sets the PEM file of the client's private key for mutual TLS, and turns TLS
/// on; it needs `ballot_options_set_tls_cert` too (checked at connect). The URL's
/// `key=` must name the same file. `path` is NUL-terminated UTF-8, not empty, and
/// copied; the file is read at connect.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `INVALID_UTF8`;
/// `INVALID_ARGUMENT` (empty). On failure the options are unchanged.
///
/// Thread: any, while no other thread uses `options`; does not block.
///
/// # Safety
/// `options` is NULL or a live options object; `path` is NULL or a
/// NUL-terminated string; `err_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_options_set_tls_key(
    options: *mut ballot_options,
    path: *const c_char,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    // SAFETY (both): guaranteed by the caller.
    unsafe { set(options, "tls_key", || text(path, "tls_key", false), err_out) }
}
