//! How the Consul backend waits for a key to change without one HTTP connection per
//! wait.
//!
//! A Consul blocking query (`GET /v1/kv/KEY?index=I`) holds an HTTP/1.1
//! connection until the key changes or the wait passes, and the agent refuses
//! connections beyond `limits.http_max_conns_per_client` (200 by default) per
//! client address. A leader waits on two keys per election (`.lock`, to learn of a
//! loss, and `.epoch`), a waiting candidate on one, an observer on one: one
//! connection each would cap a client at about 100 elections. So a client keeps:
//!
//! - **Direct blocking queries**, one per wait, while at most [`DEFAULT_DIRECT`]
//!   are open (the budget; `BALLOT_CONSUL_DIRECT_WATCHES=N` sets another, read at
//!   connect; 0 sends every wait through the shared watch, which the tests use).
//!   They wake their waiter within one round trip. A quarter of the budget is kept
//!   for the waits a handoff depends on (the queue's head on `.lock`, and the
//!   leader's successor on its key): leaders' loss and epoch watches and observers
//!   take at most three quarters.
//! - **One shared blocking query** for every other wait of the client: a
//!   `?recurse` read of the longest common prefix of the keys waited on (for
//!   elections named `app/e1` ... `app/e9999`, `<ns>/app/e`), run by one task only
//!   while it has waiters. On each answer it compares each waited key's
//!   `ModifyIndex` (or its absence) with what the waiter last read, and wakes only
//!   the waiters whose key changed; each then does its own plain read, as a direct
//!   waiter does after its query returns. A release therefore still wakes only the
//!   successor: no herd.
//!
//! **Index discipline.** The shared query blocks on the `X-Consul-Index` of its
//! previous answer (`next_index`). A waiter that registers after the query in
//! flight started may have read its key before a change that query has already
//! seen, so a registration makes the next query a plain read (the one in flight is
//! dropped), and a waiter is judged only by answers of queries started after it
//! registered. An index that goes backwards (the store was restored, or the agent
//! lost its data) wakes every waiter under the prefix. A change of prefix (a waiter
//! outside it) starts again with a plain read.
//!
//! **What a churny namespace costs.** Every answer carries every key under the
//! prefix (Consul has no filter on KV reads, and a keys-only read has no indexes):
//! about 200 bytes per key, four keys per election (`.lock`, `.term`, `.epoch`, a
//! candidate), so about 8 MB for 10,000 elections. Any write under the prefix ends
//! the blocking query, so while elections under it change often the shared watch
//! reads the whole prefix again and again. It is paced: the next query starts no
//! sooner than [`MIN_GAP`](super::MIN_GAP) after the previous one, nor sooner than
//! the previous answer's size at [`SHARED_BYTES_PER_SEC`] (20 MB/s: 0.4 s after an
//! 8 MB answer), which bounds what it costs the agent and this process, and is
//! also the extra delay a wait beyond the budget may see in a busy namespace. A
//! quiet namespace costs one answer per blocking wait (30 s). Keeping unrelated,
//! busy keys out of the common prefix (a namespace per application) keeps the
//! answers small.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use super::api::{next_index, Api};
use super::{MAX_BACKOFF, MIN_GAP, WAIT};
use crate::error::{Error, ErrorKind, Result};
use crate::sync::lock;

/// Direct blocking queries of one client open at once, unless
/// `BALLOT_CONSUL_DIRECT_WATCHES` says otherwise. With the plain requests'
/// bound (`api::MAX_PLAIN_REQUESTS`), the shared query and the session calls, a
/// client stays under 140 connections, well under Consul's default of 200 per
/// client address.
pub(super) const DEFAULT_DIRECT: usize = 64;
/// The environment variable that sets the budget of direct blocking queries.
pub(super) const DIRECT_ENV: &str = "BALLOT_CONSUL_DIRECT_WATCHES";
/// The pace of the shared query: the next one starts no sooner than the previous
/// answer's size at this rate.
pub(super) const SHARED_BYTES_PER_SEC: f64 = 20.0 * 1024.0 * 1024.0;

/// Waits resolved by the shared query in this process (for tests).
static SHARED_WAKES: AtomicU64 = AtomicU64::new(0);

/// For tests: how many waits of Consul clients in this process the shared
/// blocking query has woken.
#[doc(hidden)]
pub fn shared_wakes() -> u64 {
    SHARED_WAKES.load(Ordering::Relaxed)
}

/// The budget of direct blocking queries: `BALLOT_CONSUL_DIRECT_WATCHES`, or
/// [`DEFAULT_DIRECT`].
///
/// # Errors
///
/// `InvalidArgument` when the variable is set but not a whole number.
pub(super) fn direct_budget() -> Result<usize> {
    match std::env::var(DIRECT_ENV) {
        Err(_) => Ok(DEFAULT_DIRECT),
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| Error::invalid(format!("{DIRECT_ENV}={v:?} is not a number of blocking queries (0 or more)"))),
    }
}

