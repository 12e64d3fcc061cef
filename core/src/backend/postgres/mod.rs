//! The PostgreSQL backend (`postgres://`, `postgresql://`): leases kept in tables
//! of one schema, not session-level advisory locks.
//!
//! # URL
//!
//! `postgres://USER:PASSWORD@HOST[:PORT][,HOST2[:PORT2]]/DBNAME[/NAMESPACE]?OPTIONS`,
//! the form libpq users know. The first path segment is the database (the user
//! name when there is none); what follows it is ballot's namespace, put before
//! every election name. The password may also come from `PGPASSWORD`, the user
//! from `PGUSER`. Options:
//!
//! - `sslmode`: `disable`, `prefer` (the default; `verify-full` when a CA is
//!   given), `require`, `verify-ca`, `verify-full`, with libpq's meanings
//!   (`prefer` and `require` check the certificate only when a CA is given);
//! - `sslrootcert`, `sslcert`, `sslkey` (also spelt `ca`, `cert`, `key`, as on
//!   the other backends and in the options `tls_ca`, ...): PEM files;
//! - `schema` (default `ballot`): where ballot's tables and functions live;
//! - `pooler`: `transaction` says the URL names a pooler in transaction mode
//!   (PgBouncer), where LISTEN cannot work: waiting candidates and observers poll
//!   instead (see below); `none` says it does not; `auto` (the default) finds out
//!   at connect, by sending a NOTIFY to itself: it comes back on a direct
//!   connection and never through such a pooler (that costs up to 500 ms at
//!   connect through a pooler);
//! - `ttl`, `margin`, `connect_timeout`, as everywhere.
//!
//! # Layout
//!
//! In schema `S`, created on first use by versioned, idempotent migrations
//! (`sql.rs`; `S.schema_migrations` records the versions applied):
//!
//! - `S.sessions`: one row per client session, a lease. Its `expires_at` is set
//!   by the server's clock (`clock_timestamp() + ttl`) at each renewal, every
//!   TTL/3; a renewal of a session that already expired fails, so an expired
//!   session never comes back.
//! - `S.elections`: per election, its `epoch` (bumped by `end()`) and `term`
//!   (the last term given).
//! - `S.candidates`: one row per candidate, queued by `id`. Ids of one election
//!   are taken under the election row's lock, so they follow commit order.
//!
//! **The leader** is the oldest candidate whose session is alive by the server's
//! clock, once it took its term: the candidate first in line takes the next term
//! of its election (`term + 1`, under the election row's lock), so terms strictly
//! increase over successive leaders, across `end()`, client and server restarts.
//! A waiting candidate ends the session of a candidate ahead of it only when the
//! server's clock says that session expired.
//!
//! **Hand-over.** Since schema version 2 a withdrawal (a resign) gives the next
//! term to the next candidate whose session is alive, in its own transaction
//! and under the election row's lock, and its notification names that term
//! (`c<term>`): the successor returns from its campaign on that notification
//! alone, without a statement of its own. A claim by the candidate first in
//! line (`step`) stays for everything else: a crashed leader, a notification
//! lost, a client through a pooler, a schema of version 1; it returns a term
//! already given as it is.
//!
//! **No herd.** Each change sends `NOTIFY S, '<candidate id> <op> <election>'`
//! (`op`: `d` deleted, `c` claimed its term, `p` proclaimed, `e` ended, with
//! id 0). Joins send none since schema version 3: nobody reads them, and each
//! NOTIFY reaches every listening connection of the database, so N clients
//! joining one election cost N² deliveries. The clients of a process that
//! connect the same way share one listening connection (`listen.rs`), and a
//! client wakes only the candidate whose predecessor was deleted;
//! observers wake on every change. A waiting candidate also sleeps no longer
//! than its predecessor's remaining lease, so a crashed leader is replaced as
//! soon as the server's clock lets its session go. Through a transaction pooler
//! (`pooler=transaction`) there is no LISTEN: each waiting candidate polls its
//! own position (one query for the candidate just ahead) every
//! [`POOLED_POLL`] (100 ms: 10 queries a second per waiting candidate, whatever
//! their number, and as many per observer), and observers poll the election.
//!
//! Every operation is one statement (a function of the schema), so nothing
//! depends on one server connection: it works through PgBouncer in transaction
//! mode and survives a pool replacing its connections.
//!
//! **The SQL fence:** `S.is_leader(election text, term bigint)` is true exactly
//! when `term` is the current leader's term of `election` (its full name, the
//! namespace included) and that leader's session is alive by the server's clock.

mod listen;
mod participants;
pub(crate) mod sql;
mod tls;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::AbortHandle;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::backend::{Backend, Entry, EpochStream, Snapshot, SnapshotStream};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Leader, LostReason, Participant};
use crate::options::{Credentials, Options};
use crate::session::{Health, SessionTracker, Stamp};
use crate::url::BackendUrl;

use self::listen::{HubConfig, HubKey, ListenHub};
use self::tls::{SslMode, TlsFiles};

/// Values up to 1 MiB (a `bytea` holds far more; this is the limit of every
/// backend but ZooKeeper and Consul).
const MAX_VALUE: usize = 1 << 20;
/// How often a waiting candidate or an observer polls through a transaction
/// pooler, where no notification can reach it.
const POOLED_POLL: Duration = Duration::from_millis(100);
/// How often it looks again on a direct connection, where notifications wake it:
/// a safety net for notifications lost on a listening connection that broke
/// unnoticed (TCP keepalives notice it within about 11 s, and every new listening
/// connection wakes everyone once).
const DIRECT_POLL: Duration = Duration::from_secs(10);
/// How often a leader checks its own row, and a campaign the epoch, through a
/// pooler: what they watch for is rare, and the session covers the rest.
const POOLED_SLOW_POLL: Duration = Duration::from_secs(1);
/// How long connect waits for its own NOTIFY to come back on the listening
/// connection before it concludes that a transaction pooler is in between.
const PROBE_WAIT: Duration = Duration::from_millis(500);
/// How long an entry removed by `end()` or with its session waits for the engine
/// (which learns of both on its own) before reporting the removal itself.
const END_GRACE: Duration = Duration::from_secs(3);

/// A notification: candidate `id` of `election` changed in the way `op` says
/// (`NOTIFY S, '<id> <op> <election>'`). Id -1: notifications may have been
/// lost, everyone looks again.
#[derive(Debug, Clone)]
struct Note {
    id: i64,
    op: Op,
    /// The term a claim gave (`c<term>`, schema 2's hand-over), when it says.
    term: Option<i64>,
    election: Arc<str>,
}

