//! The in-process backend (`memory://NAME`), for testing leader logic without a
//! server.
//!
//! - `store`: the elections of each `memory://NAME` of this process (per process:
//!   a forked child starts with none), FIFO queues of candidates whose front leads.
//! - `backend`: the `Backend`/`Entry` contract over a store, one session per client,
//!   and what a test does to a session (expire it, suspend and resume it).
//!
//! The public helpers that take a `Client` are `crate::memory` (`ballot::memory`):
//! a backend does not depend on the client.

mod backend;
mod store;

pub(crate) use backend::MemoryBackend;
