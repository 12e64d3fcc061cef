//! The local single-host backend (`file://DIR`).
//!
//! Layout of one election, in `DIR/<segment>.d/<segment>.d/...` (one directory per
//! name segment; the `.d` suffix keeps segment names from clashing with the files):
//!
//! - `leader.lock`: the leader holds an exclusive `flock` on it for as long as it
//!   leads. The kernel releases it the moment the holder dies, so a crashed leader
//!   is replaced at once.
//! - `state`: term, epoch, leader key and value; replaced atomically (write a
//!   temporary file, `fdatasync`, `rename`). The term is persisted and only grows.
//! - `state.lock`: a short-held `flock` serialising read-modify-write of `state`.
//! - `ended`: rewritten by `end()` after it bumped the epoch in `state`. A campaign
//!   watches only the epoch, and this doorbell lets it ignore the `state` changes
//!   of every handoff.
//!
//! Waiting candidates of one process share one thread per election that blocks in
//! `flock(LOCK_EX)`: the kernel wakes it when the leader releases or dies, so there
//! is no polling on the hand-off path. Within a process the lock goes to the oldest
//! waiter; across processes, to whichever the kernel wakes.
//!
//! A reader treats the leader named in `state` as current only while `leader.lock`
//! is held, so the record of a crashed leader is never reported as leading.

use crate::sync::lock;
use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{oneshot, watch};

use super::{Backend, Entry, EpochStream, Snapshot, SnapshotStream};
use crate::client::Options;
use crate::election::{Leader, LostReason};
use crate::error::{Error, ErrorKind, Result};
use crate::session::SessionTracker;
use crate::url::BackendUrl;

/// The file `end()` writes after bumping the epoch in `state`, so that epoch
/// watchers wake on it alone.
const ENDED: &str = "ended";

/// The local backend stores values up to 1 MiB.
const MAX_VALUE: usize = 1 << 20;
/// How often a watcher re-reads an election whose directory is notified by
/// inotify: only a leader that crashed with no successor goes unnotified.
const POLL_NOTIFIED: Duration = Duration::from_millis(250);
/// How often a watcher re-reads when inotify is unavailable.
const POLL_UNNOTIFIED: Duration = Duration::from_millis(20);
/// The same two for a watch of the epoch alone. Only `end()` changes it, and it
/// rings the `ended` doorbell (a lost inotify event wakes every subscriber), so with
/// inotify the poll is only a safety net; it is slow because a campaign holds such a
/// watch for every election: 10,000 elections polled every 10 s kept the blocking
/// threads busy.
const EPOCH_POLL_NOTIFIED: Duration = Duration::from_secs(300);
const EPOCH_POLL_UNNOTIFIED: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub(crate) struct LocalBackend {
    shared: Arc<LocalShared>,
}

#[derive(Debug)]
struct LocalShared {
    dir: PathBuf,
    session: Arc<SessionTracker>,
    id_prefix: String,
    seq: AtomicU64,
}

impl LocalBackend {
    pub(crate) async fn open(url: &BackendUrl, _options: &Options) -> Result<LocalBackend> {
        let dir = PathBuf::from(&url.path);
        let d2 = dir.clone();
        blocking(move || std::fs::create_dir_all(&d2)).await?.map_err(|e| {
            Error::io(ErrorKind::Connection, format_args!("cannot create backend directory {}", dir.display()), e)
        })?;
        // The local "session" is the process itself: it cannot expire while we run.
        let session = SessionTracker::new(None, Duration::ZERO);
        session.new_session(crate::session::Stamp::now());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Ok(LocalBackend {
            shared: Arc::new(LocalShared {
                dir,
                session,
                id_prefix: format!("{}.{:x}", std::process::id(), nanos & 0xffff_ffff),
                seq: AtomicU64::new(0),
            }),
        })
    }

    fn election_dir(&self, name: &str) -> PathBuf {
        let mut p = self.shared.dir.clone();
        for seg in name.split('/') {
            p.push(encode_segment(seg));
        }
        p
    }
}

/// A directory name for one name segment. Segments longer than a file name may be
/// are shortened and made unique by a hash of the whole segment.
fn encode_segment(seg: &str) -> String {
    if seg.len() <= 200 {
        return format!("{seg}.d");
    }
    let mut cut = 100;
    while !seg.is_char_boundary(cut) {
        cut -= 1;
    }
    // FNV-1a, 64 bits, twice with different offsets: 128 bits against collisions.
    let fnv = |basis: u64| seg.bytes().fold(basis, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    format!("{}~{:016x}{:016x}.d", &seg[..cut], fnv(0xcbf2_9ce4_8422_2325), fnv(0x6c62_272e_07bb_0142))
}

/// Runs blocking file-system work off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, format!("local backend task failed: {e}")))
}

