//! The backends, the contract they follow, and the registry that picks one.
//!
//! - `contract.rs`: the [`Backend`] and [`Entry`] traits. A backend depends on
//!   them, on the shared types below the engine (`model.rs`, `options.rs`,
//!   `url.rs`, `error.rs`, `session.rs`) and on small utilities, never on the
//!   engine (`client.rs`, `election.rs`) nor on another backend.
//! - `registry.rs`: URL scheme -> backend; the engine connects through it.
//! - one module per backend, each behind its cargo feature. (The test helpers of
//!   memory://, which take a `Client`, are `crate::memory`, above the client.)

mod contract;
pub(crate) mod registry;

#[cfg(feature = "consul")]
pub(crate) mod consul;
#[cfg(feature = "etcd")]
pub(crate) mod etcd;
#[cfg(feature = "local")]
pub(crate) mod local;
#[cfg(feature = "memory")]
pub(crate) mod memory;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "zookeeper")]
pub(crate) mod zookeeper;

pub(crate) use contract::{Backend, Entry, EpochStream, Snapshot, SnapshotStream};
