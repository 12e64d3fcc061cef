//! The etcd backend's [`Backend`] and [`Entry`]: the session (one lease kept
//! alive), campaigns, watches and `end()`, as the folder's documentation describes.

use crate::sync::lock;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client as ec;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::error::{lease_gone, map_err};
use super::hub::{HubWatch, WatchHub};
use crate::backend::{Backend, Entry, EpochStream, Snapshot, SnapshotStream};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Leader, LostReason, Participant};
use crate::options::{Credentials, Options};
use crate::session::{Health, SessionTracker, Stamp};
use crate::url::BackendUrl;

/// Values up to 1 MiB. etcd refuses a request whose Raft entry is above
/// `--max-request-bytes` (1.5 MiB by default); the transaction that writes a
/// value adds its key (about 550 bytes at most) and a few compares. Reads carry at
/// most one value (see `read` and `position`): several would overflow the
/// client's 4 MiB message limit.
const MAX_VALUE: usize = 1 << 20;
/// How long a failed cleanup (deleting a candidate key) keeps being retried.
const CLEANUP_FOR: Duration = Duration::from_secs(120);
/// How long an entry removed by `end()` waits for the election watch to end its
/// participant before reporting the removal itself.
const END_GRACE: Duration = Duration::from_secs(3);

/// The lease the backend holds now, and the session generation it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LeaseState {
    id: i64,
    generation: u64,
}

pub(crate) struct EtcdBackend {
    shared: Arc<EtcdShared>,
    keepalive: AbortHandle,
}

impl fmt::Debug for EtcdBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdBackend").field("url", &self.shared.shown).finish_non_exhaustive()
    }
}

struct EtcdShared {
    client: ec::Client,
    /// The client that opens watch streams: the same endpoints and options with
    /// etcd's require-leader flag (gRPC metadata `hasleader: true`, as Go's
    /// `clientv3.WithRequireLeader` sends). A member cut off from the rest of its
    /// cluster then cancels the stream ("etcdserver: no leader") a few election
    /// timeouts after it lost its leader, instead of keeping it open and silent
    /// while the others carry on. Only watches use it: etcd-client sets the flag
    /// per client, not per request.
    watcher: ec::Client,
    /// The endpoints and options, for the keepalive's own per-member clients.
    endpoints: Vec<String>,
    copts: ec::ConnectOptions,
    /// The namespace with its trailing `/`, or empty.
    ns: String,
    /// The URL for messages (no password).
    shown: String,
    session: Arc<SessionTracker>,
    lease: watch::Sender<LeaseState>,
    ttl: Duration,
    /// Bound on one unary request.
    op_timeout: Duration,
    /// Candidate keys held by live entries of this client.
    keys: Mutex<HashSet<String>>,
    closed: AtomicBool,
    /// Every watch of this client shares one gRPC stream.
    hub: WatchHub,
    epochs: EpochHub,
}

impl fmt::Debug for EtcdShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdShared").field("url", &self.shown).finish_non_exhaustive()
    }
}

impl EtcdBackend {
    /// Connects, grants the first lease and starts keeping it alive.
    pub(crate) async fn connect(url: &BackendUrl, options: &Options) -> Result<EtcdBackend> {
        let tls = crate::options::tls_files(url, options, "etcds")?;
        let use_tls = tls.is_some();
        let mut copts = ec::ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            // etcd refuses HTTP/2 pings more often than every 5 s (GOAWAY).
            .with_keep_alive(Duration::from_secs(6), Duration::from_secs(3))
            .with_auto_token_refresh(true);
        match (&url.user, &url.password, &options.credentials) {
            (Some(u), Some(p), _) => copts = copts.with_user(u.clone(), p.0.clone()),
            (Some(_), None, _) => {
                return Err(Error::invalid("etcd:// URLs take user:password@; a user without a password was given"))
            }
            (None, _, Some(Credentials::Password { user, password })) => {
                copts = copts.with_user(user.clone(), password.clone())
            }
            (None, _, Some(Credentials::Token(_))) => {
                return Err(Error::invalid("etcd takes a user and password, not a token"));
            }
            _ => {}
        }
        if let Some(t) = tls {
            let mut cfg = ec::TlsOptions::new();
            if let Some(ca) = &t.ca {
                cfg = cfg.ca_certificate(ec::Certificate::from_pem(read_pem(ca, "ca")?));
            } else {
                cfg = cfg.with_enabled_roots();
            }
            match (&t.cert, &t.key) {
                (Some(c), Some(k)) => {
                    cfg = cfg.identity(ec::Identity::from_pem(read_pem(c, "cert")?, read_pem(k, "key")?));
                }
                (None, None) => {}
                _ => return Err(Error::invalid("TLS client authentication needs both cert and key")),
            }
            copts = copts.with_tls(cfg);
        }
        let scheme = if use_tls { "https" } else { "http" };
        let endpoints: Vec<String> = url.hosts.iter().map(|h| format!("{scheme}://{h}")).collect();
        let shown = url.to_string();
        let ns = if url.path.is_empty() { String::new() } else { format!("{}/", url.path) };

        // Report an unreachable cluster as `Connection` before the client's
        // overall connect timeout turns it into `Timeout`.
        let budget = options.connect_timeout.mul_f64(0.9);
        let ttl = options.ttl;
        // Checked: the budget comes from the user (bounded by `Options`' ranges).
        let deadline = Instant::now().checked_add(budget);
        let probe = format!("{ns}\0ballot/probe");
        let setup = async {
            let client =
                ec::Client::connect(&endpoints, Some(copts.clone())).await.map_err(|e| map_err("connect", e))?;
            // A member that is frozen or cut off by a partition keeps its TCP
            // connection open and never answers, and the balanced channel may send
            // every request to it. So with several members, each attempt goes to one
            // member with a bound of its own, and the next attempt to the next
            // member; a member that refuses connections is passed over the same way.
            let n = endpoints.len();
            let mut members: Vec<Option<ec::Client>> = vec![None; n];
            // Start at a member chosen per process, so that many clients do not
            // all open their sessions through the first endpoint.
            let mut idx = if n > 1 { std::process::id() as usize % n } else { 0 };
            let per_attempt = (budget / 4).max(Duration::from_millis(500));
            let mut pause = Duration::from_millis(20);
            loop {
                let sent = Stamp::now();
                let attempt = async {
                    let target = if n > 1 {
                        member_client(&endpoints[idx..=idx], &copts, &mut members[idx], per_attempt)
                            .await
                            .ok_or_else(|| Error::new(ErrorKind::Connection, "etcd member did not answer"))?
                    } else {
                        client.clone()
                    };
                    let lease = grant(&target, ttl).await?;
                    // Granting a lease needs no permission, so probe a read: it fails
                    // for a server with auth on and no (or refused) credentials. A role
                    // that does not cover the probed key is fine here; elections check
                    // their own keys.
                    let count = Some(ec::GetOptions::new().with_count_only());
                    if let Err(e) = target.kv_client().get(probe.clone(), count).await {
                        let denied =
                            matches!(&e, ec::Error::GRpcStatus(s) if s.message().contains("permission denied"));
                        if !denied {
                            return Err(map_err("read", e));
                        }
                    }
                    Ok(lease)
                };
                // A lease granted by an attempt that then ran out of time is left to
                // expire on its own: no key is ever attached to it.
                let outcome = tokio::time::timeout(per_attempt, attempt).await.unwrap_or_else(|_| {
                    Err(Error::new(ErrorKind::Timeout, format!("etcd member gave no answer within {per_attempt:?}")))
                });
                match outcome {
                    Ok(lease) => return Ok::<_, Error>((client, sent, lease)),
                    Err(e) if retryable(&e) && deadline.is_none_or(|d| Instant::now() + pause < d) => {
                        if n > 1 {
                            idx = (idx + 1) % n;
                        }
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_millis(500));
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let (client, sent, lease_id) = match tokio::time::timeout(budget, setup).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!("could not reach etcd at {shown} within the connect timeout {:?}", options.connect_timeout),
                ))
            }
        };
        // Connections are made on first use, so this costs nothing until a watch.
        let watcher = ec::Client::connect(&endpoints, Some(copts.clone().with_require_leader(true)))
            .await
            .map_err(|e| map_err("connect", e))?;
        let session = SessionTracker::new(Some(ttl), options.safety_margin());
        let generation = session.new_session(sent);
        let (lease, _) = watch::channel(LeaseState { id: lease_id, generation });
        let shared = Arc::new(EtcdShared {
            client,
            watcher,
            endpoints,
            copts,
            ns,
            shown,
            session,
            lease,
            ttl,
            op_timeout: options.connect_timeout.max(ttl).max(Duration::from_secs(2)),
            keys: Mutex::new(HashSet::new()),
            closed: AtomicBool::new(false),
            hub: WatchHub::default(),
            epochs: EpochHub::default(),
        });
        let task = tokio::spawn(keep_session(Arc::downgrade(&shared)));
        Ok(EtcdBackend { shared, keepalive: task.abort_handle() })
    }
}

