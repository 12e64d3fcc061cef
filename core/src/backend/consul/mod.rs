//! The Consul backend (`consul://[token@]host:port[/ns]?lock_delay=15s`, `consuls://` for TLS).
//!
//! It speaks Consul's HTTP API to one agent. Every key of election `NAME` lives
//! under `<ns>/NAME/` (or `NAME/` without a namespace):
//!
//! - `.lock`: the lock key, with Flags `0x2ddccbc058a50c18`, acquired with the
//!   leader's session. This is the key and flag value that Consul's `api.Lock`
//!   and `consul lock NAME` use, so they and ballot exclude each other. Its value
//!   is the leader's value; a `proclaim` re-acquires it with a new value (the
//!   lock index stays the same).
//! - `.candidates/<session>.<n>`: one key per waiting ballot candidate, acquired
//!   with its session so that it dies with the session; its value is the
//!   candidate's campaign value (for `participants`). Candidates queue in the
//!   order of these keys' create indexes. Only the head of the queue watches and
//!   acquires `.lock`; every other candidate blocks on the key just before its
//!   own. A release therefore wakes one acquirer, whatever the number of waiters.
//!   The leader keeps its candidate key until it resigns, and deletes it only
//!   after releasing `.lock`, so its successor finds the lock free.
//! - `.term`: `<session> <nonce>`: the session of the last ballot leader, written
//!   in the same transaction that acquires `.lock` (the transaction also checks
//!   `.epoch`, and that the candidate's key is still held by its session, so that
//!   an acquisition that arrives after the candidate withdrew takes nothing). The
//!   nonce makes every write a change, so that Consul gives it a new index even
//!   when one session wins the same election again.
//! - `.epoch`: the number of `end()` calls. Only a higher number ends a
//!   candidate: an agent that lost its data (`-dev`) has no `.epoch` until a
//!   handle's watch creates it again at 0, which ends nobody.
//!
//! **Withdrawal** deletes the candidate key and, when its session holds `.lock`
//! for no other entry of the client, releases the lock in the same transaction
//! (also after an acquisition whose answer was lost). A withdrawal that fails is
//! tried again in the background for as long as the session lives: a key or a
//! lock left held by a session that the client keeps renewing would hold up every
//! later candidate.
//!
//! **Sessions.** A client has one session (TTL from the options, at least Consul's
//! bound of 10 s; `Behavior=release`; the configured lock delay), renewed every
//! TTL/3. A renewal that fails leaves the session suspended; a 404 means Consul
//! invalidated it. Either way the local deadline (send time of the last
//! acknowledged renewal + TTL - margin) comes before Consul may invalidate the
//! session (Consul keeps a session for TTL to 2 x TTL after the last renewal).
//! A lost session is replaced by a new one, which starts a new generation, and is
//! destroyed: the destroy is tried again until Consul answers, because a session
//! lost while the servers had no Raft leader is still held by Consul, with its
//! lock, and a new Raft leader gives it another 2 x TTL (`destroy_lost_session`).
//!
//! **The term** is the Raft index at which the leader acquired `.lock`, that is,
//! the `ModifyIndex` of `.lock` right after the acquisition. Raft indexes only
//! grow, and each leader acquires after its predecessor, so terms strictly
//! increase, also when `.lock` is deleted and created again (for example by
//! `consul lock`'s cleanup), across `end()`, and across agent restarts that keep
//! their data. A `proclaim` changes `.lock`'s `ModifyIndex`, so the acquisition
//! index is kept as `.term`'s `ModifyIndex`: a ballot leader acquires `.lock` and
//! writes its session into `.term` in one transaction, so both get the same Raft
//! index, and `.term` is not written again during that tenure. Readers take the
//! term from `.term` when it names the holder's session (session IDs are never
//! reused, and every ballot acquisition rewrites `.term`), and from `.lock`'s
//! `ModifyIndex` otherwise. A `consul lock` holder never rewrites `.lock`, so its
//! term is the index of its acquisition too. (A non-ballot holder that rewrites
//! `.lock` while holding it, or someone deleting `.term` under a ballot leader,
//! moves the term that readers see up during that tenure; terms still increase.)
//!
//! **end()** increments `.epoch` and deletes and re-creates `.lock` (unheld) in one
//! transaction: the leader, a `consul lock` holder included, loses the lock, and
//! everyone watching `.lock` wakes up and sees the new epoch.
//!
//! **Waiting** (a leader for a loss, on `.lock`; every participant for `end()`, on
//! `.epoch`; a candidate on the key before its own; an observer on `.lock`) is a
//! blocking query per wait while a client has fewer than 64 open, and beyond that
//! one shared blocking query per client over the keys' common prefix, which wakes
//! only the waiters whose key changed; plain requests in flight are bounded too. A
//! client so stays well under an agent's default limit of 200 HTTP connections per
//! client address. See `watch.rs` for the budget, the index discipline and what a
//! busy prefix costs.

mod api;
mod watch;

pub use self::watch::shared_wakes;

use crate::sync::lock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use self::api::{next_index, op, op_check_session, op_index, op_lock, op_set, Api, KvPair, TxnOutcome};
use self::watch::Watches;
use super::{Backend, Entry, EpochStream, Snapshot, SnapshotStream};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Leader, LostReason, Participant};
use crate::options::{Credentials, Options};
use crate::session::{Health, SessionTracker, Stamp};
use crate::url::BackendUrl;

/// The Flags of `api.Lock`'s and `consul lock`'s lock key.
pub(crate) const LOCK_FLAGS: u64 = 0x2ddc_cbc0_58a5_0c18;
/// Consul's default limit on a `/v1/txn` request body (`limits.txn_max_req_len`,
/// 512 KiB; Consul answers 413 above it). `kv_max_value_size`, also 512 KiB by
/// default, limits each raw value, in a transaction and in a KV `PUT`.
const TXN_MAX_REQ_LEN: usize = 512 * 1024;
/// The largest value ballot stores. The value travels base64-encoded (4 bytes per
/// 3) in the transaction that acquires `.lock` (see `try_acquire`), with four
/// other operations: three on keys of up to 2 x 513 + 7 bytes once JSON-escaped (a
/// 256-byte namespace and a 256-byte name, every byte a `"`), one on the candidate
/// key (that prefix, `/.candidates/`, a session ID and a number), two session IDs
/// and two indexes: 5,658 bytes besides the value at most. 384,000 bytes encode to
/// 512,000, so the largest body is 517,658 bytes, 6,630 below the limit; a unit
/// test builds that body. `proclaim` sends the value raw in a KV `PUT`, whose
/// limit is `kv_max_value_size`.
const MAX_VALUE: usize = 384_000;
// The encoded value alone, with room for the 5,658 bytes of the rest.
const _: () = assert!(MAX_VALUE.div_ceil(3) * 4 + 5658 <= TXN_MAX_REQ_LEN);
/// Consul's bounds on a session TTL.
const MIN_TTL: Duration = Duration::from_secs(10);
const MAX_TTL: Duration = Duration::from_secs(86_400);
/// Consul's default lock delay, and its upper bound.
const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(15);
const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);
/// How long one blocking query waits at most.
const WAIT: Duration = Duration::from_secs(30);
/// A blocking query that returned at once without a change is not repeated
/// sooner than this (Consul asks clients to rate-limit their loops).
const MIN_GAP: Duration = Duration::from_millis(50);
/// Idle HTTP connections a client keeps to its agent.
const IDLE_CONNECTIONS: usize = 16;
/// The longest back-off between retries after an error or a refused acquire.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Acquire attempts on `.lock`, per election key (`<ns>/<name>`), in this process.
fn attempts() -> MutexGuard<'static, HashMap<String, u64>> {
    // Per process: a lock held by a parent's thread at fork() stays locked in a child.
    static A: crate::sync::PerProcess<Mutex<HashMap<String, u64>>> = crate::sync::PerProcess::new(Default::default);
    A.get().lock().unwrap_or_else(|p| p.into_inner())
}

