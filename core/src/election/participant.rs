//! [`Participant`]: one participant of an election, as every clone of its
//! `Election`, its background tasks and its client reach it. It holds the state
//! machine behind a lock, feeds it inputs ([`Participant::step`]) and performs the
//! effects every input shares; the operations that need nothing more than that
//! (proclaim, resign, close) are here too.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::events;
use super::in_flight::InFlight;
use super::machine::{terminal_error, Effect, Input, Machine, Next, Published, Step, Ticket};
use crate::backend::{Backend, Entry};
use crate::connection::Connection;
use crate::error::{Error, ErrorKind, Result};
use crate::metrics::{HandleProbe, HandleSeries};
use crate::model::{Event, Leader, State};
use crate::sync::lock;

/// A backend entry as the state machine holds it: compared by identity, since two
/// joins are two candidates even with the same value.
#[derive(Debug, Clone)]
pub(super) struct EntryRef(pub(super) Arc<dyn Entry>);

impl PartialEq for EntryRef {
    fn eq(&self, other: &EntryRef) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// How much of an election a participant's watch follows.
///
/// A candidate only needs to learn of `end()`; following the leader costs every
/// watcher a notification and, on most servers, a read per handoff, which makes a
/// handoff O(N) in the number of candidates. So the leader is followed only once
/// someone asked for it with `observe()` or `events()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum WatchScope {
    /// Only the election's epoch, to learn of `end()`.
    Epoch,
    /// The epoch and the leader.
    Leader,
}

/// The running election watch of a participant, so it can be widened or stopped.
#[derive(Debug)]
pub(super) struct RunningWatch {
    pub(super) task: AbortHandle,
    pub(super) scope: WatchScope,
}

/// What the participant's lock guards: the state machine, and the one task that
/// works for its current ticket (the hold of a leadership, or a requeue), kept so
/// that a transition can stop it as the state changes.
struct Control {
    machine: Machine<EntryRef>,
    task: Option<AbortHandle>,
}

/// One participant of an election. Shared (`Arc`) by every clone of its
/// `Election`, by its own background tasks, and weakly by its `Leadership`s and its
/// client (which closes it).
pub(crate) struct Participant {
    pub(super) connection: Arc<Connection>,
    pub(super) name: String,
    control: Mutex<Control>,
    /// The machine's state, term and ticket after each transition, for waiters.
    pub(super) published: watch::Sender<Published>,
    /// The leader as this participant has seen it, for `observe()`.
    pub(super) leader: watch::Sender<Option<Leader>>,
    subscribers: Mutex<Vec<events::Sender>>,
    /// The election watch, once started (see [`WatchScope`]).
    pub(super) watch: tokio::sync::Mutex<Option<RunningWatch>>,
    /// Background joins and withdrawals in flight.
    pub(super) in_flight: Arc<InFlight>,
    /// `ballot_election` (field `election`), inside the client's span: the parent
    /// of this participant's records.
    span: tracing::Span,
    /// This handle's metric series, fed at the same places as its records.
    pub(super) metrics: Arc<HandleSeries>,
}

impl fmt::Debug for Participant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Participant").field("name", &self.name).field("state", &self.state_now()).finish()
    }
}

impl HandleProbe for Participant {
    fn state(&self) -> State {
        self.state_now()
    }
}

impl Participant {
    pub(super) fn new(connection: Arc<Connection>, name: String) -> Participant {
        let machine = Machine::new(name.clone(), connection.options.auto_requeue);
        let published = machine.published();
        let span = tracing::info_span!(target: "ballot", parent: &connection.span, "ballot_election", election = %name);
        let metrics = HandleSeries::register(&connection.metrics, &name);
        Participant {
            span,
            metrics,
            connection,
            name,
            control: Mutex::new(Control { machine, task: None }),
            published: watch::channel(published).0,
            leader: watch::channel(None).0,
            subscribers: Mutex::new(Vec::new()),
            watch: tokio::sync::Mutex::new(None),
            in_flight: Arc::default(),
        }
    }

    pub(super) fn backend(&self) -> &Arc<dyn Backend> {
        &self.connection.backend
    }

