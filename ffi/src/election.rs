//! `ballot_election`: campaign (blocking and with a completion callback), proclaim,
//! resign, leader, end, state, events and cancellation.

use std::ffi::c_void;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use ballot::blocking::{self, CancelToken, Subscription};
use ballot::State;

use crate::boundary::{arg, bytes_arg, out_arg, str_arg};
use crate::callback;
use crate::client::ballot_client;
use crate::event::{ballot_event_cb, ballot_user_data_free, Sink};
use crate::handle::Boxed;
use crate::leader::ballot_leader;
use crate::participants::ballot_participants;
use crate::result::{ballot_error, ballot_result, Failure};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One participant in one election: it campaigns, proclaims, resigns, reads the
/// leader, ends the election and reports events.
///
/// Made by `ballot_election_new`, freed by `ballot_election_free`. Every function
/// but `ballot_election_free` may be called on it from any thread, concurrently
/// (a blocking campaign on one thread and `ballot_election_cancel` on another, for
/// example).
#[derive(Debug)]
pub struct ballot_election {
    inner: blocking::Election,
    /// The token that the campaigns running now wait on; `ballot_election_cancel`
    /// fires it and puts a fresh one in its place.
    cancel: Mutex<CancelToken>,
    events: Mutex<Option<Subscription>>,
    /// Threads of `ballot_election_campaign_async`, joined by `_free`.
    campaigns: Mutex<Vec<JoinHandle<()>>>,
}

impl Boxed for ballot_election {}

/// Where an election handle stands.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ballot_state {
    /// Not a candidate.
    Idle = 0,
    /// Waiting to win.
    Campaigning = 1,
    /// Leading, and the session is healthy.
    Leader = 2,
    /// Was leading, but the session's health is in doubt: do not act as leader.
    Suspended = 3,
    /// The election was ended. Terminal.
    Ended = 4,
    /// The handle or its client was closed. Terminal.
    Closed = 5,
}

impl ballot_state {
    fn from_state(s: State) -> ballot_state {
        match s {
            State::Idle => ballot_state::Idle,
            State::Campaigning => ballot_state::Campaigning,
            State::Leader => ballot_state::Leader,
            State::Suspended => ballot_state::Suspended,
            State::Ended => ballot_state::Ended,
            // Closed, and any state the core adds later: the handle is of no use.
            _ => ballot_state::Closed,
        }
    }
}

/// The completion callback of `ballot_election_campaign_async`.
///
/// `result` is `BALLOT_RESULT_OK` when elected, with `term` the new term; otherwise
/// `term` is 0 and `error` describes the failure (borrowed for the call; do not
/// free it). It is called exactly once per accepted campaign, on a thread owned
/// by libballot (`ballot-campaign`). It may call any libballot function, except
/// `ballot_election_free` on the same election, which returns
/// `BALLOT_RESULT_REENTRANT`.
pub type ballot_done_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, result: ballot_result, term: u64, error: *const ballot_error)>;

/// Makes a handle on the election `name` of `client`. Nothing is written to the
/// backend until the handle is used. Several handles on one name are independent
/// participants.
///
/// `name` is a `/`-separated path of printable UTF-8, at most 256 bytes, with no
/// empty segment; it is borrowed for the call. On success `*out` receives a new
/// election owned by the caller, freed with `ballot_election_free`; it keeps what
/// it needs of the client, so it may outlive `client`.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `INVALID_UTF8`;
/// `INVALID_ARGUMENT` (bad name); `CLOSED` (client closed).
///
/// Thread: any; does not block.
///
/// # Safety
/// Pointers are NULL or valid as described above.
#[no_mangle]
pub unsafe extern "C" fn ballot_election_new(
    client: *const ballot_client,
    name: *const c_char,
    out: *mut *mut ballot_election,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY (all blocks): the caller passes valid or NULL pointers.
        let c = unsafe { arg(client, "client") }?;
        let name = unsafe { str_arg(name, "name") }?;
        out_arg(out, "out")?;
        let inner = c.inner.election(name)?;
        let e = ballot_election {
            inner,
            cancel: Mutex::new(CancelToken::new()),
            events: Mutex::new(None),
            campaigns: Mutex::new(Vec::new()),
        };
        unsafe { e.write_to(out) };
        Ok(())
    })
}

