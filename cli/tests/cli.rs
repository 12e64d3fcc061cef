//! The `ballot` binary, driven as a user would.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{alive, state, tree, BIN};

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ballot-cli-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn backend(dir: &Path) -> String {
    format!("file://{}", dir.join("backend").display())
}

fn ballot(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env_remove("BALLOT_BACKEND").output().unwrap()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

/// `ballot --backend URL run ELECTION [ARGS...] -- sh -c SCRIPT`, stderr piped.
fn spawn_run_sh(url: &str, election: &str, args: &[&str], script: &str) -> Child {
    Command::new(BIN)
        .args(["--backend", url, "run", election])
        .args(args)
        .args(["--", "sh", "-c", script])
        .env_remove("BALLOT_BACKEND")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A `ballot campaign` whose stdout lines arrive on a channel.
fn spawn_campaign(url: &str, election: &str, value: &str) -> (Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut c = Command::new(BIN)
        .args(["--backend", url, "campaign", election, value])
        .env_remove("BALLOT_BACKEND")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = c.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    (c, rx)
}

/// Waits for a line starting with `prefix`; returns the live processes of `pids`
/// at that moment (read before anything else happens).
fn alive_when(rx: &std::sync::mpsc::Receiver<String>, prefix: &str, pids: &[i32]) -> Vec<i32> {
    loop {
        let l = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| panic!("no {prefix:?} line"));
        if l.starts_with(prefix) {
            return pids.iter().copied().filter(|&p| alive(p)).collect();
        }
    }
}

/// Waits until the tree under `root` shows `n` processes named `comm`; returns the whole tree.
fn tree_with(root: i32, comm: &str, n: usize) -> Vec<(i32, String)> {
    let mut t = Vec::new();
    wait_until("the command's processes start", Duration::from_secs(10), || {
        t = tree(root);
        t.iter().filter(|(_, c)| c == comm).count() >= n
    });
    t
}

fn spawn_run(url: &str, log: &Path) -> Child {
    let script = format!("echo \"start $$ $BALLOT_TERM $BALLOT_ELECTION\" >> {}; exec sleep 60", log.display());
    Command::new(BIN)
        .args(["--backend", url, "run", "jobs/nightly", "--grace", "1s", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn run_starts_only_one_child_and_hands_over_on_sigkill() {
    let dir = tmpdir("run");
    let (url, log) = (backend(&dir), dir.join("log"));
    let mut a = spawn_run(&url, &log);
    wait_until("first child starts", Duration::from_secs(10), || lines(&log).len() == 1);
    let mut b = spawn_run(&url, &log);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(lines(&log).len(), 1, "a second child started while the first leader lives: {:?}", lines(&log));
    let first: Vec<String> = lines(&log)[0].split(' ').map(str::to_owned).collect();
    let (child_a, term_a): (i32, u64) = (first[1].parse().unwrap(), first[2].parse().unwrap());
    assert_eq!(first[3], "jobs/nightly");

    a.kill().unwrap(); // SIGKILL of the leading `ballot run`
    let took = wait_until("the other child starts", Duration::from_secs(1), || lines(&log).len() == 2);
    eprintln!("handover after SIGKILL: {took:?}");
    let second: Vec<String> = lines(&log)[1].split(' ').map(str::to_owned).collect();
    let term_b: u64 = second[2].parse().unwrap();
    assert!(term_b > term_a, "BALLOT_TERM increases: {term_a} -> {term_b}");
    // The orphaned child died with its `ballot run` (PR_SET_PDEATHSIG).
    wait_until("the first child is gone", Duration::from_millis(200), || !alive(child_a));
    let _ = a.wait();

    // SIGTERM: the child is stopped and leadership released.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(b.id() as i32, libc::SIGTERM) };
    let status = b.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    let out = ballot(&["--backend", &url, "leader", "jobs/nightly"]);
    assert_eq!(out.status.code(), Some(3), "no leader after the run stopped");
    let _ = std::fs::remove_dir_all(dir);
}

/// issue 14: SIGKILL of `ballot run` left the command's grandchildren running while
/// another candidate was elected (PR_SET_PDEATHSIG reaches only the direct child).
#[test]
fn sigkill_of_run_leaves_no_descendant_before_the_next_leader() {
    let dir = tmpdir("sigkill-tree");
    let url = backend(&dir);
    // A wrapper that waits for its child, and a script that forks two.
    for (i, (script, sleeps)) in [("sleep 1000; :", 1), ("sleep 1000 & sleep 1000; :", 2)].into_iter().enumerate() {
        let election = format!("tree{i}");
        let mut a = spawn_run_sh(&url, &election, &[], script);
        let t = tree_with(a.id() as i32, "sleep", sleeps);
        assert!(t.len() > sleeps + 1, "supervisor, sh and the sleeps: {t:?}");
        let (mut b, rx) = spawn_campaign(&url, &election, "b");
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "campaigning");
        a.kill().unwrap();
        let pids: Vec<i32> = t.iter().map(|(p, _)| *p).collect();
        let left = alive_when(&rx, "elected", &pids);
        assert!(left.is_empty(), "{script:?}: elected while {left:?} of {t:?} ran");
        let _ = a.wait();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(b.id() as i32, libc::SIGTERM) };
        assert_eq!(b.wait().unwrap().code(), Some(0));
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The supervisor of a local `ballot run` holds a duplicate of the leader lock, so
/// that a SIGKILLed `ballot run` releases the election only after the tree is gone.
/// It looked for a file named `leader.lock`; the leader lock became the election's
/// directory, the supervisor held nothing, and the next candidate could win while
/// the tree was being killed.
#[test]
fn the_supervisor_of_a_local_run_holds_the_leader_lock() {
    let dir = tmpdir("supervisor-lock");
    let url = backend(&dir);
    let mut a = spawn_run_sh(&url, "held", &[], "sleep 1000; :");
    let t = tree_with(a.id() as i32, "sleep", 1);
    let supervisor = t.iter().find(|(p, c)| c == "ballot" && *p != a.id() as i32).map(|(p, _)| *p);
    let supervisor = supervisor.unwrap_or_else(|| panic!("no supervisor in {t:?}"));
    let holds = std::fs::read_dir(format!("/proc/{supervisor}/fdinfo")).unwrap().flatten().any(|f| {
        std::fs::read_to_string(f.path()).is_ok_and(|info| {
            info.lines().any(|l| l.starts_with("lock:") && l.contains("FLOCK") && l.contains("WRITE"))
        })
    });
    assert!(holds, "the supervisor {supervisor} holds no exclusive flock");
    a.kill().unwrap();
    let _ = a.wait();
    let _ = std::fs::remove_dir_all(dir);
}

/// issue 14: a command that exits and leaves a background child: `ballot run`
/// resigned while that child ran.
#[test]
fn run_kills_what_the_command_left_before_it_resigns() {
    let dir = tmpdir("leftover");
    let url = backend(&dir);
    let (go, pidfile) = (dir.join("go"), dir.join("bg"));
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.05; done; sleep 1000 & echo $! > {bg}; exit 0",
        go = go.display(),
        bg = pidfile.display()
    );
    let mut a = spawn_run_sh(&url, "left", &["--grace", "60s"], &script);
    tree_with(a.id() as i32, "sh", 1);
    let (mut b, rx) = spawn_campaign(&url, "left", "b");
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "campaigning");
    std::fs::write(&go, "").unwrap();
    wait_until("the background child starts", Duration::from_secs(10), || lines(&pidfile).len() == 1);
    let bg: i32 = lines(&pidfile)[0].parse().unwrap();
    let left = alive_when(&rx, "elected", &[bg]);
    assert!(left.is_empty(), "the next leader was elected while the background child {bg} ran");
    assert_eq!(a.wait().unwrap().code(), Some(0), "the command's status");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(b.id() as i32, libc::SIGTERM) };
    let _ = b.wait();
    let _ = std::fs::remove_dir_all(dir);
}

/// A process that leaves the command's process group and session (setsid and a
/// double fork) is still found, through the subreaper, and stopped.
#[test]
fn run_stops_a_process_that_left_with_setsid_and_a_double_fork() {
    let dir = tmpdir("setsid");
    let url = backend(&dir);
    let pidfile = dir.join("escaped");
    let script = format!("setsid sh -c 'sleep 1000 & echo $! > {}'; exec sleep 1000", pidfile.display());
    let mut a = spawn_run_sh(&url, "escape", &["--grace", "60s"], &script);
    wait_until("the escaped process starts", Duration::from_secs(10), || lines(&pidfile).len() == 1);
    let escaped: i32 = lines(&pidfile)[0].parse().unwrap();
    assert!(tree(a.id() as i32).iter().any(|(p, _)| *p == escaped), "re-parented to the supervisor");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(a.id() as i32, libc::SIGTERM) };
    assert_eq!(a.wait().unwrap().code(), Some(128 + libc::SIGTERM));
    assert!(!alive(escaped), "the escaped process outlived `ballot run`: {:?}", state(escaped));
    assert_eq!(ballot(&["--backend", &url, "leader", "escape"]).status.code(), Some(3));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn run_exits_with_the_commands_status_and_resigns() {
    let dir = tmpdir("status");
    let url = backend(&dir);
    let out = ballot(&["--backend", &url, "run", "e", "--", "sh", "-c", "test \"$BALLOT_TERM\" -ge 1 && exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(ballot(&["--backend", &url, "leader", "e"]).status.code(), Some(3));
    let out = ballot(&["--backend", &url, "run", "e", "--", "/nonexistent/cmd"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot start"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn demo_prints_a_timeline_and_the_failover_last() {
    let out = ballot(&["demo"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("killed with SIGKILL while leading"), "{stdout}");
    assert_eq!(stdout.matches(" elected term=").count(), 2, "{stdout}");
    let last = stdout.lines().last().unwrap();
    let ms: f64 = last
        .strip_prefix("failover ")
        .and_then(|r| r.strip_suffix(" ms"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("last line {last:?}"));
    // A liveness bound only; the figure itself is reported by bench/.
    assert!(ms > 0.0 && ms < 5000.0, "{last}");
}

#[test]
fn leader_observe_end_and_campaign() {
    let dir = tmpdir("cmds");
    let url = backend(&dir);
    let mut camp = Command::new(BIN)
        .args(["--backend", &url, "campaign", "svc", "node-1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(camp.stdout.take().unwrap());
    let mut line = String::new();
    use std::io::BufRead;
    loop {
        line.clear();
        out.read_line(&mut line).unwrap();
        if line.starts_with("elected ") {
            break;
        }
    }
    assert!(line.starts_with("elected term=1 key="), "{line}");
    let l = ballot(&["--backend", &url, "leader", "svc", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&l.stdout).unwrap();
    assert_eq!((v["value"].as_str(), v["term"].as_u64()), (Some("node-1"), Some(1)));
    assert!(v["key"].as_str().is_some());

    let mut obs = Command::new(BIN).args(["--backend", &url, "observe", "svc"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut olines = std::io::BufReader::new(obs.stdout.take().unwrap()).lines();
    assert!(olines.next().unwrap().unwrap().starts_with("term=1 "));
    let end = ballot(&["--backend", &url, "end", "svc"]);
    assert!(end.status.success());
    assert_eq!(camp.wait().unwrap().code(), Some(5), "campaign exits 5 when ended");
    let rest: Vec<String> = olines.map(|l| l.unwrap()).collect();
    assert_eq!(rest.last().map(String::as_str), Some("ended"), "{rest:?}");
    assert_eq!(obs.wait().unwrap().code(), Some(5));
    let _ = std::fs::remove_dir_all(dir);
}

/// A SIGTERM that arrived while `campaign` handled an event (the `LeaderChanged`
/// of its own election) was lost: the signal listener was made anew for each
/// event, so `ballot campaign` kept leading until SIGKILL.
#[test]
fn campaign_resigns_on_a_sigterm_right_after_its_election() {
    let dir = tmpdir("sigterm");
    let url = backend(&dir);
    for i in 0..10 {
        // b is elected when a is killed, and gets SIGTERM as soon as it says so,
        // while the leader changes reach its event loop.
        let (mut a, arx) = spawn_campaign(&url, "svc", "a");
        assert!(alive_when(&arx, "elected", &[]).is_empty());
        let (mut b, brx) = spawn_campaign(&url, "svc", "b");
        assert_eq!(brx.recv_timeout(Duration::from_secs(10)).unwrap(), "campaigning");
        a.kill().unwrap();
        let _ = a.wait();
        assert!(alive_when(&brx, "elected", &[]).is_empty());
        // SAFETY: signalling our own child.
        unsafe { libc::kill(b.id() as i32, libc::SIGTERM) };
        let exited = (0..1000).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            b.try_wait().unwrap().is_some()
        });
        if !exited {
            let _ = b.kill();
        }
        assert!(exited, "round {i}: `ballot campaign` ignored SIGTERM");
        assert_eq!(b.wait().unwrap().code(), Some(0));
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Whether `text` (one line of output, without its newline) holds a character
/// that a terminal would act on.
fn drives_a_terminal(text: &str) -> bool {
    text.chars().any(|c| {
        c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    })
}

/// issue 14: a leader value reached the terminal raw, so it could clear the
/// screen, set the window title or hide what follows.
#[test]
fn leader_values_are_printed_with_control_characters_escaped() {
    use std::io::BufRead;
    let dir = tmpdir("escape");
    let url = backend(&dir);
    let evil = "x\u{1b}]0;pwned\u{7}\u{1b}[2J\r\u{9b}31m\u{7f}\u{202e}cba";
    let (mut camp, rx) = spawn_campaign(&url, "esc", evil);
    assert!(alive_when(&rx, "elected", &[]).is_empty());

    let out = ballot(&["--backend", &url, "leader", "esc"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.strip_suffix('\n').unwrap();
    assert!(!drives_a_terminal(line), "{line:?}");
    assert!(line.ends_with(r"value=x\u{1b}]0;pwned\u{7}\u{1b}[2J\r\u{9b}31m\u{7f}\u{202e}cba"), "{line:?}");

    let out = ballot(&["--backend", &url, "leader", "esc", "--json"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!drives_a_terminal(text.trim_end()), "{text:?}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["value"].as_str(), Some(evil), "JSON keeps the value, escaped");

    let mut obs = Command::new(BIN)
        .args(["--backend", &url, "observe", "esc"])
        .env_remove("BALLOT_BACKEND")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let first = std::io::BufReader::new(obs.stdout.take().unwrap()).lines().next().unwrap().unwrap();
    assert!(first.starts_with("term=") && !drives_a_terminal(&first), "{first:?}");
    let _ = obs.kill();
    let _ = obs.wait();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(camp.id() as i32, libc::SIGTERM) };
    let _ = camp.wait();
    let _ = std::fs::remove_dir_all(dir);
}

/// The demo prints the backend it runs on: without the credentials in its URL.
#[test]
fn demo_never_prints_the_urls_secret() {
    // The unknown option makes every candidate fail at once, after the first line.
    let out = ballot(&["--backend", "etcd://someone:hunter2@127.0.0.1:1/x?bogus=1", "demo", "--candidates", "2"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_ne!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("on etcd://***@127.0.0.1:1/x"), "{stdout}");
    assert!(!stdout.contains("hunter2") && !stderr.contains("hunter2"), "{stdout}{stderr}");
}

#[test]
fn bad_input_is_one_line_with_the_kind_and_exit_2() {
    for args in [
        vec!["--backend", "nope://x", "leader", "svc"],
        vec!["--backend", "file:///tmp/x?bogus=1", "leader", "svc"],
        vec!["--backend", "file:///tmp/ballot-cli-bad", "leader", "a//b"],
        vec!["--backend", "file:///tmp/ballot-cli-bad", "leader", ""],
        // issue 14: a --grace that overflows panicked (debug) or wrapped (release).
        vec!["--backend", "file:///tmp/ballot-cli-bad", "run", "e", "--grace", "307445734561825861m", "--", "true"],
        vec!["--backend", "file:///tmp/ballot-cli-bad", "run", "e", "--grace", "99999999999999999999s", "--", "true"],
        // memory:// lives in one process: every command would lead alone.
        vec!["--backend", "memory://x", "leader", "svc"],
        vec!["--backend", "MEMORY://x", "campaign", "svc", "v"],
        vec!["--backend", "memory://x", "run", "svc", "--", "true"],
        vec!["--backend", "memory://x", "demo"],
    ] {
        let out = ballot(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("ballot: error: invalid_argument: "), "{err}");
    }
    let out = ballot(&["leader"]);
    assert_eq!(out.status.code(), Some(2));
    let help = ballot(&["--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Exit codes:"));
}

/// `--log-level` and `BALLOT_LOG` print the library's records to stderr; neither
/// prints nothing; a bad level is a usage error that names it.
#[test]
fn log_level_prints_the_library_records_to_stderr() {
    let d = tmpdir("log");
    let url = backend(&d);
    let run = |log: Option<(&str, &str)>| {
        let mut c = Command::new(BIN);
        c.env_remove("BALLOT_BACKEND").env_remove("BALLOT_LOG");
        match log {
            Some(("flag", level)) => {
                c.args(["--log-level", level]);
            }
            Some((_, level)) => {
                c.env("BALLOT_LOG", level);
            }
            None => {}
        }
        c.args(["--backend", &url, "run", "svc", "--", "true"]).output().unwrap()
    };
    for how in ["flag", "env"] {
        let o = run(Some((how, "info")));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{how}: {err}");
        assert!(err.contains("ballot info backend=file election=svc: elected term="), "{how}: {err}");
        assert!(err.contains("ballot info backend=file election=svc: resigned"), "{how}: {err}");
        assert!(!err.contains("ballot debug"), "{how}: a debug record at level info: {err}");
    }
    let quiet = run(None);
    assert!(quiet.status.success());
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("ballot info"), "{quiet:?}");
    let bad = run(Some(("flag", "loud")));
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--log-level: unknown log level \"loud\""), "{err}");
    let bad = run(Some(("env", "loud")));
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("BALLOT_LOG: unknown log level"), "{bad:?}");
    let _ = std::fs::remove_dir_all(&d);
}

/// `ballot participants` on the local backend: nothing before anyone campaigns,
/// then the leader (the waiting candidates of other processes are recorded
/// nowhere on this backend), its value escaped as `ballot leader` escapes it.
#[test]
fn participants_text_and_json_with_escaped_values() {
    let dir = tmpdir("participants");
    let url = backend(&dir);
    let out = ballot(&["--backend", &url, "participants", "svc"]);
    assert_eq!((out.status.code(), out.stdout.as_slice()), (Some(0), &b""[..]));
    let out = ballot(&["--backend", &url, "participants", "svc", "--json"]);
    assert_eq!((out.status.code(), String::from_utf8(out.stdout).unwrap()), (Some(0), "[]\n".to_string()));
    let evil = "x\u{1b}]0;pwned\u{7}\u{202e}cba";
    let (mut camp, rx) = spawn_campaign(&url, "svc", evil);
    let elected = loop {
        let l = rx.recv_timeout(Duration::from_secs(20)).expect("an elected line");
        if l.starts_with("elected") {
            break l;
        }
    };
    let key = elected.split("key=").nth(1).unwrap().to_string();
    let out = ballot(&["--backend", &url, "participants", "svc"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!drives_a_terminal(text.trim_end()), "{text:?}");
    assert_eq!(text, format!("leader key={key} value=x\\u{{1b}}]0;pwned\\u{{7}}\\u{{202e}}cba\n"));
    let out = ballot(&["--backend", &url, "participants", "svc", "--json"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!drives_a_terminal(text.trim_end()), "{text:?}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v, serde_json::json!([{"key": key, "value": evil, "leader": true}]));
    let out = ballot(&["--backend", &url, "participants", "a//b"]);
    assert_eq!(out.status.code(), Some(2), "a bad name is a usage error");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(camp.id() as i32, libc::SIGTERM) };
    let _ = camp.wait();
    let _ = std::fs::remove_dir_all(dir);
}