/// For tests: how many times ballot candidates in this process tried to acquire
/// the lock of the election whose key prefix is `election_key` (`<ns>/<name>`, or
/// `<name>` without a namespace).
#[doc(hidden)]
pub fn acquire_attempts(election_key: &str) -> u64 {
    attempts().get(election_key).copied().unwrap_or(0)
}

/// One Consul session and the tracker generation it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sess {
    id: String,
    generation: u64,
}

#[derive(Debug)]
pub(crate) struct ConsulBackend {
    inner: Arc<Inner>,
    keeper: tokio::task::AbortHandle,
}

impl Drop for ConsulBackend {
    fn drop(&mut self) {
        self.keeper.abort();
        self.inner.watches.close();
        // Nothing uses the session any more: destroying it frees its locks now
        // rather than when Consul expires it (up to 2 x TTL later).
        if !self.inner.closed.swap(true, Ordering::SeqCst) {
            if let Some(s) = lock(&self.inner.session).take() {
                let api = self.inner.api.clone();
                crate::runtime::spawn_detached(async move {
                    let _ = api.session_destroy(&s.id).await;
                });
            }
        }
    }
}

#[derive(Debug)]
struct Inner {
    api: Api,
    /// The namespace with a trailing `/`, or empty.
    ns: String,
    tracker: Arc<SessionTracker>,
    ttl: Duration,
    lock_delay: Duration,
    session: Mutex<Option<Sess>>,
    seq: AtomicU64,
    /// Which entry of this client holds (or is acquiring) the lock of an election,
    /// with its session generation. Entries of one client share a session, and
    /// Consul lets a session re-acquire what it holds, so this keeps two handles
    /// of one client from both believing they lead.
    holders: Mutex<HashMap<String, (u64, u64)>>,
    closed: AtomicBool,
    /// The blocking queries: a budget of direct ones, then one shared query.
    watches: Watches,
}

impl Inner {
    fn prefix(&self, election: &str) -> String {
        format!("{}{}", self.ns, election)
    }

    fn current(&self) -> Option<Sess> {
        lock(&self.session).clone()
    }

    fn claim(&self, prefix: &str, id: u64, generation: u64) -> bool {
        let mut h = lock(&self.holders);
        match h.get(prefix) {
            Some(&(other, g)) if other != id && g >= generation => false,
            _ => {
                h.insert(prefix.to_string(), (id, generation));
                true
            }
        }
    }

    /// Claims the lock for `id` only when no entry of this client claims it.
    fn claim_if_free(&self, prefix: &str, id: u64, generation: u64) -> bool {
        let mut h = lock(&self.holders);
        if h.contains_key(prefix) {
            return false;
        }
        h.insert(prefix.to_string(), (id, generation));
        true
    }

    fn holds(&self, prefix: &str, id: u64) -> bool {
        lock(&self.holders).get(prefix).is_some_and(|&(i, _)| i == id)
    }

    fn claimed_by_other(&self, prefix: &str, id: u64) -> bool {
        lock(&self.holders).get(prefix).is_some_and(|&(i, _)| i != id)
    }

    fn unclaim(&self, prefix: &str, id: u64) -> bool {
        let mut h = lock(&self.holders);
        if h.get(prefix).is_some_and(|&(i, _)| i == id) {
            h.remove(prefix);
            true
        } else {
            false
        }
    }
}

/// Retries transient errors with a growing pause; returns the error when it is
/// not worth retrying (refused credentials, a request Consul refuses as too large
/// or malformed: retrying would hold up every candidate queued behind this one).
async fn pause_or_fail(e: Error, backoff: &mut Duration) -> Result<()> {
    if matches!(e.kind(), ErrorKind::Auth | ErrorKind::InvalidArgument) {
        return Err(e);
    }
    tokio::time::sleep(*backoff).await;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    Ok(())
}

fn read_file(path: &std::path::Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(ErrorKind::InvalidArgument, format_args!("reading {what}"), e))
}

