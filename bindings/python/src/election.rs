//! `Election` and the small types it hands out: `Leader`, `Leadership`, `Event`,
//! the observers and the event subscription.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ballot::{__PerProcess as PerProcess, blocking, Error, ErrorKind};
use futures_util::StreamExt;
use pyo3::exceptions::{PyStopAsyncIteration, PyStopIteration};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::async_check;
use crate::convert::{check, interruptible, invalid, py_err, timeout, value_bytes, ForkGuard, Owned};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The leader of an election: `value` (bytes), `term` (the fencing token) and
/// `key` (the backend's name for the leader's record).
#[pyclass(module = "ballot", frozen, eq, hash)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Leader {
    value: Vec<u8>,
    #[pyo3(get)]
    term: u64,
    #[pyo3(get)]
    key: String,
}

impl From<ballot::Leader> for Leader {
    fn from(l: ballot::Leader) -> Leader {
        Leader { value: l.value, term: l.term, key: l.key }
    }
}

#[pymethods]
impl Leader {
    #[new]
    fn py_new(value: &Bound<'_, PyAny>, term: u64, key: String) -> PyResult<Leader> {
        Ok(Leader { value: value_bytes(value)?, term, key })
    }

    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.value)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let v = PyBytes::new(py, &self.value).repr()?;
        Ok(format!("ballot.Leader(value={v}, term={}, key={:?})", self.term, self.key))
    }
}

/// One candidate of an election, as `Election.participants()` lists it: `key`
/// (the backend's name for its record), `value` (bytes) and `leader` (whether
/// it leads; only the first participant can).
#[pyclass(module = "ballot", frozen, eq, hash)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Participant {
    #[pyo3(get)]
    key: String,
    value: Vec<u8>,
    #[pyo3(get)]
    leader: bool,
}

impl From<ballot::Participant> for Participant {
    fn from(p: ballot::Participant) -> Participant {
        Participant { key: p.key, value: p.value, leader: p.leader }
    }
}

#[pymethods]
impl Participant {
    #[new]
    fn py_new(key: String, value: &Bound<'_, PyAny>, leader: bool) -> PyResult<Participant> {
        Ok(Participant { key, value: value_bytes(value)?, leader })
    }

    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.value)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let v = PyBytes::new(py, &self.value).repr()?;
        let leader = if self.leader { "True" } else { "False" };
        Ok(format!("ballot.Participant(key={:?}, value={v}, leader={leader})", self.key))
    }
}

/// Proof of a won campaign: `term`, `key`, `value`, and `is_current()`.
#[pyclass(module = "ballot", frozen)]
pub(crate) struct Leadership {
    inner: Owned<ballot::Leadership>,
}

#[pymethods]
impl Leadership {
    /// The term (fencing token) of this leadership.
    #[getter]
    fn term(&self) -> u64 {
        self.inner.term()
    }

    /// The leader key.
    #[getter]
    fn key(&self) -> &str {
        self.inner.key()
    }

    /// The value campaigned with.
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.value())
    }

    /// Whether this leadership still holds right now (leader, same term, session
    /// healthy by the clock). False in a child made by `fork()`: the leadership is
    /// the parent's, and the child's copy of the handle is closed.
    fn is_current(&self) -> bool {
        self.inner.guard().is_own_process() && self.inner.is_current()
    }

    fn __repr__(&self) -> String {
        format!("ballot.Leadership(term={}, key={:?})", self.inner.term(), self.inner.key())
    }
}

/// One event of an election handle. `kind` is the core's name of the event kind:
/// `"elected"`, `"suspended"`, `"reconnected"`, `"lost"`, `"resigned"`,
/// `"leader_changed"`, `"ended"`, `"error"`, or a kind added to the core later
/// (passed on by its name, with no other field set). `term` is set for
/// `elected`, `reason` for `lost`, `leader` for `leader_changed` (None: no
/// leader), `error` for `error`.
#[pyclass(module = "ballot", frozen)]
pub(crate) struct Event {
    #[pyo3(get)]
    kind: &'static str,
    #[pyo3(get)]
    term: Option<u64>,
    #[pyo3(get)]
    reason: Option<&'static str>,
    #[pyo3(get)]
    leader: Option<Py<Leader>>,
    #[pyo3(get)]
    error: Option<Py<PyAny>>,
}

