//! A blocking facade over the async API, for callers without an async runtime: the
//! C ABI, the Python and Node bindings, and plain threads.
//!
//! Every call runs on the library-owned runtime and waits on the calling thread.
//! Calls that can wait take a timeout (`None`: wait forever) and can be cancelled
//! from another thread with a [`CancelToken`]. Event callbacks run on one
//! library-owned thread per [`Client`] (named `ballot-events`), never on a runtime
//! worker, so a callback may itself call this blocking API.
//!
//! Blocking calls must not be made from inside a ballot runtime task; they return
//! an `Internal` error there instead of deadlocking.

use crate::sync::lock;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

use futures_util::StreamExt;

use crate::cancel;
use crate::election::{Leadership, Observe};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Event, Leader, Participant, State};
use crate::options::Options;
use crate::runtime;

pub use crate::cancel::CancelToken;

/// Runs `fut` on the library runtime and blocks until it finishes, times out, or
/// `cancel` fires. Timeout and cancellation drop the future on the runtime, which
/// for every operation here withdraws what it started.
fn wait<T, F>(fut: F, timeout: Option<Duration>, cancel: Option<&CancelToken>) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    if runtime::on_library_runtime() {
        return Err(Error::new(
            ErrorKind::Internal,
            "a blocking ballot call was made from a ballot runtime thread; use the async API there",
        ));
    }
    let cancel = cancel.cloned();
    let (tx, rx) = mpsc::sync_channel(1);
    runtime::spawn(async move {
        let _ = tx.send(cancel::bounded(fut, timeout, cancel.as_ref(), "the operation").await);
    })?;
    rx.recv().unwrap_or_else(|_| Err(Error::new(ErrorKind::Internal, "a ballot task ended without an answer")))
}

/// A blocking [`crate::Client`]. `Send + Sync`; clones share the session and the
/// event thread.
#[derive(Clone)]
pub struct Client {
    inner: crate::Client,
    dispatcher: Arc<Dispatcher>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::Client").field("url", &self.inner.url()).finish()
    }
}

impl Client {
    /// Connects; see [`crate::Client::connect`] for the errors. Waits at most the
    /// connect timeout of `options`.
    pub fn connect(url: &str, options: Options) -> Result<Client> {
        let url = url.to_string();
        let inner = wait(async move { crate::Client::connect(&url, options).await }, None, None)?;
        Ok(Client { inner, dispatcher: Arc::new(Dispatcher::default()) })
    }

    /// Wraps an async client (for example one connected with `.await` from an
    /// async caller). Both share the session; the blocking side gets its own event
    /// thread on first `on_event`.
    pub fn from_async(client: crate::Client) -> Client {
        Client { inner: client, dispatcher: Arc::new(Dispatcher::default()) }
    }

    /// A handle on election `name`; see [`crate::Client::election`].
    pub fn election(&self, name: &str) -> Result<Election> {
        Ok(Election { inner: self.inner.election(name)?, dispatcher: self.dispatcher.clone() })
    }

    /// The async client underneath.
    pub fn as_async(&self) -> &crate::Client {
        &self.inner
    }

    /// Resigns and withdraws everything and releases the session; see
    /// [`crate::Client::close`]. Event callbacks stop; ones already running finish.
    pub fn close(&self) -> Result<()> {
        let c = self.inner.clone();
        wait(async move { c.close().await }, None, None)
    }
}

/// A blocking [`crate::Election`]. `Send + Sync`; clones are the same participant.
#[derive(Clone)]
pub struct Election {
    inner: crate::Election,
    dispatcher: Arc<Dispatcher>,
}

impl fmt::Debug for Election {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::Election").field("name", &self.inner.name()).finish()
    }
}

impl Election {
    /// Campaigns and blocks until elected, the timeout passes (`Timeout`), or an
    /// error; see [`crate::Election::campaign`]. On timeout the candidate is
    /// withdrawn and leaves no entry.
    pub fn campaign(&self, value: &[u8], timeout: Option<Duration>) -> Result<Leadership> {
        self.campaign_with(value, timeout, None)
    }

    /// [`campaign`](Self::campaign) that `cancel` can interrupt from another thread
    /// (`Cancelled`; the candidate is withdrawn).
    pub fn campaign_with(
        &self,
        value: &[u8],
        timeout: Option<Duration>,
        cancel: Option<&CancelToken>,
    ) -> Result<Leadership> {
        let e = self.inner.clone();
        let v = value.to_vec();
        let cancel = cancel.cloned();
        let r = wait(async move { e.campaign_with(v, timeout, cancel.as_ref()).await }, None, None);
        if let Err(err) = &r {
            if matches!(err.kind(), ErrorKind::Timeout | ErrorKind::Cancelled) {
                // The withdrawal runs in the background; finish it before returning, so
                // a caller that exits right after (Ctrl-C in Python) leaves no entry.
                let s = self.inner.participant().clone();
                let _ = wait(
                    async move {
                        s.settle(Duration::from_secs(5)).await;
                        Ok(())
                    },
                    None,
                    None,
                );
            }
        }
        r
    }

