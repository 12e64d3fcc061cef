//! Graceful handoff through ballot, with 1 to N waiting candidates.
//!
//! Every candidate has its own `Client` (its own session), all in this process, so
//! that both ends of a handoff are timed on one clock. A round: the leader calls
//! `resign()` at t0; the waiting candidate whose `campaign()` returns stamps t1;
//! the sample is t1 - t0. The old leader then campaigns again and goes to the back
//! of the queue, and the next round starts after `settle_ms`.

use std::time::{Duration, Instant};

use ballot::{Client, Election, Options};
use serde_json::json;
use tokio::sync::mpsc;

use crate::counters::{self, Counter};
use crate::{ms, within};

/// Arguments of `handoff`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Backend URL (file://, etcd://, zk://, consul://, postgres://).
    #[arg(long)]
    url: String,
    /// Election name.
    #[arg(long, default_value = "bench-handoff")]
    election: String,
    /// Timed handoffs.
    #[arg(long, default_value_t = 200)]
    rounds: usize,
    /// Untimed handoffs first.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Waiting candidates (besides the leader).
    #[arg(long, default_value_t = 1)]
    waiters: usize,
    /// Pause before each resign, so that the previous leader is queued again.
    #[arg(long, default_value_t = 20)]
    settle_ms: u64,
    /// A random extra pause of 0 to this many ms before each resign, so that the
    /// rounds do not fall into step with a polling period (`pooler=transaction`).
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Session TTL, seconds.
    #[arg(long, default_value_t = 10)]
    ttl_s: u64,
    /// Request counter to read around the timed rounds: etcd:HOST:PORT, zk:HOST:PORT, consul, or pg
    /// (every client then goes through the bench's counting proxy, one more loopback hop).
    #[arg(long)]
    count: Option<String>,
    /// Seconds for any single wait.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,
    /// Seconds for the timed rounds in all: past it, no new round starts and the
    /// rounds done so far are reported (`"truncated": true`).
    #[arg(long, default_value_t = 3600)]
    budget_s: u64,
}

type Won = (usize, Instant, Result<(), String>);

/// Starts `elections[i].campaign(..)` on a task that reports when it returns.
fn campaign(elections: &[Election], i: usize, tx: &mpsc::UnboundedSender<Won>) {
    let e = elections[i].clone();
    let tx = tx.clone();
    tokio::spawn(async move {
        let r = e.campaign(format!("candidate-{i}")).await;
        let _ = tx.send((i, Instant::now(), r.map(|_| ()).map_err(|e| e.to_string())));
    });
}

