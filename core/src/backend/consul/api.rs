//! The few Consul HTTP API calls the backend needs: sessions, KV and transactions.
//!
//! Every call maps Consul's answers onto ballot's error kinds: transport failures
//! are `Connection` (or `Timeout`), 401/403 are `Auth`, anything else unexpected
//! is `Backend` with Consul's own message.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{Error, ErrorKind, Result};

/// How long a plain (non-blocking) request may take.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Plain requests of one client in flight at once. reqwest opens one HTTP/1.1
/// connection per request in flight, and the agent refuses connections beyond
/// `limits.http_max_conns_per_client` (200 by default) per client address: this
/// bound, the blocking queries' own budget (`watch.rs`) and the few session calls
/// stay well under it.
pub(super) const MAX_PLAIN_REQUESTS: usize = 32;

/// One KV entry as Consul returns it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct KvPair {
    pub(super) key: String,
    pub(super) create_index: u64,
    pub(super) modify_index: u64,
    pub(super) lock_index: u64,
    #[serde(default)]
    pub(super) flags: u64,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    session: Option<String>,
}

impl KvPair {
    /// The session holding the key, if any.
    pub(super) fn holder(&self) -> Option<&str> {
        self.session.as_deref().filter(|s| !s.is_empty())
    }

    /// The decoded value (Consul sends it base64-encoded; null means empty).
    pub(super) fn value(&self) -> Result<Vec<u8>> {
        match &self.value {
            None => Ok(Vec::new()),
            Some(v) => base64::engine::general_purpose::STANDARD.decode(v).map_err(|e| {
                Error::new(
                    ErrorKind::Backend,
                    format!("Consul sent a value for {:?} that is not base64: {e}", self.key),
                )
            }),
        }
    }
}

/// The answer to a transaction.
#[derive(Debug)]
pub(super) enum TxnOutcome {
    /// Every operation applied; the entries that the operations returned.
    Applied(Vec<KvPair>),
    /// Nothing applied; the index of each failed operation with Consul's reason.
    RolledBack(Vec<(usize, String)>),
}

/// A transaction operation on the KV store.
pub(super) fn op(verb: &str, key: &str) -> Value {
    json!({ "KV": { "Verb": verb, "Key": key } })
}

/// A transaction operation with an index (check-index, cas, delete-cas).
pub(super) fn op_index(verb: &str, key: &str, index: u64) -> Value {
    json!({ "KV": { "Verb": verb, "Key": key, "Index": index } })
}

/// A `set` transaction operation.
pub(super) fn op_set(key: &str, value: &[u8], flags: u64) -> Value {
    let v = base64::engine::general_purpose::STANDARD.encode(value);
    json!({ "KV": { "Verb": "set", "Key": key, "Value": v, "Flags": flags } })
}

/// A `check-session` transaction operation: it fails unless `session` holds `key`.
pub(super) fn op_check_session(key: &str, session: &str) -> Value {
    json!({ "KV": { "Verb": "check-session", "Key": key, "Session": session } })
}

/// A `lock` (with `session`) or `unlock` transaction operation.
pub(super) fn op_lock(verb: &str, key: &str, value: &[u8], flags: u64, session: &str) -> Value {
    let v = base64::engine::general_purpose::STANDARD.encode(value);
    json!({ "KV": { "Verb": verb, "Key": key, "Value": v, "Flags": flags, "Session": session } })
}

/// One key and its modify index, as the shared watch reads them (the values are
/// skipped, and the key borrows from the answer unless it has JSON escapes).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct KeyIndex<'a> {
    #[serde(borrow)]
    pub(super) key: std::borrow::Cow<'a, str>,
    pub(super) modify_index: u64,
}

