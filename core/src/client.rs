//! `Client`: one connection and one session to a backend.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use crate::backend;
use crate::connection::Connection;
use crate::election::{Election, Participant};
use crate::error::{Error, ErrorKind, Result};
use crate::options::Options;
use crate::runtime;
use crate::url::{validate_name, BackendUrl};

/// A connection to one backend with one session (an etcd lease, a ZooKeeper
/// session, a Consul session), kept alive by the library.
///
/// `Client` is cheap to clone; clones share the session. It is `Send + Sync` and its
/// methods take `&self`. Background work runs on a runtime owned by the library,
/// so a client may be used from any async runtime or, through
/// [`blocking`](crate::blocking), from plain threads.
///
/// Dropping the last clone does not close the session by itself while elections
/// made from it are alive; call [`close`](Client::close) to resign everything and
/// release the session at once.
#[derive(Clone)]
pub struct Client {
    connection: Arc<Connection>,
    /// The elections made from this client, for `close`.
    elections: Arc<Mutex<Vec<Weak<Participant>>>>,
}

impl Client {
    /// A client over `connection`, with no election yet.
    fn new(connection: Arc<Connection>) -> Client {
        Client { connection, elections: Arc::new(Mutex::new(Vec::new())) }
    }
}

#[cfg(test)]
impl Client {
    /// A client over `connection`, for engine tests that need no server.
    pub(crate) fn for_test(connection: Arc<Connection>) -> Client {
        Client::new(connection)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("url", &self.connection.url).finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the backend that `url` names and starts its session.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` for a malformed URL, an unknown option or an out-of-range
    /// value (the message names it), and for a local backend directory that another
    /// user owns or can write to, or that is on a network file system (NFS, SMB,
    /// ...); `Connection` when the backend cannot be
    /// reached; `Timeout` after the connect timeout; `Auth` for refused credentials.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() -> ballot::Result<()> {
    /// let client = ballot::Client::connect("file:///tmp/ballot", ballot::Options::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str, options: Options) -> Result<Client> {
        let parsed = BackendUrl::parse(url)?;
        let options = options.resolve(&parsed)?;
        let shown = parsed.to_string();
        let timeout = options.connect_timeout;
        let opts = options.clone();
        let backend = runtime::run(async move {
            match tokio::time::timeout(timeout, backend::registry::connect(&parsed, &opts)).await {
                Ok(r) => r,
                Err(_) => Err(Error::new(
                    ErrorKind::Timeout,
                    format!("connecting to {parsed} took longer than the connect timeout {timeout:?}"),
                )),
            }
        })
        .await?;
        let mut options = options;
        if let Some(ttl) = backend.session_ttl() {
            options.ttl = ttl;
        }
        Ok(Client::new(Arc::new(Connection::new(backend, options, shown))))
    }

    /// A handle on the election `name` (a `/`-separated path of printable UTF-8, at
    /// most 256 bytes). Nothing is written to the backend until the handle is used.
    /// Several handles on one name are independent participants.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` for a bad name; `Closed` after [`close`](Client::close).
    pub fn election(&self, name: &str) -> Result<Election> {
        validate_name(name)?;
        if self.is_closed() {
            return Err(Error::closed());
        }
        let e = Election::new(self.connection.clone(), name.to_string());
        let mut list = self.elections.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(e.participant()));
        Ok(e)
    }

    /// The backend, for `ballot::memory`'s test helpers.
    #[cfg(feature = "memory")]
    pub(crate) fn backend(&self) -> &Arc<dyn backend::Backend> {
        &self.connection.backend
    }

    /// The backend URL, with any password replaced by `***`.
    pub fn url(&self) -> &str {
        &self.connection.url
    }