/// What a notification says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// A candidate joined (`j`, sent by schemas before version 3 only): it
    /// changes no leader by itself (the first candidate claims its term, which
    /// is a `Claimed`).
    Joined,
    /// A candidate's row was deleted (`d`): withdrawn, resigned, or its
    /// session ended.
    Deleted,
    /// A candidate took its term and leads (`c`).
    Claimed,
    /// The leader proclaimed a new value (`p`).
    Proclaimed,
    /// `end()` (`e`, id 0).
    Ended,
    /// Anything else: looked at by everyone.
    Other,
}

impl Op {
    /// The operation, and the term of a claim that names it (`c42`).
    fn parse_with_term(s: &str) -> (Op, Option<i64>) {
        let op = match s {
            "j" => Op::Joined,
            "d" => Op::Deleted,
            "c" => Op::Claimed,
            "p" => Op::Proclaimed,
            "e" => Op::Ended,
            _ => match s.strip_prefix('c').map(str::parse::<i64>) {
                Some(Ok(term)) => return (Op::Claimed, Some(term)),
                _ => Op::Other,
            },
        };
        (op, None)
    }
}

/// The notifications of one client, routed by election: a task that waits on
/// one election is woken by that election's notifications only, so a client
/// holding many elections does work per notification that does not grow with
/// their number. Id -1 (notifications may have been lost) goes to everyone.
/// Cheap to clone (one shared table).
#[derive(Debug, Clone, Default)]
struct NoteRouter {
    inner: Arc<std::sync::Mutex<RouterTable>>,
}

#[derive(Debug, Default)]
struct RouterTable {
    by_election: std::collections::HashMap<Arc<str>, broadcast::Sender<Note>>,
    /// The table's size at which channels nobody listens to are dropped.
    sweep_at: usize,
}

impl NoteRouter {
    /// A receiver of `election`'s notifications (and of id -1), from now on.
    fn subscribe(&self, election: &str) -> broadcast::Receiver<Note> {
        let mut t = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if t.by_election.len() >= t.sweep_at {
            t.by_election.retain(|_, tx| tx.receiver_count() > 0);
            t.sweep_at = (2 * t.by_election.len()).max(64);
        }
        if let Some(tx) = t.by_election.get(election) {
            return tx.subscribe();
        }
        // A waiter looks at the election again after a notification, so a
        // few queued ones are enough; past them it lags and looks again.
        let (tx, rx) = broadcast::channel(16);
        t.by_election.insert(Arc::from(election), tx);
        rx
    }

    /// Hands `note` to the waiters of its election (id -1: to everyone) in the
    /// router `table`.
    fn send_to(table: &std::sync::Mutex<RouterTable>, note: Note) {
        if note.op == Op::Joined {
            // No waiter looks at joins; a burst of them would only make the
            // waiters' channels lag, and each lagging waiter look again.
            return;
        }
        let mut t = table.lock().unwrap_or_else(|p| p.into_inner());
        if note.id == -1 {
            for tx in t.by_election.values() {
                let _ = tx.send(note.clone());
            }
            return;
        }
        let unheard = match t.by_election.get(&*note.election) {
            Some(tx) => tx.send(note.clone()).is_err(),
            None => false,
        };
        if unheard {
            t.by_election.remove(&*note.election);
        }
    }
}

/// The connection queries go through, and the statements prepared on it.
struct Conn {
    client: tokio_postgres::Client,
    /// The backend's statements prepared on this connection, by their text, so
    /// the server neither parses nor plans them again at each call (a resign's
    /// withdraw spent a fifth of its server time in the parse). Only on a
    /// direct connection: through a transaction pooler the next statement may
    /// run on another server connection, where the name means nothing.
    prepared: std::sync::Mutex<std::collections::HashMap<String, tokio_postgres::Statement>>,
}

impl Conn {
    fn new(client: tokio_postgres::Client) -> Conn {
        Conn { client, prepared: Default::default() }
    }

    fn cached(&self, sql: &str) -> Option<tokio_postgres::Statement> {
        self.prepared.lock().unwrap_or_else(|p| p.into_inner()).get(sql).cloned()
    }

    fn forget(&self, sql: &str) {
        self.prepared.lock().unwrap_or_else(|p| p.into_inner()).remove(sql);
    }

    /// Runs `sql`, prepared on this connection when `prepare` says so (once,
    /// on its first use), else as an unnamed statement.
    async fn run(
        &self,
        sql: &str,
        params: &[Param<'_>],
        prepare: bool,
    ) -> std::result::Result<Vec<Row>, tokio_postgres::Error> {
        if !prepare {
            return self.client.query_typed(sql, params).await;
        }
        let stmt = match self.cached(sql) {
            Some(s) => s,
            None => {
                let types: Vec<Type> = params.iter().map(|p| p.1.clone()).collect();
                let s = self.client.prepare_typed(sql, &types).await?;
                self.prepared.lock().unwrap_or_else(|p| p.into_inner()).insert(sql.to_string(), s.clone());
                s
            }
        };
        let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.0).collect();
        match self.client.query(&stmt, &values).await {
            // The statement went stale: a migration of another client changed
            // what it returns, or the server lost it. Unprepared, it works.
            Err(e) if e.code().is_some_and(|c| matches!(c.code(), "0A000" | "26000")) => {
                self.forget(sql);
                self.client.query_typed(sql, params).await
            }
            r => r,
        }
    }
}

/// The session the backend holds now, and its generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lease {
    id: i64,
    generation: u64,
}

/// The statements of the backend, with the schema filled in.
#[derive(Debug)]
struct Statements {
    open_session: String,
    renew: String,
    drop_session: String,
    join: String,
    step: String,
    withdraw: String,
    proclaim: String,
    end: String,
    snapshot: String,
    epoch: String,
    verify: String,
    own: String,
    session_alive: String,
}

impl Statements {
    fn new(schema: &str) -> Statements {
        let f = |t: &str| sql::fill(t, schema);
        Statements {
            open_session: f("SELECT {s}.open_session($1)"),
            renew: f("SELECT {s}.renew($1)"),
            drop_session: f("SELECT {s}.drop_sessions(ARRAY[$1::bigint])"),
            join: f("SELECT o_id, o_epoch FROM {s}.join($1, $2, $3)"),
            step: f("SELECT o_state, o_pred, o_wait_ms, o_term, o_value, o_epoch FROM {s}.step($1, $2)"),
            withdraw: f("SELECT {s}.withdraw($1)"),
            proclaim: f("SELECT {s}.proclaim($1, $2)"),
            end: f("SELECT {s}.end_election($1)"),
            snapshot: f("SELECT o_id, o_term, o_value, o_epoch FROM {s}.snapshot($1)"),
            epoch: f("SELECT coalesce((SELECT e.epoch FROM {s}.elections e WHERE e.name = $1), 0)"),
            verify: f("SELECT EXISTS (SELECT 1 FROM {s}.candidates c JOIN {s}.sessions s ON s.id = c.session_id \
                       WHERE c.id = $1 AND c.session_id = $2 AND s.expires_at > clock_timestamp())"),
            own: f("SELECT c.term FROM {s}.candidates c WHERE c.id = $1"),
            session_alive: f("SELECT EXISTS (SELECT 1 FROM {s}.sessions s \
                              WHERE s.id = $1 AND s.expires_at > clock_timestamp())"),
        }
    }
}