/// A client of one Consul agent. Clones share the connection pool and the bound on
/// plain requests in flight.
#[derive(Clone)]
pub(super) struct Api {
    http: reqwest::Client,
    base: String,
    plain: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Api {
    /// Only the agent's address: the client's default headers hold the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("base", &self.base).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SessionCreated {
    #[serde(rename = "ID")]
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnReply {
    #[serde(default)]
    results: Option<Vec<TxnResult>>,
    #[serde(default)]
    errors: Option<Vec<TxnError>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnResult {
    #[serde(rename = "KV")]
    kv: Option<KvPair>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnError {
    op_index: usize,
    what: String,
}

/// Percent-encodes a KV key for the URL path; `/` separates path segments and
/// stays as it is.
pub(super) fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn transport_error(what: &str, e: reqwest::Error) -> Error {
    let kind = if e.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Connection };
    // reqwest's message names the URL, which never carries the token (it is a header),
    // but not why the request failed: that is in its sources (a refused connection,
    // a certificate that no trusted CA signed).
    let mut msg = format!("{what}: {e}");
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        msg.push_str(&format!(": {c}"));
        cause = c.source();
    }
    Error::new(kind, msg).with_source(e)
}

fn status_error(what: &str, status: StatusCode, body: &str) -> Error {
    let body = body.trim();
    let mut cut = body.len().min(300);
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    let body = &body[..cut];
    let auth = status == StatusCode::FORBIDDEN
        || status == StatusCode::UNAUTHORIZED
        || body.contains("Permission denied")
        || body.contains("ACL not found");
    // 413: a request above Consul's size limits (`txn_max_req_len`,
    // `kv_max_value_size`); sending it again cannot succeed.
    let kind = if auth {
        ErrorKind::Auth
    } else if status == StatusCode::PAYLOAD_TOO_LARGE {
        ErrorKind::InvalidArgument
    } else {
        ErrorKind::Backend
    };
    Error::new(kind, format!("{what}: Consul answered {status}: {body}"))
}

impl Api {
    /// A client for `base` (`http://h:p` or `https://h:p`). `token` goes into every
    /// request's `X-Consul-Token` header, marked sensitive so that it is never shown.
    pub(super) fn new(base: String, token: Option<&str>, builder: reqwest::ClientBuilder) -> Result<Api> {
        let mut headers = HeaderMap::new();
        if let Some(t) = token {
            let mut v = HeaderValue::from_str(t)
                .map_err(|_| Error::invalid("the Consul token contains characters not allowed in an HTTP header"))?;
            v.set_sensitive(true);
            headers.insert("X-Consul-Token", v);
        }
        let http = builder
            .default_headers(headers)
            .build()
            .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("cannot set up the HTTP client: {e}")))?;
        Ok(Api { http, base, plain: Arc::new(tokio::sync::Semaphore::new(MAX_PLAIN_REQUESTS)) })
    }

