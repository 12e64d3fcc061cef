//! Testing your own leader logic without a server: the `memory://` backend and
//! what a test can do to its sessions.
//!
//! `memory://NAME` names an election store that lives in this process. Every
//! client connected with the same `NAME` shares its elections; another name is
//! another store, so parallel tests that each use their own name do not meet.
//! A URL path is a namespace, as on the other backends (`memory://test/app`).
//! The store behaves as the server backends do: candidates queue in the order
//! they joined (FIFO), the front one leads, terms grow by one per leader (also
//! across `end()`), `end()` ends every participant, values are bytes up to 1 MiB,
//! and election names follow the one naming rule of every backend.
//!
//! Each client has its own session, which nothing expires by time (the URL takes
//! no `ttl` or `margin`). A test drives it instead:
//!
//! - [`expire_session`]: the session expires, as a server expires one whose client
//!   went silent. Every handle that led reports `Lost { reason: SessionLost }`, its
//!   candidates leave every election (the next in each queue leads), and the
//!   client starts a new session, under which handles with auto-requeue (the
//!   default) campaign again at the back of the queue.
//! - [`suspend_session`] and [`resume_session`]: the connection drops and comes
//!   back while the session lives on. Leaders report `Suspended`, then
//!   `Reconnected`; the store keeps every candidate meanwhile, so nobody else can
//!   win (a real server would expire the session after its TTL: call
//!   [`expire_session`] for that).
//!
//! The state is per process: a process started by the test (or a child made by
//! `fork()`) has its own, empty stores, and a client made before a `fork()` fails
//! with `Closed` in the child. A store lives as long as the process.
//!
//! [`use_current_runtime`] lets tokio's paused time drive the library's own
//! timers as well, in a `#[tokio::test(start_paused = true)]`.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> ballot::Result<()> {
//! use ballot::{Client, Event, LostReason, Options};
//!
//! let client = Client::connect("memory://doc-example", Options::default()).await?;
//! let election = client.election("svc")?;
//! let mut events = election.events();
//! let first = election.campaign("node-1").await?;
//!
//! ballot::memory::expire_session(&client)?;
//! // From here on the old leadership is not current (the handle itself may
//! // already lead again: with auto-requeue it campaigns at once under the new
//! // session, and nobody else is queued)...
//! assert!(!first.is_current());
//! // ...`Lost` follows, then `Elected` under the new session, with a new term.
//! let mut lost = None;
//! while let Some(ev) = events.recv().await {
//!     match ev {
//!         Event::Lost { reason } => lost = Some(reason),
//!         Event::Elected { term } if term > first.term() => break,
//!         _ => {}
//!     }
//! }
//! assert_eq!(lost, Some(LostReason::SessionLost));
//! # Ok(()) }
//! ```

use std::marker::PhantomData;

use crate::backend::memory::MemoryBackend;
use crate::client::Client;
use crate::error::{Error, ErrorKind, Result};

/// The memory backend of `client`, or why there is none.
fn memory_of<'a>(client: &'a Client, what: &str) -> Result<&'a MemoryBackend> {
    if client.is_closed() {
        return Err(Error::new(ErrorKind::Closed, format!("{what}: the client is closed")));
    }
    client.backend().as_any().and_then(|a| a.downcast_ref::<MemoryBackend>()).ok_or_else(|| {
        Error::invalid(format!("{what} works on memory:// clients only; this client is connected to {}", client.url()))
    })
}

