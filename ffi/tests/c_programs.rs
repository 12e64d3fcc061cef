//! Drives the C test programs in `tests/c/` and the C and C++ examples in
//! `examples/`: each is compiled at test time against `include/ballot.h` and the
//! freshly built `libballot.so`, then run against a backend, under
//! AddressSanitizer (with LeakSanitizer) and under valgrind.
//!
//! Backends come from the one description that `tests/servers/harness.py` writes
//! (`BALLOT_TEST_BACKENDS`; `core/tests/common/backends.rs` reads it): `local` and
//! `memory` always; `etcd`, `zk`, `consul` and `pg`, `zk-tls` (under ASan only), and for `options.c` the servers
//! that need credentials or TLS (`etcd-auth`, `etcd-tls`, `consul-acl`, `pg`), when
//! `tests/run.sh` started them. A server test whose backend is missing panics when
//! `BALLOT_TEST_REQUIRE_SERVERS=1` (set by tests/run.sh whenever it starts servers)
//! and otherwise says on stderr that it did not run.

#[path = "../../core/tests/common/backends.rs"]
#[allow(dead_code)]
mod backends;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use backends::{backend, unique, Backend};

static SEQ: AtomicU64 = AtomicU64::new(0);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The directory with a libballot.so built from the current sources
/// (`target/<profile>`, two levels above this test binary in `deps/`).
///
/// `cargo test` builds the test binaries but does not refresh the cdylib that C
/// programs link against, so the first caller runs `cargo build -p ballot-ffi`
/// (same target directory and profile); otherwise the C programs could test a
/// stale library.
fn lib_dir() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("the test binary's path");
            let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>").to_path_buf();
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["build", "-p", "ballot-ffi", "--locked"]).current_dir(repo());
            if dir.file_name().is_some_and(|p| p == "release") {
                cmd.arg("--release");
            }
            if let Some(target) = dir.parent() {
                cmd.env("CARGO_TARGET_DIR", target);
            }
            let started = Instant::now();
            let status = cmd.status().expect("running cargo build -p ballot-ffi");
            assert!(status.success(), "cargo build -p ballot-ffi failed");
            eprintln!("libballot.so rebuilt or confirmed current in {:?}", started.elapsed());
            assert!(dir.join("libballot.so").exists(), "no libballot.so in {}", dir.display());
            dir
        })
        .clone()
}

fn scratch() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c-tests");
    std::fs::create_dir_all(&d).expect("creating the scratch dir");
    d
}

/// A fresh directory of the description's local backend for one run.
fn local_url(tag: &str) -> String {
    backends::require("local").fresh_url(&unique(tag))
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// -fsanitize=address (LeakSanitizer included), -O1.
    Asan,
    /// Plain -O0 -g build, run under valgrind memcheck.
    Valgrind,
    /// Plain -O2 build, for measurements.
    Native,
}

/// Compiles `tests/c/<program>.c` and gives the binary's path.
fn compile(program: &str, mode: Mode, tag: &str) -> PathBuf {
    let src = repo().join("ffi/tests/c").join(format!("{program}.c"));
    compile_source(&src, "cc", &["-std=c99"], mode, tag)
}

/// Compiles one C or C++ source against include/ and the built libballot.so.
fn compile_source(src: &Path, compiler: &str, std: &[&str], mode: Mode, tag: &str) -> PathBuf {
    let program = src.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let out = scratch().join(format!("{program}-{tag}-{mode:?}"));
    let lib = lib_dir();
    let mut cmd = Command::new(compiler);
    cmd.args(std).args(["-Wall", "-Wextra", "-pedantic", "-Werror", "-g"]);
    match mode {
        Mode::Asan => cmd.args(["-O1", "-fsanitize=address", "-fno-omit-frame-pointer"]),
        Mode::Valgrind => cmd.args(["-O0"]),
        Mode::Native => cmd.args(["-O2"]),
    };
    cmd.arg("-I").arg(repo().join("include")).arg(src).arg("-o").arg(&out);
    cmd.arg("-L").arg(&lib).arg(format!("-Wl,-rpath,{}", lib.display())).args(["-lballot", "-lpthread"]);
    let t = Instant::now();
    let o = cmd.output().unwrap_or_else(|e| panic!("running {compiler}: {e} (a C and C++ compiler are needed)"));
    assert!(o.status.success(), "compiling {program} ({mode:?}) failed:\n{}", String::from_utf8_lossy(&o.stderr));
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or(program);
    timing(format!("compiled {name} in {:.0} ms", t.elapsed().as_secs_f64() * 1e3));
    out
}