pub(crate) struct PgBackend {
    shared: Arc<Shared>,
    tasks: Vec<AbortHandle>,
    /// The process's listening connection that this client shares (none
    /// through a transaction pooler), until `close`.
    hub: std::sync::Mutex<Option<Arc<ListenHub>>>,
}

impl fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgBackend").field("url", &self.shared.shown).finish_non_exhaustive()
    }
}

impl Drop for PgBackend {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct Shared {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    schema: String,
    /// The namespace with its trailing `/`, or empty.
    ns: String,
    /// The URL for messages (no password).
    shown: String,
    /// Whether the URL names a transaction pooler (said by `pooler=`, or found
    /// at connect): no LISTEN, waiters poll.
    pooled: AtomicBool,
    sql: Statements,
    session: Arc<SessionTracker>,
    lease: watch::Sender<Lease>,
    ttl: Duration,
    op_timeout: Duration,
    connect_timeout: Duration,
    /// The connection every query goes through, made again when it broke.
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    notes: NoteRouter,
    closed: AtomicBool,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").field("url", &self.shown).finish_non_exhaustive()
    }
}

/// A PostgreSQL error as a ballot error. Server errors keep their SQLSTATE;
/// nothing here can hold the password.
fn map_err(what: &str, e: &tokio_postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let msg = db.message();
        let auth_text = msg.contains("password authentication failed")
            || msg.contains("SASL authentication failed")
            || msg.contains("no such user");
        let kind = match code {
            _ if auth_text => ErrorKind::Auth,
            "28P01" | "28000" | "42501" => ErrorKind::Auth,
            c if c.starts_with("08") => ErrorKind::Connection,
            "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01" => ErrorKind::Connection,
            _ => ErrorKind::Backend,
        };
        if code == "42501" && !auth_text {
            // A missing privilege: the server's text names the object, not the user.
            return Error::new(kind, format!("postgres {what}: {msg} (SQLSTATE {code})"));
        }
        if kind == ErrorKind::Auth {
            // The server's text names the user, which is never shown.
            return Error::new(kind, format!("postgres {what}: authentication failed (SQLSTATE {code})"));
        }
        return Error::new(kind, format!("postgres {what}: {msg} (SQLSTATE {code})"));
    }
    let mut text = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    // tokio-postgres's own check, before anything is sent: the server asked for
    // a password and there is none. That is a credential problem, not the
    // transport's, and no retry will fix it.
    if text.contains("password missing") {
        return Error::new(
            ErrorKind::Auth,
            format!(
                "postgres {what}: the server asks for a password and none was given (in the URL, the options' \
                 password, or PGPASSWORD)"
            ),
        );
    }
    // Everything else is the transport: refused, reset, closed, TLS.
    Error::new(ErrorKind::Connection, format!("postgres {what}: {text}"))
}

fn retryable(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout)
}

fn column<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(|e| Error::new(ErrorKind::Backend, format!("postgres: unexpected result column {i}: {e}")))
}

fn first<'a>(rows: &'a [Row], what: &str) -> Result<&'a Row> {
    rows.first().ok_or_else(|| Error::new(ErrorKind::Backend, format!("postgres {what}: no row returned")))
}

/// The user name: the URL's or the options', else `PGUSER`, else the OS user.
fn user_name(url: &BackendUrl, options: &Options) -> Result<(String, Option<String>)> {
    let (user, password) = match (&url.user, &url.password, &options.credentials) {
        (Some(u), Some(p), _) => (Some(u.clone()), Some(p.0.clone())),
        (Some(u), None, _) => (Some(u.clone()), None),
        (None, _, Some(Credentials::Password { user, password })) => (Some(user.clone()), Some(password.clone())),
        // A bare userinfo arrives as a token: for PostgreSQL it is the user name.
        (None, _, Some(Credentials::Token(t))) => (Some(t.clone()), None),
        (None, _, _) => (None, None),
    };
    let user = user
        .or_else(|| std::env::var("PGUSER").ok().filter(|u| !u.is_empty()))
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "postgres".to_string());
    let password = password.or_else(|| std::env::var("PGPASSWORD").ok());
    Ok((user, password))
}

/// One URL file option under its libpq name or ballot's, and the options' value.
fn tls_file(
    url: &BackendUrl,
    libpq: &str,
    ours: &str,
    from_options: Option<&std::path::PathBuf>,
) -> Result<Option<std::path::PathBuf>> {
    let a = url.option(libpq).map(std::path::PathBuf::from);
    let b = url.option(ours).map(std::path::PathBuf::from);
    let v = match (a, b) {
        (Some(a), Some(b)) if a != b => {
            return Err(Error::invalid(format!(
                "options {libpq} and {ours} name different files; they are the same option, give one"
            )))
        }
        (a, b) => a.or(b),
    };
    match (v, from_options) {
        (Some(v), Some(o)) if &v != o => Err(Error::invalid(format!(
            "the TLS file {libpq} differs between the URL and the options; give it in one place"
        ))),
        (v, o) => Ok(v.or_else(|| o.cloned())),
    }
}

