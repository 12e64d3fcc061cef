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
//! reads the whole prefix again and again (while 10,000 elections campaign, the
//! agent sends answers of up to 8 MB back to back). It is paced: the next query
//! starts no sooner than [`MIN_GAP`](super::MIN_GAP) after the previous one, nor
//! sooner than the previous answer's size at [`SHARED_BYTES_PER_SEC`] (20 MB/s:
//! 0.4 s after an 8 MB answer), which bounds what it costs the agent and this
//! process, and is also the extra delay a wait beyond the budget may see in a busy
//! namespace. The answer is read object by object as it arrives and never held
//! whole, so its size costs time, not memory. A quiet namespace costs one answer
//! per blocking wait (30 s). Keeping unrelated, busy keys out of the common prefix
//! (a namespace per application) keeps the answers small.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use super::api::{next_index, Api, KeyIndex};
use super::{MAX_BACKOFF, MIN_GAP, WAIT};
use crate::error::{Error, ErrorKind, Result};
use crate::sync::lock;

/// Direct blocking queries of one client open at once, unless
/// `BALLOT_CONSUL_DIRECT_WATCHES` says otherwise. With the plain requests'
/// bound (`api::MAX_PLAIN_REQUESTS`, 32), the shared query, the session calls and
/// 16 idle connections, a client stays near 120 connections (reqwest may open a
/// few more while one frees up), well under Consul's default of 200 per
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
    budget_from(std::env::var(DIRECT_ENV))
}

/// The budget that the variable's value gives: the default when it is unset, an
/// `InvalidArgument` error (never a silent default) when it is not a number.
fn budget_from(v: std::result::Result<String, std::env::VarError>) -> Result<usize> {
    match v {
        Err(std::env::VarError::NotPresent) => Ok(DEFAULT_DIRECT),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(Error::invalid(format!("{DIRECT_ENV} is not valid UTF-8; expected a number of blocking queries")))
        }
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
        s.wake_where("", |_| Some(Err(Error::closed())));
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
    /// The waiters of each key (kept small: a client may have 20,000).
    keys: HashMap<Box<str>, Vec<Waiter>>,
    /// How many waiters `keys` holds.
    waiting: usize,
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
    id: u64,
    seen: Option<u64>,
    /// The first query (by start count) whose answer may judge this waiter.
    from: u64,
    /// The last query whose answer held the key.
    present: u64,
    tx: Option<oneshot::Sender<Result<()>>>,
}

impl Waiter {
    fn resolve(&mut self, result: Result<()>) {
        if result.is_ok() {
            SHARED_WAKES.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(result);
        }
    }
}

impl State {
    fn insert(&mut self, key: &str, seen: Option<u64>) -> (u64, oneshot::Receiver<Result<()>>) {
        let (tx, rx) = oneshot::channel();
        let id = self.next_id;
        self.next_id += 1;
        let w = Waiter { id, seen, from: self.started + 1, present: 0, tx: Some(tx) };
        match self.keys.get_mut(key) {
            Some(ws) => ws.push(w),
            None => {
                self.keys.insert(key.into(), vec![w]);
            }
        }
        self.waiting += 1;
        (id, rx)
    }

    fn remove(&mut self, key: &str, id: u64) -> bool {
        let Some(ws) = self.keys.get_mut(key) else { return false };
        let Some(i) = ws.iter().position(|w| w.id == id) else { return false };
        ws.swap_remove(i);
        if ws.is_empty() {
            self.keys.remove(key);
        }
        self.waiting -= 1;
        true
    }

    /// Resolves (and removes) the waiters under `prefix` for which `pick` gives
    /// a result.
    fn wake_where(&mut self, prefix: &str, mut pick: impl FnMut(&Waiter) -> Option<Result<()>>) {
        let mut woken = 0;
        for (k, ws) in self.keys.iter_mut() {
            if !k.starts_with(prefix) {
                continue;
            }
            let mut i = 0;
            while i < ws.len() {
                match pick(&ws[i]) {
                    Some(r) => {
                        ws.swap_remove(i).resolve(r);
                        woken += 1;
                    }
                    None => i += 1,
                }
            }
        }
        if woken > 0 {
            self.keys.retain(|_, ws| !ws.is_empty());
            self.waiting -= woken;
        }
    }

    /// One key of the answer of query `seq`: wakes its judged waiters that last
    /// read another modify index (or the key absent).
    fn saw(&mut self, seq: u64, key: &str, modify_index: u64) {
        let Some(ws) = self.keys.get_mut(key) else { return };
        let mut i = 0;
        while i < ws.len() {
            let w = &mut ws[i];
            if w.from <= seq {
                w.present = seq;
                if w.seen != Some(modify_index) {
                    ws.swap_remove(i).resolve(Ok(()));
                    self.waiting -= 1;
                    continue;
                }
            }
            i += 1;
        }
        if ws.is_empty() {
            self.keys.remove(key);
        }
    }