/// Makes the session of `client` (a `memory://` client) expire now, as a server
/// expires the session of a client that went silent, and starts its next session.
///
/// In this order: every handle of `client` stops reading `Leader` (it reads
/// `Suspended` until its `Lost` event); the session's candidates leave every
/// election of the store in one step, so the next candidate of each queue leads;
/// a new session begins. Each handle that led gets `Lost { reason: SessionLost }`;
/// a pending `campaign` goes on under the new session (or fails with
/// `SessionLost` when auto-requeue is off). With auto-requeue on (the default),
/// each handle that led campaigns again, at the back of the queue. The events
/// arrive in the background, in each handle's order: wait for them on the
/// handles' event streams.
///
/// # Errors
///
/// `InvalidArgument` when `client` is not connected to `memory://`; `Closed` after
/// `client.close()`, or in a child forked after `client` connected.
///
/// # Threading
///
/// Takes a short lock of the store and never waits: it may be called from any
/// thread, from async code, and from an event callback.
pub fn expire_session(client: &Client) -> Result<()> {
    memory_of(client, "expire_session")?.expire()
}

/// Drops the connection of `client` (a `memory://` client) while its session
/// lives on: each handle that leads reports `Suspended` and must not act as the
/// leader. Its candidates stay in the store, so nobody else wins; new campaigns
/// wait. [`resume_session`] brings the connection back; [`expire_session`]
/// expires the session, as a server does once the TTL has passed.
///
/// # Errors
///
/// As [`expire_session`].
///
/// # Threading
///
/// As [`expire_session`].
pub fn suspend_session(client: &Client) -> Result<()> {
    memory_of(client, "suspend_session")?.suspend()
}

/// Brings back the connection that [`suspend_session`] dropped: each handle that
/// was suspended checks that its candidate still leads and reports `Reconnected`.
/// Does nothing when the connection is up.
///
/// # Errors
///
/// As [`expire_session`].
///
/// # Threading
///
/// As [`expire_session`].
pub fn resume_session(client: &Client) -> Result<()> {
    memory_of(client, "resume_session")?.resume()
}

/// Runs ballot's background work on the calling thread's tokio runtime, which must
/// be a current-thread runtime (`#[tokio::test]`'s default), until the returned
/// guard is dropped.
///
/// Without it, ballot runs its work on a runtime of its own, whose clock does not
/// pause. With it, `#[tokio::test(start_paused = true)]` (tokio's `test-util`
/// feature) drives the library's timers too (retry pauses, timeouts), and a test
/// that waits for something that never comes fails at once on its own
/// `tokio::time::timeout` instead of hanging: paused time jumps ahead only when
/// every task, ballot's included, is idle.
///
/// Meant for `memory://` clients: with a server backend, the network's real
/// delays and the paused clock do not mix (sessions would expire by the paused
/// clock while requests are in flight).
///
/// # Errors
///
/// `InvalidArgument` when called outside a tokio runtime or on a multi-thread
/// runtime (its tasks run on other threads, which this thread cannot lend).
///
/// # Threading
///
/// Applies to the calling thread only, where the runtime runs its tasks. While
/// the guard lives, the blocking API ([`crate::blocking`]) fails with `Internal` on
/// this thread instead of waiting for work that this very thread would have to
/// run. Tasks started meanwhile stay on the runtime after the guard is dropped.
pub fn use_current_runtime() -> Result<CurrentRuntime> {
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| Error::invalid("use_current_runtime must be called inside a tokio runtime"))?;
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread {
        return Err(Error::invalid(
            "use_current_runtime needs a current-thread tokio runtime (#[tokio::test] without flavor = \
             \"multi_thread\"); a multi-thread runtime runs its tasks on other threads",
        ));
    }
    let previous = crate::runtime::lend_current(Some(handle));
    Ok(CurrentRuntime { previous, _this_thread: PhantomData })
}

/// The guard of [`use_current_runtime`]: ballot's background work started from
/// this thread runs on this thread's runtime while it lives. Dropping it restores
/// what was in force before. Not `Send`: it belongs to the thread that made it.
#[must_use = "ballot uses the current runtime only while the guard lives"]
#[derive(Debug)]
pub struct CurrentRuntime {
    previous: Option<tokio::runtime::Handle>,
    _this_thread: PhantomData<*const ()>,
}

impl Drop for CurrentRuntime {
    fn drop(&mut self) {
        crate::runtime::lend_current(self.previous.take());
    }
}
