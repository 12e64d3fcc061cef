//! Server-side request counters, read before and after a measurement.
//!
//! - etcd: the sum of `grpc_server_msg_received_total` on `/metrics` (every gRPC
//!   request message, stream messages such as lease keepalives included);
//! - ZooKeeper: `zk_packets_received` of the `mntr` four-letter word (pings
//!   included);
//! - Consul: ballot's own in-process count of acquire attempts on the lock key
//!   (`ballot::__consul_acquire_attempts`), since Consul 1.8's HTTP metrics are
//!   interval samples rather than counters;
//! - PostgreSQL: the statements ballot's clients send, counted on the wire by the
//!   bench's proxy (`pgwire.rs`: why not the server's statistics), less session
//!   renewals, which are counted apart.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where a counter is read.
#[derive(Debug, Clone)]
pub enum Counter {
    /// etcd `/metrics` at this `host:port`.
    Etcd(String),
    /// ZooKeeper `mntr` at this `host:port`.
    Zk(String),
    /// ballot's Consul acquire attempts for this election key.
    ConsulAttempts(String),
    /// Statements through the bench's PostgreSQL proxy, less renewals.
    PgWire(Arc<crate::pgwire::Counts>),
}

impl Counter {
    /// Parses `etcd:HOST:PORT`, `zk:HOST:PORT` or `consul` (the election key is
    /// `election`). `pg` is set up by the caller, which starts the proxy.
    pub fn parse(spec: &str, election: &str) -> Result<Counter, String> {
        match spec.split_once(':') {
            Some(("etcd", a)) => Ok(Counter::Etcd(a.to_string())),
            Some(("zk", a)) => Ok(Counter::Zk(a.to_string())),
            None if spec == "consul" => Ok(Counter::ConsulAttempts(election.to_string())),
            _ => Err(format!("unknown counter {spec:?} (etcd:HOST:PORT, zk:HOST:PORT, consul or pg)")),
        }
    }

    /// Whether the counter also moves while nothing happens (keepalives, pings), so
    /// that an idle rate has to be subtracted.
    pub fn has_idle_traffic(&self) -> bool {
        !matches!(self, Counter::ConsulAttempts(_))
    }

    /// A short description for the report.
    pub fn describe(&self) -> &'static str {
        match self {
            Counter::Etcd(_) => "etcd grpc_server_msg_received_total (all methods)",
            Counter::Zk(_) => "ZooKeeper zk_packets_received (mntr)",
            Counter::ConsulAttempts(_) => "ballot Consul acquire attempts on the lock key",
            Counter::PgWire(_) => "PostgreSQL statements sent but session renewals (counted by the bench's proxy)",
        }
    }

    /// Reads the counter now.
    pub async fn read(&self) -> Result<f64, String> {
        match self {
            Counter::Etcd(a) => {
                let body = crate::within(10, "etcd /metrics", async {
                    reqwest::get(format!("http://{a}/metrics")).await?.text().await
                })
                .await?
                .map_err(|e| format!("etcd /metrics: {e}"))?;
                Ok(body
                    .lines()
                    .filter(|l| l.starts_with("grpc_server_msg_received_total"))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum())
            }
            Counter::Zk(a) => {
                let text = crate::within(10, "zk mntr", async {
                    let mut s = tokio::net::TcpStream::connect(a.as_str()).await?;
                    s.write_all(b"mntr").await?;
                    let mut out = String::new();
                    s.read_to_string(&mut out).await?;
                    Ok::<_, std::io::Error>(out)
                })
                .await?
                .map_err(|e| format!("zk mntr: {e}"))?;
                text.lines()
                    .find_map(|l| l.strip_prefix("zk_packets_received")?.trim().parse::<f64>().ok())
                    .ok_or_else(|| "zk mntr: no zk_packets_received".to_string())
            }
            Counter::ConsulAttempts(k) => Ok(ballot::__consul_acquire_attempts(k) as f64),
            Counter::PgWire(c) => {
                Ok((c.statements.load(Ordering::Relaxed) - c.renewals.load(Ordering::Relaxed)) as f64)
            }
        }
    }
}

impl Counter {
    /// Session renewals so far, where they are counted apart (PostgreSQL).
    pub fn renewals(&self) -> Option<f64> {
        match self {
            Counter::PgWire(c) => Some(c.renewals.load(Ordering::Relaxed) as f64),
            _ => None,
        }
    }
}

/// Rate of a counter while nothing but background traffic happens, per second,
/// over `window`.
pub async fn idle_rate(c: &Counter, window: Duration) -> Result<f64, String> {
    if !c.has_idle_traffic() {
        return Ok(0.0);
    }
    let a = c.read().await?;
    let t = std::time::Instant::now();
    tokio::time::sleep(window).await;
    let b = c.read().await?;
    Ok((b - a) / t.elapsed().as_secs_f64())
}
