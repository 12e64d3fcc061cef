//! PostgreSQL-specific behaviour, against the real PostgreSQL and PgBouncer that
//! `tests/servers/harness.py` starts (kinds `pg` and `pgbouncer`): the SQL fence
//! (`ballot.is_leader`), wrong credentials, TLS with `verify-full` and a wrong CA,
//! an unreachable server, a server restart, `pg_terminate_backend` of the
//! client's connections, a pooler restart, and candidates mixing a direct
//! connection and PgBouncer, and the resign's hand-over (the successor elected
//! by the resigner's notification without a statement of its own, many
//! hand-overs with the fence, a successor withdrawing or expired as it is
//! promoted), and the one listening connection that the clients of a process
//! share. The conformance suite covers the common contract.
//!
//! The tests that restart a server or cut connections take `DISRUPT` for
//! writing; the others take it for reading, so they never meet.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ballot::{Client, Election, ErrorKind, Event, Leadership, Options, State};
use tokio::sync::RwLock;
use tokio::task::JoinHandle;

mod common;
use common::harness::harness;
use common::{require, unique, wait_event, wait_state, within};

static DISRUPT: RwLock<()> = RwLock::const_new(());

fn live() -> Duration {
    require("pg").live
}

fn takeover() -> Duration {
    require("pg").takeover
}

/// A fresh namespace on `kind` (`pg` or `pgbouncer`), password included.
fn url(kind: &str) -> String {
    let b = require(kind);
    b.with_query(&format!("{}/{}", b.fact("URL"), unique("ns")))
}

/// `HOST:PORT` of `kind` (`pg` or `pgbouncer`).
fn hostport(kind: &str) -> String {
    format!("127.0.0.1:{}", require(kind).fact("PORT"))
}

/// A schema name of its own for one test (the test drops it at its end).
fn fresh_schema(tag: &str) -> String {
    format!("ballot_{}", unique(tag).replace('-', "_"))
}

/// `url` with `schema=` added.
fn in_schema(url: &str, schema: &str) -> String {
    format!("{url}{}schema={schema}", if url.contains('?') { '&' } else { '?' })
}

fn opts() -> Options {
    Options::default().with_ttl(require("pg").ttl)
}

async fn connect(url: &str) -> Client {
    Client::connect(url, opts()).await.unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// A plain SQL connection of the test role, straight to the server.
async fn sql() -> tokio_postgres::Client {
    let b = require("pg");
    let conn = format!(
        "host=127.0.0.1 port={} user={} password={} dbname={}",
        b.fact("PORT"),
        b.fact("USER"),
        b.fact("PASSWORD"),
        b.fact("DB")
    );
    let (c, conn) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.expect("a SQL connection");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    c
}

/// The candidate id in a leader's key (`ballot.candidates/ID`).
fn candidate_id(key: &str) -> i64 {
    key.rsplit('/').next().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("key {key:?}"))
}

/// The SQL fence: a write guarded by `ballot.is_leader(election, term)` in the
/// user's own transaction is refused for a deposed leader (its session expired
/// by the server's clock) and accepted for its successor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_fence_refuses_a_deposed_leader_and_accepts_its_successor() {
    let _g = DISRUPT.read().await;
    let u = url("pg");
    let (a, b) = (connect(&u).await, connect(&u).await);
    let ns = namespace(&u);
    let name = unique("fence");
    let full = format!("{ns}/{name}");
    let db = sql().await;
    let table = format!("fence_{}", unique("t").replace('-', "_"));
    db.batch_execute(&format!(
        "CREATE TABLE {table} (id int PRIMARY KEY, v text); INSERT INTO {table} VALUES (1, 'none')"
    ))
    .await
    .unwrap();
    let guarded = format!("UPDATE {table} SET v = $1 WHERE id = 1 AND ballot.is_leader($2, $3)");

    let ea = a.election(&name).unwrap();
    let t1 = within(live(), "a wins", ea.campaign("a")).await.unwrap().term();
    let n = db.execute(&guarded, &[&"a1", &full, &(t1 as i64)]).await.unwrap();
    assert_eq!(n, 1, "the leader's write goes through");
    let eb = b.election(&name).unwrap();
    let eb2 = eb.clone();
    let waiting = tokio::spawn(async move { eb2.campaign("b").await });

    // a's session expires by the server's clock (as after a pause past its TTL).
    let key = ea.leader().await.unwrap().unwrap().key;
    db.execute(
        "UPDATE ballot.sessions SET expires_at = clock_timestamp() \
         WHERE id = (SELECT session_id FROM ballot.candidates WHERE id = $1)",
        &[&candidate_id(&key)],
    )
    .await
    .unwrap();
    let t2 = within(takeover(), "b takes over", waiting).await.unwrap().unwrap().term();
    assert!(t2 > t1);
    // Inside the user's own transaction: the stale term is refused, the new one taken.
    let mut db = db;
    let tx = db.transaction().await.unwrap();
    assert_eq!(tx.execute(&guarded, &[&"a2", &full, &(t1 as i64)]).await.unwrap(), 0, "deposed leader refused");
    assert_eq!(tx.execute(&guarded, &[&"b1", &full, &(t2 as i64)]).await.unwrap(), 1, "successor accepted");
    tx.commit().await.unwrap();
    let v: String = db.query_one(&format!("SELECT v FROM {table} WHERE id = 1"), &[]).await.unwrap().get(0);
    assert_eq!(v, "b1");
    // A wrong election or a term never given is refused too.
    let other: bool = db.query_one("SELECT ballot.is_leader($1, $2)", &[&"nope", &(t2 as i64)]).await.unwrap().get(0);
    assert!(!other);
    eb.resign().await.unwrap();
    let after: bool = db.query_one("SELECT ballot.is_leader($1, $2)", &[&full, &(t2 as i64)]).await.unwrap().get(0);
    assert!(!after, "a resigned leader's term no longer passes");
    db.batch_execute(&format!("DROP TABLE {table}")).await.unwrap();
}