impl PgBackend {
    /// Connects, brings the schema up to date, opens the session and starts
    /// keeping it alive.
    pub(crate) async fn connect(url: &BackendUrl, options: &Options) -> Result<PgBackend> {
        let schema = url.option("schema").unwrap_or("ballot").to_string();
        sql::check_schema(&schema).map_err(Error::invalid)?;
        // None: find out at connect.
        let pooler = match url.option("pooler") {
            None | Some("auto") => None,
            Some("none") => Some(false),
            Some("transaction") => Some(true),
            Some(v) => return Err(Error::invalid(format!("option pooler={v:?}: expected auto, none or transaction"))),
        };
        let otls = options.tls.clone().unwrap_or_default();
        let files = TlsFiles {
            root_cert: tls_file(url, "sslrootcert", "ca", otls.ca.as_ref())?,
            cert: tls_file(url, "sslcert", "cert", otls.cert.as_ref())?,
            key: tls_file(url, "sslkey", "key", otls.key.as_ref())?,
        };
        let mode = match url.option("sslmode") {
            Some(m) => SslMode::parse(m)?,
            None if files.root_cert.is_some() => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        if mode == SslMode::Disable && (files.root_cert.is_some() || files.cert.is_some() || files.key.is_some()) {
            return Err(Error::invalid("sslmode=disable contradicts the TLS files given"));
        }
        let tls = MakeRustlsConnect::new(tls::client_config(mode, &files)?);
        let (dbname, ns) = match url.path.split_once('/') {
            Some((db, ns)) => (Some(db.to_string()), format!("{ns}/")),
            None if url.path.is_empty() => (None, String::new()),
            None => (Some(url.path.clone()), String::new()),
        };
        let (user, password) = user_name(url, options)?;
        let mut config = tokio_postgres::Config::new();
        for h in &url.hosts {
            config.host(&h.host).port(h.port);
        }
        config.user(&user).dbname(dbname.as_deref().unwrap_or(&user)).application_name("ballot");
        if let Some(p) = &password {
            config.password(p.as_bytes());
        }
        config.ssl_mode(match mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        config.connect_timeout(options.connect_timeout);
        // A half-open connection (a peer gone without a FIN) is noticed within
        // about 11 s by TCP keepalives, also on the idle listening connection.
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(2))
            .keepalives_retries(3);
        if url.hosts.len() > 1 {
            config.target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite);
        }
        let shown = url.to_string();
        let hub_key = HubKey {
            hosts: url.hosts.iter().map(|h| (h.host.clone(), h.port)).collect(),
            dbname: dbname.clone().unwrap_or_else(|| user.clone()),
            user,
            password,
            ssl: mode,
            files: [files.root_cert.clone(), files.cert.clone(), files.key.clone()],
            schema: schema.clone(),
        };
        let ttl = options.ttl;
        let notes = NoteRouter::default();
        let session = SessionTracker::new(Some(ttl), options.safety_margin());
        let (lease, _) = watch::channel(Lease { id: 0, generation: 0 });
        let shared = Arc::new(Shared {
            config,
            tls,
            sql: Statements::new(&schema),
            schema,
            ns,
            shown: shown.clone(),
            pooled: AtomicBool::new(pooler == Some(true)),
            session,
            lease,
            ttl,
            op_timeout: options.connect_timeout.max(ttl).max(Duration::from_secs(2)),
            connect_timeout: options.connect_timeout,
            conn: tokio::sync::Mutex::new(None),
            notes,
            closed: AtomicBool::new(false),
        });
        // Report an unreachable server as `Connection` before the client's
        // overall connect timeout turns it into `Timeout`.
        let budget = options.connect_timeout.mul_f64(0.9);
        let sh = shared.clone();
        let setup = async move {
            let mut first = sh.connect_raw().await?;
            migrate(&mut first, &sh.schema).await?;
            *sh.conn.lock().await = Some(Arc::new(Conn::new(first)));
            let hub = match pooler {
                Some(true) => None,
                Some(false) => Some(sh.join_hub(hub_key).await?),
                None => {
                    let hub = sh.join_hub(hub_key).await?;
                    if sh.notifications_arrive().await? {
                        hub.confirm();
                        Some(hub)
                    } else {
                        // A pooler: this client polls.
                        hub.found_a_pooler().await;
                        sh.pooled.store(true, Ordering::SeqCst);
                        None
                    }
                }
            };
            let sent = Stamp::now();
            let id = sh.open_session().await?;
            sh.lease.send_modify(|l| {
                let generation = sh.session.new_session(sent);
                *l = Lease { id, generation };
            });
            Ok::<_, Error>(hub)
        };
        let hub = match tokio::time::timeout(budget, setup).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!(
                        "could not reach PostgreSQL at {shown} within the connect timeout {:?}",
                        options.connect_timeout
                    ),
                ))
            }
        };
        let tasks = vec![tokio::spawn(keep_session(Arc::downgrade(&shared))).abort_handle()];
        Ok(PgBackend { shared, tasks, hub: std::sync::Mutex::new(hub) })
    }
}

/// Applies the migrations not yet applied, in one transaction under an advisory
/// lock. A schema that is up to date is only read, so a role without the right
/// to run DDL works once the schema exists (`ballot pg-schema`).
async fn migrate(client: &mut tokio_postgres::Client, schema: &str) -> Result<()> {
    let latest = sql::MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    // Two statements: a query naming a table that does not exist fails when
    // it is planned, whatever branch would run.
    let exists_sql = sql::fill("SELECT to_regclass('{s}.schema_migrations') IS NOT NULL", schema);
    let version_sql = sql::fill(sql::SCHEMA_VERSION, schema);
    let exists = cell(client.simple_query(&exists_sql).await.map_err(|e| map_err("schema check", &e))?)? == "t";
    let now = if exists {
        version(cell(client.simple_query(&version_sql).await.map_err(|e| map_err("schema check", &e))?)?)?
    } else {
        -1
    };
    if now >= latest {
        return Ok(());
    }
    match upgrade(client, schema).await {
        // A role that may not run DDL goes on with a schema it can work with;
        // its owner upgrades it with `ballot pg-schema --from VERSION`.
        Err(e) if e.kind() == ErrorKind::Auth && now >= sql::COMPATIBLE_FROM => Ok(()),
        Err(e) if e.kind() == ErrorKind::Auth => Err(Error::new(
            ErrorKind::Auth,
            format!(
                "postgres: the schema {schema:?} {} and this role may not create it: have the database's owner \
                 apply the SQL of `ballot pg-schema --schema {schema} --from {}` ({})",
                if now < 0 { "does not exist".to_string() } else { format!("is at version {now}") },
                now.max(0),
                e.message()
            ),
        )),
        other => other,
    }
}

/// Applies the migrations after the schema's version, in one transaction
/// under the migrations' advisory lock.
async fn upgrade(client: &mut tokio_postgres::Client, schema: &str) -> Result<()> {
    let version_sql = sql::fill(sql::SCHEMA_VERSION, schema);
    let tx = client.transaction().await.map_err(|e| map_err("schema migration", &e))?;
    tx.batch_execute(&sql::migration_lock(schema)).await.map_err(|e| map_err("schema migration lock", &e))?;
    tx.batch_execute(&sql::fill(sql::PREAMBLE, schema)).await.map_err(|e| map_err("creating the schema", &e))?;
    let now = version(cell(tx.simple_query(&version_sql).await.map_err(|e| map_err("schema check", &e))?)?)?;
    for (v, body) in sql::MIGRATIONS.iter().filter(|(v, _)| *v > now) {
        tx.batch_execute(&sql::fill(body, schema)).await.map_err(|e| map_err(&format!("schema migration {v}"), &e))?;
        tx.batch_execute(&sql::fill(&format!("INSERT INTO {{s}}.schema_migrations (version) VALUES ({v})"), schema))
            .await
            .map_err(|e| map_err("recording a migration", &e))?;
    }
    tx.commit().await.map_err(|e| map_err("schema migration commit", &e))
}

