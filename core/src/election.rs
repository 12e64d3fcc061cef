//! `Election`: the operations, the state machine and the events. The state machine
//! is written here once; backends only report facts through the `Backend` and
//! `Entry` traits.
//!
//! ```text
//! Idle --campaign--> Campaigning --won--> Leader --resign--> Idle
//!                         ^                 |  ^
//!                         |              suspend  reconnect (ownership re-verified)
//!                         |                 v  |
//!                         +----lost------ Suspended
//! Any state --end() by anyone--> Ended (terminal)      Any state --close--> Closed (terminal)
//! ```

use crate::sync::lock;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_util::StreamExt;
use tokio::sync::{oneshot, watch};
use tokio::task::AbortHandle;

use crate::backend::{Backend, Entry, Snapshot};
use crate::connection::Connection;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Event, Leader, LostReason, State};
use crate::runtime;
use crate::session::Health;

/// Proof of a won campaign: the term and key, and a way to learn when it is over.
#[derive(Debug, Clone)]
pub struct Leadership {
    term: u64,
    key: String,
    value: Vec<u8>,
    op: u64,
    state: watch::Receiver<StateInfo>,
    shared: Weak<Shared>,
}

impl Leadership {
    /// The term (fencing token) of this leadership.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// The leader key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value campaigned with.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// Whether this leadership still holds right now (state `Leader`, same term,
    /// session healthy by the boot-time clock, which counts a host suspend). A
    /// process paused after this check cannot know that it has gone stale; that is
    /// what the term is for.
    pub fn is_current(&self) -> bool {
        match self.shared.upgrade() {
            Some(s) => s.state_now() == State::Leader && s.info().op == self.op,
            None => false,
        }
    }

    /// Resolves when this leadership is over (lost, resigned, suspended, ended or
    /// closed). Cancel-safe.
    pub async fn lost(&self) {
        let mut rx = self.state.clone();
        let op = self.op;
        let _ = rx.wait_for(|i| !(i.state == State::Leader && i.op == op)).await;
    }
}

/// A handle on one election: campaign, proclaim, resign, read and observe the
/// leader, end the election.
///
/// `Election` is `Send + Sync` and cheap to clone; clones are the same participant.
/// Operations run on the library runtime, so they can be awaited from any
/// executor. Dropping the last clone withdraws the candidate (resigning if it
/// leads) in the background.
#[derive(Clone)]
pub struct Election {
    handle: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let s = self.shared.clone();
        runtime::spawn_detached(async move { s.close().await });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StateInfo {
    state: State,
    term: Option<u64>,
    /// Bumped by every transition that invalidates running work (resign, loss,
    /// end, close, a new campaign); background tasks compare it before acting.
    op: u64,
}

/// The leader as this handle has observed it, never going back in term.
#[derive(Debug, Clone, Default)]
struct View {
    leader: Option<Leader>,
    max_term: u64,
}

pub(crate) struct Shared {
    client: Arc<Connection>,
    name: String,
    inner: Mutex<Inner>,
    state_tx: watch::Sender<StateInfo>,
    view_tx: watch::Sender<View>,
    events: Mutex<Vec<queue::Sender>>,
    /// The running watch of the election, and whether it follows the leader too
    /// (`Watch::Full`) or only the epoch (`Watch::Epoch`).
    monitor: tokio::sync::Mutex<Option<(AbortHandle, Watch)>>,
    /// Background joins and withdrawals in flight.
    withdrawing: Pending,
}

/// How much of an election a handle watches.
///
/// A candidate only needs to learn of `end()`; following the leader costs every
/// watcher a notification and, on most servers, a read per handoff, which makes a
/// handoff O(N) in the number of candidates. So the leader is followed only once
/// someone asked for it with `observe()` or `events()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Watch {
    Epoch,
    Full,
}

/// The pauses before a candidate joins again after its backend reported the
/// session lost under it.
const SESSION_RETRY_MIN: Duration = Duration::from_millis(20);
const SESSION_RETRY_MAX: Duration = Duration::from_secs(1);

/// The pauses between attempts of an automatic requeue that failed on a
/// transient error.
const REQUEUE_PAUSE_MIN: Duration = Duration::from_millis(200);
const REQUEUE_PAUSE_MAX: Duration = Duration::from_secs(5);

/// Whether an automatic requeue tries again after an error of this kind: the
/// server or the session may come back; refused credentials, an ended election
/// or a closed handle do not.
fn requeue_retries(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::SessionLost | ErrorKind::Backend)
}

/// Background tasks of one handle in flight, and a wake-up when one finishes.
type Pending = Arc<(std::sync::atomic::AtomicUsize, tokio::sync::Notify)>;

/// Runs `fut` as a detached task counted in `pending` (which `Shared::settle` waits on).
fn in_background(pending: &Pending, fut: impl std::future::Future<Output = ()> + Send + 'static) {
    let pending = pending.clone();
    pending.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    runtime::spawn_detached(async move {
        fut.await;
        pending.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        pending.1.notify_waiters();
    });
}

/// The receiving end of a [`Shared::join_detached`] task.
struct Joining {
    rx: oneshot::Receiver<Result<Arc<dyn Entry>>>,
    pending: Pending,
}

impl Drop for Joining {
    fn drop(&mut self) {
        // An entry sent before the close is ours to withdraw; after it, the join
        // task's send fails and the task withdraws the entry itself.
        self.rx.close();
        if let Ok(Ok(entry)) = self.rx.try_recv() {
            in_background(&self.pending, async move {
                let _ = entry.withdraw().await;
            });
        }
    }
}

struct Inner {
    info: StateInfo,
    value: Vec<u8>,
    entry: Option<Arc<dyn Entry>>,
    task: Option<AbortHandle>,
    epoch_base: Option<u64>,
}

impl fmt::Debug for Election {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Election").field("name", &self.handle.shared.name).field("state", &self.state()).finish()
    }
}

