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

use futures_util::StreamExt;
use napi::bindgen_prelude::{BigInt, Buffer, Either3, Function, PromiseRaw};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{Env, Status};
use napi_derive::napi;
use tokio::sync::Mutex as AsyncMutex;

/// The Node spelling of an error kind (its stable `code`): `BALLOT_` and the
/// kind's name in capitals, as `BALLOT_NOT_LEADER`.
fn code_of(kind: ballot::ErrorKind) -> String {
    format!("BALLOT_{}", kind.as_str().to_ascii_uppercase())
}

/// The Node spelling of a name of the core table: lowerCamelCase, as
/// `leader_changed` -> `leaderChanged`.
fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, word) in name.split('_').enumerate() {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            if i == 0 {
                out.push(first);
            } else {
                out.extend(first.to_uppercase());
            }
            out.push_str(chars.as_str());
        }
    }
    out
}

/// The Node spelling of an option: lowerCamelCase, and `Ms` after a duration
/// (given in milliseconds), as `safety_margin` -> `safetyMarginMs`.
fn option_key(o: &ballot::OptionInfo) -> String {
    let key = camel(o.name);
    if o.ty == ballot::OptionType::Duration {
        key + "Ms"
    } else {
        key
    }
}

/// Converts a core error, keeping its kind as a `[CODE]` prefix that `index.js`
/// turns into the error's `code` property.
fn js_err(e: ballot::Error) -> napi::Error {
    napi::Error::new(Status::GenericFailure, format!("[{}] {}", code_of(e.kind()), e.message()))
}

/// The version of the native addon, which is the workspace version of ballot.
#[napi]
pub fn version() -> String {
    ballot::VERSION.to_string()
}

/// One row of the error or the event table as Node spells it.
#[napi(object)]
pub struct KindRow {
    /// The stable numeric code (the C `ballot_result` or `ballot_event_kind`).
    pub code: u32,
    /// The canonical name, as `not_leader` or `leader_changed`.
    pub name: String,
    /// The Node name: an error's code (`BALLOT_NOT_LEADER`), an event's name (`leaderChanged`).
    pub js_name: String,
}

/// One row of the option table as Node spells it.
#[napi(object)]
pub struct OptionRow {
    /// The canonical name, as `safety_margin`.
    pub name: String,
    /// `duration` (milliseconds in Node), `bool`, `text` or `path`.
    pub r#type: String,
    /// The key of `connect`'s options, as `safetyMarginMs`.
    pub js_name: String,
}

/// The core's table of errors, events and options, spelt by Node's rules;
/// `index.js` derives its codes, event names and option keys from it.
#[napi(object)]
pub struct Table {
    /// Every error kind, in code order.
    pub errors: Vec<KindRow>,
    /// Every event kind, in code order.
    pub events: Vec<KindRow>,
    /// Every option.
    pub options: Vec<OptionRow>,
}