    /// Feeds `input` to the state machine, publishes the new state, performs the
    /// effects and returns what the caller does next.
    pub(super) fn step(&self, input: Input<EntryRef>) -> Next<EntryRef> {
        self.step_with(|| input)
    }

    /// [`step`](Self::step) with an input made while the lock is held, so that
    /// what it reads (the session) is read together with the state.
    pub(super) fn step_with(&self, input: impl FnOnce() -> Input<EntryRef>) -> Next<EntryRef> {
        let (Step { effects, next }, before, after) = {
            let mut control = lock(&self.control);
            let before = control.machine.published();
            let step = control.machine.step(input());
            let after = control.machine.published();
            if after != before {
                self.published.send_replace(after);
            }
            if step.effects.iter().any(|e| matches!(e, Effect::StopTask)) {
                if let Some(task) = control.task.take() {
                    task.abort();
                }
            }
            (step, before.state, after.state)
        };
        if before != after {
            tracing::debug!(target: "ballot", parent: &self.span, "state {before} -> {after}");
            self.metrics.transition(before, after);
        }
        match &next {
            Next::Requeue { .. } => {
                tracing::info!(target: "ballot", parent: &self.span, "campaigning again (auto-requeue)")
            }
            Next::Rejoin { .. } => {
                tracing::debug!(target: "ballot", parent: &self.span, "joining again under the new session")
            }
            _ => {}
        }
        for effect in effects {
            self.perform(effect);
        }
        next
    }

    fn perform(&self, effect: Effect<EntryRef>) {
        match effect {
            Effect::Emit(ev) => {
                self.record(&ev);
                match &ev {
                    Event::Elected { .. } => self.metrics.won(),
                    Event::Lost { reason } => self.metrics.lost(*reason),
                    _ => {}
                }
                self.emit(ev)
            }
            Effect::PublishLeader(leader) => {
                self.leader.send_replace(leader);
            }
            Effect::Withdraw(entry) => self.in_flight.spawn(async move {
                let _ = entry.0.withdraw().await;
            }),
            // Done under the lock, with the state change.
            Effect::StopTask => {}
            // The watch is only ever locked briefly while it starts; if it is
            // starting now, it stops on its next item's state check.
            Effect::StopWatch => {
                if let Ok(mut watch) = self.watch.try_lock() {
                    if let Some(running) = watch.take() {
                        running.task.abort();
                    }
                }
            }
            Effect::CloseSubscriptions => lock(&self.subscribers).clear(),
        }
    }

    /// Keeps `task` as the one working for `ticket`, so that the transition that
    /// ends the ticket stops it; stops `task` at once when `ticket` has ended
    /// meanwhile. The task it replaces is the one that started `task` (a requeue
    /// starting its hold, a hold starting its requeue), which ends by itself.
    pub(super) fn keep_task(&self, ticket: Ticket, task: AbortHandle) {
        let mut control = lock(&self.control);
        if control.machine.ticket() == ticket {
            control.task = Some(task);
        } else {
            task.abort();
        }
    }

    /// Reads the machine.
    pub(super) fn read<T>(&self, f: impl FnOnce(&Machine<EntryRef>) -> T) -> T {
        f(&lock(&self.control).machine)
    }

    /// The machine's state, without the session taken into account.
    pub(super) fn state(&self) -> State {
        self.read(|m| m.state())
    }

    /// The state with the session taken into account (see `Machine::state_seen`).
    pub(super) fn state_now(&self) -> State {
        self.read(|m| m.state_seen(self.backend().session().status()))
    }

    /// Records an event the handle delivers (never a value: it may be secret).
    fn record(&self, ev: &Event) {
        let span = &self.span;
        match ev {
            Event::Elected { term } => tracing::info!(target: "ballot", parent: span, term, "elected"),
            Event::Suspended => tracing::warn!(target: "ballot", parent: span, "suspended: do not act as leader"),
            Event::Reconnected => tracing::info!(target: "ballot", parent: span, "reconnected: leading again"),
            Event::Lost { reason } => tracing::warn!(target: "ballot", parent: span, reason = reason.as_str(), "lost"),
            Event::Resigned => tracing::info!(target: "ballot", parent: span, "resigned"),
            Event::LeaderChanged(Some(l)) => {
                tracing::debug!(target: "ballot", parent: span, term = l.term, key = %l.key, "leader changed")
            }
            Event::LeaderChanged(None) => tracing::debug!(target: "ballot", parent: span, "no leader"),
            Event::Ended => tracing::info!(target: "ballot", parent: span, "ended"),
            Event::Error(e) => tracing::warn!(target: "ballot", parent: span, "error: {e}"),
        }
    }

