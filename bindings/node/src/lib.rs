//! The native half of the `ballot` npm package: a thin napi-rs layer over the Rust
//! core. It converts values and maps errors; `index.js` builds the EventEmitter and
//! async-iterator surface on top of it. Everything else lives in core.
//!
//! Threading: async methods return Promises whose futures run on napi-rs's tokio
//! runtime, and every core operation inside them runs on ballot's own runtime.
//! Events reach JavaScript through an unref'd thread-safe function called
//! non-blocking, so neither a slow listener nor a busy JavaScript thread ever blocks
//! the library.
//!
//! Errors: every error thrown here has a message of the form `[BALLOT_<KIND>] text`;
//! `index.js` turns it into a `BallotError` with a stable `code`.

#![deny(unsafe_op_in_unsafe_fn)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use napi::bindgen_prelude::{BigInt, Buffer, Function, PromiseRaw};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{Env, Status};
use napi_derive::napi;
use tokio::sync::{watch, Mutex as AsyncMutex};

/// The stable code of an error kind: `BALLOT_` and the kind's name in capitals.
fn code_of(kind: ballot::ErrorKind) -> String {
    format!("BALLOT_{}", kind.as_str().to_ascii_uppercase())
}

/// Converts a core error, keeping its kind as a `[CODE]` prefix that `index.js`
/// turns into the error's `code` property.
fn js_err(e: ballot::Error) -> napi::Error {
    napi::Error::new(Status::GenericFailure, format!("[{}] {}", code_of(e.kind()), e.message()))
}

fn invalid(message: impl std::fmt::Display) -> napi::Error {
    js_err(ballot::Error::new(ballot::ErrorKind::InvalidArgument, message.to_string()))
}

/// Converts a millisecond count from JavaScript into a duration, refusing
/// negative, fractional, non-finite and absurdly large values instead of rounding
/// them silently.
fn millis(what: &str, ms: f64) -> napi::Result<Duration> {
    if !ms.is_finite() || ms < 0.0 || ms.fract() != 0.0 || ms > 1e15 {
        return Err(invalid(format!("{what} must be a whole, non-negative number of milliseconds, got {ms}")));
    }
    Ok(Duration::from_millis(ms as u64))
}

/// The version of the native addon, which is the workspace version of ballot.
#[napi]
pub fn version() -> String {
    ballot::VERSION.to_string()
}

/// Every error code, one per core `ErrorKind`, in the core's declaration order.
#[napi]
pub fn error_codes() -> Vec<String> {
    ballot::ErrorKind::ALL.iter().map(|k| code_of(*k)).collect()
}

/// The backend used when none is given: the local backend in `$XDG_STATE_HOME/ballot` (`~/.local/state/ballot`), or `/var/lib/ballot` for root.
#[napi]
pub fn default_backend_url() -> String {
    ballot::default_backend_url()
}

/// Settings for `connect`. An option also given in the URL must have the same value there.
#[napi(object)]
#[derive(Default)]
pub struct ConnectOptions {
    /// Session TTL in milliseconds (default 10000).
    pub ttl_ms: Option<f64>,
    /// Safety margin in milliseconds (default TTL/5).
    pub safety_margin_ms: Option<f64>,
    /// How long connecting may take, in milliseconds (default 5000).
    pub connect_timeout_ms: Option<f64>,
    /// Whether a lost leadership campaigns again by itself (default true).
    pub auto_requeue: Option<bool>,
    /// User name for the backend (with `password`).
    pub username: Option<String>,
    /// Password for the backend (with `username`).
    pub password: Option<String>,
    /// A token for the backend (Consul ACL).
    pub token: Option<String>,
    /// PEM file of the CA certificates that verify the server.
    pub tls_ca: Option<String>,
    /// PEM file of the client certificate (mutual TLS).
    pub tls_cert: Option<String>,
    /// PEM file of the client key (mutual TLS).
    pub tls_key: Option<String>,
}

