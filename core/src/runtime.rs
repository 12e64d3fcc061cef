//! The library-owned tokio runtime.
//!
//! Every background task (keepalives, watches, leadership monitors) runs here, so
//! ballot keeps working whatever runtime (or none) the caller uses, and a caller's
//! runtime shutting down does not kill a session.

use std::cell::{Cell, RefCell};
use std::future::Future;

use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

use crate::error::{Error, ErrorKind, Result};
use crate::process_runtime::ProcessRuntime;

/// The runtime of this process, built afresh in a forked child (see
/// [`ProcessRuntime`]).
static RUNTIME: ProcessRuntime = ProcessRuntime::new("ballot", build);

thread_local! {
    static ON_LIBRARY_RUNTIME: Cell<bool> = const { Cell::new(false) };
    // memory:// tests: a current-thread runtime (paused time) that this thread
    // lent to the library with `ballot::memory::use_current_runtime`.
    static LENT: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// memory:// tests: makes this thread's spawns and `run`s use `handle` (a
/// current-thread runtime that runs on this very thread) instead of the library
/// runtime, or stops that with `None`; returns what was set before.
#[cfg_attr(not(feature = "memory"), allow(dead_code))]
pub(crate) fn lend_current(handle: Option<Handle>) -> Option<Handle> {
    LENT.with(|l| l.replace(handle))
}

/// Worker threads of the library runtime. Two is enough: the work is I/O-bound and
/// every blocking file-system call goes to the blocking pool.
const WORKERS: usize = 2;
/// The cap on threads for blocking work: short file-system calls of the local
/// backend and name resolution. Nothing blocks there for long (waiting for a lock
/// has its own thread per election), so a few suffice, and a process holding
/// thousands of elections does not grow hundreds of threads (tokio's default is 512).
const BLOCKING: usize = 4;

/// The runtime's handle, building the runtime on first use in this process.
pub(crate) fn handle() -> Result<Handle> {
    if let Some(lent) = LENT.with(|l| l.borrow().clone()) {
        return Ok(lent);
    }
    RUNTIME.handle()
}

fn build() -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .max_blocking_threads(BLOCKING)
        // Idle ones leave after a second (tokio's default is 10 s): an idle process
        // holding thousands of local elections keeps its workers and its inotify thread.
        .thread_keep_alive(std::time::Duration::from_secs(1))
        .thread_name("ballot-rt")
        .enable_all()
        .on_thread_start(|| {
            ON_LIBRARY_RUNTIME.with(|f| f.set(true));
            block_sigpipe();
        })
        .build()
}

/// Blocks SIGPIPE on the calling thread, a thread of the library runtime.
///
/// A write to a connection that the peer has closed raises SIGPIPE, whose default
/// action ends the process. Rust programs ignore it (their runtime does), but a C
/// program using libballot usually does not: a TLS server breaking off a handshake
/// killed such a program in the middle of `ballot_client_connect` (`writev`, which
/// has no `MSG_NOSIGNAL`). Every network write happens on the runtime's threads,
/// so blocking the signal there turns it into the `EPIPE` error that the clients
/// handle, and leaves the host's own handling of SIGPIPE alone.
fn block_sigpipe() {
    // SAFETY: plain libc calls on a local set; no precondition can fail.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Whether the current thread belongs to the library runtime.
pub(crate) fn on_library_runtime() -> bool {
    ON_LIBRARY_RUNTIME.with(|f| f.get()) || LENT.with(|l| l.borrow().is_some())
}

/// Spawns a background task on the library runtime.
pub(crate) fn spawn<F>(fut: F) -> Result<JoinHandle<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Ok(handle()?.spawn(fut))
}

/// Spawns a best-effort background task; if the runtime cannot be built the task is
/// dropped (nothing useful could run it anyway).
pub(crate) fn spawn_detached<F>(fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    if let Ok(h) = handle() {
        h.spawn(fut);
    }
}

/// Runs `fut` on the library runtime and waits for it from any executor.
///
/// Cancel safety: dropping the returned future aborts the task, so `fut` is
/// dropped at its next await point, exactly as if it had been polled in place.
pub(crate) async fn run<F, T>(fut: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    if on_library_runtime() {
        return fut.await;
    }
    let task = AbortOnDrop(spawn(fut)?);
    let mut task = task;
    match (&mut task.0).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(Error::new(ErrorKind::Internal, format!("a ballot task panicked: {e}"))),
        Err(e) => Err(Error::new(ErrorKind::Internal, format!("a ballot task was cancelled: {e}"))),
    }
}

/// Runs `fut` on the library runtime to its end, even if the caller stops waiting.
///
/// For operations that must not stop halfway (resign, close): dropping the returned
/// future only stops the waiting, never the work, so a cancelled `resign()` still
/// removes the leader's record instead of leaving it to the session's expiry.
pub(crate) async fn run_to_completion<F, T>(fut: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    match spawn(fut)?.await {
        Ok(r) => r,
        Err(e) => Err(Error::new(ErrorKind::Internal, format!("a ballot task failed: {e}"))),
    }
}

struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::fork_test::{assert_child_ok, fork_while_locked};

    fn run_a_task() -> bool {
        handle().is_ok_and(|h| {
            let (tx, rx) = std::sync::mpsc::channel();
            h.spawn(async move {
                let _ = tx.send(7);
            });
            rx.recv_timeout(std::time::Duration::from_secs(10)) == Ok(7)
        })
    }

    #[test]
    fn a_child_forked_while_the_runtime_slot_is_locked_builds_its_own() {
        assert!(run_a_task(), "the parent's runtime runs a task");
        assert_child_ok(fork_while_locked(RUNTIME.slot(), run_a_task), "runtime slot held at fork");
    }
}