impl ConsulBackend {
    pub(crate) async fn connect(url: &BackendUrl, options: &Options) -> Result<ConsulBackend> {
        let ttl = options.ttl();
        if ttl < MIN_TTL {
            return Err(Error::invalid(format!(
                "ttl {ttl:?} is below Consul's minimum session TTL of 10s; use ttl=10s or more"
            )));
        }
        if ttl > MAX_TTL {
            return Err(Error::invalid(format!("ttl {ttl:?} is above Consul's maximum session TTL of 24h")));
        }
        let lock_delay = url.duration("lock_delay")?.unwrap_or(DEFAULT_LOCK_DELAY);
        if lock_delay > MAX_LOCK_DELAY {
            return Err(Error::invalid(format!("lock_delay {lock_delay:?} is above Consul's maximum of 60s")));
        }
        let [host] = url.hosts.as_slice() else {
            return Err(Error::invalid(
                "consul:// URLs name one agent (host:port); Consul's agents forward to the servers",
            ));
        };
        let token = match &options.credentials {
            Some(Credentials::Token(t)) => Some(t.clone()),
            Some(Credentials::Password { .. }) => {
                return Err(Error::invalid(
                    "consul:// takes an ACL token (consul://TOKEN@host:port), not a user and password",
                ))
            }
            None => std::env::var("CONSUL_HTTP_TOKEN").ok().filter(|t| !t.is_empty()),
        };
        let tls_opts = options.tls.clone().unwrap_or_default();
        let ca = url.option("ca").map(std::path::PathBuf::from).or(tls_opts.ca);
        let cert = url.option("cert").map(std::path::PathBuf::from).or(tls_opts.cert);
        let key = url.option("key").map(std::path::PathBuf::from).or(tls_opts.key);
        let tls = url.scheme.tls || url.flag("tls")?.unwrap_or(false) || options.tls.is_some();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            // A burst of requests (32 in flight at most, see `api.rs`) leaves as many
            // connections behind, each with its buffers and one of the agent's
            // connections per client address: keep a few for the next requests.
            .pool_max_idle_per_host(IDLE_CONNECTIONS);
        if tls {
            builder = builder.use_rustls_tls().https_only(true);
            builder = trust(builder, ca.as_deref())?;
            match (&cert, &key) {
                (Some(c), Some(k)) => {
                    let mut pem = read_file(c, "the client certificate")?;
                    pem.push(b'\n');
                    pem.extend(read_file(k, "the client key")?);
                    let id = reqwest::Identity::from_pem(&pem)
                        .map_err(|e| Error::invalid(format!("client certificate or key is not usable: {e}")))?;
                    builder = builder.identity(id);
                }
                (None, None) => {}
                _ => return Err(Error::invalid("TLS client authentication needs both cert= and key=")),
            }
        } else if ca.is_some() || cert.is_some() || key.is_some() {
            return Err(Error::invalid("ca=, cert= and key= need TLS: use consuls:// or tls=1"));
        }
        let base = format!("{}://{}", if tls { "https" } else { "http" }, host);
        let api = Api::new(base, token.as_deref(), builder)?;
        let budget = watch::direct_budget()?;
        let tracker = SessionTracker::new(Some(ttl), options.safety_margin());
        let sent = Stamp::now();
        let id = api.session_create(ttl, lock_delay).await?;
        let generation = tracker.new_session(sent);
        let ns = if url.path.is_empty() { String::new() } else { format!("{}/", url.path) };
        let inner = Arc::new(Inner {
            watches: Watches::new(api.clone(), budget),
            api,
            ns,
            tracker,
            ttl,
            lock_delay,
            session: Mutex::new(Some(Sess { id, generation })),
            seq: AtomicU64::new(0),
            holders: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        });
        let keeper = tokio::spawn(keep_session(Arc::downgrade(&inner))).abort_handle();
        Ok(ConsulBackend { inner, keeper })
    }
}

/// Sets whom TLS trusts: the CA certificates of the file `ca` alone when given (as
/// the etcd backend does), else the system's trust store (loaded by
/// rustls-native-certs: the platform's store, or the files that `SSL_CERT_FILE` and
/// `SSL_CERT_DIR` name).
///
/// # Errors
///
/// `InvalidArgument` when the file cannot be read, holds no certificate, or is not
/// PEM.
fn trust(builder: reqwest::ClientBuilder, ca: Option<&std::path::Path>) -> Result<reqwest::ClientBuilder> {
    let Some(ca) = ca else {
        return Ok(builder.tls_built_in_native_certs(true));
    };
    let pem = read_file(ca, "the CA file")?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| Error::invalid(format!("the CA file {} is not PEM: {e}", ca.display())))?;
    if certs.is_empty() {
        return Err(Error::invalid(format!("the CA file {} holds no certificate", ca.display())));
    }
    Ok(certs.into_iter().fold(builder.tls_built_in_root_certs(false), |b, c| b.add_root_certificate(c)))
}

/// Renews the session every TTL/3 (counted from each renewal's send) and
/// replaces it when it is lost.
async fn keep_session(weak: Weak<Inner>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let Some(inner) = weak.upgrade() else { return };
        if inner.closed.load(Ordering::SeqCst) {
            return;
        }
        let sess = inner.current();
        let st = inner.tracker.status();
        let lost = match &sess {
            Some(s) => st.generation != s.generation || st.health == Health::Lost,
            None => true,
        };
        if lost {
            if let Some(old) = sess {
                // The server may still hold it (a local deadline passes first):
                // destroying it releases its locks now instead of at Consul's expiry.
                tokio::spawn(destroy_lost_session(inner.api.clone(), old.id, inner.ttl));
                *lock(&inner.session) = None;
            }
            let sent = Stamp::now();
            match inner.api.session_create(inner.ttl, inner.lock_delay).await {
                Ok(id) => {
                    let mut slot = lock(&inner.session);
                    let generation = inner.tracker.new_session(sent);
                    *slot = Some(Sess { id, generation });
                    backoff = Duration::from_millis(200);
                }
                Err(_) => {
                    drop(inner);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
            continue;
        }
        let Some(sess) = sess else { continue };
        let ttl = inner.ttl;
        let sent = Stamp::now();
        let started = tokio::time::Instant::now();
        let next = match inner.api.session_renew(&sess.id, ttl / 3).await {
            Ok(true) => {
                inner.tracker.acked(sess.generation, sent);
                // Due TTL/3 after this renewal was sent, not after its answer:
                // the overdue mark counts from the send, so a slow answer must
                // not push the next renewal past it.
                (ttl / 3).saturating_sub(started.elapsed())
            }
            Ok(false) => {
                inner.tracker.expired(sess.generation);
                Duration::ZERO
            }
            Err(_) => {
                inner.tracker.disconnected(sess.generation);
                (ttl / 10).min(Duration::from_secs(1))
            }
        };
        let mut rx = inner.tracker.subscribe();
        drop(inner);
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = rx.wait_for(|s| s.generation != sess.generation || s.health == Health::Lost) => {}
        }
    }
}

