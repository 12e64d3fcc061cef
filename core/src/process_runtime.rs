//! A tokio runtime of one process that a forked child builds afresh: the
//! library's own runtime is one, and a binding that needs a runtime of its own
//! (Python's asyncio bridge, whose tasks wait for the GIL and so must not take
//! the library's workers) declares another, instead of copying this logic.

use std::sync::Mutex;

use tokio::runtime::{Handle, Runtime};

use crate::error::{Error, ErrorKind, Result};
use crate::sync::{lock, PerProcess};

/// A runtime built on first use in each process.
///
/// A forked child inherits the memory of the parent's runtime but none of its
/// threads, so it must not use it: the first use in a child builds a new one
/// (the old one is leaked, since dropping it would try to join threads that do
/// not exist in the child). The slot is per process *before* any lock is taken:
/// a lock that a parent's thread held at the fork would stay locked in the child.
///
/// Meant for a `static`; thread-safe. The runtime lives until the process exits.
pub struct ProcessRuntime {
    slot: PerProcess<Mutex<Option<&'static Runtime>>>,
    name: &'static str,
    build: fn() -> std::io::Result<Runtime>,
}

fn empty() -> Mutex<Option<&'static Runtime>> {
    Mutex::new(None)
}

impl ProcessRuntime {
    /// A runtime that `build` makes, once per process, on first use; `name` says
    /// which runtime failed to start in the error.
    pub const fn new(name: &'static str, build: fn() -> std::io::Result<Runtime>) -> ProcessRuntime {
        ProcessRuntime { slot: PerProcess::new(empty), name, build }
    }

    /// This process's runtime, built on the first call in this process.
    ///
    /// # Errors
    ///
    /// `Internal` when the runtime cannot be built (no thread could be started).
    pub fn get(&self) -> Result<&'static Runtime> {
        let mut slot = lock(self.slot.get());
        if let Some(rt) = *slot {
            return Ok(rt);
        }
        let rt = (self.build)()
            .map_err(|e| Error::new(ErrorKind::Internal, format!("could not start the {} runtime: {e}", self.name)))?;
        let rt: &'static Runtime = Box::leak(Box::new(rt));
        *slot = Some(rt);
        Ok(rt)
    }

    /// The handle of this process's runtime; see [`get`](Self::get).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn handle(&self) -> Result<Handle> {
        Ok(self.get()?.handle().clone())
    }

    /// The lock of the slot, for tests that fork while it is held.
    #[cfg(test)]
    pub(crate) fn slot(&self) -> &'static Mutex<Option<&'static Runtime>> {
        self.slot.get()
    }
}

impl std::fmt::Debug for ProcessRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessRuntime").field("name", &self.name).finish_non_exhaustive()
    }
}