fn io_err(what: impl std::fmt::Display, dir: &Path, e: io::Error) -> Error {
    Error::io(ErrorKind::Backend, format_args!("{what} in {}", dir.display()), e)
}

fn flock(f: &File, op: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock on a file descriptor we own; no memory is passed.
        let r = unsafe { libc::flock(f.as_raw_fd(), op) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)
}

/// The persisted record of one election.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct State {
    term: u64,
    epoch: u64,
    leader: Option<(String, Vec<u8>)>,
}

const MAGIC: &str = "ballot-local-state 1";

impl State {
    fn encode(&self) -> Vec<u8> {
        let (key, value) = match &self.leader {
            Some((k, v)) => (k.as_str(), v.as_slice()),
            None => ("-", &[][..]),
        };
        let mut out =
            format!("{MAGIC}\nterm {}\nepoch {}\nleader {key}\nvalue {}\n", self.term, self.epoch, value.len())
                .into_bytes();
        out.extend_from_slice(value);
        out
    }

    fn decode(buf: &[u8]) -> Option<State> {
        let mut rest = buf;
        let mut line = || -> Option<&str> {
            let i = rest.iter().position(|b| *b == b'\n')?;
            let l = std::str::from_utf8(&rest[..i]).ok()?;
            rest = &rest[i + 1..];
            Some(l)
        };
        if line()? != MAGIC {
            return None;
        }
        let term = line()?.strip_prefix("term ")?.parse().ok()?;
        let epoch = line()?.strip_prefix("epoch ")?.parse().ok()?;
        let key = line()?.strip_prefix("leader ")?.to_string();
        let len: usize = line()?.strip_prefix("value ")?.parse().ok()?;
        if rest.len() != len {
            return None;
        }
        let leader = if key == "-" { None } else { Some((key, rest.to_vec())) };
        Some(State { term, epoch, leader })
    }

    fn read(dir: &Path) -> Result<State> {
        let mut buf = Vec::new();
        match File::open(dir.join("state")) {
            Ok(mut f) => f.read_to_end(&mut buf).map_err(|e| io_err("reading state", dir, e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(io_err("opening state", dir, e)),
        };
        State::decode(&buf).ok_or_else(|| {
            Error::new(
                ErrorKind::Backend,
                format!("{} is not a ballot state file (corrupt or foreign)", dir.join("state").display()),
            )
        })
    }

    fn write(&self, dir: &Path) -> Result<()> {
        static TMP: AtomicU64 = AtomicU64::new(0);
        let tmp = dir.join(format!("state.tmp.{}.{}", std::process::id(), TMP.fetch_add(1, Ordering::Relaxed)));
        let r = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&self.encode())?;
            f.sync_data()?;
            std::fs::rename(&tmp, dir.join("state"))
        })();
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r.map_err(|e| io_err("writing state", dir, e))
    }

    /// Read-modify-write under `state.lock`.
    fn update<T>(dir: &Path, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let guard = open_rw(&dir.join("state.lock")).map_err(|e| io_err("opening state.lock", dir, e))?;
        flock(&guard, libc::LOCK_EX).map_err(|e| io_err("locking state.lock", dir, e))?;
        let mut st = State::read(dir)?;
        let before = st.clone();
        let out = f(&mut st)?;
        if st != before {
            st.write(dir)?;
        }
        Ok(out)
    }
}

/// Whether someone holds `leader.lock` now.
fn leader_lock_held(dir: &Path) -> Result<bool> {
    let f = match File::open(dir.join("leader.lock")) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err("opening leader.lock", dir, e)),
    };
    match flock(&f, libc::LOCK_SH | libc::LOCK_NB) {
        Ok(()) => Ok(false), // released when `f` is dropped
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(true),
        Err(e) => Err(io_err("probing leader.lock", dir, e)),
    }
}

fn read_snapshot(dir: &Path) -> Result<Snapshot> {
    let st = State::read(dir)?;
    let leader = match st.leader {
        Some((key, value)) if leader_lock_held(dir)? => Some(Leader::new(value, st.term, key)),
        _ => None,
    };
    Ok(Snapshot { leader, epoch: st.epoch })
}

fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io_err("creating the election directory", dir, e))
}

#[async_trait]
impl Backend for LocalBackend {
    fn session(&self) -> &Arc<SessionTracker> {
        &self.shared.session
    }

    fn max_value_len(&self) -> usize {
        MAX_VALUE
    }

    async fn join(&self, election: &str, value: &[u8]) -> Result<Arc<dyn Entry>> {
        let dir = self.election_dir(election);
        let d = dir.clone();
        blocking(move || ensure_dir(&d)).await??;
        let n = self.shared.seq.fetch_add(1, Ordering::Relaxed);
        let queue = LockQueue::of(&dir);
        Ok(Arc::new(LocalEntry {
            dir,
            key: format!("{}-{n}", self.shared.id_prefix),
            value: Mutex::new(value.to_vec()),
            held: Mutex::new(None),
            queue,
            waiting: Mutex::new(None),
            withdrawn: AtomicBool::new(false),
        }))
    }

    async fn leader(&self, election: &str) -> Result<Option<Leader>> {
        let dir = self.election_dir(election);
        Ok(blocking(move || read_snapshot(&dir)).await??.leader)
    }

    async fn watch(&self, election: &str) -> Result<SnapshotStream> {
        let st = self.watch_state(election, Doorbell::State, POLL_NOTIFIED, POLL_UNNOTIFIED).await?;
        let stream = futures_util::stream::unfold(st, |mut st| async move {
            let item = st.next().await;
            Some((item, st))
        });
        Ok(Box::pin(stream))
    }

    async fn watch_epoch(&self, election: &str) -> Result<EpochStream> {
        let st = self.watch_state(election, Doorbell::Ended, EPOCH_POLL_NOTIFIED, EPOCH_POLL_UNNOTIFIED).await?;
        let stream = futures_util::stream::unfold((st, None), |(mut st, last)| async move {
            loop {
                match st.next().await {
                    Ok(snap) if Some(snap.epoch) == last => continue,
                    Ok(snap) => return Some((Ok(snap.epoch), (st, Some(snap.epoch)))),
                    Err(e) => return Some((Err(e), (st, last))),
                }
            }
        });
        Ok(Box::pin(stream))
    }

    async fn end(&self, election: &str) -> Result<()> {
        let dir = self.election_dir(election);
        blocking(move || {
            ensure_dir(&dir)?;
            let mut epoch = 0;
            State::update(&dir, |st| {
                st.epoch += 1;
                st.leader = None;
                epoch = st.epoch;
                Ok(())
            })?;
            // The doorbell of the epoch watchers: they read `state` only when this
            // changes, not at every handoff. The epoch itself lives in `state`.
            std::fs::write(dir.join(ENDED), format!("{epoch}\n"))
                .map_err(|e| io_err("ringing the end doorbell", &dir, e))
        })
        .await?
    }

    async fn close(&self) {}
}

impl LocalBackend {
    /// A watch of `election` that re-reads on every notification of its directory,
    /// and otherwise every `notified` (or `unnotified` without inotify).
    async fn watch_state(
        &self,
        election: &str,
        bell: Doorbell,
        notified: Duration,
        unnotified: Duration,
    ) -> Result<WatchState> {
        let dir = self.election_dir(election);
        let d = dir.clone();
        blocking(move || ensure_dir(&d)).await??;
        let sub = Notifier::subscribe(&dir, bell);
        let poll = if sub.is_some() { notified } else { unnotified };
        Ok(WatchState { dir, sub, poll, last: None, first: true })
    }
}

struct WatchState {
    dir: PathBuf,
    sub: Option<Subscription>,
    poll: Duration,
    last: Option<Snapshot>,
    first: bool,
}

impl WatchState {
    async fn next(&mut self) -> Result<Snapshot> {
        loop {
            if !self.first {
                match &mut self.sub {
                    Some(s) => {
                        let _ = tokio::time::timeout(self.poll, s.rx.changed()).await;
                    }
                    None => tokio::time::sleep(self.poll).await,
                }
            }
            self.first = false;
            let dir = self.dir.clone();
            let snap = blocking(move || read_snapshot(&dir)).await??;
            if self.last.as_ref() != Some(&snap) {
                self.last = Some(snap.clone());
                return Ok(snap);
            }
        }
    }
}

/// Watched directories: a change counter for each and how many subscribe to it.
type WatchedDirs = Arc<Mutex<HashMap<PathBuf, DirWatch>>>;