/// The first cell of a simple query's answer.
fn cell(msgs: Vec<tokio_postgres::SimpleQueryMessage>) -> Result<String> {
    for m in msgs {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
            return r
                .get(0)
                .map(str::to_string)
                .ok_or_else(|| Error::new(ErrorKind::Backend, "postgres: unreadable schema version"));
        }
    }
    Err(Error::new(ErrorKind::Backend, "postgres: no schema version returned"))
}

fn version(v: String) -> Result<i32> {
    v.parse().map_err(|_| Error::new(ErrorKind::Backend, "postgres: unreadable schema version"))
}

type Param<'a> = (&'a (dyn ToSql + Sync), Type);

impl Shared {
    fn full_name(&self, election: &str) -> String {
        format!("{}{election}", self.ns)
    }

    fn poll(&self) -> Duration {
        if self.pooled.load(Ordering::Relaxed) {
            POOLED_POLL
        } else {
            DIRECT_POLL
        }
    }

    /// A new connection, its driver spawned.
    async fn connect_raw(&self) -> Result<tokio_postgres::Client> {
        let fut = self.config.connect(self.tls.clone());
        let (client, conn) = match tokio::time::timeout(self.connect_timeout, fut).await {
            Ok(r) => r.map_err(|e| map_err("connect", &e))?,
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!("postgres connect: no answer from {} within {:?}", self.shown, self.connect_timeout),
                ))
            }
        };
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// The connection queries go through, connecting again if it broke.
    async fn client(&self) -> Result<Arc<Conn>> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::closed());
        }
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.client.is_closed()) {
            return Ok(c.clone());
        }
        let c = Arc::new(Conn::new(self.connect_raw().await?));
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Runs one statement that is safe to repeat (one transaction on the
    /// server), bounded by the op timeout. A connection found broken (closed,
    /// terminated by an administrator, the server shutting down) is replaced and
    /// the statement sent once more on the new one.
    async fn query(&self, what: &str, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        self.query_prepared(what, sql, params, !self.pooled.load(Ordering::Relaxed)).await
    }

    /// [`query`](Shared::query), the statement prepared or not.
    async fn query_prepared(&self, what: &str, sql: &str, params: &[Param<'_>], prepare: bool) -> Result<Vec<Row>> {
        match self.run(what, sql, params, prepare).await {
            Err(e) if e.kind() == ErrorKind::Connection && !self.closed.load(Ordering::SeqCst) => {
                self.run(what, sql, params, prepare).await
            }
            other => other,
        }
    }

    /// Runs one statement once, bounded by the op timeout; a connection that
    /// fails or does not answer in time is dropped, so the next statement makes
    /// a new one. For statements that must not run twice (a join, `end()`).
    async fn query_once(&self, what: &str, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        self.run(what, sql, params, !self.pooled.load(Ordering::Relaxed)).await
    }

    /// [`query_once`](Shared::query_once), the statement prepared or not.
    async fn run(&self, what: &str, sql: &str, params: &[Param<'_>], prepare: bool) -> Result<Vec<Row>> {
        let c = self.client().await?;
        let err = match tokio::time::timeout(self.op_timeout, c.run(sql, params, prepare)).await {
            Ok(Ok(rows)) => return Ok(rows),
            Ok(Err(e)) => map_err(what, &e),
            Err(_) => Error::new(
                ErrorKind::Connection,
                format!("postgres {what}: no answer from {} within {:?}", self.shown, self.op_timeout),
            ),
        };
        if err.kind() == ErrorKind::Connection {
            let mut slot = self.conn.lock().await;
            if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, &c)) {
                *slot = None;
            }
        }
        Err(err)
    }

    async fn open_session(&self) -> Result<i64> {
        let ttl_ms = i64::try_from(self.ttl.as_millis()).map_err(|_| Error::invalid("ttl is too long"))?;
        let rows = self.query_once("open session", &self.sql.open_session, &[(&ttl_ms, Type::INT8)]).await?;
        column(first(&rows, "open session")?, 0)
    }

    async fn renew(&self, id: i64) -> Result<bool> {
        // Not prepared: it runs once per TTL/3, and its text on the wire is how
        // a proxy (the bench's statement counter, the tests) tells a renewal.
        let rows = self.query_prepared("renew session", &self.sql.renew, &[(&id, Type::INT8)], false).await?;
        column(first(&rows, "renew session")?, 0)
    }

    async fn drop_session(&self, id: i64) -> Result<()> {
        self.query("drop session", &self.sql.drop_session, &[(&id, Type::INT8)]).await.map(|_| ())
    }

    async fn snapshot(&self, election: &str) -> Result<Snapshot> {
        let rows = self.query("read", &self.sql.snapshot, &[(&election, Type::TEXT)]).await?;
        let row = first(&rows, "read")?;
        let id: Option<i64> = column(row, 0)?;
        let term: Option<i64> = column(row, 1)?;
        let value: Option<Vec<u8>> = column(row, 2)?;
        let epoch: Option<i64> = column(row, 3)?;
        let leader = match (id, term, value) {
            (Some(id), Some(term), Some(value)) => Some(self.leader_of(id, term, value)),
            _ => None,
        };
        Ok(Snapshot { leader, epoch: epoch.unwrap_or(0) as u64 })
    }

    async fn epoch(&self, election: &str) -> Result<u64> {
        let rows = self.query("read epoch", &self.sql.epoch, &[(&election, Type::TEXT)]).await?;
        let e: i64 = column(first(&rows, "read epoch")?, 0)?;
        Ok(e as u64)
    }

    async fn session_alive(&self, id: i64) -> Result<bool> {
        let rows = self.query("read session", &self.sql.session_alive, &[(&id, Type::INT8)]).await?;
        column(first(&rows, "read session")?, 0)
    }

    fn leader_of(&self, id: i64, term: i64, value: Vec<u8>) -> Leader {
        Leader::new(value, term as u64, format!("{}.candidates/{id}", self.schema))
    }

    /// Joins the process's listening connection for `key` (opening it if this is
    /// the first client of the process to connect this way).
    async fn join_hub(&self, key: HubKey) -> Result<Arc<ListenHub>> {
        let how = || HubConfig {
            config: self.config.clone(),
            tls: self.tls.clone(),
            schema: self.schema.clone(),
            shown: self.shown.clone(),
            connect_timeout: self.connect_timeout,
            op_timeout: self.op_timeout,
        };
        ListenHub::join(key, how, &self.notes).await
    }

    /// Whether a NOTIFY sent through the query connection reaches the listening
    /// connection. Through a pooler in transaction mode it does not: the LISTEN
    /// ran on a server connection that went back to the pool, and the
    /// notification goes to that server connection, never to the listening
    /// client (no other client's transaction is open on it at that moment).
    async fn notifications_arrive(&self) -> Result<bool> {
        static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let token = format!("probe-{}-{}", std::process::id(), PROBES.fetch_add(1, Ordering::Relaxed));
        let mut notes = self.notes.subscribe(&token);
        let sql = sql::fill("SELECT pg_notify({chan}, '-2 probe ' || $1)", &self.schema);
        // Not prepared: whether a pooler is in between is what this finds out.
        self.query_prepared("probe", &sql, &[(&token, Type::TEXT)], false).await?;
        let arrived = tokio::time::timeout(PROBE_WAIT, async {
            loop {
                match notes.recv().await {
                    Ok(n) if n.id == -2 && *n.election == *token => return true,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return false,
                }
            }
        })
        .await;
        Ok(arrived.unwrap_or(false))
    }
}

