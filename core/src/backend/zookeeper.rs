//! The ZooKeeper backend (`zk://[user:pass@]h1:2181[,h2:2181...][/chroot]`).
//!
//! Layout of one election `NAME` (below the chroot, if any):
//!
//! - `/NAME` is a container node (as Curator's `creatingParentContainersIfNeeded`
//!   makes it); ancestors of a nested name are containers too.
//! - Each candidate is an EPHEMERAL_SEQUENTIAL node `/NAME/_c_<uuid>-latch-<seq>`
//!   whose data is its value: Curator's *protected* `LeaderLatch` naming. A
//!   LeaderLatch on `/NAME` and a ballot election `NAME` are the same election.
//! - The leader is the latch node with the lowest sequence number. A waiting
//!   candidate watches only its predecessor, so a release wakes one candidate.
//! - `term` is the leader node's `czxid`. zxids are global to the ensemble and only
//!   grow, and sequence order within `/NAME` is creation order, so successive
//!   leaders have strictly increasing terms, also across `end()`, reconnects and
//!   server restarts (zxids are persisted).
//! - `end()` writes the epoch into a persistent child `/NAME/~ballot-epoch`
//!   (decimal text). Curator's LeaderLatch sorts children by the text after
//!   `latch-`, and a name without `latch-` by its whole name; `~` sorts after every
//!   digit, so the marker is never anybody's predecessor and never first while a
//!   latch node exists. Curator latches keep running across an `end()` (they know
//!   nothing of it); only ballot participants are ended. The marker also keeps the
//!   container `/NAME` from being reaped, so the epoch survives.
//!
//! Sessions: one ZooKeeper session per client. The negotiated session timeout is
//! the TTL (the `session_timeout=` URL option, else `ttl=`/[`Options::with_ttl`],
//! is what the client asks for; the server clamps it to 2..20 ticks). The library
//! sends its own small request every TTL/3 and feeds the send time of each answered
//! one to the [`SessionTracker`]: the server expires a session a session timeout
//! after it last heard from the client, which is no earlier than the send time of
//! our last answered request. `Disconnected` suspends; `Expired` (or our own
//! deadline passing first) loses the session, which is then closed and replaced by
//! a new one (a new generation), so the engine can campaign again.
//!
//! With credentials, the client authenticates with the `digest` scheme and every
//! node it creates (chroot, election containers, candidates, the epoch marker) gets
//! the creator-only ACL, so no other identity can read, change or delete them.
//! ZooKeeper never rejects a digest identity, so wrong credentials show up as an
//! `Auth` error on the first node that the right identity created.
//!
//! A missing chroot is created (persistent, with the ACL above) at connect.
//!
//! TLS (`zks://`, or `tls=1`): every server is reached over TLS on its
//! `secureClientPort`, with the CA of `ca=` and the client identity of `cert=` and
//! `key=`; the server's name must match its certificate. Digest credentials work
//! the same over it. A handshake that fails (a certificate the CA did not sign, a
//! name that does not match, a refused client certificate) is a `Connection`
//! error that says why (see [`tls`]), within the connect timeout; there is no
//! plaintext fallback.

mod tls;

use crate::sync::lock;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::time::Instant;
use zookeeper_client as zk;

use super::{Backend, Entry, EpochStream, Snapshot, SnapshotStream};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Leader, LostReason, Participant};
use crate::options::{Credentials, Options};
use crate::session::{Health, SessionTracker, Stamp};
use crate::url::BackendUrl;
use tls::ZkTls;

/// ZooKeeper's default `jute.maxbuffer` (1,048,575 bytes) bounds a whole request;
/// a larger one makes the server close the connection. A candidate's create
/// request carries, besides the value, a path of at most 561 bytes (a 257-byte
/// chroot, a 257-byte election node, `/_c_<uuid>-latch-`), one ACL and the
/// header: 608 bytes at most, so this leaves 3,487 bytes to spare (the README's
/// "Values" has the measurement).
const MAX_VALUE: usize = (1 << 20) - 4096;
/// The child of an election node that holds its epoch (see the module docs).
pub(crate) const EPOCH_MARKER: &str = "~ballot-epoch";
/// Curator's LeaderLatch lock name; candidate nodes contain it.
const LATCH: &str = "latch-";
/// Pause before retrying after a transient error (connection loss).
const RETRY: Duration = Duration::from_millis(100);

/// The process that first used the ZooKeeper client library, or 0.
///
/// The library keeps one I/O reactor per process (async-io: an epoll instance and
/// a driver thread, with locks). A child forked without exec inherits the epoll
/// instance, shared with the parent, and the reactor's locks in whatever state
/// the parent's driver thread held them, but not the thread: its connections
/// then fail, or hang for good inside a lock (seen on zk-tls in CI). So a child
/// of a process that used ZooKeeper is refused at once, with the reason.
static USED_BY: AtomicU32 = AtomicU32::new(0);

/// Fails when this process is a fork of one that used ZooKeeper; see [`USED_BY`].
fn check_not_forked() -> Result<()> {
    let me = std::process::id();
    match USED_BY.compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => Ok(()),
        Err(pid) if pid == me => Ok(()),
        Err(pid) => Err(Error::new(
            ErrorKind::Connection,
            format!(
                "zookeeper: this process was forked from process {pid}, which used ZooKeeper; the ZooKeeper \
                 client library's I/O reactor does not survive fork() without exec: start the child with exec \
                 (for example multiprocessing's spawn), or fork before the first ZooKeeper client"
            ),
        )),
    }
}

/// Maps a ZooKeeper error to ballot's kinds; `what` names the operation.
fn zk_err(what: impl std::fmt::Display, e: zk::Error) -> Error {
    let kind = match &e {
        zk::Error::NoAuth | zk::Error::AuthFailed => ErrorKind::Auth,
        zk::Error::ConnectionLoss | zk::Error::NoHosts | zk::Error::Timeout => ErrorKind::Connection,
        // How the client fails the requests in flight on a connection that broke
        // ("no response from connection in ..ms", an I/O error).
        zk::Error::Custom(_) => ErrorKind::Connection,
        zk::Error::SessionExpired | zk::Error::SessionMoved => ErrorKind::SessionLost,
        zk::Error::ClientClosed => ErrorKind::Closed,
        zk::Error::BadArguments(_) | zk::Error::InvalidAcl => ErrorKind::InvalidArgument,
        _ => ErrorKind::Backend,
    };
    Error::new(kind, format!("zookeeper: {what}: {e}")).with_source(e)
}

/// Errors after which the same request may succeed once the connection is back.
/// `Custom` is how the client fails the requests that were in flight when it found
/// its connection broken (a server that stopped answering, an I/O error); the
/// requests made while it reconnects fail with `ConnectionLoss`.
fn transient(e: &zk::Error) -> bool {
    matches!(e, zk::Error::ConnectionLoss | zk::Error::Timeout | zk::Error::Throttled | zk::Error::Custom(_))
}