impl Event {
    fn new(py: Python<'_>, ev: &ballot::Event) -> PyResult<Event> {
        let mut e = Event { kind: ev.kind().as_str(), term: None, reason: None, leader: None, error: None };
        match ev {
            ballot::Event::Elected { term } => e.term = Some(*term),
            ballot::Event::Lost { reason } => e.reason = Some(reason.as_str()),
            ballot::Event::LeaderChanged(Some(l)) => e.leader = Some(Py::new(py, Leader::from(l.clone()))?),
            ballot::Event::Error(err) => e.error = Some(py_err(py, err).into_value(py).into_any()),
            // Kinds without payload, and kinds this module does not know: passed on
            // by name (the core table's policy).
            _ => {}
        }
        Ok(e)
    }
}

#[pymethods]
impl Event {
    fn __repr__(&self, py: Python<'_>) -> String {
        let mut s = format!("ballot.Event(kind={:?}", self.kind);
        if let Some(t) = self.term {
            s.push_str(&format!(", term={t}"));
        }
        if let Some(r) = self.reason {
            s.push_str(&format!(", reason={r:?}"));
        }
        if self.kind == ballot::EventKind::LeaderChanged.as_str() {
            let l = match &self.leader {
                Some(l) => l.borrow(py).__repr__(py).unwrap_or_else(|_| "?".into()),
                None => "None".into(),
            };
            s.push_str(&format!(", leader={l}"));
        }
        if let Some(err) = &self.error {
            let r = err.bind(py).repr().map(|r| r.to_string()).unwrap_or_else(|_| "?".into());
            s.push_str(&format!(", error={r}"));
        }
        s.push(')');
        s
    }
}

type SubSlot = Arc<Mutex<Option<blocking::Subscription>>>;
type WeakSlot = std::sync::Weak<Mutex<Option<blocking::Subscription>>>;

/// A handle on one election. Thread-safe; methods that wait release the GIL.
#[pyclass(module = "ballot", frozen)]
pub(crate) struct Election {
    inner: Owned<blocking::Election>,
    guard: ForkGuard,
    subs: Mutex<Vec<SubSlot>>,
}

impl Election {
    pub(crate) fn new(inner: blocking::Election, guard: ForkGuard) -> Election {
        Election { inner: Owned::new(inner, guard), guard, subs: Mutex::new(Vec::new()) }
    }

    fn do_campaign(&self, py: Python<'_>, value: &Bound<'_, PyAny>, secs: Option<f64>) -> PyResult<Leadership> {
        self.guard.check(py)?;
        let v = value_bytes(value)?;
        let t = timeout(py, "timeout", secs)?;
        let e = &self.inner;
        let inner = interruptible(
            py,
            |tok| e.campaign_with(&v, t, Some(tok)),
            // Ctrl-C arrived just as the campaign was won: honour the withdrawal.
            |_lead| {
                let _ = e.resign();
            },
        )?;
        Ok(Leadership { inner: Owned::new(inner, self.guard) })
    }

    fn do_resign_on_exit(&self, py: Python<'_>) -> PyResult<()> {
        // In a forked child the body's own exception (ClosedError) says it all;
        // exit must not raise over it.
        if self.guard.check(py).is_err() {
            return Ok(());
        }
        let e = self.inner.clone();
        match py.detach(move || match e.state() {
            ballot::State::Leader | ballot::State::Suspended | ballot::State::Campaigning => e.resign(),
            _ => Ok(()),
        }) {
            Ok(()) => Ok(()),
            // Lost, ended or closed meanwhile: there is nothing left to give up.
            Err(e) if matches!(e.kind(), ErrorKind::NotLeader | ErrorKind::Ended | ErrorKind::Closed) => Ok(()),
            Err(e) => Err(py_err(py, &e)),
        }
    }
}

/// Every subscription alive in this process, so that interpreter exit can stop
/// them all first. A forked child starts with an empty list: the parent's
/// subscriptions (and a lock one of its threads may have held at the fork) are
/// not the child's, and are leaked there as every inherited handle is.
static LIVE_SUBS: PerProcess<Mutex<Vec<WeakSlot>>> = PerProcess::new(|| Mutex::new(Vec::new()));