/// Frees an election handle: stops its event callback (waiting for a running call
/// to return, then calling its `user_data_free` once), cancels a pending
/// `ballot_election_campaign_async` (its callback gets `BALLOT_RESULT_CANCELLED`
/// before this returns), and withdraws the candidate, resigning if it leads.
///
/// Ownership: takes `election` unless the result is `BALLOT_RESULT_REENTRANT`.
/// NULL: no-op, `BALLOT_RESULT_OK`.
///
/// Results: `BALLOT_RESULT_OK`; `BALLOT_RESULT_REENTRANT` when called from inside
/// this election's own event callback or campaign completion callback, where it
/// would wait for itself: then nothing is done and the handle stays valid (and
/// `*err_out`, when `err_out` is not NULL, receives an error to free).
///
/// Thread: any other thread may free; no other thread may be using `election`
/// (a blocking campaign on it must have returned). Blocks until the above is done.
///
/// # Safety
/// `election` is NULL or a live election.
#[no_mangle]
pub unsafe extern "C" fn ballot_election_free(
    election: *mut ballot_election,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        if callback::in_callback_of(election) {
            return Err(Failure::new(
                ballot_result::Reentrant,
                "ballot_election_free was called from a callback of the same election",
            ));
        }
        // SAFETY: the caller gives up a live election, or NULL.
        let Some(e) = (unsafe { ballot_election::take(election) }) else { return Ok(()) };
        // The event callback goes first, so that no event of the teardown reaches
        // a caller who is freeing its user_data.
        // The lock is released before waiting: the callback may itself be waiting
        // for it (in ballot_election_on_event).
        let sub = lock(&e.events).take();
        if let Some(sub) = sub {
            sub.cancel();
        }
        // The token stays cancelled, so a campaign that a completion callback
        // starts from here on ends at once; those threads are joined too.
        lock(&e.cancel).cancel();
        loop {
            let threads = std::mem::take(&mut *lock(&e.campaigns));
            if threads.is_empty() {
                break;
            }
            for t in threads {
                let _ = t.join();
            }
        }
        e.inner.close();
        Ok(())
    })
}

/// Campaigns with `value` and blocks until this handle leads, `timeout_ms` passes,
/// or the campaign fails. On timeout or cancellation the candidate is withdrawn and
/// leaves nothing behind on the backend.
///
/// `value` points to `len` bytes (1 byte up to the backend's limit: 1 MiB, 512 KiB
/// on Consul), borrowed for the call; `(NULL, 0)` is the empty value, which is
/// refused. `timeout_ms` < 0 waits for ever. On success `*term_out` (may be NULL)
/// receives the term of this leadership.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `INVALID_ARGUMENT` (empty or
/// oversized value, already campaigning or leading); `TIMEOUT`; `CANCELLED`
/// (`ballot_election_cancel`, or a `ballot_election_resign` from another thread);
/// `ENDED`; `CLOSED`; `SESSION_LOST`; `CONNECTION`; `AUTH`; `BACKEND`.
///
/// Thread: any; blocks the calling thread. Another thread may cancel it with
/// `ballot_election_cancel`.
///
/// # Safety
/// Pointers are NULL or valid as described above.
#[no_mangle]
pub unsafe extern "C" fn ballot_election_campaign(
    election: *const ballot_election,
    value: *const u8,
    len: usize,
    timeout_ms: i64,
    term_out: *mut u64,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY (all blocks): the caller passes valid or NULL pointers.
        let e = unsafe { arg(election, "election") }?;
        let value = unsafe { bytes_arg(value, len, "value") }?;
        let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
        let token = lock(&e.cancel).clone();
        let lead = e.inner.campaign_with(value, timeout, Some(&token))?;
        if !term_out.is_null() {
            unsafe { *term_out = lead.term() };
        }
        Ok(())
    })
}

