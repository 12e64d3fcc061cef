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

use std::time::Duration;

use ballot::blocking;
use pyo3::prelude::*;

use crate::convert::{check, py_err, timeout, ForkGuard, Owned};
use crate::election::{
    AsyncLeadershipContext, AsyncObserver, Election, Event, Leader, Leadership, LeadershipContext, Observer,
    Subscription,
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

/// Builds the core options from the keyword arguments (seconds as floats).
fn options(
    py: Python<'_>,
    ttl: Option<f64>,
    safety_margin: Option<f64>,
    connect_timeout: Option<f64>,
    auto_requeue: bool,
) -> PyResult<ballot::Options> {
    let mut o = ballot::Options::default().with_auto_requeue(auto_requeue);
    let secs = |what: &str, v: Option<f64>| -> PyResult<Option<Duration>> {
        match v {
            Some(s) if !s.is_finite() => {
                Err(convert::invalid(py, format!("{what} must be a finite number of seconds")))
            }
            _ => timeout(py, what, v),
        }
    };
    if let Some(t) = secs("ttl", ttl)? {
        o = o.with_ttl(t);
    }
    if let Some(m) = secs("safety_margin", safety_margin)? {
        o = o.with_safety_margin(m);
    }
    if let Some(c) = secs("connect_timeout", connect_timeout)? {
        o = o.with_connect_timeout(c);
    }
    Ok(o)
}

/// Connects to the backend `url` (None: the local default) and starts a session.
#[pyfunction]
#[pyo3(signature = (url=None, *, ttl=None, safety_margin=None, connect_timeout=None, auto_requeue=true))]
fn connect(
    py: Python<'_>,
    url: Option<String>,
    ttl: Option<f64>,
    safety_margin: Option<f64>,
    connect_timeout: Option<f64>,
    auto_requeue: bool,
) -> PyResult<Client> {
    let o = options(py, ttl, safety_margin, connect_timeout, auto_requeue)?;
    let url = url.unwrap_or_else(ballot::default_backend_url);
    let inner = check(py, py.detach(move || blocking::Client::connect(&url, o)))?;
    let guard = ForkGuard::new();
    Ok(Client { inner: Owned::new(inner, guard), guard })
}

/// `connect()` for asyncio.
#[pyfunction]
#[pyo3(signature = (url=None, *, ttl=None, safety_margin=None, connect_timeout=None, auto_requeue=true))]
fn connect_async<'py>(
    py: Python<'py>,
    url: Option<String>,
    ttl: Option<f64>,
    safety_margin: Option<f64>,
    connect_timeout: Option<f64>,
    auto_requeue: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let o = options(py, ttl, safety_margin, connect_timeout, auto_requeue)?;
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

/// `(kind name, class name)` for every core error kind (used by the tests).
#[pyfunction]
fn _error_kinds() -> Vec<(&'static str, &'static str)> {
    convert::kind_table()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", ballot::VERSION)?;
    let stop = wrap_pyfunction!(election::_at_exit, m)?;
    m.py().import("atexit")?.call_method1("register", (stop,))?;
    m.add_function(wrap_pyfunction!(connect, m)?)?;
    m.add_function(wrap_pyfunction!(connect_async, m)?)?;
    m.add_function(wrap_pyfunction!(default_backend_url, m)?)?;
    m.add_function(wrap_pyfunction!(_error_kinds, m)?)?;
    m.add_class::<Client>()?;
    m.add_class::<Election>()?;
    m.add_class::<Leader>()?;
    m.add_class::<Leadership>()?;
    m.add_class::<LeadershipContext>()?;
    m.add_class::<Event>()?;
    m.add_class::<Observer>()?;
    m.add_class::<AsyncObserver>()?;
    m.add_class::<AsyncLeadershipContext>()?;
    m.add_class::<Subscription>()?;
    Ok(())
}