/// Destroys a session that this client has given up (its leader was told `lost`),
/// trying again until Consul answers.
///
/// The session was lost because Consul did not answer its renewals, most often
/// because the servers had no Raft leader. Consul then still holds the session,
/// its `.lock` and its candidate keys, and a new Raft leader restarts the
/// session's timer at 2 x TTL: without a destroy, every other candidate would
/// wait that long after the cluster answers again (32 to 35 s with a 10 s TTL
/// after a Raft leader server was killed). One attempt, made while the cluster
/// has no leader, fails; so the destroy is repeated (every second at most) until
/// Consul answers. Destroying an unknown session succeeds, so this ends as soon
/// as Consul answers at all. It gives up after `max(2 x TTL, 10 min)`, when
/// Consul's own expiry is as near as anything this could do.
async fn destroy_lost_session(api: Api, id: String, ttl: Duration) {
    let give_up = Instant::now() + (2 * ttl).max(Duration::from_secs(600));
    let mut backoff = Duration::from_millis(100);
    while api.session_destroy(&id).await.is_err() && Instant::now() < give_up {
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The election's keys other than the candidates, read at one index.
#[derive(Debug, Default)]
struct Meta {
    lock: Option<KvPair>,
    term: Option<KvPair>,
    epoch: Option<KvPair>,
}

fn parse_epoch(p: Option<&KvPair>) -> Result<u64> {
    let Some(p) = p else { return Ok(0) };
    let v = p.value()?;
    std::str::from_utf8(&v).ok().and_then(|s| s.trim().parse().ok()).ok_or_else(|| {
        Error::new(ErrorKind::Backend, format!("the Consul key {:?} does not hold a number; it is not ballot's", p.key))
    })
}

/// The leader a lock key and a term key describe (see the module docs).
fn leader_of(lock: Option<&KvPair>, term: Option<&KvPair>) -> Result<Option<Leader>> {
    let Some(lock) = lock else { return Ok(None) };
    let Some(holder) = lock.holder() else { return Ok(None) };
    // `.term` is written in the transaction that acquired the lock, so when it
    // names the holder, its modify index is the index of that acquisition.
    let names_holder = |t: &&KvPair| t.value().is_ok_and(|v| v.split(|b| *b == b' ').next() == Some(holder.as_bytes()));
    let recorded = term.filter(names_holder).map(|t| t.modify_index);
    let term = recorded.unwrap_or(lock.modify_index);
    Ok(Some(Leader::new(lock.value()?, term, holder.to_string())))
}

/// The participants that one read of an election's keys (`<prefix>/.`) shows:
/// the lock holder first, then the live candidate keys by create index. A ballot
/// leader keeps its candidate key while it leads (the first live one its session
/// holds), so that key is folded into the leader's entry; a `consul lock` holder
/// has none. Dead keys (their session ended) are left out.
fn participants_of(prefix: &str, all: Vec<KvPair>) -> Result<Vec<Participant>> {
    let (lock_key, term_key, cand_prefix) =
        (format!("{prefix}/.lock"), format!("{prefix}/.term"), format!("{prefix}/.candidates/"));
    let (mut lock, mut term, mut candidates) = (None, None, Vec::new());
    for p in all {
        if p.key == lock_key {
            lock = Some(p);
        } else if p.key == term_key {
            term = Some(p);
        } else if let Some(rest) = p.key.strip_prefix(&cand_prefix) {
            // Keys of a nested election named `.candidates/...` are not candidates.
            if !rest.contains('/') && !rest.starts_with('.') && p.holder().is_some() {
                candidates.push(p);
            }
        }
    }
    candidates.sort_by_key(|c| c.create_index);
    let mut out = Vec::with_capacity(candidates.len() + 1);
    if let Some(l) = leader_of(lock.as_ref(), term.as_ref())? {
        if let Some(i) = candidates.iter().position(|c| c.holder() == Some(l.key.as_str())) {
            candidates.remove(i);
        }
        out.push(Participant::new(l.key, l.value, true));
    }
    for c in candidates {
        let value = c.value()?;
        out.push(Participant::new(c.key, value, false));
    }
    Ok(out)
}

impl ConsulBackend {
    /// Waits (up to the TTL) for a session newer than `generation`.
    async fn next_session(&self, generation: u64) -> Result<Sess> {
        let mut rx = self.inner.tracker.subscribe();
        let wait = async {
            loop {
                if let Some(s) = self.inner.current().filter(|s| s.generation > generation) {
                    return Ok(s);
                }
                if rx.changed().await.is_err() {
                    return Err(Error::closed());
                }
            }
        };
        tokio::time::timeout(self.inner.ttl, wait)
            .await
            .unwrap_or_else(|_| Err(Error::new(ErrorKind::SessionLost, "no new Consul session could be created")))
    }
}

impl Inner {
    async fn meta(&self, prefix: &str) -> Result<Meta> {
        let keys = [format!("{prefix}/.lock"), format!("{prefix}/.term"), format!("{prefix}/.epoch")];
        let ops = keys.iter().map(|k| op("get-tree", k)).collect();
        let found = match self.api.txn(ops).await? {
            TxnOutcome::Applied(found) => found,
            TxnOutcome::RolledBack(errors) => {
                return Err(Error::new(ErrorKind::Backend, format!("reading the election failed: {errors:?}")))
            }
        };
        let mut m = Meta::default();
        for p in found {
            if p.key == keys[0] {
                m.lock = Some(p);
            } else if p.key == keys[1] {
                m.term = Some(p);
            } else if p.key == keys[2] {
                m.epoch = Some(p);
            }
        }
        Ok(m)
    }

    /// Reads `key` once it may have changed since a read that gave the
    /// `X-Consul-Index` `index` and the key's modify index `seen` (None: absent):
    /// with a direct blocking query when the budget has room (which also returns
    /// after `WAIT`), else through the shared watch and then a plain read. With
    /// `index` 0, a plain read at once.
    ///
    /// The requests are boxed: this future lives as long as the wait, which is
    /// most of an election's life, and a request's future is several times larger
    /// than the wait's own state (see `Api::call`).
    async fn read_changed(&self, key: &str, index: u64, seen: Option<u64>) -> Result<(Option<KvPair>, u64)> {
        if index == 0 {
            return Box::pin(self.api.kv_get(key, None)).await;
        }
        if let Some(_direct) = self.watches.direct(false) {
            return Box::pin(self.api.kv_get(key, Some((index, WAIT)))).await;
        }
        self.watches.changed(key, seen).await?;
        Box::pin(self.api.kv_get(key, None)).await
    }

    async fn snapshot(&self, prefix: &str) -> Result<Snapshot> {
        let m = self.meta(prefix).await?;
        Ok(Snapshot { leader: leader_of(m.lock.as_ref(), m.term.as_ref())?, epoch: parse_epoch(m.epoch.as_ref())? })
    }
}

#[async_trait]
impl Backend for ConsulBackend {
    fn session(&self) -> &Arc<SessionTracker> {
        &self.inner.tracker
    }

    fn max_value_len(&self) -> usize {
        MAX_VALUE
    }

    async fn join(&self, election: &str, value: &[u8]) -> Result<Arc<dyn Entry>> {
        let inner = &self.inner;
        let prefix = inner.prefix(election);
        let (epoch_kv, _) = inner.api.kv_get(&format!("{prefix}/.epoch"), None).await?;
        let epoch = parse_epoch(epoch_kv.as_ref())?;
        let n = inner.seq.fetch_add(1, Ordering::Relaxed);
        let mut tries = 0;
        let (sess, key) = loop {
            let sess = match inner.current() {
                Some(s) => s,
                None => self.next_session(0).await?,
            };
            let key = format!("{prefix}/.candidates/{}.{n}", sess.id);
            // If this future is dropped while the request is in flight (a campaign
            // cancelled, or a requeue aborted by end()), the key may exist with nobody
            // to withdraw it, and it would hold up every later candidate of this session.
            let mut guard = OrphanGuard { inner: Some(inner.clone()), key: key.clone() };
            // The value rides in the key so that `participants` can list it.
            match inner.api.kv_acquire(&key, &sess.id, 0, value).await {
                Ok(true) => {
                    guard.inner = None;
                    break (sess, key);
                }
                Ok(false) => {
                    return Err(Error::new(ErrorKind::Backend, "Consul refused to register the candidate key"));
                }
                // Consul invalidated the session before our renewal noticed (for
                // example, it was destroyed by an operator): report it, wait for the
                // replacement and register under that one. The engine then sees the
                // new generation and joins again under it.
                Err(e) if e.message().contains("nvalid session") && tries < 3 => {
                    tries += 1;
                    inner.tracker.expired(sess.generation);
                    self.next_session(sess.generation).await?;
                }
                Err(e) => return Err(e),
            }
        };
        Ok(Arc::new(ConsulEntry {
            inner: inner.clone(),
            lock_key: format!("{prefix}/.lock"),
            prefix,
            key,
            sess,
            id: n,
            value: Mutex::new(value.to_vec()),
            epoch,
            epoch_index: Mutex::new(epoch_kv.map(|p| p.modify_index)),
            attempted: AtomicBool::new(false),
            withdrawn: AtomicBool::new(false),
        }))
    }

    async fn leader(&self, election: &str) -> Result<Option<Leader>> {
        Ok(self.inner.snapshot(&self.inner.prefix(election)).await?.leader)
    }

    async fn participants(&self, election: &str) -> Result<Vec<Participant>> {
        let prefix = self.inner.prefix(election);
        let (all, _) = self.inner.api.kv_list(&format!("{prefix}/.")).await?;
        participants_of(&prefix, all)
    }

    async fn watch(&self, election: &str) -> Result<SnapshotStream> {
        let prefix = self.inner.prefix(election);
        let st = WatchState { inner: self.inner.clone(), prefix, index: 0, seen: None, last: None, first: true };
        let stream = futures_util::stream::unfold(st, |mut st| async move {
            let item = st.next().await;
            Some((item, st))
        });
        Ok(Box::pin(stream))
    }

    async fn watch_epoch(&self, election: &str) -> Result<EpochStream> {
        let key = format!("{}/.epoch", self.inner.prefix(election));
        // A blocking query on a key that does not exist returns on any write to
        // the store (its index is the store's), which would wake every candidate at
        // every handoff: make the key exist, at epoch 0 unless someone is quicker.
        if self.inner.api.kv_get(&key, None).await?.0.is_none() {
            self.inner.api.txn(vec![op("check-not-exists", &key), op_set(&key, b"0", 0)]).await?;
        }
        let st = EpochWatchState { inner: self.inner.clone(), key, index: 0, seen: None, last: None };
        let stream = futures_util::stream::unfold(st, |mut st| async move {
            let item = st.next().await;
            Some((item, st))
        });
        Ok(Box::pin(stream))
    }

    async fn end(&self, election: &str) -> Result<()> {
        let prefix = self.inner.prefix(election);
        let (epoch_key, lock_key) = (format!("{prefix}/.epoch"), format!("{prefix}/.lock"));
        for _ in 0..20 {
            let (e, _) = self.inner.api.kv_get(&epoch_key, None).await?;
            let n = parse_epoch(e.as_ref())?;
            let check = match &e {
                Some(p) => op_index("check-index", &epoch_key, p.modify_index),
                None => op("check-not-exists", &epoch_key),
            };
            let ops = vec![
                check,
                op_set(&epoch_key, (n + 1).to_string().as_bytes(), 0),
                op("delete", &lock_key),
                op_set(&lock_key, b"", LOCK_FLAGS),
            ];
            if let TxnOutcome::Applied(_) = self.inner.api.txn(ops).await? {
                return Ok(());
            }
        }
        Err(Error::new(ErrorKind::Backend, "end(): the election's epoch kept changing under concurrent end() calls"))
    }

    async fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.keeper.abort();
        self.inner.watches.close();
        let sess = lock(&self.inner.session).take();
        if let Some(s) = sess {
            let _ = self.inner.api.session_destroy(&s.id).await;
        }
    }
}

struct WatchState {
    inner: Arc<Inner>,
    prefix: String,
    index: u64,
    /// `.lock`'s modify index as last read (None: absent).
    seen: Option<u64>,
    last: Option<Snapshot>,
    first: bool,
}

impl WatchState {
    async fn next(&mut self) -> Result<Snapshot> {
        let lock_key = format!("{}/.lock", self.prefix);
        let mut backoff = Duration::from_millis(100);
        loop {
            let index = if self.first { 0 } else { self.index };
            let started = Instant::now();
            match self.inner.read_changed(&lock_key, index, self.seen).await {
                Ok((l, idx)) => {
                    self.index = next_index(self.index, idx);
                    self.seen = l.map(|l| l.modify_index);
                }
                Err(e) if self.first => return Err(e),
                Err(e) => {
                    pause_or_fail(e, &mut backoff).await?;
                    continue;
                }
            }
            let snap = match Box::pin(self.inner.snapshot(&self.prefix)).await {
                Ok(s) => s,
                Err(e) if self.first => return Err(e),
                Err(e) => {
                    pause_or_fail(e, &mut backoff).await?;
                    continue;
                }
            };
            let first = std::mem::replace(&mut self.first, false);
            backoff = Duration::from_millis(100);
            if self.last.as_ref() != Some(&snap) {
                self.last = Some(snap.clone());
                return Ok(snap);
            }
            // Nothing changed for us. While `.lock` does not exist, its index is
            // the whole store's, so any write anywhere wakes the query: rate-limit.
            if !first && started.elapsed() < MIN_GAP {
                tokio::time::sleep(MIN_GAP).await;
            }
        }
    }
}

/// Follows `.epoch` alone with blocking queries; only `end()` writes it.
struct EpochWatchState {
    inner: Arc<Inner>,
    key: String,
    index: u64,
    /// `.epoch`'s modify index as last read (None: absent).
    seen: Option<u64>,
    last: Option<u64>,
}

impl EpochWatchState {
    async fn next(&mut self) -> Result<u64> {
        let mut backoff = Duration::from_millis(100);
        loop {
            let first = self.last.is_none();
            let index = if first { 0 } else { self.index };
            let started = Instant::now();
            let epoch = match self.inner.read_changed(&self.key, index, self.seen).await {
                Ok((p, idx)) => {
                    self.index = next_index(self.index, idx);
                    self.seen = p.as_ref().map(|p| p.modify_index);
                    parse_epoch(p.as_ref())
                }
                Err(e) => Err(e),
            };
            match epoch {
                Ok(epoch) if self.last != Some(epoch) => {
                    self.last = Some(epoch);
                    return Ok(epoch);
                }
                Ok(_) if started.elapsed() < MIN_GAP => tokio::time::sleep(MIN_GAP).await,
                Ok(_) => {}
                Err(e) if first => return Err(e),
                Err(e) => pause_or_fail(e, &mut backoff).await?,
            }
        }
    }
}

/// Deletes a candidate key whose registration was abandoned midway.
struct OrphanGuard {
    inner: Option<Arc<Inner>>,
    key: String,
}

impl Drop for OrphanGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            let key = std::mem::take(&mut self.key);
            crate::runtime::spawn_detached(async move {
                let _ = inner.api.kv_delete(&key, None).await;
            });
        }
    }
}

