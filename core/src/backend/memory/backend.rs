//! `MemoryBackend` and `MemoryEntry`: the `Backend`/`Entry` contract over a store
//! of this process.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use super::store::{self, Gone, Status, Store};
use crate::backend::{Backend, Entry, EpochStream, SnapshotStream};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Leader, LostReason, Participant};
use crate::options::Options;
use crate::session::{Health, SessionTracker, Stamp};
use crate::url::BackendUrl;

/// Values up to 1 MiB, as on the local backend and etcd, so that a test that
/// passes here does not fail there on size alone.
const MAX_VALUE: usize = 1 << 20;

/// One client's view of a store: its session and its namespace.
#[derive(Debug)]
pub(crate) struct MemoryBackend {
    store: Arc<Store>,
    /// The URL's namespace (`memory://NAME/ns`), put before every election name.
    ns: String,
    tracker: Arc<SessionTracker>,
    /// The session number in the store; changed only under the store's lock.
    session: AtomicU64,
    closed: AtomicBool,
}

impl MemoryBackend {
    /// A client of the store the URL names, with a new session.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` for what a memory:// URL cannot mean: a user, password or
    /// token, several names, a port, and the `ttl` and `margin` options (a memory
    /// session never times out; a test expires it).
    pub(crate) fn open(url: &BackendUrl, _options: &Options) -> Result<MemoryBackend> {
        if url.user.is_some() || url.password.is_some() {
            return Err(Error::invalid("memory:// URLs take no user, password or token"));
        }
        let name = match url.hosts.as_slice() {
            [one] if one.port == 0 => one.host.clone(),
            [one] => {
                return Err(Error::invalid(format!(
                    "memory:// URLs name an in-process store, as memory://{}; they take no port",
                    one.host
                )))
            }
            _ => return Err(Error::invalid("memory:// URLs name one in-process store, as memory://test; got several")),
        };
        for opt in ["ttl", "margin"] {
            if url.option(opt).is_some() {
                return Err(Error::invalid(format!(
                    "option {opt:?} makes no sense for memory:// URLs: a memory session never times out; a test \
                     makes it expire with ballot::memory::expire_session"
                )));
            }
        }
        let store = store::store(&name);
        let session = store.new_session()?;
        // No TTL: nothing but `expire_session` (or the client going away) ends it.
        let tracker = SessionTracker::new(None, Duration::ZERO);
        tracker.new_session(Stamp::now());
        Ok(MemoryBackend {
            store,
            ns: url.path.clone(),
            tracker,
            session: AtomicU64::new(session),
            closed: AtomicBool::new(false),
        })
    }

    /// The election's name in the store: the namespace, then the name.
    fn race(&self, election: &str) -> String {
        if self.ns.is_empty() {
            election.to_string()
        } else {
            format!("{}/{election}", self.ns)
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Closed, "the memory:// client is closed"));
        }
        Ok(())
    }

    /// Ends the session as a server would on expiry, and starts the next one, as
    /// the network backends do once they learn of it.
    ///
    /// The client learns first: from the moment this is called every handle of the
    /// client reads `Suspended`, not `Leader`, so no successor can win while one of
    /// them still claims to lead. Then, in one step of the store, its candidates
    /// leave every election (their successors lead) and a new session number
    /// replaces the old; last, the tracker gets a new healthy generation, under
    /// which an auto-requeue joins again.
    pub(crate) fn expire(&self) -> Result<()> {
        self.check_open()?;
        self.tracker.expired(self.tracker.status().generation);
        self.store.replace_session(&self.session)?;
        self.tracker.new_session(Stamp::now());
        Ok(())
    }

    /// The connection drops: leaders read `Suspended`; the store keeps everything.
    pub(crate) fn suspend(&self) -> Result<()> {
        self.check_open()?;
        self.tracker.disconnected(self.tracker.status().generation);
        Ok(())
    }

    /// The connection is back: leaders whose candidate still leads get
    /// `Reconnected`.
    pub(crate) fn resume(&self) -> Result<()> {
        self.check_open()?;
        self.tracker.acked(self.tracker.status().generation, Stamp::now());
        Ok(())
    }
}

