//! The CLI on the PostgreSQL server that `tests/run.sh` starts: the script of
//! `ballot pg-schema`, applied with psql by the schema's owner, is all that a
//! role without DDL rights needs to run elections; `ballot run`'s whole tree is
//! gone before another candidate wins when `ballot run` is SIGKILLed.
#![cfg(feature = "postgres")]

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::*;

fn pg(fact: &str) -> String {
    env(&format!("BALLOT_TEST_PG_{fact}"))
}

/// psql as the schema's owner (the harness's test role), reading `script` from
/// stdin, stopping at the first error.
fn psql(script: &str) -> Output {
    let mut child = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-f", "-", &pg("URL")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql (PostgreSQL's client, installed with the server by tests/servers/install.sh)");
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn pg_schema(args: &[&str]) -> Output {
    Command::new(BIN).arg("pg-schema").args(args).env_remove("BALLOT_BACKEND").output().unwrap()
}

#[test]
fn pg_schema_gives_a_role_without_ddl_rights_all_it_needs() {
    let schema = unique("ballot_cli").replace('-', "_");
    let app = pg("APP_USER");
    let out = pg_schema(&["--schema", &schema, "--grant", &app]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let script = String::from_utf8(out.stdout).unwrap();

    // The application's role may not create the schema itself.
    let hostport = format!("127.0.0.1:{}", pg("PORT"));
    let app_url = format!("postgres://{app}:{}@{hostport}/{}/cli?schema={schema}", pg("APP_PASSWORD"), pg("DB"));
    let refused = ballot(&app_url).args(["leader", "svc"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", String::from_utf8_lossy(&refused.stderr));
    let msg = String::from_utf8_lossy(&refused.stderr);
    assert!(msg.contains("auth:") && msg.contains("ballot pg-schema --schema"), "{msg}");
    assert!(!msg.contains(&pg("APP_PASSWORD")), "the error shows the password: {msg}");

    let applied = psql(&script);
    assert!(applied.status.success(), "psql: {}", String::from_utf8_lossy(&applied.stderr));
    let version = psql(&format!("SELECT max(version) FROM {schema}.schema_migrations;"));
    let latest = String::from_utf8_lossy(&version.stdout).trim().to_string();
    assert!(script.contains(&format!("version 0 -> {latest}.")), "{latest}: {script}");

    // Applied a second time it fails as a whole and changes nothing.
    let again = psql(&script);
    assert!(!again.status.success(), "a second application succeeded");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let rows = psql(&format!("SELECT count(*) FROM {schema}.schema_migrations;"));
    assert_eq!(String::from_utf8_lossy(&rows.stdout).trim(), latest, "one row per version");
    let nothing = pg_schema(&["--schema", &schema, "--from", &latest]);
    assert!(String::from_utf8_lossy(&nothing.stdout).contains("Nothing to apply"));

    // Now the role runs an election, and another process sees its leader.
    let a = Proc::spawn("ballot campaign a", ballot(&app_url).args(["campaign", "svc", "a"]), false);
    let elected = a.until("elected");
    assert!(elected.contains("term=1"), "{elected}");
    let leader = ballot(&app_url).args(["leader", "svc"]).output().unwrap();
    assert!(leader.status.success(), "{}", String::from_utf8_lossy(&leader.stderr));
    assert!(String::from_utf8_lossy(&leader.stdout).contains("value=a"));
    a.signal(libc::SIGTERM);
    a.until("resigned");
    let none = ballot(&app_url).args(["leader", "svc"]).output().unwrap();
    assert_eq!(none.status.code(), Some(3), "{}", String::from_utf8_lossy(&none.stderr));
    psql(&format!("DROP SCHEMA {schema} CASCADE;"));
}

#[test]
fn pg_schema_refuses_bad_names_and_versions() {
    for args in
        [&["--schema", "Bad\"name"][..], &["--schema", ""], &["--from", "-1"], &["--from", "99"], &["--grant", ""]]
    {
        let out = pg_schema(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let msg = String::from_utf8_lossy(&out.stderr);
        assert!(msg.contains("invalid_argument") || msg.contains("error:"), "{args:?}: {msg}");
        assert!(out.stdout.is_empty(), "{args:?} printed SQL");
    }
}

/// issue 16: `ballot run` on PostgreSQL keeps issue 14's promise.
#[test]
fn sigkill_of_run_leaves_no_descendant_before_the_next_leader() {
    sigkill_of_run_leaves_nothing_behind(&format!("{}/run?ttl=2s", pg("URL")));
}

/// The user and password may come from libpq's PGUSER and PGPASSWORD; without
/// them the server refuses (`auth`, exit 1), and no password is ever printed.
#[test]
fn pgpassword_and_pguser_are_read() {
    let url = format!("postgres://127.0.0.1:{}/{}/cli-env", pg("PORT"), pg("DB"));
    let leader = |env: &[(&str, String)]| {
        let mut cmd = ballot(&url);
        cmd.args(["leader", "nobody"]).env_remove("PGUSER").env_remove("PGPASSWORD");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let ok = leader(&[("PGUSER", pg("USER")), ("PGPASSWORD", pg("PASSWORD"))]);
    assert_eq!(ok.status.code(), Some(3), "{}", String::from_utf8_lossy(&ok.stderr));
    let wrong = leader(&[("PGUSER", pg("USER")), ("PGPASSWORD", "wr0ng-pa55word".into())]);
    assert_eq!(wrong.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&wrong.stderr);
    assert!(msg.contains("auth:") && !msg.contains("wr0ng-pa55word"), "{msg}");
    let none = leader(&[("PGUSER", pg("USER"))]);
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("auth:"));
    // The password in the URL wins over PGPASSWORD.
    let url_pw = format!("postgres://{}:{}@127.0.0.1:{}/{}/cli-env", pg("USER"), pg("PASSWORD"), pg("PORT"), pg("DB"));
    let mut cmd = ballot(&url_pw);
    let o = cmd.args(["leader", "nobody"]).env("PGPASSWORD", "wr0ng-pa55word").output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
}
