//! The schema of the PostgreSQL backend: its versioned migrations and the SQL
//! the backend sends. Every object lives in one schema (`ballot` unless the URL
//! says `schema=`); `{s}` in the templates below is that schema, quoted, and
//! `{chan}` the NOTIFY channel (the schema's name, as a string literal).
//!
//! Every operation of the backend is one statement (most call a function
//! below), so it runs as one transaction on its own: that is what lets the
//! backend work through a pooler in transaction mode (PgBouncer), which gives a
//! client a server connection for one transaction at a time.

/// The migrations, in order: `(version, SQL)`. A migration is applied once, in
/// the transaction that records its version in `{s}.schema_migrations`, under
/// an advisory lock, so concurrent first connects apply it exactly once. A new
/// version is appended here; an applied one is never changed.
pub(super) const MIGRATIONS: &[(i32, &str)] = &[(1, V1), (2, V2), (3, V3)];

/// The latest schema version this ballot applies: `ballot pg-schema` brings a
/// schema up to it, and a client that may run DDL migrates to it at connect.
pub const LATEST_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The oldest schema version this client works with. Later versions change
/// only how fast a handoff is (version 2), so a role that may not upgrade the
/// schema goes on with an older one until its owner applies the script of
/// `ballot pg-schema --from VERSION`.
pub(super) const COMPATIBLE_FROM: i32 = 1;

/// Creates the schema and the table of applied migrations (idempotent).
pub(super) const PREAMBLE: &str = "\
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.schema_migrations (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
";

/// The schema's version (0 before any migration), once the preamble ran.
pub(super) const SCHEMA_VERSION: &str = "SELECT coalesce(max(version), 0) FROM {s}.schema_migrations";

