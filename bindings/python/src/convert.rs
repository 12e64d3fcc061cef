//! Conversions between Python and the core: errors, values, timeouts, the fork
//! guard, and waiting on a blocking call without losing Ctrl-C.

use std::sync::mpsc;
use std::time::Duration;

use ballot::blocking::CancelToken;
use ballot::{Error, ErrorKind};
use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyString};

/// The Python class (in `ballot._errors`) of a kind, by Python's rule: the
/// kind's name in CamelCase and `Error`, as `not_leader` -> `NotLeaderError`.
/// `_errors.py` makes one class per row of the core's table with this name.
pub(crate) fn class_name(kind: ErrorKind) -> String {
    let mut out: String = kind.as_str().split('_').flat_map(capitalized).collect();
    out.push_str("Error");
    out
}

fn capitalized(word: &str) -> Vec<char> {
    let mut chars = word.chars();
    chars.next().into_iter().flat_map(char::to_uppercase).chain(chars).collect()
}

/// A Python exception for `e`: the class of its kind, the message as `str(exc)`,
/// and the underlying error chained as `__cause__`.
pub(crate) fn py_err(py: Python<'_>, e: &Error) -> PyErr {
    let err = match py.import("ballot._errors").and_then(|m| m.getattr(class_name(e.kind()).as_str())) {
        Ok(cls) => match cls.call1((e.message().to_string(),)) {
            Ok(inst) => PyErr::from_value(inst),
            Err(import_err) => import_err,
        },
        // The package is broken (the pure-Python half is missing); say what failed.
        Err(import_err) => PyRuntimeError::new_err(format!("{e} (and ballot._errors could not be used: {import_err})")),
    };
    if let Some(src) = std::error::Error::source(e) {
        err.set_cause(py, Some(cause(py, src)));
    }
    err
}

fn cause(py: Python<'_>, src: &(dyn std::error::Error + 'static)) -> PyErr {
    if let Some(inner) = src.downcast_ref::<Error>() {
        return py_err(py, inner);
    }
    let err = match src.downcast_ref::<std::io::Error>() {
        Some(io) => match io.raw_os_error() {
            Some(code) => PyOSError::new_err((code, io.to_string())),
            None => PyOSError::new_err(io.to_string()),
        },
        None => PyRuntimeError::new_err(src.to_string()),
    };
    if let Some(next) = src.source() {
        err.set_cause(py, Some(cause(py, next)));
    }
    err
}

/// `InvalidArgumentError(message)`.
pub(crate) fn invalid(py: Python<'_>, message: impl Into<String>) -> PyErr {
    py_err(py, &Error::new(ErrorKind::InvalidArgument, message))
}

/// Maps a core result to a Python one.
pub(crate) fn check<T>(py: Python<'_>, r: ballot::Result<T>) -> PyResult<T> {
    r.map_err(|e| py_err(py, &e))
}

/// A candidate value: `bytes`, `bytearray` or `str` (encoded as UTF-8).
pub(crate) fn value_bytes(v: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let py = v.py();
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(b) = v.cast::<PyByteArray>() {
        return Ok(b.to_vec());
    }
    if let Ok(s) = v.cast::<PyString>() {
        return match s.to_cow() {
            Ok(s) => Ok(s.as_bytes().to_vec()),
            Err(e) => {
                let err = invalid(py, "value is a str that cannot be encoded as UTF-8");
                err.set_cause(py, Some(e));
                Err(err)
            }
        };
    }
    let ty = v.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
    Err(invalid(py, format!("value must be bytes or str, not {ty}")))
}

/// A timeout in seconds: None (or infinity) waits forever; negative or NaN is an
/// `InvalidArgumentError` (the core reads the number, as it reads options).
pub(crate) fn timeout(py: Python<'_>, what: &str, secs: Option<f64>) -> PyResult<Option<Duration>> {
    match secs {
        None => Ok(None),
        Some(s) if s == f64::INFINITY => Ok(None),
        Some(s) => check(py, ballot::surface::duration_from_secs(what, s).map(Some)),
    }
}