impl Election {
    pub(crate) fn new(client: Arc<Connection>, name: String) -> Election {
        let info = StateInfo { state: State::Idle, term: None, op: 0 };
        let shared = Arc::new(Shared {
            client,
            name,
            inner: Mutex::new(Inner { info, value: Vec::new(), entry: None, task: None, epoch_base: None }),
            state_tx: watch::channel(info).0,
            view_tx: watch::channel(View::default()).0,
            events: Mutex::new(Vec::new()),
            monitor: tokio::sync::Mutex::new(None),
            withdrawing: Arc::default(),
        });
        Election { handle: Arc::new(Handle { shared }) }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// The election name.
    pub fn name(&self) -> &str {
        &self.handle.shared.name
    }

    /// The state now. A `Leader` whose session has passed its local deadline (for
    /// example a process resumed after SIGSTOP, or a host resumed from suspend: the
    /// deadline counts `CLOCK_BOOTTIME`, which runs on during a suspend) reads as
    /// `Suspended` even before the background task has reported `Lost`.
    ///
    /// A process that is paused right after this read and acts later cannot know
    /// what happened meanwhile; pass the term to the resource you protect, so that
    /// it can refuse a stale leader (see the README's safety section).
    pub fn state(&self) -> State {
        self.handle.shared.state_now()
    }

    /// Campaigns with `value` (1 byte to the backend's limit) and resolves once this
    /// handle leads.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` for an empty or oversized value or when already
    /// campaigning or leading; `Ended`, `Closed`; `SessionLost` if the session is
    /// lost while waiting (or as the campaign wins) and auto-requeue is off; `Cancelled` if `resign()` withdrew
    /// the candidate; backend errors (`Connection`, `Auth`, `Backend`).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future (or a timeout around it) withdraws the candidate and
    /// leaves no entry behind.
    pub async fn campaign(&self, value: impl AsRef<[u8]>) -> Result<Leadership> {
        let s = self.handle.shared.clone();
        let value = value.as_ref().to_vec();
        {
            let (s, v) = (s.clone(), value.clone());
            runtime::run(async move {
                s.check_usable()?;
                s.check_value(&v)?;
                // Fixes the epoch this participant belongs to before it joins.
                s.ensure_monitor(Watch::Epoch).await
            })
            .await?;
        }
        let op = s.begin_campaign(&value)?;
        // The guard lives in the caller's future, so dropping that future resets the
        // state and withdraws synchronously, not whenever the runtime gets to the
        // aborted task.
        let mut guard = CampaignGuard { shared: s.clone(), op, armed: true };
        let s2 = s.clone();
        let lead = runtime::run(async move { s2.acquire_and_win(op, &value).await }).await?;
        guard.armed = false;
        Ok(lead)
    }

    /// Replaces the leader's value; the term does not change.
    ///
    /// # Errors
    ///
    /// `NotLeader` unless the state is `Leader`; `InvalidArgument` for a bad value.
    pub async fn proclaim(&self, value: impl AsRef<[u8]>) -> Result<()> {
        let s = self.handle.shared.clone();
        let value = value.as_ref().to_vec();
        runtime::run(async move { s.proclaim(value).await }).await
    }

    /// Gives up leadership, or withdraws a waiting candidate (a pending `campaign`
    /// then fails with `Cancelled`).
    ///
    /// # Errors
    ///
    /// `NotLeader` when neither leading nor campaigning; `Ended`, `Closed`; a
    /// backend error if the record could not be removed (the session's expiry
    /// removes it later).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops only the waiting: the resignation completes in the
    /// background, so the record never outlives the handle's wish to lead.
    pub async fn resign(&self) -> Result<()> {
        let s = self.handle.shared.clone();
        runtime::run_to_completion(async move { s.resign().await }).await
    }

    /// Reads the current leader from the backend.
    ///
    /// # Errors
    ///
    /// `Ended`, `Closed`, or a backend error.
    pub async fn leader(&self) -> Result<Option<Leader>> {
        let s = self.handle.shared.clone();
        runtime::run(async move {
            s.check_usable()?;
            s.bounded("reading the leader", s.backend().leader(&s.name)).await
        })
        .await
    }

    /// Ends the election for every participant: each gets `Ended` and leaders step
    /// down. This handle becomes `Ended` too. Terms keep increasing if the name is
    /// used again by new handles.
    ///
    /// # Errors
    ///
    /// `Closed`, or a backend error.
    pub async fn end(&self) -> Result<()> {
        let s = self.handle.shared.clone();
        runtime::run(async move {
            match s.info().state {
                State::Closed => return Err(Error::closed()),
                State::Ended => return Ok(()),
                _ => {}
            }
            s.bounded("ending the election", s.backend().end(&s.name)).await?;
            s.end_locally();
            Ok(())
        })
        .await
    }

    /// Watches the leader: the current one first, then each change. Never yields
    /// an older term after a newer one. Ends after yielding `Err(Ended)` or
    /// `Err(Closed)`; other errors are yielded as the watch is re-established.
    pub fn observe(&self) -> Observe {
        let s = self.handle.shared.clone();
        let st = ObserveState { shared: s, view: None, state: None, done: false };
        let stream = futures_util::stream::unfold(st, |mut st| async move {
            let item = st.next().await?;
            Some((item, st))
        });
        Observe { inner: Box::pin(stream) }
    }

    /// Subscribes to this handle's events, in order. The stream ends after `Ended`
    /// or when the handle is closed. Each call makes an independent subscription.
    ///
    /// # Slow subscribers
    ///
    /// The library never waits for a subscriber, and a subscription holds at most
    /// 1024 events that were not received yet. When an
    /// event arrives at a full queue, room is made by removing what a later event
    /// supersedes or what cancels out, in this order:
    ///
    /// 1. the oldest queued `LeaderChanged`: each one carries the whole leader, and
    ///    the newest one is always kept;
    /// 2. the oldest queued `Error`;
    /// 3. when only state events are queued, a span that the subscriber has not
    ///    received and whose effect is nil: a whole leadership (`Elected` up to
    ///    its `Lost` or `Resigned`, with the `Suspended`/`Reconnected` between),
    ///    or a `Suspended` directly followed by `Reconnected`.
    ///
    /// So a subscriber that falls behind may miss intermediate leaders, background
    /// errors and leaderships that began and ended while it was not reading, but it
    /// never misses a state change it needs: the `Lost` or `Resigned` of an
    /// `Elected` it received, a `Suspended` that still holds, the `Elected` of the
    /// current leadership, `Ended`. Reading the queue as it comes keeps every event.
    ///
    /// # Threading
    ///
    /// [`Events`] may be moved to and polled from any thread or executor.
    pub fn events(&self) -> Events {
        let (tx, rx) = queue::channel(EVENT_QUEUE_CAPACITY);
        let s = &self.handle.shared;
        if !matches!(s.info().state, State::Ended | State::Closed) {
            lock(&s.events).push(tx);
            let s2 = s.clone();
            runtime::spawn_detached(async move {
                if let Err(e) = s2.ensure_monitor(Watch::Full).await {
                    s2.emit(Event::Error(e));
                }
            });
        }
        Events { rx }
    }

    /// Closes this handle: withdraws the candidate (resigning if leading) and makes
    /// every later operation fail with `Closed`. Idempotent.
    pub async fn close(&self) {
        let s = self.handle.shared.clone();
        let _ = runtime::run_to_completion(async move {
            s.close().await;
            Ok(())
        })
        .await;
    }
}

/// The stream returned by [`Election::observe`].
pub struct Observe {
    inner: Pin<Box<dyn Stream<Item = Result<Option<Leader>>> + Send>>,
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

/// The most events a subscription of [`Election::events`] holds before it makes
/// room by merging (see there; the number is in its docs).
pub(crate) const EVENT_QUEUE_CAPACITY: usize = 1024;

/// The stream returned by [`Election::events`]: a bounded queue, see there.
pub struct Events {
    rx: queue::Receiver,
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Events")
    }
}

impl Events {
    /// Receives the next event (None once the stream has ended).
    pub async fn recv(&mut self) -> Option<Event> {
        futures_util::future::poll_fn(|cx| self.rx.poll_recv(cx)).await
    }
}

impl Stream for Events {
    type Item = Event;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}

/// The bounded queue of one subscription to a handle's events.
mod queue {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use futures_util::task::AtomicWaker;