/// Set once Python runs its `atexit` handlers: callbacks are no longer called.
pub(crate) static EXITING: AtomicBool = AtomicBool::new(false);

/// Registered with `atexit`: stops every callback and lets asyncio bridge tasks
/// finish before the interpreter is torn down, because a library thread taking or
/// holding the GIL during finalization can crash the process. Waits without the
/// GIL for running callbacks to return.
#[pyfunction]
pub(crate) fn _at_exit(py: Python<'_>) {
    // Log records made before exit reach `logging` first (it shuts down after
    // this handler: it was imported, and registered its own, before us).
    py.detach(|| ballot::logging::flush(Duration::from_secs(1)));
    EXITING.store(true, Ordering::SeqCst);
    let subs: Vec<blocking::Subscription> =
        lock(LIVE_SUBS.get()).drain(..).filter_map(|weak| weak.upgrade().and_then(|slot| lock(&slot).take())).collect();
    py.detach(move || {
        // Waits for a log record being handed to Python: it needs the GIL, which
        // is free meanwhile.
        let _ = ballot::logging::set_sink(None, None);
        drop(subs);
        // Bounded: a task stuck elsewhere must not keep the process from exiting.
        crate::aio::wait_idle(Duration::from_secs(2));
    });
}

impl Drop for Election {
    fn drop(&mut self) {
        if !self.guard.is_own_process() {
            // A forked child: leak, as `Owned` does (the subscriptions belong to
            // the parent's event thread, which the child does not have).
            std::mem::forget(std::mem::take(&mut *lock(&self.subs)));
            return;
        }
        let subs: Vec<blocking::Subscription> =
            std::mem::take(&mut *lock(&self.subs)).into_iter().filter_map(|slot| lock(&slot).take()).collect();
        if subs.is_empty() {
            return;
        }
        // Dropping a subscription waits for a running callback, and that callback
        // may be waiting for the GIL that this thread holds: let it go meanwhile.
        Python::attach(|py| py.detach(move || drop(subs)));
    }
}