struct Done {
    cb: unsafe extern "C" fn(*mut c_void, ballot_result, u64, *const ballot_error),
    user_data: *mut c_void,
    owner: *const ballot_election,
}

// SAFETY: the contract of ballot_election_campaign_async is that `user_data` is
// handed to a library thread; `owner` is only compared, never dereferenced there.
unsafe impl Send for Done {}

/// Starts a campaign with `value` and returns at once; `cb` is called exactly once
/// with the outcome, on a thread owned by libballot. The campaign waits for ever
/// unless cancelled (`ballot_election_cancel`, `ballot_election_resign`, or
/// `ballot_election_free`, which calls `cb` with `BALLOT_RESULT_CANCELLED` before
/// it returns).
///
/// `value` is copied before the call returns. `user_data` is passed to `cb` as is;
/// libballot never frees it (free it in `cb`).
///
/// Results: `BALLOT_RESULT_OK` when the campaign was started (every later outcome,
/// including an invalid value or a campaign already running, goes to `cb`, and
/// not to `err_out`); `NULL_PARAMETER` (`election` or `cb` NULL, or `value` NULL
/// with `len` > 0) and `INTERNAL` (no thread could be started), in which cases
/// `cb` is never called.
///
/// Thread: any; does not block.
///
/// # Safety
/// Pointers are NULL or valid as described above; `election` stays live until
/// `cb` has been called (`ballot_election_free` guarantees that).
#[no_mangle]
pub unsafe extern "C" fn ballot_election_campaign_async(
    election: *const ballot_election,
    value: *const u8,
    len: usize,
    cb: ballot_done_cb,
    user_data: *mut c_void,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY (all blocks): the caller passes valid or NULL pointers.
        let e = unsafe { arg(election, "election") }?;
        let value = unsafe { bytes_arg(value, len, "value") }?.to_vec();
        let cb = cb.ok_or_else(|| Failure::null("cb"))?;
        let done = Done { cb, user_data, owner: election };
        let token = lock(&e.cancel).clone();
        let inner = e.inner.clone();
        let mut threads = lock(&e.campaigns);
        threads.retain(|t| !t.is_finished());
        let t = std::thread::Builder::new()
            .name("ballot-campaign".into())
            .spawn(move || {
                let done = done;
                let r = inner.campaign_with(&value, None, Some(&token));
                let (code, term, err) = match r {
                    Ok(lead) => (ballot_result::Ok, lead.term(), None),
                    Err(e) => {
                        let f = Failure::from(e);
                        (f.code, 0, Some(ballot_error::from(f)))
                    }
                };
                let errp = err.as_ref().map_or(std::ptr::null(), |e| e as *const ballot_error);
                let _guard = callback::enter(done.owner);
                // SAFETY: the callback was given by the caller for exactly this use.
                unsafe { (done.cb)(done.user_data, code, term, errp) };
            })
            .map_err(|e| Failure::new(ballot_result::Internal, format!("could not start a campaign thread: {e}")))?;
        threads.push(t);
        Ok(())
    })
}

/// Cancels the campaigns of this handle that are running now, blocking or
/// asynchronous: they end with `BALLOT_RESULT_CANCELLED` and their candidates are
/// withdrawn. A campaign started after this call is not affected. Cancelling when
/// nothing runs is fine.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`.
///
/// Thread: any, and meant to be called from another thread than the one blocked in
/// `ballot_election_campaign`; does not block.
///
/// # Safety
/// `election` is NULL or a live election.
#[no_mangle]
pub unsafe extern "C" fn ballot_election_cancel(
    election: *const ballot_election,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY: the caller passes a live election or NULL.
        let e = unsafe { arg(election, "election") }?;
        let old = std::mem::take(&mut *lock(&e.cancel));
        old.cancel();
        Ok(())
    })
}

