//! `ballot_leader`: a snapshot of an election's leader.

use std::ffi::CString;
use std::os::raw::c_char;

use crate::handle::Boxed;

/// The leader of an election as the backend recorded it when it was read: its
/// value, its term (fencing token) and its key.
///
/// Returned by `ballot_election_leader` (owned by the caller, freed with
/// `ballot_leader_free`) and lent to event callbacks (borrowed for the call only).
/// It is immutable, so it may be read from any thread.
#[derive(Debug)]
pub struct ballot_leader {
    value: Vec<u8>,
    term: u64,
    key: CString,
}

impl Boxed for ballot_leader {}

impl ballot_leader {
    pub(crate) fn new(l: &ballot::Leader) -> ballot_leader {
        let key = CString::new(l.key.replace('\0', "")).unwrap_or_default();
        ballot_leader { value: l.value.clone(), term: l.term, key }
    }

    pub(crate) fn term(&self) -> u64 {
        self.term
    }
}

/// The leader's term: the fencing token, strictly increasing over the successive
/// leaders of the election. Pass it to the resources the leader writes, so that
/// they can refuse a stale leader.
///
/// NULL: returns 0 (no real term is 0). Thread: any.
///
/// # Safety
/// `leader` is NULL or a live leader.
#[no_mangle]
pub unsafe extern "C" fn ballot_leader_term(leader: *const ballot_leader) -> u64 {
    // SAFETY: guaranteed by the caller.
    ffi_boundary_value!(0, { unsafe { ballot_leader::borrow(leader) }.map_or(0, |l| l.term) })
}

/// The leader's value: `*value_out` receives a pointer to its bytes and `*len_out`
/// their number. The bytes belong to `leader` and live as long as it does; they
/// are not NUL-terminated.
///
/// NULL: when `leader` is NULL, `*value_out` becomes NULL and `*len_out` 0; a NULL
/// `value_out` or `len_out` is skipped. Thread: any.
///
/// # Safety
/// `leader` is NULL or a live leader; `value_out` and `len_out` are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_leader_value(
    leader: *const ballot_leader,
    value_out: *mut *const u8,
    len_out: *mut usize,
) {
    ffi_boundary_value!((), {
        // SAFETY: guaranteed by the caller.
        let (p, n) = match unsafe { ballot_leader::borrow(leader) } {
            Some(l) => (l.value.as_ptr(), l.value.len()),
            None => (std::ptr::null(), 0),
        };
        if !value_out.is_null() {
            // SAFETY: guaranteed by the caller.
            unsafe { *value_out = p };
        }
        if !len_out.is_null() {
            // SAFETY: guaranteed by the caller.
            unsafe { *len_out = n };
        }
    })
}

/// The leader's key as the backend names it (etcd key, ZooKeeper node path, Consul
/// session, local holder id), NUL-terminated.
///
/// Ownership: the string belongs to `leader` and lives as long as it does.
/// NULL: returns NULL when `leader` is NULL. Thread: any.
///
/// # Safety
/// `leader` is NULL or a live leader.
#[no_mangle]
pub unsafe extern "C" fn ballot_leader_key(leader: *const ballot_leader) -> *const c_char {
    // SAFETY: guaranteed by the caller.
    ffi_boundary_value!(std::ptr::null(), {
        unsafe { ballot_leader::borrow(leader) }.map_or(std::ptr::null(), |l| l.key.as_ptr())
    })
}

/// Frees a leader returned by `ballot_election_leader`. Never call it on the
/// leader lent to an event callback.
///
/// Ownership: takes `leader`. NULL: no-op. Thread: any.
///
/// # Safety
/// `leader` is NULL or a leader owned by the caller and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn ballot_leader_free(leader: *mut ballot_leader) {
    // SAFETY: guaranteed by the caller.
    ffi_boundary_value!((), { unsafe { ballot_leader::free(leader) } })
}