    /// See [`crate::Election::proclaim`].
    pub fn proclaim(&self, value: &[u8]) -> Result<()> {
        let e = self.inner.clone();
        let v = value.to_vec();
        wait(async move { e.proclaim(v).await }, None, None)
    }

    /// See [`crate::Election::resign`].
    pub fn resign(&self) -> Result<()> {
        let e = self.inner.clone();
        wait(async move { e.resign().await }, None, None)
    }

    /// See [`crate::Election::leader`].
    pub fn leader(&self) -> Result<Option<Leader>> {
        let e = self.inner.clone();
        wait(async move { e.leader().await }, None, None)
    }

    /// See [`crate::Election::participants`].
    pub fn participants(&self) -> Result<Vec<Participant>> {
        let e = self.inner.clone();
        wait(async move { e.participants().await }, None, None)
    }

    /// See [`crate::Election::end`].
    pub fn end(&self) -> Result<()> {
        let e = self.inner.clone();
        wait(async move { e.end().await }, None, None)
    }

    /// See [`crate::Election::state`].
    pub fn state(&self) -> State {
        self.inner.state()
    }

    /// The election name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// See [`crate::Election::close`].
    pub fn close(&self) {
        let e = self.inner.clone();
        let _ = wait(
            async move {
                e.close().await;
                Ok(())
            },
            None,
            None,
        );
    }

    /// The async election underneath.
    pub fn as_async(&self) -> &crate::Election {
        &self.inner
    }

    /// A blocking iterator over leader changes; see [`crate::Election::observe`].
    pub fn observe(&self) -> Observer {
        Observer { stream: Arc::new(tokio::sync::Mutex::new(self.inner.observe())), done: false }
    }

    /// Calls `callback` for every event of this handle, in order, on the client's
    /// event thread (`ballot-events`, owned by the library). The callback may call
    /// the blocking API. Events stop when the returned [`Subscription`] is
    /// cancelled or dropped; `callback` is dropped exactly once, after its last call.
    ///
    /// Events wait for a slow callback in the subscription's bounded queue, with
    /// the merging rules of [`crate::Election::events`]: the next event is handed
    /// to the event thread only once the callback has returned from the last one.
    pub fn on_event<F>(&self, callback: F) -> Result<Subscription>
    where
        F: FnMut(&Event) + Send + 'static,
    {
        let d = self.dispatcher.clone();
        let id = d.register(Box::new(callback))?;
        let mut events = self.inner.events();
        let d2 = d.clone();
        runtime::spawn(async move {
            while let Some(ev) = events.next().await {
                let (done, delivered) = tokio::sync::oneshot::channel();
                if !d2.post(id, ev, done) {
                    return;
                }
                // One event at a time: the queue of a slow callback is the bounded
                // one of `events`, not the event thread's channel.
                let _ = delivered.await;
            }
        })?;
        Ok(Subscription { dispatcher: d, id, done: false })
    }
}

/// A blocking iterator over leader changes. Each item is the leader after a change
/// (None: no leader); the iterator ends after `Err(Ended)` or `Err(Closed)`.
pub struct Observer {
    stream: Arc<tokio::sync::Mutex<Observe>>,
    done: bool,
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Observer")
    }
}

impl Observer {
    /// Waits at most `timeout` for the next change: `Err(Timeout)` when none came
    /// (the observer stays usable), `Ok(None)` once the stream is over.
    pub fn next_timeout(&mut self, timeout: Option<Duration>) -> Result<Option<Option<Leader>>> {
        self.next_with(timeout, None)
    }

    /// Like [`next_timeout`](Self::next_timeout), interruptible by `cancel`.
    pub fn next_with(
        &mut self,
        timeout: Option<Duration>,
        cancel: Option<&CancelToken>,
    ) -> Result<Option<Option<Leader>>> {
        if self.done {
            return Ok(None);
        }
        let s = self.stream.clone();
        let r = wait(async move { Ok(s.lock().await.next().await) }, timeout, cancel)?;
        match r {
            None => {
                self.done = true;
                Ok(None)
            }
            Some(Err(e)) => {
                if matches!(e.kind(), ErrorKind::Ended | ErrorKind::Closed) {
                    self.done = true;
                }
                Err(e)
            }
            Some(Ok(l)) => Ok(Some(l)),
        }
    }
}

impl Iterator for Observer {
    type Item = Result<Option<Leader>>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_timeout(None).transpose()
    }
}

/// An event callback registration. Dropping it is the same as [`cancel`](Self::cancel).
pub struct Subscription {
    dispatcher: Arc<Dispatcher>,
    id: u64,
    done: bool,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").field("id", &self.id).finish()
    }
}

