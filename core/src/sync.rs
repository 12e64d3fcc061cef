//! Small synchronisation helpers shared by the engine and the backends.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: every critical section in ballot leaves its data
/// consistent, so a panic elsewhere (which poisons) must not make it unusable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