fn build_options(o: ConnectOptions) -> napi::Result<ballot::Options> {
    let mut opts = ballot::Options::default();
    if let Some(ms) = o.ttl_ms {
        opts = opts.with_ttl(millis("ttlMs", ms)?);
    }
    if let Some(ms) = o.safety_margin_ms {
        opts = opts.with_safety_margin(millis("safetyMarginMs", ms)?);
    }
    if let Some(ms) = o.connect_timeout_ms {
        opts = opts.with_connect_timeout(millis("connectTimeoutMs", ms)?);
    }
    if let Some(on) = o.auto_requeue {
        opts = opts.with_auto_requeue(on);
    }
    match (o.username, o.password, o.token) {
        (None, None, None) => {}
        (Some(user), Some(password), None) => {
            opts = opts.with_credentials(ballot::Credentials::Password { user, password })
        }
        (None, None, Some(token)) => opts = opts.with_credentials(ballot::Credentials::Token(token)),
        _ => return Err(invalid("give either username and password, or token, not a mix")),
    }
    if o.tls_ca.is_some() || o.tls_cert.is_some() || o.tls_key.is_some() {
        if o.tls_cert.is_some() != o.tls_key.is_some() {
            return Err(invalid("tlsCert and tlsKey go together"));
        }
        let tls = ballot::TlsOptions {
            ca: o.tls_ca.map(Into::into),
            cert: o.tls_cert.map(Into::into),
            key: o.tls_key.map(Into::into),
        };
        opts = opts.with_tls(tls);
    }
    Ok(opts)
}

/// Connects to the backend that `url` names and starts its session.
///
/// Rejects with `BALLOT_INVALID_ARGUMENT` for a bad URL or option,
/// `BALLOT_CONNECTION`, `BALLOT_TIMEOUT` or `BALLOT_AUTH`.
#[napi]
pub async fn connect(url: String, options: Option<ConnectOptions>) -> napi::Result<Client> {
    let opts = build_options(options.unwrap_or_default())?;
    let inner = ballot::Client::connect(&url, opts).await.map_err(js_err)?;
    Ok(Client { inner })
}

/// The leader of an election.
#[napi(object)]
pub struct Leader {
    /// The value the leader campaigned or proclaimed with.
    pub value: Buffer,
    /// The fencing token: strictly increasing over successive leaders.
    pub term: BigInt,
    /// The leader's key as the backend names it.
    pub key: String,
}

fn leader_js(l: ballot::Leader) -> Leader {
    Leader { value: l.value.into(), term: BigInt::from(l.term), key: l.key }
}

/// A won campaign.
#[napi(object)]
pub struct Leadership {
    /// The term (fencing token) of this leadership.
    pub term: BigInt,
    /// The leader key.
    pub key: String,
    /// The value campaigned with.
    pub value: Buffer,
}

/// A connection to one backend with one session, kept alive by the library.
#[napi]
pub struct Client {
    inner: ballot::Client,
}

#[napi]
impl Client {
    /// A handle on election `name`. Throws `BALLOT_INVALID_ARGUMENT` for a bad
    /// name and `BALLOT_CLOSED` after `close()`.
    #[napi]
    pub fn election(&self, name: String) -> napi::Result<Election> {
        let inner = self.inner.election(&name).map_err(js_err)?;
        Ok(Election { inner })
    }

    /// The backend URL with secrets redacted.
    #[napi(getter)]
    pub fn url(&self) -> String {
        self.inner.url().to_string()
    }

    /// Resigns and withdraws everything, releases the session, and ends every
    /// event subscription of this client. Idempotent.
    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        self.inner.close().await.map_err(js_err)
    }
}

/// Cancels one `campaign` from JavaScript (an AbortSignal's abort).
#[napi]
pub struct CancelToken {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for CancelToken {
    fn default() -> Self {
        CancelToken { tx: Arc::new(watch::channel(false).0) }
    }
}

#[napi]
impl CancelToken {
    /// A token that is not cancelled.
    #[napi(constructor)]
    pub fn new() -> Self {
        CancelToken::default()
    }

    /// Cancels the campaign that was given this token: it rejects with
    /// `BALLOT_CANCELLED` and the candidate is withdrawn.
    #[napi]
    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }
}

/// One participant in an election.
#[napi]
pub struct Election {
    inner: ballot::Election,
}

