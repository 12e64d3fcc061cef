//! The listening connection: one per process and server, shared by every client
//! of the process that connects the same way.
//!
//! PostgreSQL 15 signals every process of the database that listens, on any
//! channel, at each commit that notifies, and each of them reads the queue. With
//! a listening connection per client, N clients in one process made every handoff
//! wake N server processes. Shared, a commit wakes one server process per client
//! process (the bench's handoff with 1,000 candidates in one process: 4.00 ms
//! before, 3.51 ms after); each notification is then routed to the clients, and
//! inside a client to the tasks of its election only.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::OnceCell;
use tokio::task::{AbortHandle, JoinHandle};
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::tls::SslMode;
use super::{map_err, Note, NoteRouter, Op, RouterTable};
use crate::error::{Error, ErrorKind, Result};
use crate::sync::{lock, PerProcess};

/// What makes two clients' listening connections interchangeable: the same
/// server, database, role and credentials, TLS settings and schema (the channel).
/// Holds the password, so it has no `Debug` and is never shown.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct HubKey {
    pub(super) hosts: Vec<(String, u16)>,
    pub(super) user: String,
    pub(super) password: Option<String>,
    pub(super) dbname: String,
    pub(super) ssl: SslMode,
    pub(super) files: [Option<PathBuf>; 3],
    pub(super) schema: String,
}

/// How to open the listening connection: the settings of the client that made
/// the hub (the others connect the same way, by [`HubKey`]).
pub(super) struct HubConfig {
    pub(super) config: tokio_postgres::Config,
    pub(super) tls: MakeRustlsConnect,
    pub(super) schema: String,
    /// The URL for messages (no password).
    pub(super) shown: String,
    pub(super) connect_timeout: Duration,
    pub(super) op_timeout: Duration,
}

/// The routers of the clients that share one listening connection; each hears
/// every notification and routes it to its own waiters.
type Members = Arc<Mutex<Vec<Weak<Mutex<RouterTable>>>>>;

/// Every hub of this process, by key. A forked child starts with none.
static HUBS: PerProcess<Mutex<HashMap<HubKey, Weak<ListenHub>>>> = PerProcess::new(Default::default);

/// One listening connection and the clients that share it. A client holds an
/// `Arc` while it is connected; the connection closes when the last one goes.
/// Thread-safe.
pub(super) struct ListenHub {
    key: HubKey,
    how: HubConfig,
    members: Members,
    /// The first LISTEN's outcome, which every client that joins meanwhile waits for.
    ready: OnceCell<Result<()>>,
    /// The connection now, for the UNLISTEN of a client that found a pooler.
    current: Mutex<Option<Arc<tokio_postgres::Client>>>,
    /// The task that keeps the connection open.
    task: Mutex<Option<AbortHandle>>,
    /// Whether a client's own NOTIFY came back on this connection: no pooler.
    confirmed: AtomicBool,
}

impl Drop for ListenHub {
    fn drop(&mut self) {
        if let Some(t) = lock(&self.task).take() {
            t.abort();
        }
        self.leave_registry();
    }
}

impl ListenHub {
    /// The hub of `key` in this process (made with `how` when there is none),
    /// with `router` among its members, once its first LISTEN succeeded.
    ///
    /// # Errors
    ///
    /// The first LISTEN's error (`Connection`, `Auth`, ...), also for the clients
    /// that joined while it ran.
    pub(super) async fn join(key: HubKey, how: impl FnOnce() -> HubConfig, router: &NoteRouter) -> Result<Arc<Self>> {
        let hub = {
            let mut hubs = lock(HUBS.get());
            match hubs.get(&key).and_then(Weak::upgrade) {
                Some(hub) => hub,
                None => {
                    let hub = Arc::new(ListenHub {
                        key: key.clone(),
                        how: how(),
                        members: Members::default(),
                        ready: OnceCell::new(),
                        current: Mutex::new(None),
                        task: Mutex::new(None),
                        confirmed: AtomicBool::new(false),
                    });
                    hubs.insert(key, Arc::downgrade(&hub));
                    hub
                }
            }
        };
        {
            let mut members = lock(&hub.members);
            members.retain(|m| m.strong_count() > 0);
            members.push(Arc::downgrade(&router.inner));
        }
        hub.ready.get_or_init(|| hub.start()).await.clone()?;
        Ok(hub)
    }

