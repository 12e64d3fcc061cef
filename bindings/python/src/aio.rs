//! The asyncio bridge: pyo3-async-runtimes' generic `future_into_py` on a small
//! tokio runtime of our own that, like the core's, is rebuilt in a forked child.
//! (pyo3-async-runtimes' own tokio runtime is built once per address space, so a
//! forked child would spawn onto a runtime whose threads stayed in the parent.)

use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use ballot::{Error, ErrorKind};
use pyo3::prelude::*;
use pyo3_async_runtimes::generic::{ContextExt, Runtime as GenericRuntime};
use pyo3_async_runtimes::TaskLocals;
use tokio::runtime::Runtime;

use crate::convert::py_err;

/// The runtime and the process it was built in; see `ballot`'s own runtime.
static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

fn runtime() -> ballot::Result<&'static Runtime> {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((owner, rt)) = *slot {
        if owner == pid {
            return Ok(rt);
        }
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
    *slot = Some((pid, rt));
    Ok(rt)
}

/// Bridge tasks alive. Such a task takes the GIL to hand its result to the event
/// loop, and the loop may see the result (and the interpreter start exiting)
/// while the task is still inside that call: exit waits for them first.
/// Keyed by process: a forked child inherits the parent's count but none of
/// its tasks.
static LIVE: Mutex<(u32, usize)> = Mutex::new((0, 0));
static LIVE_DONE: Condvar = Condvar::new();

struct LiveTask;

impl LiveTask {
    fn new() -> LiveTask {
        let pid = std::process::id();
        let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        if live.0 != pid {
            *live = (pid, 0);
        }
        live.1 += 1;
        LiveTask
    }
}

impl Drop for LiveTask {
    fn drop(&mut self) {
        let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        live.1 = live.1.saturating_sub(1);
        if live.1 == 0 {
            LIVE_DONE.notify_all();
        }
    }
}

/// Waits (the caller has released the GIL) until no bridge task of this process
/// is alive, at most `limit`. Called at interpreter exit.
pub(crate) fn wait_idle(limit: Duration) {
    let pid = std::process::id();
    let deadline = Instant::now() + limit;
    let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    while live.0 == pid && live.1 > 0 {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        live = match LIVE_DONE.wait_timeout(live, deadline - now) {
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