#[pymethods]
impl Election {
    /// The election name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// The state now: "idle", "campaigning", "leader", "suspended", "ended" or
    /// "closed". "closed" in a child made by `fork()`, where every call on this
    /// handle raises `ClosedError` (the leadership, if any, is the parent's).
    #[getter]
    fn state(&self) -> &'static str {
        if !self.guard.is_own_process() {
            return ballot::State::Closed.as_str();
        }
        self.inner.state().as_str()
    }

    /// Campaigns with `value` (bytes or str) and blocks until elected. Releases the
    /// GIL. `timeout` in seconds (None: forever) raises `TimeoutError`; Ctrl-C raises
    /// KeyboardInterrupt; both withdraw the candidate.
    #[pyo3(signature = (value, timeout=None))]
    fn campaign(&self, py: Python<'_>, value: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<Leadership> {
        self.do_campaign(py, value, timeout)
    }

    /// A context manager: campaigns on enter (returning the `Leadership`) and
    /// resigns on exit.
    #[pyo3(signature = (value, timeout=None))]
    fn leadership(slf: Bound<'_, Self>, value: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<LeadershipContext> {
        let py = slf.py();
        let v = value_bytes(value)?;
        convert_timeout_check(py, timeout)?;
        Ok(LeadershipContext { election: slf.unbind(), value: v, timeout })
    }

    /// `leadership()` for asyncio: `async with e.leadership_async(value) as lead:`
    /// campaigns on enter and resigns on exit.
    #[pyo3(signature = (value, timeout=None))]
    fn leadership_async(
        slf: Bound<'_, Self>,
        value: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<AsyncLeadershipContext> {
        let py = slf.py();
        let v = value_bytes(value)?;
        convert_timeout_check(py, timeout)?;
        Ok(AsyncLeadershipContext { election: slf.unbind(), value: v, timeout })
    }

    /// Replaces the leader's value; the term does not change. `NotLeaderError`
    /// unless leading.
    fn proclaim(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.guard.check(py)?;
        let v = value_bytes(value)?;
        let e = self.inner.clone();
        check(py, py.detach(move || e.proclaim(&v)))
    }

    /// Gives up leadership, or withdraws a waiting candidate.
    fn resign(&self, py: Python<'_>) -> PyResult<()> {
        self.guard.check(py)?;
        let e = self.inner.clone();
        check(py, py.detach(move || e.resign()))
    }

    /// The current leader as the backend records it, or None.
    fn leader(&self, py: Python<'_>) -> PyResult<Option<Leader>> {
        self.guard.check(py)?;
        let e = self.inner.clone();
        Ok(check(py, py.detach(move || e.leader()))?.map(Leader::from))
    }

    /// The candidates in queue order, the leader first (a list of
    /// `Participant`; empty when nobody campaigns). `EndedError` once this handle
    /// saw the election ended, `ClosedError` after `close()`.
    fn participants(&self, py: Python<'_>) -> PyResult<Vec<Participant>> {
        self.guard.check(py)?;
        let e = self.inner.clone();
        Ok(check(py, py.detach(move || e.participants()))?.into_iter().map(Participant::from).collect())
    }

    /// Ends the election for every participant (each gets `ended`).
    fn end(&self, py: Python<'_>) -> PyResult<()> {
        self.guard.check(py)?;
        let e = self.inner.clone();
        check(py, py.detach(move || e.end()))
    }

    /// Withdraws (resigning if leading) and makes later calls raise `ClosedError`.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.guard.check(py)?;
        let e = self.inner.clone();
        py.detach(move || e.close());
        Ok(())
    }

    /// An iterator over the leader: the current one first, then each change (None:
    /// no leader). Iteration stops when the election is ended or closed.
    fn observe(&self, py: Python<'_>) -> PyResult<Observer> {
        self.guard.check(py)?;
        Ok(Observer {
            inner: Owned::new(Mutex::new(self.inner.observe()), self.guard),
            guard: self.guard,
            terminal: Mutex::new(None),
        })
    }

    /// Calls `callback(event)` for every event of this handle, in order, on a
    /// library thread with the GIL taken. An exception raised by the callback is
    /// reported through `sys.unraisablehook` and the events go on. The callback
    /// stays registered until `Subscription.cancel()` (or the handle is gone).
    fn on_event(&self, py: Python<'_>, callback: Bound<'_, PyAny>) -> PyResult<Subscription> {
        self.guard.check(py)?;
        if !callback.is_callable() {
            return Err(invalid(py, "on_event needs a callable"));
        }
        let cb: Py<PyAny> = callback.unbind();
        let sub = check(
            py,
            self.inner.on_event(move |ev| {
                if EXITING.load(Ordering::SeqCst) {
                    return;
                }
                crate::keep_thread_state();
                Python::attach(|py| {
                    let r = Event::new(py, ev).and_then(|pyev| cb.call1(py, (pyev,)));
                    if let Err(err) = r {
                        err.write_unraisable(py, Some(cb.bind(py)));
                    }
                })
            }),
        )?;
        let slot: SubSlot = Arc::new(Mutex::new(Some(sub)));
        lock(&self.subs).push(slot.clone());
        {
            let mut live = lock(LIVE_SUBS.get());
            live.retain(|w| w.strong_count() > 0);
            live.push(Arc::downgrade(&slot));
        }
        Ok(Subscription { slot: Owned::new(slot, self.guard) })
    }

    /// `campaign()` for asyncio. Cancelling the task withdraws the candidate, and
    /// resigns if the campaign had won: a win that the awaiting code never
    /// received (the cancel crossed it, or the awaitable was dropped unawaited) is
    /// given back, in the background.
    #[pyo3(signature = (value, timeout=None))]
    fn campaign_async<'py>(
        &self,
        py: Python<'py>,
        value: &Bound<'py, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.guard.check(py)?;
        let v = value_bytes(value)?;
        let t = crate::convert::timeout(py, "timeout", timeout)?;
        let e = self.inner.as_async().clone();
        let guard = self.guard;
        let aw = crate::aio::future_into_awaitable(py, move |handover| async move {
            let lead = async_check(e.campaign_with(v, t, None).await)?;
            // Owned: a forked child that drops the undo must not close the parent's handle.
            let undo = Owned::new(e, guard);
            handover.ready(move || {
                if undo.guard().is_own_process() {
                    // Not leading any more (lost, ended, closed): nothing to give back.
                    crate::aio::spawn_detached(async move {
                        let _ = undo.resign().await;
                    });
                }
            });
            Ok(Leadership { inner: Owned::new(lead, guard) })
        })?;
        Ok(aw.into_any())
    }

    /// `proclaim()` for asyncio.
    fn proclaim_async<'py>(&self, py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.guard.check(py)?;
        let v = value_bytes(value)?;
        let e = self.inner.as_async().clone();
        crate::aio::future_into_py(py, async move { async_check(e.proclaim(v).await) })
    }

    /// `resign()` for asyncio.
    fn resign_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.guard.check(py)?;
        let e = self.inner.as_async().clone();
        crate::aio::future_into_py(py, async move { async_check(e.resign().await) })
    }

    /// `participants()` for asyncio.
    fn participants_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.guard.check(py)?;
        let e = self.inner.as_async().clone();
        crate::aio::future_into_py(py, async move {
            Ok(async_check(e.participants().await)?.into_iter().map(Participant::from).collect::<Vec<_>>())
        })
    }

    /// `leader()` for asyncio.
    fn leader_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.guard.check(py)?;
        let e = self.inner.as_async().clone();
        crate::aio::future_into_py(py, async move { Ok(async_check(e.leader().await)?.map(Leader::from)) })
    }

    /// `end()` for asyncio.
    fn end_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.guard.check(py)?;
        let e = self.inner.as_async().clone();
        crate::aio::future_into_py(py, async move { async_check(e.end().await) })
    }

    /// `close()` for asyncio.
    fn close_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.guard.check(py)?;
        let e = self.inner.as_async().clone();
        crate::aio::future_into_py(py, async move {
            e.close().await;
            Ok(())
        })
    }

    /// `observe()` for asyncio: an async iterator.
    fn observe_async(&self, py: Python<'_>) -> PyResult<AsyncObserver> {
        self.guard.check(py)?;
        Ok(AsyncObserver {
            stream: Owned::new(Arc::new(tokio::sync::Mutex::new(self.inner.as_async().observe())), self.guard),
            done: Arc::new(AtomicBool::new(false)),
            guard: self.guard,
        })
    }

    fn __repr__(&self) -> String {
        format!("ballot.Election(name={:?}, state={:?})", self.inner.name(), self.inner.state().as_str())
    }
}

