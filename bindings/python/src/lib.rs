//! `ballot._native`: the Python module over the Rust core (`ballot::blocking` for
//! the blocking API, the async API on pyo3-async-runtimes for asyncio).
//!
//! Only conversion and error mapping live here; the behaviour is the core's. The
//! pure-Python half (`python/ballot/`) holds the exception classes, the re-exports
//! and the typing stubs.

#![deny(unsafe_op_in_unsafe_fn)]

mod aio;
mod convert;
mod election;

use ballot::blocking;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};

use crate::convert::{check, py_err, ForkGuard, Owned};
use crate::election::{
    AsyncLeadershipContext, AsyncObserver, Election, Event, Leader, Leadership, LeadershipContext, Observer,
    Participant, Subscription,
};

/// A connection to one backend with one session, kept alive by the library.
///
/// Thread-safe. Create it in the process that uses it: after `fork()` a client
/// from the parent raises `ClosedError` in the child.
#[pyclass(module = "ballot", frozen)]
pub(crate) struct Client {
    inner: Owned<blocking::Client>,
    guard: ForkGuard,
}

#[pymethods]
impl Client {
    /// A handle on election `name` (a `/`-separated path of printable UTF-8, at
    /// most 256 bytes). Several handles on one name are independent participants.
    fn election(&self, py: Python<'_>, name: &str) -> PyResult<Election> {
        self.guard.check(py)?;
        let e = check(py, self.inner.election(name))?;
        Ok(Election::new(e, self.guard))
    }

    /// Resigns and withdraws every election of this client and releases the
    /// session. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.guard.check(py)?;
        let c = self.inner.clone();
        check(py, py.detach(move || c.close()))
    }

    /// `close()` for asyncio.
    fn close_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.guard.check(py)?;
        let c = self.inner.as_async().clone();
        crate::aio::future_into_py(py, async move { async_check(c.close().await) })
    }

    /// memory:// only: makes this client's session expire now, as a server expires
    /// a silent client's session (`ballot::memory::expire_session`): each handle
    /// that led gets a `lost` event, the next candidates lead, and a new session
    /// starts. Raises `InvalidArgumentError` for another backend. Never waits.
    fn expire_session(&self, py: Python<'_>) -> PyResult<()> {
        self.guard.check(py)?;
        check(py, ballot::memory::expire_session(self.inner.as_async()))
    }

    /// The backend URL, with any password replaced by `***`.
    #[getter]
    fn url(&self) -> String {
        self.inner.as_async().url().to_string()
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.as_async().is_closed()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _ty: Option<&Bound<'_, PyAny>>,
        _value: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("ballot.Client(url={:?})", self.inner.as_async().url())
    }
}

/// Builds the core options from `connect`'s keyword arguments: each one is an
/// option of the core's table by its name, converted as it comes (a number of
/// seconds, a bool, a str or an `os.PathLike`) and parsed and checked by the core.
/// None leaves the option at its default.
fn options(py: Python<'_>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<ballot::Options> {
    let mut o = ballot::Options::default();
    for (key, value) in kwargs.into_iter().flatten() {
        let name: String = key.extract()?;
        if value.is_none() {
            continue;
        }
        let v = if let Ok(b) = value.cast::<PyBool>() {
            ballot::OptionValue::Bool(b.is_true())
        } else if value.is_instance_of::<PyInt>() || value.is_instance_of::<PyFloat>() {
            // An int too large for a float is too large for any duration.
            ballot::OptionValue::Seconds(value.extract().unwrap_or(f64::INFINITY))
        } else if let Ok(text) = value.cast::<PyString>() {
            ballot::OptionValue::Text(text.to_cow()?.into_owned())
        } else if value.hasattr("__fspath__")? {
            let path = py.import("os")?.call_method1("fspath", (&value,))?;
            ballot::OptionValue::Text(path.extract()?)
        } else {
            let ty = value.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
            return Err(py_err(py, &ballot::surface::unusable_value(&name, &ty)));
        };
        check(py, o.set(&name, v))?;
    }
    Ok(o)
}

/// Connects to the backend `url` (None: the local default) and starts a session.
/// Every keyword is an option of the core's table (`ttl=`, `token=`, ...).
#[pyfunction]
#[pyo3(signature = (url=None, **options))]
fn connect(py: Python<'_>, url: Option<String>, options: Option<&Bound<'_, PyDict>>) -> PyResult<Client> {
    let o = self::options(py, options)?;
    let url = url.unwrap_or_else(ballot::default_backend_url);
    let inner = check(py, py.detach(move || blocking::Client::connect(&url, o)))?;
    let guard = ForkGuard::new();
    Ok(Client { inner: Owned::new(inner, guard), guard })
}

