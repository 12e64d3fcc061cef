//! `ballot_client`: connect, close, free.

use std::os::raw::c_char;

use ballot::blocking;

use crate::boundary::{arg, out_arg, str_arg};
use crate::handle::Boxed;
use crate::options::ballot_options;
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

impl Boxed for ballot_client {}

/// Connects to the backend that `url` names and starts its session. Blocks until
/// connected, at most the connect timeout.
///
/// URLs: `file:///var/run/ballot` (local, one host), `etcd://h1:2379[,h2:2379][/ns]`,
/// `zk://h1:2181[/chroot]`, `consul://h:8500[/ns]`; a backend not built into this
/// library is rejected with `BALLOT_RESULT_INVALID_ARGUMENT`.
///
/// Parameters: `url` is a NUL-terminated UTF-8 string, borrowed for the call.
/// `options` (made by `ballot_options_new`) may be NULL for the defaults; it is
/// borrowed for the call and stays the caller's. An option given both in the URL
/// and in `options` must have the same value in both (see `ballot_options`). On
/// success `*out` receives a new client, owned by the caller, to be freed with
/// `ballot_client_free`; on failure `*out` is not written.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` (`url` or `out` NULL);
/// `INVALID_UTF8`; `INVALID_ARGUMENT` (malformed URL, unknown option, value out of
/// range, an option that the URL and `options` give with different values, a
/// username without its password); `CONNECTION`; `TIMEOUT`; `AUTH`. With a
/// non-NULL `err_out`, a failure stores an error there that the caller frees with
/// `ballot_error_free`; no message shows a password, token or user name.
///
/// Thread: any; blocks the calling thread.
///
/// # Safety
/// Pointers are NULL or valid as described above.
#[no_mangle]
pub unsafe extern "C" fn ballot_client_connect(
    url: *const c_char,
    options: *const ballot_options,
    out: *mut *mut ballot_client,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY (all blocks): the caller passes valid or NULL pointers.
        let url = unsafe { str_arg(url, "url") }?;
        out_arg(out, "out")?;
        let options = match unsafe { ballot_options::borrow(options) } {
            Some(o) => o.options(),
            None => ballot::Options::default(),
        };
        let inner = blocking::Client::connect(url, options)?;
        unsafe { ballot_client { inner }.write_to(out) };
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
        // SAFETY: guaranteed by the caller.
        let Some(c) = (unsafe { ballot_client::take(client) }) else { return };
        // A failure to release the session cleanly has no one to report to: the
        // server expires the session after its TTL.
        let _ = c.inner.close();
    })
}
