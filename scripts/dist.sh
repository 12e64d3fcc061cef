#!/usr/bin/env bash
# Builds every release artifact of the workspace version into OUT:
#
#   bash scripts/dist.sh OUT
#
#   OUT/python/  ballot_election-<v>-cp39-abi3-<platform>.whl (the platform tag is
#                the most portable one maturin's own auditwheel check allows here)
#                and ballot_election-<v>.tar.gz (the sdist)
#   OUT/node/    ballot-<v>.tgz (JavaScript, no binary) and ballot-linux-x64-gnu-<v>.tgz
#                (the addon), napi-rs's layout for prebuilt addons: the main package
#                names the platform package as an optional dependency
#   OUT/c/       libballot-<v>-x86_64-linux-gnu.tar.gz: lib/libballot.so, lib/libballot.a,
#                include/ballot.h, lib/pkgconfig/ballot.pc (relocatable: ${pcfiledir})
#   OUT/cli/     ballot-<v>-x86_64-linux-gnu.tar.gz: bin/ballot, share/man/man1/*.1 and
#                the bash, zsh and fish completions (`ballot __generate`)
#
# Each artifact is built once, by the same cargo commands (same profile, same
# features) as the test command's other steps use (ffi/install.sh, `npm run build`,
# pip's maturin build), so in tests/run.sh they reuse those builds. Binaries are
# shipped without their debug sections (the release profile keeps line tables).
#
# Needs what a source build needs (cargo, protoc, node/npm, python3); it installs
# maturin into a venv under the target directory when missing. Environment:
# CARGO_TARGET_DIR is honoured; PYTHON (default python3).
set -euo pipefail
if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: bash scripts/dist.sh OUT" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
ROOT=$(pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
export CARGO_TARGET_DIR="$TARGET"
PY=${PYTHON:-python3}
TRIPLE=x86_64-linux-gnu
[ "$(uname -sm)" = "Linux x86_64" ] || { echo "error: dist.sh builds the x86_64 Linux artifacts only" >&2; exit 1; }

T0=$(date +%s)
progress() { printf 'dist: [%4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }

# One version: the workspace's, which the crates inherit; the committed files
# that repeat it must agree before anything is built.
VERSION=$(cargo metadata --no-deps --format-version 1 --locked |
    "$PY" -c 'import json, sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "ballot"))')
HEADER_VERSION=$(sed -n 's/^#define BALLOT_VERSION "\(.*\)"$/\1/p' include/ballot.h)
NODE_VERSION=$(node -p 'require("./bindings/node/package.json").version')
if [ "$HEADER_VERSION" != "$VERSION" ] || [ "$NODE_VERSION" != "$VERSION" ]; then
    echo "error: versions disagree: workspace $VERSION, include/ballot.h $HEADER_VERSION, bindings/node/package.json $NODE_VERSION" >&2
    exit 1
fi
progress "ballot $VERSION into $OUT"

STAGE=$(mktemp -d -t ballot-dist.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT
rm -rf "$OUT/python" "$OUT/node" "$OUT/c" "$OUT/cli"
mkdir -p "$OUT/python" "$OUT/node" "$OUT/c" "$OUT/cli"

# A reproducible tarball of STAGE/DIR: sorted, owned by root, mtimes of the commit.
MTIME=$(git log -1 --format=%ct 2>/dev/null || echo 0)
tarball() {
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$MTIME" -C "$STAGE" -cf - "$2" | gzip -n > "$1"
}

# --- C -----------------------------------------------------------------------
progress "c: cargo build --release -p ballot-ffi"
cargo build --release --locked -p ballot-ffi
C_DIR="libballot-$VERSION-$TRIPLE"
install -d "$STAGE/$C_DIR/lib/pkgconfig" "$STAGE/$C_DIR/include"
install -m 0755 "$TARGET/release/libballot.so" "$STAGE/$C_DIR/lib/libballot.so"
install -m 0644 "$TARGET/release/libballot.a" "$STAGE/$C_DIR/lib/libballot.a"
strip --strip-debug "$STAGE/$C_DIR/lib/libballot.so" "$STAGE/$C_DIR/lib/libballot.a"
install -m 0644 include/ballot.h "$STAGE/$C_DIR/include/ballot.h"
# ${pcfiledir} is where pkg-config found this file, so the tree works wherever it
# is extracted; the rpath lets programs run without LD_LIBRARY_PATH.
cat > "$STAGE/$C_DIR/lib/pkgconfig/ballot.pc" <<PC
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: ballot
Description: Leader election over etcd, ZooKeeper, Consul, PostgreSQL and a local backend (C ABI)
Version: $VERSION
Cflags: -I\${includedir}
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -lballot
Libs.private: -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
PC
tarball "$OUT/c/$C_DIR.tar.gz" "$C_DIR"
progress "c: $(basename "$OUT/c/$C_DIR.tar.gz")"

# --- CLI -----------------------------------------------------------------------
progress "cli: cargo build --release -p ballot-cli"
cargo build --release --locked -p ballot-cli
CLI_DIR="ballot-$VERSION-$TRIPLE"
install -d "$STAGE/$CLI_DIR/bin"
install -m 0755 "$TARGET/release/ballot" "$STAGE/$CLI_DIR/bin/ballot"
strip --strip-debug "$STAGE/$CLI_DIR/bin/ballot"
"$STAGE/$CLI_DIR/bin/ballot" __generate "$STAGE/$CLI_DIR/share"
tarball "$OUT/cli/$CLI_DIR.tar.gz" "$CLI_DIR"
progress "cli: $(basename "$OUT/cli/$CLI_DIR.tar.gz")"

# --- Node ----------------------------------------------------------------------
progress "node: napi build --platform --release (bindings/node)"
NODE_PKG="$ROOT/bindings/node"
if [ ! -d "$NODE_PKG/node_modules" ] || [ "$NODE_PKG/package-lock.json" -nt "$NODE_PKG/node_modules/.package-lock.json" ]; then
    (cd "$NODE_PKG" && npm ci --no-audit --no-fund)
fi
# The flags of `npm run build`, into a scratch directory: the committed native.js
# and native.d.ts stay as they are (a node test checks they are current).
(cd "$NODE_PKG" && node node_modules/@napi-rs/cli/dist/cli.js build --platform --release \
    --js native.js --dts native.d.ts --output-dir "$STAGE/napi")
ADDON=ballot.linux-x64-gnu.node
"$PY" - "$NODE_PKG" "$STAGE" "$VERSION" "$ADDON" <<'PYEOF'
# The two package.json files of napi-rs's prebuilt layout, from the committed one.
import json, os, sys
pkg_dir, stage, version, addon = sys.argv[1:]
pkg = json.load(open(os.path.join(pkg_dir, "package.json")))
platform = pkg["name"] + "-linux-x64-gnu"
main = {k: v for k, v in pkg.items() if k not in ("devDependencies", "scripts", "napi")}
main["files"] = [f for f in pkg["files"] if not f.endswith(".node")]
main["optionalDependencies"] = {platform: version}
plat = {
    "name": platform,
    "version": version,
    "description": "The linux-x64-gnu binary of the %s package" % pkg["name"],
    "license": pkg["license"],
    "main": addon,
    "files": [addon],
    "os": ["linux"],
    "cpu": ["x64"],
    "libc": ["glibc"],
    "engines": pkg["engines"],
}
for d, p in (("main", main), ("platform", plat)):
    os.makedirs(os.path.join(stage, "npm", d), exist_ok=True)
    with open(os.path.join(stage, "npm", d, "package.json"), "w") as f:
        json.dump(p, f, indent=2)
        f.write("\n")
PYEOF
for f in index.js index.d.ts native.js native.d.ts; do
    install -m 0644 "$NODE_PKG/$f" "$STAGE/npm/main/$f"
done
install -m 0755 "$STAGE/napi/$ADDON" "$STAGE/npm/platform/$ADDON"
strip --strip-debug "$STAGE/npm/platform/$ADDON"
for d in main platform; do
    (cd "$STAGE/npm/$d" && npm pack --silent --pack-destination "$OUT/node" >/dev/null)
done
progress "node: $(cd "$OUT/node" && echo *.tgz)"

# --- Python --------------------------------------------------------------------
MATURIN_VENV="$TARGET/dist-tools/venv"
MATURIN_SPEC=$(sed -n 's/^requires = \["\(maturin[^"]*\)"\]$/\1/p' bindings/python/pyproject.toml)
[ -n "$MATURIN_SPEC" ] || { echo "error: no maturin requirement in bindings/python/pyproject.toml" >&2; exit 1; }
if ! "$MATURIN_VENV/bin/python" -c 'import sys' >/dev/null 2>&1 || [ ! -x "$MATURIN_VENV/bin/maturin" ]; then
    progress "python: installing $MATURIN_SPEC into $MATURIN_VENV"
    rm -rf "$MATURIN_VENV"
    "$PY" -m venv "$MATURIN_VENV"
    "$MATURIN_VENV/bin/python" -m pip install -q "$MATURIN_SPEC"
fi
progress "python: maturin build --release ($("$MATURIN_VENV/bin/maturin" --version))"
"$MATURIN_VENV/bin/maturin" build --release --locked --strip -m bindings/python/Cargo.toml --out "$OUT/python"
progress "python: maturin sdist"
"$MATURIN_VENV/bin/maturin" sdist -m bindings/python/Cargo.toml --out "$OUT/python"
progress "python: $(cd "$OUT/python" && echo *)"

progress "done:"
(cd "$OUT" && find . -type f -printf '%s\t%p\n' | sort -k2 | awk -F'\t' '{ printf "  %8.1f MiB  %s\n", $1 / 1048576, $2 }')