/// Keeps the current session alive every TTL/3 and replaces it when it is lost.
async fn keep_session(weak: std::sync::Weak<Shared>) {
    let mut backoff = Duration::from_millis(100);
    let mut wait = None;
    loop {
        let Some(sh) = weak.upgrade() else { return };
        if sh.closed.load(Ordering::SeqCst) {
            return;
        }
        let cur = *sh.lease.borrow();
        let st = sh.session.status();
        if st.generation != cur.generation || st.health == Health::Lost {
            // Dead to us (expired, or past its local deadline): drop it (its
            // candidates go with it) and open a new one.
            let old = cur.id;
            let sh2 = sh.clone();
            tokio::spawn(async move {
                let _ = sh2.drop_session(old).await;
            });
            let sent = Stamp::now();
            match sh.open_session().await {
                Ok(id) => {
                    sh.lease.send_modify(|l| {
                        let generation = sh.session.new_session(sent);
                        *l = Lease { id, generation };
                    });
                    backoff = Duration::from_millis(100);
                    wait = None;
                }
                Err(_) => {
                    drop(sh);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
            continue;
        }
        let interval = sh.ttl / 3;
        let tracker = sh.session.clone();
        drop(sh);
        let mut sessions = tracker.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(wait.unwrap_or(interval)) => {}
            _ = sessions.wait_for(|s| s.generation != cur.generation || s.health == Health::Lost) => continue,
        }
        let Some(sh) = weak.upgrade() else { return };
        let sent = Stamp::now();
        let started = tokio::time::Instant::now();
        match tokio::time::timeout(interval, sh.renew(cur.id)).await {
            Ok(Ok(true)) => {
                tracker.acked(cur.generation, sent);
                // The next renewal is due an interval after this one was sent,
                // not after its answer came: Suspended counts from the send,
                // so a slow answer must not push the next renewal past it.
                wait = Some(interval.saturating_sub(started.elapsed()));
            }
            Ok(Ok(false)) => tracker.expired(cur.generation),
            _ => {
                tracker.disconnected(cur.generation);
                // Try again soon: the deadline is running.
                wait = Some(Duration::from_millis(200).min(interval));
            }
        }
    }
}

/// Waits until a notification `want` accepts arrives (or one saying that
/// notifications were lost), or `limit` passes; returns the notification that
/// `want` accepted, if one did.
async fn wait_note(rx: &mut broadcast::Receiver<Note>, limit: Duration, want: impl Fn(&Note) -> bool) -> Option<Note> {
    tokio::time::timeout(limit, async {
        loop {
            match rx.recv().await {
                Ok(n) if n.id == -1 => return None,
                Ok(n) if want(&n) => return Some(n),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => return None,
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// The state of one election's epoch stream (`watch_epoch`).
struct EpochWatch {
    sh: Arc<Shared>,
    name: String,
    notes: broadcast::Receiver<Note>,
    /// The last epoch read.
    last: u64,
    /// Failed reads in a row that may pass (a connection error).
    failures: u32,
    /// Whether the first epoch was given.
    started: bool,
    /// Whether an error ended the stream.
    failed: bool,
}

#[async_trait]
impl Backend for PgBackend {
    fn session(&self) -> &Arc<SessionTracker> {
        &self.shared.session
    }

    fn max_value_len(&self) -> usize {
        MAX_VALUE
    }

    async fn join(&self, election: &str, value: &[u8]) -> Result<Arc<dyn Entry>> {
        let sh = &self.shared;
        let st = sh.session.status();
        let lease = *sh.lease.borrow();
        if st.generation != lease.generation || st.health == Health::Lost {
            return Err(Error::new(ErrorKind::SessionLost, "the PostgreSQL session is being replaced"));
        }
        let name = sh.full_name(election);
        // The insert runs in a task of its own: if the caller's future is dropped
        // after the row was written, the task withdraws it (it would lead some
        // day with nobody acting on it).
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task_sh = sh.clone();
        let task_name = name.clone();
        let own_value = value.to_vec();
        let value = value.to_vec();
        tokio::spawn(async move {
            let rows = task_sh
                .query_once(
                    "campaign",
                    &task_sh.sql.join,
                    &[(&task_name, Type::TEXT), (&lease.id, Type::INT8), (&value, Type::BYTEA)],
                )
                .await;
            let parsed = rows.and_then(|rows| {
                let row = first(&rows, "campaign")?;
                Ok((column::<Option<i64>>(row, 0)?, column::<Option<i64>>(row, 1)?))
            });
            if let Err(Ok((Some(id), _))) = tx.send(parsed) {
                let _ = task_sh.query("withdraw", &task_sh.sql.withdraw, &[(&id, Type::INT8)]).await;
            }
        });
        let (id, epoch) =
            rx.await.map_err(|_| Error::new(ErrorKind::Internal, "postgres campaign: the insert task vanished"))??;
        let Some(id) = id else {
            sh.session.expired(lease.generation);
            return Err(Error::new(ErrorKind::SessionLost, "the PostgreSQL session expired"));
        };
        Ok(Arc::new(PgEntry {
            shared: sh.clone(),
            election: name,
            id,
            session_id: lease.id,
            generation: lease.generation,
            epoch: epoch.unwrap_or(0) as u64,
            value: own_value,
            gone: AtomicBool::new(false),
        }))
    }

    async fn leader(&self, election: &str) -> Result<Option<Leader>> {
        Ok(self.shared.snapshot(&self.shared.full_name(election)).await?.leader)
    }

    async fn participants(&self, election: &str) -> Result<Vec<Participant>> {
        self.shared.participants(election).await
    }

    async fn watch(&self, election: &str) -> Result<SnapshotStream> {
        let sh = self.shared.clone();
        let name = sh.full_name(election);
        let mut notes = sh.notes.subscribe(&name);
        let first = sh.snapshot(&name).await?;
        let (tx, mut rx) = mpsc::channel::<Result<Snapshot>>(16);
        let _ = tx.send(Ok(first.clone())).await;
        tokio::spawn(async move {
            let mut last = first;
            let mut failures = 0;
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = wait_note(&mut notes, sh.poll(), |n| n.op != Op::Joined && *n.election == *name) => {}
                }
                match sh.snapshot(&name).await {
                    Ok(s) => {
                        failures = 0;
                        if s != last {
                            last = s.clone();
                            if tx.send(Ok(s)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) if retryable(&e) && failures < 3 => {
                        failures += 1;
                        tokio::time::sleep(Duration::from_millis(100 << failures)).await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
        Ok(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed())
    }

    async fn watch_epoch(&self, election: &str) -> Result<EpochStream> {
        let sh = self.shared.clone();
        let name = sh.full_name(election);
        let notes = sh.notes.subscribe(&name);
        let first = sh.epoch(&name).await?;
        // Only end() (id 0) changes the epoch; through a pooler, polled slowly.
        let every = if sh.pooled.load(Ordering::Relaxed) { POOLED_SLOW_POLL } else { DIRECT_POLL };
        // The stream does its work in the task that polls it, with no task or
        // channel of its own, and boxes its query only while it runs: a client
        // holding 10,000 elections held 10,000 of each, about 7 KiB apiece.
        let watch = EpochWatch { sh, name, notes, last: first, failures: 0, started: false, failed: false };
        Ok(futures_util::stream::unfold(watch, move |mut w| async move {
            if w.failed {
                return None;
            }
            if !std::mem::replace(&mut w.started, true) {
                return Some((Ok(w.last), w));
            }
            loop {
                let name = &w.name;
                wait_note(&mut w.notes, every, |n| n.op == Op::Ended && *n.election == **name).await;
                match Box::pin(w.sh.epoch(&w.name)).await {
                    Ok(e) => {
                        w.failures = 0;
                        if e != w.last {
                            w.last = e;
                            return Some((Ok(e), w));
                        }
                    }
                    Err(e) if retryable(&e) && w.failures < 3 => {
                        w.failures += 1;
                        tokio::time::sleep(Duration::from_millis(100 << w.failures)).await;
                    }
                    Err(e) => {
                        w.failed = true;
                        return Some((Err(e), w));
                    }
                }
            }
        })
        .boxed())
    }

    async fn end(&self, election: &str) -> Result<()> {
        let name = self.shared.full_name(election);
        self.shared.query_once("end", &self.shared.sql.end, &[(&name, Type::TEXT)]).await.map(|_| ())
    }

    async fn close(&self) {
        let sh = &self.shared;
        let lease = *sh.lease.borrow();
        // Best effort, briefly: the session's expiry cleans up otherwise.
        let _ = tokio::time::timeout(Duration::from_secs(2), sh.drop_session(lease.id)).await;
        sh.closed.store(true, Ordering::SeqCst);
        *sh.conn.lock().await = None;
        for t in &self.tasks {
            t.abort();
        }
        drop(self.hub.lock().unwrap_or_else(|p| p.into_inner()).take());
    }
}

/// One candidate: its row in `candidates`.
struct PgEntry {
    shared: Arc<Shared>,
    /// The full name (namespace included).
    election: String,
    id: i64,
    session_id: i64,
    generation: u64,
    epoch: u64,
    /// The value it joined with (what it leads with until a proclaim).
    value: Vec<u8>,
    gone: AtomicBool,
}

impl fmt::Debug for PgEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgEntry").field("election", &self.election).field("id", &self.id).finish_non_exhaustive()
    }
}

/// Why an entry's row is gone.
enum Vanished {
    Ended,
    SessionGone,
    Deleted,
}

impl PgEntry {
    async fn vanished(&self) -> Vanished {
        let sh = &self.shared;
        if sh.epoch(&self.election).await.is_ok_and(|e| e > self.epoch) {
            return Vanished::Ended;
        }
        if sh.session_alive(self.session_id).await.is_ok_and(|alive| !alive) {
            sh.session.expired(self.generation);
            return Vanished::SessionGone;
        }
        Vanished::Deleted
    }

    async fn own_term(&self) -> Result<Option<Option<i64>>> {
        let sh = &self.shared;
        let rows = sh.query("read", &sh.sql.own, &[(&self.id, Type::INT8)]).await?;
        match rows.first() {
            None => Ok(None),
            Some(r) => Ok(Some(column(r, 0)?)),
        }
    }
}

#[async_trait]
impl Entry for PgEntry {
    async fn wait_won(&self) -> Result<Leader> {
        let sh = &self.shared;
        let mut backoff = Duration::from_millis(50);
        loop {
            let mut notes = sh.notes.subscribe(&self.election);
            let rows =
                match sh.query("campaign", &sh.sql.step, &[(&self.election, Type::TEXT), (&self.id, Type::INT8)]).await
                {
                    Ok(r) => r,
                    Err(e) if retryable(&e) => {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
            backoff = Duration::from_millis(50);
            let row = first(&rows, "campaign")?;
            let state: String = column(row, 0)?;
            match state.as_str() {
                "won" => {
                    let epoch: Option<i64> = column(row, 5)?;
                    if epoch.unwrap_or(0) as u64 > self.epoch {
                        return Err(Error::new(ErrorKind::Ended, "the election was ended by end()"));
                    }
                    let term: i64 = column(row, 3)?;
                    let value: Vec<u8> = column(row, 4)?;
                    return Ok(sh.leader_of(self.id, term, value));
                }
                "wait" => {
                    let pred: i64 = column(row, 1)?;
                    let left: i64 = column(row, 2)?;
                    // Wake when the candidate ahead changes, or when the server's
                    // clock may have let its session go.
                    let until_expiry = Duration::from_millis(left.max(0) as u64 + 20);
                    let me = self.id;
                    let election = self.election.as_str();
                    // Only the deletion of the candidate just ahead (or of this
                    // one, or the end) can change where this one stands, or a
                    // withdrawal ahead that handed this one the lead (schema 2).
                    let note = wait_note(&mut notes, sh.poll().min(until_expiry), |n| {
                        matches!((n.op, n.id), (Op::Deleted, id) if id == pred || id == me)
                            || (n.op == Op::Claimed && n.id == me)
                            || (n.op == Op::Ended || n.op == Op::Other) && *n.election == *election
                    })
                    .await;
                    // A hand-over that names the term (schema 2): the claim is
                    // committed, and a candidate still queued is of the current
                    // epoch (end() removes the others under the same row lock).
                    if let Some(Note { op: Op::Claimed, term: Some(term), id, .. }) = note {
                        if id == me {
                            return Ok(sh.leader_of(self.id, term, self.value.clone()));
                        }
                    }
                }
                "expired" => {
                    sh.session.expired(self.generation);
                    tokio::time::sleep(END_GRACE).await;
                    return Err(Error::new(ErrorKind::SessionLost, "the PostgreSQL session of this candidate expired"));
                }
                _ => {
                    return Err(match self.vanished().await {
                        Vanished::Ended => {
                            tokio::time::sleep(END_GRACE).await;
                            Error::ended()
                        }
                        Vanished::SessionGone => {
                            tokio::time::sleep(END_GRACE).await;
                            Error::new(ErrorKind::SessionLost, "the PostgreSQL session of this candidate expired")
                        }
                        Vanished::Deleted => Error::new(
                            ErrorKind::Backend,
                            format!("candidate {} of {:?} was deleted by another client", self.id, self.election),
                        ),
                    })
                }
            }
        }
    }

    async fn lost(&self) -> LostReason {
        let sh = &self.shared;
        let mut backoff = Duration::from_millis(50);
        loop {
            let mut notes = sh.notes.subscribe(&self.election);
            // The queries are boxed: this future lives as long as the leadership,
            // and an inline query would make it several KiB per held election.
            match Box::pin(self.own_term()).await {
                Ok(Some(_)) => {
                    backoff = Duration::from_millis(50);
                    let (me, election) = (self.id, self.election.as_str());
                    let every = if sh.pooled.load(Ordering::Relaxed) { POOLED_SLOW_POLL } else { DIRECT_POLL };
                    wait_note(&mut notes, every, |n| {
                        (n.op == Op::Deleted && n.id == me)
                            || (n.op == Op::Ended || n.op == Op::Other) && *n.election == *election
                    })
                    .await;
                }
                Ok(None) => {
                    return match Box::pin(self.vanished()).await {
                        Vanished::Ended => {
                            // The election watch reports Ended; give it the lead.
                            tokio::time::sleep(END_GRACE).await;
                            LostReason::Deleted
                        }
                        Vanished::SessionGone => {
                            tokio::time::sleep(END_GRACE).await;
                            LostReason::SessionLost
                        }
                        Vanished::Deleted => LostReason::Deleted,
                    };
                }
                Err(_) => {
                    // The session tracker judges connectivity; keep looking.
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    async fn proclaim(&self, value: &[u8]) -> Result<()> {
        let sh = &self.shared;
        let value = value.to_vec();
        let rows = sh.query("proclaim", &sh.sql.proclaim, &[(&self.id, Type::INT8), (&value, Type::BYTEA)]).await?;
        if column::<bool>(first(&rows, "proclaim")?, 0)? {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::NotLeader, "this candidate does not lead (its row is gone or not first)"))
        }
    }

    async fn verify(&self) -> Result<bool> {
        let sh = &self.shared;
        let lease = *sh.lease.borrow();
        if lease.generation != self.generation || lease.id != self.session_id {
            return Ok(false);
        }
        let rows =
            sh.query("verify", &sh.sql.verify, &[(&self.id, Type::INT8), (&self.session_id, Type::INT8)]).await?;
        column(first(&rows, "verify")?, 0)
    }

    async fn withdraw(&self) -> Result<()> {
        if self.gone.load(Ordering::SeqCst) {
            return Ok(());
        }
        let sh = &self.shared;
        match sh.query("withdraw", &sh.sql.withdraw, &[(&self.id, Type::INT8)]).await {
            Ok(_) => {
                self.gone.store(true, Ordering::SeqCst);
                Ok(())
            }
            Err(e) => {
                // Keep trying in the background; the session's expiry removes
                // the row otherwise.
                let (sh, id) = (sh.clone(), self.id);
                tokio::spawn(async move {
                    let mut pause = Duration::from_millis(200);
                    for _ in 0..20 {
                        tokio::time::sleep(pause).await;
                        if sh.closed.load(Ordering::SeqCst)
                            || sh.query("withdraw", &sh.sql.withdraw, &[(&id, Type::INT8)]).await.is_ok()
                        {
                            return;
                        }
                        pause = (pause * 2).min(Duration::from_secs(5));
                    }
                });
                Err(e)
            }
        }
    }

    fn epoch(&self) -> Option<u64> {
        Some(self.epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_ops() {
        for (s, op) in [
            ("j", Op::Joined),
            ("d", Op::Deleted),
            ("c", Op::Claimed),
            ("p", Op::Proclaimed),
            ("e", Op::Ended),
            ("probe", Op::Other),
        ] {
            assert_eq!(Op::parse_with_term(s), (op, None));
        }
        assert_eq!(Op::parse_with_term("c42"), (Op::Claimed, Some(42)));
        assert_eq!(Op::parse_with_term("cx"), (Op::Other, None));
    }

    #[test]
    fn notes_reach_only_their_election_and_unheard_channels_go() {
        let r = NoteRouter::default();
        let note = |id, e: &str| Note { id, op: Op::Deleted, term: None, election: Arc::from(e) };
        let (mut a, mut b) = (r.subscribe("a"), r.subscribe("b"));
        NoteRouter::send_to(&r.inner, note(1, "a"));
        NoteRouter::send_to(&r.inner, note(2, "c"));
        NoteRouter::send_to(&r.inner, note(-1, ""));
        assert_eq!(a.try_recv().unwrap().id, 1);
        assert_eq!(a.try_recv().unwrap().id, -1);
        assert_eq!(b.try_recv().unwrap().id, -1, "b hears only the lost-notifications note");
        assert!(a.try_recv().is_err() && b.try_recv().is_err());
        drop(b);
        NoteRouter::send_to(&r.inner, note(3, "b"));
        assert!(!r.inner.lock().unwrap().by_election.contains_key("b"), "a channel nobody hears is dropped");
        for i in 0..200 {
            drop(r.subscribe(&format!("x{i}")));
        }
        assert!(r.inner.lock().unwrap().by_election.len() <= 130, "unheard channels are swept as the table grows");
        drop(a);
    }

    #[test]
    fn sslmodes_follow_libpq() {
        assert_eq!(SslMode::parse("verify-full").unwrap(), SslMode::VerifyFull);
        assert_eq!(SslMode::parse("verify-ca").unwrap(), SslMode::VerifyCa);
        assert_eq!(SslMode::parse("disable").unwrap(), SslMode::Disable);
        for bad in ["allow", "VERIFY-FULL", ""] {
            assert_eq!(SslMode::parse(bad).unwrap_err().kind(), ErrorKind::InvalidArgument, "{bad:?}");
        }
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["ballot", "_x", "a1_b2", &"s".repeat(63)] {
            assert!(sql::check_schema(good).is_ok(), "{good:?}");
        }
        for bad in ["", "Ballot", "1a", "a-b", "a\"b", "a;drop", &"s".repeat(64)] {
            assert!(sql::check_schema(bad).is_err(), "{bad:?}");
        }
        assert_eq!(sql::fill("{s}.t {chan}", "ballot"), "\"ballot\".t 'ballot'");
    }
}
