//! The election watch of a participant (its epoch, and the leader once someone
//! asked for it), which feeds the state machine what it sees, and the
//! [`Observe`] stream of leaders built on it.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_util::StreamExt;
use tokio::sync::{oneshot, watch};

use super::machine::{terminal_error, Input, Published};
use super::participant::{Participant, RunningWatch, WatchScope};
use crate::backend::Snapshot;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Event, Leader, State};
use crate::runtime;

/// The first pause before a broken election watch is opened again; it doubles up
/// to [`WATCH_RETRY_MAX`].
const WATCH_RETRY_MIN: Duration = Duration::from_millis(50);
const WATCH_RETRY_MAX: Duration = Duration::from_secs(2);

impl Participant {
    /// Starts the watch of the election (once, or again to widen it from the epoch
    /// to the leader) and waits for its first item, which fixes the epoch this
    /// participant belongs to.
    pub(super) async fn ensure_watch(self: &Arc<Self>, want: WatchScope) -> Result<()> {
        let mut guard = self.watch.lock().await;
        if guard.as_ref().is_some_and(|running| running.scope >= want) {
            return Ok(());
        }
        self.check_usable()?;
        let (tx, rx) = oneshot::channel();
        let task = runtime::spawn(watch_election(Arc::downgrade(self), tx, want))?;
        match rx.await {
            // Closed or ended while starting: the transition could not reach the task.
            Ok(Ok(())) if is_terminal(self.state()) => {
                task.abort();
                // A narrower watch being widened: nobody else could stop it.
                if let Some(old) = guard.take() {
                    old.task.abort();
                }
                terminal_error(self.state())
            }
            Ok(Ok(())) => {
                // The narrower watch stops only now, so that no epoch change falls
                // between the two.
                if let Some(old) = guard.replace(RunningWatch { task: task.abort_handle(), scope: want }) {
                    old.task.abort();
                }
                Ok(())
            }
            Ok(Err(e)) => {
                task.abort();
                Err(e)
            }
            // close() or end() stops the watch task; say so rather than report
            // an internal error.
            Err(_) if is_terminal(self.state()) => {
                if let Some(old) = guard.take() {
                    old.task.abort();
                }
                terminal_error(self.state())
            }
            Err(_) => Err(Error::new(ErrorKind::Internal, "the election watch stopped before its first snapshot")),
        }
    }
}

fn is_terminal(state: State) -> bool {
    matches!(state, State::Closed | State::Ended)
}

/// One item of an election watch.
enum WatchItem {
    Snapshot(Snapshot),
    Epoch(u64),
}

/// The watch loop of one participant: the whole election, or only its epoch.
/// Reports its first item (or its first failure) on `first`, then re-opens the
/// watch after a failure, reporting the error as an event.
async fn watch_election(participant: Weak<Participant>, first: oneshot::Sender<Result<()>>, scope: WatchScope) {
    let mut first = Some(first);
    let mut backoff = WATCH_RETRY_MIN;
    loop {
        let Some(p) = participant.upgrade() else { return };
        let backend = p.backend().clone();
        let name = p.name.clone();
        drop(p);
        let opened = match scope {
            WatchScope::Leader => backend.watch(&name).await.map(|w| w.map(|r| r.map(WatchItem::Snapshot)).boxed()),
            WatchScope::Epoch => backend.watch_epoch(&name).await.map(|w| w.map(|r| r.map(WatchItem::Epoch)).boxed()),
        };
        match opened {
            Ok(mut stream) => {
                while let Some(item) = stream.next().await {
                    let Some(p) = participant.upgrade() else { return };
                    // The transition to Closed or Ended may not have reached this
                    // task to stop it.
                    if is_terminal(p.state()) {
                        return;
                    }
                    match item {
                        Ok(seen) => {
                            p.step(match seen {
                                WatchItem::Snapshot(Snapshot { leader, epoch }) => Input::Snapshot { epoch, leader },
                                WatchItem::Epoch(epoch) => Input::Epoch(epoch),
                            });
                            backoff = WATCH_RETRY_MIN;
                            if let Some(tx) = first.take() {
                                let _ = tx.send(Ok(()));
                            }
                        }
                        Err(e) => {
                            if let Some(tx) = first.take() {
                                let _ = tx.send(Err(e));
                                return;
                            }
                            p.emit(Event::Error(e));
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                if let Some(tx) = first.take() {
                    let _ = tx.send(Err(e));
                    return;
                }
                if let Some(p) = participant.upgrade() {
                    p.emit(Event::Error(e));
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(WATCH_RETRY_MAX);
    }
}

/// The stream returned by [`Election::observe`](super::Election::observe).
pub struct Observe {
    inner: Pin<Box<dyn Stream<Item = Result<Option<Leader>>> + Send>>,
}

impl Observe {
    /// The leaders `participant` sees: the current one first, then each change,
    /// until the participant ends or closes.
    pub(super) fn new(participant: Arc<Participant>) -> Observe {
        let st = Observing { participant, leader: None, state: None, done: false };
        let stream = futures_util::stream::unfold(st, |mut st| async move {
            let item = st.next().await?;
            Some((item, st))
        });
        Observe { inner: Box::pin(stream) }
    }
}

impl fmt::Debug for Observe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Observe")
    }
}

impl Stream for Observe {
    type Item = Result<Option<Leader>>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Where an [`Observe`] stream stands: its subscriptions once the watch started.
struct Observing {
    participant: Arc<Participant>,
    leader: Option<watch::Receiver<Option<Leader>>>,
    state: Option<watch::Receiver<Published>>,
    done: bool,
}

impl Observing {
    async fn next(&mut self) -> Option<Result<Option<Leader>>> {
        if self.done {
            return None;
        }
        let p = self.participant.clone();
        if self.leader.is_none() {
            let started = runtime::run({
                let p = p.clone();
                async move { p.ensure_watch(WatchScope::Leader).await }
            })
            .await;
            if let Err(e) = started {
                self.done = matches!(e.kind(), ErrorKind::Ended | ErrorKind::Closed);
                return Some(Err(e));
            }
            let mut leader = p.leader.subscribe();
            let first = leader.borrow_and_update().clone();
            self.leader = Some(leader);
            self.state = Some(p.published.subscribe());
            return Some(Ok(first));
        }
        let (Some(leader), Some(state)) = (self.leader.as_mut(), self.state.as_mut()) else {
            return None;
        };
        loop {
            let st = state.borrow_and_update().state;
            if let Err(e) = terminal_error(st) {
                self.done = true;
                return Some(Err(e));
            }
            tokio::select! {
                r = leader.changed() => {
                    if r.is_err() {
                        self.done = true;
                        return Some(Err(Error::closed()));
                    }
                    return Some(Ok(leader.borrow_and_update().clone()));
                }
                r = state.changed() => {
                    if r.is_err() {
                        self.done = true;
                        return Some(Err(Error::closed()));
                    }
                }
            }
        }
    }
}
