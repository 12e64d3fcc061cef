//! The asyncio bridge: pyo3-async-runtimes' generic `future_into_py` on a small
//! tokio runtime of our own that, like the core's, is rebuilt in a forked child.
//! (pyo3-async-runtimes' own tokio runtime is built once per address space, so a
//! forked child would spawn onto a runtime whose threads stayed in the parent.)

use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use ballot::{__PerProcess as PerProcess, Error, ErrorKind};
use pyo3::prelude::*;
use pyo3_async_runtimes::generic::{ContextExt, Runtime as GenericRuntime};
use pyo3_async_runtimes::TaskLocals;
use tokio::runtime::Runtime;

use crate::convert::py_err;

/// The bridge runtime of this process (see `ballot`'s own runtime): per process
/// before any lock is taken, because a lock that a parent's thread held at the
/// fork would stay locked in the child.
static RUNTIME: PerProcess<Mutex<Option<&'static Runtime>>> = PerProcess::new(|| Mutex::new(None));

fn runtime() -> ballot::Result<&'static Runtime> {
    let mut slot = RUNTIME.get().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(rt) = *slot {
        return Ok(rt);
    }
    // It only awaits futures whose work runs on the library runtime: one worker.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ballot-asyncio")
        .enable_all()
        .build()
        .map_err(|e| Error::new(ErrorKind::Internal, format!("could not start the asyncio bridge runtime: {e}")))?;
    // Leaked on purpose: in a forked child the old one cannot be dropped (its
    // threads are not there to join), and in the parent it lives for the process.
    let rt: &'static Runtime = Box::leak(Box::new(rt));
    *slot = Some(rt);
    Ok(rt)
}

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
        match runtime() {
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
        match runtime() {
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
    runtime().map_err(|e| py_err(py, &e))?;
    pyo3_async_runtimes::generic::future_into_py::<Bridge, F, T>(py, fut)
}
