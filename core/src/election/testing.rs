//! A minimal in-process backend for engine tests. It covers races of the state
//! machine that a real server cannot produce on demand (two futures ready at once)
//! and the event queues; every behaviour of a real backend is tested against the
//! real server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;

use super::Election;
use crate::backend::{Backend, Entry, EpochStream, Snapshot, SnapshotStream};
use crate::connection::Connection;
use crate::error::Result;
use crate::model::{Event, Leader, LostReason};
use crate::options::Options;
use crate::session::SessionTracker;

/// When the test backend's session goes away, relative to the win.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Loss {
    /// Never: every candidate wins at once.
    Never,
    /// Right after the join: the win and the loss are both ready when the
    /// engine first waits.
    AfterJoin,
    /// Inside `wait_won`, just before it reports the win.
    WhileWinning,
}

#[derive(Debug)]
pub(crate) struct TestBackend {
    tracker: Arc<SessionTracker>,
    loss: Loss,
    gate: Option<Arc<Gate>>,
}

#[derive(Debug)]
struct TestEntry {
    tracker: Arc<SessionTracker>,
    loss: Loss,
    gate: Option<Arc<Gate>>,
    withdrawn: AtomicBool,
}

/// Holds every join until the test opens it, and logs what reaches the backend
/// in order: `joined`, `withdrawn`, `withdraw refused` (after the backend closed,
/// as a real client whose session is gone refuses it) and `closed`.
#[derive(Debug)]
pub(crate) struct Gate {
    /// Notified when a join reaches the backend and waits.
    pub(crate) entered: tokio::sync::Notify,
    open: tokio::sync::Semaphore,
    closed: AtomicBool,
    log: Mutex<Vec<&'static str>>,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            entered: tokio::sync::Notify::new(),
            open: tokio::sync::Semaphore::new(0),
            closed: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
        }
    }

    /// Lets one waiting (or the next) join through.
    pub(crate) fn open_one(&self) {
        self.open.add_permits(1);
    }

    /// What reached the backend so far, in order.
    pub(crate) fn log(&self) -> Vec<&'static str> {
        self.log.lock().unwrap().clone()
    }

    fn record(&self, what: &'static str) {
        self.log.lock().unwrap().push(what);
    }
}

#[async_trait]
impl Backend for TestBackend {
    fn session(&self) -> &Arc<SessionTracker> {
        &self.tracker
    }
    fn max_value_len(&self) -> usize {
        1024
    }
    async fn join(&self, _election: &str, _value: &[u8]) -> Result<Arc<dyn Entry>> {
        if let Some(gate) = &self.gate {
            gate.entered.notify_one();
            gate.open.acquire().await.expect("the gate's semaphore is never closed").forget();
            gate.record("joined");
        }
        if let Loss::AfterJoin = self.loss {
            self.tracker.expired(self.tracker.status().generation);
        }
        Ok(Arc::new(TestEntry {
            tracker: self.tracker.clone(),
            loss: self.loss,
            gate: self.gate.clone(),
            withdrawn: AtomicBool::new(false),
        }))
    }
    async fn leader(&self, _election: &str) -> Result<Option<Leader>> {
        Ok(None)
    }
    async fn participants(&self, _election: &str) -> Result<Vec<crate::model::Participant>> {
        Ok(Vec::new())
    }
    async fn watch(&self, _election: &str) -> Result<SnapshotStream> {
        let first = Snapshot { leader: None, epoch: 0 };
        Ok(futures_util::stream::once(async move { Ok(first) }).chain(futures_util::stream::pending()).boxed())
    }
    async fn watch_epoch(&self, _election: &str) -> Result<EpochStream> {
        Ok(futures_util::stream::once(async { Ok(0) }).chain(futures_util::stream::pending()).boxed())
    }
    async fn end(&self, _election: &str) -> Result<()> {
        Ok(())
    }
    async fn close(&self) {
        if let Some(gate) = &self.gate {
            gate.closed.store(true, Ordering::SeqCst);
            gate.record("closed");
        }
    }
}

#[async_trait]
impl Entry for TestEntry {
    async fn wait_won(&self) -> Result<Leader> {
        if let Loss::WhileWinning = self.loss {
            self.tracker.expired(self.tracker.status().generation);
        }
        Ok(Leader::new(b"v".to_vec(), 1, "k".into()))
    }
    async fn lost(&self) -> LostReason {
        std::future::pending().await
    }
    async fn proclaim(&self, _value: &[u8]) -> Result<()> {
        Ok(())
    }
    async fn verify(&self) -> Result<bool> {
        Ok(true)
    }
    async fn withdraw(&self) -> Result<()> {
        let Some(gate) = &self.gate else { return Ok(()) };
        if gate.closed.load(Ordering::SeqCst) {
            gate.record("withdraw refused");
            return Err(crate::error::Error::new(crate::error::ErrorKind::SessionLost, "the test backend is closed"));
        }
        if !self.withdrawn.swap(true, Ordering::SeqCst) {
            gate.record("withdrawn");
        }
        Ok(())
    }
}

/// A connection over a fresh test backend (auto-requeue off) and its session
/// tracker. `Client::for_test` makes a client of it.
pub(crate) fn connection(loss: Loss) -> (Arc<Connection>, Arc<SessionTracker>) {
    test_connection(loss, None)
}

/// A connection over a fresh test backend whose joins wait for the returned gate.
pub(crate) fn gated_connection() -> (Arc<Connection>, Arc<Gate>) {
    let gate = Arc::new(Gate::new());
    (test_connection(Loss::Never, Some(gate.clone())).0, gate)
}

fn test_connection(loss: Loss, gate: Option<Arc<Gate>>) -> (Arc<Connection>, Arc<SessionTracker>) {
    let tracker = SessionTracker::new(None, Duration::ZERO);
    tracker.new_session(crate::session::Stamp::now());
    let backend = Arc::new(TestBackend { tracker: tracker.clone(), loss, gate });
    (Connection::for_test(backend, Options::default().with_auto_requeue(false)), tracker)
}

/// Emits `ev` on `e` as the state machine would.
pub(crate) fn emit(e: &Election, ev: Event) {
    e.participant().emit(ev);
}

/// A short name per event, for comparing event sequences in tests.
pub(crate) fn tag(ev: &Event) -> String {
    match ev {
        Event::Elected { term } => format!("E{term}"),
        Event::Suspended => "S".into(),
        Event::Reconnected => "R".into(),
        Event::Lost { .. } => "L".into(),
        Event::Resigned => "Res".into(),
        Event::LeaderChanged(l) => format!("C{}", l.as_ref().map_or(0, |l| l.term)),
        Event::Ended => "End".into(),
        Event::Error(_) => "Err".into(),
    }
}