/// Runs the measurement and returns its JSON summary.
pub async fn run(a: Args) -> Result<serde_json::Value, String> {
    let n = a.waiters + 1;
    // The PostgreSQL counter is a proxy in front of the server: start it first.
    let (url, counter) = match a.count.as_deref() {
        Some("pg") => {
            let (url, count) = crate::pgwire::start(&a.url).await?;
            (url, Some(Counter::PgWire(count)))
        }
        Some(s) => (a.url.clone(), Some(Counter::parse(s, &a.election)?)),
        None => (a.url.clone(), None),
    };
    let opts = Options::default().with_ttl(Duration::from_secs(a.ttl_s));
    let t_connect = Instant::now();
    let mut clients: Vec<Client> = Vec::with_capacity(n);
    // Connect in batches of 50 so that 1000 sessions do not open at once.
    for start in (0..n).step_by(50) {
        let batch = (start..n.min(start + 50)).map(|_| Client::connect(&url, opts.clone()));
        for c in within(a.timeout_s, "connect", futures_util::future::join_all(batch)).await? {
            clients.push(c.map_err(|e| format!("connect: {e}"))?);
        }
    }
    eprintln!("handoff: {n} clients connected in {:.0} ms", ms(t_connect.elapsed()));
    let elections: Vec<Election> =
        clients.iter().map(|c| c.election(&a.election)).collect::<Result<_, _>>().map_err(|e| e.to_string())?;

    let (tx, mut rx) = mpsc::unbounded_channel::<Won>();
    campaign(&elections, 0, &tx);
    let (mut leader, _, r) = within(a.timeout_s, "first campaign", rx.recv()).await?.ok_or("channel closed")?;
    r?;
    let t_queue = Instant::now();
    for i in 1..n {
        campaign(&elections, i, &tx);
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(a.settle_ms)).await;
        }
    }
    // Let every waiting candidate register before the first resign.
    tokio::time::sleep(Duration::from_millis(a.settle_ms) + Duration::from_millis(2 * n as u64)).await;
    eprintln!("handoff: {} waiting candidates queued in {:.0} ms", n - 1, ms(t_queue.elapsed()));

    let idle = match &counter {
        Some(c) => counters::idle_rate(c, Duration::from_secs(2)).await?,
        None => 0.0,
    };

    let mut samples = Vec::with_capacity(a.rounds);
    let mut resign_ms = Vec::with_capacity(a.rounds);
    let mut c0 = (0.0, Instant::now());
    let mut renewals0 = 0.0;
    // xorshift64, seeded from the clock: the jitter needs no better randomness.
    let mut rng = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64))
        .unwrap_or(1)
        | 1;
    let total = a.warmup + a.rounds;
    let t_all = Instant::now();
    let mut truncated = false;
    for round in 0..total {
        if round > a.warmup && t_all.elapsed() > Duration::from_secs(a.budget_s) {
            eprintln!("handoff: budget of {} s spent after {} timed rounds", a.budget_s, samples.len());
            truncated = true;
            break;
        }
        if round == a.warmup {
            if let Some(c) = &counter {
                c0 = (c.read().await?, Instant::now());
                renewals0 = c.renewals().unwrap_or(0.0);
            }
        }
        let mut pause = Duration::from_millis(a.settle_ms);
        if a.jitter_ms > 0 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            pause += Duration::from_micros(rng % (a.jitter_ms * 1000));
        }
        tokio::time::sleep(pause).await;
        let t0 = Instant::now();
        within(a.timeout_s, "resign", elections[leader].resign()).await?.map_err(|e| format!("resign: {e}"))?;
        let t_resigned = Instant::now();
        let (next, t1, r) = within(a.timeout_s, "successor campaign", rx.recv()).await?.ok_or("channel closed")?;
        r.map_err(|e| format!("campaign of candidate {next}: {e}"))?;
        if next == leader {
            return Err(format!("round {round}: the resigned candidate {leader} won again"));
        }
        campaign(&elections, leader, &tx);
        leader = next;
        if round >= a.warmup {
            samples.push(ms(t1 - t0));
            resign_ms.push(ms(t_resigned - t0));
        }
        if (round + 1) % 50 == 0 {
            eprintln!("handoff: {}/{total} rounds, {:.1} s", round + 1, t_all.elapsed().as_secs_f64());
        }
    }
    let mut requests = serde_json::Value::Null;
    if let Some(c) = &counter {
        let c1 = c.read().await?;
        let secs = c0.1.elapsed().as_secs_f64();
        let raw = c1 - c0.0;
        let net = raw - idle * secs;
        requests = json!({
            "counter": c.describe(),
            "raw": raw,
            "idle_per_s": idle,
            "seconds": secs,
            "per_handoff": net / samples.len().max(1) as f64,
            "raw_per_handoff": raw / samples.len().max(1) as f64,
            "renewals": c.renewals().map(|r| r - renewals0),
        });
    }
    // Withdraw everyone; bounded, and errors here do not spoil the figures.
    for e in &elections {
        let _ = tokio::time::timeout(Duration::from_secs(5), e.resign()).await;
    }
    for c in &clients {
        let _ = tokio::time::timeout(Duration::from_secs(5), c.close()).await;
    }
    Ok(json!({
        "what": "ballot handoff",
        "url": a.url,
        "candidates": n,
        "rounds": samples.len(),
        "truncated": truncated,
        "settle_ms": a.settle_ms,
        "jitter_ms": a.jitter_ms,
        "samples_ms": samples,
        "resign_ms": resign_ms,
        "requests": requests,
    }))
}