/// Errors that mean this session is over for good.
fn session_over(e: &zk::Error) -> bool {
    matches!(e, zk::Error::SessionExpired | zk::Error::SessionMoved | zk::Error::ClientClosed | zk::Error::AuthFailed)
}

/// The sequence number of a Curator latch node name (`..latch-0000000012`).
fn latch_seq(name: &str) -> Option<i64> {
    let i = name.rfind(LATCH)?;
    let digits = &name[i + LATCH.len()..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The latch children of an election node, lowest sequence first.
fn sorted_latches(children: Vec<String>) -> Vec<(i64, String)> {
    let mut v: Vec<(i64, String)> = children.into_iter().filter_map(|c| latch_seq(&c).map(|s| (s, c))).collect();
    v.sort();
    v
}

/// The epoch of the election at `dir` (0 before any `end()`), retried after
/// transient errors for at most `limit`.
async fn read_epoch(client: &zk::Client, dir: &str, limit: Duration) -> Result<u64> {
    let path = format!("{dir}/{EPOCH_MARKER}");
    let data = retry_for(limit, &path, || async {
        match client.get_data(&path).await {
            Ok((data, _)) => Ok(Some(data)),
            Err(zk::Error::NoNode) => Ok(None),
            Err(e) => Err(e),
        }
    })
    .await?;
    data.map_or(Ok(0), |d| parse_epoch(&d))
}

/// Reads with `op` until it answers or fails for good, pausing [`RETRY`] after each
/// transient error, for at most `limit` in all.
///
/// The bound matters because the caller may run detached: a join runs to its end
/// even after its campaign was given up (see `Shared::join_detached`), so a read
/// that retried for as long as the server is unreachable would spin, every 100 ms,
/// for as long as that lasts. With the session timeout as `limit`, a server that has
/// not answered for that long has expired the session anyway.
///
/// # Errors
///
/// `Connection` when `limit` passes (naming the last transient error), or the
/// mapped error that ended the tries.
async fn retry_for<T, F, Fut>(limit: Duration, path: &str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, zk::Error>>,
{
    let mut last = None;
    let tries = async {
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if transient(&e) => {
                    last = Some(e);
                    tokio::time::sleep(RETRY).await;
                }
                Err(e) => return Err(zk_err(format_args!("reading {path}"), e)),
            }
        }
    };
    let outcome = tokio::time::timeout(limit, tries).await;
    outcome.unwrap_or_else(|_| {
        let why = last.map(|e| format!(" (last error: {e})")).unwrap_or_default();
        Err(Error::new(
            ErrorKind::Connection,
            format!("zookeeper: reading {path}: no answer within {limit:?}, the session timeout{why}"),
        ))
    })
}

fn parse_epoch(data: &[u8]) -> Result<u64> {
    std::str::from_utf8(data).ok().and_then(|s| s.trim().parse().ok()).ok_or_else(|| {
        Error::new(ErrorKind::Backend, format!("zookeeper: {EPOCH_MARKER} does not hold a decimal epoch"))
    })
}

/// The election node path for `name`, checked against what ZooKeeper refuses.
fn election_dir(name: &str) -> Result<String> {
    for seg in name.split('/') {
        if seg == "." || seg == ".." {
            return Err(Error::invalid(format!(
                "election name {name:?}: ZooKeeper does not allow the segment {seg:?}"
            )));
        }
        if seg == EPOCH_MARKER {
            return Err(Error::invalid(format!(
                "election name {name:?}: the segment {EPOCH_MARKER:?} is reserved by the ZooKeeper backend"
            )));
        }
    }
    Ok(format!("/{name}"))
}

/// One ZooKeeper session.
#[derive(Debug)]
struct Conn {
    /// Taken out (and so dropped, which closes the session) by `close`.
    client: Mutex<Option<zk::Client>>,
    generation: u64,
    session_id: i64,
}

impl Conn {
    fn client(&self) -> Result<zk::Client> {
        lock(&self.client)
            .clone()
            .ok_or_else(|| Error::new(ErrorKind::SessionLost, "zookeeper: this session was closed or replaced"))
    }

    fn close(&self) {
        lock(&self.client).take();
    }
}

#[derive(Debug)]
struct ZkShared {
    /// `h1:p1,h2:p2` without the chroot.
    hosts: String,
    /// `/a/b`, or empty.
    chroot: String,
    /// `user:password` for the digest scheme.
    auth: Option<Vec<u8>>,
    /// Set for `zks://`.
    tls: Option<ZkTls>,
    /// How long one session start may take over TLS (the connect timeout).
    connect_limit: Duration,
    requested_timeout: Duration,
    tracker: Arc<SessionTracker>,
    ttl: Duration,
    conn: Mutex<Arc<Conn>>,
    /// The generation of the installed connection; changes when it is replaced.
    conn_tx: watch::Sender<u64>,
    /// Candidate nodes whose deletion failed; retried while their session lives, so
    /// that no orphan of a live session blocks the election.
    orphans: Mutex<Vec<(u64, String)>>,
    closed: AtomicBool,
    supervisor: Mutex<Option<tokio::task::AbortHandle>>,
    /// Whether the server answers multi-reads (ZooKeeper 3.6+); cleared on the first
    /// refusal.
    multi_read: AtomicBool,
}

/// The ZooKeeper backend: one session, replaced when it is lost.
#[derive(Debug)]
pub(crate) struct ZkBackend {
    shared: Arc<ZkShared>,
}

impl ZkShared {
    fn acls(&self) -> zk::Acls<'static> {
        if self.auth.is_some() {
            zk::Acls::creator_all()
        } else {
            zk::Acls::anyone_all()
        }
    }

    fn current(&self) -> Arc<Conn> {
        lock(&self.conn).clone()
    }

    /// The live connection, waiting (up to a TTL) while it is being replaced.
    async fn live(&self) -> Result<(Arc<Conn>, zk::Client)> {
        let mut rx = self.conn_tx.subscribe();
        let deadline = Instant::now() + self.ttl;
        loop {
            if self.closed.load(Ordering::SeqCst) {
                return Err(Error::closed());
            }
            let conn = self.current();
            if let Ok(c) = conn.client() {
                return Ok((conn, c));
            }
            if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
                return Err(Error::new(ErrorKind::Connection, "zookeeper: no session could be established"));
            }
        }
    }
}

