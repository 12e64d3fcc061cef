//! The floor: how fast the server itself tells a waiting client that the key it
//! watches went away. No election recipe can hand off faster than this.
//!
//! - local: one thread blocks in `flock(LOCK_EX)`; another unlocks at t0.
//! - etcd: a watch on a key; a second connection deletes the key at t0.
//! - ZooKeeper: an exists-watch on an ephemeral node from a second session; the
//!   owner deletes the node at t0.
//! - Consul: a blocking query on a locked key; a second HTTP connection releases
//!   the lock at t0.
//! - PostgreSQL: one connection LISTENs on a channel; another sends `NOTIFY` on
//!   it at t0 (autocommit, so the notification goes out at its commit).
//!
//! t1 is when the waiting side sees the notification.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{ms, within};

/// Arguments of `floor`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// local, etcd, zk, consul or pg.
    #[arg(long)]
    kind: String,
    /// HOST:PORT of the server (a directory for local, a postgres:// URL for pg).
    #[arg(long)]
    addr: String,
    /// Timed notifications.
    #[arg(long, default_value_t = 200)]
    rounds: usize,
    /// Pause before each timed write, so that the watch is in place.
    #[arg(long, default_value_t = 10)]
    settle_ms: u64,
    /// Seconds for any single wait.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
}

/// Runs the measurement and returns its JSON summary.
pub async fn run(a: Args) -> Result<serde_json::Value, String> {
    let samples = match a.kind.as_str() {
        "local" => local(&a).await?,
        "etcd" => etcd(&a).await?,
        "zk" => zk(&a).await?,
        "consul" => consul(&a).await?,
        "pg" => pg(&a).await?,
        k => return Err(format!("unknown kind {k:?}")),
    };
    let what = match a.kind.as_str() {
        "local" => "flock unlock -> blocked flock returns",
        "etcd" => "delete -> watch event",
        "zk" => "delete -> exists-watch event",
        "pg" => "NOTIFY -> the LISTENing connection receives it",
        _ => "release -> blocking query returns",
    };
    Ok(json!({ "what": what, "kind": a.kind, "rounds": a.rounds, "samples_ms": samples }))
}

/// flock handoff between two open file descriptions of one file.
async fn local(a: &Args) -> Result<Vec<f64>, String> {
    use std::os::fd::AsRawFd;
    let dir = std::path::Path::new(&a.addr);
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let path = dir.join("floor.lock");
    let rounds = a.rounds;
    let settle = Duration::from_millis(a.settle_ms);
    let run = move || -> Result<Vec<f64>, String> {
        let open = || std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path);
        let holder = open().map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            // SAFETY: flock on a file descriptor we own.
            if unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err("flock".into());
            }
            let waiter = open().map_err(|e| e.to_string())?;
            let (tx, rx) = std::sync::mpsc::channel();
            let h = std::thread::spawn(move || {
                // SAFETY: as above; blocks until the holder unlocks.
                let r = unsafe { libc::flock(waiter.as_raw_fd(), libc::LOCK_EX) };
                let _ = tx.send((r, Instant::now()));
                drop(waiter);
            });
            std::thread::sleep(settle);
            let t0 = Instant::now();
            // SAFETY: as above.
            unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_UN) };
            let (r, t1) = rx.recv_timeout(Duration::from_secs(10)).map_err(|e| e.to_string())?;
            let _ = h.join();
            if r != 0 {
                return Err("flock wait".into());
            }
            out.push(ms(t1 - t0));
        }
        Ok(out)
    };
    tokio::task::spawn_blocking(run).await.map_err(|e| e.to_string())?
}

async fn etcd(a: &Args) -> Result<Vec<f64>, String> {
    use etcd_client::{Client, EventType};
    let ep = [format!("http://{}", a.addr)];
    let mut writer =
        within(a.timeout_s, "etcd connect", Client::connect(&ep, None)).await?.map_err(|e| e.to_string())?;
    let mut watcher =
        within(a.timeout_s, "etcd connect", Client::connect(&ep, None)).await?.map_err(|e| e.to_string())?;
    let key = "bench-floor/key";
    let mut stream = within(a.timeout_s, "etcd watch", watcher.watch(key, None)).await?.map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(a.rounds);
    for _ in 0..a.rounds {
        within(a.timeout_s, "put", writer.put(key, "v", None)).await?.map_err(|e| e.to_string())?;
        // Consume the put event.
        let _ = within(a.timeout_s, "put event", stream.message()).await?.map_err(|e| e.to_string())?;
        tokio::time::sleep(Duration::from_millis(a.settle_ms)).await;
        let t0 = Instant::now();
        within(a.timeout_s, "delete", writer.delete(key, None)).await?.map_err(|e| e.to_string())?;
        let t1 = loop {
            let m = within(a.timeout_s, "delete event", stream.message()).await?.map_err(|e| e.to_string())?;
            let m = m.ok_or("watch ended")?;
            if m.events().iter().any(|e| e.event_type() == EventType::Delete) {
                break Instant::now();
            }
        };
        out.push(ms(t1 - t0));
    }
    Ok(out)
}