#[derive(Debug)]
struct ConsulEntry {
    inner: Arc<Inner>,
    prefix: String,
    lock_key: String,
    /// This candidate's key under `.candidates/`.
    key: String,
    sess: Sess,
    id: u64,
    value: Mutex<Vec<u8>>,
    /// The epoch when the candidate joined.
    epoch: u64,
    /// The modify index of `.epoch` that the acquisition checks (None: the key did
    /// not exist): the one at the join, or the one of a key created again with
    /// the same number (see `recheck_epoch`).
    epoch_index: Mutex<Option<u64>>,
    /// An acquisition was sent: the lock may be held by this entry's session.
    attempted: AtomicBool,
    withdrawn: AtomicBool,
}

/// What one candidate sees of its election.
struct View {
    lock: Option<KvPair>,
    term: Option<KvPair>,
    epoch: u64,
    /// Live and dead candidate keys, oldest first.
    candidates: Vec<KvPair>,
}

impl ConsulEntry {
    async fn view(&self) -> Result<View> {
        let (all, _) = self.inner.api.kv_list(&format!("{}/.", self.prefix)).await?;
        let cand_prefix = format!("{}/.candidates/", self.prefix);
        let mut v = View { lock: None, term: None, epoch: 0, candidates: Vec::new() };
        for p in all {
            if p.key == self.lock_key {
                v.lock = Some(p);
            } else if p.key == format!("{}/.term", self.prefix) {
                v.term = Some(p);
            } else if p.key == format!("{}/.epoch", self.prefix) {
                v.epoch = parse_epoch(Some(&p))?;
            } else if let Some(rest) = p.key.strip_prefix(&cand_prefix) {
                // Keys of a nested election named `.candidates/...` are not candidates.
                if !rest.contains('/') && !rest.starts_with('.') {
                    v.candidates.push(p);
                }
            }
        }
        v.candidates.sort_by_key(|c| c.create_index);
        Ok(v)
    }