impl Drop for EtcdBackend {
    fn drop(&mut self) {
        self.keepalive.abort();
    }
}

fn read_pem(path: &std::path::Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::io(ErrorKind::InvalidArgument, format_args!("reading TLS {what} {}", path.display()), e))
}

/// Grants a lease of `ttl` (rounded up to whole seconds, as etcd counts).
async fn grant(client: &ec::Client, ttl: Duration) -> Result<i64> {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    let secs = i64::try_from(secs).map_err(|_| Error::invalid("ttl is too long for etcd"))?;
    let resp = client.lease_client().grant(secs, None).await.map_err(|e| map_err("lease grant", e))?;
    if resp.ttl() <= 0 {
        return Err(Error::new(ErrorKind::Backend, format!("etcd granted a lease with TTL {}", resp.ttl())));
    }
    Ok(resp.id())
}

/// A client bound to the one member in `endpoint`, made on first use and kept in
/// `slot`; `None` when it cannot be made within `limit`.
///
/// With several members, the connect and the keepalive talk to one member at a
/// time and move to the next one when it fails or stalls: the balanced channel would
/// keep sending to a frozen (SIGSTOPped, partitioned) member whose TCP connection
/// still looks fine, and the connect would fail or the lease would be lost although
/// the cluster is healthy.
async fn member_client(
    endpoint: &[String],
    copts: &ec::ConnectOptions,
    slot: &mut Option<ec::Client>,
    limit: Duration,
) -> Option<ec::Client> {
    if let Some(c) = slot {
        return Some(c.clone());
    }
    let made = tokio::time::timeout(limit, ec::Client::connect(endpoint, Some(copts.clone()))).await;
    let c = made.ok()?.ok()?;
    *slot = Some(c.clone());
    Some(c)
}

/// Counts a member that failed or stalled; reports the session disconnected once
/// every one of the `n` members has, in a row.
fn missed(tracker: &SessionTracker, generation: u64, misses: &mut usize, n: usize) {
    *misses += 1;
    if *misses >= n.max(1) {
        tracker.disconnected(generation);
    }
}