/// Remembers the process that made a client. tokio does not support a runtime used
/// across `fork()`: in a child, the parent's client has no threads behind it and
/// would hang. Every call checks the pid and fails with `ClosedError` instead.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForkGuard {
    pid: u32,
}

impl ForkGuard {
    pub(crate) fn new() -> ForkGuard {
        ForkGuard { pid: std::process::id() }
    }

    pub(crate) fn is_own_process(&self) -> bool {
        self.pid == std::process::id()
    }

    pub(crate) fn check(&self, py: Python<'_>) -> PyResult<()> {
        let now = std::process::id();
        if now == self.pid {
            return Ok(());
        }
        Err(py_err(
            py,
            &Error::new(
                ErrorKind::Closed,
                format!(
                    "this ballot client was created in process {} and cannot be used in process {now} \
                     (a child made by fork()); create clients after fork, in the process that uses them",
                    self.pid
                ),
            ),
        ))
    }
}

/// A core handle owned by the process that made it. In a forked child the handle
/// is leaked instead of dropped: dropping it there would withdraw, resign or
/// unlock on behalf of the parent (a child shares the parent's lock files and
/// sessions), taking the parent's leadership away.
pub(crate) struct Owned<T> {
    value: std::mem::ManuallyDrop<T>,
    guard: ForkGuard,
}

impl<T> Owned<T> {
    pub(crate) fn new(value: T, guard: ForkGuard) -> Owned<T> {
        Owned { value: std::mem::ManuallyDrop::new(value), guard }
    }

    /// The process check of this handle.
    pub(crate) fn guard(&self) -> ForkGuard {
        self.guard
    }
}

impl<T> std::ops::Deref for Owned<T> {
    type Target = T;
    /// Callers check the process first (`ForkGuard::check`) before any call that
    /// reaches the runtime.
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        if self.guard.is_own_process() {
            // SAFETY: `value` is dropped exactly once, here, and never used after.
            unsafe { std::mem::ManuallyDrop::drop(&mut self.value) }
        }
    }
}

/// How often a waiting call looks for Ctrl-C (Python runs signal handlers only on
/// the main thread, between bytecodes, so a call blocked in Rust must look).
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// Runs `f` on a helper thread with the GIL released, checking for signals
/// meanwhile. When a signal handler raises (Ctrl-C: KeyboardInterrupt), the token
/// is cancelled, `f` is awaited (it withdraws what it started), `undo` is given
/// any success that raced with the cancel, and the handler's exception is raised.
pub(crate) fn interruptible<T, F, U>(py: Python<'_>, f: F, undo: U) -> PyResult<T>
where
    T: Send,
    F: FnOnce(&CancelToken) -> ballot::Result<T> + Send,
    U: FnOnce(T) + Send,
{
    let token = CancelToken::new();
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        // Receiver is not Sync; the GIL-free closures below only borrow it.
        let rx = std::sync::Mutex::new(rx);
        let recv = |t: Option<Duration>| {
            let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            match t {
                Some(t) => rx.recv_timeout(t),
                None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            }
        };
        let tok = token.clone();
        let spawned = std::thread::Builder::new().name("ballot-py-wait".into()).spawn_scoped(scope, move || {
            let _ = tx.send(f(&tok));
        });
        if let Err(e) = spawned {
            return Err(py_err(py, &Error::new(ErrorKind::Internal, format!("could not start a thread: {e}"))));
        }
        loop {
            match py.detach(|| recv(Some(SIGNAL_POLL))) {
                Ok(r) => return check(py, r),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(signal) = py.check_signals() {
                        token.cancel();
                        if let Ok(Ok(late)) = py.detach(|| recv(None)) {
                            py.detach(|| undo(late));
                        }
                        return Err(signal);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(py_err(py, &Error::new(ErrorKind::Internal, "a ballot call ended without an answer")))
                }
            }
        }
    })
}