/// Version 1: sessions (leases whose expiry the server's clock sets),
/// elections (epoch and term counter), candidates (queued by id), and the
/// functions every operation calls.
const V1: &str = r#"
-- One row per client session: a lease. Only the server's clock ever sets or
-- judges `expires_at`.
CREATE TABLE {s}.sessions (
    id bigserial PRIMARY KEY,
    ttl_ms bigint NOT NULL CHECK (ttl_ms > 0),
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_expires_at ON {s}.sessions (expires_at);

-- One row per election: `epoch` counts end(), `term` is the last term given.
CREATE TABLE {s}.elections (
    name text PRIMARY KEY,
    epoch bigint NOT NULL DEFAULT 0,
    term bigint NOT NULL DEFAULT 0
);

-- One row per candidate, queued by `id` (ids of one election are given under
-- the election's row lock, so in commit order). `term` is set when it leads.
CREATE TABLE {s}.candidates (
    id bigserial PRIMARY KEY,
    election text NOT NULL REFERENCES {s}.elections (name),
    session_id bigint NOT NULL REFERENCES {s}.sessions (id) ON DELETE CASCADE,
    epoch bigint NOT NULL,
    term bigint,
    value bytea NOT NULL
);
CREATE INDEX candidates_election_id ON {s}.candidates (election, id);
CREATE INDEX candidates_session ON {s}.candidates (session_id);

-- A new session of `ttl_ms`; sessions expired for a minute are swept.
CREATE FUNCTION {s}.open_session(p_ttl_ms bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    PERFORM {s}.drop_sessions(ARRAY(
        SELECT s.id FROM {s}.sessions s
        WHERE s.expires_at < clock_timestamp() - interval '1 minute' LIMIT 100));
    INSERT INTO {s}.sessions (ttl_ms, expires_at)
    VALUES (p_ttl_ms, clock_timestamp() + p_ttl_ms * interval '1 millisecond')
    RETURNING id INTO v_id;
    RETURN v_id;
END $$;

-- Renews a session that is still alive by the server's clock; false if it
-- expired (it can never come back).
CREATE FUNCTION {s}.renew(p_session bigint) RETURNS boolean
LANGUAGE sql AS $$
    WITH r AS (
        UPDATE {s}.sessions SET expires_at = clock_timestamp() + ttl_ms * interval '1 millisecond'
        WHERE id = p_session AND expires_at > clock_timestamp()
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM r)
$$;

-- Deletes sessions and their candidates, telling each candidate's watchers.
CREATE FUNCTION {s}.drop_sessions(p_ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN DELETE FROM {s}.candidates c WHERE c.session_id = ANY (p_ids)
             RETURNING c.id, c.election LOOP
        PERFORM pg_notify({chan}, r.id || ' d ' || r.election);
    END LOOP;
    DELETE FROM {s}.sessions WHERE id = ANY (p_ids);
END $$;

-- Adds a candidate; NULL id if the session is not alive.
CREATE FUNCTION {s}.join(p_election text, p_session bigint, p_value bytea,
                         OUT o_id bigint, OUT o_epoch bigint)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {s}.elections (name) VALUES (p_election) ON CONFLICT (name) DO NOTHING;
    -- The row lock orders joins (ids) and end() of one election.
    SELECT e.epoch INTO o_epoch FROM {s}.elections e WHERE e.name = p_election FOR UPDATE;
    IF NOT EXISTS (SELECT 1 FROM {s}.sessions s
                   WHERE s.id = p_session AND s.expires_at > clock_timestamp()) THEN
        RETURN;
    END IF;
    INSERT INTO {s}.candidates (election, session_id, epoch, value)
    VALUES (p_election, p_session, o_epoch, p_value)
    RETURNING id INTO o_id;
    PERFORM pg_notify({chan}, o_id || ' j ' || p_election);
END $$;

-- Where a candidate stands: 'gone' (no such candidate), 'wait' (behind o_pred,
-- whose session expires in o_wait_ms by the server's clock), 'won' (it leads
-- with o_term and o_value), 'expired' (its own session is dead). Sessions of
-- candidates ahead that the server's clock says expired are ended here.
CREATE FUNCTION {s}.step(p_election text, p_id bigint,
                         OUT o_state text, OUT o_pred bigint, OUT o_wait_ms bigint,
                         OUT o_term bigint, OUT o_value bytea, OUT o_epoch bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_me record;
    v_pred record;
    v_term bigint;
BEGIN
    SELECT e.epoch INTO o_epoch FROM {s}.elections e WHERE e.name = p_election;
    SELECT c.session_id, c.term, c.value INTO v_me
    FROM {s}.candidates c WHERE c.id = p_id AND c.election = p_election;
    IF NOT FOUND THEN
        o_state := 'gone';
        RETURN;
    END IF;
    IF v_me.term IS NOT NULL THEN
        o_state := 'won'; o_term := v_me.term; o_value := v_me.value;
        RETURN;
    END IF;
    PERFORM {s}.drop_sessions(ARRAY(
        SELECT DISTINCT c.session_id FROM {s}.candidates c JOIN {s}.sessions s ON s.id = c.session_id
        WHERE c.election = p_election AND c.id < p_id AND s.expires_at <= clock_timestamp()));
    SELECT c.id, s.expires_at INTO v_pred
    FROM {s}.candidates c JOIN {s}.sessions s ON s.id = c.session_id
    WHERE c.election = p_election AND c.id < p_id
    ORDER BY c.id DESC LIMIT 1;
    IF FOUND THEN
        o_state := 'wait';
        o_pred := v_pred.id;
        o_wait_ms := greatest(0, ceil(extract(epoch FROM v_pred.expires_at - clock_timestamp()) * 1000))::bigint;
        RETURN;
    END IF;
    -- First in line: take the next term under the election's row lock.
    PERFORM 1 FROM {s}.elections e WHERE e.name = p_election FOR UPDATE;
    SELECT c.term INTO v_term FROM {s}.candidates c WHERE c.id = p_id;
    IF NOT FOUND THEN
        o_state := 'gone';
        RETURN;
    END IF;
    IF v_term IS NULL THEN
        IF NOT EXISTS (SELECT 1 FROM {s}.sessions s
                       WHERE s.id = v_me.session_id AND s.expires_at > clock_timestamp()) THEN
            o_state := 'expired';
            RETURN;
        END IF;
        UPDATE {s}.elections e SET term = e.term + 1 WHERE e.name = p_election RETURNING e.term INTO v_term;
        UPDATE {s}.candidates c SET term = v_term WHERE c.id = p_id;
        PERFORM pg_notify({chan}, p_id || ' c ' || p_election);
    END IF;
    o_state := 'won'; o_term := v_term; o_value := v_me.value;
END $$;

-- Removes a candidate (resigning if it leads); true if it was there.
CREATE FUNCTION {s}.withdraw(p_id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_election text;
BEGIN
    DELETE FROM {s}.candidates WHERE id = p_id RETURNING election INTO v_election;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pg_notify({chan}, p_id || ' d ' || v_election);
    RETURN true;
END $$;

-- Replaces the value of a leading candidate whose session is alive; false if
-- it does not lead.
CREATE FUNCTION {s}.proclaim(p_id bigint, p_value bytea) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_election text;
BEGIN
    UPDATE {s}.candidates c SET value = p_value
    FROM {s}.sessions s
    WHERE c.id = p_id AND c.term IS NOT NULL AND s.id = c.session_id AND s.expires_at > clock_timestamp()
    RETURNING c.election INTO v_election;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pg_notify({chan}, p_id || ' p ' || v_election);
    RETURN true;
END $$;

-- Ends the current round: bumps the epoch and removes every candidate.
CREATE FUNCTION {s}.end_election(p_election text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_epoch bigint;
BEGIN
    INSERT INTO {s}.elections (name) VALUES (p_election) ON CONFLICT (name) DO NOTHING;
    UPDATE {s}.elections SET epoch = epoch + 1 WHERE name = p_election RETURNING epoch INTO v_epoch;
    DELETE FROM {s}.candidates WHERE election = p_election;
    PERFORM pg_notify({chan}, '0 e ' || p_election);
    RETURN v_epoch;
END $$;

-- The leader (the oldest candidate whose session is alive, once it took its
-- term) and the epoch of an election.
CREATE FUNCTION {s}.snapshot(p_election text,
                             OUT o_id bigint, OUT o_term bigint, OUT o_value bytea, OUT o_epoch bigint)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT coalesce((SELECT e.epoch FROM {s}.elections e WHERE e.name = p_election), 0) INTO o_epoch;
    SELECT c.id, c.term, c.value INTO o_id, o_term, o_value
    FROM {s}.candidates c JOIN {s}.sessions s ON s.id = c.session_id
    WHERE c.election = p_election AND s.expires_at > clock_timestamp()
    ORDER BY c.id LIMIT 1;
    IF o_term IS NULL THEN
        o_id := NULL; o_value := NULL;
    END IF;
END $$;

-- The SQL fence: true exactly when `term` is the term of the current leader of
-- `election` and its session is alive by the server's clock at this moment
-- (clock_timestamp(), not the start of the caller's transaction).
CREATE FUNCTION {s}.is_leader(election text, term bigint) RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    SELECT EXISTS (
        SELECT 1 FROM {s}.candidates c JOIN {s}.sessions s ON s.id = c.session_id
        WHERE c.election = $1 AND c.term = $2 AND s.expires_at > clock_timestamp())
$$;
"#;

/// The least privileges of a role that runs elections (and calls `is_leader`)
/// once the schema is at the latest version; kept in step with `MIGRATIONS`.
/// EXECUTE on the functions is PUBLIC's by default.
const GRANTS: &str = "\
GRANT USAGE ON SCHEMA {s} TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON {s}.sessions, {s}.elections, {s}.candidates TO {role};
GRANT SELECT ON {s}.schema_migrations TO {role};
GRANT USAGE ON SEQUENCE {s}.sessions_id_seq, {s}.candidates_id_seq TO {role};
";

/// The statement that serialises migrations of one schema: every client's
/// first connect and `ballot pg-schema`'s script take it.
pub(super) fn migration_lock(schema: &str) -> String {
    format!("SELECT pg_advisory_xact_lock(hashtext('ballot migrations {schema}'))")
}

/// The SQL script that brings schema `schema` from version `from` (0: it does
/// not exist) to the latest, in one transaction, as a client's first connect
/// would, and then grants each of `roles` the least privileges. This is what
/// `ballot pg-schema` prints, for teams whose applications may not run DDL.
///
/// Errors (`InvalidArgument`): a schema name `check_schema` refuses, a `from`
/// below 0 or above the latest version, a role name that is empty, longer
/// than 63 bytes or contains NUL.
pub fn schema_script(schema: &str, from: i32, roles: &[String]) -> crate::Result<String> {
    schema_script_to(schema, from, MIGRATIONS.last().map(|m| m.0).unwrap_or(0), roles)
}

/// [`schema_script`] up to version `to` only: for tests of a schema that an
/// older ballot made.
#[doc(hidden)]
pub fn schema_script_to(schema: &str, from: i32, to: i32, roles: &[String]) -> crate::Result<String> {
    use crate::{Error, ErrorKind};
    check_schema(schema).map_err(|m| Error::new(ErrorKind::InvalidArgument, m))?;
    let latest = to.min(MIGRATIONS.last().map(|m| m.0).unwrap_or(0));
    if !(0..=latest).contains(&from) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("schema version {from}: expected 0 (no schema yet) to {latest} (the latest this ballot knows)"),
        ));
    }
    let mut quoted = Vec::new();
    for role in roles {
        if role.is_empty() || role.len() > 63 || role.contains('\0') {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("role {role:?}: expected a PostgreSQL role name of 1 to 63 bytes without NUL"),
            ));
        }
        quoted.push(format!("\"{}\"", role.replace('"', "\"\"")));
    }
    let pending: Vec<&(i32, &str)> = MIGRATIONS.iter().filter(|(v, _)| *v > from && *v <= latest).collect();
    let mut out = format!(
        "-- ballot {}: the schema \"{schema}\" of the PostgreSQL backend, version {from} -> {latest}.\n\
         -- Apply it once, as a role that may create a schema in the database, e.g.\n\
         --   psql -v ON_ERROR_STOP=1 -f THIS_FILE \"postgres://OWNER@HOST/DBNAME\"\n\
         -- It is one transaction: all of it applies, or nothing. Clients that then\n\
         -- find the schema at version {latest} only read it: their role needs no DDL\n\
         -- rights, only the grants that `ballot pg-schema --grant ROLE` adds below.\n\
         -- A schema's version: SELECT max(version) FROM \"{schema}\".schema_migrations;\n",
        env!("CARGO_PKG_VERSION")
    );
    if pending.is_empty() && quoted.is_empty() {
        out.push_str("-- Nothing to apply: the schema is at the latest version.\n");
        return Ok(out);
    }
    out.push_str("BEGIN;\n");
    out.push_str(&migration_lock(schema));
    out.push_str(";\n");
    if !pending.is_empty() {
        out.push_str(&fill(PREAMBLE, schema));
    }
    for (v, body) in pending {
        out.push_str(&format!("\n-- migration {v}\n"));
        out.push_str(&fill(body, schema));
        out.push_str(&fill(&format!("INSERT INTO {{s}}.schema_migrations (version) VALUES ({v});\n"), schema));
    }
    for role in &quoted {
        out.push_str(&format!("\n-- the least privileges of role {role}\n"));
        out.push_str(&fill(GRANTS, schema).replace("{role}", role));
    }
    out.push_str("COMMIT;\n");
    Ok(out)
}

/// Version 2: a withdrawal hands the lead on in its own transaction. When the
/// candidate that goes was first in line, the next candidate whose session is
/// alive takes the next term at once, and the notification names that term,
/// so the successor learns it leads without a statement of its own (version
/// 1: a claim, one more round trip and commit per handoff).
/// The election's row lock orders this with joins, claims and end(), as in
/// version 1.
const V2: &str = r#"
CREATE OR REPLACE FUNCTION {s}.withdraw(p_id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_election text;
    v_next bigint;
    v_term bigint;
BEGIN
    SELECT c.election INTO v_election FROM {s}.candidates c WHERE c.id = p_id;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM 1 FROM {s}.elections e WHERE e.name = v_election FOR UPDATE;
    DELETE FROM {s}.candidates WHERE id = p_id;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    SELECT c.id, c.term INTO v_next, v_term
    FROM {s}.candidates c JOIN {s}.sessions s ON s.id = c.session_id
    WHERE c.election = v_election AND s.expires_at > clock_timestamp()
    ORDER BY c.id LIMIT 1;
    IF FOUND AND v_term IS NULL THEN
        UPDATE {s}.elections e SET term = e.term + 1 WHERE e.name = v_election RETURNING e.term INTO v_term;
        UPDATE {s}.candidates c SET term = v_term WHERE c.id = v_next;
        -- `c<term>`: the successor learns it leads, and its term, from this
        -- alone; sent before the deletion's, which would make it look again.
        PERFORM pg_notify({chan}, v_next || ' c' || v_term || ' ' || v_election);
    END IF;
    PERFORM pg_notify({chan}, p_id || ' d ' || v_election);
    RETURN true;
END $$;
"#;

/// Version 3: a join sends no notification. No client ever acted on one (the
/// listener drops them), yet the server delivers each NOTIFY to every listening
/// connection of the database: with N clients waiting on one election, N joins
/// cost N² deliveries, and at N = 1,000 the joins of a benchmark timed out.
/// The queue order a waiter needs comes from the deletions and claims alone.
const V3: &str = r#"
CREATE OR REPLACE FUNCTION {s}.join(p_election text, p_session bigint, p_value bytea,
                                    OUT o_id bigint, OUT o_epoch bigint)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {s}.elections (name) VALUES (p_election) ON CONFLICT (name) DO NOTHING;
    -- The row lock orders joins (ids) and end() of one election.
    SELECT e.epoch INTO o_epoch FROM {s}.elections e WHERE e.name = p_election FOR UPDATE;
    IF NOT EXISTS (SELECT 1 FROM {s}.sessions s
                   WHERE s.id = p_session AND s.expires_at > clock_timestamp()) THEN
        RETURN;
    END IF;
    INSERT INTO {s}.candidates (election, session_id, epoch, value)
    VALUES (p_election, p_session, o_epoch, p_value)
    RETURNING id INTO o_id;
END $$;
"#;

/// `template` with the schema and the channel filled in. `schema` is a checked
/// identifier (see `check_schema`).
pub(super) fn fill(template: &str, schema: &str) -> String {
    template.replace("{s}", &format!("\"{schema}\"")).replace("{chan}", &format!("'{schema}'"))
}

/// Checks a schema name: a plain lowercase identifier of at most 63 bytes, so
/// it needs no quoting rules beyond the double quotes `fill` adds.
pub(super) fn check_schema(schema: &str) -> Result<(), String> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "option schema={schema:?}: expected a lowercase identifier (a-z, 0-9, _; not starting with a digit), \
             at most 63 bytes"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_quotes_roles_and_applies_only_later_migrations() {
        let all = schema_script("ballot", 0, &["app".into(), "we\"ird".into()]).unwrap();
        assert!(all.contains("BEGIN;\n") && all.ends_with("COMMIT;\n"), "{all}");
        assert!(all.contains("INSERT INTO \"ballot\".schema_migrations (version) VALUES (1);"));
        assert!(all.contains("GRANT USAGE ON SCHEMA \"ballot\" TO \"we\"\"ird\";"), "{all}");
        let latest = MIGRATIONS.last().unwrap().0;
        let none = schema_script("ballot", latest, &[]).unwrap();
        assert!(!none.contains("BEGIN") && none.contains("Nothing to apply"), "{none}");
        let grants_only = schema_script("ballot", latest, &["app".into()]).unwrap();
        assert!(!grants_only.contains("CREATE") && grants_only.contains("TO \"app\";"), "{grants_only}");
        for bad in [schema_script("Ballot", 0, &[]), schema_script("ballot", latest + 1, &[])] {
            assert_eq!(bad.unwrap_err().kind(), crate::ErrorKind::InvalidArgument);
        }
        let long = "r".repeat(64);
        assert_eq!(schema_script("ballot", 0, &[long]).unwrap_err().kind(), crate::ErrorKind::InvalidArgument);
    }
}