    use super::Event;
    use crate::sync::lock;

    struct Queue {
        state: Mutex<State>,
        waker: AtomicWaker,
        capacity: usize,
    }

    #[derive(Default)]
    struct State {
        events: VecDeque<Event>,
        /// The handle dropped its end: the stream ends once drained.
        closed: bool,
        /// The subscriber dropped its end: nothing more is queued.
        unsubscribed: bool,
    }

    /// The handle's end of a subscription; dropping it ends the stream after the
    /// events already queued.
    pub(super) struct Sender(Arc<Queue>);

    /// The subscriber's end.
    pub(super) struct Receiver(Arc<Queue>);

    pub(super) fn channel(capacity: usize) -> (Sender, Receiver) {
        let q = Arc::new(Queue { state: Mutex::default(), waker: AtomicWaker::new(), capacity: capacity.max(1) });
        (Sender(q.clone()), Receiver(q))
    }

    impl Sender {
        /// Queues `ev`, making room first if the queue is full. False once the
        /// subscriber is gone. Never waits.
        pub(super) fn send(&self, ev: Event) -> bool {
            {
                let mut st = lock(&self.0.state);
                if st.unsubscribed {
                    return false;
                }
                if st.events.len() >= self.0.capacity {
                    make_room(&mut st.events);
                }
                st.events.push_back(ev);
            }
            self.0.waker.wake();
            true
        }
    }

    impl Drop for Sender {
        fn drop(&mut self) {
            lock(&self.0.state).closed = true;
            self.0.waker.wake();
        }
    }

    impl Receiver {
        pub(super) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
            if let Some(r) = self.try_recv() {
                return Poll::Ready(r);
            }
            self.0.waker.register(cx.waker());
            // An event queued between the first look and the registration.
            match self.try_recv() {
                Some(r) => Poll::Ready(r),
                None => Poll::Pending,
            }
        }

        /// `Some(Some(ev))`: an event; `Some(None)`: the stream is over; `None`:
        /// nothing yet.
        fn try_recv(&self) -> Option<Option<Event>> {
            let mut st = lock(&self.0.state);
            match st.events.pop_front() {
                Some(ev) => Some(Some(ev)),
                None if st.closed => Some(None),
                None => None,
            }
        }
    }

    impl Drop for Receiver {
        fn drop(&mut self) {
            let mut st = lock(&self.0.state);
            st.unsubscribed = true;
            st.events.clear();
        }
    }

    /// Removes from a full queue what a later event supersedes or what cancels out
    /// (the rules are listed on `Election::events`). The queued events were not
    /// received yet.
    pub(super) fn make_room(q: &mut VecDeque<Event>) {
        if let Some(i) = q.iter().position(|e| matches!(e, Event::LeaderChanged(_))) {
            q.remove(i);
            return;
        }
        if let Some(i) = q.iter().position(|e| matches!(e, Event::Error(_))) {
            q.remove(i);
            return;
        }
        // Only state events are left. A whole leadership: Elected, then only
        // Suspended/Reconnected, then its Lost or Resigned.
        for (i, e) in q.iter().enumerate() {
            if !matches!(e, Event::Elected { .. }) {
                continue;
            }
            let end = q
                .iter()
                .skip(i + 1)
                .position(|e| !matches!(e, Event::Suspended | Event::Reconnected))
                .map(|k| i + 1 + k)
                .filter(|&j| matches!(q[j], Event::Lost { .. } | Event::Resigned));
            if let Some(j) = end {
                q.drain(i..=j);
                return;
            }
        }
        if let Some(i) = (0..q.len().saturating_sub(1))
            .find(|&i| matches!(q[i], Event::Suspended) && matches!(q[i + 1], Event::Reconnected))
        {
            q.drain(i..=i + 1);
        }
        // Otherwise nothing may go. That needs a queue of a few events at most (a
        // state event can only follow a transition that the ones before it allow),
        // so with a capacity in the hundreds it does not happen; were it to, the
        // event is queued anyway rather than a state change lost.
    }
}

struct ObserveState {
    shared: Arc<Shared>,
    view: Option<watch::Receiver<View>>,
    state: Option<watch::Receiver<StateInfo>>,
    done: bool,
}

