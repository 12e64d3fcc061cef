//! The C ABI of ballot: `libballot.so` and `libballot.a`, described by
//! `include/ballot.h`.
//!
//! This crate is a leaf: it converts between C and the blocking facade of the
//! `ballot` core (`ballot::blocking`) and holds no election logic of its own.
//!
//! Conventions that every exported function follows:
//!
//! - every fallible function returns a `ballot_result` (`BALLOT_RESULT_OK` is 0)
//!   and takes a trailing `ballot_error **err_out` that may be NULL; on failure
//!   and only then, `*err_out` receives an error the caller frees with
//!   `ballot_error_free`;
//! - outputs are written only on success;
//! - every pointer is checked: NULL gives `BALLOT_RESULT_NULL_PARAMETER`;
//! - strings are NUL-terminated UTF-8: invalid UTF-8 gives
//!   `BALLOT_RESULT_INVALID_UTF8`;
//! - every body runs inside a panic boundary: a panic gives `BALLOT_RESULT_PANIC`
//!   and never unwinds into C;
//! - every handle is a `Box` made by the library and given back to its `_free`,
//!   through the one trait in `handle.rs`;
//! - callbacks run on threads owned by the library, never on a caller's thread.
//!
//! The functions are written out by hand (no macro generates an `extern` item) so
//! that cbindgen reads them without expanding macros.

#![warn(missing_docs, missing_debug_implementations)]
#![deny(unsafe_op_in_unsafe_fn)]
// The C names (`ballot_client`, `BALLOT_RESULT_OK`) are the public contract.
#![allow(non_camel_case_types)]

// Layers, each file using only files of the layers before it: `handle` and
// `callback` (no crate imports); `result`; `boundary`; `error`, `leader`,
// `options`, `log`, `metrics`, `participants`; `event` (leader); `client` (options); `election` (client, event).
mod callback;
mod handle;
mod result;
#[macro_use]
mod boundary;
mod client;
mod election;
mod error;
mod event;
mod leader;
mod log;
mod metrics;
mod options;
mod participants;

pub use client::ballot_client;
pub use election::{ballot_done_cb, ballot_election, ballot_state};
pub use event::{ballot_event, ballot_event_cb, ballot_event_kind, ballot_lost_reason, ballot_user_data_free};
pub use leader::ballot_leader;
pub use log::{ballot_log_cb, ballot_log_level};
pub use metrics::{ballot_metric_type, ballot_metrics};
pub use options::ballot_options;
pub use participants::ballot_participants;
pub use result::{ballot_error, ballot_result};

use std::os::raw::c_char;

/// The version of libballot as a static NUL-terminated string, for example
/// `"0.1.0"`. It equals the `BALLOT_VERSION` macro of the header the program was
/// compiled with when the header and the library match.
///
/// Ownership: the string is static; do not free it. Thread: any. Never fails.
#[no_mangle]
pub extern "C" fn ballot_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
