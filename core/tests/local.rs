//! The local backend (`file://DIR`) at its edges: files deleted or replaced under
//! a live leader, terms that must not go back, permissions, descriptors across
//! exec. Claims about processes use real ones: this test binary runs itself as a
//! second candidate (`helper_candidate`).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ballot::{Client, ErrorKind, Event, LostReason, Options};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

/// A liveness bound for anything that should happen at once.
const LIVE: Duration = Duration::from_secs(10);

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A fresh directory for one test (the backend directory is `<it>/backend`).
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "ballot-local-test-{tag}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn url(backend: &Path) -> String {
    format!("file://{}", backend.display())
}

async fn connect(backend: &Path) -> Client {
    Client::connect(&url(backend), Options::default().with_auto_requeue(false)).await.unwrap()
}

async fn live<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIVE, f).await.unwrap_or_else(|_| panic!("{what}: not within {LIVE:?}"))
}

/// Waits for the next `Lost` among `events` and returns its reason.
async fn next_lost(events: &mut ballot::Events) -> LostReason {
    loop {
        match events.recv().await {
            Some(Event::Lost { reason }) => return reason,
            Some(_) => {}
            None => panic!("the event stream ended before Lost"),
        }
    }
}

/// A candidate in a process of its own: campaigns in `$BALLOT_HELPER_ELECTION` on
/// `$BALLOT_HELPER_URL`, prints `HELPER elected term=N`, then `HELPER lost <reason>`
/// when it loses, and exits. Without the variables (a normal test run) it does
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by the other tests"]
async fn helper_candidate() {
    let (Ok(url), Ok(name)) = (std::env::var("BALLOT_HELPER_URL"), std::env::var("BALLOT_HELPER_ELECTION")) else {
        return;
    };
    let c = Client::connect(&url, Options::default().with_auto_requeue(false)).await.unwrap();
    let e = c.election(&name).unwrap();
    let mut events = e.events();
    let lead = e.campaign("helper").await.unwrap();
    println!("HELPER elected term={}", lead.term());
    let reason = next_lost(&mut events).await;
    println!("HELPER lost {reason}");
    c.close().await.unwrap();
}