    /// The largest value, in bytes, that this client's backend takes in
    /// [`campaign`](crate::Election::campaign) and
    /// [`proclaim`](crate::Election::proclaim); a larger one is an
    /// `InvalidArgument` error before anything is sent. It is computed from how the
    /// backend sends a value, with the longest namespace and name and the servers'
    /// default limits: 1 MiB on the local backend and etcd, 1 MiB - 4 KiB on
    /// ZooKeeper, 384,000 bytes on Consul (see the README's "Values").
    pub fn max_value_len(&self) -> usize {
        self.connection.backend.max_value_len()
    }

    /// The options in force (after URL overrides).
    pub fn options(&self) -> &Options {
        &self.connection.options
    }

    /// Whether [`close`](Client::close) was called.
    pub fn is_closed(&self) -> bool {
        self.connection.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Resigns every election of this client, withdraws every candidate (a join
    /// still on its way to the server is waited for, at most the TTL, and
    /// withdrawn), releases the session, and marks every handle `Closed`.
    /// Idempotent.
    pub async fn close(&self) -> Result<()> {
        if self.connection.closed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        tracing::info!(target: "ballot", parent: &self.connection.span, "client closed");
        self.connection.metrics.close();
        let list: Vec<_> = {
            let l = self.elections.lock().unwrap_or_else(|p| p.into_inner());
            l.iter().filter_map(Weak::upgrade).collect()
        };
        let backend = self.connection.backend.clone();
        // To completion even if the caller stops waiting: `closed` is already set, so
        // a second close() would not redo this work.
        runtime::run_to_completion(async move {
            // Every handle is marked closed before any entry is withdrawn: otherwise a
            // waiting handle of this client could win in the gap after another one
            // resigned, and only be withdrawn in the background after close returned.
            let entries: Vec<_> = list.iter().filter_map(|s| s.close_now()).collect();
            futures_util::future::join_all(entries.iter().map(|e| e.withdraw())).await;
            // Before the session goes: a late join's entry needs it to be withdrawn.
            futures_util::future::join_all(list.iter().map(|s| s.settle_after_close())).await;
            backend.close().await;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::election::testing::gated_connection;
    use crate::State;

    /// Runs until every task of this (current-thread, paused-clock) runtime waits
    /// on something other than the clock: the clock only moves when nothing else
    /// can run.
    async fn until_idle() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    /// A handle whose join is on its way to the server when its client (or the
    /// handle itself) closes: the join lands after the other entries were
    /// withdrawn, so unless `close` waits for it and withdraws it while the session
    /// is still there, the late entry is the election's leader after `close`
    /// returned (seen on ZooKeeper, where it lived until the session's close
    /// reached the server).
    async fn close_with_a_join_in_flight(whole_client: bool) {
        let _here = crate::memory::use_current_runtime().unwrap();
        let (connection, gate) = gated_connection();
        let c = Client::for_test(connection);
        let e = c.election("svc").unwrap();
        let campaign = tokio::spawn({
            let e = e.clone();
            async move { e.campaign("late").await }
        });
        gate.entered.notified().await;
        let mut closing = tokio::spawn({
            let (c, e) = (c.clone(), e.clone());
            async move {
                if whole_client {
                    c.close().await.unwrap();
                } else {
                    e.close().await;
                }
            }
        });
        tokio::select! {
            biased;
            r = &mut closing => panic!("close returned ({r:?}) while a join was in flight; the backend saw {:?}", gate.log()),
            () = until_idle() => {}
        }
        assert_eq!(e.state(), State::Closed);
        gate.open_one();
        closing.await.unwrap();
        let expected: &[&str] =
            if whole_client { &["joined", "withdrawn", "closed"] } else { &["joined", "withdrawn"] };
        assert_eq!(gate.log(), expected);
        assert_eq!(campaign.await.unwrap().unwrap_err().kind(), ErrorKind::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn client_close_withdraws_a_join_still_in_flight_before_it_returns() {
        close_with_a_join_in_flight(true).await;
    }

    #[tokio::test(start_paused = true)]
    async fn election_close_withdraws_a_join_still_in_flight_before_it_returns() {
        close_with_a_join_in_flight(false).await;
    }
}
