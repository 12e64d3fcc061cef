//! `--metrics-addr` of `ballot run` and `ballot campaign` against the real etcd that
//! `tests/run.sh` starts: `ballot_leader` is 1 on exactly one of two candidates and
//! follows a handoff; `/healthz` is 200 on a healthy leader and 503 once the
//! connection to the server is cut; other paths are 404; a bad address is a usage
//! error; `run --requeue` moves `/healthz` to each new campaign; out of descriptors,
//! the responder counts its failed accepts and does not spin.
#![cfg(feature = "etcd")]

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET path` on 127.0.0.1:`port`: the status and the body, None when nothing
/// answers (not listening yet, or gone).
fn get(port: u16, path: &str) -> Option<(u16, String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let ctype = head.lines().find_map(|l| l.strip_prefix("Content-Type: ")).map(str::to_string).unwrap_or_default();
    Some((status, ctype, body.to_string()))
}

/// The value of the one `name{...}` sample of a process's exposition (each
/// process here has one client and one election handle).
fn sample(text: &str, name: &str) -> Option<f64> {
    let prefix = format!("{name}{{");
    let mut values = text.lines().filter(|l| l.starts_with(&prefix)).map(|l| l.rsplit(' ').next().unwrap());
    let v = values.next()?.parse().ok();
    assert!(values.next().is_none(), "one {name} sample expected:\n{text}");
    v
}

fn leader_gauge(port: u16) -> Option<f64> {
    get(port, "/metrics").and_then(|(_, _, body)| sample(&body, "ballot_leader"))
}

fn run(url: &str, name: &str, port: u16) -> Proc {
    let addr = format!("127.0.0.1:{port}");
    Proc::spawn(
        "ballot run",
        ballot(url).args(["run", name, "--metrics-addr", &addr, "--grace", "1s", "--", "sleep", "1000"]),
        true,
    )
}

#[test]
fn ballot_leader_is_one_on_exactly_one_candidate_and_follows_a_handoff() {
    let url = env("BALLOT_TEST_ETCD");
    let name = unique("metrics-handoff");
    let (pa, pb) = (free_port(), free_port());
    let a = run(&url, &name, pa);
    a.until("elected");
    let mut b = run(&url, &name, pb);
    wait_for("b campaigns", LIVE, || {
        get(pb, "/metrics").and_then(|(_, _, t)| sample(&t, "ballot_campaigning")) == Some(1.0)
    });
    let (status, ctype, text) = get(pa, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
    assert!(text.contains("# TYPE ballot_leader gauge"), "{text}");
    assert!(text.contains(&format!("election=\"{name}\"")), "{text}");
    assert_eq!((leader_gauge(pa), leader_gauge(pb)), (Some(1.0), Some(0.0)));
    assert_eq!(get(pa, "/healthz").map(|r| (r.0, r.2)), Some((200, "ok: leader\n".to_string())));
    assert_eq!(get(pb, "/healthz").map(|r| (r.0, r.2)), Some((200, "ok: campaigning\n".to_string())));
    assert_eq!(get(pa, "/nope").map(|r| r.0), Some(404));

    // Handoff: SIGTERM makes a stop its command, resign and exit; b wins.
    let mut a = a;
    a.signal(libc::SIGTERM);
    wait_for("b's ballot_leader becomes 1", LIVE, || leader_gauge(pb) == Some(1.0));
    assert_eq!(sample(&get(pb, "/metrics").unwrap().2, "ballot_elections_won_total"), Some(1.0));
    a.wait(LIVE);
    assert_eq!(leader_gauge(pa), None, "a is gone");
    b.signal(libc::SIGTERM);
    b.wait(LIVE);
}

/// A loopback TCP proxy that the test can cut: every open connection is shut down
/// and new ones are closed at once.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (cut2, open2) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for down in listener.incoming() {
                let Ok(down) = down else { continue };
                if cut2.load(Ordering::SeqCst) {
                    continue; // dropped: closed
                }
                let Ok(up) = TcpStream::connect(&upstream) else { continue };
                let mut o = open2.lock().unwrap();
                o.push(down.try_clone().unwrap());
                o.push(up.try_clone().unwrap());
                for (mut from, mut to) in [(down.try_clone().unwrap(), up.try_clone().unwrap()), (up, down)] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, cut, open }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

#[test]
fn healthz_is_503_once_the_connection_to_the_server_is_cut() {
    let upstream =
        env("BALLOT_TEST_ETCD_ENDPOINTS").trim_start_matches("http://").split(',').next().unwrap().to_string();
    let proxy = Proxy::start(upstream);
    let url = format!("etcd://127.0.0.1:{}?ttl=6s", proxy.port);
    let name = unique("metrics-cut");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut c =
        Proc::spawn("ballot campaign", ballot(&url).args(["campaign", &name, "v", "--metrics-addr", &addr]), false);
    c.until("elected");
    assert_eq!(get(port, "/healthz").map(|r| (r.0, r.2)), Some((200, "ok: leader\n".to_string())));
    let text = get(port, "/metrics").unwrap().2;
    assert_eq!(sample(&text, "ballot_session_healthy"), Some(1.0));
    assert!(sample(&text, "ballot_session_deadline_seconds").is_some_and(|d| d > 0.0 && d <= 6.0), "{text}");

    proxy.cut();
    let mut seen = None;
    wait_for("/healthz becomes 503", LIVE, || {
        seen = get(port, "/healthz");
        seen.as_ref().is_some_and(|r| r.0 == 503)
    });
    let (_, ctype, reason) = seen.unwrap();
    assert_eq!(ctype, "text/plain; charset=utf-8");
    assert!(reason.starts_with("session suspended") || reason.starts_with("suspended"), "{reason:?}");
    assert_eq!(reason.lines().count(), 1, "{reason:?}");
    c.signal(libc::SIGTERM);
    c.wait(LIVE);
}

#[test]
fn a_bad_metrics_address_is_a_usage_error() {
    for bad in ["9464", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000", ":9464"] {
        let out = ballot("file:///nonexistent-ballot-dir")
            .args(["campaign", "x", "v", "--metrics-addr", bad])
            .env_remove("BALLOT_BACKEND")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--metrics-addr") && err.contains("HOST:PORT"), "{bad}: {err}");
    }
}

/// The open descriptors of `pid`.
fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// Out of descriptors, the server's `accept` fails while connections wait in the
/// backlog. It used to retry at once and spin a core (found by review). It now
/// waits 100 ms between tries, which `ballot_metrics_accept_errors_total` shows:
/// at most one failure per 100 ms of the time the test ran, where a spinning loop
/// counts thousands. The bound compares a count with a clock the way a slower
/// machine can only lower, so it cannot fail because the machine is loaded.
#[test]
fn out_of_descriptors_the_server_retries_without_spinning_and_counts_it() {
    use std::os::unix::process::CommandExt;
    const LIMIT: u64 = 64;
    let url = env("BALLOT_TEST_ETCD");
    let name = unique("metrics-emfile");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = ballot(&url);
    cmd.args(["run", &name, "--metrics-addr", &addr, "--", "sleep", "1000"]);
    // SAFETY: setrlimit(2) is async-signal-safe; it runs in the child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: LIMIT, rlim_max: LIMIT };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut r = Proc::spawn("ballot run (64 descriptors)", &mut cmd, true);
    r.until("elected");
    let text = get(port, "/metrics").unwrap().2;
    assert!(text.contains("# TYPE ballot_metrics_accept_errors_total counter"), "{text}");
    assert!(text.lines().any(|l| l == "ballot_metrics_accept_errors_total 0"), "{text}");

    let start = std::time::Instant::now();
    // Idle connections: the server holds each until its 5 s read limit, so the
    // descriptors run out and the rest wait in the listen backlog.
    let idle: Vec<TcpStream> =
        (0..LIMIT as usize + 16).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    wait_for("the process uses all its descriptors", LIVE, || open_fds(r.pid()) as u64 >= LIMIT);
    r.until("cannot accept a connection");
    // Keep it out of descriptors for a while: long enough that a loop that
    // retried at once would have counted far beyond the bound below.
    std::thread::sleep(Duration::from_secs(1));
    drop(idle);
    r.until("accepts connections again");
    let mut text = String::new();
    wait_for("/metrics answers again", LIVE, || {
        get(port, "/metrics").map(|(_, _, t)| text = t).is_some() && !text.is_empty()
    });
    let elapsed = start.elapsed();
    let errors: u128 = text
        .lines()
        .find_map(|l| l.strip_prefix("ballot_metrics_accept_errors_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no accept error count:\n{text}"));
    assert!(errors >= 1, "the server never failed to accept:\n{text}");
    assert!(errors <= elapsed.as_millis() / 100 + 1, "{errors} failed accepts in {elapsed:?}: the retry spins");
    assert_eq!(leader_gauge(port), Some(1.0), "the election went on");
    r.signal(libc::SIGTERM);
    r.wait(LIVE);
}

/// `run --requeue` campaigns again with a new handle after a loss; `/healthz`
/// must follow it, not keep answering for the lost handle.
#[test]
fn healthz_follows_the_new_campaign_of_run_requeue_after_a_loss() {
    let (url, eps) = (env("BALLOT_TEST_ETCD"), env("BALLOT_TEST_ETCD_ENDPOINTS"));
    let name = unique("metrics-requeue");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut r = Proc::spawn(
        "ballot run --requeue",
        ballot(&url).args(["run", &name, "--requeue", "--metrics-addr", &addr, "--", "sleep", "1000"]),
        true,
    );
    r.until("elected");
    assert_eq!(get(port, "/healthz").map(|r| (r.0, r.2)), Some((200, "ok: leader\n".to_string())));
    // The leader's key is `<name>/<lease id in hex>`: revoking the lease loses the
    // session, and with it the leadership.
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={eps}"))
        .args(["get", &format!("{name}/"), "--prefix", "--keys-only"])
        .output()
        .unwrap();
    let keys = String::from_utf8(out.stdout).unwrap();
    let lease = keys.split_whitespace().next().and_then(|k| k.rsplit('/').next()).unwrap().to_string();
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={eps}"))
        .args(["lease", "revoke", &lease])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    r.until("leadership lost");
    r.until("elected");
    assert_eq!(get(port, "/healthz").map(|r| (r.0, r.2)), Some((200, "ok: leader\n".to_string())));
    assert_eq!(leader_gauge(port), Some(1.0));
    r.signal(libc::SIGTERM);
    r.wait(LIVE);
}
