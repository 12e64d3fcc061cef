#!/usr/bin/env bash
# Builds libballot in release mode and installs it into a prefix:
#
#   bash ffi/install.sh PREFIX        # for example: bash ffi/install.sh "$HOME/.local"
#
# installs
#   PREFIX/lib/libballot.so  PREFIX/lib/libballot.a
#   PREFIX/include/ballot.h
#   PREFIX/lib/pkgconfig/ballot.pc
#
# then: export PKG_CONFIG_PATH="PREFIX/lib/pkgconfig"
#       cc prog.c $(pkg-config --cflags --libs ballot) -o prog
#   static: cc prog.c $(pkg-config --cflags ballot) PREFIX/lib/libballot.a \
#             -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o prog
#
# The .pc file adds an rpath to PREFIX/lib, so programs run without
# LD_LIBRARY_PATH. Environment: CARGO_TARGET_DIR is honoured.
set -euo pipefail
if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: bash ffi/install.sh PREFIX" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
ROOT=$(pwd)
mkdir -p "$1"
PREFIX=$(cd "$1" && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac

cargo build --release --locked -p ballot-ffi

# The header's version macro is generated from the workspace version and checked
# by ffi/tests/header.rs, so it is the one source here too.
VERSION=$(sed -n 's/^#define BALLOT_VERSION "\(.*\)"$/\1/p' include/ballot.h)
[ -n "$VERSION" ] || { echo "error: no BALLOT_VERSION in include/ballot.h" >&2; exit 1; }

install -d "$PREFIX/lib/pkgconfig" "$PREFIX/include"
install -m 0755 "$TARGET/release/libballot.so" "$PREFIX/lib/libballot.so"
install -m 0644 "$TARGET/release/libballot.a" "$PREFIX/lib/libballot.a"
install -m 0644 include/ballot.h "$PREFIX/include/ballot.h"
cat > "$PREFIX/lib/pkgconfig/ballot.pc" <<PC
prefix=$PREFIX
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: ballot
Description: Leader election over etcd, ZooKeeper, Consul and a local backend (C ABI)
Version: $VERSION
Cflags: -I\${includedir}
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -lballot
Libs.private: -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
PC
echo "installed libballot $VERSION into $PREFIX (lib/libballot.so, lib/libballot.a, include/ballot.h, lib/pkgconfig/ballot.pc)"
