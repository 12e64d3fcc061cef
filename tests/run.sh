#!/usr/bin/env bash
# The one test command: installs what is missing, starts the real servers on
# loopback, runs every test of every language, and stops the servers.
#
#   bash tests/run.sh            # everything
#
# Environment:
#   CARGO_TARGET_DIR   reuse a build cache (optional; a fresh clone works without it)
#   BALLOT_KEEP_SERVERS=1   leave the servers running (their env is in $STATE/env)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

T0=$(date +%s)
step() { printf '\n==> [%4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }

# Servers that the test suites need; each backend adds its kinds here.
SERVER_KINDS=()

step "toolchain"
if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null || { echo "error: cargo is not installed (install Rust with rustup first)" >&2; exit 1; }
cargo --version

STATE=""
stop_servers() {
    if [ -n "$STATE" ] && [ -z "${BALLOT_KEEP_SERVERS:-}" ]; then
        python3 tests/servers/harness.py stop --dir "$STATE" >/dev/null 2>&1 || true
        rm -rf "$STATE"
    fi
}
trap stop_servers EXIT

if [ ${#SERVER_KINDS[@]} -gt 0 ]; then
    step "install servers (only what is missing)"
    bash tests/servers/install.sh all
    step "start servers: ${SERVER_KINDS[*]}"
    STATE=$(mktemp -d -t ballot-servers.XXXXXX)
    python3 tests/servers/harness.py start "${SERVER_KINDS[@]}" --dir "$STATE" >/dev/null
    set -a
    # shellcheck disable=SC1091
    . "$STATE/env"
    set +a
    export BALLOT_TEST_REQUIRE_SERVERS=1
fi

step "format"
cargo fmt --all --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "rust tests"
cargo test --workspace --locked

step "python: build the package and run pytest + mypy --strict"
bash bindings/python/test.sh

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "done in $(( $(date +%s) - T0 ))s"
