#!/usr/bin/env bash
# The chaos suite: fault injection against every backend, and a checker of ballot's
# safety rule over the candidates' logs. See tests/chaos/README.md.
#
#   bash tests/chaos/run.sh [--ci | --rounds N] [--backend local|etcd|zk|consul ...] [--seed S] [--out DIR]
#
# --ci (the default): 20 faults per backend. --rounds N: N faults per backend.
# Servers: when the harness's variables are set (BALLOT_TEST_ETCD_CLUSTER,
# BALLOT_TEST_ZK_ENSEMBLE, BALLOT_TEST_CONSUL, as tests/run.sh exports them), those
# servers are used, and their members are restarted as faults. Otherwise the suite
# starts its own through tests/servers/harness.py into its log directory and stops
# them by PID when it ends, also on failure.
# Exit status: 0 when every backend ran with no violation, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
echo "==> chaos: build the candidate (cargo build -p ballot-chaos)"
cargo build -q -p ballot-chaos --locked
BIN="${CARGO_TARGET_DIR:-target}/debug/ballot-chaos"
python3 tests/chaos/chaos.py selftest
exec python3 tests/chaos/chaos.py run --bin "$BIN" "$@"
