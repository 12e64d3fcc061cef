//! One gRPC watch stream per etcd client, shared by all of its watches.
//!
//! A gRPC stream costs the client about 22 KiB of buffers. With a stream per watch,
//! a process leading 10,000 elections held 20,000 of them (the epoch watch and the
//! leader's own-key watch), about 440 MiB. etcd lets one stream carry any number of
//! watches, each under an id the client picks (etcd 3.4 and later); the hub sends
//! every create and cancel request on one stream and routes responses by that id.
//!
//! A server that ignores the ids (before 3.4) answers with ids of its own. The hub
//! notices on the first such answer and from then on gives every watch its own
//! stream, as before.
//!
//! Streams are opened by the backend's require-leader client: when the member loses
//! its raft leader, etcd cancels the stream with "no leader", and every watch on it
//! fails with that error (the next `open` makes a new stream).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use etcd_client as ec;
use tokio::sync::mpsc;

use super::error::map_err;
use crate::error::{Error, ErrorKind, Result};
use crate::sync::lock;

/// Who gets the responses of each watch id on the shared stream.
#[derive(Default)]
struct Table {
    /// Boxed: a channel allocates room for 32 messages up front, and a response is
    /// some 200 bytes; thousands of idle watches would hold megabytes of slots.
    routes: HashMap<i64, mpsc::UnboundedSender<Box<ec::WatchResponse>>>,
    /// Ids whose create request was sent and not yet confirmed.
    pending: HashSet<i64>,
    /// Why the stream ended, once it has.
    ended: Option<(ErrorKind, String)>,
}

type Shared = Arc<Mutex<Table>>;
type Sender = Arc<tokio::sync::Mutex<ec::WatchRequestSender>>;

/// The live shared stream.
struct Conn {
    sender: Sender,
    table: Shared,
    reader: tokio::task::AbortHandle,
}

/// The watch streams of one client. Shared by every task of the client; `open` may
/// be called concurrently.
#[derive(Default)]
pub(super) struct WatchHub {
    conn: tokio::sync::Mutex<Option<Conn>>,
    next_id: AtomicI64,
    /// The server ignores client-chosen watch ids: one stream per watch.
    legacy: Arc<AtomicBool>,
}

impl Drop for WatchHub {
    fn drop(&mut self) {
        if let Some(c) = self.conn.get_mut().take() {
            c.reader.abort();
        }
    }
}

/// One watch of one or more keys. Dropping it cancels the watches on the server.
pub(super) struct HubWatch(Kind);

enum Kind {
    Shared { ids: Vec<i64>, rx: mpsc::UnboundedReceiver<Box<ec::WatchResponse>>, table: Shared, sender: Sender },
    Own(ec::WatchStream),
}

impl HubWatch {
    /// The next response for one of this watch's keys. An error means the stream
    /// broke (every watch on it then fails): read again and open a new watch.
    pub(super) async fn message(&mut self) -> Result<ec::WatchResponse> {
        match &mut self.0 {
            Kind::Shared { rx, table, .. } => match rx.recv().await {
                Some(resp) => Ok(*resp),
                None => Err(match lock(table).ended.clone() {
                    Some((kind, msg)) => Error::new(kind, msg),
                    None => Error::new(ErrorKind::Connection, "etcd watch: the shared watch stream ended"),
                }),
            },
            Kind::Own(stream) => match stream.message().await {
                Ok(Some(resp)) => Ok(resp),
                Ok(None) => Err(Error::new(ErrorKind::Connection, "etcd closed the watch stream")),
                Err(e) => Err(map_err("watch", e)),
            },
        }
    }
}

impl Drop for HubWatch {
    fn drop(&mut self) {
        let Kind::Shared { ids, table, sender, .. } = &mut self.0 else { return };
        {
            let mut t = lock(table);
            if t.ended.is_some() {
                return; // the server dropped every watch of the stream with it
            }
            for id in ids.iter() {
                t.routes.remove(id);
            }
        }
        let (sender, ids) = (sender.clone(), std::mem::take(ids));
        crate::runtime::spawn_detached(async move {
            let mut s = sender.lock().await;
            for id in ids {
                if s.cancel(id).await.is_err() {
                    return;
                }
            }
        });
    }
}