/// Keeps the current lease alive, and replaces it when it is lost.
async fn keep_session(weak: std::sync::Weak<EtcdShared>) {
    let mut backoff = Duration::from_millis(100);
    let mut members: Vec<Option<ec::Client>> = Vec::new();
    let mut idx = 0;
    // Members that failed or stalled in a row. One member out of several is no
    // reason to suspend: the next one is tried at once, and only when every member
    // has failed in turn is the session reported disconnected. (A renewal that is
    // overdue suspends the session anyway, and the deadline still applies.)
    let mut misses = 0usize;
    loop {
        let Some(sh) = weak.upgrade() else { return };
        if sh.closed.load(Ordering::SeqCst) {
            return;
        }
        let cur = *sh.lease.borrow();
        let st = sh.session.status();
        if st.generation != cur.generation || st.health == Health::Lost {
            // The lease is dead to us (expired, or past its local deadline): make
            // sure its keys go too, and start a new session.
            let old = cur.id;
            let client = sh.client.clone();
            let t = sh.op_timeout;
            tokio::spawn(async move {
                let _ = tokio::time::timeout(t, client.lease_client().revoke(old)).await;
            });
            let sent = Stamp::now();
            match tokio::time::timeout(sh.op_timeout, grant(&sh.client, sh.ttl)).await {
                Ok(Ok(id)) => {
                    // The tracker's new generation and the lease are published
                    // under the lease's write lock, so that a join that sees the
                    // new generation healthy also reads the new lease.
                    sh.lease.send_modify(|l| {
                        let generation = sh.session.new_session(sent);
                        *l = LeaseState { id, generation };
                    });
                    backoff = Duration::from_millis(100);
                }
                _ => {
                    drop(sh);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
            continue;
        }
        let interval = sh.ttl / 3;
        let tracker = sh.session.clone();
        let n = sh.endpoints.len();
        let client = if n > 1 {
            members.resize(n, None);
            member_client(&sh.endpoints[idx..=idx], &sh.copts, &mut members[idx], sh.ttl / 3).await
        } else {
            Some(sh.client.clone())
        };
        drop(sh);
        let Some(client) = client else {
            missed(&tracker, cur.generation, &mut misses, n);
            idx = (idx + 1) % n.max(1);
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let mut lc = client.lease_client();
        // How long an answer may take before the member counts as stalled. Half an
        // interval leaves time, before the local deadline, to reach another member
        // and for the cluster to elect a new raft leader when the stalled member
        // was the leader.
        let stall = (interval / 2).max(Duration::from_millis(500));
        // Opening the stream sends the first keepalive and waits for its answer.
        let sent = Stamp::now();
        let mut last_send = tokio::time::Instant::now();
        let (mut keeper, mut stream) = match tokio::time::timeout(stall, lc.keep_alive(cur.id)).await {
            Ok(Ok(pair)) => {
                tracker.acked(cur.generation, sent);
                backoff = Duration::from_millis(100);
                misses = 0;
                pair
            }
            Ok(Err(e)) if lease_gone(&e) => {
                tracker.expired(cur.generation);
                continue;
            }
            Ok(Err(_)) | Err(_) => {
                missed(&tracker, cur.generation, &mut misses, n);
                idx = (idx + 1) % n.max(1);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(interval.max(Duration::from_millis(100)));
                continue;
            }
        };
        let mut sessions = tracker.subscribe();
        loop {
            // The next keepalive is due an interval after the previous one was
            // sent, not after its answer came: the overdue mark counts from the
            // send, so a slow answer must not push the next keepalive past it.
            // Wake at once if the session is lost locally.
            let woke_lost = tokio::select! {
                _ = tokio::time::sleep_until(last_send + interval) => false,
                _ = sessions.wait_for(|s| s.generation != cur.generation || s.health == Health::Lost) => true,
            };
            if woke_lost {
                break;
            }
            let sent = Stamp::now();
            last_send = tokio::time::Instant::now();
            if keeper.keep_alive().await.is_err() {
                missed(&tracker, cur.generation, &mut misses, n);
                idx = (idx + 1) % n.max(1);
                break;
            }
            match tokio::time::timeout(stall, stream.message()).await {
                Ok(Ok(Some(resp))) if resp.ttl() > 0 => {
                    tracker.acked(cur.generation, sent);
                    misses = 0;
                }
                Ok(Ok(Some(_))) => {
                    tracker.expired(cur.generation);
                    break;
                }
                Ok(Err(e)) if lease_gone(&e) => {
                    tracker.expired(cur.generation);
                    break;
                }
                // A stream that ended, failed, or answers too slowly: drop it (so a
                // late answer can never be credited to a later send) and reopen.
                _ => {
                    missed(&tracker, cur.generation, &mut misses, n);
                    idx = (idx + 1) % n.max(1);
                    break;
                }
            }
        }
    }
}

/// One read of an election: its candidates by create revision, its epoch, and
/// the revision the read saw.
struct Read {
    /// Without their values.
    candidates: Vec<ec::KeyValue>,
    /// The first candidate, with its value.
    leader: Option<ec::KeyValue>,
    epoch: u64,
    revision: i64,
}

impl Read {
    fn leader(&self) -> Option<Leader> {
        self.leader.as_ref().map(to_leader)
    }
}

/// One candidate's place in its election (see `EtcdShared::position`).
struct Position {
    own: Option<ec::KeyValue>,
    pred: Option<ec::KeyValue>,
    epoch: u64,
    revision: i64,
}

fn to_leader(kv: &ec::KeyValue) -> Leader {
    Leader::new(kv.value().to_vec(), kv.create_revision() as u64, String::from_utf8_lossy(kv.key()).into_owned())
}

fn parse_epoch(kv: Option<&ec::KeyValue>) -> u64 {
    kv.and_then(|kv| std::str::from_utf8(kv.value()).ok()).and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

fn header_revision(h: Option<&ec::ResponseHeader>) -> i64 {
    h.map(|h| h.revision()).unwrap_or(0)
}

impl EtcdShared {
    fn prefix(&self, election: &str) -> String {
        format!("{}{election}/", self.ns)
    }

    fn epoch_key(&self, election: &str) -> String {
        format!("{}\0ballot/epoch/{election}", self.ns)
    }

    /// Runs one unary request, bounded by the op timeout. Connection failures
    /// (a dead member of a cluster, a refused connection) are retried within that
    /// bound: the balanced channel then picks another member. Every request ballot
    /// sends is safe to repeat.
    async fn rpc<T, F, Fut>(&self, what: &str, call: F) -> Result<T>
    where
        F: FnMut(ec::Client) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, ec::Error>>,
    {
        self.rpc_via(&self.client, what, call).await
    }

    /// [`rpc`](Self::rpc) through `client`.
    async fn rpc_via<T, F, Fut>(&self, client: &ec::Client, what: &str, mut call: F) -> Result<T>
    where
        F: FnMut(ec::Client) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, ec::Error>>,
    {
        let deadline = Instant::now() + self.op_timeout;
        let mut pause = Duration::from_millis(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let err = match tokio::time::timeout(left, call(client.clone())).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => map_err(what, e),
                Err(_) => {
                    return Err(Error::new(
                        ErrorKind::Connection,
                        format!("etcd {what}: no answer from {} within {:?}", self.shown, self.op_timeout),
                    ))
                }
            };
            if !retryable(&err) || Instant::now() + pause >= deadline {
                return Err(err);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    async fn txn(&self, what: &str, txn: ec::Txn) -> Result<ec::TxnResponse> {
        self.rpc(what, |mut c| {
            let t = txn.clone();
            async move { c.txn(t).await }
        })
        .await
    }

    async fn get(&self, what: &str, key: &str) -> Result<ec::GetResponse> {
        self.rpc(what, |mut c| {
            let k = key.to_string();
            async move { c.get(k, None).await }
        })
        .await
    }

    /// Reads the candidates and the epoch of `election` at one revision.
    ///
    /// The candidates are read without their values, and only the leader's value
    /// is read: every candidate may hold a value of up to 1 MiB, and a response
    /// above the client's 4 MiB message limit would fail (4 candidates at the limit
    /// did, in `observe`).
    async fn read(&self, election: &str) -> Result<Read> {
        let prefix = self.prefix(election);
        let by_create = || ec::GetOptions::new().with_prefix().with_sort(ec::SortTarget::Create, ec::SortOrder::Ascend);
        let txn = ec::Txn::new().and_then(vec![
            ec::TxnOp::get(prefix.clone(), Some(by_create().with_keys_only())),
            ec::TxnOp::get(self.epoch_key(election), None),
            // The oldest key under the prefix, with its value: the leader, unless a
            // nested election's key is older (then it is read below).
            ec::TxnOp::get(prefix.clone(), Some(by_create().with_limit(1))),
        ]);
        let resp = self.txn("read", txn).await?;
        let revision = header_revision(resp.header());
        let mut candidates = Vec::new();
        let mut epoch = 0;
        let mut oldest = None;
        for (i, r) in resp.op_responses().into_iter().enumerate() {
            if let ec::TxnOpResponse::Get(mut g) = r {
                match i {
                    0 => {
                        candidates =
                            g.take_kvs().into_iter().filter(|kv| is_candidate(kv.key(), prefix.as_bytes())).collect()
                    }
                    1 => epoch = parse_epoch(g.kvs().first()),
                    _ => oldest = g.take_kvs().into_iter().next(),
                }
            }
        }
        let leader = match (candidates.first(), oldest) {
            (None, _) => None,
            (Some(first), Some(kv)) if kv.key() == first.key() => Some(kv),
            (Some(first), _) => {
                let at = ec::GetOptions::new().with_revision(revision);
                let key = first.key().to_vec();
                let mut g = self
                    .rpc("read", |mut c| {
                        let (k, o) = (key.clone(), at.clone());
                        async move { c.get(k, Some(o)).await }
                    })
                    .await?;
                g.take_kvs().into_iter().next()
            }
        };
        Ok(Read { candidates, leader, epoch, revision })
    }

    /// The candidates of `election` with their values, at one revision. The keys
    /// come from `read` (without values, for the size reason given there); each
    /// other value is then read at that same revision, so the list is one
    /// snapshot. A revision compacted meanwhile makes the whole read start again.
    async fn participants(&self, election: &str) -> Result<Vec<Participant>> {
        let mut tries = 0;
        loop {
            tries += 1;
            let read = self.read(election).await?;
            let at = ec::GetOptions::new().with_revision(read.revision);
            let leader = read.leader();
            let rest = read.candidates.iter().skip(usize::from(leader.is_some())).map(|kv| {
                let (key, at) = (kv.key().to_vec(), at.clone());
                async move {
                    self.rpc("read", |mut c| {
                        let (k, o) = (key.clone(), at.clone());
                        async move { c.get(k, Some(o)).await }
                    })
                    .await
                }
            });
            let values = match futures_util::future::try_join_all(rest).await {
                Ok(v) => v,
                Err(e) if e.message().contains("compacted") && tries < 3 => continue,
                Err(e) => return Err(e),
            };
            let mut out = Vec::with_capacity(read.candidates.len());
            if let Some(l) = leader {
                out.push(Participant::new(l.key, l.value, true));
            }
            for mut g in values {
                // A key deleted at this revision cannot be: it was read at it.
                if let Some(kv) = g.take_kvs().into_iter().next() {
                    out.push(Participant::new(
                        String::from_utf8_lossy(kv.key()).into_owned(),
                        kv.value().to_vec(),
                        false,
                    ));
                }
            }
            return Ok(out);
        }
    }

    /// Reads, at one revision, what a candidate needs to know about itself: its own
    /// key, the candidate just before it (the one with the largest smaller create
    /// revision), and the epoch. Unlike `read` its size does not grow with the
    /// number of candidates, so a handoff costs the same with 2 or 1,000 of them.
    async fn position(&self, election: &str, key: &str, create_rev: i64) -> Result<Position> {
        let prefix = self.prefix(election);
        // Keys of nested elections ("svc/x/...") share the prefix and are skipped:
        // a few extra rows keep that from needing a second read, and the full read
        // covers the case where every row was one.
        const ROWS: i64 = 8;
        // Keys only: each row may hold a value of up to 1 MiB.
        let before = ec::GetOptions::new()
            .with_prefix()
            .with_keys_only()
            .with_max_create_revision(create_rev - 1)
            .with_sort(ec::SortTarget::Create, ec::SortOrder::Descend)
            .with_limit(ROWS);
        let txn = ec::Txn::new().and_then(vec![
            ec::TxnOp::get(key, None),
            ec::TxnOp::get(self.epoch_key(election), None),
            ec::TxnOp::get(prefix.clone(), Some(before)),
        ]);
        let resp = self.txn("read", txn).await?;
        let revision = header_revision(resp.header());
        let mut own = None;
        let mut epoch = 0;
        let mut pred = None;
        let mut unsure = false;
        for (i, r) in resp.op_responses().into_iter().enumerate() {
            let ec::TxnOpResponse::Get(mut g) = r else { continue };
            match i {
                0 => own = g.take_kvs().into_iter().next(),
                1 => epoch = parse_epoch(g.kvs().first()),
                _ => {
                    let more = g.more();
                    pred = g.take_kvs().into_iter().find(|kv| is_candidate(kv.key(), prefix.as_bytes()));
                    unsure = pred.is_none() && more;
                }
            }
        }
        if unsure {
            let r = self.read(election).await?;
            pred = r.candidates.into_iter().take_while(|kv| kv.create_revision() < create_rev).last();
            // Watching from the older revision of the two can only wake early.
            return Ok(Position { own, pred, epoch: r.epoch, revision });
        }
        Ok(Position { own, pred, epoch, revision })
    }

    /// Opens one watch stream on `keys` (exact keys, or prefixes when flagged) from
    /// `start` on, with require-leader (see `watcher`).
    async fn open_watch(&self, keys: &[(String, bool)], start: i64) -> Result<HubWatch> {
        self.hub
            .open(keys, start, |key, opts| {
                self.rpc_via(&self.watcher, "watch", move |mut c| {
                    let (k, o) = (key.clone(), opts.clone());
                    async move { c.watch(k, Some(o)).await }
                })
            })
            .await
    }

    /// Picks a candidate key for a new entry under `lease` and reserves it.
    fn reserve_key(&self, election: &str, lease: i64) -> String {
        let base = format!("{}{:x}", self.prefix(election), lease);
        let mut keys = lock(&self.keys);
        let mut key = base.clone();
        let mut n = 1;
        while keys.contains(&key) {
            key = format!("{base}_{n}");
            n += 1;
        }
        keys.insert(key.clone());
        key
    }

    fn release_key(&self, key: &str) {
        lock(&self.keys).remove(key);
    }

    /// Deletes `key` if it is still the one created at `create_rev` (0: any).
    async fn delete_key(&self, key: &str, create_rev: i64) -> Result<()> {
        let del = ec::TxnOp::delete(key, None);
        let txn = if create_rev > 0 {
            ec::Txn::new()
                .when(vec![ec::Compare::create_revision(key, ec::CompareOp::Equal, create_rev)])
                .and_then(vec![del])
        } else {
            ec::Txn::new().and_then(vec![del])
        };
        self.txn("delete", txn).await.map(|_| ())
    }

    /// Deletes `key` now, retrying in the background on failure, and frees its
    /// reservation once it is gone (or its lease is, which takes the key along).
    async fn remove_key(self: &Arc<Self>, key: String, create_rev: i64, lease: i64) -> Result<()> {
        match self.delete_key(&key, create_rev).await {
            Ok(()) => {
                self.release_key(&key);
                Ok(())
            }
            Err(e) => {
                let sh = self.clone();
                tokio::spawn(async move {
                    let until = Instant::now() + CLEANUP_FOR;
                    let mut pause = Duration::from_millis(200);
                    while Instant::now() < until && sh.lease.borrow().id == lease && !sh.closed.load(Ordering::SeqCst) {
                        tokio::time::sleep(pause).await;
                        if sh.delete_key(&key, create_rev).await.is_ok() {
                            break;
                        }
                        pause = (pause * 2).min(Duration::from_secs(5));
                    }
                    sh.release_key(&key);
                });
                Err(e)
            }
        }
    }
}

/// Whether `key` is a direct child of `prefix` (a candidate of that election).
fn is_candidate(key: &[u8], prefix: &[u8]) -> bool {
    key.strip_prefix(prefix).is_some_and(|rest| !rest.is_empty() && !rest.contains(&b'/'))
}

/// What a watch said.
enum Seen {
    /// Something changed (or the watch broke): read again.
    Changed,
    /// The stream failed; the error says why.
    Failed(Error),
}

/// Waits for the next event (or cancellation) on a watch stream.
async fn next_change(stream: &mut HubWatch, mut relevant: impl FnMut(&ec::Event) -> bool) -> Seen {
    loop {
        match stream.message().await {
            Ok(resp) => {
                if resp.canceled() || resp.compact_revision() > 0 {
                    // Compacted or cancelled by the server: a fresh read starts over.
                    return Seen::Changed;
                }
                if resp.events().iter().any(&mut relevant) {
                    return Seen::Changed;
                }
            }
            Err(e) => return Seen::Failed(e),
        }
    }
}

fn retryable(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout)
}

/// Whether etcd refused or cancelled a require-leader stream because the member it
/// reached has no raft leader (`rpctypes.ErrGRPCNoLeader`).
fn no_leader(e: &Error) -> bool {
    e.message().contains("etcdserver: no leader")
}

#[async_trait]
impl Backend for EtcdBackend {
    fn session(&self) -> &Arc<SessionTracker> {
        &self.shared.session
    }

    fn max_value_len(&self) -> usize {
        MAX_VALUE
    }

    async fn join(&self, election: &str, value: &[u8]) -> Result<Arc<dyn Entry>> {
        let sh = &self.shared;
        // The status first: a new generation is published together with its lease.
        let st = sh.session.status();
        let lease = *sh.lease.borrow();
        if st.generation != lease.generation || st.health == Health::Lost {
            return Err(Error::new(ErrorKind::SessionLost, "the etcd lease is being replaced"));
        }
        let key = sh.reserve_key(election, lease.id);
        // Until the entry exists, a failure or a dropped future must not leave the
        // key behind (it would lead some day with nobody acting on it).
        let mut guard = KeyGuard { shared: sh.clone(), key: key.clone(), lease: lease.id, armed: true };
        let txn = ec::Txn::new().and_then(vec![
            ec::TxnOp::put(key.clone(), value.to_vec(), Some(ec::PutOptions::new().with_lease(lease.id))),
            ec::TxnOp::get(key.clone(), None),
            ec::TxnOp::get(sh.epoch_key(election), None),
        ]);
        let resp = match sh.txn("campaign", txn).await {
            Ok(r) => r,
            Err(e) => {
                if e.message().contains("lease not found") {
                    sh.session.expired(lease.generation);
                    return Err(Error::new(ErrorKind::SessionLost, format!("the etcd lease expired: {e}")));
                }
                return Err(e);
            }
        };
        let ops = resp.op_responses();
        let created = match ops.get(1) {
            Some(ec::TxnOpResponse::Get(g)) => g.kvs().first().map(|kv| kv.create_revision()),
            _ => None,
        };
        let epoch = match ops.get(2) {
            Some(ec::TxnOpResponse::Get(g)) => parse_epoch(g.kvs().first()),
            _ => 0,
        };
        let Some(create_rev) = created else {
            return Err(Error::new(ErrorKind::Backend, format!("etcd did not return the key {key:?} just written")));
        };
        guard.armed = false;
        Ok(Arc::new(EtcdEntry {
            shared: sh.clone(),
            election: election.to_string(),
            key,
            lease: lease.id,
            generation: lease.generation,
            create_rev,
            epoch,
            gone: AtomicBool::new(false),
        }))
    }

    async fn leader(&self, election: &str) -> Result<Option<Leader>> {
        Ok(self.shared.read(election).await?.leader())
    }

    async fn participants(&self, election: &str) -> Result<Vec<Participant>> {
        self.shared.participants(election).await
    }

    async fn watch(&self, election: &str) -> Result<SnapshotStream> {
        let sh = self.shared.clone();
        let first = sh.read(election).await?;
        let (tx, mut rx) = mpsc::channel::<Result<Snapshot>>(16);
        let snap = Snapshot { leader: first.leader(), epoch: first.epoch };
        let _ = tx.send(Ok(snap)).await;
        let name = election.to_string();
        tokio::spawn(async move {
            let tx2 = tx.clone();
            tokio::select! {
                _ = watch_loop(sh, name, first.revision, tx) => {}
                _ = tx2.closed() => {}
            }
        });
        Ok(Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))))
    }

    async fn watch_epoch(&self, election: &str) -> Result<EpochStream> {
        let sh = &self.shared;
        let key = sh.epoch_key(election);
        let first = sh.get("reading the epoch", &key).await?;
        let epoch = parse_epoch(first.kvs().first());
        let rx = {
            let mut subs = lock(&sh.epochs.subs);
            let tx = subs.entry(key.clone()).or_insert_with(|| watch::channel(0).0);
            tx.send_if_modified(|e| std::mem::replace(e, (*e).max(epoch)) < epoch);
            tx.subscribe()
        };
        // The shared watch starts after this read if it is not running: every
        // end() from here on reaches this subscriber.
        sh.epochs.ensure_running(sh, header_revision(first.header()));
        let sub = EpochSub { rx, key, shared: Arc::downgrade(sh), first: true };
        Ok(Box::pin(futures_util::stream::unfold(sub, |mut sub| async move {
            if !std::mem::take(&mut sub.first) {
                sub.rx.changed().await.ok()?;
            }
            let epoch = *sub.rx.borrow_and_update();
            Some((Ok(epoch), sub))
        })))
    }

    async fn end(&self, election: &str) -> Result<()> {
        let sh = &self.shared;
        let ekey = sh.epoch_key(election);
        for _ in 0..16 {
            let r = sh.read(election).await?;
            // The epoch key's mod revision, for the compare-and-swap.
            let cur = sh.get("read epoch", &ekey).await?;
            let (epoch, mod_rev) = match cur.kvs().first() {
                Some(kv) => (parse_epoch(Some(kv)), kv.mod_revision()),
                None => (0, 0),
            };
            let mut ops = vec![ec::TxnOp::put(ekey.clone(), (epoch.max(r.epoch) + 1).to_string(), None)];
            ops.extend(r.candidates.iter().map(|c| ec::TxnOp::delete(c.key().to_vec(), None)));
            let txn = ec::Txn::new()
                .when(vec![ec::Compare::mod_revision(ekey.clone(), ec::CompareOp::Equal, mod_rev)])
                .and_then(ops);
            if sh.txn("end", txn).await?.succeeded() {
                return Ok(());
            }
        }
        Err(Error::new(ErrorKind::Backend, format!("end({election:?}) kept racing with other end() calls")))
    }

    async fn close(&self) {
        let sh = &self.shared;
        if sh.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.keepalive.abort();
        let id = sh.lease.borrow().id;
        let mut lc = sh.client.lease_client();
        let _ = tokio::time::timeout(Duration::from_secs(2), lc.revoke(id)).await;
        sh.session.expired(sh.lease.borrow().generation);
    }
}

/// Re-reads `election` after every change and sends a snapshot when it differs.
async fn watch_loop(sh: Arc<EtcdShared>, election: String, mut revision: i64, tx: mpsc::Sender<Result<Snapshot>>) {
    let keys = [(sh.prefix(&election), true), (sh.epoch_key(&election), false)];
    let mut backoff = Duration::from_millis(50);
    loop {
        let seen = match Box::pin(sh.open_watch(&keys, revision + 1)).await {
            Ok(mut stream) => next_change(&mut stream, |_| true).await,
            Err(e) => Seen::Failed(e),
        };
        if let Seen::Failed(e) = seen {
            // A member without a leader cannot tell us anything; the observer hears
            // of it (the engine reports the error and opens the watch again) rather
            // than waiting on a silent stream.
            if !retryable(&e) || no_leader(&e) {
                let _ = tx.send(Err(e)).await;
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
        match Box::pin(sh.read(&election)).await {
            Ok(r) => {
                revision = r.revision;
                backoff = Duration::from_millis(50);
                if tx.send(Ok(Snapshot { leader: r.leader(), epoch: r.epoch })).await.is_err() {
                    return;
                }
            }
            Err(e) if retryable(&e) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

// Long-lived loops (a waiting or leading candidate, a watch) box the
// requests they make, so that an idle loop holds a small future instead of room
// for a whole gRPC call: about 10 KiB per election held.

/// The epochs of every election of one client, from one watch of the epoch keys'
/// common prefix. Only `end()` writes them, so candidates coming and going cost it
/// nothing, and an election costs one channel instead of a watch and a task.
#[derive(Default)]
struct EpochHub {
    /// Epoch key -> the latest epoch seen; subscribers hold receivers.
    subs: Mutex<HashMap<String, watch::Sender<u64>>>,
    task: Mutex<Option<AbortHandle>>,
}

impl EpochHub {
    /// Starts the shared watch from `revision + 1` unless it runs.
    fn ensure_running(&self, sh: &Arc<EtcdShared>, revision: i64) {
        let mut task = lock(&self.task);
        if task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        *task = Some(tokio::spawn(epoch_hub_loop(Arc::downgrade(sh), revision)).abort_handle());
    }

    /// Records `epoch` for `key`; epochs never go back.
    fn publish(&self, key: &[u8], epoch: u64) {
        let subs = lock(&self.subs);
        if let Some(tx) = std::str::from_utf8(key).ok().and_then(|k| subs.get(k)) {
            tx.send_if_modified(|e| std::mem::replace(e, (*e).max(epoch)) < epoch);
        }
    }
}

impl Drop for EpochHub {
    fn drop(&mut self) {
        if let Some(t) = lock(&self.task).take() {
            t.abort();
        }
    }
}

/// One subscriber of the epoch hub; the last one of a key removes it.
struct EpochSub {
    rx: watch::Receiver<u64>,
    key: String,
    shared: std::sync::Weak<EtcdShared>,
    first: bool,
}

impl Drop for EpochSub {
    fn drop(&mut self) {
        let Some(sh) = self.shared.upgrade() else { return };
        let mut subs = lock(&sh.epochs.subs);
        // This receiver still counts until it is dropped, right after.
        if subs.get(&self.key).is_some_and(|tx| tx.receiver_count() <= 1) {
            subs.remove(&self.key);
        }
    }
}

/// Watches every epoch key of the client's namespace. After the stream broke it
/// reads them all again, so that no `end()` in between is missed.
async fn epoch_hub_loop(shared: std::sync::Weak<EtcdShared>, mut revision: i64) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(sh) = shared.upgrade() else { return };
        let prefix = sh.epoch_key("");
        match Box::pin(sh.open_watch(&[(prefix.clone(), true)], revision + 1)).await {
            Ok(mut stream) => {
                drop(sh);
                loop {
                    match stream.message().await {
                        // Compacted past our revision or cancelled: read again.
                        Ok(resp) if resp.canceled() || resp.compact_revision() > 0 => break,
                        Ok(resp) => {
                            backoff = Duration::from_millis(50);
                            let Some(sh) = shared.upgrade() else { return };
                            for ev in resp.events() {
                                let Some(kv) = ev.kv() else { continue };
                                revision = revision.max(kv.mod_revision());
                                if ev.event_type() == ec::EventType::Put {
                                    sh.epochs.publish(kv.key(), parse_epoch(Some(kv)));
                                }
                            }
                        }
                        Err(_) => break,
                    }
                }
            }
            Err(_) => drop(sh),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
        let Some(sh) = shared.upgrade() else { return };
        let all = ec::GetOptions::new().with_prefix();
        let read = sh
            .rpc("reading the epochs", |mut c| {
                let (k, o) = (sh.epoch_key(""), all.clone());
                async move { c.get(k, Some(o)).await }
            })
            .await;
        if let Ok(r) = read {
            revision = header_revision(r.header());
            for kv in r.kvs() {
                sh.epochs.publish(kv.key(), parse_epoch(Some(kv)));
            }
        }
    }
}

/// Deletes a candidate key that never became an entry.
struct KeyGuard {
    shared: Arc<EtcdShared>,
    key: String,
    lease: i64,
    armed: bool,
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (sh, key, lease) = (self.shared.clone(), std::mem::take(&mut self.key), self.lease);
        crate::runtime::spawn_detached(async move {
            let _ = sh.remove_key(key, 0, lease).await;
        });
    }
}

struct EtcdEntry {
    shared: Arc<EtcdShared>,
    election: String,
    key: String,
    lease: i64,
    generation: u64,
    create_rev: i64,
    /// The epoch when the key was written: a later one means `end()` removed it.
    epoch: u64,
    gone: AtomicBool,
}

impl fmt::Debug for EtcdEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdEntry").field("key", &self.key).field("create_rev", &self.create_rev).finish()
    }
}

impl EtcdEntry {
    fn mine(&self, kv: &ec::KeyValue) -> bool {
        kv.key() == self.key.as_bytes() && kv.create_revision() == self.create_rev
    }

    /// Whether the server says our lease is gone (expired or revoked).
    async fn lease_is_gone(&self) -> bool {
        let r = self
            .shared
            .rpc("lease time-to-live", |mut c| {
                let id = self.lease;
                async move { c.lease_time_to_live(id, None).await }
            })
            .await;
        match r {
            Ok(resp) => resp.ttl() <= 0,
            Err(e) => e.message().contains("not found"),
        }
    }

    /// Why our key disappeared: `end()`, our lease's end (the session is then
    /// marked expired, so the engine requeues under a new lease), or another client.
    async fn vanished(&self, epoch_now: u64) -> VanishCause {
        if epoch_now > self.epoch {
            VanishCause::Ended
        } else if self.lease_is_gone().await {
            self.shared.session.expired(self.generation);
            VanishCause::LeaseGone
        } else {
            VanishCause::Deleted
        }
    }
}

enum VanishCause {
    Ended,
    LeaseGone,
    Deleted,
}

#[async_trait]
impl Entry for EtcdEntry {
    fn epoch(&self) -> Option<u64> {
        Some(self.epoch)
    }

    async fn wait_won(&self) -> Result<Leader> {
        let sh = &self.shared;
        let mut backoff = Duration::from_millis(50);
        loop {
            let r = match Box::pin(sh.position(&self.election, &self.key, self.create_rev)).await {
                Ok(r) => r,
                Err(e) if retryable(&e) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some(own) = r.own.as_ref().filter(|kv| self.mine(kv)) else {
                // The engine learns of end() from the election watch and of a lost
                // lease from the session; either cancels this wait (so the state reads
                // Ended, or the campaign requeues). Only if neither does, fail here.
                return Err(match Box::pin(self.vanished(r.epoch)).await {
                    VanishCause::Ended => {
                        tokio::time::sleep(END_GRACE).await;
                        Error::ended()
                    }
                    VanishCause::LeaseGone => {
                        tokio::time::sleep(END_GRACE).await;
                        Error::new(ErrorKind::SessionLost, "the etcd lease of this candidate expired")
                    }
                    VanishCause::Deleted => Error::new(
                        ErrorKind::Backend,
                        format!("the candidate key {:?} was deleted by another client", self.key),
                    ),
                });
            };
            // end() deletes the candidates it read and bumps the epoch in one
            // transaction, so a candidate that joined after that read outlives the
            // end: it belongs to the ended round and must not win it (the ZooKeeper
            // backend checks the same). The epoch comes from the read that found no
            // predecessor, so no end() can slip between the check and the win.
            if r.epoch > self.epoch {
                return Err(Error::new(ErrorKind::Ended, "the election was ended by end()"));
            }
            let Some(pred) = &r.pred else {
                return Ok(to_leader(own));
            };
            // Watch only the key just before ours, and our own key.
            let pred = String::from_utf8_lossy(pred.key()).into_owned();
            let keys = [(pred, false), (self.key.clone(), false)];
            let seen = match Box::pin(sh.open_watch(&keys, r.revision + 1)).await {
                Ok(mut s) => next_change(&mut s, |ev| ev.event_type() == ec::EventType::Delete).await,
                Err(e) => Seen::Failed(e),
            };
            match seen {
                Seen::Changed => backoff = Duration::from_millis(50),
                Seen::Failed(e) if retryable(&e) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Seen::Failed(e) => return Err(e),
            }
        }
    }

    async fn lost(&self) -> LostReason {
        let sh = &self.shared;
        let mut backoff = Duration::from_millis(50);
        loop {
            let r = match Box::pin(sh.position(&self.election, &self.key, self.create_rev)).await {
                Ok(r) => r,
                Err(_) => {
                    // The session tracker judges connectivity; keep looking.
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            backoff = Duration::from_millis(50);
            if !r.own.as_ref().is_some_and(|kv| self.mine(kv)) {
                return match Box::pin(self.vanished(r.epoch)).await {
                    VanishCause::Ended => {
                        // The election watch reports Ended; give it the lead.
                        tokio::time::sleep(END_GRACE).await;
                        LostReason::Deleted
                    }
                    VanishCause::LeaseGone => LostReason::SessionLost,
                    VanishCause::Deleted => LostReason::Deleted,
                };
            }
            let keys = [(self.key.clone(), false)];
            let seen = match Box::pin(sh.open_watch(&keys, r.revision + 1)).await {
                Ok(mut s) => next_change(&mut s, |ev| ev.event_type() == ec::EventType::Delete).await,
                Err(e) => Seen::Failed(e),
            };
            if let Seen::Failed(_) = seen {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }

    async fn proclaim(&self, value: &[u8]) -> Result<()> {
        let sh = &self.shared;
        let txn = ec::Txn::new()
            .when(vec![ec::Compare::create_revision(self.key.clone(), ec::CompareOp::Equal, self.create_rev)])
            .and_then(vec![ec::TxnOp::put(
                self.key.clone(),
                value.to_vec(),
                Some(ec::PutOptions::new().with_lease(self.lease)),
            )]);
        if !sh.txn("proclaim", txn).await?.succeeded() {
            return Err(Error::new(ErrorKind::NotLeader, format!("the leader key {:?} is gone", self.key)));
        }
        Ok(())
    }

    async fn verify(&self) -> Result<bool> {
        let sh = &self.shared;
        if sh.lease.borrow().id != self.lease {
            return Ok(false);
        }
        let resp = sh.get("verify", &self.key).await?;
        Ok(resp.kvs().first().is_some_and(|kv| self.mine(kv) && kv.lease() == self.lease))
    }

    async fn withdraw(&self) -> Result<()> {
        if self.gone.load(Ordering::SeqCst) {
            return Ok(());
        }
        let r = self.shared.remove_key(self.key.clone(), self.create_rev, self.lease).await;
        if r.is_ok() {
            self.gone.store(true, Ordering::SeqCst);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_direct_children_are_candidates() {
        assert!(is_candidate(b"app/svc/694d8b3c1a2f", b"app/svc/"));
        assert!(is_candidate(b"svc/694d_1", b"svc/"));
        assert!(!is_candidate(b"svc/", b"svc/"), "the prefix itself");
        assert!(!is_candidate(b"svc/x/694d", b"svc/"), "a nested election's candidate");
        assert!(!is_candidate(b"svcx/694d", b"svc/"));
        assert!(!is_candidate(b"\0ballot/epoch/svc", b"svc/"));
    }

    #[test]
    fn epoch_key_is_outside_every_election_prefix() {
        // The NUL byte never appears in a name, so no `<ns><name>/` is a prefix of it.
        for ns in ["", "app/"] {
            let epoch_key = format!("{ns}\0ballot/epoch/svc/x");
            for name in ["svc", "svc/x", "app", "ballot"] {
                assert!(!epoch_key.starts_with(&format!("{ns}{name}/")), "{epoch_key:?} under {name}");
            }
            assert!(epoch_key.starts_with(ns), "inside the namespace");
        }
    }

    /// Against the real etcd of `tests/run.sh`: a watch that starts at a compacted
    /// revision is cancelled by the server, and is taken as "read again", not as a
    /// broken watch (etcd issue 7815).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_watch_from_a_compacted_revision_means_read_again() {
        let base = std::env::var("BALLOT_TEST_ETCD").unwrap_or_else(|_| {
            panic!("BALLOT_TEST_ETCD is not set: run `bash tests/run.sh`, or start etcd with tests/servers/harness.py")
        });
        let ns = format!("compaction-{}-{:x}", std::process::id(), std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos());
        let url = BackendUrl::parse(&format!("{base}/{ns}")).unwrap();
        let backend = EtcdBackend::connect(&url, &Options::default()).await.unwrap();
        let sh = backend.shared.clone();
        let mut c = sh.client.clone();
        let put = c.put(format!("{ns}/svc/x"), "v", None).await.unwrap();
        let rev = put.header().unwrap().revision();
        c.put(format!("{ns}/svc/x"), "w", None).await.unwrap();
        c.compact(rev + 1, None).await.unwrap();
        let mut stream = sh.open_watch(&[(sh.prefix("svc"), true)], rev).await.unwrap();
        let seen = tokio::time::timeout(Duration::from_secs(10), next_change(&mut stream, |_| false)).await.unwrap();
        assert!(matches!(seen, Seen::Changed), "a compacted start revision must lead to a new read");
        // And the election reads fine afterwards.
        assert_eq!(backend.leader("svc").await.unwrap().map(|l| l.value), Some(b"w".to_vec()));
        backend.close().await;
    }

    /// Against the real etcd of `tests/run.sh`: `end()` reads the candidates, then
    /// bumps the epoch and deletes those it read in one transaction. A candidate that
    /// joins between the two survives the transaction; when the leader it waits on is
    /// deleted by it, it must not win the round that was ended.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_candidate_that_joined_during_end_does_not_win() {
        let base = std::env::var("BALLOT_TEST_ETCD").unwrap_or_else(|_| {
            panic!("BALLOT_TEST_ETCD is not set: run `bash tests/run.sh`, or start etcd with tests/servers/harness.py")
        });
        let ns = format!("endrace-{}-{:x}", std::process::id(), std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos());
        let url = BackendUrl::parse(&format!("{base}/{ns}")).unwrap();
        let backend = EtcdBackend::connect(&url, &Options::default()).await.unwrap();
        let sh = backend.shared.clone();
        let a = backend.join("svc", b"a").await.unwrap();
        assert_eq!(a.wait_won().await.unwrap().value, b"a");

        // end(), first step: the read.
        let read = sh.read("svc").await.unwrap();
        assert_eq!(read.candidates.len(), 1);
        // A candidate joins now, behind the leader, in the round about to end.
        let c = backend.join("svc", b"c").await.unwrap();
        assert_eq!(c.epoch(), Some(read.epoch));
        // end(), second step: the transaction, from the read that missed `c`.
        let mut ops = vec![ec::TxnOp::put(sh.epoch_key("svc"), (read.epoch + 1).to_string(), None)];
        ops.extend(read.candidates.iter().map(|kv| ec::TxnOp::delete(kv.key().to_vec(), None)));
        sh.txn("end", ec::Txn::new().and_then(ops)).await.unwrap();

        let won = tokio::time::timeout(Duration::from_secs(10), c.wait_won()).await.expect("an answer within 10 s");
        match won {
            Err(e) => assert_eq!(e.kind(), ErrorKind::Ended, "{e}"),
            Ok(l) => panic!("a candidate of the ended round won it: {l:?}"),
        }
        c.withdraw().await.unwrap();
        assert_eq!(backend.leader("svc").await.unwrap(), None);
        backend.close().await;
    }

    #[test]
    fn grpc_errors_map_to_kinds() {
        let st = |code, msg: &str| ec::Error::GRpcStatus(tonic::Status::new(code, msg));
        let kind = |e| map_err("op", e).kind();
        use tonic::Code;
        assert_eq!(
            kind(st(Code::InvalidArgument, "etcdserver: authentication failed, invalid user ID or password")),
            ErrorKind::Auth
        );
        assert_eq!(kind(st(Code::InvalidArgument, "etcdserver: user name is empty")), ErrorKind::Auth);
        assert_eq!(kind(st(Code::PermissionDenied, "etcdserver: permission denied")), ErrorKind::Auth);
        assert_eq!(kind(st(Code::Unauthenticated, "etcdserver: invalid auth token")), ErrorKind::Auth);
        assert_eq!(kind(st(Code::Unavailable, "tcp connect error")), ErrorKind::Connection);
        assert_eq!(kind(st(Code::InvalidArgument, "etcdserver: request is too large")), ErrorKind::InvalidArgument);
        assert!(lease_gone(&st(Code::NotFound, "etcdserver: requested lease not found")));
        assert!(!lease_gone(&st(Code::Unavailable, "tcp connect error")));
    }
}
