//! [`Connection`]: what a client and every election made from it share.
//!
//! It sits below both `client.rs` and `election.rs`, so that an election can
//! reach its backend and options without importing the client that made it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::backend::Backend;
use crate::metrics::ClientSeries;
use crate::options::Options;

/// One connected backend (one session), the options in force and whether the
/// client was closed. Owned through an `Arc` by the client and by each of its
/// elections.
pub(crate) struct Connection {
    pub(crate) backend: Arc<dyn Backend>,
    /// The options after URL overrides (and the TTL the backend put in force).
    pub(crate) options: Options,
    /// The backend URL for messages: the userinfo replaced by `***`.
    pub(crate) url: String,
    /// The client's span (`ballot_client`: `backend`, `client`), the parent of its
    /// elections' spans and of its session's records.
    pub(crate) span: tracing::Span,
    /// Set once by `Client::close`; elections refuse new work after it.
    pub(crate) closed: AtomicBool,
    /// The client's metric series (`backend`, `client`), parent of its elections'.
    pub(crate) metrics: Arc<ClientSeries>,
}

impl Connection {
    /// A connection over `backend`, not closed.
    pub(crate) fn new(backend: Arc<dyn Backend>, options: Options, url: String) -> Connection {
        static CLIENTS: AtomicU64 = AtomicU64::new(0);
        let scheme = url.split("://").next().unwrap_or("");
        let client = CLIENTS.fetch_add(1, Ordering::Relaxed) + 1;
        let span = tracing::info_span!(target: "ballot", "ballot_client", backend = scheme, client);
        backend.session().set_span(span.clone());
        let metrics = ClientSeries::register(client, scheme);
        backend.session().set_metrics(metrics.clone());
        tracing::info!(target: "ballot", parent: &span, "connected to {url}");
        Connection { backend, options, url, span, closed: AtomicBool::new(false), metrics }
    }

    /// A connection over a test backend, for engine tests that need no server.
    #[cfg(test)]
    pub(crate) fn for_test(backend: Arc<dyn Backend>, options: Options) -> Arc<Connection> {
        Arc::new(Connection::new(backend, options, "test://".into()))
    }
}