#[napi]
impl Election {
    /// The election name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.inner.name().to_string()
    }

    /// The state now: `idle`, `campaigning`, `leader`, `suspended`, `ended` or
    /// `closed`.
    #[napi(getter)]
    pub fn state(&self) -> String {
        self.inner.state().as_str().to_string()
    }

    /// Campaigns and resolves once leading. `timeoutMs` bounds the wait
    /// (`BALLOT_TIMEOUT`); `cancel` interrupts it (`BALLOT_CANCELLED`). Either way
    /// the candidate is withdrawn, because dropping the core's campaign future
    /// withdraws it.
    #[napi(ts_return_type = "Promise<Leadership>")]
    pub fn campaign<'e>(
        &self,
        env: &'e Env,
        value: Buffer,
        timeout_ms: Option<f64>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<PromiseRaw<'e, Leadership>> {
        let timeout = timeout_ms.map(|ms| millis("timeoutMs", ms)).transpose()?;
        let election = self.inner.clone();
        let value = value.to_vec();
        let mut cancelled = cancel.map(|c| c.tx.subscribe());
        env.spawn_future(async move {
            let won = async {
                match timeout {
                    Some(t) => match tokio::time::timeout(t, election.campaign(&value)).await {
                        Ok(r) => r,
                        Err(_) => Err(ballot::Error::new(
                            ballot::ErrorKind::Timeout,
                            format!("not elected within {} ms", t.as_millis()),
                        )),
                    },
                    None => election.campaign(&value).await,
                }
            };
            let aborted = async {
                match cancelled.as_mut() {
                    Some(rx) => {
                        let _ = rx.wait_for(|c| *c).await;
                    }
                    None => std::future::pending().await,
                }
            };
            let r = tokio::select! {
                biased;
                _ = aborted => Err(ballot::Error::new(ballot::ErrorKind::Cancelled, "the campaign was aborted")),
                r = won => r,
            };
            let lead = r.map_err(js_err)?;
            Ok(Leadership { term: BigInt::from(lead.term()), key: lead.key().to_string(), value: lead.value().into() })
        })
    }

    /// Replaces the leader's value; the term does not change.
    #[napi]
    pub async fn proclaim(&self, value: Buffer) -> napi::Result<()> {
        let value = value.to_vec();
        self.inner.proclaim(value).await.map_err(js_err)
    }

    /// Gives up leadership, or withdraws a waiting candidate.
    #[napi]
    pub async fn resign(&self) -> napi::Result<()> {
        self.inner.resign().await.map_err(js_err)
    }

    /// Reads the current leader (null when there is none).
    #[napi]
    pub async fn leader(&self) -> napi::Result<Option<Leader>> {
        Ok(self.inner.leader().await.map_err(js_err)?.map(leader_js))
    }

    /// Ends the election for every participant.
    #[napi]
    pub async fn end(&self) -> napi::Result<()> {
        self.inner.end().await.map_err(js_err)
    }

    /// Closes this handle: withdraws or resigns, and later calls fail with
    /// `BALLOT_CLOSED`. Idempotent.
    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        self.inner.close().await;
        Ok(())
    }

    /// Watches the leader: the current one first, then each change.
    #[napi]
    pub fn observe(&self) -> Observer {
        Observer {
            stream: Arc::new(AsyncMutex::new(Some(self.inner.observe()))),
            stop: Arc::new(watch::channel(false).0),
        }
    }

    /// Calls `callback` with every event of this handle, in order, until the
    /// election ends, the handle or client is closed, or the subscription is
    /// closed. The thread-safe function is weak (unref'd): it never keeps the
    /// process alive, and it is released when the subscription stops.
    #[napi(ts_args_type = "callback: (event: NativeEvent) => void")]
    pub fn subscribe(&self, callback: Function<'_, NativeEvent, ()>) -> napi::Result<Subscription> {
        let tsfn: ThreadsafeFunction<NativeEvent, (), NativeEvent, Status, false, true> =
            callback.build_threadsafe_function().weak::<true>().build()?;
        let mut events = self.inner.events();
        let task = napi::bindgen_prelude::spawn(async move {
            while let Some(ev) = events.next().await {
                // One event at a time, awaiting the JavaScript callback: while the
                // event loop is busy, events wait in the subscription's bounded
                // queue (merged by its rules), not in napi's unbounded one. A
                // closing environment refuses the call or drops it; stop then.
                if tsfn.call_async(event_js(ev)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Subscription { task: Some(task.abort_handle()) })
    }
}

/// An event as the native layer hands it to `index.js`.
#[napi(object)]
pub struct NativeEvent {
    /// `elected`, `suspended`, `reconnected`, `lost`, `resigned`, `leader`,
    /// `ended` or `error`.
    pub kind: String,
    /// The new term, for `elected`.
    pub term: Option<BigInt>,
    /// Why leadership was lost, for `lost`: `session_lost`, `deleted`, `not_owner`.
    pub reason: Option<String>,
    /// The new leader for `leader` (absent: no leader).
    pub leader: Option<Leader>,
    /// The error, for `error`, as `[CODE] message`.
    pub error: Option<String>,
}

fn event_js(ev: ballot::Event) -> NativeEvent {
    let mut out = NativeEvent { kind: String::new(), term: None, reason: None, leader: None, error: None };
    out.kind = match ev {
        ballot::Event::Elected { term } => {
            out.term = Some(BigInt::from(term));
            "elected"
        }
        ballot::Event::Suspended => "suspended",
        ballot::Event::Reconnected => "reconnected",
        ballot::Event::Lost { reason } => {
            out.reason = Some(reason.as_str().to_string());
            "lost"
        }
        ballot::Event::Resigned => "resigned",
        ballot::Event::LeaderChanged(l) => {
            out.leader = l.map(leader_js);
            "leader"
        }
        ballot::Event::Ended => "ended",
        ballot::Event::Error(e) => {
            out.error = Some(format!("[{}] {}", code_of(e.kind()), e.message()));
            "error"
        }
        // Event is non_exhaustive: a kind added to core later is reported, not dropped.
        other => {
            out.error = Some(format!("[BALLOT_INTERNAL] an event this addon does not know: {other:?}"));
            "error"
        }
    }
    .to_string();
    out
}

/// An event subscription; `close()` stops it and releases the callback.
#[napi]
pub struct Subscription {
    task: Option<tokio::task::AbortHandle>,
}

#[napi]
impl Subscription {
    /// Stops delivering events and releases the thread-safe function. Idempotent.
    #[napi]
    pub fn close(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// One step of an observer.
#[napi(object)]
pub struct ObserveStep {
    /// True once the stream is over (the election ended or was closed).
    pub done: bool,
    /// The leader after the change (absent: no leader).
    pub leader: Option<Leader>,
}

/// A stream of leader changes.
#[napi]
pub struct Observer {
    stream: Arc<AsyncMutex<Option<ballot::Observe>>>,
    stop: Arc<watch::Sender<bool>>,
}

#[napi]
impl Observer {
    /// The next leader change. Resolves `{ done: true }` once the election is ended
    /// or closed, or this observer is closed; rejects on other errors.
    #[napi]
    pub async fn next(&self) -> napi::Result<ObserveStep> {
        let stream = self.stream.clone();
        let mut stop = self.stop.subscribe();
        let done = ObserveStep { done: true, leader: None };
        let step = async move {
            let mut guard = stream.lock().await;
            let Some(s) = guard.as_mut() else { return Ok(None) };
            match s.next().await {
                None => {
                    *guard = None;
                    Ok(None)
                }
                Some(Ok(l)) => Ok(Some(l)),
                Some(Err(e)) if matches!(e.kind(), ballot::ErrorKind::Ended | ballot::ErrorKind::Closed) => {
                    *guard = None;
                    Ok(None)
                }
                Some(Err(e)) => Err(js_err(e)),
            }
        };
        tokio::select! {
            _ = stop.wait_for(|s| *s) => Ok(done),
            r = step => match r? {
                None => Ok(done),
                Some(l) => Ok(ObserveStep { done: false, leader: l.map(leader_js) }),
            },
        }
    }

    /// Stops the observer: a pending `next()` resolves `{ done: true }`.
    #[napi]
    pub fn close(&self) {
        self.stop.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_prefixed() {
        let mut codes = error_codes();
        assert_eq!(codes.len(), ballot::ErrorKind::ALL.len());
        assert!(codes.iter().all(|c| c.starts_with("BALLOT_")));
        assert!(codes.contains(&"BALLOT_NOT_LEADER".to_string()));
        assert!(codes.contains(&"BALLOT_CANCELLED".to_string()));
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), ballot::ErrorKind::ALL.len());
    }

    #[test]
    fn millis_refuses_what_it_cannot_represent() {
        assert_eq!(millis("x", 1500.0).ok(), Some(Duration::from_millis(1500)));
        for bad in [-1.0, 0.5, f64::NAN, f64::INFINITY, 1e16] {
            assert!(millis("x", bad).is_err(), "{bad} accepted");
        }
    }
}
