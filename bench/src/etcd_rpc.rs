//! Peer: graceful handoff through etcd's server-side Election RPC (the
//! `v3electionpb.Election` service, driven with the `etcd-client` crate).
//!
//! Two clients with a lease each, in this process. The leader calls `Resign` with
//! its leader key at t0; the other client's pending `Campaign` returns at t1. The
//! roles then swap.

use std::time::{Duration, Instant};

use etcd_client::{Client, LeaderKey, ResignOptions};
use serde_json::json;

use crate::{ms, within};

/// Arguments of `etcd-rpc`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// HOST:PORT of etcd.
    #[arg(long)]
    addr: String,
    /// Election name.
    #[arg(long, default_value = "bench-rpc")]
    election: String,
    /// Timed handoffs.
    #[arg(long, default_value_t = 200)]
    rounds: usize,
    /// Untimed handoffs first.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Pause before each resign, so that the other campaign is pending.
    #[arg(long, default_value_t = 20)]
    settle_ms: u64,
    /// Seconds for any single wait.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,
}

type Pending = tokio::task::JoinHandle<Result<(LeaderKey, Instant), String>>;

/// Starts a Campaign RPC with `lease` on its own task.
fn campaign(client: &Client, name: &str, lease: i64, value: &str) -> Pending {
    let mut c = client.clone();
    let (name, value) = (name.to_string(), value.to_string());
    tokio::spawn(async move {
        let r = c.campaign(name, value, lease).await.map_err(|e| e.to_string())?;
        let t = Instant::now();
        Ok((r.leader().cloned().ok_or("Campaign answered without a leader key")?, t))
    })
}

/// Runs the measurement and returns its JSON summary.
pub async fn run(a: Args) -> Result<serde_json::Value, String> {
    let ep = [format!("http://{}", a.addr)];
    let mut clients = Vec::new();
    let mut leases = Vec::new();
    for _ in 0..2 {
        let mut c = within(a.timeout_s, "connect", Client::connect(&ep, None)).await?.map_err(|e| e.to_string())?;
        // Long enough for the whole run; revoked at the end.
        let l = within(a.timeout_s, "lease", c.lease_grant(3600, None)).await?.map_err(|e| e.to_string())?;
        leases.push(l.id());
        clients.push(c);
    }
    let (mut key, _) = within(a.timeout_s, "first campaign", campaign(&clients[0], &a.election, leases[0], "c0"))
        .await?
        .map_err(|e| e.to_string())??;
    let mut leader = 0usize;
    let mut pending = campaign(&clients[1], &a.election, leases[1], "c1");
    let mut samples = Vec::with_capacity(a.rounds);
    for round in 0..a.warmup + a.rounds {
        tokio::time::sleep(Duration::from_millis(a.settle_ms)).await;
        let t0 = Instant::now();
        let mut c = clients[leader].clone();
        within(a.timeout_s, "resign", c.resign(Some(ResignOptions::new().with_leader(key.clone()))))
            .await?
            .map_err(|e| format!("resign: {e}"))?;
        let (k, t1) = within(a.timeout_s, "successor campaign", pending).await?.map_err(|e| e.to_string())??;
        let old = leader;
        leader = 1 - leader;
        key = k;
        pending = campaign(&clients[old], &a.election, leases[old], &format!("c{old}"));
        if round >= a.warmup {
            samples.push(ms(t1 - t0));
        }
    }
    pending.abort();
    for (c, l) in clients.iter_mut().zip(&leases) {
        let _ = tokio::time::timeout(Duration::from_secs(5), c.lease_revoke(*l)).await;
    }
    Ok(json!({ "what": "etcd Election RPC handoff", "rounds": a.rounds, "samples_ms": samples }))
}