/// Connects over TLS within `limit`; a failure says why TLS failed when a
/// handshake of its own finds out (see [`tls`]).
async fn connect_tls(connector: zk::Connector, hosts: &str, tls: &ZkTls, limit: Duration) -> Result<zk::Client> {
    // Half the time for the client, most of the rest for finding out why it failed.
    let start = Instant::now();
    let first = match tokio::time::timeout(limit / 2, connector.secure_connect(hosts)).await {
        Ok(Ok(client)) => return Ok(client),
        Ok(Err(e)) => Some(e),
        Err(_) => None,
    };
    // Client::connect's own timeout (the same limit) must not cut the answer short.
    let rest = limit.saturating_sub(start.elapsed()).mul_f64(0.7);
    let what = format!("connecting to {hosts} over TLS");
    match (tls.explain(hosts, rest).await, first) {
        (Some(why), first) => {
            let e = Error::new(ErrorKind::Connection, format!("zookeeper: {what}: {why}"));
            Err(match first {
                Some(f) => e.with_source(f),
                None => e,
            })
        }
        (None, Some(e)) => Err(zk_err(what, e)),
        (None, None) => {
            Err(Error::new(ErrorKind::Connection, format!("zookeeper: {what}: no session within {:?}", limit / 2)))
        }
    }
}

/// Starts a session: connects (over TLS when `tls` is set, within `limit`),
/// authenticates, makes the chroot. Returns the client (chrooted) and the time
/// the connect request was sent.
async fn open_session(
    hosts: &str,
    chroot: &str,
    auth: Option<&[u8]>,
    timeout: Duration,
    tls: Option<&ZkTls>,
    limit: Duration,
) -> Result<(zk::Client, Stamp)> {
    check_not_forked()?;
    let sent = Stamp::now();
    let mut connector = zk::Client::connector().with_session_timeout(timeout).with_fail_eagerly();
    if let Some(a) = auth {
        connector = connector.with_auth("digest", a);
    }
    let client = match tls {
        Some(t) => connect_tls(connector.with_tls(t.client.clone()), hosts, t, limit).await?,
        None => connector.connect(hosts).await.map_err(|e| zk_err(format_args!("connecting to {hosts}"), e))?,
    };
    if chroot.is_empty() {
        return Ok((client, sent));
    }
    let acls = if auth.is_some() { zk::Acls::creator_all() } else { zk::Acls::anyone_all() };
    match client.mkdir(chroot, &zk::CreateMode::Persistent.with_acls(acls)).await {
        Ok(()) => {}
        // A parent we may not write to, but the chroot itself may exist.
        Err(zk::Error::NoAuth) if matches!(client.check_stat(chroot).await, Ok(Some(_))) => {}
        Err(e) => return Err(zk_err(format_args!("creating the chroot {chroot}"), e)),
    }
    let client = client
        .chroot(chroot.to_string())
        .map_err(|_| Error::invalid(format!("zookeeper: the chroot {chroot:?} is not a valid ZooKeeper path")))?;
    // Fails with NoAuth when the chroot belongs to another identity (for example
    // wrong credentials).
    client.list_children("/").await.map_err(|e| zk_err(format_args!("reading the chroot {chroot}"), e))?;
    Ok((client, sent))
}

impl ZkBackend {
    pub(crate) async fn open(url: &BackendUrl, options: &Options) -> Result<ZkBackend> {
        let auth = match &options.credentials {
            None => None,
            Some(Credentials::Password { user, password }) => {
                if user.is_empty() || user.contains(':') {
                    return Err(Error::invalid(
                        "zookeeper digest user names must be non-empty and must not contain ':'",
                    ));
                }
                Some(format!("{user}:{password}").into_bytes())
            }
            Some(_) => {
                return Err(Error::invalid("the zk backend takes user:password credentials (digest), not a token"))
            }
        };
        let requested = match url.duration("session_timeout")? {
            Some(st) => {
                // A TTL that the URL or `Options::with_ttl` gave must agree with it.
                if (url.option("ttl").is_some() || options.ttl_set) && st != options.ttl {
                    return Err(Error::invalid(format!(
                        "zk: session_timeout={st:?} and ttl={:?} disagree; give one of them",
                        options.ttl
                    )));
                }
                st
            }
            None => options.ttl,
        };
        if requested < Duration::from_secs(1) {
            return Err(Error::invalid(format!("zk: session timeout {requested:?} is too short; the minimum is 1s")));
        }
        let hosts: Vec<String> = url.hosts.iter().map(|h| h.to_string()).collect();
        let hosts = hosts.join(",");
        let chroot = if url.path.is_empty() { String::new() } else { format!("/{}", url.path) };
        let tls = ZkTls::new(url, options)?;
        let limit = options.connect_timeout;
        let (client, sent) = open_session(&hosts, &chroot, auth.as_deref(), requested, tls.as_ref(), limit).await?;
        let ttl = client.session_timeout();
        let margin = options.margin.unwrap_or(ttl / 5);
        if margin >= ttl {
            return Err(Error::invalid(format!(
                "safety margin {margin:?} must be smaller than the negotiated session timeout {ttl:?}"
            )));
        }
        let tracker = SessionTracker::new(Some(ttl), margin);
        let generation = tracker.new_session(sent);
        let conn = Arc::new(Conn { session_id: client.session_id().0, client: Mutex::new(Some(client)), generation });
        let shared = Arc::new(ZkShared {
            hosts,
            chroot,
            auth,
            tls,
            connect_limit: limit,
            requested_timeout: requested,
            tracker,
            ttl,
            conn: Mutex::new(conn.clone()),
            conn_tx: watch::channel(generation).0,
            orphans: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            supervisor: Mutex::new(None),
            multi_read: AtomicBool::new(true),
        });
        let task = tokio::spawn(supervise(Arc::downgrade(&shared), conn));
        *lock(&shared.supervisor) = Some(task.abort_handle());
        Ok(ZkBackend { shared })
    }
}