/// Replaces the leader's value; the term does not change. `value` points to `len`
/// bytes, borrowed for the call.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `NOT_LEADER` unless this handle
/// leads; `INVALID_ARGUMENT` (empty or oversized value); `ENDED`; `CLOSED`; backend
/// errors.
///
/// Thread: any; blocks the calling thread.
///
/// # Safety
/// Pointers are NULL or valid as described above.
#[no_mangle]
pub unsafe extern "C" fn ballot_election_proclaim(
    election: *const ballot_election,
    value: *const u8,
    len: usize,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY (all blocks): the caller passes valid or NULL pointers.
        let e = unsafe { arg(election, "election") }?;
        let value = unsafe { bytes_arg(value, len, "value") }?;
        e.inner.proclaim(value)?;
        Ok(())
    })
}

/// Gives up leadership, or withdraws a waiting candidate (whose pending campaign
/// then ends with `BALLOT_RESULT_CANCELLED`).
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `NOT_LEADER` when neither leading
/// nor campaigning; `ENDED`; `CLOSED`; backend errors (the session's expiry then
/// removes the record later).
///
/// Thread: any; blocks the calling thread.
///
/// # Safety
/// `election` is NULL or a live election.
#[no_mangle]
pub unsafe extern "C" fn ballot_election_resign(
    election: *const ballot_election,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY: the caller passes a live election or NULL.
        let e = unsafe { arg(election, "election") }?;
        e.inner.resign()?;
        Ok(())
    })
}

/// Reads the election's current leader from the backend. On success `*out`
/// receives a leader owned by the caller, freed with `ballot_leader_free`.
///
/// Results: `BALLOT_RESULT_OK`; `NO_LEADER` when the election has no leader
/// (`*out` is not written); `NULL_PARAMETER`; `ENDED`; `CLOSED`; backend errors.
///
/// Thread: any; blocks the calling thread.
///
/// # Safety
/// Pointers are NULL or valid as described above.
#[no_mangle]
pub unsafe extern "C" fn ballot_election_leader(
    election: *const ballot_election,
    out: *mut *mut ballot_leader,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY (all blocks): the caller passes valid or NULL pointers.
        let e = unsafe { arg(election, "election") }?;
        out_arg(out, "out")?;
        match e.inner.leader()? {
            Some(l) => {
                unsafe { ballot_leader::new(&l).write_to(out) };
                Ok(())
            }
            None => Err(Failure::new(ballot_result::NoLeader, "no_leader: the election has no leader")),
        }
    })
}

/// Lists the election's candidates in queue order, the leader first, from one
/// consistent read of the backend where it allows (see the README). On success
/// `*out` receives a list owned by the caller, freed with
/// `ballot_participants_free`; an election without candidates gives an empty
/// list (length 0), not an error.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `ENDED` once this handle saw
/// the election ended; `CLOSED`; `TIMEOUT`; backend errors.
///
/// Thread: any; blocks the calling thread.
///
/// # Safety
/// Pointers are NULL or valid as described above.
#[no_mangle]
pub unsafe extern "C" fn ballot_election_participants(
    election: *const ballot_election,
    out: *mut *mut ballot_participants,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY (all blocks): the caller passes valid or NULL pointers.
        let e = unsafe { arg(election, "election") }?;
        out_arg(out, "out")?;
        let list = e.inner.participants()?;
        unsafe { ballot_participants::new(&list).write_to(out) };
        Ok(())
    })
}

/// Ends the election for every participant: each gets a `BALLOT_EVENT_KIND_ENDED`
/// event, leaders step down, and later operations on their handles fail with
/// `BALLOT_RESULT_ENDED`. This handle is ended too. Terms keep increasing if the
/// name is used again by new handles. Ending twice is fine.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER`; `CLOSED`; backend errors.
///
/// Thread: any; blocks the calling thread.
///
/// # Safety
/// `election` is NULL or a live election.
#[no_mangle]
pub unsafe extern "C" fn ballot_election_end(
    election: *const ballot_election,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY: the caller passes a live election or NULL.
        let e = unsafe { arg(election, "election") }?;
        e.inner.end()?;
        Ok(())
    })
}