/// The core's table (see `Table`).
#[napi]
pub fn table() -> Table {
    Table {
        errors: ballot::ErrorKind::ALL
            .iter()
            .map(|k| KindRow { code: k.code(), name: k.as_str().into(), js_name: code_of(*k) })
            .collect(),
        events: ballot::EventKind::ALL
            .iter()
            .map(|k| KindRow { code: k.code(), name: k.as_str().into(), js_name: camel(k.as_str()) })
            .collect(),
        options: ballot::OPTIONS
            .iter()
            .map(|o| OptionRow { name: o.name.into(), r#type: o.ty.as_str().into(), js_name: option_key(o) })
            .collect(),
    }
}

/// One label of a metric sample.
#[napi(object)]
pub struct MetricLabel {
    /// `backend`, `client`, `election` or `reason`.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// One bucket of a histogram sample: observations at most `le`, cumulative.
#[napi(object)]
pub struct MetricBucket {
    /// The upper bound in seconds; `Infinity` for the last bucket.
    pub le: f64,
    /// Observations at most `le`.
    pub count: f64,
}

/// One series of a metric family.
#[napi(object)]
pub struct MetricSample {
    /// The labels, in a fixed order.
    pub labels: Vec<MetricLabel>,
    /// A counter's or gauge's value; a histogram's sum.
    pub value: f64,
    /// A histogram's buckets (null for counters and gauges).
    pub buckets: Option<Vec<MetricBucket>>,
    /// A histogram's count (0 for counters and gauges).
    pub count: f64,
}

/// One metric family of ballot.
#[napi(object)]
pub struct MetricFamily {
    /// The name as exposed (a counter's ends in `_total`).
    pub name: String,
    /// One line of help.
    pub help: String,
    /// `counter`, `gauge` or `histogram`.
    pub r#type: String,
    /// The series now.
    pub samples: Vec<MetricSample>,
}

/// The core's metrics snapshot (`ballot::metrics::snapshot`): every family, in a
/// fixed order. `index.js` builds `metricsSnapshot()` and the prom-client metrics
/// from it.
#[napi]
pub fn metrics_snapshot() -> Vec<MetricFamily> {
    use ballot::metrics::SampleValue;
    ballot::metrics::snapshot()
        .families
        .into_iter()
        .map(|f| MetricFamily {
            name: f.name.into(),
            help: f.help.into(),
            r#type: f.kind.as_str().into(),
            samples: f
                .samples
                .into_iter()
                .map(|s| {
                    let labels = s.labels.into_iter().map(|(k, v)| MetricLabel { name: k.into(), value: v }).collect();
                    match s.value {
                        SampleValue::Histogram(h) => MetricSample {
                            labels,
                            value: h.sum,
                            buckets: Some(
                                h.buckets.iter().map(|b| MetricBucket { le: b.le, count: b.count as f64 }).collect(),
                            ),
                            count: h.count as f64,
                        },
                        SampleValue::Number(v) => MetricSample { labels, value: v, buckets: None, count: 0.0 },
                        _ => MetricSample { labels, value: f64::NAN, buckets: None, count: 0.0 },
                    }
                })
                .collect(),
        })
        .collect()
}

/// Every metric family of ballot in this process in the Prometheus text format
/// 0.0.4 (`ballot::metrics::render_prometheus`).
#[napi]
pub fn metrics_text() -> String {
    ballot::metrics::render_prometheus()
}

/// The backend used when none is given: the local backend in `$XDG_STATE_HOME/ballot` (`~/.local/state/ballot`), or `/var/lib/ballot` for root.
#[napi]
pub fn default_backend_url() -> String {
    ballot::default_backend_url()
}

/// One option for `connect`, by its canonical name (`index.js` maps the keys).
#[napi(object)]
pub struct OptionSetting {
    /// The option's canonical name, as `safety_margin`.
    pub name: String,
    /// A number (milliseconds, for a duration), a boolean or a string.
    pub value: Either3<f64, bool, String>,
}

/// Connects to the backend that `url` names and starts its session. The core
/// parses and checks every option.
///
/// Rejects with `BALLOT_INVALID_ARGUMENT` for a bad URL or option,
/// `BALLOT_CONNECTION`, `BALLOT_TIMEOUT` or `BALLOT_AUTH`.
#[napi]
pub async fn connect(url: String, options: Vec<OptionSetting>) -> napi::Result<Client> {
    let mut opts = ballot::Options::default();
    for o in options {
        let value = match o.value {
            Either3::A(ms) => ballot::OptionValue::Millis(ms),
            Either3::B(on) => ballot::OptionValue::Bool(on),
            Either3::C(text) => ballot::OptionValue::Text(text),
        };
        opts.set(&o.name, value).map_err(js_err)?;
    }
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

/// One candidate of an election, as `participants()` lists it.
#[napi(object)]
pub struct Participant {
    /// The candidate's key as the backend names it (for the leader, its `Leader.key`).
    pub key: String,
    /// The value the candidate campaigned with (the leader's latest value).
    pub value: Buffer,
    /// Whether it leads; only the first participant can.
    pub leader: bool,
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

    /// memory:// only: makes this client's session expire now, as a server
    /// expires a silent client's session (`ballot::memory::expire_session`):
    /// each handle that led gets `lost`, the next candidates lead, and a new
    /// session starts. Throws `BALLOT_INVALID_ARGUMENT` for another backend.
    #[napi]
    pub fn expire_session(&self) -> napi::Result<()> {
        ballot::memory::expire_session(&self.inner).map_err(js_err)
    }

    /// Resigns and withdraws everything, releases the session, and ends every
    /// event subscription of this client. Idempotent.
    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        self.inner.close().await.map_err(js_err)
    }
}

/// Cancels one `campaign` from JavaScript (an AbortSignal's abort): the core's
/// token.
#[napi]
#[derive(Default)]
pub struct CancelToken {
    inner: ballot::CancelToken,
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
        self.inner.cancel();
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
    /// the candidate is withdrawn (the core's `campaign_with`).
    #[napi(ts_return_type = "Promise<Leadership>")]
    pub fn campaign<'e>(
        &self,
        env: &'e Env,
        value: Buffer,
        timeout_ms: Option<f64>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<PromiseRaw<'e, Leadership>> {
        let timeout = timeout_ms.map(|ms| ballot::surface::duration_from_millis("timeoutMs", ms)).transpose();
        let timeout = timeout.map_err(js_err)?;
        let election = self.inner.clone();
        let value = value.to_vec();
        let cancel = cancel.map(|c| c.inner.clone());
        env.spawn_future(async move {
            let lead = election.campaign_with(&value, timeout, cancel.as_ref()).await.map_err(js_err)?;
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

    /// The candidates in queue order, the leader first (empty when nobody
    /// campaigns).
    #[napi]
    pub async fn participants(&self) -> napi::Result<Vec<Participant>> {
        let list = self.inner.participants().await.map_err(js_err)?;
        Ok(list.into_iter().map(|p| Participant { key: p.key, value: p.value.into(), leader: p.leader }).collect())
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
        Observer { stream: Arc::new(AsyncMutex::new(Some(self.inner.observe()))), stop: ballot::CancelToken::new() }
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

/// A log record as the native layer hands it to `index.js`.
#[napi(object)]
pub struct NativeLogRecord {
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// What happened, with the record's other fields as ` key=value`.
    pub message: String,
    /// The backend (the URL's scheme) of the client it concerns, if any.
    pub backend: Option<String>,
    /// The election it concerns, if any.
    pub election: Option<String>,
}

/// Sends ballot's log records at `level` and above to `callback`, on the event
/// loop; with no callback, prints them to stderr at the level `BALLOT_LOG` names
/// (no records when it is unset). The thread-safe function is weak: it never keeps
/// the process alive. A busy event loop makes records queue in napi, never an
/// election wait. Errors: `BALLOT_INVALID_ARGUMENT` for an unknown level name
/// (`level` or `BALLOT_LOG`).
#[napi(ts_args_type = "level: string | null, callback: ((record: NativeLogRecord) => void) | null")]
pub fn set_logger(level: Option<String>, callback: Option<Function<'_, NativeLogRecord, ()>>) -> napi::Result<()> {
    use ballot::logging::{self, Level, Record, Sink};
    let (level, sink): (Option<Level>, Option<Sink>) = match callback {
        Some(cb) => {
            let level = Level::parse(level.as_deref().unwrap_or("info")).map_err(js_err)?;
            let tsfn: ThreadsafeFunction<NativeLogRecord, (), NativeLogRecord, Status, false, true> =
                cb.build_threadsafe_function().weak::<true>().build()?;
            let sink = move |r: &Record| {
                let record = NativeLogRecord {
                    level: r.level.as_str().to_string(),
                    message: r.message.clone(),
                    backend: r.backend.clone(),
                    election: r.election.clone(),
                };
                let _ = tsfn.call(record, napi::threadsafe_function::ThreadsafeFunctionCallMode::NonBlocking);
            };
            (level, Some(Arc::new(sink)))
        }
        None => (logging::level_from_env().map_err(js_err)?, Some(logging::stderr_sink())),
    };
    logging::set_sink(level, sink).map_err(js_err)
}

/// Waits until the log records made so far have been handed to the logger (or
/// printed), at most `ms` milliseconds; `index.js` calls it at process exit.
#[napi]
pub fn flush_logs(ms: u32) -> bool {
    ballot::logging::flush(std::time::Duration::from_millis(u64::from(ms)))
}

/// An event as the native layer hands it to `index.js`.
#[napi(object)]
pub struct NativeEvent {
    /// The event's name, spelt as `table().events[].jsName`: `elected`,
    /// `suspended`, `reconnected`, `lost`, `resigned`, `leaderChanged`, `ended`,
    /// `error`, or a kind added to the core later (passed on without payload).
    pub kind: String,
    /// The new term, for `elected`.
    pub term: Option<BigInt>,
    /// Why leadership was lost, for `lost`: `session_lost`, `deleted`, `not_owner`.
    pub reason: Option<String>,
    /// The new leader for `leaderChanged` (absent: no leader).
    pub leader: Option<Leader>,
    /// The error, for `error`, as `[CODE] message`.
    pub error: Option<String>,
}

fn event_js(ev: ballot::Event) -> NativeEvent {
    let mut out = NativeEvent { kind: camel(ev.kind().as_str()), term: None, reason: None, leader: None, error: None };
    match ev {
        ballot::Event::Elected { term } => out.term = Some(BigInt::from(term)),
        ballot::Event::Lost { reason } => out.reason = Some(reason.as_str().to_string()),
        ballot::Event::LeaderChanged(l) => out.leader = l.map(leader_js),
        ballot::Event::Error(e) => out.error = Some(format!("[{}] {}", code_of(e.kind()), e.message())),
        // Kinds without payload, and kinds this addon does not know: passed on by
        // name (the core table's policy).
        _ => {}
    }
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
    stop: ballot::CancelToken,
}

#[napi]
impl Observer {
    /// The next leader change. Resolves `{ done: true }` once the election is ended
    /// or closed, or this observer is closed; rejects on other errors.
    #[napi]
    pub async fn next(&self) -> napi::Result<ObserveStep> {
        let stream = self.stream.clone();
        let stop = self.stop.clone();
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
            _ = stop.cancelled() => Ok(done),
            r = step => match r? {
                None => Ok(done),
                Some(l) => Ok(ObserveStep { done: false, leader: l.map(leader_js) }),
            },
        }
    }

    /// Stops the observer: a pending `next()` resolves `{ done: true }`.
    #[napi]
    pub fn close(&self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_spelt_by_the_node_rules() {
        assert_eq!(camel("leader_changed"), "leaderChanged");
        assert_eq!(camel("elected"), "elected");
        assert_eq!(code_of(ballot::ErrorKind::NotLeader), "BALLOT_NOT_LEADER");
        let keys: Vec<String> = ballot::OPTIONS.iter().map(option_key).collect();
        assert_eq!(
            keys,
            [
                "ttlMs",
                "safetyMarginMs",
                "connectTimeoutMs",
                "autoRequeue",
                "username",
                "password",
                "token",
                "tlsCa",
                "tlsCert",
                "tlsKey"
            ]
        );
    }
}