/// Feeds the tracker from one session's states and heartbeats, and replaces the
/// session once it is lost. Stops when the backend is dropped or closed.
async fn supervise(weak: Weak<ZkShared>, mut conn: Arc<Conn>) {
    loop {
        let Some(shared) = weak.upgrade() else { return };
        let tracker = shared.tracker.clone();
        let period = shared.ttl / 3;
        drop(shared);
        let generation = conn.generation;
        let Ok(client) = conn.client() else { return };
        let mut states = client.state_watcher();
        drop(client);
        let mut health = tracker.subscribe();
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                st = states.changed() => match st {
                    zk::SessionState::Disconnected => tracker.disconnected(generation),
                    zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                        heartbeat(&weak, &conn, period)
                    }
                    _ => {
                        tracker.expired(generation);
                        break;
                    }
                },
                _ = tick.tick() => heartbeat(&weak, &conn, period),
                _ = health.wait_for(|s| s.generation == generation && s.health == Health::Lost) => break,
            }
        }
        // Our deadline passed or the server expired the session: leadership under it
        // is void, so close it (its ephemeral nodes go with it) and start another.
        conn.close();
        let mut backoff = Duration::from_millis(100);
        conn = loop {
            let Some(shared) = weak.upgrade() else { return };
            if shared.closed.load(Ordering::SeqCst) {
                return;
            }
            let (hosts, chroot, auth) = (&shared.hosts, &shared.chroot, shared.auth.as_deref());
            let (tls, limit) = (shared.tls.as_ref(), shared.connect_limit);
            match open_session(hosts, chroot, auth, shared.requested_timeout, tls, limit).await {
                // The tracker's deadline is computed from the first session's timeout; a
                // shorter one (the server's limits changed) would let the server expire
                // us before we report the loss, so such a session is not used.
                Ok((client, _)) if client.session_timeout() < shared.ttl => {
                    drop(client);
                    drop(shared);
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Ok((client, sent)) => {
                    let mut slot = lock(&shared.conn);
                    let session_id = client.session_id().0;
                    let generation = shared.tracker.new_session(sent);
                    let c = Arc::new(Conn { client: Mutex::new(Some(client)), generation, session_id });
                    *slot = c.clone();
                    drop(slot);
                    shared.conn_tx.send_replace(generation);
                    lock(&shared.orphans).retain(|(g, _)| *g == generation);
                    break c;
                }
                Err(_) => {
                    drop(shared);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        };
    }
}

/// Sends one request and, when it is answered, tells the tracker when it was sent;
/// then retries any orphaned deletions of this session.
fn heartbeat(weak: &Weak<ZkShared>, conn: &Arc<Conn>, limit: Duration) {
    let Some(shared) = weak.upgrade() else { return };
    let Ok(client) = conn.client() else { return };
    let (generation, session_id) = (conn.generation, conn.session_id);
    tokio::spawn(async move {
        let sent = Stamp::now();
        if let Ok(Ok(_)) = tokio::time::timeout(limit, client.check_stat("/")).await {
            shared.tracker.acked(generation, sent);
            let orphans: Vec<String> =
                lock(&shared.orphans).iter().filter(|(g, _)| *g == generation).map(|(_, p)| p.clone()).collect();
            for path in orphans {
                let done = match client.check_stat(&path).await {
                    Ok(Some(stat)) if stat.ephemeral_owner == session_id => {
                        matches!(client.delete(&path, Some(stat.version)).await, Ok(()) | Err(zk::Error::NoNode))
                    }
                    Ok(_) => true, // gone, or no longer ours
                    Err(_) => false,
                };
                if done {
                    lock(&shared.orphans).retain(|(_, p)| *p != path);
                }
            }
        }
    });
}

/// Reads the leader of the election at `dir` (None when there is none).
async fn read_leader(client: &zk::Client, dir: &str) -> std::result::Result<Option<Leader>, zk::Error> {
    loop {
        let children = match client.list_children(dir).await {
            Ok(c) => c,
            Err(zk::Error::NoNode) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some((_, first)) = sorted_latches(children).into_iter().next() else { return Ok(None) };
        let path = format!("{dir}/{first}");
        match client.get_data(&path).await {
            Ok((data, stat)) => return Ok(Some(Leader::new(data, stat.czxid as u64, path))),
            Err(zk::Error::NoNode) => continue, // gone meanwhile: read again
            Err(e) => return Err(e),
        }
    }
}

/// Reads the latch nodes of the election at `dir` with their data, lowest
/// sequence first (Curator's order: the first one leads), in one multi-read, so
/// the list and the values are one snapshot. The multi-read lists the children
/// again; if the latch nodes changed since the names were taken, it reads again.
async fn read_participants(client: &zk::Client, dir: &str) -> std::result::Result<Vec<Participant>, zk::Error> {
    loop {
        let children = match client.list_children(dir).await {
            Ok(c) => c,
            Err(zk::Error::NoNode) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let names: Vec<String> = sorted_latches(children).into_iter().map(|(_, n)| n).collect();
        let mut reader = client.new_multi_reader();
        reader.add_get_children(dir)?;
        for n in &names {
            reader.add_get_data(&format!("{dir}/{n}"))?;
        }
        let mut results = reader.commit().await?.into_iter();
        match results.next() {
            Some(zk::MultiReadResult::Children { children }) => {
                let now: Vec<String> = sorted_latches(children).into_iter().map(|(_, n)| n).collect();
                if now != names {
                    continue;
                }
            }
            Some(zk::MultiReadResult::Error { err: zk::Error::NoNode }) => return Ok(Vec::new()),
            Some(zk::MultiReadResult::Error { err }) => return Err(err),
            _ => return Err(zk::Error::UnexpectedError("a multi-read answered out of order".into())),
        }
        let mut out = Vec::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            match results.next() {
                Some(zk::MultiReadResult::Data { data, .. }) => {
                    out.push(Participant::new(format!("{dir}/{n}"), data, i == 0))
                }
                Some(zk::MultiReadResult::Error { err }) => return Err(err),
                _ => return Err(zk::Error::UnexpectedError("a multi-read answered out of order".into())),
            }
        }
        return Ok(out);
    }
}

/// Makes the election node (and its ancestors) as containers.
async fn ensure_dir(client: &zk::Client, dir: &str, acls: zk::Acls<'static>) -> Result<()> {
    client
        .mkdir(dir, &zk::CreateMode::Container.with_acls(acls))
        .await
        .map_err(|e| zk_err(format_args!("creating the election node {dir}"), e))
}

#[async_trait]
impl Backend for ZkBackend {
    fn session(&self) -> &Arc<SessionTracker> {
        &self.shared.tracker
    }

    fn max_value_len(&self) -> usize {
        MAX_VALUE
    }

    fn session_ttl(&self) -> Option<Duration> {
        Some(self.shared.ttl)
    }

    async fn join(&self, election: &str, value: &[u8]) -> Result<Arc<dyn Entry>> {
        let dir = election_dir(election)?;
        let (conn, client) = self.shared.live().await?;
        let acls = self.shared.acls();
        let prefix = format!("{dir}/_c_{}-{LATCH}", uuid::Uuid::new_v4());
        let protected = prefix[dir.len() + 1..prefix.len() - LATCH.len()].to_string();
        // Until the node is known, dropping this future must not leave it behind in a
        // session that lives on: the guard deletes it by its protected name.
        // Read before the node exists: an end() after this read ends this candidate.
        let epoch = read_epoch(&client, &dir, self.shared.ttl).await?;
        let mut guard = CreateGuard { client: Some(client.clone()), dir: dir.clone(), protected: protected.clone() };
        let mut attempts = 0;
        let seq = loop {
            attempts += 1;
            if attempts > 20 {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!("zookeeper: could not create a candidate in {dir}"),
                ));
            }
            match client.create(&prefix, value, &zk::CreateMode::EphemeralSequential.with_acls(acls)).await {
                Ok((_, seq)) => break seq.into_i64(),
                Err(zk::Error::NoNode) => ensure_dir(&client, &dir, acls).await?,
                Err(e) if transient(&e) => {
                    // The reply may be lost while the node was made: find it by name.
                    tokio::time::sleep(RETRY).await;
                    match client.list_children(&dir).await {
                        Ok(children) => {
                            if let Some(c) = children.iter().find(|c| c.starts_with(&protected)) {
                                if let Some(seq) = latch_seq(c) {
                                    break seq;
                                }
                            }
                        }
                        Err(e) if transient(&e) || e == zk::Error::NoNode => {}
                        Err(e) => return Err(zk_err(format_args!("listing {dir}"), e)),
                    }
                }
                Err(e) => return Err(zk_err(format_args!("creating a candidate in {dir}"), e)),
            }
        };
        guard.client = None;
        let name = format!("{protected}{LATCH}{}", fmt_seq(seq));
        if attempts > 1 {
            // A retried create may have made a second node under our protected name;
            // any such twin would sit in the queue for the whole life of the session.
            if let Ok(children) = client.list_children(&dir).await {
                for twin in children.iter().filter(|c| c.starts_with(&protected) && **c != name) {
                    let _ = client.delete(&format!("{dir}/{twin}"), None).await;
                }
            }
        }
        Ok(Arc::new(ZkEntry {
            shared: self.shared.clone(),
            conn,
            path: format!("{dir}/{name}"),
            dir,
            name,
            epoch,
            withdrawn: AtomicBool::new(false),
            own: Mutex::new(None),
        }))
    }

    async fn leader(&self, election: &str) -> Result<Option<Leader>> {
        let dir = election_dir(election)?;
        loop {
            let (_, client) = self.shared.live().await?;
            match read_leader(&client, &dir).await {
                Ok(l) => return Ok(l),
                Err(e) if transient(&e) || session_over(&e) => tokio::time::sleep(RETRY).await,
                Err(e) => return Err(zk_err(format_args!("reading the leader of {dir}"), e)),
            }
        }
    }

    async fn participants(&self, election: &str) -> Result<Vec<Participant>> {
        let dir = election_dir(election)?;
        loop {
            let (_, client) = self.shared.live().await?;
            match read_participants(&client, &dir).await {
                Ok(p) => return Ok(p),
                Err(e) if transient(&e) || session_over(&e) => tokio::time::sleep(RETRY).await,
                Err(e) => return Err(zk_err(format_args!("listing the participants of {dir}"), e)),
            }
        }
    }

    async fn watch(&self, election: &str) -> Result<SnapshotStream> {
        let dir = election_dir(election)?;
        let st = WatchState { shared: self.shared.clone(), dir, last: None, wait: None };
        let stream = futures_util::stream::unfold(st, |mut st| async move {
            let item = st.next().await;
            Some((item, st))
        });
        Ok(Box::pin(stream))
    }

    async fn watch_epoch(&self, election: &str) -> Result<EpochStream> {
        let marker = format!("{}/{EPOCH_MARKER}", election_dir(election)?);
        let st = EpochWatchState { shared: self.shared.clone(), marker, last: None, wait: None };
        let stream = futures_util::stream::unfold(st, |mut st| async move {
            let item = st.next().await;
            Some((item, st))
        });
        Ok(Box::pin(stream))
    }

    async fn end(&self, election: &str) -> Result<()> {
        let dir = election_dir(election)?;
        let marker = format!("{dir}/{EPOCH_MARKER}");
        let acls = self.shared.acls();
        for _ in 0..50 {
            let (_, client) = self.shared.live().await?;
            match client.get_data(&marker).await {
                Ok((data, stat)) => {
                    let next = parse_epoch(&data)? + 1;
                    match client.set_data(&marker, next.to_string().as_bytes(), Some(stat.version)).await {
                        Ok(_) => return Ok(()),
                        Err(zk::Error::BadVersion | zk::Error::NoNode) => continue,
                        Err(e) if transient(&e) => tokio::time::sleep(RETRY).await,
                        Err(e) => return Err(zk_err(format_args!("ending {dir}"), e)),
                    }
                }
                Err(zk::Error::NoNode) => {
                    match client.create(&marker, b"1", &zk::CreateMode::Persistent.with_acls(acls)).await {
                        Ok(_) => return Ok(()),
                        Err(zk::Error::NodeExists) => continue,
                        Err(zk::Error::NoNode) => ensure_dir(&client, &dir, acls).await?,
                        Err(e) if transient(&e) => tokio::time::sleep(RETRY).await,
                        Err(e) => return Err(zk_err(format_args!("ending {dir}"), e)),
                    }
                }
                Err(e) if transient(&e) => tokio::time::sleep(RETRY).await,
                Err(e) => return Err(zk_err(format_args!("reading the epoch of {dir}"), e)),
            }
        }
        Err(Error::new(ErrorKind::Backend, format!("zookeeper: ending {dir} kept conflicting with other writers")))
    }

    async fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        if let Some(t) = lock(&self.shared.supervisor).take() {
            t.abort();
        }
        self.shared.current().close();
        self.shared.conn_tx.send_modify(|_| {});
    }
}