/// The handle's state now, into `*state_out`. A leader whose session has passed its
/// local deadline reads as `BALLOT_STATE_SUSPENDED` at once.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` (`*state_out` is not written).
///
/// Thread: any; does not block.
///
/// # Safety
/// Pointers are NULL or valid as described above.
#[no_mangle]
pub unsafe extern "C" fn ballot_election_state(
    election: *const ballot_election,
    state_out: *mut ballot_state,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY (all blocks): the caller passes valid or NULL pointers.
        let e = unsafe { arg(election, "election") }?;
        out_arg(state_out, "state_out")?;
        unsafe { *state_out = ballot_state::from_state(e.inner.state()) };
        Ok(())
    })
}

/// The static name of a state (`"idle"`, `"campaigning"`, `"leader"`,
/// `"suspended"`, `"ended"`, `"closed"`), or `"unknown"` for a value that is not a
/// state. `state` is a `ballot_state` value; any `uint32_t` is accepted.
///
/// Ownership: static; do not free. Thread: any. Never fails.
#[no_mangle]
pub extern "C" fn ballot_state_str(state: u32) -> *const c_char {
    let s: &'static [u8] = match state {
        0 => b"idle\0",
        1 => b"campaigning\0",
        2 => b"leader\0",
        3 => b"suspended\0",
        4 => b"ended\0",
        5 => b"closed\0",
        _ => b"unknown\0",
    };
    s.as_ptr().cast()
}

/// Registers `cb` to receive every event of this handle from now on, in order.
/// A registration made before is replaced: it stops (its running call, if any,
/// returns first) and its `user_data_free` is called, before this returns (or,
/// when called from inside that callback, right after the callback returns).
/// Events that the old callback had not yet received are not delivered to it; an
/// event that happens during the replacement may reach both callbacks.
///
/// `user_data` is passed to `cb` as is. `user_data_free` (may be NULL) is called
/// exactly once with `user_data`, when nothing can call `cb` any more: when this
/// registration is replaced or the election is freed. Ownership of `user_data` on
/// failure: when this returns an error, `user_data_free` is never called and
/// `user_data` stays the caller's.
///
/// Results: `BALLOT_RESULT_OK`; `NULL_PARAMETER` (`election` or `cb` NULL);
/// `INTERNAL` (the event thread could not be started).
///
/// Thread: any. `cb` runs on the client's event thread, owned by libballot; see
/// `ballot_event_cb`.
///
/// # Safety
/// Pointers are NULL or valid as described above; `user_data` may be used from the
/// event thread.
#[no_mangle]
pub unsafe extern "C" fn ballot_election_on_event(
    election: *const ballot_election,
    cb: ballot_event_cb,
    user_data: *mut c_void,
    user_data_free: ballot_user_data_free,
    err_out: *mut *mut ballot_error,
) -> ballot_result {
    ffi_boundary!(err_out, {
        // SAFETY: the caller passes a live election or NULL.
        let e = unsafe { arg(election, "election") }?;
        let cb = cb.ok_or_else(|| Failure::null("cb"))?;
        // If registering fails, the closure is dropped inside on_event; the
        // documented contract is that user_data_free is then not called, so the
        // sink releases user_data only once it is armed here, on success.
        let armed = Arc::new(AtomicBool::new(false));
        let mut sink = Sink::new(cb, user_data, user_data_free, election.cast(), armed.clone());
        let sub = e.inner.on_event(move |ev| sink.deliver(ev))?;
        armed.store(true, Ordering::SeqCst);
        // The old registration is stopped outside the lock: stopping waits for its
        // running callback, which may be calling this very function.
        let old = lock(&e.events).replace(sub);
        if let Some(old) = old {
            old.cancel();
        }
        Ok(())
    })
}