    /// The answer of query `seq` is complete: wakes its judged waiters under
    /// `prefix` whose key it did not hold although they last read it present.
    fn finished(&mut self, seq: u64, prefix: &str) {
        self.wake_where(prefix, |w| (w.from <= seq && w.present != seq && w.seen.is_some()).then_some(Ok(())));
    }
}

/// Removes a wait whose future was dropped.
struct Deregister<'a> {
    shared: &'a Shared,
    key: &'a str,
    id: u64,
}

impl Drop for Deregister<'_> {
    fn drop(&mut self) {
        let mut s = lock(&self.shared.state);
        if s.remove(self.key, self.id) && s.waiting == 0 {
            drop(s);
            // Nobody waits any more: end the query rather than hold a connection.
            self.shared.restart.notify_one();
        }
    }
}

/// Cuts a JSON array of objects, arriving in chunks, into its objects, keeping
/// only the object being read: an answer of the shared query (megabytes for
/// thousands of elections) is never held whole.
#[derive(Debug, Default)]
struct Objects {
    buf: Vec<u8>,
    depth: u32,
    in_str: bool,
    esc: bool,
}

impl Objects {
    /// Feeds `chunk`; calls `f` with every object of the top-level array it completes.
    fn feed(&mut self, chunk: &[u8], mut f: impl FnMut(&[u8])) {
        for &b in chunk {
            if self.depth >= 2 {
                self.buf.push(b);
            }
            if self.in_str {
                if self.esc {
                    self.esc = false;
                } else if b == b'\\' {
                    self.esc = true;
                } else if b == b'"' {
                    self.in_str = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_str = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    if self.depth == 2 {
                        self.buf.clear();
                        self.buf.push(b);
                    }
                }
                b'}' | b']' => {
                    if self.depth == 2 {
                        f(&self.buf);
                        self.buf.clear();
                    }
                    self.depth = self.depth.saturating_sub(1);
                }
                _ => {}
            }
        }
    }
}

impl Shared {
    async fn changed(self: &Arc<Self>, key: &str, seen: Option<u64>) -> Result<()> {
        let (id, rx) = {
            let mut s = lock(&self.state);
            if s.closed {
                return Err(Error::closed());
            }
            let (id, rx) = s.insert(key, seen);
            s.fresh = true;
            if s.running {
                self.restart.notify_one();
            } else {
                match crate::runtime::spawn(self.clone().run()) {
                    Ok(_) => s.running = true,
                    Err(e) => {
                        s.remove(key, id);
                        return Err(e);
                    }
                }
            }
            (id, rx)
        };
        let _gone = Deregister { shared: self, key, id };
        rx.await.unwrap_or_else(|_| Err(Error::closed()))
    }

    /// Resolves when the query in flight should end: a registration, no waiter
    /// left, or closed. (A wake-up from an earlier cause is ignored.)
    async fn interrupted(&self) {
        loop {
            self.restart.notified().await;
            let s = lock(&self.state);
            if s.fresh || s.waiting == 0 || s.closed {
                return;
            }
        }
    }