impl WatchHub {
    /// Watches `keys` (exact keys, or prefixes when flagged) from revision `start`.
    /// When no stream is live, `create` opens one whose first watch is the first
    /// key (the caller's retry and failover policy applies to that call).
    pub(super) async fn open<F, Fut>(&self, keys: &[(String, bool)], start: i64, create: F) -> Result<HubWatch>
    where
        F: FnOnce(String, ec::WatchOptions) -> Fut,
        Fut: Future<Output = Result<ec::WatchStream>>,
    {
        let opts = |prefix: bool, id: i64| {
            let o = ec::WatchOptions::new().with_start_revision(start).with_watch_id(id);
            if prefix {
                o.with_prefix()
            } else {
                o
            }
        };
        let (first, rest) = keys.split_first().ok_or_else(|| Error::new(ErrorKind::Internal, "empty watch"))?;
        if self.legacy.load(Ordering::Relaxed) {
            let mut stream = create(first.0.clone(), opts(first.1, 0)).await?;
            for (k, p) in rest {
                stream.watch(k.clone(), Some(opts(*p, 0))).await.map_err(|e| map_err("watch", e))?;
            }
            return Ok(HubWatch(Kind::Own(stream)));
        }
        // Ids start at 1: 0 asks the server to pick one.
        let ids: Vec<i64> = keys.iter().map(|_| self.next_id.fetch_add(1, Ordering::Relaxed) + 1).collect();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut slot = self.conn.lock().await;
        let mut todo: Vec<(&(String, bool), i64)> = keys.iter().zip(ids.iter().copied()).collect();
        if slot.as_ref().is_none_or(|c| c.reader.is_finished()) {
            let table: Shared = Arc::default();
            {
                let mut t = lock(&table);
                t.routes.insert(ids[0], tx.clone());
                t.pending.insert(ids[0]);
            }
            let stream = create(first.0.clone(), opts(first.1, ids[0])).await?;
            let (sender, responses) = stream.split();
            let reader = tokio::spawn(read_loop(responses, table.clone(), self.legacy.clone())).abort_handle();
            *slot = Some(Conn { sender: Arc::new(tokio::sync::Mutex::new(sender)), table, reader });
            todo.remove(0);
        }
        let Some(conn) = slot.as_ref() else { return Err(Error::new(ErrorKind::Internal, "no watch stream")) };
        let watch = HubWatch(Kind::Shared { ids, rx, table: conn.table.clone(), sender: conn.sender.clone() });
        {
            let mut t = lock(&conn.table);
            for (_, id) in &todo {
                t.routes.insert(*id, tx.clone());
                t.pending.insert(*id);
            }
        }
        let mut sender = conn.sender.lock().await;
        for ((k, p), id) in todo {
            if let Err(e) = sender.watch(k.clone(), Some(opts(*p, id))).await {
                // The stream is gone: the next open makes a new one.
                conn.reader.abort();
                drop(sender);
                *slot = None;
                return Err(Error::new(ErrorKind::Connection, format!("etcd watch: {e}")));
            }
        }
        Ok(watch)
    }
}

/// Routes the responses of the shared stream until it ends; then every watch on it
/// learns why (its channel closes).
async fn read_loop(mut responses: ec::WatchResponseStream, table: Shared, legacy: Arc<AtomicBool>) {
    let why = loop {
        match responses.message().await {
            Ok(Some(resp)) => {
                let id = resp.watch_id();
                let mut t = lock(&table);
                if resp.created() && !t.pending.remove(&id) {
                    legacy.store(true, Ordering::Relaxed);
                    break (
                        ErrorKind::Connection,
                        "etcd watch: the server does not keep client watch ids (etcd before 3.4); \
                         watches get a stream each from now on"
                            .to_string(),
                    );
                }
                let cancelled = resp.canceled();
                if let Some(tx) = t.routes.get(&id) {
                    let _ = tx.send(Box::new(resp));
                }
                if cancelled {
                    t.routes.remove(&id);
                }
            }
            Ok(None) => break (ErrorKind::Connection, "etcd closed the watch stream".to_string()),
            Err(e) => {
                let e = map_err("watch", e);
                break (e.kind(), e.message().to_string());
            }
        }
    };
    let mut t = lock(&table);
    t.ended = Some(why);
    t.routes.clear();
}
