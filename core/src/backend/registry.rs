//! The registry: every backend that ballot knows, in one table. An entry says how
//! the backend's URLs are written (its schemes; servers with a default port, a
//! directory or a name; its own URL options and their ranges) and how to connect
//! to it.
//!
//! `url.rs` parses a URL against these entries and knows no backend by name. A
//! backend left out of the build by its cargo feature keeps its entry, so its URLs
//! still parse and connecting says that the build lacks it.
//!
//! Adding a backend: its folder under `backend/` (declared in `backend/mod.rs`
//! behind its feature), its cargo feature in `core/Cargo.toml` (in `default`), and
//! one entry here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::Backend;
use crate::error::{Error, ErrorKind, Result};
use crate::options::Options;
use crate::url::{BackendUrl, Place, Scheme, Syntax, UrlOption, DAY, SECOND};

/// Connects to a backend: starts its session and returns it.
pub(crate) type Connect =
    for<'a> fn(&'a BackendUrl, &'a Options) -> Pin<Box<dyn Future<Output = Result<Arc<dyn Backend>>> + Send + 'a>>;

/// One backend as the registry describes it.
pub(crate) struct Description {
    /// How its URLs are written.
    pub(crate) syntax: Syntax,
    /// How to connect to it; `None` in a build without its cargo feature.
    pub(crate) connect: Option<Connect>,
}

/// The [`Connect`] of a backend built with cargo feature `$feature`: `$open(&BackendUrl,
/// &Options)` is its constructor, written `async $open` when it is an `async fn`;
/// it returns `Result<B>` where `B: Backend`.
macro_rules! connect {
    ($feature:literal, async $open:path) => {
        connect!(@ $feature, $open, .await)
    };
    ($feature:literal, $open:path) => {
        connect!(@ $feature, $open,)
    };
    (@ $feature:literal, $open:path, $($await:tt)*) => {{
        #[cfg(feature = $feature)]
        let connect: Option<Connect> = Some(|url, options| {
            Box::pin(async move { Ok(Arc::new($open(url, options)$($await)*?) as Arc<dyn Backend>) })
        });
        #[cfg(not(feature = $feature))]
        let connect: Option<Connect> = None;
        connect
    }};
}

/// Every backend, in the order error messages list their schemes.
pub(crate) const BACKENDS: &[Description] = &[
    // The local single-host backend: `file:///DIR`.
    Description {
        syntax: Syntax { schemes: &[Scheme::plain("file")], place: Place::Directory, options: &[] },
        connect: connect!("local", async super::local::LocalBackend::open),
    },
    // etcd v3: `etcd://[USER:PASSWORD@]HOSTS[/NS]`, `etcds://` for TLS; `tls=1` asks
    // for TLS on `etcd://`, `ca`, `cert` and `key` name PEM files.
    Description {
        syntax: Syntax {
            schemes: &[Scheme::plain("etcd"), Scheme::tls("etcds")],
            place: Place::Hosts { default_port: 2379 },
            options: &[UrlOption::text("tls"), UrlOption::text("ca"), UrlOption::text("cert"), UrlOption::text("key")],
        },
        connect: connect!("etcd", async super::etcd::EtcdBackend::connect),
    },
    // ZooKeeper: `zk://[USER:PASSWORD@]HOSTS[/CHROOT]`, `zks://` for TLS (to the
    // servers' `secureClientPort`); `session_timeout` is the TTL under ZooKeeper's
    // name (same range as `ttl`); the TLS options as for etcd.
    Description {
        syntax: Syntax {
            schemes: &[Scheme::plain("zk"), Scheme::tls("zks")],
            place: Place::Hosts { default_port: 2181 },
            options: &[
                UrlOption::duration("session_timeout", SECOND, DAY),
                UrlOption::text("tls"),
                UrlOption::text("ca"),
                UrlOption::text("cert"),
                UrlOption::text("key"),
            ],
        },
        connect: connect!("zookeeper", async super::zookeeper::ZkBackend::open),
    },
    // Consul: `consul://[TOKEN@]HOST[/NS]`, `consuls://` for TLS; `lock_delay` up
    // to Consul's own maximum of 60 s; the TLS options as for etcd.
    Description {
        syntax: Syntax {
            schemes: &[Scheme::plain("consul"), Scheme::tls("consuls")],
            place: Place::Hosts { default_port: 8500 },
            options: &[
                UrlOption::duration("lock_delay", Duration::ZERO, Duration::from_secs(60)),
                UrlOption::text("tls"),
                UrlOption::text("ca"),
                UrlOption::text("cert"),
                UrlOption::text("key"),
            ],
        },
        connect: connect!("consul", async super::consul::ConsulBackend::connect),
    },
    // PostgreSQL: `postgres://[USER:PASSWORD@]HOSTS/DBNAME[/NS]` (or
    // `postgresql://`); libpq's TLS options, ballot's `ca`/`cert`/`key` for the
    // same files, the schema, and `pooler=` (`auto`, `none`, `transaction`: PgBouncer).
    Description {
        syntax: Syntax {
            schemes: &[Scheme::plain("postgres"), Scheme::plain("postgresql")],
            place: Place::Hosts { default_port: 5432 },
            options: &[
                UrlOption::text("sslmode"),
                UrlOption::text("sslrootcert"),
                UrlOption::text("sslcert"),
                UrlOption::text("sslkey"),
                UrlOption::text("ca"),
                UrlOption::text("cert"),
                UrlOption::text("key"),
                UrlOption::text("schema"),
                UrlOption::text("pooler"),
            ],
        },
        connect: connect!("postgres", async super::postgres::PgBackend::connect),
    },
    // In-process, for tests: `memory://NAME[/NS]`. The backend refuses a port,
    // several names, a userinfo, and the `ttl` and `margin` options.
    Description {
        syntax: Syntax { schemes: &[Scheme::plain("memory")], place: Place::Name, options: &[] },
        connect: connect!("memory", super::memory::MemoryBackend::open),
    },
];

impl BackendUrl {
    /// Parses and validates `input` as a URL of a registered backend; every
    /// problem is an `InvalidArgument` error that names it.
    pub(crate) fn parse(input: &str) -> Result<BackendUrl> {
        BackendUrl::parse_with(input, BACKENDS.iter().map(|b| &b.syntax))
    }
}

/// Builds the backend a URL names.
pub(crate) async fn connect(url: &BackendUrl, options: &Options) -> Result<Arc<dyn Backend>> {
    let connect = BACKENDS.iter().find(|b| b.syntax.schemes.contains(&url.scheme)).and_then(|b| b.connect);
    match connect {
        Some(connect) => connect(url, options).await,
        None => Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("the {} backend is not available in this build of ballot", url.scheme.name),
        )),
    }
}
