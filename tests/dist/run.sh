#!/usr/bin/env bash
# The distribution step of tests/run.sh: builds every artifact with
# scripts/dist.sh into a temporary directory, then installs and runs each one as
# a user without Rust would, with a PATH that holds no cargo, rustc or rustup and,
# where the kernel allows it (root and unshare), in a network namespace with no
# network at all; the installs are offline anyway (pip --no-index, npm --offline
# with an empty cache):
#
#   python  the wheel into a fresh venv; a two-process handoff (handoff.py)
#   node    both tarballs into a fresh app; a handoff that exits by itself (handoff.js)
#   c       the tarball extracted elsewhere; examples/c/election.c compiled with
#           `pkg-config --cflags --libs ballot` and run, and linked statically too
#   cli     the tarball extracted; `ballot demo`, the man pages and completions
#
# and checks that the four report the workspace version. It also packages the
# crate (`cargo package -p ballot`, without the verify build). Environment:
# CARGO_TARGET_DIR (reused by dist.sh); BALLOT_DIST_OUT=DIR keeps the artifacts
# there instead of in a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
T0=$(date +%s)
say() { printf 'dist test: [%4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }

# Tools of the checks, installed when missing (as root, like tests/run.sh does).
NEED=()
command -v pkg-config >/dev/null 2>&1 || NEED+=(pkg-config)
command -v cc >/dev/null 2>&1 || NEED+=(gcc)
command -v unshare >/dev/null 2>&1 || NEED+=(util-linux)
"$PY" -c "import ensurepip, venv" >/dev/null 2>&1 || NEED+=(python3-venv)
if [ ${#NEED[@]} -gt 0 ]; then
    say "installing ${NEED[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${NEED[@]}" >/dev/null
fi

WORK=$(mktemp -d -t ballot-dist-test.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
DIST=${BALLOT_DIST_OUT:-$WORK/dist}

say "scripts/dist.sh $DIST"
bash scripts/dist.sh "$DIST"
VERSION=$(cargo metadata --no-deps --format-version 1 --locked |
    "$PY" -c 'import json, sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "ballot"))')
say "workspace version $VERSION"
# The crate as crates.io would get it: metadata, readme, the files it holds. Its
# build is what every other step tests; --allow-dirty lets a work tree with
# changes run the test command.
say "cargo package -p ballot --no-verify"
cargo package -p ballot --locked --no-verify --allow-dirty --quiet
# The interpreter itself, not a shim that may need more of this environment.
PY=$("$PY" -c 'import sys; print(sys.executable)')
mkdir -p "$WORK/home"

# The PATH of a machine without Rust: every directory of this PATH that holds no
# cargo, rustc or rustup (a Rust installed into /usr/bin cannot be hidden this
# way: then the test says so and fails).
CLEAN_PATH=""
IFS=: read -r -a DIRS <<< "$PATH"
for d in "${DIRS[@]}"; do
    [ -n "$d" ] || continue
    if [ -e "$d/cargo" ] || [ -e "$d/rustc" ] || [ -e "$d/rustup" ]; then
        echo "  PATH without $d (it holds a Rust toolchain)"
        continue
    fi
    CLEAN_PATH="${CLEAN_PATH:+$CLEAN_PATH:}$d"
done

# Everything below runs in this script, with that PATH, no cargo environment and,
# if possible, no network.
cat > "$WORK/check.sh" <<'CHECK'
set -euo pipefail
say() { printf 'dist test: %s\n' "$*"; }
for tool in cargo rustc rustup; do
    if command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool is on the PATH of the check: $(command -v "$tool")" >&2
        exit 1
    fi
done
VERSIONS="$WORK/versions"
: > "$VERSIONS"

say "python: the wheel into a fresh venv (pip --no-index), a two-process handoff"
WHEEL=$(ls "$DIST"/python/ballot_election-"$VERSION"-cp39-abi3-*.whl)
ls "$DIST"/python/ballot_election-"$VERSION".tar.gz >/dev/null
"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q --no-index --no-cache-dir --disable-pip-version-check "$WHEEL"
(cd "$WORK" && timeout 120 "$WORK/venv/bin/python" "$ROOT/tests/dist/handoff.py" "file://$WORK/py-backend") | tee "$WORK/py.out"
grep -q "^module $WORK/venv/" "$WORK/py.out"
grep -q "^handoff term " "$WORK/py.out"
echo "python $(sed -n 's/^version //p' "$WORK/py.out")" >> "$VERSIONS"

say "node: both tarballs into a fresh app (npm --offline, empty cache), a handoff that exits by itself"
mkdir -p "$WORK/app"
(
    cd "$WORK/app"
    export npm_config_cache="$WORK/npm-cache" npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
    npm init -y >/dev/null
    npm install --offline --no-audit --no-fund --loglevel=error \
        "$DIST/node/ballot-linux-x64-gnu-$VERSION.tgz" "$DIST/node/ballot-$VERSION.tgz"
    if ls node_modules/ballot/*.node >/dev/null 2>&1; then
        echo "error: the main npm package holds a binary" >&2
        exit 1
    fi
    # From inside the app, so that require('ballot') resolves to what npm installed.
    cp "$ROOT/tests/dist/handoff.js" .
    timeout 120 node handoff.js "file://$WORK/node-backend"
) | tee "$WORK/node.out"
grep -q "^addon $WORK/app/node_modules/ballot-linux-x64-gnu\$" "$WORK/node.out"
grep -q "^handoff term " "$WORK/node.out"
echo "node $(sed -n 's/^version //p' "$WORK/node.out")" >> "$VERSIONS"

say "c: the tarball extracted elsewhere, pkg-config --cflags --libs ballot, shared and static"
mkdir -p "$WORK/c-place"
tar -xzf "$DIST/c/libballot-$VERSION-x86_64-linux-gnu.tar.gz" -C "$WORK/c-place"
C_TREE="$WORK/c-place/libballot-$VERSION-x86_64-linux-gnu"
for f in lib/libballot.so lib/libballot.a include/ballot.h lib/pkgconfig/ballot.pc; do
    [ -f "$C_TREE/$f" ] || { echo "error: the C tarball has no $f" >&2; exit 1; }
done
export PKG_CONFIG_PATH="$C_TREE/lib/pkgconfig"
[ "$(pkg-config --modversion ballot)" = "$VERSION" ]
# shellcheck disable=SC2046
cc "$ROOT/examples/c/election.c" $(pkg-config --cflags --libs ballot) -o "$WORK/election-c"
# shellcheck disable=SC2046
cc "$ROOT/examples/c/election.c" $(pkg-config --cflags ballot) "$C_TREE/lib/libballot.a" \
    $(pkg-config --libs-only-l --static ballot | sed 's/-lballot//') -o "$WORK/election-c-static"
if ldd "$WORK/election-c-static" | grep -q libballot; then
    echo "error: the static program links libballot.so" >&2
    exit 1
fi
SO=$(ldd "$WORK/election-c" | awk '/libballot\.so/ { print $3 }')
[ -n "$SO" ] && [ "$(readlink -f "$SO")" = "$(readlink -f "$C_TREE/lib/libballot.so")" ] \
    || { echo "error: the program does not use the extracted libballot.so:" >&2; ldd "$WORK/election-c" >&2; exit 1; }
timeout 60 "$WORK/election-c" "file://$WORK/c-backend" | tee "$WORK/c.out"
timeout 60 "$WORK/election-c-static" "file://$WORK/c-backend" | grep -q "^resigned; done$"
grep -q '^leader: value "node-1 v2"' "$WORK/c.out"
grep -q "^resigned; done$" "$WORK/c.out"
echo "c $(sed -n 's/^libballot \([^,]*\),.*/\1/p' "$WORK/c.out")" >> "$VERSIONS"

say "cli: the tarball extracted, ballot demo, man pages and completions"
mkdir -p "$WORK/cli-place"
tar -xzf "$DIST/cli/ballot-$VERSION-x86_64-linux-gnu.tar.gz" -C "$WORK/cli-place"
CLI_TREE="$WORK/cli-place/ballot-$VERSION-x86_64-linux-gnu"
BALLOT="$CLI_TREE/bin/ballot"
BALLOT_BACKEND="file://$WORK/cli-backend" timeout 120 "$BALLOT" demo | tee "$WORK/cli.out"
tail -1 "$WORK/cli.out" | grep -Eq '^failover [0-9.]+ ms$'
for f in man/man1/ballot.1 man/man1/ballot-run.1 bash-completion/completions/ballot zsh/site-functions/_ballot \
    fish/vendor_completions.d/ballot.fish; do
    [ -s "$CLI_TREE/share/$f" ] || { echo "error: the CLI tarball has no share/$f" >&2; exit 1; }
done
grep -q '^\.TH ballot 1' "$CLI_TREE/share/man/man1/ballot.1"
if grep -rqE '__(generate|supervise)' "$CLI_TREE/share/bash-completion" "$CLI_TREE/share/zsh" "$CLI_TREE/share/fish"; then
    echo "error: the completions offer an internal command (__supervise, __generate)" >&2
    exit 1
fi
bash -c ". '$CLI_TREE/share/bash-completion/completions/ballot' && complete -p ballot" | grep -q ballot
echo "cli $("$BALLOT" --version | sed -n 's/^ballot //p')" >> "$VERSIONS"

say "versions (workspace $VERSION):"
cat "$VERSIONS"
if [ "$(awk '{ print $2 }' "$VERSIONS" | sort -u)" != "$VERSION" ] || [ "$(wc -l < "$VERSIONS")" -ne 4 ]; then
    echo "error: the packages do not all report version $VERSION" >&2
    exit 1
fi
CHECK

NET=(env)
if [ "$(id -u)" -eq 0 ] && unshare -n true 2>/dev/null; then
    NET=(unshare -n)
    say "checks in a network namespace without network (unshare -n), PATH without Rust"
else
    say "checks with PATH without Rust; the network stays (not root, or no unshare): installs are offline by flag"
fi
"${NET[@]}" env -i HOME="$WORK/home" PATH="$CLEAN_PATH" LANG=C.UTF-8 TMPDIR="$WORK" \
    WORK="$WORK" DIST="$DIST" ROOT="$ROOT" VERSION="$VERSION" PY="$PY" \
    bash "$WORK/check.sh"
say "all artifacts install and run without Rust; versions agree ($VERSION)"