/// A wrong password is `auth`, directly and through PgBouncer, and the password
/// never shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_auth() {
    let _g = DISRUPT.read().await;
    for kind in ["pg", "pgbouncer"] {
        let b = require(kind);
        let u =
            b.with_query(&format!("postgres://{}:wr0ng-s3cret@{}/{}", b.fact("USER"), hostport(kind), b.fact("DB")));
        let e = Client::connect(&u, opts()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Auth, "{kind}: {e}");
        assert!(!format!("{e} {e:?}").contains("wr0ng"), "{e}");
    }
}

/// Nothing listens: a `connection` error within the connect timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_connection() {
    let port = common::free_port();
    let u = format!("postgres://u:p@127.0.0.1:{port}/db");
    let t = std::time::Instant::now();
    let e = Client::connect(&u, opts().with_connect_timeout(Duration::from_secs(2))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(t.elapsed() < Duration::from_secs(2) + Duration::from_secs(5), "{:?}", t.elapsed());
}

/// TLS: `verify-full` with the test CA works; with another CA, or with the
/// system roots (which do not hold the test CA), it fails; `require` and
/// `disable` work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verify_full_and_a_wrong_ca() {
    let _g = DISRUPT.read().await;
    let b = require("pg");
    let base = url("pg");
    let ca = b.fact("CA").to_string();
    let good = format!("{base}?sslmode=verify-full&sslrootcert={ca}");
    let c = connect(&good).await;
    let e = c.election(&unique("tls")).unwrap();
    within(live(), "campaign over verify-full", e.campaign("x")).await.unwrap();
    c.close().await.unwrap();
    // The options' TLS CA means the same.
    let c = Client::connect(
        &base,
        opts().with_tls(ballot::TlsOptions { ca: Some(ca.clone().into()), ..Default::default() }),
    )
    .await
    .unwrap();
    c.close().await.unwrap();

    // Another CA: a fresh self-signed one.
    let dir = std::env::temp_dir().join(unique("pg-wrong-ca"));
    std::fs::create_dir_all(&dir).unwrap();
    let wrong = dir.join("ca.crt");
    let st = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=wrong CA"])
        .arg("-keyout")
        .arg(dir.join("ca.key"))
        .arg("-out")
        .arg(&wrong)
        .output()
        .unwrap();
    assert!(st.status.success());
    for bad in [
        format!("{base}?sslmode=verify-full&sslrootcert={}", wrong.display()),
        format!("{base}?sslmode=verify-ca&sslrootcert={}", wrong.display()),
        format!("{base}?sslmode=verify-full"),
    ] {
        let e = Client::connect(&bad, opts()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Connection, "{bad}: {e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    for ok in [format!("{base}?sslmode=require"), format!("{base}?sslmode=disable"), format!("{base}?sslmode=prefer")] {
        connect(&ok).await.close().await.unwrap();
    }
    let e = Client::connect(&format!("{base}?sslmode=bogus"), opts()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

/// A direct candidate and one through PgBouncer are in the same election: each
/// hands over to the other (NOTIFY from a pooled client reaches a listening one,
/// and the pooled one polls).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_candidates_direct_and_pooled() {
    let _g = DISRUPT.read().await;
    let ns = unique("ns");
    let direct = require("pg").with_query(&format!("{}/{ns}", require("pg").fact("URL")));
    let pooled = require("pgbouncer").with_query(&format!("{}/{ns}", require("pgbouncer").fact("URL")));
    let (a, b) = (connect(&direct).await, connect(&pooled).await);
    let name = unique("mixed");
    let (ea, eb) = (a.election(&name).unwrap(), b.election(&name).unwrap());
    let mut last = within(live(), "a wins", ea.campaign("a")).await.unwrap().term();
    for round in 0..4 {
        let (lead, wait) = if round % 2 == 0 { (&ea, &eb) } else { (&eb, &ea) };
        let w = wait.clone();
        let t = tokio::spawn(async move { w.campaign("next").await });
        assert_eq!(lead.state(), State::Leader);
        lead.resign().await.unwrap();
        let term = within(live(), "hand-off", t).await.unwrap().unwrap().term();
        assert!(term > last);
        last = term;
    }
}

/// A server restart: the leader is suspended, then reconnected (its lease
/// outlived the restart), and terms keep increasing afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_keeps_leadership_and_terms() {
    let _g = DISRUPT.write().await;
    let u = url("pg");
    let (a, b) = (connect(&u).await, connect(&u).await);
    let name = unique("restart");
    let ea = a.election(&name).unwrap();
    let mut events = ea.events();
    let t1 = within(live(), "a wins", ea.campaign("a")).await.unwrap().term();
    tokio::task::spawn_blocking(|| harness("BALLOT_TEST_PG", &["restart-member", "pg", "0"])).await.unwrap();
    // Either the restart went unnoticed between two renewals, or the leader was
    // suspended and came back; it must not have lost.
    within(takeover(), "leader again", async {
        loop {
            if ea.state() == State::Leader && ea.leader().await.ok().flatten().is_some_and(|l| l.term == t1) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    while let Ok(Some(ev)) =
        tokio::time::timeout(Duration::from_millis(10), futures_util::StreamExt::next(&mut events)).await
    {
        assert!(!matches!(ev, Event::Lost { .. }), "lost across a short restart: {ev:?}");
    }
    let eb = b.election(&name).unwrap();
    let eb2 = eb.clone();
    let t = tokio::spawn(async move { eb2.campaign("b").await });
    ea.resign().await.unwrap();
    let t2 = within(live(), "b wins", t).await.unwrap().unwrap().term();
    assert!(t2 > t1, "terms survive the restart: {t2} after {t1}");
}

/// `pg_terminate_backend` of every connection of the test role (the clients'
/// own, and PgBouncer's server connections): the leader keeps (or regains) its
/// leadership, and a waiting candidate still gets the hand-off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_connections_are_replaced() {
    let _g = DISRUPT.write().await;
    for kind in ["pg", "pgbouncer"] {
        let u = url(kind);
        let (a, b) = (connect(&u).await, connect(&u).await);
        let name = unique("term");
        let (ea, eb) = (a.election(&name).unwrap(), b.election(&name).unwrap());
        let t1 = within(live(), "a wins", ea.campaign("a")).await.unwrap().term();
        let eb2 = eb.clone();
        let t = tokio::spawn(async move { eb2.campaign("b").await });
        let db = sql().await;
        let killed: i64 = db
            .query_one(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE usename = current_user AND backend_type = 'client backend' \
                 AND pid <> pg_backend_pid()) k",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        // Directly: two clients, each with a query connection, and the listening
        // connection they share.
        let least = if kind == "pg" { 3 } else { 1 };
        assert!(killed >= least, "{kind}: {killed} connections terminated");
        wait_state(&ea, State::Leader, takeover()).await;
        // A resign after the cut reaches the waiting candidate (its listening
        // connection is made again and wakes it once; through the pooler it polls).
        ea.resign().await.unwrap();
        let t2 = within(live(), "b wins after the cut", t).await.unwrap().unwrap().term();
        assert!(t2 > t1, "{kind}");
        eb.resign().await.unwrap();
    }
}

/// The campaigns of `es[1..]` (each with its index as value), queued in that
/// order behind `es[0]`, which leads. Each is seen in the queue before the next
/// one starts: its state is Campaigning before it joins, and waiting on that
/// let two join in the other order (3 failed runs in 60).
async fn queue_behind_the_first(es: &[Election]) -> Vec<JoinHandle<ballot::Result<Leadership>>> {
    let mut waiting = Vec::new();
    for (i, e) in es.iter().enumerate().skip(1) {
        let e2 = e.clone();
        waiting.push(tokio::spawn(async move { e2.campaign(i.to_string()).await }));
        common::participants_until(e, live(), &format!("{i} queued"), |p| p.len() == i + 1).await;
    }
    waiting
}

/// Each of `es` resigns in turn, from the leader `es[0]` (of term `first`): the
/// next one's queued campaign wins, under a higher term; the last one resigns.
async fn hand_over_in_turn(es: &[Election], waiting: Vec<JoinHandle<ballot::Result<Leadership>>>, first: u64) {
    let mut last = first;
    for (i, w) in waiting.into_iter().enumerate() {
        es[i].resign().await.unwrap();
        let t = within(live(), &format!("{} wins", i + 1), w).await.unwrap().unwrap().term();
        assert!(t > last, "terms increase: {t} after {last}");
        last = t;
    }
    es[es.len() - 1].resign().await.unwrap();
}

/// The clients of one process that connect the same way share one listening
/// connection: PostgreSQL signals every listening server process at each commit
/// that notifies, so a connection per client made each handoff wake as many
/// server processes as the process had clients. A cut of that one connection is
/// repaired for all of them, and it closes with the last client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_one_process_share_one_listening_connection() {
    let _g = DISRUPT.read().await;
    // A schema of its own: other tests of this process listen on theirs.
    let schema = fresh_schema("hub");
    let u = in_schema(&url("pg"), &schema);
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(connect(&u).await);
    }
    let db = sql().await;
    let listening = format!(
        "SELECT pid FROM pg_stat_activity WHERE usename = current_user AND query = 'LISTEN \"{schema}\"' \
         ORDER BY pid"
    );
    let listeners = || async { db.query(&listening, &[]).await.unwrap().iter().map(|r| r.get::<_, i32>(0)).collect() };
    let first: Vec<i32> = listeners().await;
    assert_eq!(first.len(), 1, "5 clients of one process: listening server processes {first:?}");
    let name = unique("hub");
    let es: Vec<_> = clients.iter().map(|c| c.election(&name).unwrap()).collect();
    let t0 = within(live(), "0 wins", es[0].campaign("0")).await.unwrap().term();
    let waiting = queue_behind_the_first(&es).await;
    // The cut: every client's waiters go on over the one connection made again.
    db.execute("SELECT pg_terminate_backend($1)", &[&first[0]]).await.unwrap();
    within(live(), "a new listening connection", async {
        loop {
            let now: Vec<i32> = listeners().await;
            if now.len() == 1 && now[0] != first[0] {
                return;
            }
            assert!(now.len() <= 1, "listening server processes {now:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    hand_over_in_turn(&es, waiting, t0).await;
    for c in &clients {
        c.close().await.unwrap();
    }
    within(live(), "no listening connection once the clients closed", async {
        while !listeners().await.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    db.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();
}

/// `pooler=auto` through PgBouncer: clients that connect at once find the pooler
/// (their own NOTIFY never comes back on the listening connection they share),
/// poll, and hand over in queue order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_connecting_at_once_through_pgbouncer_find_the_pooler() {
    let _g = DISRUPT.read().await;
    let given = url("pgbouncer");
    let u = given.replace("pooler=transaction", "pooler=auto");
    assert_ne!(u, given, "the harness's PgBouncer URL says pooler=transaction");
    let clients: Vec<Client> = futures_util::future::join_all((0..3).map(|_| connect(&u))).await;
    let name = unique("auto");
    let es: Vec<_> = clients.iter().map(|c| c.election(&name).unwrap()).collect();
    let t0 = within(live(), "0 wins", es[0].campaign("0")).await.unwrap().term();
    let waiting = queue_behind_the_first(&es).await;
    hand_over_in_turn(&es, waiting, t0).await;
}

/// A restart of PgBouncer: a leader through it keeps its leadership or gets it
/// back, and hand-offs through it go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooler_restart() {
    let _g = DISRUPT.write().await;
    let u = url("pgbouncer");
    let (a, b) = (connect(&u).await, connect(&u).await);
    let name = unique("pooler");
    let (ea, eb) = (a.election(&name).unwrap(), b.election(&name).unwrap());
    let t1 = within(live(), "a wins", ea.campaign("a")).await.unwrap().term();
    let mut events = ea.events();
    tokio::task::spawn_blocking(|| harness("BALLOT_TEST_PG", &["restart-member", "pgbouncer", "0"])).await.unwrap();
    wait_state(&ea, State::Leader, takeover()).await;
    let eb2 = eb.clone();
    let t = tokio::spawn(async move { eb2.campaign("b").await });
    ea.resign().await.unwrap();
    wait_event(&mut events, live(), "resigned", |e| matches!(e, Event::Resigned)).await;
    let t2 = within(live(), "b wins through the restarted pooler", t).await.unwrap().unwrap().term();
    assert!(t2 > t1);
}

/// The schema is created on first use by versioned migrations, once, also when
/// several clients connect to a new schema at the same moment; a second connect
/// finds it up to date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_under_concurrent_first_connects() {
    let _g = DISRUPT.read().await;
    let schema = fresh_schema("s");
    for kind in ["pg", "pgbouncer"] {
        let u = in_schema(&url(kind), &schema);
        let clients = futures_util::future::join_all((0..5).map(|_| Client::connect(&u, opts()))).await;
        for c in clients {
            let c = c.unwrap_or_else(|e| panic!("{kind}: concurrent first connect: {e}"));
            let e = c.election(&unique("m")).unwrap();
            within(live(), "campaign in the new schema", e.campaign("x")).await.unwrap();
            c.close().await.unwrap();
        }
    }
    let db = sql().await;
    let rows =
        db.query(&format!("SELECT version FROM \"{schema}\".schema_migrations ORDER BY version"), &[]).await.unwrap();
    let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(versions, (1..=ballot::postgres::LATEST_VERSION).collect::<Vec<_>>(), "each version applied once");
    let leader: bool = db.query_one(&format!("SELECT \"{schema}\".is_leader('x', 1)"), &[]).await.unwrap().get(0);
    assert!(!leader);
    db.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE")).await.unwrap();
}

/// Bad options of the PostgreSQL URL are `invalid_argument` naming the option.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_are_invalid_argument() {
    let base = url("pg");
    for (opt, bad) in [
        ("schema", "Bad-Name"),
        ("schema", "1abc"),
        ("pooler", "session"),
        ("sslmode", "allow"),
        ("sslmode", "verify"),
        ("sslrootcert", "/nonexistent/ca.pem"),
    ] {
        let sep = if base.contains('?') { '&' } else { '?' };
        let u = format!("{base}{sep}{opt}={bad}");
        let e = Client::connect(&u, opts()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{opt}={bad}: {e}");
        assert!(e.to_string().contains(opt) || e.to_string().contains("sslrootcert"), "{opt}={bad}: {e}");
    }
}

/// The least privileges: once the schema exists, a role that may not run DDL
/// works with USAGE on the schema, SELECT, INSERT, UPDATE, DELETE on its tables,
/// SELECT on `schema_migrations`, USAGE on its sequences (EXECUTE on functions is
/// PUBLIC's by default), directly and through PgBouncer. Without the right to
/// create a schema, a connect that would have to create one is `auth`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_with_the_least_privileges_works_once_the_schema_exists() {
    let _g = DISRUPT.read().await;
    // The owner brings the schema up to date, then grants.
    connect(&url("pg")).await.close().await.unwrap();
    let b = require("pg");
    let app = b.fact("APP_USER").to_string();
    let db = sql().await;
    // The grants of `ballot pg-schema --from VERSION --grant APP`.
    let version: i32 = db.query_one("SELECT max(version) FROM ballot.schema_migrations", &[]).await.unwrap().get(0);
    let grants = ballot::postgres::schema_script("ballot", version, std::slice::from_ref(&app)).unwrap();
    assert!(!grants.contains("CREATE"), "{grants}");
    db.batch_execute(&grants).await.unwrap();
    for kind in ["pg", "pgbouncer"] {
        let k = require(kind);
        let base =
            format!("postgres://{app}:{}@{}/{}/{}", b.fact("APP_PASSWORD"), hostport(kind), b.fact("DB"), unique("ns"));
        let u = k.with_query(&base);
        let (x, y) = (connect(&u).await, connect(&u).await);
        let name = unique("least");
        let (ex, ey) = (x.election(&name).unwrap(), y.election(&name).unwrap());
        let t1 = within(live(), "campaign as the app role", ex.campaign("x")).await.unwrap().term();
        let ey2 = ey.clone();
        let t = tokio::spawn(async move { ey2.campaign("y").await });
        ex.proclaim("x2").await.unwrap();
        ex.resign().await.unwrap();
        assert!(within(live(), "hand-off as the app role", t).await.unwrap().unwrap().term() > t1);
        ey.end().await.unwrap();
        // A schema that does not exist yet cannot be made by this role.
        let fresh = in_schema(&u, &fresh_schema("x"));
        let e = Client::connect(&fresh, opts()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Auth, "{kind}: {e}");
    }
}

/// `postgresql://` is the same backend; the path after the database is a
/// namespace, so one election name in two namespaces is two elections (both
/// lead at once), each with its own terms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_scheme_and_namespaces() {
    let _g = DISRUPT.read().await;
    let one = url("pg");
    let two = url("pg").replacen("postgres://", "postgresql://", 1);
    let (a, b) = (connect(&one).await, connect(&two).await);
    assert!(b.url().starts_with("postgresql://***@"), "{}", b.url());
    let name = unique("same");
    let (ea, eb) = (a.election(&name).unwrap(), b.election(&name).unwrap());
    within(live(), "a leads in its namespace", ea.campaign("a")).await.unwrap();
    within(live(), "b leads in the other", eb.campaign("b")).await.unwrap();
    assert_eq!((ea.state(), eb.state()), (State::Leader, State::Leader));
    let la = ea.leader().await.unwrap().unwrap();
    assert_eq!(la.value, b"a");
    assert!(la.key.starts_with("ballot.candidates/"), "{}", la.key);
    assert_eq!(eb.leader().await.unwrap().unwrap().value, b"b");
}

/// The whole server paused (SIGSTOP to every PostgreSQL process) past the TTL:
/// the leader is told `suspended`, then `lost`, while the server is still
/// stopped; after the resume the server's clock has expired its session, and the
/// next leader has a higher term.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_server_suspends_then_loses_the_leader() {
    let _g = DISRUPT.write().await;
    let u = url("pg");
    let (a, b) = (connect(&u).await, connect(&u).await);
    let name = unique("pause");
    let (ea, eb) = (a.election(&name).unwrap(), b.election(&name).unwrap());
    let mut events = ea.events();
    let t1 = within(live(), "a wins", ea.campaign("a")).await.unwrap().term();
    let eb2 = eb.clone();
    let waiting = tokio::spawn(async move { eb2.campaign("b").await });
    tokio::task::spawn_blocking(|| harness("BALLOT_TEST_PG", &["pause-member", "pg", "0"])).await.unwrap();
    let ttl = require("pg").ttl;
    let resumed = async {
        // Bounded by the timeout below, which resumes the server first.
        let never = 100 * ttl;
        wait_event(&mut events, never, "suspended", |e| matches!(e, Event::Suspended)).await;
        wait_event(&mut events, never, "lost", |e| matches!(e, Event::Lost { .. })).await;
    };
    // Resume whatever happens, so that a failure here leaves the server running.
    let outcome = tokio::time::timeout(2 * ttl + live(), resumed).await;
    tokio::task::spawn_blocking(|| harness("BALLOT_TEST_PG", &["resume-member", "pg", "0"])).await.unwrap();
    outcome.expect("suspended, then lost, while the server was paused");
    // Both sessions expired during the pause; both candidates join again (a by
    // auto-requeue, b's campaign under its new session), and whichever joined
    // first leads, with a higher term.
    let t2 = within(takeover() + live(), "a new leader after the resume", async {
        loop {
            if let Ok(Some(l)) = eb.leader().await {
                if l.term > t1 {
                    return l.term;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    common::wait_until(live(), "its handle leads", || ea.state() == State::Leader || eb.state() == State::Leader).await;
    assert!(!(ea.state() == State::Leader && eb.state() == State::Leader), "two leaders");
    assert!(t2 > t1, "{t2} after {t1}");
    waiting.abort();
}

/// Several hosts, as libpq takes them: a host where nothing listens is passed
/// over for the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_host_before_the_live_one_is_passed_over() {
    let _g = DISRUPT.read().await;
    let b = require("pg");
    let live_host = hostport("pg");
    let u = format!(
        "postgres://{}:{}@127.0.0.1:{},{live_host}/{}/{}",
        b.fact("USER"),
        b.fact("PASSWORD"),
        common::free_port(),
        b.fact("DB"),
        unique("ns")
    );
    let c = connect(&u).await;
    let e = c.election(&unique("hosts")).unwrap();
    within(live(), "campaign through the second host", e.campaign("x")).await.unwrap();
    c.close().await.unwrap();
}

/// A join whose statement waits on the election's row lock (a transaction of
/// someone else holds the row) longer than the op timeout fails with
/// `connection`, as any statement without an answer does, and leaves no orphan
/// candidate of the live session that would block the queue: once the row is
/// free, only the leader is queued and a new campaign wins at its resign.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_that_timed_out_on_a_row_lock_leaves_no_orphan() {
    let _g = DISRUPT.read().await;
    let u = url("pg");
    let (a, b) = (connect(&u).await, connect(&u).await);
    let ns = namespace(&u);
    let name = unique("orphan");
    let full = format!("{ns}/{name}");
    let (mut db, admin) = (sql().await, sql().await);
    let ea = a.election(&name).unwrap();
    within(live(), "a wins", ea.campaign("a")).await.unwrap();
    let tx = db.transaction().await.unwrap();
    tx.execute("SELECT 1 FROM ballot.elections WHERE name = $1 FOR SHARE", &[&full]).await.unwrap();
    let eb = b.election(&name).unwrap();
    let e = within(require("pg").ttl * 3, "b's campaign gives up", eb.campaign("b")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    tx.commit().await.unwrap();
    let joining = "SELECT count(*) FROM pg_stat_activity \
                   WHERE query LIKE '%.join(%' AND state = 'active' AND pid <> pg_backend_pid()";
    within(live(), "the abandoned join is over on the server", async {
        while admin.query_one(joining, &[]).await.unwrap().get::<_, i64>(0) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let queued = "SELECT count(*) FROM ballot.candidates WHERE election = $1";
    assert_eq!(admin.query_one(queued, &[&full]).await.unwrap().get::<_, i64>(0), 1, "an orphan was queued");
    let t = tokio::spawn(async move { eb.campaign("b").await });
    ea.resign().await.unwrap();
    within(live(), "b wins", t).await.unwrap().unwrap();
}

/// A loopback TCP proxy to the server that, once armed, holds back the answer
/// to the next session renewal it sees (`renew(` in a client's message) for a
/// while, and counts the renewals that pass.
struct HoldProxy {
    port: u16,
    hold: Arc<std::sync::Mutex<Option<Duration>>>,
    renewals: tokio::sync::watch::Receiver<usize>,
}

impl HoldProxy {
    async fn start(upstream: String) -> HoldProxy {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold: Arc<std::sync::Mutex<Option<Duration>>> = Arc::default();
        let (count_tx, renewals) = tokio::sync::watch::channel(0usize);
        let count_tx = Arc::new(count_tx);
        let hold2 = hold.clone();
        tokio::spawn(async move {
            loop {
                let Ok((down, _)) = listener.accept().await else { return };
                let Ok(up) = tokio::net::TcpStream::connect(&upstream).await else { continue };
                let (mut down_r, mut down_w) = down.into_split();
                let (mut up_r, mut up_w) = up.into_split();
                // When the answers to this connection are held back until.
                let until: Arc<std::sync::Mutex<Option<tokio::time::Instant>>> = Arc::default();
                let (until2, hold3, count) = (until.clone(), hold2.clone(), count_tx.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(n) = down_r.read(&mut buf).await {
                        if n == 0 || up_w.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                        if buf[..n].windows(6).any(|w| w == b"renew(") {
                            if let Some(d) = hold3.lock().unwrap().take() {
                                *until2.lock().unwrap() = Some(tokio::time::Instant::now() + d);
                            }
                            count.send_modify(|c| *c += 1);
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(n) = up_r.read(&mut buf).await {
                        let held = until.lock().unwrap().take();
                        if let Some(t) = held {
                            tokio::time::sleep_until(t).await;
                        }
                        if n == 0 || down_w.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        HoldProxy { port, hold, renewals }
    }

    /// Holds back the answer to the next renewal for `d`.
    fn hold_next_renewal(&self, d: Duration) {
        *self.hold.lock().unwrap() = Some(d);
    }

    /// Waits until `n` more renewals than `from` passed.
    async fn renewals_after(&self, from: usize, n: usize) {
        let mut rx = self.renewals.clone();
        rx.wait_for(|c| *c >= from + n).await.unwrap();
    }
}

/// Regression (found by the chaos suite): the next renewal was due an interval
/// after the previous answer *arrived*, while `Suspended` counts from its
/// *send*; an answer that took longer than TTL/6 made the leader report
/// Suspended a second time, some TTL/3 later, though the server had answered
/// every renewal. One answer held back for TTL/4 gives one Suspended (that
/// answer was overdue) and no second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_renewal_answer_suspends_once_not_twice() {
    let _g = DISRUPT.read().await;
    let b = require("pg");
    let proxy = HoldProxy::start(hostport("pg")).await;
    let ttl = Duration::from_secs(6);
    let u = format!(
        "postgres://{}:{}@127.0.0.1:{}/{}/{}?sslmode=disable&pooler=none",
        b.fact("USER"),
        b.fact("PASSWORD"),
        proxy.port,
        b.fact("DB"),
        unique("ns")
    );
    let c = Client::connect(&u, Options::default().with_ttl(ttl)).await.unwrap();
    let e = c.election(&unique("slow")).unwrap();
    let mut events = e.events();
    within(live(), "campaign", e.campaign("x")).await.unwrap();
    let seen = *proxy.renewals.borrow();
    proxy.hold_next_renewal(ttl / 4);
    // The held renewal, then three more: the second Suspended came before the
    // next renewal after the held one.
    within(ttl * 3, "renewals after the held one", proxy.renewals_after(seen, 4)).await;
    let suspended = common::count_queued(&mut events, |e| matches!(e, Event::Suspended)).await;
    assert_eq!(suspended, 1, "Suspended reported {suspended} times for one slow answer");
    assert_eq!(e.state(), State::Leader);
    c.close().await.unwrap();
}

/// Schema version 2: a resign hands the lead on in its own transaction, so
/// when `resign()` returns the successor's row already holds the next term.
/// A role without DDL rights goes on with a version 1 schema (it cannot
/// upgrade it), and the owner's next connect upgrades it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resign_hands_the_term_on_and_an_older_schema_still_works() {
    let _g = DISRUPT.read().await;
    let b = require("pg");
    let app = b.fact("APP_USER").to_string();
    let schema = fresh_schema("v1");
    let db = sql().await;
    db.batch_execute(&ballot::postgres::__schema_script_to(&schema, 0, 1, std::slice::from_ref(&app)).unwrap())
        .await
        .unwrap();
    let version = format!("SELECT max(version) FROM {schema}.schema_migrations");
    let app_url = format!(
        "postgres://{app}:{}@{}/{}/{}?schema={schema}",
        b.fact("APP_PASSWORD"),
        hostport("pg"),
        b.fact("DB"),
        unique("ns")
    );
    let (x, y) = (connect(&app_url).await, connect(&app_url).await);
    assert_eq!(db.query_one(&version, &[]).await.unwrap().get::<_, i32>(0), 1, "the app role upgraded the schema");
    let name = unique("v1");
    let (ex, ey) = (x.election(&name).unwrap(), y.election(&name).unwrap());
    let t1 = within(live(), "campaign on a version 1 schema", ex.campaign("x")).await.unwrap().term();
    let ey2 = ey.clone();
    let t = tokio::spawn(async move { ey2.campaign("y").await });
    within(live(), "hand-off on a version 1 schema", ex.resign()).await.unwrap();
    assert!(within(live(), "y wins", t).await.unwrap().unwrap().term() > t1);
    ey.end().await.unwrap();

    // The owner's connect upgrades it; from then on a resign gives the term.
    let owner_url = format!("{}/{}?schema={schema}", b.fact("URL"), unique("ns"));
    let (a, c) = (connect(&owner_url).await, connect(&owner_url).await);
    assert_eq!(
        db.query_one(&version, &[]).await.unwrap().get::<_, i32>(0),
        ballot::postgres::LATEST_VERSION,
        "upgraded to the latest version"
    );
    let name = unique("v2");
    let (ea, ec) = (a.election(&name).unwrap(), c.election(&name).unwrap());
    let t1 = within(live(), "a wins", ea.campaign("a")).await.unwrap().term();
    let ec2 = ec.clone();
    let t = tokio::spawn(async move { ec2.campaign("c").await });
    let queued = format!("SELECT count(*) FROM {schema}.candidates WHERE term IS NULL");
    within(live(), "c is queued", async {
        while db.query_one(&queued, &[]).await.unwrap().get::<_, i64>(0) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    ea.resign().await.unwrap();
    let terms: Vec<Option<i64>> = db
        .query(&format!("SELECT term FROM {schema}.candidates ORDER BY id"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(terms, vec![Some(t1 as i64 + 1)], "the successor's row holds the next term as resign returns");
    assert_eq!(within(live(), "c wins", t).await.unwrap().unwrap().term(), t1 + 1);
    ec.end().await.unwrap();
    db.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();
}

/// A direct connection prepares the backend's statements once. When another
/// client's migration changes what a prepared statement returns, the server
/// refuses the stale plan ("cached plan must not change result type"): the
/// statement then runs unprepared, and resign still hands the lead on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_prepared_before_a_migration_still_runs() {
    let _g = DISRUPT.read().await;
    let schema = fresh_schema("prep");
    let u = in_schema(&url("pg"), &schema);
    let (a, c) = (connect(&u).await, connect(&u).await);
    let name = unique("prep");
    let (ea, ec) = (a.election(&name).unwrap(), c.election(&name).unwrap());
    let db = sql().await;
    let queued = format!("SELECT count(*) FROM {schema}.candidates WHERE term IS NULL");
    let wait_queued = || async {
        within(live(), "a candidate is queued", async {
            while db.query_one(&queued, &[]).await.unwrap().get::<_, i64>(0) == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
    };
    // a leads, hands over to c, and leads again: a has prepared its withdraw.
    let mut terms = vec![within(live(), "a wins", ea.campaign("a")).await.unwrap().term()];
    for (from, to, v) in [(&ea, &ec, "c"), (&ec, &ea, "a")] {
        let to2 = to.clone();
        let t = tokio::spawn(async move { to2.campaign(v).await });
        wait_queued().await;
        from.resign().await.unwrap();
        terms.push(within(live(), "the successor wins", t).await.unwrap().unwrap().term());
    }
    // withdraw now returns an integer: a's prepared statement is stale.
    db.batch_execute(&format!(
        "ALTER FUNCTION {schema}.withdraw(bigint) RENAME TO withdraw_v; \
         CREATE FUNCTION {schema}.withdraw(p_id bigint) RETURNS integer LANGUAGE sql \
         AS $$ SELECT CASE WHEN {schema}.withdraw_v(p_id) THEN 1 ELSE 0 END $$"
    ))
    .await
    .unwrap();
    let ec2 = ec.clone();
    let t = tokio::spawn(async move { ec2.campaign("c").await });
    wait_queued().await;
    within(live(), "resign through a stale statement", ea.resign()).await.expect("resign through a stale statement");
    terms.push(within(live(), "c wins again", t).await.unwrap().unwrap().term());
    assert!(terms.windows(2).all(|w| w[1] > w[0]), "terms increase: {terms:?}");
    ec.end().await.unwrap();
    a.close().await.unwrap();
    c.close().await.unwrap();
    db.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();
}

/// The hand-over is what elects the successor: its campaign returns on the
/// resigner's notification, without another `step` of its own (counted by a
/// wrapper around the schema's `step` that records each call's candidate and
/// server process). Through PgBouncer there is no notification, and the
/// pooled successor's win costs it a poll (a second `step`): the contrast
/// shows the count tells the two paths apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_successor_is_elected_by_the_resigners_hand_over() {
    let _g = DISRUPT.read().await;
    let schema = fresh_schema("hand");
    let ns = unique("ns");
    let direct = format!("{}/{ns}?schema={schema}", require("pg").fact("URL"));
    let pooled = require("pgbouncer").with_query(&format!("{}/{ns}?schema={schema}", require("pgbouncer").fact("URL")));
    let (a, c, p) = (connect(&direct).await, connect(&direct).await, connect(&pooled).await);
    let db = sql().await;
    db.batch_execute(&format!(
        "CREATE TABLE {schema}.step_calls (id bigint NOT NULL, pid int NOT NULL); \
         ALTER FUNCTION {schema}.step(text, bigint) RENAME TO step_counted; \
         CREATE FUNCTION {schema}.step(p_election text, p_id bigint, OUT o_state text, OUT o_pred bigint, \
             OUT o_wait_ms bigint, OUT o_term bigint, OUT o_value bytea, OUT o_epoch bigint) \
         LANGUAGE plpgsql AS $$ BEGIN \
             INSERT INTO {schema}.step_calls VALUES (p_id, pg_backend_pid()); \
             SELECT * INTO o_state, o_pred, o_wait_ms, o_term, o_value, o_epoch \
             FROM {schema}.step_counted(p_election, p_id); \
         END $$"
    ))
    .await
    .unwrap();
    let name = unique("hand");
    let (ea, ec, ep) = (a.election(&name).unwrap(), c.election(&name).unwrap(), p.election(&name).unwrap());
    let calls = |id: i64| {
        let (db, schema) = (&db, &schema);
        async move {
            db.query_one(&format!("SELECT count(*) FROM {schema}.step_calls WHERE id = $1"), &[&id])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    // `who` is queued behind a leader, and its first `step` has answered
    // (its server process went idle after it): it waits for a notification
    // or, pooled, for its next poll.
    let queued_and_answered = |who: &'static str| {
        let (db, schema) = (&db, &schema);
        async move {
            within(live(), &format!("{who} is queued and its step answered"), async {
                loop {
                    let row = db
                        .query_opt(
                            &format!(
                                "SELECT c.id, s.pid FROM {schema}.candidates c \
                                 JOIN {schema}.step_calls s ON s.id = c.id \
                                 JOIN pg_stat_activity a ON a.pid = s.pid AND a.state = 'idle' \
                                 WHERE c.term IS NULL AND c.value = $1 LIMIT 1"
                            ),
                            &[&who.as_bytes()],
                        )
                        .await
                        .unwrap();
                    if let Some(r) = row {
                        return r.get::<_, i64>(0);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await
        }
    };

    let t1 = within(live(), "a wins", ea.campaign("a")).await.unwrap().term();
    let ec2 = ec.clone();
    let tc = tokio::spawn(async move { ec2.campaign("c").await });
    let c_id = queued_and_answered("c").await;
    let before = calls(c_id).await;
    ea.resign().await.unwrap();
    let won = within(live(), "c wins", tc).await.unwrap().unwrap();
    assert_eq!(won.term(), t1 + 1, "c leads with the term the resign gave it");
    assert_eq!(candidate_id(won.key()), c_id);
    assert_eq!(calls(c_id).await, before, "c won on the notification, without a step of its own");

    // Pooled: no notification; the successor's poll (a step) finds the term.
    let ep2 = ep.clone();
    let tp = tokio::spawn(async move { ep2.campaign("p").await });
    let p_id = queued_and_answered("p").await;
    let before = calls(p_id).await;
    ec.resign().await.unwrap();
    let won = within(live(), "p wins", tp).await.unwrap().unwrap();
    assert_eq!(won.term(), t1 + 2, "p leads with the term c's resign gave it");
    assert!(calls(p_id).await > before, "through PgBouncer the win comes from a poll");
    ep.end().await.unwrap();
    for x in [a, c, p] {
        x.close().await.unwrap();
    }
    db.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();
}

/// Many hand-overs among two direct candidates and one through PgBouncer:
/// each successor's term is above the last, exactly one candidate leads, and
/// the SQL fence passes the new term and refuses the one before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terms_strictly_increase_over_many_hand_overs_and_the_fence_follows() {
    let _g = DISRUPT.read().await;
    let ns = unique("ns");
    let direct = require("pg").with_query(&format!("{}/{ns}", require("pg").fact("URL")));
    let pooled = require("pgbouncer").with_query(&format!("{}/{ns}", require("pgbouncer").fact("URL")));
    let clients = [connect(&direct).await, connect(&direct).await, connect(&pooled).await];
    let name = unique("many");
    let full = format!("{ns}/{name}");
    let es: Vec<ballot::Election> = clients.iter().map(|c| c.election(&name).unwrap()).collect();
    let db = sql().await;
    let fence = |term: u64| is_leader(&db, &full, term);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let campaign = |i: usize| {
        let (e, tx) = (es[i].clone(), tx.clone());
        tokio::spawn(async move {
            let r = e.campaign(format!("candidate-{i}")).await;
            let _ = tx.send((i, r));
        });
    };
    campaign(0);
    let (mut leader, r) = within(live(), "the first win", rx.recv()).await.unwrap();
    let mut last = r.unwrap().term();
    assert!(fence(last).await);
    campaign(1);
    campaign(2);
    for round in 0..24 {
        es[leader].resign().await.unwrap();
        let (next, r) = within(live(), "the next win", rx.recv()).await.unwrap();
        let term = r.unwrap_or_else(|e| panic!("round {round}: campaign of {next}: {e}")).term();
        assert_ne!(next, leader, "round {round}: the resigned candidate won again");
        assert!(term > last, "round {round}: term {term} after {last}");
        assert!(fence(term).await, "round {round}: the fence refuses the leader's term {term}");
        assert!(!fence(last).await, "round {round}: the fence passes the resigned term {last}");
        assert_eq!(es.iter().filter(|e| e.state() == State::Leader).count(), 1, "round {round}: one leader");
        campaign(leader);
        (leader, last) = (next, term);
    }
    es[leader].end().await.unwrap();
    for c in clients {
        c.close().await.unwrap();
    }
}

/// Waits until `n` candidates of `full` (namespace included) are queued
/// without a term in schema `ballot`.
async fn queued(db: &tokio_postgres::Client, full: &str, n: i64) {
    within(live(), &format!("{n} candidates queued"), async {
        loop {
            let q = "SELECT count(*) FROM ballot.candidates WHERE election = $1 AND term IS NULL";
            if db.query_one(q, &[&full]).await.unwrap().get::<_, i64>(0) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// The namespace of a PostgreSQL test URL: its last path segment, which every
/// election's full name starts with.
fn namespace(url: &str) -> String {
    url.split('?').next().unwrap().rsplit('/').next().unwrap().to_string()
}

/// The SQL fence's answer for `term` in the election named `full`.
async fn is_leader(db: &tokio_postgres::Client, full: &str, term: u64) -> bool {
    db.query_one("SELECT ballot.is_leader($1, $2)", &[&full, &(term as i64)]).await.unwrap().get(0)
}

/// The leader resigns while the candidate next in line withdraws, at the same
/// moment, in either order: the hand-over goes to that candidate only if it
/// is still queued, and the one after it leads with a later term in the end;
/// the withdrawn one never holds the lead afterwards, and the fence follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_promoted_while_it_withdraws_passes_the_lead_on() {
    let _g = DISRUPT.read().await;
    let u = url("pg");
    let ns = namespace(&u);
    let (a, b, c) = (connect(&u).await, connect(&u).await, connect(&u).await);
    let db = sql().await;
    for round in 0..6 {
        let name = unique("promoted");
        let full = format!("{ns}/{name}");
        let (ea, eb, ec) = (a.election(&name).unwrap(), b.election(&name).unwrap(), c.election(&name).unwrap());
        let ta = within(live(), "a wins", ea.campaign("a")).await.unwrap().term();
        let eb2 = eb.clone();
        let tb = tokio::spawn(async move { eb2.campaign("b").await });
        queued(&db, &full, 1).await;
        let ec2 = ec.clone();
        let tc = tokio::spawn(async move { ec2.campaign("c").await });
        queued(&db, &full, 2).await;
        let (ra, rb) = tokio::join!(ea.resign(), eb.resign());
        ra.unwrap();
        // b either was still waiting (its campaign is cancelled) or had won
        // just before (its resign then handed the lead on).
        let b_won = match within(live(), "b's campaign ends", tb).await.unwrap() {
            Ok(l) => Some(l.term()),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Cancelled, "round {round}: {e}");
                None
            }
        };
        rb.unwrap();
        let tcw = within(live(), "c wins", tc).await.unwrap().unwrap().term();
        assert!(tcw > b_won.unwrap_or(ta) && tcw > ta, "round {round}: c's term {tcw} after {ta} and {b_won:?}");
        assert_eq!(eb.state(), State::Idle, "round {round}");
        assert!(is_leader(&db, &full, tcw).await, "round {round}: the fence refuses c");
        for old in [Some(ta), b_won].into_iter().flatten() {
            assert!(!is_leader(&db, &full, old).await, "round {round}: the fence passes the old term {old}");
        }
        ec.end().await.unwrap();
    }
}

/// The hand-over gives the term only to a candidate whose session is alive by
/// the server's clock: with the next candidate's session expired, the one
/// after it leads with the next term, and the fence passes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hand_over_passes_over_a_candidate_whose_session_expired() {
    let _g = DISRUPT.read().await;
    let u = url("pg");
    let ns = namespace(&u);
    let (a, b, c) = (connect(&u).await, connect(&u).await, connect(&u).await);
    let db = sql().await;
    let name = unique("expired");
    let full = format!("{ns}/{name}");
    let (ea, eb, ec) = (a.election(&name).unwrap(), b.election(&name).unwrap(), c.election(&name).unwrap());
    let ta = within(live(), "a wins", ea.campaign("a")).await.unwrap().term();
    let eb2 = eb.clone();
    let _tb = tokio::spawn(async move { eb2.campaign("b").await });
    queued(&db, &full, 1).await;
    let ec2 = ec.clone();
    let tc = tokio::spawn(async move { ec2.campaign("c").await });
    queued(&db, &full, 2).await;
    // b's session ends by the server's clock (as after a pause past its TTL).
    db.execute(
        "UPDATE ballot.sessions SET expires_at = clock_timestamp() WHERE id = \
         (SELECT session_id FROM ballot.candidates WHERE election = $1 AND value = 'b')",
        &[&full],
    )
    .await
    .unwrap();
    ea.resign().await.unwrap();
    let won = within(live(), "c wins", tc).await.unwrap().unwrap();
    assert_eq!(won.term(), ta + 1, "c holds the term the resign gave");
    assert_eq!(won.value(), b"c");
    assert_ne!(eb.state(), State::Leader);
    assert!(is_leader(&db, &full, won.term()).await, "the fence passes c's term");
    ec.end().await.unwrap();
}
