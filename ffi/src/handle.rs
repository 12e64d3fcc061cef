//! How every handle is owned: the one place where a handle becomes a pointer for C
//! and a pointer from C becomes a handle again.
//!
//! In the spirit of rustls-ffi's `Castable` (`box_castable!`, `to_boxed_mut_ptr`,
//! `free_box`): every opaque type of the header (`ballot_client`,
//! `ballot_election`, `ballot_leader`, `ballot_error`, `ballot_options`) is a
//! `Box` that libballot allocates and the caller gives back to that type's
//! `_free`. A type says so once, with `impl Boxed for T {}`; the functions take
//! and free handles only through this trait, never with `Box::into_raw` or
//! `Box::from_raw` written by hand.
//!
//! The rules, the same for each handle:
//!
//! - made by this library (`_new`, `_connect`, an `out` or `err_out` argument) and
//!   owned by the caller from then on;
//! - lent by the library to a function that takes `*const T` or `*mut T`, for that
//!   call only ([`Boxed::borrow`], [`Boxed::borrow_mut`]);
//! - given back exactly once to its `_free` ([`Boxed::free`]), where NULL is a
//!   no-op;
//! - a handle lent *to* a callback (the `leader` of an event, the `error` of a
//!   campaign's completion) is borrowed for that call and never freed by the
//!   caller: it is not a `Box` of this trait.

/// A handle that libballot allocates as a `Box` and hands to C as `*mut Self`.
pub(crate) trait Boxed: Sized {
    /// Moves `self` to the heap and gives up ownership to the caller.
    fn into_raw(self) -> *mut Self {
        Box::into_raw(Box::new(self))
    }

    /// Writes a new handle to `*out`. The caller checked that `out` is not NULL
    /// before doing any work (outputs are written only on success).
    ///
    /// # Safety
    /// `out` is a writable, non-NULL pointer.
    unsafe fn write_to(self, out: *mut *mut Self) {
        debug_assert!(!out.is_null());
        // SAFETY: guaranteed by the caller.
        unsafe { *out = self.into_raw() };
    }

    /// The handle behind `p` for the duration of a call, or None for NULL.
    ///
    /// # Safety
    /// `p` is NULL or a live handle of this type made by [`into_raw`](Boxed::into_raw).
    unsafe fn borrow<'a>(p: *const Self) -> Option<&'a Self> {
        // SAFETY: guaranteed by the caller.
        unsafe { p.as_ref() }
    }

    /// The handle behind `p`, mutably, for the duration of a call; None for NULL.
    ///
    /// # Safety
    /// `p` is NULL or a live handle of this type that no other thread uses now.
    unsafe fn borrow_mut<'a>(p: *mut Self) -> Option<&'a mut Self> {
        // SAFETY: guaranteed by the caller.
        unsafe { p.as_mut() }
    }

    /// Takes back ownership of a handle that C gives up, or None for NULL.
    ///
    /// # Safety
    /// `p` is NULL or a live handle of this type, not used again afterwards.
    unsafe fn take(p: *mut Self) -> Option<Box<Self>> {
        // SAFETY: guaranteed by the caller: it came from `into_raw`.
        (!p.is_null()).then(|| unsafe { Box::from_raw(p) })
    }

    /// Drops the handle that C gives up; NULL is a no-op.
    ///
    /// # Safety
    /// As [`take`](Boxed::take).
    unsafe fn free(p: *mut Self) {
        // SAFETY: guaranteed by the caller.
        drop(unsafe { Self::take(p) });
    }
}
