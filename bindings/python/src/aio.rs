//! The asyncio bridge: pyo3-async-runtimes' generic `future_into_py` on a small
//! tokio runtime of our own that, like the core's (and with the core's code), is
//! rebuilt in a forked child.
//! (pyo3-async-runtimes' own tokio runtime is built once per address space, so a
//! forked child would spawn onto a runtime whose threads stayed in the parent.)

use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ballot::{__PerProcess as PerProcess, __ProcessRuntime as ProcessRuntime};
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3_async_runtimes::generic::{ContextExt, Runtime as GenericRuntime};
use pyo3_async_runtimes::TaskLocals;

use crate::convert::py_err;

/// The bridge runtime of this process: the core's fork-aware runtime type, built
/// afresh in a forked child. Not the library's runtime itself: a bridge task
/// waits for the GIL to hand its result to the event loop, and must not hold up
/// the library's keepalives while it waits.
static RUNTIME: ProcessRuntime = ProcessRuntime::new("asyncio bridge", || {
    // It only awaits futures whose work runs on the library runtime: one worker.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ballot-asyncio")
        // Its threads complete asyncio futures (`Python::attach`); see
        // `keep_thread_state` for why each keeps one Python thread state.
        .on_thread_start(crate::keep_thread_state)
        .enable_all()
        .build()
});

/// Bridge tasks alive in this process, and a condition signalled when none is
/// left. Such a task takes the GIL to hand its result to the event loop, and the
/// loop may see the result (and the interpreter start exiting) while the task is
/// still inside that call: exit waits for them first. A forked child starts at
/// zero: it inherits none of the parent's tasks.
static LIVE: PerProcess<(Mutex<usize>, Condvar)> = PerProcess::new(|| (Mutex::new(0), Condvar::new()));

struct LiveTask;

impl LiveTask {
    fn new() -> LiveTask {
        *LIVE.get().0.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        LiveTask
    }
}

impl Drop for LiveTask {
    fn drop(&mut self) {
        let (count, done) = LIVE.get();
        let mut live = count.lock().unwrap_or_else(|p| p.into_inner());
        *live = live.saturating_sub(1);
        if *live == 0 {
            done.notify_all();
        }
    }
}

/// Waits (the caller has released the GIL) until no bridge task of this process
/// is alive, at most `limit`. Called at interpreter exit.
pub(crate) fn wait_idle(limit: Duration) {
    let deadline = Instant::now() + limit;
    let (count, done) = LIVE.get();
    let mut live = count.lock().unwrap_or_else(|p| p.into_inner());
    while *live > 0 {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        live = match done.wait_timeout(live, deadline - now) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        };
    }
}

struct Bridge;

tokio::task_local! {
    static TASK_LOCALS: OnceCell<TaskLocals>;
}

impl GenericRuntime for Bridge {
    type JoinError = tokio::task::JoinError;
    type JoinHandle = tokio::task::JoinHandle<()>;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // `future_into_py` below built the runtime for this process before any
        // spawn; a failure to build it was reported there as InternalError.
        let live = LiveTask::new();
        match RUNTIME.get() {
            Ok(rt) => rt.spawn(async move {
                fut.await;
                drop(live);
            }),
            Err(e) => panic!("{e}"),
        }
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        let live = LiveTask::new();
        match RUNTIME.get() {
            Ok(rt) => rt.spawn_blocking(move || {
                f();
                drop(live);
            }),
            Err(e) => panic!("{e}"),
        }
    }
}

impl ContextExt for Bridge {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = OnceCell::new();
        let _ = cell.set(locals);
        Box::pin(TASK_LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS.try_with(|c| c.get().cloned()).unwrap_or_default()
    }
}

/// Wraps `fut` in an asyncio awaitable. Cancelling the awaitable drops `fut`.
pub(crate) fn future_into_py<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    RUNTIME.get().map_err(|e| py_err(py, &e))?;
    pyo3_async_runtimes::generic::future_into_py::<Bridge, F, T>(py, fut)
}

/// Runs `fut` on the bridge runtime with nobody awaiting it. Interpreter exit
/// waits for it (a little) like for any bridge task.
pub(crate) fn spawn_detached<F>(fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    // `spawn` cannot report a runtime that failed to start; ask first.
    if RUNTIME.get().is_ok() {
        drop(<Bridge as GenericRuntime>::spawn(fut));
    }
}

/// The hand-over of a result that must not be lost silently, such as a won
/// campaign: either the awaiting Python code receives it, or it is undone.
///
/// The asyncio future that `future_into_py` returns loses a result in two ways:
/// when the future is cancelled as the result arrives, pyo3-async-runtimes drops
/// the result (its completion callbacks skip a cancelled future), and when a task
/// is cancelled after its future got the result but before the task resumed,
/// asyncio throws `CancelledError` into the coroutine instead of handing it the
/// result. Neither is visible from the Rust future, so the Rust future registers
/// how to undo its result ([`Handover::ready`]) and the awaitable
/// ([`HandedOver`]) reports whether the awaiting code got it; whichever of the two
/// learns last undoes a result that nobody received.
pub(crate) struct Handover {
    state: Mutex<HandoverState>,
}

enum HandoverState {
    /// No result yet, and the awaiting code still waits for one.
    Waiting,
    /// The awaiting code left (cancelled, closed, or the awaitable was dropped).
    Abandoned,
    /// A result exists; this undoes it if the awaiting code never gets it.
    Ready(Box<dyn FnOnce() + Send>),
    /// The awaiting code received the result, or the undo ran.
    Settled,
}