struct Helper {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Helper {
    fn start(backend: &Path, election: &str) -> Helper {
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "helper_candidate", "--ignored", "--nocapture", "--test-threads=1"])
            .env("BALLOT_HELPER_URL", url(backend))
            .env("BALLOT_HELPER_ELECTION", election)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Helper { child, lines }
    }

    /// The rest of the next line the helper prints after `HELPER <tag>`.
    async fn expect(&mut self, tag: &str) -> String {
        let marker = format!("HELPER {tag}");
        live(&format!("the helper prints {marker:?}"), async {
            loop {
                let l =
                    self.lines.next_line().await.unwrap().unwrap_or_else(|| panic!("helper exited before {marker:?}"));
                // libtest may print "test helper_candidate ... " on the same line.
                if let Some(rest) = l.split(&marker).nth(1) {
                    return rest.trim().to_string();
                }
            }
        })
        .await
    }

    async fn elected_term(&mut self) -> u64 {
        self.expect("elected term=").await.parse().unwrap()
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: signals our own child.
        assert_eq!(unsafe { libc::kill(self.child.id().unwrap() as i32, sig) }, 0);
    }

    /// Stops the helper and waits until every thread of it has stopped: kill()
    /// returns before the stop takes effect, and a thread that still runs could
    /// react to what the test does next.
    async fn stop(&self) {
        self.signal(libc::SIGSTOP);
        let tasks = format!("/proc/{}/task", self.child.id().unwrap());
        let stopped = |t: std::fs::DirEntry| {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
        };
        live("the helper stops", async {
            while !std::fs::read_dir(&tasks).unwrap().filter_map(|t| t.ok()).all(stopped) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
    }
}

/// The reproduction: `state` (and a `leader.lock`, if any) deleted under a
/// live leader. The leader is stopped (SIGSTOP) meanwhile, so it cannot react: a
/// new candidate must still not win, and once the leader runs again it reports
/// `Lost` and the next term is above its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_files_under_a_live_leader_never_makes_a_second_leader() {
    let dir = scratch("deleted");
    let backend = dir.join("backend");
    let mut a = Helper::start(&backend, "svc");
    let term_a = a.elected_term().await;
    a.stop().await;
    for f in ["leader.lock", "state"] {
        let _ = std::fs::remove_file(backend.join("svc.d").join(f));
    }
    let c = connect(&backend).await;
    let e = c.election("svc").unwrap();
    let early = tokio::time::timeout(Duration::from_secs(1), e.campaign("b")).await;
    if let Ok(r) = &early {
        a.signal(libc::SIGCONT);
        panic!("a second leader while the first still holds the election: {r:?} (first term {term_a})");
    }
    a.signal(libc::SIGCONT);
    let t0 = Instant::now();
    assert_eq!(a.expect("lost").await, "deleted");
    let lead = live("b is elected after a lost", e.campaign("b")).await.unwrap();
    eprintln!("the stopped leader reported Lost {:?} after SIGCONT", t0.elapsed());
    assert!(lead.term() > term_a, "the term went back: {term_a} -> {}", lead.term());
    c.close().await.unwrap();
    let _ = a.child.wait().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A leader whose record is deleted, replaced, or whose whole election directory
/// is moved away reports `Lost` at once (inotify), not never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_files_are_deleted_or_replaced_reports_lost_at_once() {
    let dir = scratch("lost");
    let backend = dir.join("backend");
    let c = connect(&backend).await;
    type Damage = fn(&Path, &Path);
    let cases: [(&str, Damage); 3] = [
        ("state deleted", |el, _| std::fs::remove_file(el.join("state")).unwrap()),
        ("state replaced by another leader's record", |el, scratch| {
            let forged = b"ballot-local-state 1\nterm 99\nepoch 0\nleader someone-else\nvalue 1\nx";
            let tmp = scratch.join("forged");
            std::fs::write(&tmp, forged).unwrap();
            std::fs::rename(&tmp, el.join("state")).unwrap();
        }),
        ("election directory moved away", |el, scratch| std::fs::rename(el, scratch.join("moved-away")).unwrap()),
    ];
    let mut kept = Vec::new();
    for (i, (what, damage)) in cases.iter().enumerate() {
        let name = format!("svc{i}");
        let e = c.election(&name).unwrap();
        let mut events = e.events();
        let lead = live("campaign", e.campaign("a")).await.unwrap();
        assert!(lead.is_current());
        damage(&backend.join(format!("{name}.d")), &dir);
        let t0 = Instant::now();
        let reason = live(&format!("Lost after {what}"), next_lost(&mut events)).await;
        eprintln!("{what}: Lost({reason}) after {:?}", t0.elapsed());
        assert_eq!(reason, LostReason::Deleted, "{what}");
        assert!(!lead.is_current(), "{what}");
        kept.push((e, events));
    }
    // The election whose directory moved away is made again, while its handle still
    // watches the old one: inotify must watch the new directory (the poll alone
    // would take a minute).
    let (e, mut events) = kept.pop().unwrap();
    live("campaign in the new directory", e.campaign("a")).await.unwrap();
    std::fs::remove_file(backend.join("svc2.d/state")).unwrap();
    let reason = live("Lost in the new directory", next_lost(&mut events)).await;
    assert_eq!(reason, LostReason::Deleted);
    c.close().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// Whether this process waits in `flock` for one of `paths` (a line `N: -> FLOCK
/// ADVISORY WRITE <pid> <maj>:<min>:<inode> ...` of /proc/locks).
fn blocked_in_flock_on(paths: &[PathBuf]) -> bool {
    let inodes: Vec<u64> = paths.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.ino()).collect();
    let me = std::process::id().to_string();
    std::fs::read_to_string("/proc/locks").unwrap().lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 6
            && f[1] == "->"
            && f[2] == "FLOCK"
            && f[5] == me
            && f[6].rsplit(':').next().and_then(|i| i.parse().ok()).is_some_and(|i: u64| inodes.contains(&i))
    })
}