fn convert_timeout_check(py: Python<'_>, secs: Option<f64>) -> PyResult<Option<Duration>> {
    timeout(py, "timeout", secs)
}

/// Returned by `Election.leadership(value)`: campaigns on enter, resigns on exit.
#[pyclass(module = "ballot", frozen)]
pub(crate) struct LeadershipContext {
    election: Py<Election>,
    value: Vec<u8>,
    timeout: Option<f64>,
}

#[pymethods]
impl LeadershipContext {
    fn __enter__(&self, py: Python<'_>) -> PyResult<Leadership> {
        let v = PyBytes::new(py, &self.value);
        self.election.get().do_campaign(py, v.as_any(), self.timeout)
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _ty: Option<&Bound<'_, PyAny>>,
        _value: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.election.get().do_resign_on_exit(py)?;
        Ok(false)
    }
}

/// Returned by `Election.leadership_async(value)`: campaigns on enter, resigns on
/// exit.
#[pyclass(module = "ballot", frozen)]
pub(crate) struct AsyncLeadershipContext {
    election: Py<Election>,
    value: Vec<u8>,
    timeout: Option<f64>,
}

#[pymethods]
impl AsyncLeadershipContext {
    fn __aenter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = PyBytes::new(py, &self.value);
        self.election.get().campaign_async(py, v.as_any(), self.timeout)
    }

    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _ty: Option<&Bound<'py, PyAny>>,
        _value: Option<&Bound<'py, PyAny>>,
        _tb: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let el = self.election.get();
        let own = el.guard.is_own_process();
        let e = el.inner.as_async().clone();
        crate::aio::future_into_py(py, async move {
            if own && matches!(e.state(), ballot::State::Leader | ballot::State::Suspended | ballot::State::Campaigning)
            {
                match e.resign().await {
                    // Lost, ended or closed meanwhile: there is nothing left to give up.
                    Err(err) if !matches!(err.kind(), ErrorKind::NotLeader | ErrorKind::Ended | ErrorKind::Closed) => {
                        return Err(Python::attach(|py| py_err(py, &err)));
                    }
                    _ => {}
                }
            }
            Ok(false)
        })
    }
}