impl Drop for ZkBackend {
    fn drop(&mut self) {
        if let Some(t) = lock(&self.shared.supervisor).take() {
            t.abort();
        }
        self.shared.current().close();
    }
}

/// ZooKeeper's sequence suffix: ten digits, zero-padded (more past `i32::MAX`).
fn fmt_seq(seq: i64) -> String {
    if seq <= i64::from(i32::MAX) {
        format!("{seq:010}")
    } else {
        format!("{seq:019}")
    }
}

/// Deletes a candidate node by its protected name if `join` was dropped mid-create.
struct CreateGuard {
    client: Option<zk::Client>,
    dir: String,
    protected: String,
}

impl Drop for CreateGuard {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else { return };
        let (dir, protected) = (std::mem::take(&mut self.dir), std::mem::take(&mut self.protected));
        crate::runtime::spawn_detached(async move {
            for _ in 0..20 {
                match client.list_children(&dir).await {
                    Ok(children) => {
                        for c in children.iter().filter(|c| c.starts_with(&protected)) {
                            let _ = client.delete(&format!("{dir}/{c}"), None).await;
                        }
                        return;
                    }
                    Err(e) if transient(&e) => tokio::time::sleep(RETRY).await,
                    Err(_) => return,
                }
            }
        });
    }
}

/// One candidate node.
#[derive(Debug)]
struct ZkEntry {
    shared: Arc<ZkShared>,
    conn: Arc<Conn>,
    dir: String,
    /// The node's name within `dir`.
    name: String,
    path: String,
    /// The election's epoch when the node was made.
    epoch: u64,
    withdrawn: AtomicBool,
    /// While `lost()` watches our node: what it knew then, so that `withdraw`
    /// can delete without reading the node first.
    own: Mutex<Option<OwnNode>>,
}