    /// One request. `bounded`: it waits for one of the `MAX_PLAIN_REQUESTS` slots
    /// first (blocking queries have their own budget; session calls are few and
    /// must not queue behind a burst of campaigns).
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &self,
        what: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
        timeout: Duration,
        bounded: bool,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>)> {
        // The semaphore is never closed; without a slot the request goes unbounded.
        let _slot = if bounded { self.plain.acquire().await.ok() } else { None };
        let mut req = self.http.request(method, format!("{}{}", self.base, path)).timeout(timeout);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        // reqwest's futures take about a kilobyte, and every future that awaits a
        // request would hold that much inline for as long as it lives, also while
        // it waits on something else: a client with 10,000 elections keeps 20,000
        // such waits. Boxed, the space exists only while a request is in flight.
        Box::pin(async move {
            let resp = req.send().await.map_err(|e| transport_error(what, e))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await.map_err(|e| transport_error(what, e))?;
            Ok((status, headers, Vec::from(body)))
        })
        .await
    }

    fn json<T: for<'de> Deserialize<'de>>(what: &str, body: &[u8]) -> Result<T> {
        serde_json::from_slice(body).map_err(|e| {
            Error::new(ErrorKind::Backend, format!("{what}: Consul's answer is not the expected JSON: {e}"))
        })
    }

    fn bool_reply(what: &str, status: StatusCode, body: &[u8]) -> Result<bool> {
        if !status.is_success() {
            return Err(status_error(what, status, &String::from_utf8_lossy(body)));
        }
        match String::from_utf8_lossy(body).trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(Error::new(ErrorKind::Backend, format!("{what}: unexpected answer {other:?}"))),
        }
    }

    /// Creates a session with `ttl` and `lock_delay` whose locks are released (not
    /// deleted) when it is invalidated, as `consul lock` does.
    pub(super) async fn session_create(&self, ttl: Duration, lock_delay: Duration) -> Result<String> {
        let what = "creating a Consul session";
        let body = json!({
            "Name": "ballot",
            "TTL": format!("{}ms", ttl.as_millis()),
            "LockDelay": format!("{}ms", lock_delay.as_millis()),
            "Behavior": "release",
            // No health checks: by default Consul ties a session to the node's
            // serfHealth check and invalidates it the moment that check fails, which
            // could let another candidate win (after lock_delay) long before our own
            // TTL-based deadline says so. Only the TTL may end the session.
            "Checks": [],
            "NodeChecks": [],
        });
        let body = serde_json::to_vec(&body).map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
        let (status, _, body) =
            self.call(what, Method::PUT, "/v1/session/create", &[], Some(body), REQUEST_TIMEOUT, false).await?;
        if !status.is_success() {
            return Err(status_error(what, status, &String::from_utf8_lossy(&body)));
        }
        Ok(Self::json::<SessionCreated>(what, &body)?.id)
    }

    /// Renews a session: `Ok(true)` when renewed, `Ok(false)` when Consul no longer
    /// knows it (404: invalidated).
    pub(super) async fn session_renew(&self, id: &str, timeout: Duration) -> Result<bool> {
        let what = "renewing the Consul session";
        let (status, _, body) =
            self.call(what, Method::PUT, &format!("/v1/session/renew/{id}"), &[], None, timeout, false).await?;
        match status {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(status_error(what, s, &String::from_utf8_lossy(&body))),
        }
    }

    /// Destroys a session, releasing its locks at once (no lock delay applies).
    pub(super) async fn session_destroy(&self, id: &str) -> Result<()> {
        let what = "destroying the Consul session";
        let (status, _, body) = self
            .call(what, Method::PUT, &format!("/v1/session/destroy/{id}"), &[], None, REQUEST_TIMEOUT, false)
            .await?;
        Self::bool_reply(what, status, &body).map(|_| ())
    }

    /// Reads one key. With `block = Some((index, wait))` this is a blocking query
    /// that returns when the key's index passes `index` or after about `wait`.
    /// Returns the entry (None if absent) and the `X-Consul-Index`.
    pub(super) async fn kv_get(&self, key: &str, block: Option<(u64, Duration)>) -> Result<(Option<KvPair>, u64)> {
        let (entries, index) = self.kv_read(key, false, block).await?;
        Ok((entries.into_iter().find(|e| e.key == key), index))
    }

    /// Reads every key under `prefix` (not blocking).
    pub(super) async fn kv_list(&self, prefix: &str) -> Result<(Vec<KvPair>, u64)> {
        self.kv_read(prefix, true, None).await
    }

    async fn kv_read(&self, key: &str, recurse: bool, block: Option<(u64, Duration)>) -> Result<(Vec<KvPair>, u64)> {
        let (body, index) = self.kv_read_raw(key, recurse, block).await?;
        match body {
            None => Ok((Vec::new(), index)),
            Some(b) => Ok((Self::json("reading the Consul KV store", &b)?, index)),
        }
    }

    /// A `?recurse` read of `prefix` for the shared watch (with `block`, a blocking
    /// query on the whole prefix), whose answer the caller reads chunk by chunk
    /// (`Response::chunk`), so that an answer of megabytes is never held whole.
    /// Returns the response (None: no key under `prefix`) and the `X-Consul-Index`.
    pub(super) async fn kv_list_streamed(
        &self,
        prefix: &str,
        block: Option<(u64, Duration)>,
    ) -> Result<(Option<reqwest::Response>, u64)> {
        let what = "reading the Consul KV store";
        let mut query = vec![("recurse", "true".to_string())];
        let mut timeout = REQUEST_TIMEOUT;
        if let Some((index, wait)) = block {
            query.push(("index", index.to_string()));
            query.push(("wait", format!("{}ms", wait.as_millis())));
            timeout += wait + wait / 16;
        }
        let req = self.http.get(format!("{}/v1/kv/{}", self.base, encode_key(prefix))).query(&query).timeout(timeout);
        let resp = Box::pin(req.send()).await.map_err(|e| transport_error(what, e))?;
        let index = consul_index(resp.headers());
        match resp.status() {
            StatusCode::NOT_FOUND => Ok((None, index)),
            s if s.is_success() => Ok((Some(resp), index)),
            s => {
                let body = resp.text().await.unwrap_or_default();
                Err(status_error(what, s, &body))
            }
        }
    }

    /// The body of a KV read (None: no such key) and its `X-Consul-Index`.
    async fn kv_read_raw(
        &self,
        key: &str,
        recurse: bool,
        block: Option<(u64, Duration)>,
    ) -> Result<(Option<Vec<u8>>, u64)> {
        let what = "reading the Consul KV store";
        let mut query = Vec::new();
        if recurse {
            query.push(("recurse", "true".to_string()));
        }
        let mut timeout = REQUEST_TIMEOUT;
        if let Some((index, wait)) = block {
            query.push(("index", index.to_string()));
            query.push(("wait", format!("{}ms", wait.as_millis())));
            // Consul adds up to wait/16 of jitter.
            timeout += wait + wait / 16;
        }
        let path = format!("/v1/kv/{}", encode_key(key));
        // A blocking query is counted by the watch budget that started it.
        let (status, headers, body) =
            self.call(what, Method::GET, &path, &query, None, timeout, block.is_none()).await?;
        let index = consul_index(&headers);
        match status {
            StatusCode::NOT_FOUND => Ok((None, index)),
            s if s.is_success() => Ok((Some(body), index)),
            s => Err(status_error(what, s, &String::from_utf8_lossy(&body))),
        }
    }

    /// Acquires `key` for `session` with `flags`, writing `value`. `Ok(false)` when
    /// another session holds it or a lock delay is in force.
    pub(super) async fn kv_acquire(&self, key: &str, session: &str, flags: u64, value: &[u8]) -> Result<bool> {
        let what = "acquiring a Consul lock";
        let query = [("acquire", session.to_string()), ("flags", flags.to_string())];
        let path = format!("/v1/kv/{}", encode_key(key));
        let (status, _, body) =
            self.call(what, Method::PUT, &path, &query, Some(value.to_vec()), REQUEST_TIMEOUT, true).await?;
        Self::bool_reply(what, status, &body)
    }

    /// Releases `key` held by `session`; the value stays. `Ok(false)` if `session`
    /// did not hold it.
    pub(super) async fn kv_release(&self, key: &str, session: &str, flags: u64) -> Result<bool> {
        let what = "releasing a Consul lock";
        let query = [("release", session.to_string()), ("flags", flags.to_string())];
        let path = format!("/v1/kv/{}", encode_key(key));
        // The release writes an empty value: a released key has no leader, and
        // `leader()` only reports held keys.
        let (status, _, body) = self.call(what, Method::PUT, &path, &query, None, REQUEST_TIMEOUT, true).await?;
        Self::bool_reply(what, status, &body)
    }

    /// Deletes `key`; with `cas`, only if its modify index is still `cas`.
    pub(super) async fn kv_delete(&self, key: &str, cas: Option<u64>) -> Result<bool> {
        let what = "deleting a Consul key";
        let query: Vec<(&str, String)> = cas.map(|c| vec![("cas", c.to_string())]).unwrap_or_default();
        let path = format!("/v1/kv/{}", encode_key(key));
        let (status, _, body) = self.call(what, Method::DELETE, &path, &query, None, REQUEST_TIMEOUT, true).await?;
        Self::bool_reply(what, status, &body)
    }

    /// Runs a transaction (all operations apply, or none).
    pub(super) async fn txn(&self, ops: Vec<Value>) -> Result<TxnOutcome> {
        let what = "running a Consul transaction";
        let body = serde_json::to_vec(&ops).map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
        let (status, _, body) = self.call(what, Method::PUT, "/v1/txn", &[], Some(body), REQUEST_TIMEOUT, true).await?;
        match status {
            s if s.is_success() => {
                let r: TxnReply = Self::json(what, &body)?;
                Ok(TxnOutcome::Applied(r.results.unwrap_or_default().into_iter().filter_map(|r| r.kv).collect()))
            }
            StatusCode::CONFLICT => {
                let r: TxnReply = Self::json(what, &body)?;
                let errors: Vec<(usize, String)> =
                    r.errors.unwrap_or_default().into_iter().map(|e| (e.op_index, e.what)).collect();
                // A permission failure inside a transaction is reported as a rolled
                // back operation; it is an Auth error, not a lost race.
                if let Some((_, w)) = errors.iter().find(|(_, w)| w.contains("Permission denied")) {
                    return Err(Error::new(ErrorKind::Auth, format!("{what}: {w}")));
                }
                Ok(TxnOutcome::RolledBack(errors))
            }
            s => Err(status_error(what, s, &String::from_utf8_lossy(&body))),
        }
    }
}

