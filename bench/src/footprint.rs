//! Footprint: the resident memory and OS threads of this process while it holds
//! many elections, read from `/proc/self/status`.
//!
//! Two shapes: one client leading `elections` elections (`--clients 1`), or
//! `clients` clients leading one election each (`--elections` = `--clients`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballot::{Client, Options};
use serde_json::json;

use crate::{ms, within};

/// Arguments of `footprint`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Backend URL.
    #[arg(long)]
    url: String,
    /// Clients (sessions).
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Elections in all, spread over the clients; each is won by its only candidate.
    #[arg(long, default_value_t = 10_000)]
    elections: usize,
    /// Campaigns in flight at once.
    #[arg(long, default_value_t = 64)]
    parallel: usize,
    /// Seconds for the whole run.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
}

/// VmRSS (KiB), VmHWM (KiB) and Threads of this process.
fn status() -> (u64, u64, u64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name)?.split_whitespace().next()?.parse::<u64>().ok()).unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"), field("Threads:"))
}

/// Runs the measurement and returns its JSON summary.
pub async fn run(a: Args) -> Result<serde_json::Value, String> {
    if a.clients == 0 {
        return Err("footprint: --clients must be at least 1".into());
    }
    let before = status();
    let t = Instant::now();
    let opts = Options::default().with_ttl(Duration::from_secs(10));
    let mut clients = Vec::with_capacity(a.clients);
    for _ in 0..a.clients {
        let c =
            within(a.timeout_s, "connect", Client::connect(&a.url, opts.clone())).await?.map_err(|e| e.to_string())?;
        clients.push(c);
    }
    let connected = status();
    let clients = Arc::new(clients);
    // `parallel` workers take the next election until all are led. Spawning one
    // task per election up front would measure the benchmark's own queue: 10,000
    // waiting campaign futures (about 1.8 KB each) raise the heap's high-water mark,
    // and the freed memory stays resident under the elections made meanwhile.
    let next = Arc::new(AtomicUsize::new(0));
    let led = Arc::new(AtomicUsize::new(0));
    let pid = std::process::id();
    let workers: Vec<_> = (0..a.parallel.clamp(1, a.elections.max(1)))
        .map(|_| {
            let (clients, next, led, total) = (clients.clone(), next.clone(), led.clone(), a.elections);
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return Ok::<_, String>(mine);
                    }
                    let c = &clients[i % clients.len()];
                    let e = c.election(&format!("bench-footprint-{pid}/e{i}")).map_err(|e| e.to_string())?;
                    e.campaign(b"x").await.map_err(|e| e.to_string())?;
                    mine.push(e);
                    let n = led.fetch_add(1, Ordering::Relaxed) + 1;
                    if n % 1000 == 0 {
                        eprintln!("footprint: {n} elections led");
                    }
                }
            })
        })
        .collect();
    let mut elections = Vec::with_capacity(a.elections);
    let deadline = Duration::from_secs(a.timeout_s);
    for worker in workers {
        let left = deadline.saturating_sub(t.elapsed());
        let mine = tokio::time::timeout(left, worker).await.map_err(|_| "footprint: out of time".to_string())?;
        elections.extend(mine.map_err(|e| e.to_string())??);
    }
    let took = ms(t.elapsed());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = status();
    for e in &elections {
        let _ = tokio::time::timeout(Duration::from_secs(5), e.resign()).await;
    }
    for c in clients.iter() {
        let _ = tokio::time::timeout(Duration::from_secs(5), c.close()).await;
    }
    Ok(json!({
        "what": "footprint",
        "url": a.url,
        "clients": a.clients,
        "elections": a.elections,
        "campaign_all_ms": took,
        "rss_kib_before": before.0,
        "rss_kib_connected": connected.0,
        "rss_kib_holding": held.0,
        "hwm_kib": held.1,
        "threads_before": before.2,
        "threads_holding": held.2,
    }))
}
