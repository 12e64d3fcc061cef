//! `ballot_client`: connect, close, free.

use std::os::raw::c_char;
use std::time::Duration;

use ballot::blocking;

use crate::boundary::{arg, out_arg, str_arg};
use crate::result::{ballot_error, ballot_result};

/// A connection to one backend with one session (an etcd lease, a ZooKeeper
/// session, a Consul session, or a local holder), kept alive by the library.
///
/// Made by `ballot_client_connect`, freed by `ballot_client_free`. Every function
/// may be called on it from any thread, concurrently.
#[derive(Debug)]
pub struct ballot_client {
    pub(crate) inner: blocking::Client,
}

/// Client settings. Zero-initialize it (`ballot_client_options o = {0};`) and set
/// only what you need: a field left 0 keeps its default. Options given in the
/// backend URL's query (`ttl=`, `margin=`, `connect_timeout=`) override these.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ballot_client_options {
    /// Session TTL in milliseconds: how long the backend keeps the session of a
    /// silent client. 0: the default, 10000. Consul's minimum is 10000.
    pub ttl_ms: u64,
    /// Safety margin in milliseconds: leadership is reported lost at the send time
    /// of the last acknowledged keepalive + TTL - margin. 0: the default, TTL/5.
    /// Must be smaller than the TTL.
    pub safety_margin_ms: u64,
    /// How long `ballot_client_connect` may take before `BALLOT_RESULT_TIMEOUT`.
    /// 0: the default, 5000.
    pub connect_timeout_ms: u64,
    /// Non-zero: a leader that lost its leadership does not campaign again by
    /// itself. 0: the default, it joins the election again with its last value.
    pub no_auto_requeue: u8,
}

impl ballot_client_options {
    fn to_options(self) -> ballot::Options {
        let mut o = ballot::Options::default();
        if self.ttl_ms != 0 {
            o = o.with_ttl(Duration::from_millis(self.ttl_ms));
        }
        if self.safety_margin_ms != 0 {
            o = o.with_safety_margin(Duration::from_millis(self.safety_margin_ms));
        }
        if self.connect_timeout_ms != 0 {
            o = o.with_connect_timeout(Duration::from_millis(self.connect_timeout_ms));
        }
        o.with_auto_requeue(self.no_auto_requeue == 0)
    }
}

/// Connects to the backend that `url` names and starts its session. Blocks until
/// connected, at most the connect timeout.
///
/// URLs: `file:///var/run/ballot` (local, one host), `etcd://h1:2379[,h2:2379][/ns]`,
/// `zk://h1:2181[/chroot]`, `consul://h:8500[/ns]`; a backend not built into this
/// library is rejected with `BALLOT_RESULT_INVALID_ARGUMENT`.
///
/// Parameters: `url` is a NUL-terminated UTF-8 string, borrowed for the call.
/// `options` may be NULL for the defaults; it is borrowed for the call. On
/// success `*out` receives a new client, owned by the caller, to be freed with
/// `ballot_client_free`; on failure `*out` is not written.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` (`url` or `out` NULL);
/// `INVALID_UTF8`; `INVALID_ARGUMENT` (malformed URL, unknown option, value out of
/// range); `CONNECTION`; `TIMEOUT`; `AUTH`. With a non-NULL `err_out`, a failure
/// stores an error there that the caller frees with `ballot_error_free`.
///
/// Thread: any; blocks the calling thread.
///
/// # Safety
/// Pointers are NULL or valid as described above.
#[no_mangle]
pub unsafe extern "C" fn ballot_client_connect(
    url: *const c_char,
    options: *const ballot_client_options,
    out: *mut *mut ballot_client,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY (all blocks): the caller passes valid or NULL pointers.
        let url = unsafe { str_arg(url, "url") }?;
        out_arg(out, "out")?;
        let opts = unsafe { options.as_ref() }.copied().unwrap_or_default();
        let inner = blocking::Client::connect(url, opts.to_options())?;
        unsafe { *out = Box::into_raw(Box::new(ballot_client { inner })) };
        Ok(())
    })
}

/// Closes the client: resigns every election made from it, withdraws every
/// candidate, releases the session, and makes every later operation on the client
/// and its elections fail with `BALLOT_RESULT_CLOSED`. The handles stay valid and
/// must still be freed. Closing twice is fine.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; a backend error if the session
/// could not be released cleanly (it then expires on the server after its TTL).
///
/// Thread: any, including a callback; blocks the calling thread.
///
/// # Safety
/// `client` is NULL or a live client.
#[no_mangle]
pub unsafe extern "C" fn ballot_client_close(
    client: *mut ballot_client,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY: the caller passes a live client or NULL.
        let c = unsafe { arg(client, "client") }?;
        c.inner.close()?;
        Ok(())
    })
}

/// Closes the client as `ballot_client_close` does, then frees it.
///
/// Elections made from it stay valid handles (their operations then fail with
/// `BALLOT_RESULT_CLOSED`) and must still be freed with `ballot_election_free`,
/// in any order relative to this call.
///
/// Ownership: takes `client`; it must not be used afterwards. NULL: no-op.
/// Thread: any, including a callback; blocks until the session is released.
///
/// # Safety
/// `client` is NULL or a live client that no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn ballot_client_free(client: *mut ballot_client) {
    ffi_boundary_value!((), {
        if client.is_null() {
            return;
        }
        // SAFETY: it came from Box::into_raw in ballot_client_connect.
        let c = unsafe { Box::from_raw(client) };
        // A failure to release the session cleanly has no one to report to: the
        // server expires the session after its TTL.
        let _ = c.inner.close();
    })
}