/// A candidate blocked on the election's lock while the election directory is
/// replaced must not win on the old one: when the old leader lets go, it has to
/// lock the directory the path names now, which a third candidate holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_candidate_does_not_win_on_a_replaced_election() {
    let dir = scratch("replaced");
    let backend = dir.join("backend");
    let el = backend.join("svc.d");
    let mut a = Helper::start(&backend, "svc");
    a.elected_term().await;
    // The waiting candidate, in this process: waiting once its lock thread blocks
    // in flock on the election (the directory; a file in earlier builds).
    let c = connect(&backend).await;
    let e = c.election("svc").unwrap();
    let e2 = e.clone();
    let mut waiting = tokio::spawn(async move { e2.campaign("waiter").await });
    let locks = [el.clone(), el.join("leader.lock")];
    live("the waiter blocks on the election's lock", async {
        while !blocked_in_flock_on(&locks) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // Replace the election while a cannot react (stopped): move it away and let a
    // third candidate win the new one. Then a notices, and lets go of the old one.
    a.stop().await;
    std::fs::rename(&el, dir.join("old-svc.d")).unwrap();
    let mut b = Helper::start(&backend, "svc");
    b.elected_term().await; // the new directory is free: b wins it at once
    a.signal(libc::SIGCONT);
    assert_eq!(a.expect("lost").await, "deleted");
    // a let go of the old election: the waiter must now wait for b.
    let r = tokio::time::timeout(Duration::from_secs(1), &mut waiting).await;
    assert!(r.is_err(), "the waiter won while b leads the election: {r:?}");
    b.child.start_kill().unwrap();
    let lead = live("the waiter wins after b is killed", waiting).await.unwrap().unwrap();
    assert!(lead.is_current());
    c.close().await.unwrap();
    let _ = a.child.wait().await;
    let _ = b.child.wait().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Deleting `state` alone cannot make the term go back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terms_never_go_back_when_state_is_deleted() {
    let dir = scratch("floor");
    let backend = dir.join("backend");
    let c = connect(&backend).await;
    let e = c.election("svc").unwrap();
    let mut last = 0;
    for _ in 0..3 {
        let lead = live("campaign", e.campaign("a")).await.unwrap();
        assert!(lead.term() > last, "term went back: {last} -> {}", lead.term());
        last = lead.term();
        e.resign().await.unwrap();
        std::fs::remove_file(backend.join("svc.d/state")).unwrap();
    }
    c.close().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// A `state` whose term is at u64::MAX is refused, naming the file, instead of
/// wrapping the next term to 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_at_the_largest_term_is_an_error_naming_the_file() {
    let dir = scratch("max");
    let backend = dir.join("backend");
    let c = connect(&backend).await;
    let e = c.election("svc").unwrap();
    live("campaign", e.campaign("a")).await.unwrap();
    e.resign().await.unwrap();
    let state = backend.join("svc.d/state");
    std::fs::write(&state, format!("ballot-local-state 1\nterm {}\nepoch 0\nleader -\nvalue 0\n", u64::MAX)).unwrap();
    let err = live("campaign", e.campaign("a")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    assert!(err.to_string().contains(&state.display().to_string()), "{err}");
    // Nothing leads afterwards, and nothing wrapped.
    assert!(live("leader", e.leader()).await.unwrap().is_none());
    c.close().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// The backend creates its directories 0700 and its files 0600: no other user can
/// open them (and so lock them, or read the values).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_are_0700_and_files_0600() {
    let dir = scratch("modes");
    let backend = dir.join("backend");
    let c = connect(&backend).await;
    let e = c.election("a/b").unwrap();
    live("campaign", e.campaign("v")).await.unwrap();
    live("end", e.end()).await.unwrap();
    let el = backend.join("a.d/b.d");
    for d in [&backend, &backend.join("a.d"), &el] {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    let mut files = 0;
    for f in std::fs::read_dir(&el).unwrap() {
        let f = f.unwrap();
        if f.file_type().unwrap().is_file() {
            files += 1;
            assert_eq!(mode(&f.path()), 0o600, "{}", f.path().display());
        }
    }
    assert!(files >= 3, "expected state, state.lock and ended in {}", el.display());
    c.close().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

fn assert_refused(r: Result<impl std::fmt::Debug, ballot::Error>, path: &Path, what: &str) {
    let err = r.expect_err(what);
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{what}: {err}");
    assert!(err.to_string().contains(&path.display().to_string()), "{what}: {err}");
}

/// A backend directory, or an election directory under it, that another user can
/// write to (or owns) is refused with `InvalidArgument` naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_other_users_can_write_or_own_are_refused() {
    let dir = scratch("perms");
    let backend = dir.join("backend");
    std::fs::create_dir(&backend).unwrap();
    std::fs::set_permissions(&backend, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_refused(Client::connect(&url(&backend), Options::default()).await, &backend, "a 0777 backend directory");

    std::fs::set_permissions(&backend, std::fs::Permissions::from_mode(0o700)).unwrap();
    let c = connect(&backend).await;
    let e = c.election("svc").unwrap();
    live("campaign", e.campaign("v")).await.unwrap();
    e.resign().await.unwrap();
    let el = backend.join("svc.d");
    std::fs::set_permissions(&el, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_refused(live("campaign", e.campaign("v")).await, &el, "a 0777 election directory (campaign)");
    assert_refused(live("leader", e.leader()).await, &el, "a 0777 election directory (leader)");
    std::fs::set_permissions(&el, std::fs::Permissions::from_mode(0o700)).unwrap();
    live("campaign", e.campaign("v")).await.unwrap();
    c.close().await.unwrap();

    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let other = dir.join("owned-by-nobody");
        std::fs::create_dir(&other).unwrap();
        std::os::unix::fs::chown(&other, Some(65534), Some(65534)).unwrap();
        assert_eq!(std::fs::metadata(&other).unwrap().uid(), 65534);
        assert_refused(
            Client::connect(&url(&other), Options::default()).await,
            &other,
            "a backend directory owned by nobody",
        );
    } else {
        eprintln!("not root: the chown case is skipped");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Every descriptor the backend holds is close-on-exec: a program started by the
/// leader (as `ballot run` does) holds no lock of the election and no watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_the_leader_executes_inherits_no_descriptor_of_the_backend() {
    let dir = scratch("cloexec");
    let backend = dir.join("backend");
    let c = connect(&backend).await;
    let e = c.election("svc").unwrap();
    let _events = e.events(); // the inotify watch too
    live("campaign", e.campaign("v")).await.unwrap();
    let ours: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .filter(|p| p.starts_with(&backend.display().to_string()) || p.contains("inotify"))
        .collect();
    assert!(!ours.is_empty(), "the leader holds no descriptor on its election?");
    let out = tokio::process::Command::new("sh")
        .args(["-c", "for f in /proc/$$/fd/*; do readlink \"$f\"; done"])
        .output()
        .await
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    for line in listing.lines() {
        assert!(
            !line.starts_with(&backend.display().to_string()) && !line.contains("inotify"),
            "the executed program inherited {line:?} (the leader holds {ours:?})"
        );
    }
    c.close().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