/// Our node as `lost()` found it when it set its watch: ours, at `version`. It
/// stays so while that watch (`fired`) has not fired and the session has not
/// changed state, which `states` (made before the check) tells. The watch lives
/// here, not in `lost()`, so that `withdraw` can take it along: dropped before
/// it fires, a watch costs the server one more request (its removal).
struct OwnNode {
    version: i32,
    states: zk::StateWatcher,
    fired: std::pin::Pin<Box<dyn std::future::Future<Output = zk::WatchedEvent> + Send>>,
}

impl std::fmt::Debug for OwnNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnNode").field("version", &self.version).finish_non_exhaustive()
    }
}

/// Forgets `ZkEntry::own` when `lost()` stops watching, however it stops.
struct Unwatched<'a>(&'a Mutex<Option<OwnNode>>);

impl Drop for Unwatched<'_> {
    fn drop(&mut self) {
        lock(self.0).take();
    }
}

/// What a waiting candidate reads of its election in one request.
struct Place {
    children: Vec<String>,
    /// Our own node's data and stat, if it exists.
    own: Option<(Vec<u8>, zk::Stat)>,
    epoch: u64,
}

impl ZkEntry {
    /// Reads the queue, our own node and the epoch in one round trip (a ZooKeeper
    /// 3.6+ multi-read, which is also one consistent snapshot), or in three on an
    /// older server. A handoff waits on this read, so it is worth the round trips.
    async fn place(&self, client: &zk::Client) -> std::result::Result<Place, zk::Error> {
        let marker = format!("{}/{EPOCH_MARKER}", self.dir);
        let bad_epoch = || zk::Error::UnexpectedError(format!("bad {EPOCH_MARKER}"));
        if self.shared.multi_read.load(Ordering::Relaxed) {
            let mut r = client.new_multi_reader();
            r.add_get_children(&self.dir)?;
            r.add_get_data(&self.path)?;
            r.add_get_data(&marker)?;
            match r.commit().await {
                Ok(res) => {
                    let mut res = res.into_iter();
                    let children = match res.next() {
                        Some(zk::MultiReadResult::Children { children }) => children,
                        Some(zk::MultiReadResult::Error { err }) => return Err(err),
                        _ => return Err(zk::Error::UnexpectedError("multi-read: no children".into())),
                    };
                    let own = match res.next() {
                        Some(zk::MultiReadResult::Data { data, stat }) => Some((data, stat)),
                        Some(zk::MultiReadResult::Error { err: zk::Error::NoNode }) => None,
                        Some(zk::MultiReadResult::Error { err }) => return Err(err),
                        _ => return Err(zk::Error::UnexpectedError("multi-read: no data".into())),
                    };
                    let epoch = match res.next() {
                        Some(zk::MultiReadResult::Data { data, .. }) => parse_epoch(&data).map_err(|_| bad_epoch())?,
                        Some(zk::MultiReadResult::Error { err: zk::Error::NoNode }) => 0,
                        Some(zk::MultiReadResult::Error { err }) => return Err(err),
                        _ => return Err(zk::Error::UnexpectedError("multi-read: no epoch".into())),
                    };
                    return Ok(Place { children, own, epoch });
                }
                Err(zk::Error::Unimplemented) => self.shared.multi_read.store(false, Ordering::Relaxed),
                Err(e) => return Err(e),
            }
        }
        let children = client.list_children(&self.dir).await?;
        let own = match client.get_data(&self.path).await {
            Ok(x) => Some(x),
            Err(zk::Error::NoNode) => None,
            Err(e) => return Err(e),
        };
        let epoch = match client.get_data(&marker).await {
            Ok((data, _)) => parse_epoch(&data).map_err(|_| bad_epoch())?,
            Err(zk::Error::NoNode) => 0,
            Err(e) => return Err(e),
        };
        Ok(Place { children, own, epoch })
    }

    fn client(&self) -> Result<zk::Client> {
        if self.withdrawn.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Cancelled, "the candidate was withdrawn"));
        }
        self.conn.client()
    }

    fn gone(&self) -> Error {
        if self.withdrawn.load(Ordering::SeqCst) {
            return Error::new(ErrorKind::Cancelled, "the candidate was withdrawn");
        }
        Error::new(ErrorKind::SessionLost, format!("zookeeper: the candidate node {} is gone", self.path))
    }
}

#[async_trait]
impl Entry for ZkEntry {
    fn epoch(&self) -> Option<u64> {
        Some(self.epoch)
    }

