#!/usr/bin/env bash
# Installs the real coordination servers used by ballot's tests, benchmarks and
# chaos suite: etcd, ZooKeeper, Consul, and PostgreSQL with PgBouncer. Idempotent: installs only what is
# missing. Runs as root, reads no stdin (CI=true friendly).
#
#   tests/servers/install.sh [etcd|zookeeper|consul|postgres|all]   (default: all)
#
# Consul is not packaged in Debian bookworm; Debian bullseye's `consul` (1.8.x)
# is fetched as ONE .deb with a throw-away apt configuration and unpacked with
# `dpkg -x` into $BALLOT_CONSUL_PREFIX (default /opt/ballot-consul), then linked
# into /usr/local/bin. The system's apt sources are never changed, and nothing
# else comes from bullseye. The mirror is taken from the machine's own apt
# configuration at run time.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

what="${1:-all}"
case "$what" in
  etcd|zookeeper|consul|postgres|all) ;;
  -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
  *) echo "usage: $0 [etcd|zookeeper|consul|postgres|all]" >&2; exit 2 ;;
esac

CONSUL_PREFIX="${BALLOT_CONSUL_PREFIX:-/opt/ballot-consul}"
CONSUL_SUITE="${BALLOT_CONSUL_SUITE:-bullseye}"
APT_ETC="${BALLOT_APT_ETC:-/etc/apt}"  # where the machine's apt sources are
log() { echo "install.sh: $*" >&2; }
CLEANUP_DIR=""
trap '[ -z "$CLEANUP_DIR" ] || rm -rf "$CLEANUP_DIR"' EXIT
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    log "must run as root (or with passwordless sudo)"; exit 1; fi
fi

pkg_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

updated=0
apt_update_once() {
  if [ "$updated" -eq 0 ]; then
    local t; t=$(now)
    log "apt-get update"
    $SUDO apt-get update -qq
    updated=1
    log "apt-get update took $(elapsed "$t")s"
  fi
}

# Installs those of the given packages that are missing.
apt_install_missing() {
  local missing=() p
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "already installed: $*"
    return 0
  fi
  apt_update_once
  local t; t=$(now)
  log "installing: ${missing[*]}"
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  log "installed ${missing[*]} in $(elapsed "$t")s"
}

# True if apt has an installation candidate for the package.
apt_available() {
  local cand
  cand=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }')
  [ -n "$cand" ] && [ "$cand" != "(none)" ]
}

install_etcd() {
  apt_install_missing etcd-server etcd-client protobuf-compiler libprotobuf-dev openssl curl
  log "etcd: $(etcd --version 2>/dev/null | head -1); protoc: $(protoc --version)"
}

install_zookeeper() {
  # netcat-openbsd: `echo srvr | nc` for the four-letter words. libnetty-java
  # (netty-codec) and openssl: the `zk-tls` kind (Netty's TLS, a test CA).
  apt_install_missing zookeeper netcat-openbsd libnetty-java openssl
  # javac compiles the Curator LeaderLatch program of the ZooKeeper interop test.
  command -v javac >/dev/null 2>&1 || apt_install_missing default-jdk-headless
  # Curator, for the interop test (core/tests/zookeeper.rs), when apt has it.
  if pkg_installed libcurator-recipes-java; then
    log "already installed: libcurator-recipes-java"
  else
    apt_update_once
    if apt_available libcurator-recipes-java; then
      apt_install_missing libcurator-recipes-java
    else
      log "NOTE: libcurator-recipes-java is not available from apt here;" \
          "the Curator interop test will fail and say so."
    fi
  fi
  log "zookeeper: $(dpkg-query -W -f='${Version}' zookeeper)"
}

# Prints "URI SIGNED_BY" of the machine's main Debian archive (the stanza or
# line whose suite is the release codename itself, not -security/-updates).
debian_mirror() {
  local codename
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  local f
  # deb822 *.sources files
  for f in "$APT_ETC"/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v cn="$codename" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && uris != "" && tolower(enabled) != "no") {
          n = split(suites, s, " ")
          for (i = 1; i <= n; i++) if (s[i] == cn || (cn == "" && s[i] !~ /-/)) {
            split(uris, u, " "); print u[1], (signed == "" ? "-" : signed); exit
          }
        }
        types = ""; uris = ""; suites = ""; signed = ""; enabled = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^Types:/      { sub(/^Types:[ \t]*/, "");      types = $0 }
      /^URIs:/       { sub(/^URIs:[ \t]*/, "");       uris = $0 }
      /^Suites:/     { sub(/^Suites:[ \t]*/, "");     suites = $0 }
      /^Signed-By:/  { sub(/^Signed-By:[ \t]*/, "");  signed = $0 }
      /^Enabled:/    { sub(/^Enabled:[ \t]*/, "");    enabled = $0 }
      END { flush() }
    ' "$f"
  done
  # one-line sources.list format
  for f in "$APT_ETC"/sources.list "$APT_ETC"/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v cn="$codename" '
      $1 == "deb" {
        i = 2; signed = "-"
        if ($2 ~ /^\[/) {
          for (; i <= NF; i++) {
            if ($i ~ /signed-by=/) { s = $i; sub(/.*signed-by=/, "", s); sub(/\]$/, "", s); signed = s }
            if ($i ~ /\]$/) { i++; break }
          }
        }
        if ($(i + 1) == cn) { print $i, signed; exit }
      }' "$f"
  done
}