impl Handover {
    /// Called by the Rust future with its result: `undo` runs now if the awaiting
    /// code has left already, later if it leaves without the result, never if it
    /// gets it. `undo` must not block (it may run on the event loop's thread).
    pub(crate) fn ready(&self, undo: impl FnOnce() + Send + 'static) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match *st {
            HandoverState::Waiting => *st = HandoverState::Ready(Box::new(undo)),
            HandoverState::Abandoned => {
                *st = HandoverState::Settled;
                drop(st);
                undo();
            }
            HandoverState::Ready(_) | HandoverState::Settled => {}
        }
    }

    fn abandon(&self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match std::mem::replace(&mut *st, HandoverState::Settled) {
            HandoverState::Waiting => *st = HandoverState::Abandoned,
            HandoverState::Ready(undo) => {
                drop(st);
                undo();
            }
            HandoverState::Abandoned => *st = HandoverState::Abandoned,
            HandoverState::Settled => {}
        }
    }

    fn received(&self) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = HandoverState::Settled;
    }
}

/// `future_into_py` for a result that must reach the awaiting code or be undone:
/// `make` gets the [`Handover`] on which its future registers the undo of its
/// result. Returns an awaitable (not an asyncio future) that tells whether the
/// awaiting code received the result; cancelling the task that awaits it drops the
/// Rust future as `future_into_py` does.
pub(crate) fn future_into_awaitable<'py, M, F, T>(py: Python<'py>, make: M) -> PyResult<Bound<'py, HandedOver>>
where
    M: FnOnce(Arc<Handover>) -> F,
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let handover = Arc::new(Handover { state: Mutex::new(HandoverState::Waiting) });
    let fut = future_into_py(py, make(handover.clone()))?.unbind();
    Bound::new(py, HandedOver { inner: Arc::new(Awaited { fut, handover }) })
}

/// What every awaitable and iterator of one hand-over shares. When the last of
/// them goes without the result having been received, the result is undone, and
/// a campaign still running is cancelled (nobody can wait for it any more).
struct Awaited {
    fut: Py<PyAny>,
    handover: Arc<Handover>,
}

impl Drop for Awaited {
    fn drop(&mut self) {
        self.handover.abandon();
        Python::attach(|py| {
            // This often runs while an exception unwinds the awaiting frame (the
            // last iterator goes with it): keep that exception from the calls below.
            let unwinding = PyErr::take(py);
            let fut = self.fut.bind(py);
            if !fut.call_method0("done").and_then(|d| d.is_truthy()).unwrap_or(true) {
                // Possibly not on the loop's thread: the loop does the cancelling. A
                // closed loop refuses, and then nothing can deliver the result anyway.
                let _ = fut
                    .call_method0("get_loop")
                    .and_then(|l| l.call_method1("call_soon_threadsafe", (fut.getattr("cancel")?,)));
            }
            if let Some(e) = unwinding {
                e.restore(py);
            }
        });
    }
}

/// An awaitable whose result must reach the awaiting code (see [`Handover`]).
/// Awaiting it again gives the same result.
#[pyclass(module = "ballot", frozen)]
pub(crate) struct HandedOver {
    inner: Arc<Awaited>,
}

#[pymethods]
impl HandedOver {
    fn __await__(&self, py: Python<'_>) -> PyResult<HandOverIter> {
        let iter = self.inner.fut.bind(py).call_method0("__await__")?.unbind();
        Ok(HandOverIter { inner: self.inner.clone(), iter })
    }
}

/// The iterator behind `await` on a [`HandedOver`]: the asyncio future's own
/// iterator, watched for the result going to the awaiting code (StopIteration) or
/// not (an exception thrown in or raised, or `close()`).
#[pyclass(module = "ballot", frozen)]
pub(crate) struct HandOverIter {
    inner: Arc<Awaited>,
    iter: Py<PyAny>,
}

impl HandOverIter {
    fn watch(&self, py: Python<'_>, step: PyResult<Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        match step {
            Ok(yielded) => Ok(yielded.unbind()),
            Err(e) => {
                if e.is_instance_of::<PyStopIteration>(py) {
                    // The value travels in the StopIteration to the `await`.
                    self.inner.handover.received();
                } else {
                    self.inner.handover.abandon();
                }
                Err(e)
            }
        }
    }
}

#[pymethods]
impl HandOverIter {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.watch(py, self.iter.bind(py).call_method0("__next__"))
    }

    fn send(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.watch(py, self.iter.bind(py).call_method1("send", (value,)))
    }

    /// Something thrown in means the awaiting code will not take the result: a
    /// cancelled task gets here even when the future already holds the result.
    #[pyo3(signature = (typ, value=None, tb=None))]
    fn throw(
        &self,
        py: Python<'_>,
        typ: &Bound<'_, PyAny>,
        value: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.inner.handover.abandon();
        let it = self.iter.bind(py);
        let r = match (value, tb) {
            (None, None) => it.call_method1("throw", (typ,)),
            (v, None) => it.call_method1("throw", (typ, v)),
            (v, Some(tb)) => it.call_method1("throw", (typ, v, tb)),
        };
        self.watch(py, r)
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.inner.handover.abandon();
        let it = self.iter.bind(py);
        if it.hasattr("close")? {
            it.call_method0("close")?;
        }
        Ok(())
    }
}