/// The change counters of one watched directory and how many subscribe to it.
struct DirWatch {
    /// Bumped when `state` changes (every handoff).
    state: watch::Sender<u64>,
    /// Bumped when `ended` changes (only `end()` writes it).
    ended: watch::Sender<u64>,
    count: usize,
}

/// The file a subscription is woken by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Doorbell {
    State,
    Ended,
}

/// The inotify watcher of this process (the notify crate runs a thread for each
/// watcher, so one per client would be a thread per client).
fn notifier() -> std::sync::MutexGuard<'static, Option<Notifier>> {
    static N: Mutex<Option<Notifier>> = Mutex::new(None);
    static PID: AtomicU64 = AtomicU64::new(0);
    let mut n = lock(&N);
    // A forked child has none of its parent's threads: start afresh there, and
    // never drop the parent's watcher (its drop talks to a thread that is gone).
    let pid = u64::from(std::process::id());
    if PID.swap(pid, Ordering::SeqCst) != pid {
        if let Some(old) = n.take() {
            std::mem::forget(old);
        }
    }
    n
}

/// One inotify watcher per process, fanned out to per-directory channels.
struct Notifier {
    watcher: notify::RecommendedWatcher,
    dirs: WatchedDirs,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notifier")
    }
}

struct Subscription {
    dir: PathBuf,
    rx: watch::Receiver<u64>,
}

impl Notifier {
    /// Subscribes to changes of `dir/state` or `dir/ended`; None when inotify cannot
    /// watch the directory (the caller polls faster instead).
    fn subscribe(dir: &Path, bell: Doorbell) -> Option<Subscription> {
        use notify::Watcher;
        let mut slot = notifier();
        if slot.is_none() {
            let dirs: WatchedDirs = Arc::default();
            let d2 = dirs.clone();
            let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                let ev = match res {
                    Ok(ev) if !ev.need_rescan() => ev,
                    // The kernel's queue overflowed, or the watcher failed: events may
                    // be lost, so every subscriber reads again.
                    _ => {
                        for w in lock(&d2).values() {
                            w.state.send_modify(|n| *n += 1);
                            w.ended.send_modify(|n| *n += 1);
                        }
                        return;
                    }
                };
                for p in &ev.paths {
                    // Only these two files matter; reacting to anything else (our own
                    // probes, temporary files) would only cause extra reads.
                    let (Some(name), Some(parent)) = (p.file_name(), p.parent()) else { continue };
                    if let Some(w) = lock(&d2).get(parent) {
                        if name == "state" {
                            w.state.send_modify(|n| *n += 1);
                        } else if name == ENDED {
                            w.ended.send_modify(|n| *n += 1);
                        }
                    }
                }
            })
            .ok()?;
            *slot = Some(Notifier { watcher, dirs });
        }
        let n = slot.as_mut()?;
        let mut dirs = lock(&n.dirs);
        let pick = |w: &DirWatch| match bell {
            Doorbell::State => w.state.subscribe(),
            Doorbell::Ended => w.ended.subscribe(),
        };
        if let Some(w) = dirs.get_mut(dir) {
            w.count += 1;
            return Some(Subscription { dir: dir.to_path_buf(), rx: pick(w) });
        }
        let w = DirWatch { state: watch::channel(0).0, ended: watch::channel(0).0, count: 1 };
        let rx = pick(&w);
        dirs.insert(dir.to_path_buf(), w);
        drop(dirs);
        if n.watcher.watch(dir, notify::RecursiveMode::NonRecursive).is_err() {
            lock(&n.dirs).remove(dir);
            return None;
        }
        Some(Subscription { dir: dir.to_path_buf(), rx })
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        use notify::Watcher;
        let mut slot = notifier();
        let Some(n) = slot.as_mut() else { return };
        let mut dirs = lock(&n.dirs);
        let last = match dirs.get_mut(&self.dir) {
            Some(w) => {
                w.count -= 1;
                w.count == 0
            }
            None => false,
        };
        if last {
            dirs.remove(&self.dir);
            drop(dirs);
            let _ = n.watcher.unwatch(&self.dir);
        }
    }
}

type Handoff = oneshot::Sender<Result<File>>;

/// The waiting candidates of one election in this process, and the one thread that
/// blocks on `leader.lock` for them.
#[derive(Debug)]
struct LockQueue {
    path: PathBuf,
    inner: Mutex<QueueInner>,
}

#[derive(Debug, Default)]
struct QueueInner {
    waiters: VecDeque<(u64, Handoff)>,
    thread: bool,
    next_id: u64,
}