    /// Opens the connection and starts the task that keeps it open.
    async fn start(self: &Arc<Self>) -> Result<()> {
        let first = self.listen_once().await?;
        let task = tokio::spawn(keep_listening(Arc::downgrade(self), first));
        *lock(&self.task) = Some(task.abort_handle());
        Ok(())
    }

    /// Removes this hub from the process's table, unless a newer hub of the same
    /// key has taken its place there.
    fn leave_registry(&self) {
        let mut hubs = lock(HUBS.get());
        if hubs.get(&self.key).is_some_and(|w| std::ptr::eq(w.as_ptr(), self)) {
            hubs.remove(&self.key);
        }
    }

    /// Records that a client's own NOTIFY came back on this connection.
    pub(super) fn confirm(&self) {
        self.confirmed.store(true, Ordering::SeqCst);
    }

    /// For a client whose own NOTIFY did not come back: a transaction pooler is
    /// behind the URL, and the LISTEN stayed on a server connection of the pool
    /// (PgBouncer then tells that connection about every notification: "got
    /// packet 'A' from server when not linked"). Unless another client's NOTIFY
    /// came back here (then this one was only slow), sends `UNLISTEN *` at once
    /// (the pool hands out its most recently used connection first, so it most
    /// likely reaches that one) and retires the hub: the next client of the
    /// process opens and probes a connection of its own.
    pub(super) async fn found_a_pooler(&self) {
        if self.confirmed.load(Ordering::SeqCst) {
            return;
        }
        self.leave_registry();
        let client = lock(&self.current).clone();
        if let Some(c) = client {
            let _ = tokio::time::timeout(self.how.connect_timeout, c.batch_execute("UNLISTEN *")).await;
        }
    }

    /// Opens the listening connection and LISTENs; returns its notification
    /// driver, running. Every member looks at its elections again afterwards:
    /// notifications sent while nobody listened are lost.
    async fn listen_once(&self) -> Result<JoinHandle<()>> {
        let how = &self.how;
        let fut = how.config.connect(how.tls.clone());
        let (client, mut conn) = match tokio::time::timeout(how.connect_timeout, fut).await {
            Ok(r) => r.map_err(|e| map_err("connect (listen)", &e))?,
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!("postgres listen: no answer from {} within {:?}", how.shown, how.connect_timeout),
                ))
            }
        };
        let members = self.members.clone();
        let channel = how.schema.clone();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
            while let Some(m) = messages.next().await {
                match m {
                    Ok(AsyncMessage::Notification(n)) if n.channel() == channel => {
                        let mut parts = n.payload().splitn(3, ' ');
                        let (id, op, election) =
                            (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                        if let Ok(id) = id.parse::<i64>() {
                            let (op, term) = Op::parse_with_term(op);
                            fan_out(&members, Note { id, op, term, election: Arc::from(election) });
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        let listen = format!("LISTEN \"{}\"", how.schema);
        let answer = tokio::time::timeout(how.op_timeout, client.batch_execute(&listen)).await;
        let failed = match answer {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(map_err("listen", &e)),
            Err(_) => Some(Error::new(ErrorKind::Connection, "postgres listen: no answer")),
        };
        if let Some(e) = failed {
            driver.abort();
            return Err(e);
        }
        *lock(&self.current) = Some(Arc::new(client));
        fan_out(&self.members, Note { id: -1, op: Op::Other, term: None, election: Arc::from("") });
        Ok(driver)
    }
}

/// Hands `note` to every member's router, dropping the members that are gone.
fn fan_out(members: &Members, note: Note) {
    let routers: Vec<_> = {
        let mut m = lock(members);
        m.retain(|r| r.strong_count() > 0);
        m.iter().filter_map(Weak::upgrade).collect()
    };
    for r in routers {
        NoteRouter::send_to(&r, note.clone());
    }
}

/// Keeps the hub's connection open, opening it again when it breaks, until the
/// hub is gone.
async fn keep_listening(hub: Weak<ListenHub>, mut driver: JoinHandle<()>) {
    /// Aborts the driver when this task ends (the hub went, or was aborted).
    struct AbortOnDrop(AbortHandle);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut backoff = Duration::from_millis(100);
    loop {
        let guard = AbortOnDrop(driver.abort_handle());
        let _ = (&mut driver).await;
        drop(guard);
        loop {
            let Some(h) = hub.upgrade() else { return };
            *lock(&h.current) = None;
            match h.listen_once().await {
                Ok(d) => {
                    driver = d;
                    backoff = Duration::from_millis(100);
                    break;
                }
                Err(_) => {
                    drop(h);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}