/// The `X-Consul-Index` of an answer (0 when missing).
fn consul_index(headers: &HeaderMap) -> u64 {
    headers.get("X-Consul-Index").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// The next index of a blocking-query loop, following Consul's rules: an index
/// that goes backwards resets the loop (the store was restored or the agent
/// changed), and the index is never below 1 (0 would not block).
pub(super) fn next_index(prev: u64, got: u64) -> u64 {
    if got < prev {
        1
    } else {
        got.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_encoded_except_slashes() {
        assert_eq!(encode_key("ns/svc/.lock"), "ns/svc/.lock");
        assert_eq!(encode_key("a b/?#%/ü"), "a%20b/%3F%23%25/%C3%BC");
    }

    #[test]
    fn blocking_index_rules() {
        assert_eq!(next_index(0, 0), 1, "never below 1");
        assert_eq!(next_index(10, 12), 12);
        assert_eq!(next_index(10, 10), 10);
        assert_eq!(next_index(10, 3), 1, "backwards: reset");
    }

    #[test]
    fn status_errors_map_kinds() {
        assert_eq!(status_error("x", StatusCode::FORBIDDEN, "ACL not found").kind(), ErrorKind::Auth);
        assert_eq!(status_error("x", StatusCode::INTERNAL_SERVER_ERROR, "Permission denied").kind(), ErrorKind::Auth);
        assert_eq!(status_error("x", StatusCode::INTERNAL_SERVER_ERROR, "boom").kind(), ErrorKind::Backend);
        let big = status_error("x", StatusCode::PAYLOAD_TOO_LARGE, "Request body too large, max size: 524288 bytes");
        assert_eq!(big.kind(), ErrorKind::InvalidArgument);
        assert!(big.to_string().contains("524288"), "{big}");
    }

    #[test]
    fn kv_pair_decodes() {
        let p: KvPair = serde_json::from_str(
            r#"{"LockIndex":1,"Key":"a/.lock","Flags":3304740253564472344,"Value":"aGk=","Session":"s","CreateIndex":3,"ModifyIndex":4}"#,
        )
        .unwrap();
        assert_eq!(p.flags, 0x2ddc_cbc0_58a5_0c18);
        assert_eq!(p.value().unwrap(), b"hi");
        assert_eq!(p.holder(), Some("s"));
        let p: KvPair = serde_json::from_str(
            r#"{"LockIndex":0,"Key":"k","Flags":0,"Value":null,"Session":"","CreateIndex":3,"ModifyIndex":4}"#,
        )
        .unwrap();
        assert_eq!((p.value().unwrap(), p.holder()), (Vec::new(), None));
    }
}