/// The lock queues of this process, by election directory: one per process, not
/// per client, because the kernel wakes every thread blocked in `flock` on a file
/// when it is unlocked, so a thread per client would make every handoff wake them
/// all.
fn queues() -> std::sync::MutexGuard<'static, HashMap<PathBuf, Arc<LockQueue>>> {
    static Q: std::sync::OnceLock<Mutex<HashMap<PathBuf, Arc<LockQueue>>>> = std::sync::OnceLock::new();
    static PID: AtomicU64 = AtomicU64::new(0);
    let mut q = lock(Q.get_or_init(Default::default));
    // A forked child has none of its parent's lock threads: its queues start empty.
    let pid = u64::from(std::process::id());
    if PID.swap(pid, Ordering::SeqCst) != pid {
        std::mem::forget(std::mem::take(&mut *q));
    }
    q
}

impl LockQueue {
    fn new(path: PathBuf) -> LockQueue {
        LockQueue { path, inner: Mutex::new(QueueInner::default()) }
    }

    /// The queue of the election at `dir` in this process.
    fn of(dir: &Path) -> Arc<LockQueue> {
        queues().entry(dir.to_path_buf()).or_insert_with(|| Arc::new(LockQueue::new(dir.join("leader.lock")))).clone()
    }

    /// Forgets this queue once it has neither waiters nor thread, so that the map
    /// does not grow with every election the process ever joined. Takes the map's
    /// lock before the queue's, as `of` + `register` do.
    fn forget_if_idle(self: &Arc<Self>) {
        let mut qs = queues();
        let Some(dir) = self.path.parent() else { return };
        let idle = {
            let q = lock(&self.inner);
            q.waiters.is_empty() && !q.thread
        };
        if idle && qs.get(dir).is_some_and(|x| Arc::ptr_eq(x, self)) {
            qs.remove(dir);
        }
    }

    fn register(self: &Arc<Self>) -> (u64, oneshot::Receiver<Result<File>>) {
        let (tx, rx) = oneshot::channel();
        let mut q = lock(&self.inner);
        let id = q.next_id;
        q.next_id += 1;
        q.waiters.push_back((id, tx));
        if !q.thread {
            let me = self.clone();
            let spawned =
                std::thread::Builder::new().name("ballot-flock".into()).stack_size(128 * 1024).spawn(move || me.run());
            match spawned {
                Ok(_) => q.thread = true,
                Err(e) => {
                    let err = Error::io(ErrorKind::Internal, "starting the lock thread", e);
                    for (_, tx) in q.waiters.drain(..) {
                        let _ = tx.send(Err(err.clone()));
                    }
                }
            }
        }
        (id, rx)
    }

    fn deregister(&self, id: u64) {
        lock(&self.inner).waiters.retain(|(i, _)| *i != id);
    }

    /// The lock thread: takes `leader.lock` and hands it to the oldest live waiter,
    /// until no waiter is left. A handed-over descriptor keeps the lock; the thread
    /// opens a new one for the next waiter, which blocks until the holder releases.
    fn run(self: Arc<Self>) {
        loop {
            let got = open_rw(&self.path).and_then(|f| flock(&f, libc::LOCK_EX).map(|_| f));
            let mut q = lock(&self.inner);
            match got {
                Ok(f) => {
                    let mut file = Some(f);
                    while let Some((_, tx)) = q.waiters.pop_front() {
                        match tx.send(Ok(file.take().expect("file present until sent"))) {
                            Ok(()) => break,
                            Err(back) => file = back.ok(),
                        }
                    }
                    if q.waiters.is_empty() {
                        q.thread = false;
                        drop(q);
                        drop(file); // if nobody took it, this unlocks
                        self.forget_if_idle();
                        return;
                    }
                }
                Err(e) => {
                    let err = Error::io(ErrorKind::Backend, format_args!("locking {}", self.path.display()), e);
                    for (_, tx) in q.waiters.drain(..) {
                        let _ = tx.send(Err(err.clone()));
                    }
                    q.thread = false;
                    drop(q);
                    self.forget_if_idle();
                    return;
                }
            }
        }
    }
}

#[derive(Debug)]
struct LocalEntry {
    dir: PathBuf,
    key: String,
    value: Mutex<Vec<u8>>,
    /// The descriptor holding `leader.lock` while this entry leads.
    held: Mutex<Option<File>>,
    queue: Arc<LockQueue>,
    waiting: Mutex<Option<u64>>,
    withdrawn: AtomicBool,
}