    pub(super) fn emit(&self, ev: Event) {
        let mut subs = lock(&self.subscribers);
        subs.retain(|tx| tx.send(ev.clone()));
    }

    /// Adds an event subscriber unless the participant is ended or closed.
    pub(super) fn subscribe(&self, tx: events::Sender) -> bool {
        if matches!(self.state(), State::Ended | State::Closed) {
            return false;
        }
        lock(&self.subscribers).push(tx);
        true
    }

    /// Bounds a one-shot backend request (a backend may retry inside while its
    /// servers are unreachable): the larger of the TTL and the connect timeout.
    pub(super) async fn bounded<T>(&self, what: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
        let o = &self.connection.options;
        let limit = o.ttl.max(o.connect_timeout);
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => {
                Err(Error::new(ErrorKind::Timeout, format!("{what}: no answer from the backend within {limit:?}")))
            }
        }
    }

    pub(super) fn check_usable(&self) -> Result<()> {
        if self.connection.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::closed());
        }
        terminal_error(self.state())
    }

    pub(super) fn check_value(&self, value: &[u8]) -> Result<()> {
        let max = self.backend().max_value_len();
        if value.is_empty() {
            return Err(Error::invalid("value is empty; a candidate value must be 1 byte or more"));
        }
        if value.len() > max {
            return Err(Error::invalid(format!("value is {} bytes; this backend's limit is {max} bytes", value.len())));
        }
        Ok(())
    }

    /// Waits (at most `limit`) until background joins and withdrawals of this
    /// participant are done, so that a caller that gives up on a campaign and then
    /// exits leaves nothing behind for the session's expiry to clean up.
    pub(crate) async fn settle(&self, limit: Duration) {
        self.in_flight.wait_until_none(limit).await
    }

    pub(super) async fn proclaim(&self, value: Vec<u8>) -> Result<()> {
        self.check_usable()?;
        self.check_value(&value)?;
        let session = self.backend().session().status();
        let (entry, ticket) = self.read(|m| m.leading_entry(session))?;
        entry.0.proclaim(&value).await?;
        self.step(Input::Proclaimed { ticket, value });
        Ok(())
    }

    pub(super) async fn resign(&self) -> Result<()> {
        self.check_usable()?;
        match self.step(Input::Resign) {
            Next::Withdraw(Some(entry)) => entry.0.withdraw().await,
            Next::Fail(e) => Err(e),
            _ => Ok(()),
        }
    }

    /// Moves to `Ended` (from a local `end()` or the backend's word).
    pub(super) fn end_locally(&self) {
        self.step(Input::End);
    }

    /// Closes the participant and withdraws its entry, and an entry whose join was
    /// still on its way to the server (see [`settle_after_close`](Self::settle_after_close)).
    pub(crate) async fn close(&self) {
        if let Some(e) = self.close_now() {
            let _ = e.withdraw().await;
        }
        self.settle_after_close().await;
    }

    /// Waits until the joins and withdrawals still in flight after the close are
    /// done: a join sent before the close lands after it, and its entry, withdrawn
    /// by then, would otherwise stay on the server (leading, once the others are
    /// gone) until the session ends. Bounded by the session TTL, after which the
    /// server drops a silent client's entries anyway.
    pub(crate) async fn settle_after_close(&self) {
        self.settle(self.connection.options.ttl()).await;
    }

    /// Moves to `Closed` at once (no later win is accepted) and hands back the
    /// entry that the caller must withdraw.
    pub(crate) fn close_now(&self) -> Option<Arc<dyn Entry>> {
        match self.step(Input::Close) {
            Next::Withdraw(entry) => entry.map(|e| e.0),
            _ => None,
        }
    }
}