impl ObserveState {
    async fn next(&mut self) -> Option<Result<Option<Leader>>> {
        if self.done {
            return None;
        }
        let s = self.shared.clone();
        if self.view.is_none() {
            let started = runtime::run({
                let s = s.clone();
                async move { s.ensure_monitor(Watch::Full).await }
            })
            .await;
            if let Err(e) = started {
                self.done = matches!(e.kind(), ErrorKind::Ended | ErrorKind::Closed);
                return Some(Err(e));
            }
            let mut v = s.view_tx.subscribe();
            let first = v.borrow_and_update().leader.clone();
            self.view = Some(v);
            self.state = Some(s.state_tx.subscribe());
            return Some(Ok(first));
        }
        let (Some(view), Some(state)) = (self.view.as_mut(), self.state.as_mut()) else {
            return None;
        };
        loop {
            let st = state.borrow_and_update().state;
            if let Err(e) = terminal_error(st) {
                self.done = true;
                return Some(Err(e));
            }
            tokio::select! {
                r = view.changed() => {
                    if r.is_err() {
                        self.done = true;
                        return Some(Err(Error::closed()));
                    }
                    return Some(Ok(view.borrow_and_update().leader.clone()));
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

fn terminal_error(st: State) -> Result<()> {
    match st {
        State::Ended => Err(Error::ended()),
        State::Closed => Err(Error::closed()),
        _ => Ok(()),
    }
}

/// What ended a wait for the win.
enum WaitOutcome {
    Won(Result<crate::election::Leader>),
    SessionGone,
    OpChanged,
}

impl Shared {
    fn backend(&self) -> &Arc<dyn Backend> {
        &self.client.backend
    }

    fn info(&self) -> StateInfo {
        lock(&self.inner).info
    }

    fn state_now(&self) -> State {
        let st = self.info().state;
        if st == State::Leader && self.backend().session().status().health != Health::Healthy {
            return State::Suspended;
        }
        st
    }

    /// Sets state and term, bumping `op` when `bump`. Caller holds the lock.
    fn set_state(&self, inner: &mut Inner, state: State, term: Option<u64>, bump: bool) -> u64 {
        if bump {
            inner.info.op += 1;
        }
        inner.info.state = state;
        inner.info.term = term;
        let info = inner.info;
        self.state_tx.send_replace(info);
        info.op
    }

    fn emit(&self, ev: Event) {
        let mut subs = lock(&self.events);
        subs.retain(|tx| tx.send(ev.clone()));
    }

    /// Bounds a one-shot backend request (a backend may retry inside while its
    /// servers are unreachable): the larger of the TTL and the connect timeout.
    async fn bounded<T>(&self, what: &str, fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        let o = &self.client.options;
        let limit = o.ttl.max(o.connect_timeout);
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => {
                Err(Error::new(ErrorKind::Timeout, format!("{what}: no answer from the backend within {limit:?}")))
            }
        }
    }

    fn check_usable(&self) -> Result<()> {
        if self.client.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::closed());
        }
        terminal_error(self.info().state)
    }

    fn check_value(&self, value: &[u8]) -> Result<()> {
        let max = self.backend().max_value_len();
        if value.is_empty() {
            return Err(Error::invalid("value is empty; a candidate value must be 1 byte or more"));
        }
        if value.len() > max {
            return Err(Error::invalid(format!("value is {} bytes; this backend's limit is {max} bytes", value.len())));
        }
        Ok(())
    }

    /// The error for work whose `op` was invalidated, based on the state now.
    fn op_error(&self) -> Error {
        match self.info().state {
            State::Ended => Error::ended(),
            State::Closed => Error::closed(),
            _ => Error::new(ErrorKind::Cancelled, "the campaign was withdrawn by resign()"),
        }
    }

    /// Withdraws `entry` in the background (from places that cannot await);
    /// [`settle`](Self::settle) waits for these.
    fn withdraw_later(&self, entry: Option<Arc<dyn Entry>>) {
        if let Some(e) = entry {
            in_background(&self.withdrawing, async move {
                let _ = e.withdraw().await;
            });
        }
    }

    /// Starts `backend.join` as its own task and returns the receiving end of its
    /// outcome.
    ///
    /// A join is a request that may be applied by the server after the caller gave
    /// up on it: dropping the request future would leave a candidate entry that a
    /// clean-up sent in parallel can overtake (seen on Consul: the orphan key then
    /// held up every later candidate of the election). Here the request always runs
    /// to completion, and an entry that nobody received is withdrawn right after it.
    /// The task counts as a background withdrawal, so [`settle`](Self::settle)
    /// waits for it.
    fn join_detached(&self, backend: &Arc<dyn Backend>, value: &[u8]) -> Joining {
        let (tx, rx) = oneshot::channel();
        let (backend, name, value) = (backend.clone(), self.name.clone(), value.to_vec());
        in_background(&self.withdrawing, async move {
            let joined = backend.join(&name, &value).await;
            if let Err(Ok(unwanted)) = tx.send(joined) {
                let _ = unwanted.withdraw().await;
            }
        });
        Joining { rx, pending: self.withdrawing.clone() }
    }

    /// Waits (at most `limit`) until background withdrawals of this handle are done,
    /// so that a caller that gives up on a campaign and then exits leaves nothing
    /// behind for the session's expiry to clean up.
    pub(crate) async fn settle(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.withdrawing.1.notified();
            if self.withdrawing.0.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// Starts the watch of the election (once, or again to widen it from the epoch
    /// to the leader) and waits for its first snapshot, which fixes the epoch this
    /// handle belongs to.
    async fn ensure_monitor(self: &Arc<Self>, want: Watch) -> Result<()> {
        let mut guard = self.monitor.lock().await;
        if guard.as_ref().is_some_and(|(_, has)| *has >= want) {
            return Ok(());
        }
        self.check_usable()?;
        let (tx, rx) = oneshot::channel();
        let task = runtime::spawn(monitor(Arc::downgrade(self), tx, want))?;
        match rx.await {
            // Closed or ended while starting: `close_now` could not reach the task.
            Ok(Ok(())) if matches!(self.info().state, State::Closed | State::Ended) => {
                task.abort();
                // A narrower watch being widened: nobody else could stop it.
                if let Some((old, _)) = guard.take() {
                    old.abort();
                }
                terminal_error(self.info().state)
            }
            Ok(Ok(())) => {
                // The narrower watch stops only now, so that no epoch change falls
                // between the two.
                if let Some((old, _)) = guard.replace((task.abort_handle(), want)) {
                    old.abort();
                }
                Ok(())
            }
            Ok(Err(e)) => {
                task.abort();
                Err(e)
            }
            // close() or end() stops the watch task; say so rather than report
            // an internal error.
            Err(_) if matches!(self.info().state, State::Closed | State::Ended) => {
                if let Some((old, _)) = guard.take() {
                    old.abort();
                }
                terminal_error(self.info().state)
            }
            Err(_) => Err(Error::new(ErrorKind::Internal, "the election watch stopped before its first snapshot")),
        }
    }

    /// Ends this handle when `epoch` is later than the one it belongs to; returns
    /// whether it did.
    fn on_epoch(&self, epoch: u64) -> bool {
        let ended = {
            let mut inner = lock(&self.inner);
            let base = *inner.epoch_base.get_or_insert(epoch);
            epoch > base
        };
        if ended {
            self.end_locally();
        }
        ended
    }

    fn on_snapshot(&self, snap: Snapshot) {
        if self.on_epoch(snap.epoch) {
            return;
        }
        let mut changed = None;
        self.view_tx.send_if_modified(|v| {
            if v.leader == snap.leader {
                return false;
            }
            if let Some(l) = &snap.leader {
                if l.term < v.max_term {
                    return false; // an older leader than one already reported
                }
                v.max_term = l.term;
            }
            v.leader = snap.leader.clone();
            changed = Some(v.leader.clone());
            true
        });
        if let Some(l) = changed {
            self.emit(Event::LeaderChanged(l));
        }
    }

    /// Idle -> Campaigning, returning the new op.
    fn begin_campaign(&self, value: &[u8]) -> Result<u64> {
        let mut inner = lock(&self.inner);
        match inner.info.state {
            State::Idle => {}
            State::Campaigning | State::Leader | State::Suspended => {
                return Err(Error::invalid(format!(
                    "election {:?} is already {}; resign() first",
                    self.name, inner.info.state
                )))
            }
            st => terminal_error(st)?,
        }
        inner.value = value.to_vec();
        Ok(self.set_state(&mut inner, State::Campaigning, None, true))
    }

    /// Joins and waits to win, starting over under a new session when the session
    /// is lost and auto-requeue is on. Returns the winning entry.
    async fn acquire(self: &Arc<Self>, op: u64, value: &[u8]) -> Result<(Arc<dyn Entry>, Leader, u64)> {
        let backend = self.backend().clone();
        let tracker = backend.session().clone();
        let requeue = self.client.options.auto_requeue;
        let mut pause = SESSION_RETRY_MIN;
        loop {
            let mut states = self.state_tx.subscribe();
            let mut sessions = tracker.subscribe();
            // Wait for a healthy session (a backend replaces a lost one itself).
            let generation = loop {
                let st = tracker.status();
                if st.health == Health::Healthy {
                    break st.generation;
                }
                tokio::select! {
                    _ = sessions.changed() => {}
                    _ = op_changed(&mut states, op) => return Err(self.op_error()),
                }
            };
            let mut joining = self.join_detached(&backend, value);
            let joined = tokio::select! {
                r = &mut joining.rx => r.unwrap_or_else(|_| Err(Error::new(ErrorKind::Internal, "the join task stopped"))),
                _ = op_changed(&mut states, op) => return Err(self.op_error()),
            };
            let entry = match joined {
                Ok(entry) => entry,
                // The session went, or is being replaced, under the join (the
                // tracker can read healthy a moment before the backend has the new
                // session ready, and a server that lost its data has none of ours).
                // With auto-requeue that is the same as losing it while waiting.
                Err(e) if e.kind() == ErrorKind::SessionLost && requeue => {
                    self.pause_before_rejoin(&mut pause, &mut states, op).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            {
                let mut inner = lock(&self.inner);
                if inner.info.op != op {
                    drop(inner);
                    self.withdraw_later(Some(entry));
                    return Err(self.op_error());
                }
                // An end() between the moment this handle fixed its epoch and the join:
                // the entry belongs to the next round, this handle to the ended one.
                if entry.epoch().is_some_and(|ep| ep > *inner.epoch_base.get_or_insert(ep)) {
                    drop(inner);
                    self.withdraw_later(Some(entry));
                    self.end_locally();
                    return Err(Error::ended());
                }
                inner.entry = Some(entry.clone());
            }
            // In this order when several are ready at once: a win reported under a
            // session that is already gone, or for a campaign already withdrawn, is
            // no win.
            let outcome = tokio::select! {
                biased;
                _ = session_gone(&mut sessions, generation) => WaitOutcome::SessionGone,
                _ = op_changed(&mut states, op) => WaitOutcome::OpChanged,
                r = entry.wait_won() => WaitOutcome::Won(r),
            };
            match outcome {
                WaitOutcome::Won(Ok(leader)) => return Ok((entry, leader, generation)),
                WaitOutcome::OpChanged => return Err(self.op_error()),
                // An end() or resign() withdraws the entry, which fails the wait;
                // report why the op ended, not the withdrawal.
                WaitOutcome::Won(Err(_)) if self.info().op != op => return Err(self.op_error()),
                // The backend saw the end() before this handle's watch did.
                WaitOutcome::Won(Err(e)) if e.kind() == ErrorKind::Ended => {
                    self.end_locally();
                    return Err(e);
                }
                // The backend found the entry or its session gone (for example,
                // a server restarted without its data): join again.
                WaitOutcome::Won(Err(e)) if e.kind() == ErrorKind::SessionLost && requeue => {
                    self.take_entry_if(op, &entry);
                    self.withdraw_later(Some(entry));
                    self.pause_before_rejoin(&mut pause, &mut states, op).await?;
                }
                WaitOutcome::Won(Err(e)) => {
                    self.take_entry_if(op, &entry);
                    let _ = entry.withdraw().await;
                    return Err(e);
                }
                WaitOutcome::SessionGone => {
                    self.take_entry_if(op, &entry);
                    self.withdraw_later(Some(entry));
                    if !self.client.options.auto_requeue {
                        return Err(Error::new(
                            ErrorKind::SessionLost,
                            "the session was lost while campaigning and auto-requeue is off",
                        ));
                    }
                }
            }
        }
    }

    /// Sleeps before joining again after a `SessionLost` from the backend, with a
    /// pause that doubles up to a second, so that a session that keeps failing does
    /// not become a busy loop. Fails when the op ends meanwhile.
    async fn pause_before_rejoin(
        &self,
        pause: &mut Duration,
        states: &mut watch::Receiver<StateInfo>,
        op: u64,
    ) -> Result<()> {
        tokio::select! {
            _ = tokio::time::sleep(*pause) => {}
            _ = op_changed(states, op) => return Err(self.op_error()),
        }
        *pause = (*pause * 2).min(SESSION_RETRY_MAX);
        Ok(())
    }

    fn take_entry_if(&self, op: u64, entry: &Arc<dyn Entry>) {
        let mut inner = lock(&self.inner);
        if inner.info.op == op && inner.entry.as_ref().is_some_and(|e| Arc::ptr_eq(e, entry)) {
            inner.entry = None;
        }
    }

    /// Joins, waits to win and records the win; a win that [`won`](Self::won) refuses
    /// because the session went under it is campaigned again when auto-requeue is on.
    async fn acquire_and_win(self: &Arc<Self>, op: u64, value: &[u8]) -> Result<Leadership> {
        loop {
            let (entry, leader, generation) = self.acquire(op, value).await?;
            match self.won(op, entry, leader, generation) {
                // `acquire` waits for the next healthy session before it joins again.
                Err(e) if e.kind() == ErrorKind::SessionLost && self.client.options.auto_requeue => continue,
                r => return r,
            }
        }
    }

    /// Records a win for `op` under the session `generation`, starts the hold task
    /// and emits `Elected`.
    ///
    /// The session is checked here, with the state lock held, because the backend can
    /// report a win an instant after the session it was won under was lost or
    /// replaced: such a win is void (the server may already be freeing the entry),
    /// and reporting it would start a leader's work for nothing. A loss after this
    /// check is the hold task's to report.
    ///
    /// # Errors
    ///
    /// `SessionLost` (the entry is withdrawn and the state stays `Campaigning`), or
    /// the op error when the campaign was withdrawn meanwhile.
    fn won(self: &Arc<Self>, op: u64, entry: Arc<dyn Entry>, leader: Leader, generation: u64) -> Result<Leadership> {
        let mut inner = lock(&self.inner);
        if inner.info.op != op {
            drop(inner);
            self.withdraw_later(Some(entry));
            return Err(self.op_error());
        }
        let st = self.backend().session().status();
        if st.generation != generation || st.health == Health::Lost {
            if inner.entry.as_ref().is_some_and(|e| Arc::ptr_eq(e, &entry)) {
                inner.entry = None;
            }
            drop(inner);
            self.withdraw_later(Some(entry));
            return Err(Error::new(ErrorKind::SessionLost, "the session was lost as the campaign won"));
        }
        inner.entry = Some(entry.clone());
        let op = self.set_state(&mut inner, State::Leader, Some(leader.term), false);
        let task = runtime::spawn(self.clone().hold(op, entry, generation))?;
        if let Some(old) = inner.task.replace(task.abort_handle()) {
            old.abort();
        }
        drop(inner);
        self.emit(Event::Elected { term: leader.term });
        Ok(Leadership {
            term: leader.term,
            key: leader.key,
            value: leader.value,
            op,
            state: self.state_tx.subscribe(),
            shared: Arc::downgrade(self),
        })
    }

    /// Watches a won leadership: backend loss, session health, reconnect checks.
    async fn hold(self: Arc<Self>, op: u64, entry: Arc<dyn Entry>, generation: u64) {
        let tracker = self.backend().session().clone();
        let mut sessions = tracker.subscribe();
        loop {
            let st = tracker.status();
            if st.generation != generation || st.health == Health::Lost {
                return self.on_lost(op, LostReason::SessionLost);
            }
            let state = self.info();
            if state.op != op {
                return;
            }
            match (st.health, state.state) {
                (Health::Suspended, State::Leader) => {
                    let mut inner = lock(&self.inner);
                    if inner.info.op == op {
                        let term = inner.info.term;
                        self.set_state(&mut inner, State::Suspended, term, false);
                        drop(inner);
                        self.emit(Event::Suspended);
                    }
                }
                (Health::Healthy, State::Suspended) => match entry.verify().await {
                    // The check may have taken long: only a session that is still the
                    // same and healthy now lets leadership come back.
                    Ok(true)
                        if tracker.status()
                            != crate::session::SessionStatus { generation, health: Health::Healthy } =>
                    {
                        continue;
                    }
                    Ok(true) => {
                        let mut inner = lock(&self.inner);
                        if inner.info.op == op && inner.info.state == State::Suspended {
                            let term = inner.info.term;
                            self.set_state(&mut inner, State::Leader, term, false);
                            drop(inner);
                            self.emit(Event::Reconnected);
                        }
                    }
                    Ok(false) => return self.on_lost(op, LostReason::NotOwner),
                    Err(_) => {
                        // Could not check yet: stay suspended and look again shortly.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                },
                _ => {}
            }
            tokio::select! {
                reason = entry.lost() => return self.on_lost(op, reason),
                r = sessions.changed() => if r.is_err() { return self.on_lost(op, LostReason::SessionLost) },
            }
        }
    }

    fn on_lost(self: &Arc<Self>, op: u64, reason: LostReason) {
        let (requeue, value) = {
            let mut inner = lock(&self.inner);
            if inner.info.op != op {
                return;
            }
            let entry = inner.entry.take();
            self.withdraw_later(entry);
            inner.task = None; // this is the running task; it returns right after
            self.set_state(&mut inner, State::Idle, None, true);
            let requeue = if self.client.options.auto_requeue {
                Some(self.set_state(&mut inner, State::Campaigning, None, true))
            } else {
                None
            };
            (requeue, inner.value.clone())
        };
        self.emit(Event::Lost { reason });
        if let Some(op2) = requeue {
            let s = self.clone();
            let task = runtime::spawn(async move {
                let mut pause = REQUEUE_PAUSE_MIN;
                loop {
                    match s.acquire_and_win(op2, &value).await {
                        Ok(_) => return,
                        // Nobody waits on a requeue to hear its error: a server that
                        // cannot be reached for a while (the cause of many losses)
                        // must not drop the handle out of the election for good.
                        // The error is reported and the campaign goes on.
                        Err(e) if requeue_retries(e.kind()) && s.info().op == op2 => {
                            s.emit(Event::Error(e));
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(REQUEUE_PAUSE_MAX);
                        }
                        Err(e) => {
                            let mut inner = lock(&s.inner);
                            if inner.info.op == op2 {
                                let entry = inner.entry.take();
                                s.withdraw_later(entry);
                                s.set_state(&mut inner, State::Idle, None, true);
                                drop(inner);
                                s.emit(Event::Error(e));
                            }
                            return;
                        }
                    }
                }
            });
            if let Ok(task) = task {
                let mut inner = lock(&self.inner);
                if inner.info.op == op2 {
                    inner.task = Some(task.abort_handle());
                } else {
                    task.abort();
                }
            }
        }
    }

    async fn proclaim(self: Arc<Self>, value: Vec<u8>) -> Result<()> {
        self.check_usable()?;
        self.check_value(&value)?;
        let now = self.state_now();
        let (entry, op) = {
            let inner = lock(&self.inner);
            match now {
                State::Leader => {}
                State::Suspended => return Err(Error::new(ErrorKind::NotLeader, "leadership is suspended")),
                st => {
                    terminal_error(st)?;
                    return Err(Error::new(
                        ErrorKind::NotLeader,
                        format!("not the leader of {:?} (state {st})", self.name),
                    ));
                }
            }
            match &inner.entry {
                Some(e) => (e.clone(), inner.info.op),
                None => return Err(Error::new(ErrorKind::Internal, "leader without an entry")),
            }
        };
        entry.proclaim(&value).await?;
        let mut inner = lock(&self.inner);
        if inner.info.op == op {
            inner.value = value;
        }
        Ok(())
    }

    async fn resign(self: Arc<Self>) -> Result<()> {
        self.check_usable()?;
        let (entry, was_leader) = {
            let mut inner = lock(&self.inner);
            let was_leader = match inner.info.state {
                State::Leader | State::Suspended => true,
                State::Campaigning => false,
                State::Idle => {
                    return Err(Error::new(
                        ErrorKind::NotLeader,
                        format!("not leading or campaigning in {:?}", self.name),
                    ))
                }
                st => return terminal_error(st),
            };
            if let Some(t) = inner.task.take() {
                t.abort();
            }
            let entry = inner.entry.take();
            self.set_state(&mut inner, State::Idle, None, true);
            (entry, was_leader)
        };
        // Emitted with the state change, so it precedes the LeaderChanged that the
        // removal below causes.
        if was_leader {
            self.emit(Event::Resigned);
        }
        if let Some(e) = entry {
            e.withdraw().await?;
        }
        Ok(())
    }

    /// Moves to `Ended` (from a local `end()` or an observed epoch change).
    fn end_locally(&self) {
        let entry = {
            let mut inner = lock(&self.inner);
            if matches!(inner.info.state, State::Ended | State::Closed) {
                return;
            }
            if let Some(t) = inner.task.take() {
                t.abort();
            }
            let entry = inner.entry.take();
            self.set_state(&mut inner, State::Ended, None, true);
            entry
        };
        self.withdraw_later(entry);
        if let Ok(mut m) = self.monitor.try_lock() {
            if let Some((t, _)) = m.take() {
                t.abort();
            }
        }
        self.emit(Event::Ended);
        lock(&self.events).clear();
    }

    /// Closes the handle and withdraws its entry.
    pub(crate) async fn close(&self) {
        if let Some(e) = self.close_now() {
            let _ = e.withdraw().await;
        }
    }

    /// Moves to `Closed` at once (no later win is accepted) and hands back the
    /// entry that the caller must withdraw.
    pub(crate) fn close_now(&self) -> Option<Arc<dyn Entry>> {
        let entry = {
            let mut inner = lock(&self.inner);
            if inner.info.state == State::Closed {
                return None;
            }
            if let Some(t) = inner.task.take() {
                t.abort();
            }
            let entry = inner.entry.take();
            self.set_state(&mut inner, State::Closed, None, true);
            entry
        };
        // The monitor is only ever locked briefly while it starts; if it is starting
        // now, it checks `check_usable` and stops on the next snapshot's op check.
        if let Ok(mut m) = self.monitor.try_lock() {
            if let Some((t, _)) = m.take() {
                t.abort();
            }
        }
        lock(&self.events).clear();
        entry
    }
}

/// Resolves when the op is no longer `op` (resign, end, close, loss).
async fn op_changed(states: &mut watch::Receiver<StateInfo>, op: u64) {
    let _ = states.wait_for(|i| i.op != op).await;
}

/// Resolves when the session of `generation` is lost or replaced.
async fn session_gone(sessions: &mut watch::Receiver<crate::session::SessionStatus>, generation: u64) {
    let _ = sessions.wait_for(|s| s.generation != generation || s.health == Health::Lost).await;
}

/// Withdraws a candidate whose `campaign` future was dropped or failed.
struct CampaignGuard {
    shared: Arc<Shared>,
    op: u64,
    armed: bool,
}

impl Drop for CampaignGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (entry, resigned) = {
            let mut inner = lock(&self.shared.inner);
            if inner.info.op != self.op {
                return;
            }
            let resigned = match inner.info.state {
                State::Campaigning => false,
                // Won on the runtime, but the caller dropped the future before it
                // heard: nobody knows it leads, so it must not keep leading.
                State::Leader | State::Suspended => {
                    if let Some(t) = inner.task.take() {
                        t.abort();
                    }
                    true
                }
                _ => return,
            };
            let entry = inner.entry.take();
            self.shared.set_state(&mut inner, State::Idle, None, true);
            (entry, resigned)
        };
        if resigned {
            self.shared.emit(Event::Resigned);
        }
        self.shared.withdraw_later(entry);
    }
}

/// The watch loop of one election handle: the whole election, or only its epoch.
async fn monitor(shared: Weak<Shared>, first: oneshot::Sender<Result<()>>, what: Watch) {
    let mut first = Some(first);
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(s) = shared.upgrade() else { return };
        let backend = s.backend().clone();
        let name = s.name.clone();
        drop(s);
        let opened = match what {
            Watch::Full => backend.watch(&name).await.map(|w| w.map(|r| r.map(Seen::Snapshot)).boxed()),
            Watch::Epoch => backend.watch_epoch(&name).await.map(|w| w.map(|r| r.map(Seen::Epoch)).boxed()),
        };
        match opened {
            Ok(mut stream) => {
                while let Some(item) = stream.next().await {
                    let Some(s) = shared.upgrade() else { return };
                    // close_now/end_locally may not have reached this task to abort it.
                    if matches!(s.info().state, State::Closed | State::Ended) {
                        return;
                    }
                    match item {
                        Ok(seen) => {
                            match seen {
                                Seen::Snapshot(snap) => s.on_snapshot(snap),
                                Seen::Epoch(epoch) => {
                                    s.on_epoch(epoch);
                                }
                            }
                            backoff = Duration::from_millis(50);
                            if let Some(tx) = first.take() {
                                let _ = tx.send(Ok(()));
                            }
                        }
                        Err(e) => {
                            if let Some(tx) = first.take() {
                                let _ = tx.send(Err(e));
                                return;
                            }
                            s.emit(Event::Error(e));
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
                if let Some(s) = shared.upgrade() {
                    s.emit(Event::Error(e));
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// One item of a monitor's watch.
enum Seen {
    Snapshot(Snapshot),
    Epoch(u64),
}

/// A minimal in-process backend for engine tests. It covers races of the state
/// machine that a real server cannot produce on demand (two futures ready at once)
/// and the event queues; every behaviour of a real backend is tested against the
/// real server.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::backend::{EpochStream, SnapshotStream};
    use crate::client::Client;
    use crate::options::Options;
    use crate::session::SessionTracker;
    use async_trait::async_trait;

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
    }

    #[derive(Debug)]
    struct TestEntry {
        tracker: Arc<SessionTracker>,
        loss: Loss,
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
            if let Loss::AfterJoin = self.loss {
                self.tracker.expired(self.tracker.status().generation);
            }
            Ok(Arc::new(TestEntry { tracker: self.tracker.clone(), loss: self.loss }))
        }
        async fn leader(&self, _election: &str) -> Result<Option<Leader>> {
            Ok(None)
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
        async fn close(&self) {}
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
            Ok(())
        }
    }

    /// A client over a fresh test backend (auto-requeue off) and its session tracker.
    pub(crate) fn client(loss: Loss) -> (Client, Arc<SessionTracker>) {
        let tracker = SessionTracker::new(None, Duration::ZERO);
        tracker.new_session(crate::session::Stamp::now());
        let backend = Arc::new(TestBackend { tracker: tracker.clone(), loss });
        let connection = Connection::for_test(backend, Options::default().with_auto_requeue(false));
        (Client::for_test(connection), tracker)
    }

    /// Emits `ev` on `e` as the state machine would.
    pub(crate) fn emit(e: &Election, ev: Event) {
        e.shared().emit(ev);
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{client, emit, Loss};
    use super::*;
    use futures_util::FutureExt;

    /// A campaign whose session is lost when its win is reported must not lead: the
    /// engine must prefer the loss when both are ready, and check the session when
    /// it records the win.
    #[tokio::test]
    async fn a_win_under_a_lost_session_does_not_lead() {
        for loss in [Loss::AfterJoin, Loss::WhileWinning] {
            // Without an order between the two, the wrong one wins about half the time.
            for round in 0..64 {
                let (c, tracker) = client(loss);
                let e = c.election("svc").unwrap();
                let r = e.campaign(b"v").await;
                let err = r.as_ref().err().map(|e| e.kind());
                assert_eq!(
                    err,
                    Some(ErrorKind::SessionLost),
                    "{loss:?}, round {round}: campaign gave {r:?} with the session {:?}",
                    tracker.status()
                );
                assert_eq!(e.state(), State::Idle, "{loss:?}, round {round}");
                e.close().await;
            }
        }
    }

    fn leader(term: u64) -> Option<Leader> {
        Some(Leader::new(format!("v{term}").into_bytes(), term, format!("k{term}")))
    }

    /// Everything queued now, without waiting.
    fn drain(events: &mut Events) -> Vec<Event> {
        std::iter::from_fn(|| events.recv().now_or_never().flatten()).collect()
    }

    /// A short name per event, for comparing sequences.
    fn tag(ev: &Event) -> String {
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

    /// Takes out of a sequence of state events the spans whose effect is nil: a
    /// `Suspended` right before `Reconnected`, a whole leadership.
    fn net(mut v: Vec<String>) -> Vec<String> {
        loop {
            let pair = (0..v.len().saturating_sub(1)).find(|&i| v[i] == "S" && v[i + 1] == "R");
            if let Some(i) = pair {
                v.drain(i..=i + 1);
                continue;
            }
            let whole = (0..v.len()).find_map(|i| {
                if !v[i].starts_with('E') {
                    return None;
                }
                let j = (i + 1..v.len()).find(|&j| v[j] != "S" && v[j] != "R")?;
                (v[j] == "L" || v[j] == "Res").then_some((i, j))
            });
            match whole {
                Some((i, j)) => drop(v.drain(i..=j)),
                None => return v,
            }
        }
    }

    /// A subscriber that does not read while thousands of events happen finds at
    /// most the capacity queued, and what it finds still tells the state: the loss
    /// of the leadership it had heard of, the latest leader, the current leadership
    /// (suspended), and nothing of the leaderships that came and went unread.
    #[tokio::test]
    async fn a_subscriber_that_falls_behind_gets_a_bounded_summary() {
        let (c, _) = client(Loss::Never);
        let e = c.election("svc").unwrap();
        let mut events = e.events();
        emit(&e, Event::Elected { term: 1 });
        assert_eq!(drain(&mut events).iter().map(tag).collect::<Vec<_>>(), ["E1"]);

        // Then it stops reading.
        let mut sent = 0;
        let mut term = 1;
        for round in 0..600 {
            for _ in 0..5 {
                term += 1;
                emit(&e, Event::LeaderChanged(leader(term)));
                sent += 1;
            }
            emit(&e, Event::Error(Error::new(ErrorKind::Connection, format!("blip {round}"))));
            emit(&e, Event::Suspended);
            emit(&e, Event::Reconnected);
            sent += 3;
            if round == 0 {
                emit(&e, Event::Lost { reason: LostReason::SessionLost }); // of term 1
                sent += 1;
            } else if round < 599 {
                // A whole leadership while the subscriber is away.
                emit(&e, Event::Elected { term: term + 1 });
                emit(&e, Event::Suspended);
                emit(&e, Event::Lost { reason: LostReason::SessionLost });
                sent += 3;
            }
        }
        term += 1;
        emit(&e, Event::Elected { term });
        emit(&e, Event::LeaderChanged(leader(term)));
        emit(&e, Event::Suspended);
        sent += 3;

        let got = drain(&mut events);
        assert!(sent > 5_000, "the test sends {sent}");
        // The capacity documented on `events()`.
        assert!(got.len() <= 1024, "{} events queued of {sent} sent", got.len());
        // The state events received mean what the ones sent mean: with the spans
        // whose effect is nil taken out, both read "lost the leadership it knew of,
        // leads again in `term`, suspended".
        let states: Vec<String> =
            got.iter().filter(|ev| !matches!(ev, Event::LeaderChanged(_) | Event::Error(_))).map(tag).collect();
        assert_eq!(net(states), ["L".to_string(), format!("E{term}"), "S".to_string()], "state events");
        let last_leader = got.iter().rev().find_map(|ev| match ev {
            Event::LeaderChanged(l) => Some(l.clone()),
            _ => None,
        });
        assert_eq!(last_leader, Some(leader(term)), "the latest leader is kept");

        // Read as it comes, nothing is merged.
        for t in 0..3 * EVENT_QUEUE_CAPACITY as u64 {
            emit(&e, Event::LeaderChanged(leader(100_000 + t)));
            let ev = events.recv().now_or_never().flatten().expect("queued");
            assert_eq!(tag(&ev), format!("C{}", 100_000 + t));
        }
        e.close().await;
        assert!(events.recv().await.is_none(), "the stream ends when the handle closes");
    }

    #[test]
    fn a_full_queue_makes_room_by_the_rules() {
        use std::collections::VecDeque;
        let room = |q: &[Event]| {
            let mut q: VecDeque<Event> = q.iter().cloned().collect();
            queue::make_room(&mut q);
            q.iter().map(tag).collect::<Vec<_>>().join(" ")
        };
        let err = || Event::Error(Error::new(ErrorKind::Connection, "x"));
        let lost = || Event::Lost { reason: LostReason::Deleted };
        let el = |term| Event::Elected { term };
        let lc = |t| Event::LeaderChanged(leader(t));
        // The oldest leader change first, then the oldest error.
        assert_eq!(room(&[el(1), lc(2), err(), lc(3)]), "E1 Err C3");
        assert_eq!(room(&[el(1), err(), Event::Suspended, err()]), "E1 S Err");
        // A whole leadership that was never received.
        assert_eq!(room(&[lost(), el(2), Event::Suspended, Event::Reconnected, lost(), el(3)]), "L E3");
        assert_eq!(room(&[el(2), Event::Resigned, el(3)]), "E3");
        // Suspended then Reconnected.
        assert_eq!(room(&[Event::Suspended, Event::Reconnected, lost(), el(4), Event::Suspended]), "L E4 S");
        // What must stay, stays: a Lost of a received Elected, the current
        // leadership, a Suspended that holds, Ended.
        assert_eq!(room(&[Event::Suspended, lost(), el(5), Event::Suspended, Event::Ended]), "S L E5 S End");
    }
}
