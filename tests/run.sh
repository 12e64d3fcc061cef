#!/usr/bin/env bash
# The one test command: installs what is missing, starts the real servers on
# loopback, runs every test of every language, and stops the servers.
#
#   bash tests/run.sh            # everything
#
# Environment:
#   CARGO_TARGET_DIR   reuse a build cache (optional; a fresh clone works without it)
#   BALLOT_KEEP_SERVERS=1   leave the servers running (their env is in $STATE/env)
#   BALLOT_MIN_FREE_GIB     the free disk space the run insists on before it starts
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

T0=$(date +%s)
step() { printf '\n==> [%4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }

# Servers that the test suites need; each backend adds its kinds here.
SERVER_KINDS=()
SERVER_KINDS+=(etcd etcd-cluster etcd-auth etcd-tls)
SERVER_KINDS+=(zk zk-ensemble zk-tls)
SERVER_KINDS+=(consul consul-acl consul-cluster)
SERVER_KINDS+=(pg pgbouncer)
# ZooKeeper expires a session up to one tick after its timeout: 1 s ticks keep the
# failover bounds of the tests (TTL + 2 s) meaningful. Sessions may last 2..20 s.
HARNESS_OPTS=(--zk-tick-ms 1000)

step "toolchain"
if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null || { echo "error: cargo is not installed (install Rust with rustup first)" >&2; exit 1; }
cargo --version

step "disk space"
# A run from a fresh clone writes up to 6.4 GiB into the checkout (debug, check and
# release builds; measured 2026-11-30), plus the servers' data; a disk that fills up
# half-way fails in the middle of a build with ENOSPC, so say it first. Incremental caches only help a checkout that is built again.
if [ "${CI:-}" = "true" ]; then
    export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi
NEED_GIB=${BALLOT_MIN_FREE_GIB:-8}
TARGET_PARENT="${CARGO_TARGET_DIR:-$ROOT}"
mkdir -p "$TARGET_PARENT"
FREE_GIB=$(( $(df -Pk "$TARGET_PARENT" | awk 'NR==2 {print $4}') / 1048576 ))
echo "free: ${FREE_GIB} GiB at $TARGET_PARENT; a run from a fresh clone needs about ${NEED_GIB} GiB"
if [ "$FREE_GIB" -lt "$NEED_GIB" ]; then
    echo "error: not enough disk space: ${FREE_GIB} GiB free, about ${NEED_GIB} GiB needed (set BALLOT_MIN_FREE_GIB to override)" >&2
    exit 1
fi

# The scratch files of every test (Rust's temp_dir(), Python's tempfile, Node's
# os.tmpdir(), and the processes they start all honour TMPDIR) go to one directory
# of this run: removed when the run passes, kept for its logs when it fails.
# The servers' state stays outside it: BALLOT_KEEP_SERVERS=1 leaves them running.
OUTER_TMP="${TMPDIR:-/tmp}"
SCRATCH=$(mktemp -d -t ballot-run.XXXXXX)
# Others may pass through it, not list it: the harness runs PostgreSQL's initdb as
# the postgres user in a state directory that the benchmarks make in here.
chmod 0711 "$SCRATCH"
export TMPDIR="$SCRATCH"

STATE=""
stop_servers() {
    if [ -n "$STATE" ] && [ -z "${BALLOT_KEEP_SERVERS:-}" ]; then
        python3 tests/servers/harness.py stop --dir "$STATE" >/dev/null 2>&1 || true
        rm -rf "$STATE"
    fi
}
finish() {
    local rc=$?
    stop_servers
    if [ "$rc" -eq 0 ] && [ -z "${BALLOT_KEEP_SERVERS:-}" ]; then
        rm -rf "$SCRATCH"
    else
        echo "the tests' scratch files (the chaos suite's logs among them) are kept in $SCRATCH" >&2
    fi
}
trap finish EXIT

if [ ${#SERVER_KINDS[@]} -gt 0 ]; then
    step "install servers (only what is missing)"
    bash tests/servers/install.sh all
    step "start servers: ${SERVER_KINDS[*]}"
    STATE=$(mktemp -d -p "$OUTER_TMP" ballot-servers.XXXXXX)
    python3 tests/servers/harness.py start "${SERVER_KINDS[@]}" "${HARNESS_OPTS[@]}" --dir "$STATE" >/dev/null
    set -a
    # shellcheck disable=SC1091
    . "$STATE/env"
    set +a
    # The one description of the backends (URLs, TTLs, takeover bounds, quirks) that
    # the Rust, C, Python and Node tests read; $STATE/env sets it too.
    export BALLOT_TEST_BACKENDS="$STATE/backends.json"
    export BALLOT_TEST_REQUIRE_SERVERS=1
fi

step "C toolchain for the C ABI tests (only what is missing)"
# ffi/tests compile C and C++ programs and run them under AddressSanitizer and valgrind.
C_NEED=()
command -v cc >/dev/null 2>&1 || C_NEED+=(gcc)
command -v c++ >/dev/null 2>&1 || C_NEED+=(g++)
command -v valgrind >/dev/null 2>&1 || C_NEED+=(valgrind)
command -v pkg-config >/dev/null 2>&1 || C_NEED+=(pkg-config)
if [ ${#C_NEED[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${C_NEED[@]}"
fi
valgrind --version

step "format"
cargo fmt --all --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "rust tests"
C_TIMINGS="${CARGO_TARGET_DIR:-target}/tmp/c-tests/timings.txt"
rm -f "$C_TIMINGS"
cargo test --workspace --locked

step "C test programs (ffi/tests/c): compile and run times, measurements"
cat "$C_TIMINGS"

step "C and C++ examples from README.md, from a fresh prefix"
bash ffi/tests/readme_examples.sh

step "node: build the addon and run node --test (bindings/node)"
command -v node >/dev/null || { echo "error: node is not installed (bindings/node needs Node.js 20.17 or newer)" >&2; exit 1; }
echo "node $(node --version), npm $(npm --version)"
(
    cd bindings/node
    # Installs exactly what package-lock.json pins (@napi-rs/cli, typescript);
    # npm ci fails when the lock is out of date with package.json.
    if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
        npm ci --no-audit --no-fund
    fi
    npm run build
    node --test test/
)

step "python: build the package and run pytest + mypy --strict"
bash bindings/python/test.sh

step "distribution: scripts/dist.sh, then each artifact installed and run without Rust (tests/dist)"
# After the C, Node and Python steps: dist.sh runs their release builds again with
# the same flags, so it mostly reuses them.
bash tests/dist/run.sh

step "chaos suite: 20 faults per backend on local, etcd, zk, consul, pg (tests/chaos)"
# Last among the tests: it restarts members of the shared servers.
bash tests/chaos/run.sh --ci

step "benchmarks, quick mode (bench/): keeps the harness and every peer working; figures are not checked"
# Its own servers on other ports, its own release build; the report goes to a
# temporary directory. A full run is `python3 bench/run.py` (bench/README.md).
BENCH_OUT=$(mktemp -d -t ballot-bench.XXXXXX)
python3 bench/run.py --quick --strict --out "$BENCH_OUT"
rm -rf "$BENCH_OUT"
# The etcd read probe (bench/etcd_read.py), small, against the shared etcd.
if [ -n "${BALLOT_TEST_ETCD_ENDPOINTS:-}" ]; then
    python3 bench/etcd_read.py --endpoint "${BALLOT_TEST_ETCD_ENDPOINTS%%,*}" --sizes 2 10 --rounds 5 >/dev/null
fi

step "docs"
# The CLI is a binary whose doc comments are its --help text, not API docs.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --exclude ballot-cli --no-deps --locked --quiet

step "done in $(( $(date +%s) - T0 ))s"
