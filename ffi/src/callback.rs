//! Which handle's callback the calling thread is running now, so that
//! `ballot_election_free` called from inside a callback of the same election
//! refuses with `BALLOT_RESULT_REENTRANT` instead of waiting for itself.
//!
//! A handle is known here only by its address, so that this module depends on no
//! handle type.

use std::cell::Cell;

thread_local! {
    /// The address of the handle whose callback this thread runs, or 0.
    static CALLBACK_OF: Cell<usize> = const { Cell::new(0) };
}

/// Whether the calling thread is inside a callback of the handle at `owner`.
pub(crate) fn in_callback_of<T>(owner: *const T) -> bool {
    !owner.is_null() && CALLBACK_OF.with(|c| c.get() == owner as usize)
}

/// Marks the calling thread as running a callback of the handle at `owner` until
/// the guard drops.
pub(crate) fn enter<T>(owner: *const T) -> CallbackGuard {
    let prev = CALLBACK_OF.with(|c| c.replace(owner as usize));
    CallbackGuard { prev }
}

/// Restores the mark that was there before [`enter`].
pub(crate) struct CallbackGuard {
    prev: usize,
}

impl Drop for CallbackGuard {
    fn drop(&mut self) {
        CALLBACK_OF.with(|c| c.set(self.prev));
    }
}