    /// Reads the answer of query `seq` over `prefix` chunk by chunk, waking the
    /// waiters whose key changed; returns its size in bytes.
    async fn read_answer(&self, resp: Option<reqwest::Response>, seq: u64, prefix: &str) -> Result<usize> {
        let mut bytes = 0;
        if let Some(mut resp) = resp {
            let mut objects = Objects::default();
            let mut keys: Vec<(String, u64)> = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| {
                Error::new(ErrorKind::Connection, format!("reading the Consul KV store: {e}")).with_source(e)
            })? {
                bytes += chunk.len();
                let mut bad = None;
                objects.feed(&chunk, |o| match serde_json::from_slice::<KeyIndex<'_>>(o) {
                    Ok(k) => keys.push((k.key.into_owned(), k.modify_index)),
                    Err(e) => bad = Some(e),
                });
                if let Some(e) = bad {
                    let msg = format!("reading the Consul KV store: an entry is not the expected JSON: {e}");
                    return Err(Error::new(ErrorKind::Backend, msg));
                }
                let mut s = lock(&self.state);
                for (k, i) in keys.drain(..) {
                    s.saw(seq, &k, i);
                }
            }
        }
        lock(&self.state).finished(seq, prefix);
        Ok(bytes)
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
                if s.waiting == 0 || s.closed {
                    s.running = false;
                    s.prefix = None;
                    return;
                }
                let prefix = common_prefix(s.keys.keys().map(|k| &**k));
                let plain = s.fresh || index == 0 || answered.as_deref() != Some(prefix.as_str());
                s.fresh = false;
                s.started += 1;
                s.prefix = Some(prefix.clone());
                (prefix, s.started, plain)
            };
            last_start = Some(Instant::now());
            let read = async {
                let (resp, got) =
                    self.api.kv_list_streamed(&prefix, if plain { None } else { Some((index, WAIT)) }).await?;
                let same_prefix = answered.as_deref() == Some(prefix.as_str());
                if same_prefix && got < index {
                    // The index went backwards (the store was restored, or the agent
                    // lost its data): every waiter reads its key again.
                    lock(&self.state).wake_where(&prefix, |w| (w.from <= seq).then_some(Ok(())));
                    return Ok((1, 0));
                }
                let next = if same_prefix { next_index(index, got) } else { next_index(0, got) };
                let bytes = self.read_answer(resp, seq, &prefix).await?;
                Ok::<_, Error>((next, bytes))
            };
            let result = if plain {
                read.await
            } else {
                tokio::select! {
                    r = read => r,
                    () = self.interrupted() => continue,
                }
            };
            match result {
                Ok((next, bytes)) => {
                    index = next;
                    answered = Some(prefix);
                    backoff = Duration::from_millis(100);
                    gap = MIN_GAP.max(Duration::from_secs_f64(bytes as f64 / SHARED_BYTES_PER_SEC));
                }
                Err(e) if matches!(e.kind(), ErrorKind::Auth | ErrorKind::InvalidArgument) => {
                    // Retrying cannot help: the waiters report it, as a direct query's would.
                    lock(&self.state).wake_where("", |w| {
                        (w.from <= seq).then(|| Err(Error::new(e.kind(), e.message().to_string())))
                    });
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(_) => {
                    // Session health covers outages; the waiters keep waiting.
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
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
    use std::env::VarError;

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
    fn objects_are_cut_from_chunks_whatever_the_boundaries() {
        let body = br#"[{"Key":"a/{\"}[","ModifyIndex":3,"Value":"e30="},{"Key":"b","ModifyIndex":4,"Session":"s"}]"#;
        for size in 1..body.len() {
            let mut o = Objects::default();
            let mut got = Vec::new();
            for chunk in body.chunks(size) {
                o.feed(chunk, |obj| {
                    let k: KeyIndex<'_> = serde_json::from_slice(obj).unwrap();
                    got.push((k.key.into_owned(), k.modify_index));
                });
            }
            assert_eq!(got, vec![("a/{\"}[".to_string(), 3), ("b".to_string(), 4)], "chunks of {size}");
        }
    }

    #[test]
    fn an_answer_wakes_only_the_waiters_whose_key_changed() {
        let mut s = State::default();
        let (_, mut same) = s.insert("p/a", Some(5));
        let (_, mut moved) = s.insert("p/b", Some(6));
        let (_, mut gone) = s.insert("p/c", Some(7));
        let (_, mut made) = s.insert("p/d", None);
        let (_, mut absent) = s.insert("p/e", None);
        s.started = 1;
        let (_, mut later) = s.insert("p/b", Some(6));
        for (k, i) in [("p/a", 5), ("p/b", 9), ("p/d", 8), ("p/x", 1)] {
            s.saw(1, k, i);
        }
        s.finished(1, "p/");
        assert!(same.try_recv().is_err() && absent.try_recv().is_err(), "unchanged: still waiting");
        assert!(matches!(moved.try_recv(), Ok(Ok(()))));
        assert!(matches!(gone.try_recv(), Ok(Ok(()))));
        assert!(matches!(made.try_recv(), Ok(Ok(()))));
        assert!(later.try_recv().is_err(), "registered after the query started: not judged by it");
        assert_eq!(s.waiting, 3);
        assert_eq!(s.keys.len(), 3, "the woken waiters' keys are gone");
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

    #[test]
    fn the_budget_variable_is_a_number_or_an_invalid_argument() {
        assert_eq!(budget_from(Err(VarError::NotPresent)).unwrap(), DEFAULT_DIRECT);
        assert_eq!(budget_from(Ok(" 0 ".into())).unwrap(), 0);
        assert_eq!(budget_from(Ok("12".into())).unwrap(), 12);
        for bad in ["", "-1", "many", "1e3"] {
            let e = budget_from(Ok(bad.into())).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}");
            assert!(e.message().contains(DIRECT_ENV), "{e}");
        }
        let raw = std::os::unix::ffi::OsStringExt::from_vec(vec![0xff]);
        let e = budget_from(Err(VarError::NotUnicode(raw))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }
}