    /// Blocks until `key` changes from `index` (or, with a direct query, the wait
    /// passes), rate-limited. `urgent`: a handoff waits on it (see `watch.rs`).
    async fn block_on(&self, key: &str, index: u64, urgent: bool) -> Result<()> {
        let Some(_direct) = self.inner.watches.direct(urgent) else {
            return self.inner.watches.changed(key, Some(index)).await;
        };
        let started = Instant::now();
        let (now, _) = self.inner.api.kv_get(key, Some((next_index(0, index), WAIT))).await?;
        if now.is_some_and(|p| p.modify_index == index) && started.elapsed() < MIN_GAP {
            tokio::time::sleep(MIN_GAP).await;
        }
        Ok(())
    }

    /// After an acquisition that failed its check of `.epoch`: a higher number is
    /// an end(). The same number is `.epoch` created again (at 0, by any handle's
    /// watch) after a `-dev` agent lost its data, which is no end: the next attempt
    /// checks the key as it is now. Only end() changes the number and it only goes
    /// up, except through such a loss, which also loses this candidate's key and
    /// session, so that such an entry cannot win whatever the check says.
    async fn recheck_epoch(&self, epoch_key: &str) -> Result<()> {
        let (e, _) = self.inner.api.kv_get(epoch_key, None).await?;
        if parse_epoch(e.as_ref())? > self.epoch {
            return Err(Error::ended());
        }
        *lock(&self.epoch_index) = e.map(|p| p.modify_index);
        Ok(())
    }

    fn count_attempt(&self) {
        *attempts().entry(self.prefix.clone()).or_insert(0) += 1;
    }

    async fn release(&self) -> Result<bool> {
        self.inner.api.kv_release(&self.lock_key, &self.sess.id, LOCK_FLAGS).await
    }

    async fn wait_won_inner(&self) -> Result<Leader> {
        let mut backoff = Duration::from_millis(50);
        loop {
            if self.withdrawn.load(Ordering::SeqCst) {
                return Err(Error::new(ErrorKind::Cancelled, "the candidate was withdrawn"));
            }
            let v = match self.view().await {
                Ok(v) => v,
                Err(e) => {
                    pause_or_fail(e, &mut backoff).await?;
                    continue;
                }
            };
            // Only a higher epoch is an end(). A lower one is an agent that lost its
            // data (`-dev`), which lost this candidate's key too: that is below.
            if v.epoch > self.epoch {
                return Err(Error::ended());
            }
            let Some(pos) = v.candidates.iter().position(|c| c.key == self.key) else {
                return Err(Error::new(ErrorKind::SessionLost, "the candidate's key in Consul is gone"));
            };
            if v.candidates[pos].holder() != Some(self.sess.id.as_str()) {
                return Err(Error::new(ErrorKind::SessionLost, "the candidate's session in Consul is gone"));
            }
            // Dead keys just before ours (their sessions ended) are ours to clear.
            let mut pred = None;
            for (i, c) in v.candidates[..pos].iter().enumerate().rev() {
                if c.holder().is_some() {
                    pred = Some((i, c));
                    break;
                }
                let _ = self.inner.api.kv_delete(&c.key, Some(c.modify_index)).await;
            }
            let step = if let Some((i, p)) = pred {
                // The leader's successor (no live key before its predecessor's) is
                // next to win: its wait gets the budget's reserve.
                let successor = v.candidates[..i].iter().all(|c| c.holder().is_none());
                self.block_on(&p.key, p.modify_index, successor).await.map(|_| None)
            } else {
                match &v.lock {
                    Some(l) if l.holder() == Some(self.sess.id.as_str()) && self.inner.holds(&self.prefix, self.id) => {
                        // Won by an earlier call whose future was dropped after the
                        // acquisition went through.
                        leader_of(Some(l), v.term.as_ref())
                    }
                    Some(l) if l.holder().is_some() => {
                        if l.holder() == Some(self.sess.id.as_str())
                            && !self.inner.claimed_by_other(&self.prefix, self.id)
                            && !self.inner.holds(&self.prefix, self.id)
                        {
                            // Held by our session but by none of our entries: left
                            // over by a withdrawal whose release failed.
                            self.release().await.map(|_| None)
                        } else {
                            self.block_on(&self.lock_key, l.modify_index, true).await.map(|_| None)
                        }
                    }
                    _ => self.try_acquire(&mut backoff).await,
                }
            };
            match step {
                Ok(Some(l)) => return Ok(l),
                Ok(None) => {}
                Err(e) if matches!(e.kind(), ErrorKind::Ended | ErrorKind::Cancelled) => return Err(e),
                Err(e) => pause_or_fail(e, &mut backoff).await?,
            }
        }
    }

