//! `ballot_participants`: a snapshot of an election's candidates, in queue order.

use std::ffi::CString;
use std::os::raw::c_char;

use crate::boundary::{arg, out_arg};
use crate::handle::Boxed;
use crate::result::{ballot_error, ballot_result, Failure};

/// The candidates of an election as one read of the backend saw them, in queue
/// order, the leader first: for each, its key, its value and whether it leads
/// (only the first one can).
///
/// Returned by `ballot_election_participants`, owned by the caller and freed with
/// `ballot_participants_free`. Read it with `ballot_participants_len` and the
/// accessors, which take an index from 0 to `len - 1`. It is immutable, so it
/// may be read from any thread.
#[derive(Debug)]
pub struct ballot_participants {
    items: Vec<Item>,
}

#[derive(Debug)]
struct Item {
    key: CString,
    value: Vec<u8>,
    leader: bool,
}

impl Boxed for ballot_participants {}

impl ballot_participants {
    pub(crate) fn new(list: &[ballot::Participant]) -> ballot_participants {
        let items = list
            .iter()
            .map(|p| Item {
                key: CString::new(p.key.replace('\0', "")).unwrap_or_default(),
                value: p.value.clone(),
                leader: p.leader,
            })
            .collect();
        ballot_participants { items }
    }

    fn item(&self, index: usize) -> Result<&Item, Failure> {
        self.items.get(index).ok_or_else(|| {
            Failure::invalid(format!("index {index} is out of range: the list has {} participants", self.items.len()))
        })
    }
}

/// The number of participants in the list (0 when nobody campaigns).
///
/// NULL: returns 0. Thread: any.
///
/// # Safety
/// `list` is NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn ballot_participants_len(list: *const ballot_participants) -> usize {
    // SAFETY: guaranteed by the caller.
    ffi_boundary_value!(0, { unsafe { ballot_participants::borrow(list) }.map_or(0, |l| l.items.len()) })
}

/// The key of participant `index` as the backend names it (for the leader, the
/// key `ballot_leader_key` gives), NUL-terminated, into `*key_out`.
///
/// Ownership: the string belongs to `list` and lives as long as it does.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` for a NULL `list` or `key_out`;
/// `INVALID_ARGUMENT` when `index` is not below `ballot_participants_len`.
/// `*key_out` is written only on success. Thread: any.
///
/// # Safety
/// `list` is NULL or a live list; `key_out` and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_participants_key(
    list: *const ballot_participants,
    index: usize,
    key_out: *mut *const c_char,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY (all blocks): the caller passes valid or NULL pointers.
        let l = unsafe { arg(list, "list") }?;
        out_arg(key_out, "key_out")?;
        let it = l.item(index)?;
        unsafe { *key_out = it.key.as_ptr() };
        Ok(())
    })
}

/// The value of participant `index`: `*value_out` receives a pointer to its
/// bytes and `*len_out` their number (the leader's latest value; empty for a
/// `consul lock` holder that stored none). The bytes belong to `list` and live
/// as long as it does; they are not NUL-terminated.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` for a NULL `list`, `value_out`
/// or `len_out`; `INVALID_ARGUMENT` when `index` is not below
/// `ballot_participants_len`. Outputs are written only on success. Thread: any.
///
/// # Safety
/// `list` is NULL or a live list; the outputs and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_participants_value(
    list: *const ballot_participants,
    index: usize,
    value_out: *mut *const u8,
    len_out: *mut usize,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY (all blocks): the caller passes valid or NULL pointers.
        let l = unsafe { arg(list, "list") }?;
        out_arg(value_out, "value_out")?;
        out_arg(len_out, "len_out")?;
        let it = l.item(index)?;
        unsafe {
            *value_out = it.value.as_ptr();
            *len_out = it.value.len();
        }
        Ok(())
    })
}

/// Whether participant `index` leads, into `*leader_out` (only the first one
/// can; a first participant that does not is next in line while nobody leads).
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` for a NULL `list` or
/// `leader_out`; `INVALID_ARGUMENT` when `index` is not below
/// `ballot_participants_len`. `*leader_out` is written only on success.
/// Thread: any.
///
/// # Safety
/// `list` is NULL or a live list; `leader_out` and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ballot_participants_is_leader(
    list: *const ballot_participants,
    index: usize,
    leader_out: *mut bool,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY (all blocks): the caller passes valid or NULL pointers.
        let l = unsafe { arg(list, "list") }?;
        out_arg(leader_out, "leader_out")?;
        let it = l.item(index)?;
        unsafe { *leader_out = it.leader };
        Ok(())
    })
}

/// Frees a list returned by `ballot_election_participants`; the keys and values
/// read from it are gone with it.
///
/// Ownership: takes `list`. NULL: no-op. Thread: any.
///
/// # Safety
/// `list` is NULL or a list owned by the caller and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn ballot_participants_free(list: *mut ballot_participants) {
    // SAFETY: guaranteed by the caller.
    ffi_boundary_value!((), { unsafe { ballot_participants::free(list) } })
}