/// The blocking queries of one client: the budget of direct ones and the shared one.
#[derive(Debug)]
pub(super) struct Watches {
    budget: usize,
    in_use: Arc<AtomicUsize>,
    shared: Arc<Shared>,
}

/// One direct blocking query of the budget, given back when dropped.
#[derive(Debug)]
pub(super) struct Direct(Arc<AtomicUsize>);

impl Drop for Direct {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Watches {
    pub(super) fn new(api: Api, budget: usize) -> Watches {
        let shared = Arc::new(Shared { api, state: Mutex::new(State::default()), restart: Notify::new() });
        Watches { budget, in_use: Arc::new(AtomicUsize::new(0)), shared }
    }

    /// A direct blocking query, if the budget has room. `urgent` waits (a handoff
    /// depends on them) may use the whole budget, others three quarters of it.
    pub(super) fn direct(&self, urgent: bool) -> Option<Direct> {
        let limit = if urgent { self.budget } else { self.budget - self.budget / 4 };
        let mut n = self.in_use.load(Ordering::SeqCst);
        loop {
            if n >= limit {
                return None;
            }
            match self.in_use.compare_exchange(n, n + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Some(Direct(self.in_use.clone())),
                Err(m) => n = m,
            }
        }
    }

    /// Waits through the shared query until `key` differs from `seen` (its modify
    /// index as last read; None: absent). It does not time out.
    ///
    /// # Errors
    ///
    /// `Closed` after [`Watches::close`]; the shared query's own error when it is
    /// not worth retrying (`Auth`, `InvalidArgument`). Transient errors are retried
    /// inside.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future removes the wait.
    pub(super) async fn changed(&self, key: &str, seen: Option<u64>) -> Result<()> {
        self.shared.changed(key, seen).await
    }

    /// Ends the shared query; pending and later waits get `Closed`.
    pub(super) fn close(&self) {
        let mut s = lock(&self.shared.state);
        s.closed = true;
        for (_, w) in s.waiters.drain() {
            let _ = w.tx.send(Err(Error::closed()));
        }
        drop(s);
        self.shared.restart.notify_one();
    }
}

#[derive(Debug)]
struct Shared {
    api: Api,
    state: Mutex<State>,
    /// Ends the blocking query in flight: a waiter registered, the last one left,
    /// or the client closed.
    restart: Notify,
}

#[derive(Debug, Default)]
struct State {
    waiters: HashMap<u64, Waiter>,
    next_id: u64,
    /// Queries started so far.
    started: u64,
    /// A waiter registered since the query in flight started: the next one is a
    /// plain read.
    fresh: bool,
    /// The prefix of the query in flight.
    prefix: Option<String>,
    running: bool,
    closed: bool,
}

#[derive(Debug)]
struct Waiter {
    key: String,
    seen: Option<u64>,
    /// The first query (by start count) whose answer may judge this waiter.
    from: u64,
    tx: oneshot::Sender<Result<()>>,
}

/// Removes a wait whose future was dropped.
struct Deregister<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Deregister<'_> {
    fn drop(&mut self) {
        let mut s = lock(&self.shared.state);
        if s.waiters.remove(&self.id).is_some() && s.waiters.is_empty() {
            drop(s);
            // Nobody waits any more: end the query rather than hold a connection.
            self.shared.restart.notify_one();
        }
    }
}