    /// One acquire attempt by the head of the queue.
    async fn try_acquire(&self, backoff: &mut Duration) -> Result<Option<Leader>> {
        if !self.inner.claim(&self.prefix, self.id, self.sess.generation) {
            // Another handle of this client is acquiring; look again shortly.
            tokio::time::sleep(MIN_GAP).await;
            return Ok(None);
        }
        self.count_attempt();
        self.attempted.store(true, Ordering::SeqCst);
        let nonce = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        let value = lock(&self.value).clone();
        let epoch_key = format!("{}/.epoch", self.prefix);
        let epoch_check = match *lock(&self.epoch_index) {
            Some(i) => op_index("check-index", &epoch_key, i),
            None => op("check-not-exists", &epoch_key),
        };
        // One transaction: the epoch is still the one we joined under, this
        // candidate is still queued, the lock is acquired (Consul enforces lock
        // delays here too), and `.term` names our session at the acquisition's index.
        let ops = vec![
            epoch_check,
            // `withdraw` deletes the candidate key: a request still on its way then
            // (its future dropped, as when a campaign is resigned while it acquires)
            // takes nothing when it arrives, instead of taking the lock for a session
            // that its client keeps renewing and no entry will ever release.
            op_check_session(&self.key, &self.sess.id),
            op_lock("lock", &self.lock_key, &value, LOCK_FLAGS, &self.sess.id),
            // Unique per attempt: Consul does not bump the index of a write that
            // changes nothing, and one session may win the same election again.
            op_set(&format!("{}/.term", self.prefix), format!("{} {}", self.sess.id, nonce).as_bytes(), 0),
            op("get", &self.lock_key),
        ];
        let outcome = self.inner.api.txn(ops).await;
        let won = match outcome {
            Ok(TxnOutcome::Applied(kvs)) => kvs.into_iter().rev().find(|p| p.key == self.lock_key),
            Ok(TxnOutcome::RolledBack(errors)) => {
                self.inner.unclaim(&self.prefix, self.id);
                if errors.iter().any(|(i, _)| *i == 0) {
                    return self.recheck_epoch(&epoch_key).await.map(|()| None);
                }
                if errors.iter().any(|(i, _)| *i == 1) {
                    if self.withdrawn.load(Ordering::SeqCst) {
                        return Err(Error::new(ErrorKind::Cancelled, "the candidate was withdrawn"));
                    }
                    return Err(Error::new(ErrorKind::SessionLost, "the candidate's key in Consul is gone"));
                }
                // Held by someone outside the queue (`consul lock`), or a lock delay
                // after an invalidated session is in force.
                tokio::time::sleep(*backoff).await;
                *backoff = (*backoff * 2).min(MAX_BACKOFF);
                return Ok(None);
            }
            Err(e) => {
                // If the answer was lost after Consul applied it, the lock is held by
                // our session with no entry claiming it: the next look releases it.
                self.inner.unclaim(&self.prefix, self.id);
                return Err(e);
            }
        };
        let Some(l) = won.filter(|l| l.holder() == Some(self.sess.id.as_str())) else {
            self.inner.unclaim(&self.prefix, self.id);
            return Err(Error::new(ErrorKind::Backend, "Consul applied the acquisition but did not return the lock"));
        };
        if self.withdrawn.load(Ordering::SeqCst) {
            let _ = self.release().await;
            self.inner.unclaim(&self.prefix, self.id);
            return Err(Error::new(ErrorKind::Cancelled, "the candidate was withdrawn"));
        }
        Ok(Some(Leader::new(l.value()?, l.modify_index, self.sess.id.clone())))
    }
}

#[async_trait]
impl Entry for ConsulEntry {
    fn epoch(&self) -> Option<u64> {
        Some(self.epoch)
    }

    async fn wait_won(&self) -> Result<Leader> {
        self.wait_won_inner().await
    }

