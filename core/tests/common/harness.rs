//! Runs `tests/servers/harness.py` on the state directory of a running server kind,
//! for tests that kill, pause or restart its members.

use std::collections::HashMap;
use std::path::PathBuf;

/// The state directory of the kind whose facts start with `prefix` (such as
/// `BALLOT_TEST_ZK_ENSEMBLE`): where its first member's log is. Kinds may run in
/// different state directories, so the directory of `BALLOT_TEST_BACKENDS` is not
/// always theirs.
fn statedir(prefix: &str) -> PathBuf {
    let var = format!("{prefix}_0_LOG");
    let log = std::env::var(&var).unwrap_or_else(|_| {
        panic!("{var} is not set: start the servers with tests/servers/harness.py (tests/run.sh does)")
    });
    PathBuf::from(log).parent().expect("the member log lives in the harness state directory").to_path_buf()
}

/// Runs `harness.py ARGS --dir <the kind's state directory>` and returns its
/// standard output; fails the test when it fails (its errors go to stderr).
pub fn harness(prefix: &str, args: &[&str]) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/servers/harness.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args(args)
        .arg("--dir")
        .arg(statedir(prefix))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("python3 must be installed");
    assert!(out.status.success(), "harness {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The harness's facts now (PIDs change when a member restarts).
pub fn facts(prefix: &str) -> HashMap<String, String> {
    harness(prefix, &["env"])
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string())))
        .collect()
}
