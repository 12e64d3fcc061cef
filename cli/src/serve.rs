//! `--metrics-addr`: a small HTTP/1.1 responder for Prometheus (`GET /metrics`) and
//! health checks (`GET /healthz`), on the command's own runtime. One request per
//! connection, answered and closed; no web framework.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ballot::Election;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{exit, Fail};

/// The longest request head read, and how long a client may take to send it.
const MAX_HEAD: usize = 8 * 1024;
const READ_LIMIT: Duration = Duration::from_secs(5);

/// How long the server waits after a failed `accept` before it tries again: the
/// cause (out of descriptors, out of memory) outlasts an immediate retry, and
/// retrying at once would spin a core while the election needs it.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Connections this process's server could not accept, served as
/// `ballot_metrics_accept_errors_total`: a scrape that finds it rising says the
/// command is short of descriptors.
static ACCEPT_ERRORS: AtomicU64 = AtomicU64::new(0);

/// The exposition of `/metrics`: the library's series, then the server's own.
fn exposition() -> String {
    let mut text = ballot::metrics::render_prometheus();
    text.push_str(
        "# HELP ballot_metrics_accept_errors_total Connections that the --metrics-addr server could not accept \
         (out of descriptors or memory); it retries every 100 ms.\n\
         # TYPE ballot_metrics_accept_errors_total counter\n",
    );
    text.push_str(&format!("ballot_metrics_accept_errors_total {}\n", ACCEPT_ERRORS.load(Ordering::Relaxed)));
    text
}

/// The election handle `/healthz` reports on; `run --requeue` replaces it with
/// each new campaign's handle. Empty before the first one: unhealthy. Without
/// `--metrics-addr` it keeps nothing, so that no clone outlives the command's own
/// handle (dropping the last one closes it).
#[derive(Clone, Default)]
pub(crate) struct HealthSlot(Option<Arc<Mutex<Option<Election>>>>);

impl HealthSlot {
    /// A slot that keeps the handle, for a server to read.
    pub(crate) fn serving() -> HealthSlot {
        HealthSlot(Some(Arc::default()))
    }

    pub(crate) fn set(&self, e: &Election) {
        if let Some(slot) = &self.0 {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
        }
    }

    fn check(&self) -> (bool, String) {
        let Some(slot) = &self.0 else { return (false, "not serving".into()) };
        match &*slot.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => {
                let h = e.health_check();
                (h.ok, h.reason)
            }
            None => (false, "not connected yet".into()),
        }
    }
}

/// clap's parser of `--metrics-addr`: `HOST:PORT` that resolves (a name, an IPv4
/// address, or `[IPv6]`), kept as given.
pub(crate) fn parse_addr(s: &str) -> Result<String, String> {
    resolve(s).map(|_| s.to_string())
}

fn resolve(s: &str) -> Result<SocketAddr, String> {
    let usage = "expected HOST:PORT, such as 127.0.0.1:9464, [::1]:9464 or localhost:9464";
    let Some((host, port)) = s.rsplit_once(':') else { return Err(format!("{s:?}: {usage}")) };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("{s:?}: {usage}"));
    }
    match s.to_socket_addrs() {
        Ok(mut addrs) => addrs.next().ok_or_else(|| format!("{s:?}: the host has no address")),
        Err(e) => Err(format!("{s:?}: {usage} ({e})")),
    }
}

/// Listens on `addr` and serves from a task of the current runtime until the
/// process exits.
///
/// # Errors
///
/// Exit code 2 for an address that does not parse, 1 when it cannot be listened on.
pub(crate) async fn start(addr: &str, slot: HealthSlot) -> Result<(), Fail> {
    let sock = resolve(addr).map_err(|m| Fail::new(exit::USAGE, format!("invalid_argument: --metrics-addr {m}")))?;
    let listener = TcpListener::bind(sock)
        .await
        .map_err(|e| Fail::new(exit::ERROR, format!("connection: --metrics-addr {addr}: cannot listen: {e}")))?;
    let bound = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| addr.to_string());
    eprintln!("ballot: serving /metrics and /healthz on http://{bound}");
    tokio::spawn(async move {
        // Whether the last accept failed: the first failure of a run is reported
        // on stderr, the rest only counted.
        let mut failing = false;
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => {
                    if std::mem::take(&mut failing) {
                        eprintln!("ballot: --metrics-addr accepts connections again");
                    }
                    stream
                }
                Err(e) => {
                    ACCEPT_ERRORS.fetch_add(1, Ordering::Relaxed);
                    if !std::mem::replace(&mut failing, true) {
                        eprintln!("ballot: --metrics-addr cannot accept a connection ({e}); retrying every 100 ms");
                    }
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            };
            let slot = slot.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(READ_LIMIT, answer(stream, &slot)).await;
            });
        }
    });
    Ok(())
}

async fn answer(mut stream: TcpStream, slot: &HealthSlot) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HEAD {
            return respond(&mut stream, "431 Request Header Fields Too Large", "text/plain", "request too large\n")
                .await;
        }
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    // A query string does not change the answer (Prometheus may add one).
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => {
            let text = exposition();
            respond(&mut stream, "200 OK", "text/plain; version=0.0.4; charset=utf-8", &text).await
        }
        ("GET", "/healthz") => {
            let (ok, reason) = slot.check();
            let status = if ok { "200 OK" } else { "503 Service Unavailable" };
            respond(&mut stream, status, "text/plain; charset=utf-8", &format!("{reason}\n")).await
        }
        (_, "/metrics" | "/healthz") => {
            respond(&mut stream, "405 Method Not Allowed", "text/plain", "only GET is served\n").await
        }
        _ => respond(&mut stream, "404 Not Found", "text/plain", "not found: /metrics and /healthz are served\n").await,
    }
}

async fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