impl Subscription {
    /// Stops the callback. From any thread but the event thread, this waits until a
    /// running call of the callback has returned, and the callback has been dropped
    /// when it returns. From inside a callback (on the event thread) it cannot
    /// wait: the callback is then dropped right after the running call returns.
    pub fn cancel(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if !self.done {
            self.done = true;
            self.dispatcher.unregister(self.id);
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether the current thread is a ballot event thread (inside an event callback).
pub fn in_event_callback() -> bool {
    IN_DISPATCH.with(|f| f.get())
}

thread_local! {
    static IN_DISPATCH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

type Callback = Box<dyn FnMut(&Event) + Send>;

/// One event thread per client, started on first use.
#[derive(Default)]
struct Dispatcher {
    state: Mutex<DispatchState>,
    idle: Condvar,
    next: AtomicU64,
    started: AtomicBool,
}

#[derive(Default)]
struct DispatchState {
    callbacks: HashMap<u64, Arc<Mutex<Callback>>>,
    running: Option<u64>,
    tx: Option<mpsc::Sender<Posted>>,
}

/// An event for one subscription, and who to tell once its callback returned.
type Posted = (u64, Event, tokio::sync::oneshot::Sender<()>);

impl Dispatcher {
    fn register(self: &Arc<Self>, cb: Callback) -> Result<u64> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut st = lock(&self.state);
        if st.tx.is_none() {
            let (tx, rx) = mpsc::channel::<Posted>();
            // The thread holds only a weak reference, so it ends with the client.
            let weak = Arc::downgrade(self);
            std::thread::Builder::new()
                .name("ballot-events".into())
                .spawn(move || {
                    IN_DISPATCH.with(|f| f.set(true));
                    while let Ok((id, ev, done)) = rx.recv() {
                        let Some(d) = weak.upgrade() else { return };
                        d.dispatch(id, &ev);
                        let _ = done.send(());
                    }
                })
                .map_err(|e| Error::io(ErrorKind::Internal, "starting the event thread", e))?;
            st.tx = Some(tx);
            self.started.store(true, Ordering::SeqCst);
        }
        st.callbacks.insert(id, Arc::new(Mutex::new(cb)));
        Ok(id)
    }

    /// Hands an event to the event thread, which signals `done` after the callback;
    /// false once the subscription is gone.
    fn post(&self, id: u64, ev: Event, done: tokio::sync::oneshot::Sender<()>) -> bool {
        let st = lock(&self.state);
        if !st.callbacks.contains_key(&id) {
            return false;
        }
        st.tx.as_ref().is_some_and(|tx| tx.send((id, ev, done)).is_ok())
    }

    fn dispatch(&self, id: u64, ev: &Event) {
        let cb = {
            let mut st = lock(&self.state);
            let Some(cb) = st.callbacks.get(&id).cloned() else { return };
            st.running = Some(id);
            cb
        };
        {
            let mut f = lock(&cb);
            // A panicking callback must not take the event thread (and every other
            // subscription) down with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (*f)(ev)));
        }
        // If the subscription was cancelled meanwhile, this is the last reference:
        // the callback is dropped here, before a waiting `unregister` returns.
        drop(cb);
        lock(&self.state).running = None;
        self.idle.notify_all();
    }

    fn unregister(&self, id: u64) {
        let mut st = lock(&self.state);
        let cb = st.callbacks.remove(&id);
        if !in_event_callback() {
            while st.running == Some(id) {
                st = self.idle.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        }
        drop(st);
        drop(cb);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::election::testing::{connection, emit, Loss};
    use crate::election::EVENT_QUEUE_CAPACITY;

    /// A callback that is slower than the events does not make the library queue
    /// them without bound: the event thread holds one at a time, and the rest wait
    /// in the subscription's bounded queue, merged by its rules (here the leader
    /// changes, of which the newest is kept).
    #[test]
    fn a_slow_callback_holds_a_bounded_queue() {
        let (c, _) = connection(Loss::Never);
        let bc = Client::from_async(crate::Client::for_test(c));
        let e = bc.election("svc").unwrap();
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let (seen_tx, seen_rx) = mpsc::channel::<u64>();
        let (held_tx, held_rx) = mpsc::channel::<()>();
        let _sub = e
            .on_event(move |ev| {
                if let Event::LeaderChanged(Some(l)) = ev {
                    if l.term == 0 {
                        // The first event holds the event thread until the test lets go.
                        let _ = held_tx.send(());
                        let _ = gate_rx.recv();
                    }
                    let _ = seen_tx.send(l.term);
                }
            })
            .unwrap();
        let leader = |term: u64| Event::LeaderChanged(Some(Leader::new(b"v".to_vec(), term, "k".into())));
        emit(&e.inner, leader(0));
        held_rx.recv_timeout(Duration::from_secs(10)).expect("the callback runs");
        let sent = 10 * EVENT_QUEUE_CAPACITY as u64;
        for term in 1..=sent {
            emit(&e.inner, leader(term));
        }
        gate_tx.send(()).unwrap();
        let mut got = Vec::new();
        while got.last() != Some(&sent) {
            got.push(seen_rx.recv_timeout(Duration::from_secs(10)).expect("the newest leader arrives"));
        }
        assert!(
            got.len() <= EVENT_QUEUE_CAPACITY + 2,
            "{} of {} events were delivered to a callback that fell behind",
            got.len(),
            sent + 1
        );
        assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
    }
}