/// `connect()` for asyncio.
#[pyfunction]
#[pyo3(signature = (url=None, **options))]
fn connect_async<'py>(
    py: Python<'py>,
    url: Option<String>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let o = self::options(py, options)?;
    let url = url.unwrap_or_else(ballot::default_backend_url);
    crate::aio::future_into_py(py, async move {
        // The core's async connect does the work on the library runtime; the
        // blocking facade wraps the result so both APIs share one client type.
        let inner = async_check(ballot::Client::connect(&url, o).await.map(blocking::Client::from_async))?;
        let guard = ForkGuard::new();
        Ok(Client { inner: Owned::new(inner, guard), guard })
    })
}

/// Maps a core result inside a future (which runs without the GIL).
pub(crate) fn async_check<T>(r: ballot::Result<T>) -> PyResult<T> {
    r.map_err(|e| Python::attach(|py| py_err(py, &e)))
}

/// The backend used when none is given: the local backend in `$XDG_STATE_HOME/ballot` (`~/.local/state/ballot`), or `/var/lib/ballot` for root.
#[pyfunction]
fn default_backend_url() -> String {
    ballot::default_backend_url()
}

/// The core's table, spelt by Python's rules: `errors` as `(code, name, class
/// name, description)`, `events` as `(code, name)` (an `Event.kind` is the
/// name), `options` as `(name, type, summary)` (`connect`'s keywords). The error
/// classes are made from it, and the tests compare the stubs with it.
#[pyfunction]
fn _table(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let errors: Vec<_> = ballot::ErrorKind::ALL
        .iter()
        .map(|k| (k.code(), k.as_str(), convert::class_name(*k), k.description()))
        .collect();
    let events: Vec<_> = ballot::EventKind::ALL.iter().map(|k| (k.code(), k.as_str())).collect();
    let options: Vec<_> = ballot::OPTIONS.iter().map(|o| (o.name, o.ty.as_str(), o.summary)).collect();
    let table = PyDict::new(py);
    table.set_item("errors", errors)?;
    table.set_item("events", events)?;
    table.set_item("options", options)?;
    Ok(table)
}