impl Drop for MemoryBackend {
    /// A client that goes away without `close()` is a process that died: its
    /// session's candidates leave at once.
    fn drop(&mut self) {
        if !self.closed.load(Ordering::SeqCst) {
            let _ = self.store.drop_session(self.session.load(Ordering::SeqCst));
        }
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn session(&self) -> &Arc<SessionTracker> {
        &self.tracker
    }

    fn max_value_len(&self) -> usize {
        MAX_VALUE
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    async fn join(&self, election: &str, value: &[u8]) -> Result<Arc<dyn Entry>> {
        self.check_open()?;
        let race = self.race(election);
        let admit = || match self.tracker.status().health {
            Health::Healthy => Ok(self.session.load(Ordering::SeqCst)),
            Health::Suspended => Err(Error::new(
                ErrorKind::Connection,
                "the memory:// session is suspended (ballot::memory::suspend_session)",
            )),
            Health::Lost => Err(Error::new(ErrorKind::SessionLost, "the memory:// session expired")),
        };
        let joined = self.store.join(&race, admit, value)?;
        Ok(Arc::new(MemoryEntry {
            store: self.store.clone(),
            race,
            id: joined.id,
            epoch: joined.epoch,
            status: joined.status,
        }))
    }

    async fn leader(&self, election: &str) -> Result<Option<Leader>> {
        self.store.leader(&self.race(election))
    }

    async fn participants(&self, election: &str) -> Result<Vec<Participant>> {
        self.store.participants(&self.race(election))
    }

    async fn watch(&self, election: &str) -> Result<SnapshotStream> {
        let rx = self.store.watch(&self.race(election))?;
        Ok(Box::pin(futures_util::stream::unfold((rx, true), |(mut rx, first)| async move {
            if !first {
                // The sender lives as long as the store: an error is a forked child.
                rx.changed().await.ok()?;
            }
            let snap = rx.borrow_and_update().clone();
            Some((Ok(snap), (rx, false)))
        })))
    }

    async fn watch_epoch(&self, election: &str) -> Result<EpochStream> {
        let rx = self.store.watch_epoch(&self.race(election))?;
        Ok(Box::pin(futures_util::stream::unfold((rx, true), |(mut rx, first)| async move {
            if !first {
                rx.changed().await.ok()?;
            }
            let epoch = *rx.borrow_and_update();
            Some((Ok(epoch), (rx, false)))
        })))
    }

    async fn end(&self, election: &str) -> Result<()> {
        self.check_open()?;
        self.store.end(&self.race(election))
    }

    async fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.tracker.expired(self.tracker.status().generation);
        let _ = self.store.drop_session(self.session.load(Ordering::SeqCst));
    }
}

/// One candidate in a store's election.
#[derive(Debug)]
struct MemoryEntry {
    store: Arc<Store>,
    race: String,
    id: u64,
    epoch: u64,
    status: watch::Receiver<Status>,
}

impl MemoryEntry {
    /// Waits until the status is one `done` accepts, and returns it.
    async fn wait_for(&self, done: impl Fn(Status) -> bool) -> Status {
        let mut rx = self.status.clone();
        let seen = rx.wait_for(|s| done(*s)).await.map(|s| *s);
        // An error: the store dropped the sender, which it does only after a last
        // `Gone`, so that is the answer.
        seen.unwrap_or_else(|_| *rx.borrow())
    }
}

#[async_trait]
impl Entry for MemoryEntry {
    fn epoch(&self) -> Option<u64> {
        Some(self.epoch)
    }

    async fn wait_won(&self) -> Result<Leader> {
        loop {
            match self.wait_for(|s| s != Status::Waiting).await {
                Status::Leading => {
                    if let Some(l) = self.store.leading(&self.race, self.id)? {
                        return Ok(l);
                    }
                    // Gone again between the status and the read: look again.
                    tokio::task::yield_now().await;
                }
                Status::Gone(Gone::Withdrawn) => {
                    return Err(Error::new(ErrorKind::Cancelled, "the candidate was withdrawn"))
                }
                Status::Gone(Gone::Expired) => {
                    return Err(Error::new(ErrorKind::SessionLost, "the memory:// session of this candidate expired"))
                }
                Status::Gone(Gone::Ended) => return Err(Error::ended()),
                Status::Waiting => {
                    return Err(Error::new(ErrorKind::Internal, "the memory:// store let go of a waiting candidate"))
                }
            }
        }
    }

    async fn lost(&self) -> LostReason {
        match self.wait_for(|s| matches!(s, Status::Gone(_))).await {
            Status::Gone(Gone::Expired) => LostReason::SessionLost,
            // The handle's epoch watch reports the end(); a loss here would race it.
            Status::Gone(Gone::Ended) => std::future::pending().await,
            _ => LostReason::Deleted,
        }
    }

    async fn proclaim(&self, value: &[u8]) -> Result<()> {
        self.store.proclaim(&self.race, self.id, value)
    }

    async fn verify(&self) -> Result<bool> {
        self.store.verify(&self.race, self.id)
    }

    async fn withdraw(&self) -> Result<()> {
        self.store.withdraw(&self.race, self.id)
    }
}