/// A blocking iterator over leader changes. `wait(timeout)` is the same with a
/// timeout; it raises `EndedError`/`ClosedError` where iteration stops.
#[pyclass(module = "ballot", frozen)]
pub(crate) struct Observer {
    inner: Owned<Mutex<blocking::Observer>>,
    guard: ForkGuard,
    terminal: Mutex<Option<Error>>,
}

impl Observer {
    /// Ok(Some(item)), or Ok(None) at the end (the terminal error is kept).
    fn next_item(&self, py: Python<'_>, t: Option<Duration>) -> PyResult<Option<Option<Leader>>> {
        self.guard.check(py)?;
        if lock(&self.terminal).is_some() {
            return Ok(None);
        }
        let r = interruptible(
            py,
            |tok| match lock(&self.inner).next_with(t, Some(tok)) {
                Err(e) if matches!(e.kind(), ErrorKind::Ended | ErrorKind::Closed) => {
                    *lock(&self.terminal) = Some(e);
                    Ok(None)
                }
                Ok(None) => {
                    *lock(&self.terminal) = Some(Error::new(ErrorKind::Closed, "the observer has ended"));
                    Ok(None)
                }
                other => other,
            },
            |_| {},
        )?;
        Ok(r.map(|l| l.map(Leader::from)))
    }
}

#[pymethods]
impl Observer {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        // Not `Option<Leader>`: pyo3 would end the iteration at the first "no
        // leader" item, which is a value here, not the end.
        match self.next_item(py, None)? {
            Some(l) => Ok(l.into_pyobject(py)?.into_any().unbind()),
            None => Err(PyStopIteration::new_err(())),
        }
    }

    /// The next leader change, waiting at most `timeout` seconds (`TimeoutError`;
    /// the observer stays usable). At the end raises `EndedError` or `ClosedError`.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Leader>> {
        let t = convert_timeout_check(py, timeout)?;
        match self.next_item(py, t)? {
            Some(l) => Ok(l),
            None => {
                let e = lock(&self.terminal).clone().unwrap_or_else(|| Error::new(ErrorKind::Closed, "ended"));
                Err(py_err(py, &e))
            }
        }
    }
}

/// An async iterator over leader changes (`async for leader in e.observe_async()`).
#[pyclass(module = "ballot", frozen)]
pub(crate) struct AsyncObserver {
    stream: Owned<Arc<tokio::sync::Mutex<ballot::Observe>>>,
    done: Arc<AtomicBool>,
    guard: ForkGuard,
}

#[pymethods]
impl AsyncObserver {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.guard.check(py)?;
        let stream = Arc::clone(&self.stream);
        let done = self.done.clone();
        crate::aio::future_into_py(py, async move {
            if done.load(Ordering::SeqCst) {
                return Err(PyStopAsyncIteration::new_err(()));
            }
            match stream.lock().await.next().await {
                Some(Ok(l)) => Ok(l.map(Leader::from)),
                Some(Err(e)) if !matches!(e.kind(), ErrorKind::Ended | ErrorKind::Closed) => {
                    Err(Python::attach(|py| py_err(py, &e)))
                }
                _ => {
                    done.store(true, Ordering::SeqCst);
                    Err(PyStopAsyncIteration::new_err(()))
                }
            }
        })
    }
}

/// An `on_event` registration.
#[pyclass(module = "ballot", frozen)]
pub(crate) struct Subscription {
    slot: Owned<SubSlot>,
}

#[pymethods]
impl Subscription {
    /// Stops the callback. Outside the callback, waits until a running call has
    /// returned. Idempotent.
    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        self.slot.guard().check(py)?;
        let sub = lock(&self.slot).take();
        if let Some(sub) = sub {
            py.detach(move || sub.cancel());
        }
        Ok(())
    }

    /// Whether `cancel()` was called.
    #[getter]
    fn cancelled(&self) -> bool {
        lock(&self.slot).is_none()
    }
}