/// One sample of `_metrics_snapshot`: labels as (name, value) pairs, the number
/// (a histogram's sum), and for a histogram its buckets (upper bound, cumulative
/// count; the last bound is infinity) and its count.
type MetricSample = (Vec<(&'static str, String)>, f64, Option<Vec<(f64, u64)>>, u64);

/// The core's metrics snapshot (`ballot::metrics::snapshot`) as plain data:
/// families as `(name, help, type, samples)`. `ballot.metrics` builds its
/// snapshot and its `prometheus_client` collector from it.
#[pyfunction]
fn _metrics_snapshot() -> Vec<(&'static str, &'static str, &'static str, Vec<MetricSample>)> {
    use ballot::metrics::SampleValue;
    ballot::metrics::snapshot()
        .families
        .into_iter()
        .map(|f| {
            let samples = f
                .samples
                .into_iter()
                .map(|s| match s.value {
                    SampleValue::Histogram(h) => {
                        let buckets = h.buckets.iter().map(|b| (b.le, b.count)).collect();
                        (s.labels, h.sum, Some(buckets), h.count)
                    }
                    SampleValue::Number(v) => (s.labels, v, None, 0),
                    _ => (s.labels, f64::NAN, None, 0),
                })
                .collect();
            (f.name, f.help, f.kind.as_str(), samples)
        })
        .collect()
}

/// Every metric family of ballot in this process in the Prometheus text format
/// 0.0.4 (`ballot::metrics::render_prometheus`); serve it with
/// `Content-Type: text/plain; version=0.0.4`.
#[pyfunction]
fn metrics_text() -> String {
    ballot::metrics::render_prometheus()
}

/// The logger's level for a record's level (`logging.DEBUG` is 10, ...; trace is 5).
fn python_level(level: ballot::logging::Level) -> u32 {
    use ballot::logging::Level;
    match level {
        Level::Error => 40,
        Level::Warn => 30,
        Level::Info => 20,
        Level::Debug => 10,
        Level::Trace => 5,
    }
}

/// Hands ballot's records to the `logging` logger `ballot`, on the library's log
/// thread, which takes the GIL for it. The logger decides what is shown (its
/// level, handlers, filters); the package gives it a `NullHandler`, as libraries
/// do, so an application that configures no logging sees nothing. Each record
/// carries `ballot_backend` and `ballot_election` attributes.
fn log_to_python(record: &ballot::logging::Record) {
    static LOGGER: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    if election::EXITING.load(std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    keep_thread_state();
    Python::attach(|py| {
        let r = (|| -> PyResult<()> {
            let logger = LOGGER.get_or_try_init(py, || {
                Ok::<_, PyErr>(py.import("logging")?.call_method1("getLogger", ("ballot",))?.unbind())
            })?;
            let logger = logger.bind(py);
            let level = python_level(record.level);
            if !logger.call_method1("isEnabledFor", (level,))?.is_truthy()? {
                return Ok(());
            }
            let extra = pyo3::types::PyDict::new(py);
            extra.set_item("ballot_backend", record.backend.as_deref())?;
            extra.set_item("ballot_election", record.election.as_deref())?;
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item("extra", extra)?;
            logger.call_method("log", (level, "%s", record.text()), Some(&kwargs))?;
            Ok(())
        })();
        if let Err(e) = r {
            e.write_unraisable(py, None);
        }
    })
}

thread_local! {
    /// The Python thread state this library thread keeps for its whole life, if any.
    static KEPT: std::cell::RefCell<Option<KeptThreadState>> = const { std::cell::RefCell::new(None) };
}

/// A library thread's own Python thread state, released (with the GIL taken for
/// it) when the thread ends.
struct KeptThreadState {
    gil: pyo3::ffi::PyGILState_STATE,
    state: *mut pyo3::ffi::PyThreadState,
}

impl Drop for KeptThreadState {
    fn drop(&mut self) {
        // Once the interpreter exits, taking the GIL from a library thread can end
        // the thread inside CPython or crash: the state is left to the process's end.
        // SAFETY: `Py_IsInitialized` may be called without the GIL.
        if election::EXITING.load(std::sync::atomic::Ordering::SeqCst) || unsafe { pyo3::ffi::Py_IsInitialized() } == 0
        {
            return;
        }
        // SAFETY: `state` is this thread's own state, detached by `PyEval_SaveThread`
        // in `keep_thread_state` and not attached since (every later `attach` on this
        // thread released it again). Restoring it takes the GIL; the release with the
        // matching `gil` deletes the state and gives the GIL back. Deleting happens
        // under the GIL, so no fork can run meanwhile.
        unsafe {
            pyo3::ffi::PyEval_RestoreThread(self.state);
            pyo3::ffi::PyGILState_Release(self.gil);
        }
    }
}

/// Gives the calling library thread (`ballot-log`, a client's `ballot-events`, the
/// asyncio bridge's threads) one Python thread state until it ends, and releases
/// the GIL again. Does nothing on a thread that has one, or once Python exits.
///
/// Without it each `Python::attach` of such a thread creates a thread state and
/// deletes it again, and the creation takes the interpreter's head lock without
/// the GIL. On CPython 3.11 a fork made by a Python thread while that lock is held
/// hangs the child: its after-fork code waits for the lock before it reinitialises
/// it. With a thread state kept, `attach` only takes the GIL; the one creation per
/// thread remains a (much narrower) window.
pub(crate) fn keep_thread_state() {
    if election::EXITING.load(std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        if kept.is_none() {
            // SAFETY: the interpreter is initialised (this module is loaded) and not
            // exiting (checked above), and a library thread holds neither the GIL
            // nor a thread state here: `PyGILState_Ensure` makes one and takes the
            // GIL, `PyEval_SaveThread` gives the GIL back and keeps the state (its
            // count stays 1, so later `attach`es reuse it).
            let (gil, state) = unsafe {
                let gil = pyo3::ffi::PyGILState_Ensure();
                (gil, pyo3::ffi::PyEval_SaveThread())
            };
            *kept = Some(KeptThreadState { gil, state });
        }
    });
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", ballot::VERSION)?;
    // Another global tracing subscriber in this process (a Rust host) keeps the
    // records: then they do not reach `logging`.
    let _ = ballot::logging::set_sink(
        Some(ballot::logging::Level::Debug),
        Some(std::sync::Arc::new(log_to_python) as ballot::logging::Sink),
    );
    let stop = wrap_pyfunction!(election::_at_exit, m)?;
    m.py().import("atexit")?.call_method1("register", (stop,))?;
    m.add_function(wrap_pyfunction!(connect, m)?)?;
    m.add_function(wrap_pyfunction!(connect_async, m)?)?;
    m.add_function(wrap_pyfunction!(default_backend_url, m)?)?;
    m.add_function(wrap_pyfunction!(_table, m)?)?;
    m.add_function(wrap_pyfunction!(_metrics_snapshot, m)?)?;
    m.add_function(wrap_pyfunction!(metrics_text, m)?)?;
    m.add_class::<Client>()?;
    m.add_class::<Election>()?;
    m.add_class::<Leader>()?;
    m.add_class::<Participant>()?;
    m.add_class::<Leadership>()?;
    m.add_class::<LeadershipContext>()?;
    m.add_class::<Event>()?;
    m.add_class::<Observer>()?;
    m.add_class::<AsyncObserver>()?;
    m.add_class::<AsyncLeadershipContext>()?;
    m.add_class::<Subscription>()?;
    Ok(())
}
