#!/usr/bin/env bash
# Runs the C/C++ commands of README.md exactly as written, from a fresh prefix: it
# takes the shell block between the markers "c-example:start" and "c-example:end"
# and runs it from the repository root with HOME set to a new empty directory, so
# that "$HOME/.local" is a prefix nothing was installed into before. Then it checks
# what the examples printed. Called by tests/run.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BLOCK=$(awk '/<!-- c-example:start -->/{on=1; next} /<!-- c-example:end -->/{on=0} on' README.md |
    sed -e '/^```/d')
[ -n "$BLOCK" ] || { echo "error: no c-example block in README.md" >&2; exit 1; }

FRESH=$(mktemp -d -t ballot-readme.XXXXXX)
OUT="$FRESH/out.txt"
cleanup() { rm -rf "$FRESH"; rm -f "$ROOT/election-c" "$ROOT/election-cpp"; }
trap cleanup EXIT
# cargo and rustup keep their homes where they were, so only the prefix is new.
export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export BALLOT_BACKEND="file://$FRESH/backend"
echo "running the README's C/C++ block with HOME=$FRESH/home:"
echo "$BLOCK" | sed 's/^/    /'
mkdir -p "$FRESH/home"
HOME="$FRESH/home" bash -euo pipefail -c "$BLOCK" | tee "$OUT"

for want in "elected with term 1" 'leader: value "node-1 v2", term 1' "alpha leads with term" "beta took over with term"; do
    grep -qF "$want" "$OUT" || { echo "error: the examples did not print: $want" >&2; exit 1; }
done
for f in lib/libballot.so lib/libballot.a include/ballot.h lib/pkgconfig/ballot.pc; do
    [ -f "$FRESH/home/.local/$f" ] || { echo "error: $f was not installed" >&2; exit 1; }
done
echo "README C/C++ examples: 2 passed, 0 failed"