async fn zk(a: &Args) -> Result<Vec<f64>, String> {
    use zookeeper_client::{Acls, Client, CreateMode};
    let owner = within(a.timeout_s, "zk connect", Client::connect(&a.addr)).await?.map_err(|e| e.to_string())?;
    let watcher = within(a.timeout_s, "zk connect", Client::connect(&a.addr)).await?.map_err(|e| e.to_string())?;
    let path = "/bench-floor";
    let opts = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    let mut out = Vec::with_capacity(a.rounds);
    for _ in 0..a.rounds {
        within(a.timeout_s, "create", owner.create(path, b"v", &opts)).await?.map_err(|e| e.to_string())?;
        let (stat, w) = within(a.timeout_s, "exists watch", watcher.check_and_watch_stat(path))
            .await?
            .map_err(|e| e.to_string())?;
        if stat.is_none() {
            return Err("the node is missing".into());
        }
        tokio::time::sleep(Duration::from_millis(a.settle_ms)).await;
        let t0 = Instant::now();
        within(a.timeout_s, "delete", owner.delete(path, None)).await?.map_err(|e| e.to_string())?;
        within(a.timeout_s, "delete event", w.changed()).await?;
        out.push(ms(t0.elapsed()));
    }
    Ok(out)
}

async fn consul(a: &Args) -> Result<Vec<f64>, String> {
    let base = format!("http://{}", a.addr);
    let writer = reqwest::Client::new();
    let reader = reqwest::Client::new();
    let err = |e: reqwest::Error| e.to_string();
    let sess: serde_json::Value = within(
        a.timeout_s,
        "session",
        writer
            .put(format!("{base}/v1/session/create"))
            .body(r#"{"Name":"bench-floor","TTL":"60s","LockDelay":"0s","Behavior":"release"}"#)
            .send(),
    )
    .await?
    .map_err(err)?
    .json()
    .await
    .map_err(err)?;
    let sid = sess["ID"].as_str().ok_or("no session id")?.to_string();
    let key = format!("{base}/v1/kv/bench-floor/lock");
    let mut out = Vec::with_capacity(a.rounds);
    for _ in 0..a.rounds {
        let ok = within(a.timeout_s, "acquire", writer.put(format!("{key}?acquire={sid}")).body("v").send())
            .await?
            .map_err(err)?
            .text()
            .await
            .map_err(err)?;
        if ok.trim() != "true" {
            return Err(format!("acquire answered {ok}"));
        }
        let r = within(a.timeout_s, "get", reader.get(&key).send()).await?.map_err(err)?;
        let index =
            r.headers().get("X-Consul-Index").and_then(|v| v.to_str().ok()).ok_or("no X-Consul-Index")?.to_string();
        let q = reader.get(format!("{key}?index={index}&wait=30s")).send();
        let waiting = tokio::spawn(async move {
            let r = q.await;
            (r.map(|_| ()), Instant::now())
        });
        tokio::time::sleep(Duration::from_millis(a.settle_ms)).await;
        let t0 = Instant::now();
        within(a.timeout_s, "release", writer.put(format!("{key}?release={sid}")).send()).await?.map_err(err)?;
        let (r, t1) = within(a.timeout_s, "blocking query", waiting).await?.map_err(|e| e.to_string())?;
        r.map_err(err)?;
        out.push(ms(t1 - t0));
    }
    let _ = writer.put(format!("{base}/v1/session/destroy/{sid}")).send().await;
    Ok(out)
}

async fn pg(a: &Args) -> Result<Vec<f64>, String> {
    use futures_util::StreamExt;
    use tokio_postgres::{AsyncMessage, NoTls};
    let err = |e: tokio_postgres::Error| e.to_string();
    let (listener, mut conn) =
        within(a.timeout_s, "pg connect", tokio_postgres::connect(&a.addr, NoTls)).await?.map_err(err)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    // The connection's driver stamps each notification as it reads it.
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = tx.send((n.payload().to_string(), Instant::now()));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    within(a.timeout_s, "LISTEN", listener.batch_execute("LISTEN bench_floor")).await?.map_err(err)?;
    let (writer, conn) =
        within(a.timeout_s, "pg connect", tokio_postgres::connect(&a.addr, NoTls)).await?.map_err(err)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut out = Vec::with_capacity(a.rounds);
    for i in 0..a.rounds {
        tokio::time::sleep(Duration::from_millis(a.settle_ms)).await;
        let notify = format!("NOTIFY bench_floor, '{i}'");
        let t0 = Instant::now();
        within(a.timeout_s, "NOTIFY", writer.batch_execute(&notify)).await?.map_err(err)?;
        let t1 = loop {
            let (payload, t) = within(a.timeout_s, "notification", rx.recv()).await?.ok_or("listener ended")?;
            if payload == i.to_string() {
                break t;
            }
        };
        out.push(ms(t1 - t0));
    }
    drop(listener);
    Ok(out)
}