    async fn lost(&self) -> LostReason {
        let mut index = 0;
        let mut seen = None;
        let mut backoff = Duration::from_millis(100);
        loop {
            let started = Instant::now();
            match self.inner.read_changed(&self.lock_key, index, seen).await {
                Ok((l, idx)) => {
                    seen = l.as_ref().map(|l| l.modify_index);
                    let mine = l.as_ref().is_some_and(|l| l.holder() == Some(self.sess.id.as_str()))
                        && self.inner.holds(&self.prefix, self.id);
                    if !mine {
                        // end() takes the lock away too; then the engine ends this
                        // participant when it sees the new epoch, which is not a loss.
                        let epoch = Box::pin(self.inner.api.kv_get(&format!("{}/.epoch", self.prefix), None)).await;
                        if let Ok((e, _)) = epoch {
                            if parse_epoch(e.as_ref()).is_ok_and(|e| e > self.epoch) {
                                std::future::pending::<()>().await;
                            }
                        }
                        return LostReason::Deleted;
                    }
                    let new = next_index(index, idx);
                    if new == index && started.elapsed() < MIN_GAP {
                        tokio::time::sleep(MIN_GAP).await;
                    }
                    index = new;
                    backoff = Duration::from_millis(100);
                }
                Err(_) => {
                    // Session health covers outages; keep looking.
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn proclaim(&self, value: &[u8]) -> Result<()> {
        let not_leader = || Error::new(ErrorKind::NotLeader, "this candidate does not hold the Consul lock");
        if !self.inner.holds(&self.prefix, self.id) {
            return Err(not_leader());
        }
        // Re-acquiring by the holder replaces the value and keeps the lock index.
        if !self.inner.api.kv_acquire(&self.lock_key, &self.sess.id, LOCK_FLAGS, value).await? {
            return Err(not_leader());
        }
        *lock(&self.value) = value.to_vec();
        Ok(())
    }

    async fn verify(&self) -> Result<bool> {
        if self.inner.current().as_ref() != Some(&self.sess) || !self.inner.holds(&self.prefix, self.id) {
            return Ok(false);
        }
        let (l, _) = self.inner.api.kv_get(&self.lock_key, None).await?;
        Ok(l.is_some_and(|l| l.holder() == Some(self.sess.id.as_str())))
    }

    async fn withdraw(&self) -> Result<()> {
        self.withdrawn.store(true, Ordering::SeqCst);
        let w = Withdrawal {
            inner: self.inner.clone(),
            prefix: self.prefix.clone(),
            lock_key: self.lock_key.clone(),
            key: self.key.clone(),
            sess: self.sess.clone(),
            id: self.id,
            release: self.attempted.load(Ordering::SeqCst),
        };
        match w.once().await {
            Ok(()) => Ok(()),
            Err(e) => {
                // Left as they are, the candidate key (and the lock, if this entry's
                // session holds it) stay for as long as the client renews the
                // session, and every candidate queued behind waits for them: try
                // again in the background while the session lives. (A session that
                // is replaced is destroyed, which frees what it held.)
                crate::runtime::spawn_detached(w.retry());
                Err(e)
            }
        }
    }
}

/// What a withdrawal removes: the candidate key, and `.lock` when the candidate's
/// session holds it for no other entry of this client.
struct Withdrawal {
    inner: Arc<Inner>,
    prefix: String,
    lock_key: String,
    key: String,
    sess: Sess,
    id: u64,
    /// The entry sent an acquisition, so its session may hold the lock.
    release: bool,
}

impl Withdrawal {
    async fn once(&self) -> Result<()> {
        // The lock is released under a claim: the entry's own when it leads or is
        // acquiring; else a new one, taken only when no entry of this client claims
        // the lock. An acquisition whose answer was lost leaves the lock held by
        // this session with no entry claiming it; the entry's next look releases
        // it, but a withdrawn entry has no next look. The claim keeps the other
        // entries of this client from acquiring until the release is done.
        let claimed = self.release
            && (self.inner.holds(&self.prefix, self.id)
                || self.inner.claim_if_free(&self.prefix, self.id, self.sess.generation));
        if claimed {
            // The release and the removal of the candidate key in one transaction:
            // the successor wakes on that removal and must find the lock free.
            let ops = vec![op_lock("unlock", &self.lock_key, b"", LOCK_FLAGS, &self.sess.id), op("delete", &self.key)];
            let outcome = self.inner.api.txn(ops).await;
            self.inner.unclaim(&self.prefix, self.id);
            match outcome {
                Ok(TxnOutcome::Applied(_)) => return Ok(()),
                // Not held by this session (taken away, or the session is gone).
                Ok(TxnOutcome::RolledBack(_)) => {}
                Err(e) if self.inner.current().as_ref() == Some(&self.sess) => return Err(e),
                // A session that was replaced is destroyed, which releases its locks.
                Err(_) => {}
            }
        }
        self.inner.api.kv_delete(&self.key, None).await.map(|_| ())
    }

    /// Withdraws again, with a growing pause, until it works or the session is no
    /// longer the client's (replaced, or the client closed).
    async fn retry(self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            if self.inner.closed.load(Ordering::SeqCst) || self.inner.current().as_ref() != Some(&self.sess) {
                return;
            }
            if self.once().await.is_ok() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, session: &str, create: u64, modify: u64) -> KvPair {
        let v = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, value);
        serde_json::from_value(serde_json::json!({
            "Key": key, "Value": v, "Session": session, "Flags": LOCK_FLAGS,
            "CreateIndex": create, "ModifyIndex": modify, "LockIndex": 1,
        }))
        .unwrap()
    }

    #[test]
    fn term_comes_from_term_key_only_when_it_names_the_holder() {
        // A ballot leader that proclaimed: .lock was rewritten at 40, acquired at 30.
        let lock = kv("e/.lock", "v2", "sess-a", 12, 40);
        let term = kv("e/.term", "sess-a 7", "", 5, 30);
        let l = leader_of(Some(&lock), Some(&term)).unwrap().unwrap();
        assert_eq!((l.term, l.value.as_slice(), l.key.as_str()), (30, &b"v2"[..], "sess-a"));
        // A `consul lock` holder: .term names an earlier ballot leader.
        let lock = kv("e/.lock", "", "sess-go", 12, 55);
        let l = leader_of(Some(&lock), Some(&term)).unwrap().unwrap();
        assert_eq!(l.term, 55);
        // A session id that merely starts like the holder's does not match.
        let lock = kv("e/.lock", "", "sess", 12, 60);
        assert_eq!(leader_of(Some(&lock), Some(&term)).unwrap().unwrap().term, 60);
        // Released or absent: no leader.
        let free = kv("e/.lock", "", "", 12, 70);
        assert_eq!(leader_of(Some(&free), Some(&term)).unwrap(), None);
        assert_eq!(leader_of(None, Some(&term)).unwrap(), None);
    }

    /// The acquiring transaction with a value of `MAX_VALUE` bytes, the longest
    /// namespace and name (256 bytes each, all `"`, which JSON escapes to two
    /// bytes) and the largest numbers fits Consul's default body limit.
    #[test]
    fn the_largest_acquiring_transaction_fits_consul_s_body_limit() {
        let prefix = format!("{}/{}", "\"".repeat(256), "\"".repeat(256));
        let (lock_key, epoch_key) = (format!("{prefix}/.lock"), format!("{prefix}/.epoch"));
        let session = "3f1d2c4b-aaaa-bbbb-cccc-0123456789ab";
        let candidate_key = format!("{prefix}/.candidates/{session}.{}", u64::MAX);
        let body = |value: &[u8]| {
            let ops = vec![
                op_index("check-index", &epoch_key, u64::MAX),
                op_check_session(&candidate_key, session),
                op_lock("lock", &lock_key, value, LOCK_FLAGS, session),
                op_set(&format!("{prefix}/.term"), format!("{session} {}", u64::MAX).as_bytes(), 0),
                op("get", &lock_key),
            ];
            serde_json::to_vec(&ops).unwrap().len()
        };
        let overhead = body(b"");
        assert!(overhead <= 5658, "{overhead}: the budget in MAX_VALUE's comment");
        let at_limit = body(&vec![0xff; MAX_VALUE]);
        assert!(at_limit <= TXN_MAX_REQ_LEN, "{at_limit} > {TXN_MAX_REQ_LEN}");
        // The margin is for keys and numbers only: a value 2% larger would not fit.
        assert!(body(&vec![0xff; MAX_VALUE * 102 / 100]) > TXN_MAX_REQ_LEN);
    }

    #[test]
    fn epoch_parses_or_names_the_key() {
        assert_eq!(parse_epoch(None).unwrap(), 0);
        assert_eq!(parse_epoch(Some(&kv("e/.epoch", "3", "", 1, 2))).unwrap(), 3);
        let err = parse_epoch(Some(&kv("e/.epoch", "x", "", 1, 2))).unwrap_err();
        assert!(err.to_string().contains("e/.epoch"), "{err}");
    }
}