/// Prints a timing and appends it to `target/tmp/c-tests/timings.txt`, which
/// tests/run.sh shows after the tests (cargo hides the output of passing tests).
fn timing(line: String) {
    use std::io::Write;
    eprintln!("{line}");
    let f = std::fs::OpenOptions::new().create(true).append(true).open(scratch().join("timings.txt"));
    if let Ok(mut f) = f {
        // One write per line, so that lines from parallel tests do not interleave.
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}

fn show(o: &Output) -> String {
    format!("--- stdout\n{}--- stderr\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Runs a compiled program with `args` in `mode` and asserts a clean exit.
fn run(bin: &Path, mode: Mode, args: &[&str]) -> Output {
    let mut cmd = match mode {
        Mode::Valgrind => {
            let mut c = Command::new("valgrind");
            c.args([
                "--quiet",
                "--leak-check=full",
                // Runtime threads that are still parked at exit keep their memory
                // reachable ("still reachable" / "possibly lost" thread stacks);
                // definite and indirect leaks are the real ones.
                "--show-leak-kinds=definite,indirect",
                "--errors-for-leak-kinds=definite,indirect",
                "--error-exitcode=99",
            ]);
            c.arg(bin);
            c
        }
        _ => Command::new(bin),
    };
    cmd.args(args);
    if mode == Mode::Asan {
        cmd.env("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1:strict_string_checks=1");
    }
    let t = Instant::now();
    let o = cmd.output().unwrap_or_else(|e| panic!("running {} ({mode:?}): {e}", bin.display()));
    let name = bin.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    timing(format!("ran {name} in {:.0} ms", t.elapsed().as_secs_f64() * 1e3));
    assert!(o.status.success(), "{} ({mode:?}) failed with {}:\n{}", bin.display(), o.status, show(&o));
    if mode == Mode::Valgrind {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("Invalid read") && !err.contains("Invalid write"), "valgrind:\n{err}");
    }
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        timing(format!("  {name}: {line}"));
    }
    o
}

fn valgrind_present() {
    let ok = Command::new("valgrind").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    assert!(ok, "valgrind is not installed (tests/run.sh installs it: apt-get install -y valgrind)");
}

#[test]
fn election_local_asan() {
    let bin = compile("election", Mode::Asan, "local");
    run(&bin, Mode::Asan, &[&local_url("election")]);
}

#[test]
fn election_local_valgrind() {
    valgrind_present();
    let bin = compile("election", Mode::Valgrind, "local");
    run(&bin, Mode::Valgrind, &[&local_url("election")]);
}

#[test]
fn bad_input_local_asan() {
    let bin = compile("bad_input", Mode::Asan, "local");
    run(&bin, Mode::Asan, &[&local_url("bad")]);
}

#[test]
fn bad_input_local_valgrind() {
    valgrind_present();
    let bin = compile("bad_input", Mode::Valgrind, "local");
    run(&bin, Mode::Valgrind, &[&local_url("bad")]);
}

/// A user's own test on memory:// (no server): elect, hand off, end.
#[test]
fn memory_asan() {
    let bin = compile("memory", Mode::Asan, "memory");
    let o = run(&bin, Mode::Asan, &[]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("checks passed"));
}

#[test]
fn memory_valgrind() {
    valgrind_present();
    let bin = compile("memory", Mode::Valgrind, "memory");
    run(&bin, Mode::Valgrind, &[]);
}

/// A C program reads ballot's log records through `ballot_set_log_callback`.
#[test]
fn logging_asan() {
    let bin = compile("logging", Mode::Asan, "memory");
    let o = run(&bin, Mode::Asan, &[]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("checks passed"));
}

#[test]
fn logging_valgrind() {
    valgrind_present();
    let bin = compile("logging", Mode::Valgrind, "memory");
    run(&bin, Mode::Valgrind, &[]);
}

/// A C program reads ballot's metrics as a snapshot handle and as Prometheus text.
#[test]
fn metrics_asan() {
    let bin = compile("metrics", Mode::Asan, "memory");
    let o = run(&bin, Mode::Asan, &[]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("checks passed"));
}

#[test]
fn metrics_valgrind() {
    valgrind_present();
    let bin = compile("metrics", Mode::Valgrind, "memory");
    run(&bin, Mode::Valgrind, &[]);
}

/// 10,000 create/campaign/resign/free cycles in one process: the resident set
/// must not grow by more than 2 MiB between cycle 1,000 and cycle 10,000.
#[test]
fn ten_thousand_cycles_do_not_grow_memory() {
    let bin = compile("cycles", Mode::Native, "local");
    let o = run(&bin, Mode::Native, &[&local_url("cycles"), "10000", "2048"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("rss_growth_kib="));
}

/// The same cycles under LeakSanitizer and valgrind, fewer of them (both are slow):
/// nothing a cycle allocates may be leaked.
#[test]
fn cycles_leak_nothing_asan() {
    let bin = compile("cycles", Mode::Asan, "local");
    // ASan's quarantine holds freed memory back, so RSS is not a measure here.
    run(&bin, Mode::Asan, &[&local_url("cycles"), "500", "1000000"]);
}

#[test]
fn cycles_leak_nothing_valgrind() {
    valgrind_present();
    let bin = compile("cycles", Mode::Valgrind, "local");
    run(&bin, Mode::Valgrind, &[&local_url("cycles"), "50", "1000000"]);
}

/// `ballot_options` against `ballot_client_connect` without a server: the URL and
/// the options agree or are refused (`tests/c/options.c`, mode `local`).
fn options_local(mode: Mode) {
    let bin = compile("options", mode, "local");
    let dir = scratch().join(format!("options-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    run(&bin, mode, &["local", &dir.display().to_string()]);
}

#[test]
fn options_local_asan() {
    options_local(Mode::Asan);
}

#[test]
fn options_local_valgrind() {
    valgrind_present();
    options_local(Mode::Valgrind);
}

/// Credentials set only through `ballot_options` reach an etcd with auth on; a
/// wrong password is refused without being shown.
#[test]
fn options_etcd_auth_asan() {
    let Some(b) = backend("etcd-auth") else { return };
    let bin = compile("options", Mode::Asan, "etcd-auth");
    run(&bin, Mode::Asan, &["etcd-auth", &b.url, b.fact("USER"), b.fact("PASSWORD"), b.fact("PREFIX")]);
}

/// TLS files set only through `ballot_options` reach an etcd that asks for a
/// client certificate, under `etcds://` and under plain `etcd://`.
#[test]
fn options_etcd_tls_asan() {
    let Some(b) = backend("etcd-tls") else { return };
    let bin = compile("options", Mode::Asan, "etcd-tls");
    run(&bin, Mode::Asan, &["etcd-tls", &b.url, b.fact("CA"), b.fact("CERT"), b.fact("KEY")]);
}

/// A token set only through `ballot_options` reaches a Consul with ACLs on
/// (default deny); a wrong one is refused without being shown.
#[test]
fn options_consul_acl_asan() {
    let Some(b) = backend("consul-acl") else { return };
    let bin = compile("options", Mode::Asan, "consul-acl");
    run(&bin, Mode::Asan, &["consul-acl", &b.url, b.fact("TOKEN")]);
}

/// A user name and password set only through `ballot_options` reach PostgreSQL
/// (SCRAM); a wrong password is refused without being shown; a CA set only
/// there verifies the server under `sslmode=verify-full`.
#[test]
fn options_pg_asan() {
    let Some(b) = backend("pg") else { return };
    let bin = compile("options", Mode::Asan, "pg");
    run(&bin, Mode::Asan, &["pg", b.fact("0_URL"), b.fact("USER"), b.fact("PASSWORD"), b.fact("CA")]);
}

/// The README's C and C++ examples, on the local backend, under ASan and valgrind.
fn example(lang: &str, mode: Mode) {
    let (src, compiler, std) = match lang {
        "c" => (repo().join("examples/c/election.c"), "cc", "-std=c99"),
        _ => (repo().join("examples/cpp/election.cpp"), "c++", "-std=c++17"),
    };
    if mode == Mode::Valgrind {
        valgrind_present();
    }
    let bin = compile_source(&src, compiler, &[std], mode, &format!("example-{lang}"));
    let o = run(&bin, mode, &[&local_url("example")]);
    let out = String::from_utf8_lossy(&o.stdout);
    let want = if lang == "c" { "resigned; done" } else { "beta took over with term 2" };
    assert!(out.contains(want), "the {lang} example did not print {want:?}:\n{out}");
}

#[test]
fn example_c_asan() {
    example("c", Mode::Asan);
}

#[test]
fn example_c_valgrind() {
    example("c", Mode::Valgrind);
}

#[test]
fn example_cpp_asan() {
    example("cpp", Mode::Asan);
}

#[test]
fn example_cpp_valgrind() {
    example("cpp", Mode::Valgrind);
}

/// A URL of a namespace of its own on `b` with a connect timeout and a session TTL
/// that suit a program slowed down by ASan or valgrind on a busy machine. The
/// default connect timeout, 5 s, was seen to run out in valgrind while two such
/// programs and a build shared two cores. With the default TTL, 10 s (renewals
/// every 3.3 s), a renewal answered late made the Consul leader of `election.c`
/// Suspended under valgrind, so that its next proclaim failed with NOT_LEADER (2 of
/// 5 full runs at a load of 8 on two cores); 30 s leaves renewals three times the
/// room. (ZooKeeper's server clamps the TTL to its own maximum; memory:// takes
/// neither option.)
fn patient(b: &Backend, mode: Mode) -> String {
    let url = b.fresh_url(&unique("c"));
    if b.family == "memory" {
        return url;
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    // valgrind cannot follow ring's assembly and reports the bytes that TLS
    // encrypts as uninitialised; under valgrind PostgreSQL goes without TLS,
    // and the ASan runs keep TLS (sslmode=prefer, the default).
    let tls = if b.family == "pg" && mode == Mode::Valgrind { "&sslmode=disable" } else { "" };
    format!("{url}{sep}connect_timeout=30s&ttl=30s{tls}")
}

/// The liveness bound a program gets on `b` (its second argument): the
/// description's, three times over under valgrind, which slows a program down
/// some twenty times.
fn limit_ms(b: &Backend, mode: Mode) -> String {
    let live = b.live.as_millis();
    (if mode == Mode::Valgrind { 3 * live } else { live }).to_string()
}

/// The scenario every language runs (campaign, a successor waits, resign, end):
/// `tests/c/scenario.c` checks that the event names are those of Python's and
/// Node's run, {elected, leader_changed, resigned, ended}.
fn scenario(name: &str, mode: Mode) {
    let Some(b) = backend(name) else { return };
    if mode == Mode::Valgrind {
        valgrind_present();
    }
    let bin = compile("scenario", mode, name);
    let o = run(&bin, mode, &[&patient(b, mode), &limit_ms(b, mode)]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("checks passed"), "{out}");
}

/// `tests/c/participants.c` under ASan: the queue in order, the accessors' NULL
/// and out-of-range checks, ENDED after end().
fn participants(name: &str) {
    let Some(b) = backend(name) else { return };
    let bin = compile("participants", Mode::Asan, name);
    let o = run(&bin, Mode::Asan, &[&patient(b, Mode::Asan), &limit_ms(b, Mode::Asan)]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("checks passed"), "{out}");
}

macro_rules! server_tests {
    ($backend:ident, $name:literal) => {
        mod $backend {
            use super::*;

            #[test]
            fn election_asan() {
                let Some(b) = backend($name) else { return };
                let bin = compile("election", Mode::Asan, stringify!($backend));
                run(&bin, Mode::Asan, &[&patient(b, Mode::Asan), &limit_ms(b, Mode::Asan)]);
            }

            #[test]
            fn election_valgrind() {
                let Some(b) = backend($name) else { return };
                valgrind_present();
                let bin = compile("election", Mode::Valgrind, stringify!($backend));
                run(&bin, Mode::Valgrind, &[&patient(b, Mode::Valgrind), &limit_ms(b, Mode::Valgrind)]);
            }

            #[test]
            fn bad_input_asan() {
                let Some(b) = backend($name) else { return };
                let bin = compile("bad_input", Mode::Asan, stringify!($backend));
                run(&bin, Mode::Asan, &[&b.fresh_url(&unique("bad"))]);
            }

            #[test]
            fn scenario_asan() {
                scenario($name, Mode::Asan);
            }

            #[test]
            fn participants_asan() {
                participants($name);
            }

            #[test]
            fn scenario_valgrind() {
                scenario($name, Mode::Valgrind);
            }
        }
    };
}

server_tests!(etcd, "etcd");
server_tests!(zk, "zk");
server_tests!(consul, "consul");
server_tests!(pg, "pg");

#[test]
fn scenario_memory_asan() {
    scenario("memory", Mode::Asan);
}

#[test]
fn scenario_memory_valgrind() {
    scenario("memory", Mode::Valgrind);
}

#[test]
fn participants_memory_asan() {
    participants("memory");
}

#[test]
fn participants_local_asan() {
    participants("local");
}

#[test]
fn scenario_local_asan() {
    scenario("local", Mode::Asan);
}

#[test]
fn scenario_local_valgrind() {
    scenario("local", Mode::Valgrind);
}

/// ZooKeeper over TLS under ASan. Not under valgrind: valgrind cannot follow ring's
/// assembly and reports the bytes that TLS encrypts as uninitialised (see
/// `patient`), and this server speaks nothing but TLS; the plaintext `zk` runs
/// cover the same C paths under valgrind.
mod zk_tls {
    use super::*;

    #[test]
    fn election_asan() {
        let Some(b) = backend("zk-tls") else { return };
        let bin = compile("election", Mode::Asan, "zk_tls");
        run(&bin, Mode::Asan, &[&patient(b, Mode::Asan), &limit_ms(b, Mode::Asan)]);
    }

    #[test]
    fn bad_input_asan() {
        let Some(b) = backend("zk-tls") else { return };
        let bin = compile("bad_input", Mode::Asan, "zk_tls");
        run(&bin, Mode::Asan, &[&b.fresh_url(&unique("bad"))]);
    }

    #[test]
    fn scenario_asan() {
        scenario("zk-tls", Mode::Asan);
    }

    #[test]
    fn participants_asan() {
        participants("zk-tls");
    }
}