    async fn wait_won(&self) -> Result<Leader> {
        loop {
            let client = self.client()?;
            let place = match self.place(&client).await {
                Ok(p) => p,
                Err(e) if transient(&e) => {
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
                Err(zk::Error::NoNode) => return Err(self.gone()),
                Err(e) => return Err(zk_err(format_args!("reading {}", self.dir), e)),
            };
            let sorted = sorted_latches(place.children);
            let Some(idx) = sorted.iter().position(|(_, n)| *n == self.name) else { return Err(self.gone()) };
            if idx == 0 {
                // Lowest: claim only if the node is still ours (CURATOR-696).
                return match place.own {
                    Some((data, stat)) if stat.ephemeral_owner == self.conn.session_id => {
                        // The predecessor may have stepped down because of an end(): a
                        // candidate of the ended round must not win. The read is one
                        // snapshot, so it sees the epoch written before that deletion.
                        if place.epoch > self.epoch {
                            return Err(Error::new(ErrorKind::Ended, "the election was ended by end()"));
                        }
                        Ok(Leader::new(data, stat.czxid as u64, self.path.clone()))
                    }
                    _ => Err(self.gone()),
                };
            }
            let pred = format!("{}/{}", self.dir, sorted[idx - 1].1);
            match client.get_and_watch_data(&pred).await {
                Ok((_, _, w)) => {
                    drop(client);
                    let _ = w.changed().await;
                }
                Err(zk::Error::NoNode) => {}
                Err(e) if transient(&e) => tokio::time::sleep(RETRY).await,
                Err(e) => return Err(zk_err(format_args!("watching {pred}"), e)),
            }
        }
    }

    async fn lost(&self) -> LostReason {
        let _unwatched = Unwatched(&self.own);
        loop {
            let Ok(client) = self.conn.client() else { return LostReason::SessionLost };
            // Before the check: any change of the session's state from here on
            // shows in it.
            let states = client.state_watcher();
            match client.check_and_watch_stat(&self.path).await {
                Ok((None, _)) => return LostReason::Deleted,
                Ok((Some(stat), _)) if stat.ephemeral_owner != self.conn.session_id => return LostReason::NotOwner,
                Ok((Some(stat), w)) => {
                    drop(client);
                    let fired = Box::pin(w.changed());
                    *lock(&self.own) = Some(OwnNode { version: stat.version, states, fired });
                    let ev = std::future::poll_fn(|cx| match lock(&self.own).as_mut() {
                        Some(own) => own.fired.as_mut().poll(cx).map(Some),
                        None => std::task::Poll::Ready(None),
                    })
                    .await;
                    lock(&self.own).take();
                    // `None`: `withdraw` took the watch, as this leader resigns.
                    let Some(ev) = ev else { return std::future::pending().await };
                    if ev.event_type == zk::EventType::NodeDeleted {
                        return LostReason::Deleted;
                    }
                    if ev.session_state.is_terminated() {
                        return LostReason::SessionLost;
                    }
                }
                Err(e) if session_over(&e) => return LostReason::SessionLost,
                Err(_) => tokio::time::sleep(RETRY * 2).await,
            }
        }
    }

    async fn proclaim(&self, value: &[u8]) -> Result<()> {
        let client = self.client()?;
        let not_leader = || Error::new(ErrorKind::NotLeader, "zookeeper: our candidate node is gone");
        // Write only to our own node, at the version we just saw.
        let version = match client.check_stat(&self.path).await {
            Ok(Some(stat)) if stat.ephemeral_owner == self.conn.session_id => stat.version,
            Ok(_) => return Err(not_leader()),
            Err(e) => return Err(zk_err(format_args!("checking {}", self.path), e)),
        };
        match client.set_data(&self.path, value, Some(version)).await {
            Ok(_) => Ok(()),
            Err(zk::Error::NoNode) => Err(not_leader()),
            Err(zk::Error::BadVersion) => {
                Err(Error::new(ErrorKind::Backend, "zookeeper: our node changed during proclaim; try again"))
            }
            Err(e) => Err(zk_err(format_args!("writing {}", self.path), e)),
        }
    }

    async fn verify(&self) -> Result<bool> {
        if self.conn.generation != self.shared.tracker.status().generation {
            return Ok(false);
        }
        let client = self.client()?;
        match client.check_stat(&self.path).await {
            Ok(Some(stat)) => Ok(stat.ephemeral_owner == self.conn.session_id),
            Ok(None) => Ok(false),
            Err(e) if session_over(&e) => Ok(false),
            Err(e) => Err(zk_err(format_args!("checking {}", self.path), e)),
        }
    }

    async fn withdraw(&self) -> Result<()> {
        if self.withdrawn.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let Ok(client) = self.conn.client() else { return Ok(()) }; // the session, and the node, are gone
                                                                    // A leader resigning: while `lost()` watches our node and the session has
                                                                    // not changed state since that watch was set, the node is ours at the
                                                                    // version it saw (a change would have fired the watch first), so the read
                                                                    // below can be skipped, and the handoff is one round trip shorter. Any
                                                                    // doubt, or any failure, falls back to reading the node first.
        let known = lock(&self.own).take().and_then(|mut own| {
            let quiet = futures_util::FutureExt::now_or_never(own.states.changed()).is_none();
            quiet.then_some((own.version, own.fired))
        });
        if let Some((version, fired)) = known {
            let deleted = client.delete(&self.path, Some(version)).await;
            // The delete fires the watch (ZooKeeper sends the event before the
            // answer): let it be delivered, then drop it, off the caller's path.
            let ttl = self.shared.ttl;
            tokio::spawn(async move {
                let _ = tokio::time::timeout(ttl, fired).await;
            });
            match deleted {
                Ok(()) | Err(zk::Error::NoNode) => return Ok(()),
                Err(e) if session_over(&e) => return Ok(()),
                Err(_) => {}
            }
        }
        for _ in 0..20 {
            // Delete only our own node: after a reconnect the path may belong to
            // another session (see `verify`), and that node is not ours to remove.
            let version = match client.check_stat(&self.path).await {
                Ok(None) => return Ok(()),
                Ok(Some(stat)) if stat.ephemeral_owner != self.conn.session_id => return Ok(()),
                Ok(Some(stat)) => stat.version,
                Err(e) if session_over(&e) => return Ok(()),
                Err(e) if transient(&e) => {
                    tokio::time::sleep(RETRY * 2).await;
                    continue;
                }
                Err(e) => return Err(zk_err(format_args!("checking {}", self.path), e)),
            };
            match client.delete(&self.path, Some(version)).await {
                Ok(()) | Err(zk::Error::NoNode) => return Ok(()),
                Err(zk::Error::BadVersion) => continue,
                Err(e) if session_over(&e) => return Ok(()),
                Err(e) if transient(&e) => tokio::time::sleep(RETRY * 2).await,
                Err(e) => {
                    lock(&self.shared.orphans).push((self.conn.generation, self.path.clone()));
                    return Err(zk_err(format_args!("deleting {}", self.path), e));
                }
            }
        }
        lock(&self.shared.orphans).push((self.conn.generation, self.path.clone()));
        Err(Error::new(ErrorKind::Connection, format!("zookeeper: could not delete {} yet; retrying", self.path)))
    }
}

type Wakeup = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

struct WatchState {
    shared: Arc<ZkShared>,
    dir: String,
    last: Option<Snapshot>,
    wait: Option<Wakeup>,
}

/// What one read of an election needs to be woken on.
enum Read {
    Done(Snapshot, Wakeup),
    Again,
}

impl WatchState {
    async fn next(&mut self) -> Result<Snapshot> {
        loop {
            if let Some(w) = self.wait.take() {
                w.await;
            }
            let (conn, client) = self.shared.live().await?;
            match read_election(&self.shared, &self.dir, &client, conn.generation).await {
                Ok(Read::Done(snap, wake)) => {
                    self.wait = Some(wake);
                    if self.last.as_ref() != Some(&snap) {
                        self.last = Some(snap.clone());
                        return Ok(snap);
                    }
                }
                Ok(Read::Again) => {}
                Err(e) if transient(&e) || session_over(&e) => tokio::time::sleep(RETRY).await,
                Err(e) => return Err(zk_err(format_args!("watching {}", self.dir), e)),
            }
        }
    }
}

/// Resolves once the connection of `generation` has been replaced (a watch set on
/// it will never fire then).
fn replaced(shared: &ZkShared, generation: u64) -> Wakeup {
    let mut conn_rx = shared.conn_tx.subscribe();
    conn_rx.borrow_and_update();
    Box::pin(async move {
        let _ = conn_rx.wait_for(|g| *g != generation).await;
    })
}

/// Follows the epoch marker alone: one data (or existence) watch that only `end()`
/// fires, so candidates coming and going cost it nothing.
struct EpochWatchState {
    shared: Arc<ZkShared>,
    marker: String,
    last: Option<u64>,
    wait: Option<Wakeup>,
}

impl EpochWatchState {
    async fn next(&mut self) -> Result<u64> {
        loop {
            if let Some(w) = self.wait.take() {
                w.await;
            }
            let (conn, client) = self.shared.live().await?;
            let replaced = replaced(&self.shared, conn.generation);
            let read = match client.get_and_watch_data(&self.marker).await {
                Ok((data, _, w)) => Ok(Some((parse_epoch(&data)?, w))),
                Err(zk::Error::NoNode) => match client.check_and_watch_stat(&self.marker).await {
                    Ok((None, w)) => Ok(Some((0, w))),
                    Ok((Some(_), _)) => Ok(None), // created in between: read it
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match read {
                Ok(Some((epoch, w))) => {
                    self.wait = Some(Box::pin(async move {
                        tokio::select! {
                            _ = w.changed() => {}
                            _ = replaced => {}
                        }
                    }));
                    if self.last != Some(epoch) {
                        self.last = Some(epoch);
                        return Ok(epoch);
                    }
                }
                Ok(None) => {}
                Err(e) if transient(&e) || session_over(&e) => tokio::time::sleep(RETRY).await,
                Err(e) => return Err(zk_err(format_args!("watching {}", self.marker), e)),
            }
        }
    }
}

/// Reads one snapshot of the election at `dir` and sets the watches that wake the
/// next read.
async fn read_election(
    shared: &ZkShared,
    dir: &str,
    client: &zk::Client,
    generation: u64,
) -> std::result::Result<Read, zk::Error> {
    let replaced = replaced(shared, generation);
    let (children, cw) = match client.list_and_watch_children(dir).await {
        Ok(x) => x,
        Err(zk::Error::NoNode) => {
            // No election node yet: wait for its creation.
            let (stat, w) = client.check_and_watch_stat(dir).await?;
            if stat.is_some() {
                return Ok(Read::Again);
            }
            let wake: Wakeup = Box::pin(async move {
                tokio::select! {
                    _ = w.changed() => {}
                    _ = replaced => {}
                }
            });
            return Ok(Read::Done(Snapshot { leader: None, epoch: 0 }, wake));
        }
        Err(e) => return Err(e),
    };
    let mut wakers: Vec<Wakeup> = vec![replaced, Box::pin(async move { drop(cw.changed().await) })];
    let mut epoch = 0;
    if children.iter().any(|c| c == EPOCH_MARKER) {
        match client.get_and_watch_data(&format!("{}/{EPOCH_MARKER}", dir)).await {
            Ok((data, _, w)) => {
                epoch = match parse_epoch(&data) {
                    Ok(e) => e,
                    Err(_) => return Err(zk::Error::UnexpectedError(format!("bad {EPOCH_MARKER}"))),
                };
                wakers.push(Box::pin(async move { drop(w.changed().await) }));
            }
            Err(zk::Error::NoNode) => return Ok(Read::Again),
            Err(e) => return Err(e),
        }
    }
    let mut leader = None;
    if let Some((_, first)) = sorted_latches(children).into_iter().next() {
        let path = format!("{}/{first}", dir);
        match client.get_and_watch_data(&path).await {
            Ok((data, stat, w)) => {
                leader = Some(Leader::new(data, stat.czxid as u64, path));
                wakers.push(Box::pin(async move { drop(w.changed().await) }));
            }
            Err(zk::Error::NoNode) => return Ok(Read::Again),
            Err(e) => return Err(e),
        }
    }
    let wake: Wakeup = Box::pin(async move {
        futures_util::future::select_all(wakers).await;
    });
    Ok(Read::Done(Snapshot { leader, epoch }, wake))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read that keeps meeting transient errors (a server that stays unreachable)
    /// stops at its limit with a `Connection` error naming the last one, instead of
    /// retrying every 100 ms for as long as the outage lasts.
    #[tokio::test(start_paused = true)]
    async fn a_read_that_keeps_failing_stops_at_its_limit() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let started = tokio::time::Instant::now();
        let read = retry_for(Duration::from_secs(4), "/svc/~ballot-epoch", || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(zk::Error::ConnectionLoss) }
        });
        let err = tokio::time::timeout(Duration::from_secs(3600), read)
            .await
            .expect("the read stops by itself")
            .expect_err("it never succeeds");
        assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
        let msg = err.to_string();
        assert!(msg.contains("no answer within 4s") && msg.contains("connection to server has lost"), "{msg}");
        assert_eq!(started.elapsed(), Duration::from_secs(4));
        // One try, then one every RETRY.
        assert_eq!(calls.load(Ordering::SeqCst), 41);

