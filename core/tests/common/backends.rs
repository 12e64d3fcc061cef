//! The one description of the backends under test, written by
//! `tests/servers/harness.py` (`STATEDIR/backends.json`, path in
//! `BALLOT_TEST_BACKENDS`): each backend's URL, the session TTL tests use, the
//! takeover and liveness bounds, and its quirks. Without the variable (no harness
//! ran), `harness.py describe` gives `memory` and `local` only.
//!
//! Shared by the Rust tests of `ballot` (`core/tests/common`) and `ballot-ffi`
//! (`ffi/tests/c_programs.rs` includes this file by path): it needs only std and
//! serde_json.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

/// One backend of the description.
#[derive(Debug, Clone)]
pub struct Backend {
    /// The description's key: `memory`, `local`, or a harness kind (`etcd`, `zk-ensemble`, ...).
    pub name: String,
    /// `memory`, `local`, `etcd`, `zk` or `consul`.
    pub family: String,
    /// The base URL; a test's own namespace is `url/NAME` (see [`Backend::fresh_url`]).
    pub url: String,
    /// URL options every test adds, such as Consul's `lock_delay=0s`; may be empty.
    pub query: String,
    /// One URL per member.
    pub urls: Vec<String>,
    /// The session TTL tests use (the backend's own limits applied).
    pub ttl: Duration,
    /// How long a successor may take to win after the leader died or its session
    /// was expired or cut off: a liveness bound, not a speed claim.
    pub takeover: Duration,
    /// How long a step that waits on no expiry may take.
    pub live: Duration,
    /// The backend's own rules behind the numbers (`tick_ms`, `ttl_min_ms`, ...).
    pub quirks: Value,
    /// The harness's facts of the kind, without the `BALLOT_TEST_<KIND>_` prefix.
    pub facts: HashMap<String, String>,
}

impl Backend {
    /// `url/ns` with the backend's query: a namespace of this test's own.
    pub fn fresh_url(&self, ns: &str) -> String {
        self.with_query(&format!("{}/{ns}", self.url))
    }

    /// `url` with the backend's query appended.
    pub fn with_query(&self, url: &str) -> String {
        if self.query.is_empty() {
            url.to_string()
        } else {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}{}", self.query)
        }
    }

    /// A fact of the kind (`USER`, `TOKEN`, `0_PID`, ...); panics when missing.
    pub fn fact(&self, key: &str) -> &str {
        self.facts.get(key).unwrap_or_else(|| panic!("{}: no fact {key} in the description", self.name))
    }

    /// A number among the quirks (`tick_ms`, ...).
    pub fn quirk_ms(&self, key: &str) -> Option<u64> {
        self.quirks.get(key).and_then(Value::as_u64)
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load() -> HashMap<String, Backend> {
    let text = match std::env::var("BALLOT_TEST_BACKENDS") {
        Ok(path) if !path.is_empty() => {
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading BALLOT_TEST_BACKENDS={path}: {e}"))
        }
        _ => {
            let out = std::process::Command::new("python3")
                .arg(repo().join("tests/servers/harness.py"))
                .arg("describe")
                .output()
                .unwrap_or_else(|e| panic!("running python3 tests/servers/harness.py describe: {e}"));
            assert!(out.status.success(), "harness.py describe: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).expect("harness.py describe prints UTF-8")
        }
    };
    let doc: Value = serde_json::from_str(&text).expect("the backend description is JSON");
    let ms = |v: &Value, k: &str| Duration::from_millis(v[k].as_u64().unwrap_or_else(|| panic!("no {k}")));
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_else(|| panic!("no {k}")).to_string();
    let mut out = HashMap::new();
    for (name, v) in doc["backends"].as_object().expect("a \"backends\" object") {
        let facts = v["facts"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            .unwrap_or_default();
        let urls = v["urls"].as_array().map(|a| a.iter().filter_map(|u| u.as_str().map(String::from)).collect());
        out.insert(
            name.clone(),
            Backend {
                name: name.clone(),
                family: s(v, "family"),
                url: s(v, "url"),
                query: s(v, "query"),
                urls: urls.unwrap_or_default(),
                ttl: ms(v, "ttl_ms"),
                takeover: ms(v, "takeover_ms"),
                live: ms(v, "live_ms"),
                quirks: v["quirks"].clone(),
                facts,
            },
        );
    }
    out
}

fn all() -> &'static HashMap<String, Backend> {
    static ALL: OnceLock<HashMap<String, Backend>> = OnceLock::new();
    ALL.get_or_init(load)
}

/// The backend `name` if it runs. When it does not: panics under
/// `BALLOT_TEST_REQUIRE_SERVERS=1` (set by tests/run.sh), else says on stderr
/// that the test did not run against it and gives None.
pub fn backend(name: &str) -> Option<&'static Backend> {
    match all().get(name) {
        Some(b) => Some(b),
        None if std::env::var_os("BALLOT_TEST_REQUIRE_SERVERS").is_some() => {
            panic!("{name} is not in the backend description: tests/run.sh starts it with tests/servers/harness.py")
        }
        None => {
            eprintln!("NOT RUN against {name}: not in the backend description (tests/servers/harness.py starts it)");
            None
        }
    }
}

/// The backend `name`, which the test cannot do without: panics when it does not run.
pub fn require(name: &str) -> &'static Backend {
    all().get(name).unwrap_or_else(|| {
        panic!("{name} is not in the backend description: start it with tests/servers/harness.py (tests/run.sh does)")
    })
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A name unique to this process and call, so that runs against a shared server never meet.
pub fn unique(tag: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{tag}-{}-{}-{nanos:x}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

/// The backend a test URL (a backend's URL, a namespace under it, with a query)
/// belongs to: the one with the longest base URL that prefixes it.
pub fn backend_of(url: &str) -> &'static Backend {
    // Credentials (consul://TOKEN@host, and the password in pg's own base URL)
    // are not part of the base.
    fn bare(url: &str) -> String {
        let base = url.split('?').next().unwrap_or(url);
        match (base.find("://"), base.find('@')) {
            (Some(s), Some(at)) if at > s => format!("{}{}", &base[..s + 3], &base[at + 1..]),
            _ => base.to_string(),
        }
    }
    let base = bare(url);
    all()
        .values()
        .filter(|b| {
            let own = bare(&b.url);
            base == own || base.starts_with(&format!("{own}/"))
        })
        .max_by_key(|b| b.url.len())
        .unwrap_or_else(|| panic!("{url} is under no backend of the description"))
}
