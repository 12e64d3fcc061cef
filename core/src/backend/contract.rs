//! The contract between the engine and a backend: the [`Backend`] and [`Entry`]
//! traits, and what a watch reports ([`Snapshot`]).
//!
//! A backend knows how to store candidates and read leaders on one coordination
//! system. It never touches the election state machine (`election.rs`): it reports
//! facts (this entry now leads, this entry is gone, the session is unhealthy) and the
//! engine decides what they mean.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures_core::Stream;

use crate::error::Result;
use crate::model::{Leader, LostReason, Participant};
use crate::session::SessionTracker;

/// A boxed stream of snapshots of one election.
pub(crate) type SnapshotStream = Pin<Box<dyn Stream<Item = Result<Snapshot>> + Send>>;

/// A boxed stream of the epochs of one election.
pub(crate) type EpochStream = Pin<Box<dyn Stream<Item = Result<u64>> + Send>>;

/// What a watcher sees of one election at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// The current leader, if any.
    pub(crate) leader: Option<Leader>,
    /// Incremented by every `end()`. A participant that joined under an older epoch
    /// is ended.
    pub(crate) epoch: u64,
}

/// One coordination system, as seen by one client (one session).
///
/// Every method is called on the library runtime. Futures must be cancel-safe in
/// the sense that dropping one leaves nothing behind that `Entry::withdraw` or the
/// session's expiry would not clean up.
#[async_trait]
pub(crate) trait Backend: Send + Sync + fmt::Debug + 'static {
    /// The session tracker: the engine reads health and generation from it.
    fn session(&self) -> &Arc<SessionTracker>;

    /// The largest value this backend stores, in bytes.
    fn max_value_len(&self) -> usize;

    /// The session TTL actually in force when the server decides it (a ZooKeeper
    /// server clamps the requested session timeout); `None` keeps the requested TTL.
    fn session_ttl(&self) -> Option<std::time::Duration> {
        None
    }

    /// The backend as `Any`, for the test helpers of `ballot::memory`, which reach
    /// a memory backend through a `Client`; `None` for every other backend.
    #[cfg(feature = "memory")]
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }

    /// Adds a candidate with `value` to `election` under the current session.
    /// The returned entry is not yet leader; `Entry::wait_won` says when it is.
    async fn join(&self, election: &str, value: &[u8]) -> Result<Arc<dyn Entry>>;

    /// Reads the current leader.
    async fn leader(&self, election: &str) -> Result<Option<Leader>>;

    /// Lists the candidates of `election` in queue order, the leader first, from
    /// one consistent read where the backend allows it, so that the order and the
    /// leader flag agree. Candidates of the native recipes that share the layout
    /// (Curator `LeaderLatch` nodes, `etcdctl elect` keys, a `consul lock` holder)
    /// are listed too. No candidate: an empty list. At most one participant, the
    /// first, has `leader` set; a first participant without it is next in line
    /// while no one leads (for example between a release and the next win).
    async fn participants(&self, election: &str) -> Result<Vec<Participant>>;

    /// Watches `election`: the first item is the state now, then one item per change
    /// (coalescing is allowed). Transient errors are retried inside; an `Err` item
    /// means the watch is broken and the engine will call `watch` again.
    async fn watch(&self, election: &str) -> Result<SnapshotStream>;

    /// Watches only the epoch of `election`: the first item is the epoch now, then
    /// one item per `end()` (repeats are allowed). Errors as for `watch`. A campaign
    /// keeps this open, so it must cost nothing while candidates come and go: the
    /// default follows the whole election, and a backend that can watch the epoch
    /// alone overrides it.
    async fn watch_epoch(&self, election: &str) -> Result<EpochStream> {
        use futures_util::StreamExt;
        let snaps = self.watch(election).await?;
        Ok(snaps.map(|r| r.map(|s| s.epoch)).boxed())
    }

    /// Ends the current round of `election` for every participant (bumps its epoch)
    /// and clears its leader. Terms keep increasing afterwards.
    async fn end(&self, election: &str) -> Result<()>;

    /// Releases the session (best effort).
    async fn close(&self);
}

/// One candidate in one election, made by [`Backend::join`].
#[async_trait]
pub(crate) trait Entry: Send + Sync + fmt::Debug + 'static {
    /// Resolves once this entry leads, with the leader record (term, value, key).
    /// Cancel-safe: dropping the future keeps the entry in the queue.
    async fn wait_won(&self) -> Result<Leader>;

    /// Resolves when the backend sees that this entry, after winning, no longer
    /// leads (its record was deleted or taken over). Session health is tracked
    /// separately by the engine; this covers what the session cannot tell.
    async fn lost(&self) -> LostReason;

    /// Replaces the value while leading; `NotLeader` if the entry does not lead.
    async fn proclaim(&self, value: &[u8]) -> Result<()>;

    /// Checks that the entry still exists and belongs to the current session
    /// (after a reconnect, before leadership is claimed again).
    async fn verify(&self) -> Result<bool>;

    /// Removes the entry (resigning if it leads). Idempotent.
    async fn withdraw(&self) -> Result<()>;

    /// The election's epoch when the entry was made, when the backend read it.
    fn epoch(&self) -> Option<u64> {
        None
    }
}