        // An error that is not transient ends it at once; an answer is returned.
        let err = retry_for(Duration::from_secs(4), "/x", || async { Err::<(), _>(zk::Error::NoAuth) }).await;
        assert_eq!(err.unwrap_err().kind(), ErrorKind::Auth);
        let mut n = 0;
        let ok = retry_for(Duration::from_secs(4), "/x", || {
            n += 1;
            let fail = n < 3;
            async move {
                if fail {
                    Err(zk::Error::ConnectionLoss)
                } else {
                    Ok(7)
                }
            }
        })
        .await;
        assert_eq!(ok.unwrap(), 7);
    }

    #[test]
    fn latch_names_sort_like_curator() {
        assert_eq!(latch_seq("_c_0b6f-latch-0000000012"), Some(12));
        assert_eq!(latch_seq("latch-0000000003"), Some(3));
        assert_eq!(latch_seq(EPOCH_MARKER), None);
        assert_eq!(latch_seq("_c_x-latch-"), None);
        assert_eq!(latch_seq("_c_x-latch-12a"), None);
        let sorted = sorted_latches(vec![
            "_c_b-latch-0000000010".into(),
            EPOCH_MARKER.into(),
            "_c_a-latch-0000000002".into(),
            "nested".into(),
        ]);
        assert_eq!(sorted.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![2, 10]);
        // Curator compares the text after "latch-", or the whole name: the marker
        // must sort after any sequence so that it is never a predecessor.
        assert!(EPOCH_MARKER > "9999999999");
        assert_eq!(fmt_seq(12), "0000000012");
    }

    #[test]
    fn names_zookeeper_refuses_are_invalid_arguments() {
        assert_eq!(election_dir("svc").unwrap(), "/svc");
        assert_eq!(election_dir("a/b").unwrap(), "/a/b");
        for bad in ["a/./b", "..", &format!("svc/{EPOCH_MARKER}")] {
            assert_eq!(election_dir(bad).unwrap_err().kind(), ErrorKind::InvalidArgument, "{bad}");
        }
        assert_eq!(parse_epoch(b"7").unwrap(), 7);
        assert_eq!(parse_epoch(b"x").unwrap_err().kind(), ErrorKind::Backend);
    }
}