install_consul() {
  if command -v consul >/dev/null 2>&1 && consul version >/dev/null 2>&1; then
    log "already installed: $(consul version | head -1) ($(command -v consul))"
    return 0
  fi
  if [ -x "$CONSUL_PREFIX/usr/bin/consul" ]; then
    $SUDO ln -sf "$CONSUL_PREFIX/usr/bin/consul" /usr/local/bin/consul
    log "consul already unpacked in $CONSUL_PREFIX; linked /usr/local/bin/consul"
    consul version | head -1 >&2
    return 0
  fi
  local t; t=$(now)
  local mirror uri signed
  mirror=$(debian_mirror | head -1)
  if [ -z "$mirror" ]; then
    log "cannot find a Debian mirror in /etc/apt/sources.list{,.d}; cannot fetch consul"
    exit 1
  fi
  uri=${mirror%% *}
  signed=${mirror#* }
  local tmp; tmp=$(mktemp -d /tmp/ballot-consul-apt.XXXXXX)
  CLEANUP_DIR="$tmp"
  mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/dl"
  # apt downloads as the unprivileged _apt user: let it write there.
  chmod 755 "$tmp"
  if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then
    chown -R _apt:root "$tmp/lists" "$tmp/cache" "$tmp/dl"
  fi
  local opts=""
  if [ "$signed" != "-" ]; then opts="[signed-by=$signed] "; fi
  echo "deb $opts$uri $CONSUL_SUITE main" > "$tmp/sources.list"
  log "consul: fetching package 'consul' from suite $CONSUL_SUITE of $uri (temporary apt config)"
  local aptopts=(
    -o "Dir::Etc::sourcelist=$tmp/sources.list"
    -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::Lists=$tmp/lists"
    -o "Dir::Cache=$tmp/cache"
    -o "Dir::Cache::archives=$tmp/cache/archives"
    -o "APT::Get::List-Cleanup=0"
  )
  apt-get "${aptopts[@]}" update -qq
  (cd "$tmp/dl" && apt-get "${aptopts[@]}" download consul >/dev/null)
  local deb; deb=$(ls "$tmp"/dl/consul_*.deb)
  log "consul: downloaded $(basename "$deb")"
  # Unpack into a staging dir, then move into place (so a half-unpacked tree
  # never looks installed).
  $SUDO rm -rf "$CONSUL_PREFIX.new"
  $SUDO mkdir -p "$CONSUL_PREFIX.new"
  $SUDO dpkg -x "$deb" "$CONSUL_PREFIX.new"
  $SUDO rm -rf "$CONSUL_PREFIX"
  $SUDO mv "$CONSUL_PREFIX.new" "$CONSUL_PREFIX"
  $SUDO ln -sf "$CONSUL_PREFIX/usr/bin/consul" /usr/local/bin/consul
  if ! consul version >/dev/null 2>&1; then
    log "consul was unpacked into $CONSUL_PREFIX but 'consul version' fails:"
    consul version >&2 || true
    exit 1
  fi
  log "consul: $(consul version | head -1) installed into $CONSUL_PREFIX in $(elapsed "$t")s"
}

# Debian's PostgreSQL (15 on bookworm) and PgBouncer. The harness runs its own
# clusters (initdb into its state dir); the cluster the package may create is
# not used, and `postgresql-common` is told not to create one.
install_postgres() {
  if ! pkg_installed postgresql; then
    $SUDO mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/ballot.conf >/dev/null
  fi
  apt_install_missing postgresql pgbouncer openssl
  log "postgres: $(ls /usr/lib/postgresql | sort -V | tail -1); pgbouncer: $(dpkg-query -W -f='${Version}' pgbouncer)"
}

start=$(now)
case "$what" in
  etcd) install_etcd ;;
  zookeeper) install_zookeeper ;;
  consul) install_consul ;;
  postgres) install_postgres ;;
  all) install_etcd; install_zookeeper; install_consul; install_postgres ;;
esac
log "done ($what) in $(elapsed "$start")s"