impl Shared {
    async fn changed(self: &Arc<Self>, key: &str, seen: Option<u64>) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut s = lock(&self.state);
            if s.closed {
                return Err(Error::closed());
            }
            let id = s.next_id;
            s.next_id += 1;
            let from = s.started + 1;
            s.waiters.insert(id, Waiter { key: key.to_string(), seen, from, tx });
            s.fresh = true;
            if s.running {
                self.restart.notify_one();
            } else {
                match crate::runtime::spawn(self.clone().run()) {
                    Ok(_) => s.running = true,
                    Err(e) => {
                        s.waiters.remove(&id);
                        return Err(e);
                    }
                }
            }
            id
        };
        let _gone = Deregister { shared: self, id };
        rx.await.unwrap_or_else(|_| Err(Error::closed()))
    }

    /// Resolves when the query in flight should end: a registration, no waiter
    /// left, or closed. (A wake-up from an earlier cause is ignored.)
    async fn interrupted(&self) {
        loop {
            self.restart.notified().await;
            let s = lock(&self.state);
            if s.fresh || s.waiters.is_empty() || s.closed {
                return;
            }
        }
    }

    /// The shared query's loop; it ends when no waiter is left.
    async fn run(self: Arc<Self>) {
        let mut index = 0u64;
        // The prefix that `index` belongs to.
        let mut answered: Option<String> = None;
        let mut last_start: Option<Instant> = None;
        let mut gap = MIN_GAP;
        let mut backoff = Duration::from_millis(100);
        loop {
            if let Some(t) = last_start {
                tokio::time::sleep_until(t + gap).await;
            }
            let (prefix, seq, plain) = {
                let mut s = lock(&self.state);
                if s.waiters.is_empty() || s.closed {
                    s.running = false;
                    s.prefix = None;
                    return;
                }
                let prefix = common_prefix(s.waiters.values().map(|w| w.key.as_str()));
                let plain = s.fresh || index == 0 || answered.as_deref() != Some(prefix.as_str());
                s.fresh = false;
                s.started += 1;
                s.prefix = Some(prefix.clone());
                (prefix, s.started, plain)
            };
            last_start = Some(Instant::now());
            let read = self.api.kv_index_list(&prefix, if plain { None } else { Some((index, WAIT)) });
            let result = if plain {
                read.await
            } else {
                tokio::select! {
                    r = read => r,
                    () = self.interrupted() => continue,
                }
            };
            let (entries, got, bytes) = match result {
                Ok(r) => r,
                Err(e) if matches!(e.kind(), ErrorKind::Auth | ErrorKind::InvalidArgument) => {
                    // Retrying cannot help: the waiters report it, as a direct query's would.
                    {
                        let mut s = lock(&self.state);
                        let judged: Vec<u64> =
                            s.waiters.iter().filter(|(_, w)| w.from <= seq).map(|(i, _)| *i).collect();
                        for i in judged {
                            if let Some(w) = s.waiters.remove(&i) {
                                let _ = w.tx.send(Err(Error::new(e.kind(), e.message().to_string())));
                            }
                        }
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
                Err(_) => {
                    // Session health covers outages; the waiters keep waiting.
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            gap = MIN_GAP.max(Duration::from_secs_f64(bytes as f64 / SHARED_BYTES_PER_SEC));
            let same_prefix = answered.as_deref() == Some(prefix.as_str());
            let reset = same_prefix && got < index;
            index = if same_prefix { next_index(index, got) } else { next_index(0, got) };
            answered = Some(prefix.clone());
            let now: HashMap<&str, u64> = entries.iter().map(|e| (e.key.as_str(), e.modify_index)).collect();
            self.wake(&now, &prefix, seq, reset);
        }
    }

    /// Wakes the waiters that the answer `now` (of query `seq`, over `prefix`)
    /// judges changed; `reset`: the index went backwards, so all of them.
    fn wake(&self, now: &HashMap<&str, u64>, prefix: &str, seq: u64, reset: bool) {
        let mut s = lock(&self.state);
        let woken: Vec<u64> = s
            .waiters
            .iter()
            .filter(|(_, w)| {
                w.from <= seq && w.key.starts_with(prefix) && (reset || now.get(w.key.as_str()).copied() != w.seen)
            })
            .map(|(i, _)| *i)
            .collect();
        for i in woken {
            if let Some(w) = s.waiters.remove(&i) {
                SHARED_WAKES.fetch_add(1, Ordering::Relaxed);
                let _ = w.tx.send(Ok(()));
            }
        }
    }
}

/// The longest common prefix of `keys` (on a character boundary).
fn common_prefix<'a>(mut keys: impl Iterator<Item = &'a str>) -> String {
    let Some(first) = keys.next() else { return String::new() };
    let mut len = first.len();
    for k in keys {
        len = first.as_bytes()[..len].iter().zip(k.as_bytes()).take_while(|(a, b)| a == b).count();
        if len == 0 {
            break;
        }
    }
    while !first.is_char_boundary(len) {
        len -= 1;
    }
    first[..len].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefix_of_keys() {
        assert_eq!(common_prefix(["ns/a/e1/.lock", "ns/a/e2/.epoch", "ns/a/e10/.lock"].into_iter()), "ns/a/e");
        assert_eq!(common_prefix(["x/.lock"].into_iter()), "x/.lock");
        assert_eq!(common_prefix(["a", "b"].into_iter()), "");
        assert_eq!(common_prefix(std::iter::empty()), "");
        // "é" is two bytes that share their first: the prefix stops before it.
        assert_eq!(common_prefix(["pé", "pè"].into_iter()), "p");
    }

    #[test]
    fn budget_keeps_a_quarter_for_urgent_waits() {
        let api = Api::new("http://127.0.0.1:1".into(), None, reqwest::Client::builder()).unwrap();
        let w = Watches::new(api, 8);
        let others: Vec<_> = std::iter::from_fn(|| w.direct(false)).collect();
        assert_eq!(others.len(), 6);
        let urgent: Vec<_> = std::iter::from_fn(|| w.direct(true)).collect();
        assert_eq!(urgent.len(), 2);
        drop(others);
        assert!(w.direct(false).is_some());
        let none = Watches::new(Api::new("http://127.0.0.1:1".into(), None, reqwest::Client::builder()).unwrap(), 0);
        assert!(none.direct(true).is_none() && none.direct(false).is_none());
    }
}
