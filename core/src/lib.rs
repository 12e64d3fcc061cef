//! ballot: leader election over etcd, ZooKeeper, Consul and a local single-host
//! backend, with one API.
//!
//! - [`Client`] connects to a backend URL (`file:///dir`, `etcd://h:2379`,
//!   `zk://h:2181`, `consul://h:8500`) and owns one session, kept alive by the
//!   library.
//! - [`Election`] campaigns, proclaims, resigns, reads and observes the leader, and
//!   ends the election for everyone.
//! - Every leader has a `term`: a fencing token that strictly increases over the
//!   successive leaders of an election.
//! - Loss of leadership is reported (`Suspended`, then `Lost`) no later than the
//!   earliest moment the backend could let another candidate win.
//! - [`blocking`] offers the same operations with timeouts to code without an async
//!   runtime; the C ABI and the Python and Node bindings build on it.
//! - `memory://NAME` is an in-process backend for testing leader logic without a
//!   server; `ballot::memory` makes its sessions expire.
//! - [`metrics`] holds Prometheus metrics of every client and election handle
//!   (a typed snapshot and the text format); [`logging`] routes log records to
//!   surfaces without a `tracing` subscriber.
//! - [`surface`] is the one table of error kinds, event kinds and options that
//!   every surface (C, Python, Node, the CLI) derives its names from.
//!
//! All background work runs on a runtime owned by the library, so the async API
//! works from any executor.
//!
//! # Examples
//!
//! ```
//! # fn main() -> ballot::Result<()> {
//! # let dir = std::env::temp_dir().join(format!("ballot-doctest-{}", std::process::id()));
//! # let url = format!("file://{}", dir.display());
//! # let rt = tokio::runtime::Runtime::new().unwrap();
//! # rt.block_on(async {
//! let client = ballot::Client::connect(&url, ballot::Options::default()).await?;
//! let election = client.election("svc")?;
//! let lead = election.campaign(b"node-1").await?;
//! assert_eq!(election.leader().await?.map(|l| l.term), Some(lead.term()));
//! election.proclaim(b"node-1 v2").await?;
//! election.resign().await?;
//! client.close().await?;
//! # Ok::<_, ballot::Error>(())
//! # })?;
//! # std::fs::remove_dir_all(dir).ok();
//! # Ok(()) }
//! ```

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![deny(unsafe_op_in_unsafe_fn)]

mod backend;
pub mod blocking;
mod cancel;
mod client;
mod connection;
mod election;
mod error;
pub mod logging;
#[cfg(feature = "memory")]
pub mod memory;
pub mod metrics;
mod model;
mod options;
mod process_runtime;
mod runtime;
mod session;
#[cfg(feature = "postgres")]
pub mod postgres {
    //! The PostgreSQL backend's schema as SQL, for teams whose applications may
    //! not run DDL: `ballot pg-schema` prints [`schema_script`]'s result. The
    //! backend itself needs nothing from here; URL and behaviour are in the
    //! crate's documentation of backends.
    #[doc(hidden)]
    pub use crate::backend::postgres::sql::schema_script_to as __schema_script_to;
    pub use crate::backend::postgres::sql::{schema_script, LATEST_VERSION};
}
pub mod surface;
mod sync;
mod url;

pub use cancel::CancelToken;
pub use client::Client;
pub use election::{Election, Events, Leadership, Observe};
pub use error::{Error, ErrorKind, Result};
pub use model::{Event, Leader, LostReason, Participant, State};
pub use options::{default_backend_url, Credentials, Options, TlsOptions};
pub use surface::{EventKind, OptionInfo, OptionType, OptionValue, OPTIONS};
pub use url::MAX_NAME_LEN;

/// For tests only: acquire attempts of the Consul backend on one election key.
#[cfg(feature = "consul")]
#[doc(hidden)]
pub use backend::consul::acquire_attempts as __consul_acquire_attempts;
#[cfg(feature = "consul")]
#[doc(hidden)]
pub use backend::consul::shared_wakes as __consul_shared_wakes;

/// For the bindings only: a process-wide value that a forked child gets afresh.
#[doc(hidden)]
pub use sync::PerProcess as __PerProcess;

/// For the bindings only: a tokio runtime that a forked child builds afresh.
#[doc(hidden)]
pub use process_runtime::ProcessRuntime as __ProcessRuntime;

/// The version of this library (the workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod tests {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        assert_send_sync::<crate::Client>();
        assert_send_sync::<crate::Election>();
        assert_send_sync::<crate::Leadership>();
        assert_send_sync::<crate::Leader>();
        assert_send_sync::<crate::Participant>();
        assert_send_sync::<crate::Error>();
        assert_send_sync::<crate::Event>();
        assert_send_sync::<crate::Options>();
        assert_send_sync::<crate::blocking::Client>();
        assert_send_sync::<crate::blocking::Election>();
        assert_send_sync::<crate::blocking::CancelToken>();
        assert_send_sync::<crate::OptionValue>();
        assert_send_sync::<crate::__ProcessRuntime>();
    }
}
