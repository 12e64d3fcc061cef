#!/usr/bin/env bash
# The chaos suite: fault injection against every backend, and a checker of ballot's
# safety rule over the candidates' logs. See tests/chaos/README.md.
#
#   bash tests/chaos/run.sh [--ci | --rounds N] [--backend local|etcd|zk|consul|pg ...] [--seed S] [--out DIR]
#
# --ci (the default): 20 faults per backend, on local, etcd, zk, consul and pg.
# --rounds N: N faults per backend.
# Servers: when the harness's variables are set (BALLOT_TEST_ETCD_CLUSTER,
# BALLOT_TEST_ZK_ENSEMBLE, BALLOT_TEST_CONSUL, BALLOT_TEST_PG and BALLOT_TEST_PGBOUNCER,
# as tests/run.sh exports them), those servers are used, and their members (for pg:
# PostgreSQL and PgBouncer) are restarted as faults. Otherwise the suite
# starts its own through tests/servers/harness.py into its log directory and stops
# them by PID when it ends, also on failure.
# In CI mode it then checks that the checker catches deliberately unsafe candidates,
# and runs a few faults in run mode (`--mode run`: the candidates are `ballot run`).
# Exit status: 0 when every backend ran with no violation (and, in CI mode, the
# unsafe candidates were caught), 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
echo "==> chaos: build the candidates (cargo build -p ballot-chaos -p ballot-cli)"
cargo build -q -p ballot-chaos -p ballot-cli --locked
BIN="${CARGO_TARGET_DIR:-target}/debug/ballot-chaos"
BALLOT="${CARGO_TARGET_DIR:-target}/debug/ballot"
python3 tests/chaos/chaos.py selftest
python3 tests/chaos/chaos.py run --bin "$BIN" --ballot "$BALLOT" "$@"

# The suite must catch a bug, not only pass: in CI mode (not with --rounds), the
# same driver runs candidates that ignore Suspended and Lost through pauses of the
# leader past its TTL, and the checker must report their overlapping leadership.
case " $* " in *" --rounds "*) exit 0 ;; esac
echo "==> chaos: deliberately unsafe candidates (they ignore Suspended and Lost) must be caught"
set +e
caught=$(python3 tests/chaos/chaos.py run --bin "$BIN" --backend etcd --rounds 1 --faults pause --unsafe --seed 1 2>&1)
rc=$?
set -e
printf '%s\n' "$caught" | grep -E "violations|both believed|FAILED|passed" | head -n 12
if [ "$rc" -ne 1 ] || ! printf '%s\n' "$caught" | grep -q "both believed they led"; then
    echo "error: the checker did not report the unsafe candidates' overlapping leadership (exit $rc)" >&2
    exit 1
fi
echo "chaos: the checker caught the unsafe candidates, as it must"

# Run mode, short: each candidate is a `ballot run` whose command (a shell wrapper)
# forks the writer; the checker fails the run if a tree of a candidate that does not
# lead is still alive or writes. 200 faults per backend: see README.md.
echo "==> chaos: run mode (candidates are \`ballot run\` processes), 6 faults on local and etcd"
python3 tests/chaos/chaos.py run --bin "$BIN" --ballot "$BALLOT" --mode run --backend local etcd --rounds 6