/// Deregisters a waiter whose `wait_won` future was dropped.
struct WaitGuard<'a> {
    entry: &'a LocalEntry,
    id: u64,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.entry.queue.deregister(self.id);
        lock(&self.entry.waiting).take();
    }
}

#[async_trait]
impl Entry for LocalEntry {
    async fn wait_won(&self) -> Result<Leader> {
        if lock(&self.held).is_none() {
            if self.withdrawn.load(Ordering::SeqCst) {
                return Err(Error::new(ErrorKind::Cancelled, "the candidate was withdrawn"));
            }
            let (id, rx) = self.queue.register();
            *lock(&self.waiting) = Some(id);
            let guard = WaitGuard { entry: self, id };
            let file = match rx.await {
                Ok(r) => r?,
                // The sender is dropped when `withdraw` deregisters this waiter.
                Err(_) if self.withdrawn.load(Ordering::SeqCst) => {
                    return Err(Error::new(ErrorKind::Cancelled, "the candidate was withdrawn"))
                }
                Err(_) => return Err(Error::new(ErrorKind::Internal, "the lock thread went away")),
            };
            drop(guard);
            if self.withdrawn.load(Ordering::SeqCst) {
                return Err(Error::new(ErrorKind::Cancelled, "the candidate was withdrawn"));
            }
            // Stored before any await, so `withdraw` finds it even if this future is
            // dropped from here on.
            *lock(&self.held) = Some(file);
        }
        let dir = self.dir.clone();
        let key = self.key.clone();
        let value = lock(&self.value).clone();
        blocking(move || {
            State::update(&dir, |st| {
                st.term += 1;
                st.leader = Some((key.clone(), value.clone()));
                Ok(Leader::new(value, st.term, key))
            })
        })
        .await?
    }

    async fn lost(&self) -> LostReason {
        // Only the process's death releases the lock; nothing to wait for.
        std::future::pending().await
    }

    async fn proclaim(&self, value: &[u8]) -> Result<()> {
        if lock(&self.held).is_none() {
            return Err(Error::new(ErrorKind::NotLeader, "this candidate does not hold the lock"));
        }
        let (dir, key, v) = (self.dir.clone(), self.key.clone(), value.to_vec());
        blocking(move || {
            State::update(&dir, |st| match &mut st.leader {
                Some((k, val)) if *k == key => {
                    *val = v;
                    Ok(())
                }
                _ => Err(Error::new(ErrorKind::NotLeader, "the election's record names another leader")),
            })
        })
        .await??;
        *lock(&self.value) = value.to_vec();
        Ok(())
    }

    async fn verify(&self) -> Result<bool> {
        Ok(lock(&self.held).is_some())
    }

    async fn withdraw(&self) -> Result<()> {
        self.withdrawn.store(true, Ordering::SeqCst);
        if let Some(id) = lock(&self.waiting).take() {
            self.queue.deregister(id);
        }
        let Some(file) = lock(&self.held).take() else { return Ok(()) };
        let (dir, key) = (self.dir.clone(), self.key.clone());
        blocking(move || {
            // Clear the record before releasing the lock, so no reader sees us as
            // leader after a successor could have taken over.
            let r = State::update(&dir, |st| {
                if st.leader.as_ref().is_some_and(|(k, _)| *k == key) {
                    st.leader = None;
                }
                Ok(())
            });
            drop(file);
            r
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_rejects_garbage() {
        let s = State { term: 7, epoch: 2, leader: Some(("k-1".into(), b"v\nwith newline\0".to_vec())) };
        assert_eq!(State::decode(&s.encode()), Some(s));
        let none = State { term: 1, epoch: 0, leader: None };
        assert_eq!(State::decode(&none.encode()), Some(none));
        assert_eq!(State::decode(b"garbage"), None);
        let mut trunc = State { term: 1, epoch: 0, leader: Some(("k".into(), b"abc".to_vec())) }.encode();
        trunc.pop();
        assert_eq!(State::decode(&trunc), None);
    }

    #[test]
    fn long_segments_get_distinct_short_names() {
        let a = "a".repeat(250);
        let mut b = a.clone();
        b.replace_range(249.., "b");
        let (ea, eb) = (encode_segment(&a), encode_segment(&b));
        assert_ne!(ea, eb);
        assert!(ea.len() < 255 && eb.len() < 255);
        assert_eq!(encode_segment("svc"), "svc.d");
    }
}
