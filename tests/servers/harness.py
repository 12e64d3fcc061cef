#!/usr/bin/env python3
"""Runs real coordination servers (etcd, ZooKeeper, Consul) on loopback for tests.

Python 3.11, standard library only. Install the servers first with
tests/servers/install.sh.

    harness.py start KIND [KIND...] --dir STATEDIR [--timeout 60]
    harness.py stop [KIND...] --dir STATEDIR
    harness.py kill-member KIND INDEX --dir STATEDIR [--signal KILL]
    harness.py restart-member KIND INDEX --dir STATEDIR
    harness.py pause-member KIND INDEX --dir STATEDIR     (SIGSTOP)
    harness.py resume-member KIND INDEX --dir STATEDIR    (SIGCONT)
    harness.py status --dir STATEDIR
    harness.py env --dir STATEDIR
    harness.py consul-leader --dir STATEDIR     (consul-cluster)

KIND is one of: etcd, etcd-cluster, etcd-auth, etcd-tls, zk, zk-ensemble,
zk-tls, zk-tls-ensemble, consul, consul-acl, consul-cluster, consul-default, pg,
pgbouncer.

`consul-default` is a `consul agent -dev` with Consul's default limits, as a new
user runs it: 200 HTTP connections per client address. The other Consul kinds
allow 8192, because every test client connects from 127.0.0.1.

`zk-tls` is a standalone ZooKeeper that listens only on `secureClientPort`
(Netty, client certificates required), with a test CA made at start;
`zk-tls-ensemble` is 3 such nodes (the quorum talks in plaintext).

`consul-cluster` is Consul as deployed: 3 servers (members 0-2, data on disk
in STATEDIR) and a client agent (member 3) that joins them; its URL is the
client agent's. `harness.py consul-leader --dir STATEDIR` prints the index of
the server that is the Raft leader now.

`pg` is Debian's PostgreSQL (initdb run as the `postgres` user into
STATEDIR/pg.data; SCRAM passwords for the role `ballot`, owner of the database
`ballot`; TLS with a test CA made at start). `pgbouncer` is PgBouncer in
transaction pooling mode in front of the `pg` of the same STATEDIR (start them
together, or `pg` first), with the same role and password. `--pg-max-connections N`
sets the server's max_connections (default 500; a ballot client holds one on a
direct URL, and the clients of a process share one more for LISTEN).

`start` prints one `KEY=VALUE` line per fact to stdout (shell-sourceable; a
value is shell-quoted only when it needs it) and keeps every kind started into
STATEDIR in STATEDIR/env (the same lines), STATEDIR/env.json (a JSON object)
and STATEDIR/pids (`PID MEMBER KIND` lines). Progress goes to stderr.

STATEDIR/backends.json is the one description of the backends that the Rust, C,
Python and Node tests read (its path is the fact BALLOT_TEST_BACKENDS, in
STATEDIR/env): for `memory` and `local` (always; `local` is the directory
STATEDIR/local) and for every kind running, its URL, the session TTL tests use,
the takeover bound, the liveness bound and the backend's quirks. See describe().

    harness.py describe [--dir DIR]

prints the description of DIR (default: $TMPDIR/ballot-tests-UID, so only
`memory` and `local`): what tests use when no harness started servers.
Processes are only ever signalled by the PID the harness recorded, after
checking that the PID still belongs to the process it started.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import fcntl
import http.client
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid

HOST = "127.0.0.1"
DEFAULT_TIMEOUT = 60.0
STOP_GRACE = 5.0
# PostgreSQL's max_connections unless `--pg-max-connections` says otherwise.
PG_MAX_CONNECTIONS = 500

# ZooKeeper: Debian's zookeeper.jar names its dependencies (jute, netty,
# jetty, jackson, metrics, snappy, commons-cli/io, slf4j-api) in its manifest
# Class-Path, so only an SLF4J binding has to be added for the server to log.
ZK_CLASSPATH = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
# TLS (`zk-tls`) runs on Netty's SslHandler, which needs netty-codec: the
# manifest names netty's buffer, common, handler and transport jars, not codec.
ZK_TLS_CLASSPATH = ZK_CLASSPATH + ":/usr/share/java/netty-codec.jar"
ZK_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
ZK_JVM_OPTS = [
    "-Xms32m",
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-Djava.net.preferIPv4Stack=true",
    "-Dorg.slf4j.simpleLogger.showDateTime=true",
    "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS",
    # A member killed before its first snapshot must still be able to restart.
    "-Dzookeeper.snapshot.trust.empty=true",
]

KINDS = {
    # kind: (env prefix, members)
    "etcd": ("BALLOT_TEST_ETCD", 1),
    "etcd-cluster": ("BALLOT_TEST_ETCD_CLUSTER", 3),
    "etcd-auth": ("BALLOT_TEST_ETCD_AUTH", 1),
    "etcd-tls": ("BALLOT_TEST_ETCD_TLS", 1),
    "zk": ("BALLOT_TEST_ZK", 1),
    "zk-ensemble": ("BALLOT_TEST_ZK_ENSEMBLE", 3),
    "zk-tls": ("BALLOT_TEST_ZK_TLS", 1),
    # 3 nodes, clients over TLS (quorum traffic in plaintext), for the chaos suite.
    "zk-tls-ensemble": ("BALLOT_TEST_ZK_TLS_ENSEMBLE", 3),
    "consul": ("BALLOT_TEST_CONSUL", 1),
    "consul-acl": ("BALLOT_TEST_CONSUL_ACL", 1),
    # 3 servers (members 0-2) and the client agent ballot talks to (member 3).
    "consul-cluster": ("BALLOT_TEST_CONSUL_CLUSTER", 4),
    # Consul's default limits (http_max_conns_per_client 200).
    "consul-default": ("BALLOT_TEST_CONSUL_DEFAULT", 1),
    "pg": ("BALLOT_TEST_PG", 1),
    "pgbouncer": ("BALLOT_TEST_PGBOUNCER", 1),
}

# The kinds whose clients reach ZooKeeper over TLS only.
ZK_TLS_KINDS = ("zk-tls", "zk-tls-ensemble")

# Debian's PostgreSQL: the newest major version installed.
def pg_bindir() -> str:
    base = "/usr/lib/postgresql"
    with contextlib.suppress(OSError):
        versions = sorted((v for v in os.listdir(base) if v.isdigit()), key=int)
        if versions:
            return os.path.join(base, versions[-1], "bin")
    return os.path.join(base, "15", "bin")


# PostgreSQL and PgBouncer refuse to run as root: both run as this user.
PG_USER = "postgres"


class HarnessError(Exception):
    pass


def log(msg: str) -> None:
    print(f"harness: {msg}", file=sys.stderr, flush=True)


def tail(path: str, lines: int = 40) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"(cannot read {path}: {e})"
    return "\n".join(data.splitlines()[-lines:])


# ---------------------------------------------------------------------------
# processes


def proc_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (field 22 of /proc/PID/stat), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def proc_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()[0]


def reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_ours(member: dict) -> bool:
    """True while the member's recorded PID is alive and is the process we started."""
    pid = member.get("pid")
    if not pid:
        return False
    reap(pid)
    st = proc_state(pid)
    if st is None or st in ("Z", "X"):
        return False
    return proc_start_time(pid) == member.get("start_time")


def children(pid: int) -> list[int]:
    """The PIDs whose parent is `pid` (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[1] == str(pid):
            out.append(int(entry))
    return out


def signal_member(member: dict, sig: int) -> bool:
    if not is_ours(member):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(member["pid"], sig)
    if member.get("pause_group") and sig in (signal.SIGSTOP, signal.SIGCONT):
        # PostgreSQL serves each connection from a child process of its own
        # (each in a session of its own, so not in the postmaster's process
        # group): a pause stops them all, as a paused host would. The postmaster
        # is stopped first, so it forks no child meanwhile.
        for child in children(member["pid"]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, sig)
    return True


def wait_gone(member: dict, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_ours(member):
            return True
        time.sleep(0.05)
    return not is_ours(member)


def stop_members(members: list[dict]) -> dict[str, str]:
    """Stops the members together: SIGTERM to all, then SIGKILL to those still
    there after STOP_GRACE seconds. Returns {name: what happened}; raises
    HarnessError if one survives SIGKILL."""
    result: dict[str, str] = {}
    live = []
    for m in members:
        if is_ours(m):
            # PostgreSQL's SIGTERM is a "smart" shutdown that waits for every
            # client to leave; its members ask for SIGINT (a fast shutdown).
            signal_member(m, signal.Signals[m.get("stop_signal") or "SIGTERM"])
            signal_member(m, signal.SIGCONT)  # a paused member must see the TERM
            live.append(m)
        else:
            result[m["name"]] = "not running"
            m["pid"] = None
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline and any(is_ours(m) for m in live):
        time.sleep(0.05)
    for m in live:
        if is_ours(m):
            signal_member(m, signal.SIGKILL)
            result[m["name"]] = f"killed (SIGKILL after {STOP_GRACE:.0f}s)"
        else:
            result[m["name"]] = f"stopped ({m.get('stop_signal') or 'SIGTERM'})"
    survivors = [m for m in live if not wait_gone(m, 5.0)]
    if survivors:
        raise HarnessError("survived SIGKILL: " + ", ".join(f"{m['name']} (pid {m['pid']})" for m in survivors))
    for m in live:
        m["pid"] = None
    return result


def stop_member(member: dict) -> str:
    return stop_members([member])[member["name"]]


def spawn(member: dict) -> subprocess.Popen:
    os.makedirs(os.path.dirname(member["log"]), exist_ok=True)
    env = dict(os.environ)
    env.update(member.get("env") or {})
    with open(member["log"], "ab") as logf:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        logf.write(f"=== harness {stamp}: {shlex.join(member['argv'])}\n".encode())
        logf.flush()
        p = subprocess.Popen(
            member["argv"],
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            cwd=member.get("cwd") or None,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    member["pid"] = p.pid
    member["start_time"] = proc_start_time(p.pid)
    member["started_at"] = time.time()
    return p


# ---------------------------------------------------------------------------
# ports


def free_ports(n: int, taken: set[int], udp: int = 0) -> list[int]:
    """n distinct free TCP ports on HOST (found by binding port 0); the first
    `udp` of them are also free for UDP. Ports in `taken` are skipped."""
    held: list[socket.socket] = []
    out: list[int] = []
    try:
        attempts = 0
        while len(out) < n:
            attempts += 1
            if attempts > 200:
                raise HarnessError("cannot find free loopback ports")
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            held.append(s)
            port = s.getsockname()[1]
            if port in taken or port in out:
                continue
            if len(out) < udp:
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    u.bind((HOST, port))
                except OSError:
                    u.close()
                    continue
                held.append(u)
            out.append(port)
    finally:
        for s in held:
            s.close()
    return out


# ---------------------------------------------------------------------------
# readiness checks; each returns (ready, detail)


def http_get(port: int, path: str, tls: dict | None = None, headers: dict | None = None,
             timeout: float = 2.0) -> tuple[int, bytes]:
    if tls:
        ctx = ssl.create_default_context(cafile=tls["ca"])
        ctx.load_cert_chain(tls["cert"], tls["key"])
        conn = http.client.HTTPSConnection(HOST, port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def http_call(method: str, port: int, path: str, body=None, token: str | None = None,
              timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Consul-Token"] = token
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def check_etcd(ready: dict) -> tuple[bool, str]:
    status, body = http_get(ready["port"], "/health", tls=ready.get("tls"))
    text = body.decode("utf-8", "replace").strip()
    try:
        ok = json.loads(text).get("health") == "true"
    except ValueError:
        ok = False
    return ok, f"GET /health -> {status} {text}"


def zk_4lw(port: int, word: str, timeout: float = 2.0, tls: dict | None = None) -> str:
    with contextlib.ExitStack() as stack:
        s = stack.enter_context(socket.create_connection((HOST, port), timeout=timeout))
        if tls:
            s = stack.enter_context(zk_tls_context(tls).wrap_socket(s, server_hostname=HOST))
        s.sendall(word.encode())
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode("utf-8", "replace")


def check_zk(ready: dict) -> tuple[bool, str]:
    out = zk_4lw(ready["port"], "srvr", tls=ready.get("tls"))
    m = re.search(r"^Mode: *(\S+)", out, re.M)
    return bool(m), (f"srvr -> Mode: {m.group(1)}" if m else f"srvr -> {out.strip()[:200]!r}")


def check_pg(ready: dict) -> tuple[bool, str]:
    """pg_isready: exit 0 means the server (or the pooler) accepts connections."""
    r = subprocess.run([os.path.join(pg_bindir(), "pg_isready"), "-h", HOST, "-p", str(ready["port"]),
                        "-d", ready.get("db", "postgres"), "-t", "2"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    return r.returncode == 0, f"pg_isready -> {r.returncode} {r.stdout.strip()}"


def check_consul(ready: dict) -> tuple[bool, str]:
    status, body = http_get(ready["port"], "/v1/status/leader")
    leader = ""
    if status == 200:
        with contextlib.suppress(ValueError):
            leader = json.loads(body) or ""
    return bool(leader), f"GET /v1/status/leader -> {status} {body.decode('utf-8', 'replace').strip()}"


CHECKS = {"etcd": check_etcd, "zk": check_zk, "consul": check_consul, "pg": check_pg}


def probe(member: dict) -> tuple[bool, str]:
    try:
        return CHECKS[member["ready"]["type"]](member["ready"])
    except (OSError, http.client.HTTPException, ssl.SSLError, subprocess.SubprocessError) as e:
        return False, f"{type(e).__name__}: {e}"


def wait_ready(pending: list[tuple[dict, subprocess.Popen | None]], timeout: float) -> None:
    """Waits until every member answers its readiness check. Raises HarnessError
    naming the member and quoting its log when one exits or times out."""
    deadline = time.monotonic() + timeout
    detail: dict[str, str] = {}
    waiting = list(pending)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(waiting)))
    try:
        _wait_ready(pool, waiting, detail, deadline, timeout)
    finally:
        pool.shutdown(wait=True)


def _wait_ready(pool, waiting, detail, deadline, timeout) -> None:
    while waiting:
        still = []
        for member, popen in waiting:
            code = popen.poll() if popen is not None else None
            if code is not None or (popen is None and not is_ours(member)):
                raise HarnessError(
                    f"{member['name']} exited (code {code}) before it was ready; "
                    f"last check: {detail.get(member['name'], 'none')}\n"
                    f"--- tail of {member['log']} ---\n{tail(member['log'])}"
                )
        # Probe every member at once, so that a slow answer from one does not
        # delay (or skew the start-up time of) the others.
        results = list(pool.map(probe, [m for m, _ in waiting]))
        for (member, popen), (ok, text) in zip(waiting, results):
            detail[member["name"]] = text
            if ok:
                took = time.time() - member["started_at"]
                member["ready_after"] = round(took, 2)
                log(f"{member['name']} ready in {took:.1f}s (pid {member['pid']}; {detail[member['name']]})")
            else:
                still.append((member, popen))
        waiting = still
        if not waiting:
            return
        if time.monotonic() > deadline:
            member = waiting[0][0]
            names = ", ".join(m["name"] for m, _ in waiting)
            raise HarnessError(
                f"not ready after {timeout:g}s: {names}; last check of {member['name']}: "
                f"{detail.get(member['name'])}\n--- tail of {member['log']} ---\n{tail(member['log'])}"
            )
        time.sleep(0.15)


# ---------------------------------------------------------------------------
# state


class State:
    """STATEDIR/state.json, guarded by an flock on STATEDIR/.lock."""

    def __init__(self, statedir: str):
        self.dir = os.path.abspath(statedir)
        os.makedirs(self.dir, exist_ok=True)
        self.path = os.path.join(self.dir, "state.json")
        self._lockf = open(os.path.join(self.dir, ".lock"), "a")
        fcntl.flock(self._lockf, fcntl.LOCK_EX)
        if os.path.exists(self.path):
            with open(self.path) as f:
                self.data = json.load(f)
        else:
            self.data = {"instances": {}}

    @property
    def instances(self) -> dict:
        return self.data["instances"]

    def taken_ports(self) -> set[int]:
        ports = set()
        for inst in self.instances.values():
            for m in inst["members"]:
                ports.update(m["ports"].values())
        return ports

    def save(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1)
        os.replace(tmp, self.path)
        facts: list[tuple[str, str]] = []
        for inst in self.instances.values():
            facts.extend(instance_facts(inst))
        facts.append(("BALLOT_TEST_BACKENDS", os.path.join(self.dir, "backends.json")))
        write_atomic(os.path.join(self.dir, "env"),
                     "# written by tests/servers/harness.py; source it in a shell\n"
                     + "".join(fact_line(k, v) + "\n" for k, v in facts))
        write_atomic(os.path.join(self.dir, "env.json"), json.dumps(dict(facts), indent=1) + "\n")
        write_atomic(os.path.join(self.dir, "backends.json"),
                     json.dumps(describe(self.dir, self.instances), indent=1) + "\n")
        pids = []
        for inst in self.instances.values():
            for m in inst["members"]:
                if m.get("pid"):
                    pids.append(f"{m['pid']} {m['name']} {inst['kind']}\n")
        write_atomic(os.path.join(self.dir, "pids"), "".join(pids))

    def close(self) -> None:
        fcntl.flock(self._lockf, fcntl.LOCK_UN)
        self._lockf.close()


def write_atomic(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def fact_line(key: str, value) -> str:
    return f"{key}={shlex.quote(str(value))}"


# ---------------------------------------------------------------------------
# kinds


def new_member(inst: dict, index: int, name: str, argv: list[str], ports: dict, ready: dict,
               **extra) -> dict:
    m = {
        "index": index,
        "name": name,
        "argv": argv,
        "log": os.path.join(inst["dir"], f"{name}.log"),
        "ports": ports,
        "ready": ready,
        "pid": None,
        "start_time": None,
    }
    m.update(extra)
    return m


def fresh_dir(path: str) -> str:
    """An empty directory at `path` (a new instance must not find the data of
    an earlier one started into the same STATEDIR)."""
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, mode=0o700)
    return path


def gen_password() -> str:
    return secrets.token_hex(12)


def build_etcd(inst: dict, taken: set[int], opts) -> None:
    kind = inst["kind"]
    n = KINDS[kind][1]
    ports = free_ports(2 * n, taken)
    tls = None
    if kind == "etcd-tls":
        tls = make_certs(os.path.join(inst["dir"], "tls"))
        inst["info"]["tls"] = tls
    scheme = "https" if tls else "http"
    token = f"ballot-{kind}-{secrets.token_hex(4)}"
    names = [kind if n == 1 else f"{kind}-{i}" for i in range(n)]
    initial = ",".join(f"{names[i]}=http://{HOST}:{ports[2 * i + 1]}" for i in range(n))
    for i in range(n):
        cport, pport = ports[2 * i], ports[2 * i + 1]
        data = fresh_dir(os.path.join(inst["dir"], names[i] + ".data"))
        curl = f"{scheme}://{HOST}:{cport}"
        purl = f"http://{HOST}:{pport}"
        argv = [
            "etcd",
            "--name", names[i],
            "--data-dir", data,
            "--listen-client-urls", curl,
            "--advertise-client-urls", curl,
            "--listen-peer-urls", purl,
            "--initial-advertise-peer-urls", purl,
            "--initial-cluster", initial,
            "--initial-cluster-state", "new",
            "--initial-cluster-token", token,
            "--logger", "zap",
            "--log-outputs", "stderr",
        ]
        if tls:
            argv += [
                "--cert-file", tls["server_cert"],
                "--key-file", tls["server_key"],
                "--trusted-ca-file", tls["ca"],
                "--client-cert-auth",
            ]
        ready = {"type": "etcd", "port": cport}
        if tls:
            ready["tls"] = {"ca": tls["ca"], "cert": tls["cert"], "key": tls["key"]}
        inst["members"].append(new_member(
            inst, i, names[i], argv, {"client": cport, "peer": pport}, ready, data_dir=data))
    if kind == "etcd-auth":
        inst["info"].update({
            "root_password": gen_password(),
            "user": "ballot",
            "password": gen_password(),
            "role": "ballot",
            "prefix": opts.etcd_prefix,
        })


def make_certs(d: str, server_names: str = "IP:127.0.0.1,DNS:localhost,IP:::1") -> dict:
    """A CA, a server certificate for `server_names` (subjectAltName; by default
    127.0.0.1/localhost/::1) (serverAuth and clientAuth: etcd's gRPC gateway
    presents it as a client certificate) and a client certificate (CN=ballot).
    RSA 2048, PKCS#8 keys, valid 10 years."""
    os.makedirs(d, exist_ok=True)
    cnf = os.path.join(d, "openssl.cnf")
    write_atomic(cnf, """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = ballot
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = """ + server_names + """
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
""")
    p = {n: os.path.join(d, n) for n in
         ("ca.crt", "ca.key", "server.crt", "server.key", "server.csr", "client.crt", "client.key", "client.csr")}

    def run(*args):
        r = subprocess.run(["openssl", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if r.returncode != 0:
            raise HarnessError(f"openssl {args[0]} failed: {r.stderr.strip()}")

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p["ca.key"], "-out", p["ca.crt"],
        "-days", "3650", "-subj", "/CN=ballot test CA", "-config", cnf, "-extensions", "ca_ext")
    for who, cn, ext in (("server", "localhost", "server_ext"), ("client", "ballot", "client_ext")):
        run("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", p[f"{who}.key"],
            "-out", p[f"{who}.csr"], "-subj", f"/CN={cn}", "-config", cnf)
        run("x509", "-req", "-in", p[f"{who}.csr"], "-CA", p["ca.crt"], "-CAkey", p["ca.key"],
            "-set_serial", "0x" + secrets.token_hex(8), "-days", "3650",
            "-extfile", cnf, "-extensions", ext, "-out", p[f"{who}.crt"])
        os.unlink(p[f"{who}.csr"])
    for k in ("ca.key", "server.key", "client.key"):
        os.chmod(p[k], 0o600)
    return {"ca": p["ca.crt"], "ca_key": p["ca.key"], "server_cert": p["server.crt"],
            "server_key": p["server.key"], "cert": p["client.crt"], "key": p["client.key"]}


def build_zk(inst: dict, taken: set[int], opts) -> None:
    kind = inst["kind"]
    n = KINDS[kind][1]
    per = 1 if n == 1 else 3
    ports = free_ports(per * n, taken)
    names = [kind if n == 1 else f"{kind}-{i}" for i in range(n)]
    servers = ""
    if n > 1:
        servers = "".join(
            f"server.{i + 1}={HOST}:{ports[3 * i + 1]}:{ports[3 * i + 2]}\n" for i in range(n))
    inst["info"]["tick_ms"] = opts.zk_tick_ms
    tls = zk_tls_setup(inst) if kind in ZK_TLS_KINDS else None
    for i in range(n):
        mdir = fresh_dir(os.path.join(inst["dir"], names[i] + ".data"))
        cport = ports[per * i]
        cfg = os.path.join(inst["dir"], names[i] + ".cfg")
        listen = zk_tls_listen(tls, cport) if tls else f"clientPort={cport}\nclientPortAddress={HOST}\n"
        write_atomic(cfg, (
            f"# generated by tests/servers/harness.py\n"
            f"tickTime={opts.zk_tick_ms}\n"
            f"initLimit=10\n"
            f"syncLimit=5\n"
            f"dataDir={mdir}\n"
            + listen +
            f"maxClientCnxns=0\n"
            f"admin.enableServer=false\n"
            f"4lw.commands.whitelist=*\n"
            f"autopurge.purgeInterval=0\n"
            + ("reconfigEnabled=false\nquorumListenOnAllIPs=false\n" + servers if n > 1 else "")
        ))
        if n > 1:
            write_atomic(os.path.join(mdir, "myid"), f"{i + 1}\n")
        argv = ["java", *ZK_JVM_OPTS, "-cp", ZK_TLS_CLASSPATH if tls else ZK_CLASSPATH, ZK_MAIN, cfg]
        mports = {"client": cport}
        if n > 1:
            mports.update({"quorum": ports[3 * i + 1], "election": ports[3 * i + 2]})
        ready = {"type": "zk", "port": cport}
        if tls:
            ready["tls"] = {"ca": tls["ca"], "cert": tls["cert"], "key": tls["key"]}
        inst["members"].append(new_member(
            inst, i, names[i], argv, mports, ready,
            data_dir=mdir, config=cfg, cwd=inst["dir"]))


# ZooKeeper over TLS (`zk-tls`) --------------------------------------------


def zk_tls_setup(inst: dict) -> dict:
    """The certificates of `zk-tls` (in tls/): make_certs's, with the server's
    key and certificate also in one PEM file (ZooKeeper's PEM key store), and an
    unrelated CA (other-ca/, another name) that signed nothing ZooKeeper
    presents, for the tests of a server certificate that the CA does not sign."""
    tls = make_certs(fresh_dir(os.path.join(inst["dir"], "tls")), server_names="IP:127.0.0.1")
    keystore = os.path.join(inst["dir"], "tls", "server.pem")
    with open(tls["server_key"]) as k, open(tls["server_cert"]) as c:
        write_atomic(keystore, k.read() + c.read())
    os.chmod(keystore, 0o600)
    tls["keystore"] = keystore
    other = fresh_dir(os.path.join(inst["dir"], "other-ca"))
    tls["other_ca"] = os.path.join(other, "ca.crt")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        os.path.join(other, "ca.key"), "-out", tls["other_ca"], "-days", "3650",
                        "-subj", "/CN=ballot unrelated test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                        "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if r.returncode != 0:
        raise HarnessError(f"openssl req failed: {r.stderr.strip()}")
    inst["info"]["tls"] = tls
    return tls


def zk_tls_listen(tls: dict, port: int) -> str:
    """zoo.cfg lines: TLS only (no plaintext clientPort), on Netty, client
    certificates required (ZooKeeper's default ssl.clientAuth=need). Keys that
    zoo.cfg does not know become `zookeeper.` system properties."""
    return (
        f"secureClientPort={port}\n"
        f"secureClientPortAddress={HOST}\n"
        f"serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n"
        f"ssl.keyStore.location={tls['keystore']}\n"
        f"ssl.keyStore.type=PEM\n"
        f"ssl.trustStore.location={tls['ca']}\n"
        f"ssl.trustStore.type=PEM\n"
    )


def zk_tls_context(tls: dict) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=tls["ca"])
    ctx.load_cert_chain(tls["cert"], tls["key"])
    return ctx


def as_pg_user(argv: list[str]) -> list[str]:
    """`argv` run as PG_USER: setpriv execs it, so the PID the harness records is
    the server's own."""
    return ["setpriv", f"--reuid={PG_USER}", f"--regid={PG_USER}", "--init-groups", "--", *argv]


def chown_pg(*paths: str) -> None:
    for path in paths:
        for root, dirs, files in os.walk(path):
            for n in [root] + [os.path.join(root, x) for x in dirs + files]:
                shutil.chown(n, PG_USER, PG_USER)


def build_pg(inst: dict, taken: set[int], opts) -> None:
    max_conn = getattr(opts, "pg_max_connections", None) or PG_MAX_CONNECTIONS
    if not 10 <= max_conn <= 100000:
        raise HarnessError(f"pg: --pg-max-connections {max_conn}: expected 10 to 100000")
    (port,) = free_ports(1, taken)
    data = fresh_dir(os.path.join(inst["dir"], "pg.data"))
    sock = fresh_dir(os.path.join(inst["dir"], "pg.sock"))
    tls = make_certs(fresh_dir(os.path.join(inst["dir"], "pg.tls")))
    chown_pg(data, sock, os.path.dirname(tls["ca"]))
    # The state directory must let the postgres user reach its own directories.
    os.chmod(inst["dir"], os.stat(inst["dir"]).st_mode | 0o711)
    info = inst["info"]
    # `ballot` owns the database (it may create ballot's schema); `ballot_app`
    # may only log in, for tests of the least privileges a role needs once the
    # schema exists.
    info.update({"user": "ballot", "password": gen_password(), "db": "ballot", "tls": tls, "sock": sock,
                 "app_user": "ballot_app", "app_password": gen_password(), "max_connections": max_conn})
    t = time.time()
    r = subprocess.run(as_pg_user([os.path.join(pg_bindir(), "initdb"), "-D", data, "-U", "postgres",
                                   "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                                   "--locale=C.UTF-8", "--no-sync"]),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if r.returncode != 0:
        raise HarnessError(f"pg: initdb failed: {r.stderr.strip() or r.stdout.strip()}")
    log(f"pg: initdb in {time.time() - t:.1f}s")
    argv = as_pg_user([
        os.path.join(pg_bindir(), "postgres"), "-D", data, "-p", str(port),
        "-c", f"listen_addresses={HOST}",
        "-c", f"unix_socket_directories={sock}",
        "-c", "ssl=on",
        "-c", f"ssl_cert_file={tls['server_cert']}",
        "-c", f"ssl_key_file={tls['server_key']}",
        "-c", f"ssl_ca_file={tls['ca']}",
        "-c", "password_encryption=scram-sha-256",
        "-c", f"max_connections={max_conn}",
        "-c", "shared_buffers=32MB",
        # Tests lose nothing they need to a crash of the machine; a clean stop
        # (SIGINT) still writes everything, so terms survive restarts.
        "-c", "fsync=off",
        "-c", "synchronous_commit=off",
        "-c", "full_page_writes=off",
        "-c", "logging_collector=off",
        # Calls of ballot's functions per handoff show in pg_stat_user_functions.
        "-c", "track_functions=pl",
    ])
    inst["members"].append(new_member(
        inst, 0, "pg", argv, {"client": port}, {"type": "pg", "port": port},
        data_dir=data, stop_signal="SIGINT", pause_group=True))


def build_pgbouncer(inst: dict, taken: set[int], opts) -> None:
    pg = (getattr(opts, "instances", None) or {}).get("pg")
    if pg is None:
        raise HarnessError("pgbouncer: start pg first, or together (harness.py start pg pgbouncer)")
    (port,) = free_ports(1, taken)
    pinfo = pg["info"]
    pport = pg["members"][0]["ports"]["client"]
    d = fresh_dir(os.path.join(inst["dir"], "pgbouncer"))
    users = os.path.join(d, "userlist.txt")
    # A plain password in the auth file lets PgBouncer speak SCRAM both to its
    # clients and to the server.
    write_atomic(users, f'"{pinfo["user"]}" "{pinfo["password"]}"\n'
                        f'"{pinfo["app_user"]}" "{pinfo["app_password"]}"\n')
    conf = os.path.join(d, "pgbouncer.ini")
    write_atomic(conf, f"""\
[databases]
{pinfo["db"]} = host={HOST} port={pport} dbname={pinfo["db"]}

[pgbouncer]
listen_addr = {HOST}
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {users}
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 50
server_tls_sslmode = require
ignore_startup_parameters = extra_float_digits
admin_users = {pinfo["user"]}
""")
    os.chmod(users, 0o600)
    chown_pg(d)
    inst["info"].update({"user": pinfo["user"], "password": pinfo["password"], "db": pinfo["db"],
                         "app_user": pinfo["app_user"], "app_password": pinfo["app_password"], "pg_port": pport})
    argv = as_pg_user(["pgbouncer", conf])
    inst["members"].append(new_member(
        inst, 0, "pgbouncer", argv, {"client": port}, {"type": "pg", "port": port, "db": pinfo["db"]},
        config=conf))


def setup_pg(inst: dict) -> None:
    """The test role (SCRAM password) and its database, through the local socket."""
    info = inst["info"]
    port = inst["members"][0]["ports"]["client"]
    pw = info["password"].replace("'", "''")
    app_pw = info["app_password"].replace("'", "''")
    for sql in (f"CREATE ROLE {info['user']} LOGIN PASSWORD '{pw}'",
                f"CREATE ROLE {info['app_user']} LOGIN PASSWORD '{app_pw}'",
                f"CREATE DATABASE {info['db']} OWNER {info['user']}"):
        r = subprocess.run(as_pg_user([os.path.join(pg_bindir(), "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                                       "-h", info["sock"], "-p", str(port), "-U", "postgres", "-d", "postgres",
                                       "-c", sql]),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if r.returncode != 0:
            raise HarnessError(f"pg: {sql.split(' PASSWORD')[0]}: {r.stderr.strip()}")
    log(f"pg: roles {info['user']} and {info['app_user']} (SCRAM) and database {info['db']} created")


def build_consul(inst: dict, taken: set[int], opts) -> None:
    kind = inst["kind"]
    # http, serf lan (tcp+udp), serf wan (tcp+udp), server rpc, grpc
    serf_lan, serf_wan, http_p, server_p, grpc_p = free_ports(5, taken, udp=2)
    # Every test and benchmark candidate connects from 127.0.0.1, where a real
    # deployment's come from many hosts: the agent's limit of 200 HTTP connections
    # per client address would cap a 1,000-candidate benchmark, not ballot.
    # `consul-default` keeps that limit, to show what one client does under it.
    cfg = {"disable_update_check": True, "ports": {"https": -1}}
    if kind != "consul-default":
        cfg["limits"] = {"http_max_conns_per_client": 8192}
    if opts.consul_session_ttl_min:
        cfg["session_ttl_min"] = opts.consul_session_ttl_min
        inst["info"]["session_ttl_min"] = opts.consul_session_ttl_min
    if kind == "consul-acl":
        master = str(uuid.uuid4())
        inst["info"].update({"master_token": master, "token": str(uuid.uuid4()),
                             "policy": "ballot-test"})
        cfg["primary_datacenter"] = "dc1"
        cfg["acl"] = {
            "enabled": True,
            "default_policy": "deny",
            "down_policy": "extend-cache",
            "enable_token_persistence": True,
            "tokens": {"master": master, "agent": master},
        }
    cfg_path = os.path.join(inst["dir"], f"{kind}.json")
    write_atomic(cfg_path, json.dumps(cfg, indent=1) + "\n")
    os.chmod(cfg_path, 0o600)
    argv = [
        "consul", "agent", "-dev",
        "-node", f"ballot-{kind}",
        "-bind", HOST,
        "-client", HOST,
        "-http-port", str(http_p),
        "-dns-port", "-1",
        "-serf-lan-port", str(serf_lan),
        "-serf-wan-port", str(serf_wan),
        "-server-port", str(server_p),
        "-grpc-port", str(grpc_p),
        "-config-file", cfg_path,
        "-log-level", "info",
    ]
    inst["members"].append(new_member(
        inst, 0, kind, argv,
        {"http": http_p, "serf_lan": serf_lan, "serf_wan": serf_wan, "server": server_p, "grpc": grpc_p},
        {"type": "consul", "port": http_p}, config=cfg_path, cwd=inst["dir"]))


# consul-cluster: the members' indexes.
CONSUL_SERVERS = 3
CONSUL_CLIENT = 3


def build_consul_cluster(inst: dict, taken: set[int], opts) -> None:
    """3 servers with their data on disk and one client agent that joins them.

    Raft keeps Consul's default timing (`raft_multiplier` 5), as a new user's
    cluster has it: the servers notice a dead Raft leader 5 to 10 s after its
    last heartbeat, long enough for a ballot leader's session to run past its
    local deadline."""
    kind = inst["kind"]
    n = KINDS[kind][1]
    # per member: serf lan (tcp+udp), serf wan (tcp+udp), http, server rpc
    per = 4
    ports = []
    for _ in range(n):
        ports += free_ports(per, taken | set(ports), udp=2)
    lans = [ports[per * i] for i in range(n)]
    cfg = {"disable_update_check": True, "ports": {"https": -1, "grpc": -1, "dns": -1},
           "limits": {"http_max_conns_per_client": 8192}}
    if opts.consul_session_ttl_min:
        cfg["session_ttl_min"] = opts.consul_session_ttl_min
        inst["info"]["session_ttl_min"] = opts.consul_session_ttl_min
    cfg_path = os.path.join(inst["dir"], f"{kind}.json")
    write_atomic(cfg_path, json.dumps(cfg, indent=1) + "\n")
    os.chmod(cfg_path, 0o600)
    for i in range(n):
        serf_lan, serf_wan, http_p, server_p = ports[per * i: per * (i + 1)]
        server = i < CONSUL_SERVERS
        name = f"{kind}-{i}" if server else f"{kind}-client"
        data = fresh_dir(os.path.join(inst["dir"], name + ".data"))
        argv = [
            "consul", "agent",
            "-node", f"ballot-{name}",
            "-data-dir", data,
            "-bind", HOST,
            "-client", HOST,
            "-http-port", str(http_p),
            "-serf-lan-port", str(serf_lan),
            "-serf-wan-port", str(serf_wan),
            "-server-port", str(server_p),
            "-config-file", cfg_path,
            "-log-level", "info",
        ]
        if server:
            argv += ["-server", "-bootstrap-expect", str(CONSUL_SERVERS)]
        # Every agent retries its join until one server answers, also after a restart.
        for j in range(CONSUL_SERVERS):
            if j != i:
                argv += ["-retry-join", f"{HOST}:{lans[j]}", "-retry-interval", "1s"]
        mports = {"http": http_p, "serf_lan": serf_lan, "serf_wan": serf_wan}
        if server:
            mports["server"] = server_p
        inst["members"].append(new_member(
            inst, i, name, argv, mports, {"type": "consul", "port": http_p},
            data_dir=data, config=cfg_path, cwd=inst["dir"], role="server" if server else "client"))


def setup_consul_cluster(inst: dict, timeout: float) -> None:
    """Ready means more than a leader: every server is a healthy voter again
    (autopilot says the cluster survives the loss of one server: a server that
    was just restarted is not counted before it is stable, and killing the Raft
    leader earlier leaves no quorum), and the client agent can write a key and
    create a session (both go through the Raft leader)."""
    port = inst["members"][CONSUL_CLIENT]["ports"]["http"]
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            status, body = http_call("GET", port, "/v1/operator/autopilot/health")
            health = json.loads(body) if status == 200 else {}
            if not (health.get("Healthy") and health.get("FailureTolerance", 0) >= 1):
                status = 0
                body = f"autopilot: {json.dumps(health)[:300]}".encode()
            else:
                status, body = http_call("PUT", port, "/v1/kv/.harness-check", body="ok")
            if status == 200:
                status, body = http_call("PUT", port, "/v1/session/create", body={"TTL": "10s"})
                if status == 200:
                    sid = json.loads(body)["ID"]
                    http_call("PUT", port, f"/v1/session/destroy/{sid}")
                    http_call("DELETE", port, "/v1/kv/.harness-check")
                    return
            last = f"{status} {body.decode('utf-8', 'replace').strip()}"
        except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() > deadline:
            raise HarnessError(f"consul-cluster: the client agent cannot write after {timeout:g}s: {last}")
        time.sleep(0.2)


def consul_leader_index(inst: dict) -> int | None:
    """The index of the server that is the Raft leader, as the client agent sees
    it (/v1/status/leader gives the leader's server RPC address), or None."""
    status, body = http_get(inst["members"][CONSUL_CLIENT]["ports"]["http"], "/v1/status/leader")
    if status != 200:
        return None
    addr = json.loads(body) or ""
    for m in inst["members"]:
        if addr == f"{HOST}:{m['ports'].get('server')}":
            return m["index"]
    return None


BUILDERS = {
    "etcd": build_etcd, "etcd-cluster": build_etcd, "etcd-auth": build_etcd, "etcd-tls": build_etcd,
    "pg": build_pg, "pgbouncer": build_pgbouncer,
    "zk": build_zk, "zk-ensemble": build_zk, "zk-tls": build_zk, "zk-tls-ensemble": build_zk,
    "consul": build_consul, "consul-acl": build_consul, "consul-default": build_consul,
    "consul-cluster": build_consul_cluster,
}


# ---------------------------------------------------------------------------
# setup after the first start (and after a restart, where the state is not kept)


def etcdctl(endpoint: str, *args: str, user: str | None = None) -> str:
    argv = ["etcdctl", "--endpoints", endpoint, "--dial-timeout", "5s", "--command-timeout", "10s"]
    if user:
        argv += ["--user", user]
    argv += list(args)
    env = dict(os.environ, ETCDCTL_API="3")
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        shown = [a if not (user and a == user) else a.split(":")[0] + ":***" for a in argv]
        raise HarnessError(f"{shlex.join(shown)} failed: {(r.stderr or r.stdout).strip()}")
    return r.stdout


def setup_etcd_auth(inst: dict) -> None:
    info = inst["info"]
    ep = f"http://{HOST}:{inst['members'][0]['ports']['client']}"
    etcdctl(ep, "user", "add", f"root:{info['root_password']}", "--interactive=false")
    etcdctl(ep, "role", "add", info["role"])
    etcdctl(ep, "role", "grant-permission", info["role"], "readwrite", info["prefix"], "--prefix=true")
    etcdctl(ep, "user", "add", f"{info['user']}:{info['password']}", "--interactive=false")
    etcdctl(ep, "user", "grant-role", info["user"], info["role"])
    etcdctl(ep, "auth", "enable")
    # The user can write under the prefix ...
    user = f"{info['user']}:{info['password']}"
    etcdctl(ep, "put", info["prefix"] + ".harness-check", "ok", user=user)
    # ... and nowhere else.
    try:
        etcdctl(ep, "put", "harness-check-outside-prefix", "x", user=user)
    except HarnessError:
        pass
    else:
        raise HarnessError("etcd-auth: the user could write outside its prefix")
    log(f"etcd-auth: auth enabled; user {info['user']} has readwrite on prefix {info['prefix']!r}")


def setup_consul_acl(inst: dict, timeout: float) -> None:
    info = inst["info"]
    port = inst["members"][0]["ports"]["http"]
    master = info["master_token"]
    deadline = time.monotonic() + timeout
    last = ""
    # The master token is created by the leader shortly after it is elected.
    while True:
        try:
            status, body = http_call("GET", port, "/v1/acl/token/self", token=master)
            if status == 200:
                break
            last = f"{status} {body.decode('utf-8', 'replace').strip()}"
        except (OSError, http.client.HTTPException) as e:
            last = str(e)
        if time.monotonic() > deadline:
            raise HarnessError(f"consul-acl: master token not usable after {timeout:g}s: {last}")
        time.sleep(0.2)
    # agent_prefix read: `consul lock` (and any client that asks the agent for
    # its node name via /v1/agent/self) needs it.
    rules = ('key_prefix "" { policy = "write" }\n'
             'session_prefix "" { policy = "write" }\n'
             'agent_prefix "" { policy = "read" }\n')
    status, body = http_call("PUT", port, "/v1/acl/policy", token=master, body={
        "Name": info["policy"],
        "Description": "ballot tests: write any key and any session, read the agent",
        "Rules": rules,
    })
    if status != 200:
        raise HarnessError(f"consul-acl: creating policy failed: {status} {body.decode(errors='replace')}")
    status, body = http_call("PUT", port, "/v1/acl/token", token=master, body={
        "SecretID": info["token"],
        "Description": "ballot tests",
        "Policies": [{"Name": info["policy"]}],
    })
    if status != 200:
        raise HarnessError(f"consul-acl: creating token failed: {status} {body.decode(errors='replace')}")
    log(f"consul-acl: ACLs on (default deny); token with policy {info['policy']!r} created")


def setup(inst: dict, timeout: float, restart: bool = False) -> None:
    if inst["kind"] == "etcd-auth" and not restart:
        setup_etcd_auth(inst)
    elif inst["kind"] == "pg" and not restart:
        setup_pg(inst)
    elif inst["kind"] == "consul-acl":
        # consul -dev keeps everything in memory: a restarted agent needs it again.
        setup_consul_acl(inst, timeout)
    elif inst["kind"] == "consul-cluster":
        setup_consul_cluster(inst, timeout)


# ---------------------------------------------------------------------------
# facts


def instance_facts(inst: dict) -> list[tuple[str, str]]:
    kind, pre, members, info = inst["kind"], inst["prefix"], inst["members"], inst["info"]
    single = len(members) == 1
    f: list[tuple[str, str]] = []
    add = lambda k, v: f.append((f"{pre}{k}", "" if v is None else str(v)))  # noqa: E731
    hostports = [f"{HOST}:{m['ports']['client' if 'client' in m['ports'] else 'http']}" for m in members]
    if kind.startswith("etcd"):
        tls = kind == "etcd-tls"
        scheme, hscheme = ("etcds", "https") if tls else ("etcd", "http")
        add("", f"{scheme}://" + ",".join(hostports))
        add("_ENDPOINTS", ",".join(f"{hscheme}://{hp}" for hp in hostports))
        if kind == "etcd-auth":
            add("_URL", f"etcd://{info['user']}:{info['password']}@{hostports[0]}")
            add("_USER", info["user"])
            add("_PASSWORD", info["password"])
            add("_ROOT_USER", "root")
            add("_ROOT_PASSWORD", info["root_password"])
            add("_ROLE", info["role"])
            add("_PREFIX", info["prefix"])
        if tls:
            add("_CA", info["tls"]["ca"])
            add("_CERT", info["tls"]["cert"])
            add("_KEY", info["tls"]["key"])
            add("_SERVER_CERT", info["tls"]["server_cert"])
            add("_SERVER_KEY", info["tls"]["server_key"])
    elif kind in ZK_TLS_KINDS:
        add("", "zks://" + ",".join(hostports))
        add("_CONNECT", ",".join(hostports))
        add("_CA", info["tls"]["ca"])
        add("_CERT", info["tls"]["cert"])
        add("_KEY", info["tls"]["key"])
        add("_OTHER_CA", info["tls"]["other_ca"])
    elif kind.startswith("zk"):
        add("", "zk://" + ",".join(hostports))
        add("_CONNECT", ",".join(hostports))
    elif kind in ("pg", "pgbouncer"):
        hp = hostports[0]
        add("", f"postgres://{hp}/{info['db']}")
        add("_URL", f"postgres://{info['user']}:{info['password']}@{hp}/{info['db']}")
        add("_USER", info["user"])
        add("_PASSWORD", info["password"])
        add("_DB", info["db"])
        add("_APP_USER", info["app_user"])
        add("_APP_PASSWORD", info["app_password"])
        if kind == "pg":
            add("_CA", info["tls"]["ca"])
            add("_CERT", info["tls"]["cert"])
            add("_KEY", info["tls"]["key"])
            add("_SOCKET_DIR", info["sock"])
        else:
            add("_PG_PORT", info["pg_port"])
    elif kind == "consul-cluster":
        # ballot talks to the client agent, as applications do.
        add("", f"consul://{hostports[CONSUL_CLIENT]}")
        add("_HTTP_ADDR", hostports[CONSUL_CLIENT])
        add("_CLIENT_INDEX", CONSUL_CLIENT)
        add("_SERVERS", ",".join(str(i) for i in range(CONSUL_SERVERS)))
    else:
        add("", f"consul://{hostports[0]}")
        add("_HTTP_ADDR", hostports[0])
        if kind == "consul-acl":
            add("_URL", f"consul://{info['token']}@{hostports[0]}")
            add("_TOKEN", info["token"])
            add("_MASTER_TOKEN", info["master_token"])
            add("_POLICY", info["policy"])
    if info.get("version"):
        add("_VERSION", info["version"])
    add("_MEMBERS", len(members))
    for m in members:
        # Every member has numbered keys (_0_PID, ...); a single-member kind
        # also has them unnumbered (_PID, ...).
        for k in ([""] if single else []) + [f"_{m['index']}"]:
            add(f"{k}_PID", m.get("pid"))
            for pname, port in m["ports"].items():
                add(f"{k}_PORT" if pname in ("client", "http") else f"{k}_{pname.upper()}_PORT", port)
            add(f"{k}_LOG", m["log"])
            if m.get("data_dir"):
                add(f"{k}_DATA_DIR", m["data_dir"])
            if m.get("config"):
                add(f"{k}_CONFIG", m["config"])
            if k:
                add(f"{k}_NAME", m["name"])
                hp = hostports[m["index"]]
                if kind.startswith("etcd"):
                    add(f"{k}_URL", ("etcds" if kind == "etcd-tls" else "etcd") + "://" + hp)
                    add(f"{k}_ENDPOINT", ("https" if kind == "etcd-tls" else "http") + "://" + hp)
                elif kind.startswith("zk"):
                    add(f"{k}_URL", ("zks" if kind in ZK_TLS_KINDS else "zk") + "://" + hp)
                elif kind in ("pg", "pgbouncer"):
                    add(f"{k}_URL", f"postgres://{hp}/{info['db']}")
                else:
                    add(f"{k}_URL", "consul://" + hp)
    return f


def server_version(inst: dict) -> str | None:
    kind = inst["kind"]
    try:
        if kind.startswith("etcd"):
            m = inst["members"][0]
            st, body = http_get(m["ports"]["client"], "/version", tls=m["ready"].get("tls"))
            return json.loads(body).get("etcdserver")
        if kind in ("pg", "pgbouncer"):
            binary = "pgbouncer" if kind == "pgbouncer" else os.path.join(pg_bindir(), "postgres")
            out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                                 stdin=subprocess.DEVNULL).stdout
            m = re.search(r"(\d+(?:\.\d+)+)", out)
            return m.group(1) if m else None
        if kind.startswith("zk"):
            m = inst["members"][0]
            out = zk_4lw(m["ports"]["client"], "srvr", tls=m["ready"].get("tls"))
            # Debian's build says "3.8.0-${mvngit.commit.id}, built on ...".
            m = re.search(r"^Zookeeper version: *(\d+(?:\.\d+)*)", out, re.M)
            return m.group(1) if m else None
        out = subprocess.run(["consul", "version"], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL).stdout
        m = re.search(r"Consul v(\S+)", out)
        return m.group(1) if m else None
    except Exception:  # a version is nice to have, never a failure
        return None


# ---------------------------------------------------------------------------
# the description of the backends (STATEDIR/backends.json)

# How long one step that waits on no expiry (a campaign that wins at once, an
# event, a hand-off after a resign) may take: a generous liveness bound on a
# loaded machine, not a speed claim (speed is measured in bench/).
LIVE_MS = 10_000
# What a bound adds to the backend's own worst case, for scheduling on a busy machine.
SLACK_MS = 5_000
# The session TTL of the tests where the backend allows it: renewals every TTL/3
# keep a leader on a loaded machine, and a killed leader's successor waits one TTL.
TEST_TTL_MS = 5_000


def duration_ms(text: str) -> int:
    """Milliseconds of a Go-style duration such as "1s" or "500ms"."""
    m = re.fullmatch(r"(\d+)(ms|s|m)", text.strip())
    if not m:
        raise HarnessError(f"cannot read the duration {text!r}")
    return int(m.group(1)) * {"ms": 1, "s": 1000, "m": 60_000}[m.group(2)]


def describe(statedir: str, instances: dict) -> dict:
    """The description of the backends for the tests of every language.

    Each entry of "backends" (keyed by `memory`, `local` and the harness kinds):
      family       memory, local, etcd, zk, consul or pg
      url          the base URL, without credentials (etcd-auth and consul-acl
                   have theirs in facts: USER, PASSWORD, TOKEN, and URL with them),
                   except pg and pgbouncer: the server admits no one without a
                   password, so their url has the test role's (facts: URL too)
                   a test's own namespace is `url + "/" + name`
      query        URL options every test adds (`?` + query), or ""
      urls         one URL per member
      ttl_ms       the session TTL tests use
      takeover_ms  how long a successor may take to win after the leader died
                   (SIGKILL), or its session was expired or cut off: the backend's
                   worst case to notice plus slack; a liveness bound, not a speed claim
      live_ms      how long any step that waits on no expiry may take
      quirks       the backend's own rules behind those numbers (below)
      facts        the kind's KEY=VALUE facts without the BALLOT_TEST_<KIND> prefix
    """
    out: dict[str, dict] = {}
    local_dir = os.path.join(statedir, "local")
    os.makedirs(local_dir, exist_ok=True)
    out["memory"] = {
        "family": "memory", "url": "memory://ballot-tests", "query": "", "urls": ["memory://ballot-tests"],
        "ttl_ms": TEST_TTL_MS, "takeover_ms": SLACK_MS, "live_ms": LIVE_MS,
        "quirks": {"in_process": "one store per process and host name; a session expires only when a test "
                                 "expires it (expire_session), and its successor wins at once"},
        "facts": {},
    }
    out["local"] = {
        "family": "local", "url": f"file://{local_dir}", "query": "", "urls": [f"file://{local_dir}"],
        "ttl_ms": TEST_TTL_MS, "takeover_ms": SLACK_MS, "live_ms": LIVE_MS,
        "quirks": {"single_host": "flock: the kernel frees a dead leader's lock at once"},
        "facts": {},
    }
    for kind, inst in instances.items():
        family = family_of(kind)
        facts = dict(instance_facts(inst))
        pre = inst["prefix"]
        url = facts[pre]
        n = len(inst["members"])
        urls = [facts[f"{pre}_{i}_URL"] for i in range(n)]
        if family == "pg":
            # Single member; PostgreSQL admits no one without a password (SCRAM).
            url = facts[f"{pre}_URL"]
            urls = [url]
        quirks: dict = {}
        query = ""
        ttl = TEST_TTL_MS
        if family == "etcd":
            # The leader checks leases for expiry about every 500 ms.
            takeover = ttl + 500 + SLACK_MS
        elif family == "pg":
            # A waiting candidate ends a dead leader's session once the server's
            # clock says it expired, at most a poll interval late.
            takeover = ttl + 1000 + SLACK_MS
            if kind == "pgbouncer":
                query = "pooler=transaction"
                quirks.update({"pooler": "transaction", "listen": False})
            else:
                quirks.update({"listen": True})
        elif family == "zk":
            tick = int(inst["info"].get("tick_ms") or 2000)
            # The server clamps a session timeout to 2..20 ticks and expires
            # sessions in buckets of one tick.
            ttl = min(max(ttl, 2 * tick), 20 * tick)
            quirks.update({"tick_ms": tick, "session_min_ms": 2 * tick, "session_max_ms": 20 * tick})
            takeover = ttl + tick + SLACK_MS
            if kind in ZK_TLS_KINDS:
                query = zk_tls_query(inst["info"]["tls"])
        else:
            ttl_min = duration_ms(inst["info"].get("session_ttl_min") or "10s")
            ttl = max(ttl, ttl_min)
            query = "lock_delay=0s"
            quirks.update({
                "ttl_min_ms": ttl_min,
                # Consul may keep an expired session up to twice its TTL.
                "expiry_factor": 2,
                # After a session is invalidated, Consul holds its locks for the
                # lock delay (15 s by default); tests ask for none.
                "lock_delay_query": "lock_delay=0s",
                "default_lock_delay_ms": 15_000,
            })
            takeover = 2 * ttl + SLACK_MS
            # Consul's default is 200; the other kinds raise it (see build_consul).
            quirks["http_max_conns_per_client"] = 200 if kind == "consul-default" else 8192
            if kind == "consul-cluster":
                quirks.update({"servers": CONSUL_SERVERS, "client_index": CONSUL_CLIENT, "raft_multiplier": 5})
        out[kind] = {
            "family": family, "url": url, "query": query, "urls": urls,
            "ttl_ms": ttl, "takeover_ms": takeover, "live_ms": LIVE_MS, "quirks": quirks,
            "facts": {k[len(pre) + 1:]: v for k, v in facts.items() if k.startswith(pre + "_")},
        }
    return {"version": 1, "backends": out}


# ---------------------------------------------------------------------------
# commands


REQUIRED_BINARIES = {"etcd": ["etcd", "etcdctl"], "zk": ["java"], "consul": ["consul"],
                     "pg": ["setpriv", "openssl"]}


def zk_tls_query(tls: dict) -> str:
    """The URL options that every test of `zk-tls` adds: the harness's CA and
    client certificate (the server requires one)."""
    from urllib.parse import quote
    return "&".join(f"{k}={quote(tls[k], safe='/')}" for k in ("ca", "cert", "key"))


def family_of(kind: str) -> str:
    if kind.startswith("etcd"):
        return "etcd"
    if kind.startswith("zk"):
        return "zk"
    if kind in ("pg", "pgbouncer"):
        return "pg"
    return "consul"


def check_binaries(kind: str) -> None:
    family = family_of(kind)
    missing = [b for b in REQUIRED_BINARIES[family] if shutil.which(b) is None]
    if kind == "pg":
        missing += [p for p in (os.path.join(pg_bindir(), b) for b in ("initdb", "postgres", "psql", "pg_isready"))
                    if not os.path.exists(p)]
    if kind == "pgbouncer" and shutil.which("pgbouncer") is None:
        missing.append("pgbouncer")
    if kind in ("etcd-tls", *ZK_TLS_KINDS) and shutil.which("openssl") is None:
        missing.append("openssl")
    if family == "zk":
        classpath = ZK_TLS_CLASSPATH if kind in ZK_TLS_KINDS else ZK_CLASSPATH
        missing += [p for p in classpath.split(":") if not os.path.exists(p)]
    if missing:
        raise HarnessError(f"{kind}: missing {', '.join(missing)}; run tests/servers/install.sh")


def cmd_start(args) -> int:
    kinds = list(dict.fromkeys(args.kinds))
    for k in kinds:
        check_binaries(k)
    st = State(args.dir)
    args.instances = st.instances  # pgbouncer is built in front of the pg of this state dir
    started: list[dict] = []
    popens: list[tuple[dict, subprocess.Popen]] = []
    ok = False
    try:
        out_insts = []
        for kind in kinds:
            old = st.instances.get(kind)
            if old is not None:
                if all(is_ours(m) for m in old["members"]):
                    log(f"{kind} is already running in {st.dir}; reusing it")
                    out_insts.append(old)
                    continue
                raise HarnessError(
                    f"{kind} was started in {st.dir} but is not fully running; "
                    f"use restart-member, or stop {kind} first")
            prefix, _ = KINDS[kind]
            inst = {"kind": kind, "prefix": prefix, "dir": st.dir, "members": [], "info": {}}
            BUILDERS[kind](inst, st.taken_ports(), args)
            st.instances[kind] = inst
            started.append(inst)
            out_insts.append(inst)
        for inst in started:
            for m in inst["members"]:
                popens.append((m, spawn(m)))
                log(f"started {m['name']} (pid {m['pid']}, ports "
                    + ", ".join(f"{k} {v}" for k, v in m["ports"].items()) + f"), log {m['log']}")
        st.save()  # so that `stop` finds them even if this process dies now
        wait_ready(popens, args.timeout)
        for inst in started:
            t_setup = time.time()
            setup(inst, args.timeout)
            inst["info"]["version"] = server_version(inst)
            inst["ready_after"] = round(max(m["ready_after"] for m in inst["members"])
                                        + time.time() - t_setup, 2)
            log(f"{inst['kind']}: up in {inst['ready_after']:.1f}s ({len(inst['members'])} member(s), setup included)")
        st.save()
        for inst in out_insts:
            for k, v in instance_facts(inst):
                print(fact_line(k, v))
        sys.stdout.flush()
        ok = True
        return 0
    finally:
        if not ok:
            with contextlib.suppress(Exception):
                stop_members([m for m, _ in popens])
            for inst in started:
                st.instances.pop(inst["kind"], None)
            with contextlib.suppress(Exception):
                st.save()
        st.close()


def cmd_stop(args) -> int:
    unknown = [k for k in args.kinds if k not in KINDS]
    if unknown:
        raise HarnessError(f"unknown kind {', '.join(unknown)}; expected one of {', '.join(KINDS)}")
    st = State(args.dir)
    try:
        kinds = args.kinds or list(st.instances)
        for kind in kinds:
            if kind not in st.instances:
                log(f"{kind}: not started in {st.dir}")
        insts = [st.instances[k] for k in kinds if k in st.instances]
        members = [m for inst in insts for m in inst["members"]]
        pids = {m["name"]: m.get("pid") for m in members}
        # An etcd leader that gets SIGTERM hands leadership to a peer first; if
        # its peers are stopping too, that hand-off hangs until SIGKILL. So the
        # members of an etcd cluster are stopped one after the other (each in
        # its own wave), everything else at once.
        waves: list[list[dict]] = []
        for inst in insts:
            serial = inst["kind"].startswith("etcd") and len(inst["members"]) > 1
            for i, m in enumerate(inst["members"]):
                w = i if serial else 0
                while len(waves) <= w:
                    waves.append([])
                waves[w].append(m)
        t0 = time.monotonic()
        result: dict[str, str] = {}
        try:
            for wave in waves:
                result.update(stop_members(wave))
        finally:
            for inst in insts:
                if not any(m.get("pid") for m in inst["members"]):
                    del st.instances[inst["kind"]]
            st.save()
        for m in members:
            log(f"{m['name']} (pid {pids[m['name']] or '-'}): {result[m['name']]}")
        if members:
            log(f"stopped {len(members)} process(es) in {time.monotonic() - t0:.1f}s")
        return 0
    finally:
        st.close()


def find_member(st: State, kind: str, index: int) -> tuple[dict, dict]:
    inst = st.instances.get(kind)
    if inst is None:
        raise HarnessError(f"{kind} was not started in {st.dir}")
    if not 0 <= index < len(inst["members"]):
        raise HarnessError(f"{kind} has members 0..{len(inst['members']) - 1}, not {index}")
    return inst, inst["members"][index]


def cmd_kill_member(args) -> int:
    st = State(args.dir)
    try:
        inst, m = find_member(st, args.kind, args.index)
        sig = signal.Signals["SIG" + args.signal.upper().removeprefix("SIG")]
        pid = m.get("pid")
        if not signal_member(m, sig):
            log(f"{m['name']}: not running")
        elif sig in (signal.SIGSTOP, signal.SIGCONT):
            log(f"{m['name']} (pid {pid}): sent {sig.name}")
        else:
            if not wait_gone(m, 10.0 if sig == signal.SIGKILL else STOP_GRACE):
                raise HarnessError(f"{m['name']} (pid {pid}) still running after {sig.name}")
            log(f"{m['name']} (pid {pid}): gone after {sig.name}")
            m["pid"] = None
        st.save()
        for k, v in instance_facts(inst):
            print(fact_line(k, v))
        return 0
    finally:
        st.close()


def cmd_pause_resume(args, sig: int) -> int:
    args.signal = signal.Signals(sig).name
    return cmd_kill_member(args)


def cmd_restart_member(args) -> int:
    st = State(args.dir)
    try:
        inst, m = find_member(st, args.kind, args.index)
        pid = m.get("pid")
        if is_ours(m):
            log(f"{m['name']} (pid {pid}): {stop_member(m)}")
        # The ports were the member's; wait briefly if the kernel still holds one.
        deadline = time.monotonic() + 10
        for port in m["ports"].values():
            while True:
                with socket.socket() as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        s.bind((HOST, port))
                        break
                    except OSError:
                        if time.monotonic() > deadline:
                            raise HarnessError(f"{m['name']}: port {port} is still in use")
                        time.sleep(0.2)
        p = spawn_again(m)
        log(f"restarted {m['name']} (pid {m['pid']})")
        st.save()
        try:
            p = wait_ready_again(m, p, args.timeout)
            setup(inst, args.timeout, restart=True)
        except BaseException:
            with contextlib.suppress(Exception):
                stop_member(m)
            st.save()
            raise
        st.save()
        for k, v in instance_facts(inst):
            print(fact_line(k, v))
        return 0
    finally:
        st.close()


def clear_stale_pidfile(member: dict) -> None:
    """PostgreSQL refuses to start while `postmaster.pid` names a live process.
    A postmaster killed with SIGKILL stays a zombie here (PID 1 reaps no
    orphans), and kill(pid, 0) says a zombie lives: remove a file whose PID is
    gone or a zombie."""
    path = os.path.join(member.get("data_dir") or "", "postmaster.pid")
    try:
        with open(path) as f:
            pid = int(f.readline().strip() or 0)
    except (OSError, ValueError):
        return
    if pid and proc_state(pid) in (None, "Z", "X"):
        with contextlib.suppress(OSError):
            os.unlink(path)


def spawn_again(member: dict) -> subprocess.Popen:
    if member.get("stop_signal") == "SIGINT":  # PostgreSQL
        clear_stale_pidfile(member)
    return spawn(member)


def wait_ready_again(member: dict, popen: subprocess.Popen, timeout: float) -> subprocess.Popen:
    """wait_ready; PostgreSQL restarted right after a SIGKILL may exit at once
    while the killed postmaster's backends still hold its shared memory (they
    leave within a second or so): such a member is started again until the
    timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            wait_ready([(member, popen)], max(1.0, deadline - time.monotonic()))
            return popen
        except HarnessError:
            if member.get("stop_signal") != "SIGINT" or popen.poll() is None or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
            popen = spawn_again(member)
            log(f"restarted {member['name']} again (pid {member['pid']})")


def cmd_status(args) -> int:
    st = State(args.dir)
    try:
        for kind, inst in st.instances.items():
            for m in inst["members"]:
                alive = is_ours(m)
                state = "down"
                if alive:
                    state = "paused" if proc_state(m["pid"]) == "T" else "running"
                    ok, detail = probe(m)
                    state += f", {'ready' if ok else 'not ready'} ({detail})"
                print(f"{kind} {m['index']} {m['name']} pid={m.get('pid') or '-'} {state}")
        return 0
    finally:
        st.close()


def cmd_env(args) -> int:
    st = State(args.dir)
    try:
        for inst in st.instances.values():
            for k, v in instance_facts(inst):
                print(fact_line(k, v))
        return 0
    finally:
        st.close()


def cmd_consul_leader(args) -> int:
    st = State(args.dir)
    try:
        inst = st.instances.get("consul-cluster")
        if inst is None:
            raise HarnessError(f"consul-cluster was not started in {st.dir}")
        try:
            index = consul_leader_index(inst)
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise HarnessError(f"consul-cluster: asking the client agent for the leader: {e}")
        if index is None:
            raise HarnessError("consul-cluster: no Raft leader now")
        print(index)
        return 0
    finally:
        st.close()


def default_describe_dir() -> str:
    """Where `describe` without --dir puts `local`: the same directory for every
    process of the user (a test's child processes must find their parent's local
    backend), each test using a subdirectory of its own."""
    return os.path.join(tempfile.gettempdir(), f"ballot-tests-{os.getuid()}")


def cmd_describe(args) -> int:
    statedir = args.dir or default_describe_dir()
    if args.dir and os.path.exists(os.path.join(args.dir, "state.json")):
        st = State(args.dir)
        try:
            st.save()
            instances = st.instances
        finally:
            st.close()
    else:
        os.makedirs(statedir, exist_ok=True)
        instances = {}
    print(json.dumps(describe(os.path.abspath(statedir), instances), indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="harness.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--dir", required=True, help="state directory (created if missing)")

    p = sub.add_parser("start", help="start one or more kinds (in parallel) and print KEY=VALUE facts")
    p.add_argument("kinds", nargs="+", choices=list(KINDS), metavar="KIND",
                   help="one or more of: " + ", ".join(KINDS))
    common(p)
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="readiness timeout, seconds")
    p.add_argument("--etcd-prefix", default="ballot/",
                   help="etcd-auth: key prefix the user 'ballot' may read and write (default ballot/)")
    p.add_argument("--zk-tick-ms", type=int, default=2000,
                   help="ZooKeeper tickTime; sessions may last 2..20 ticks (default 2000)")
    p.add_argument("--consul-session-ttl-min", default=None,
                   help="Consul session_ttl_min, e.g. 1s (Consul's default is 10s)")
    p.add_argument("--pg-max-connections", type=int, default=PG_MAX_CONNECTIONS,
                   help=f"pg: the server's max_connections (default {PG_MAX_CONNECTIONS}); a ballot client "
                        "holds one on a direct URL, plus one for LISTEN per process")
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("stop", help="stop every process started into STATEDIR (or those of KINDs)")
    # (no `choices`: argparse rejects an empty list against them)
    p.add_argument("kinds", nargs="*", metavar="KIND", help="default: every kind in STATEDIR")
    common(p)
    p.set_defaults(func=cmd_stop)

    for name, helptext in (("kill-member", "signal one member (default SIGKILL) and wait until it is gone"),
                           ("restart-member", "stop one member if it runs, start it again, wait until ready"),
                           ("pause-member", "SIGSTOP one member"),
                           ("resume-member", "SIGCONT one member")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("kind", choices=list(KINDS), metavar="KIND")
        p.add_argument("index", type=int, metavar="INDEX")
        common(p)
        if name == "kill-member":
            p.add_argument("--signal", default="KILL", help="KILL (default), TERM, INT, ...")
            p.set_defaults(func=cmd_kill_member)
        elif name == "restart-member":
            p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
            p.set_defaults(func=cmd_restart_member)
        elif name == "pause-member":
            p.set_defaults(func=lambda a: cmd_pause_resume(a, signal.SIGSTOP))
        else:
            p.set_defaults(func=lambda a: cmd_pause_resume(a, signal.SIGCONT))

    p = sub.add_parser("consul-leader", help="consul-cluster: print the index of the Raft leader server")
    common(p)
    p.set_defaults(func=cmd_consul_leader)

    p = sub.add_parser("status", help="show each member: running/paused/down, ready or not")
    common(p)
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("describe", help="print the description of the backends (STATEDIR/backends.json)")
    p.add_argument("--dir", default=None, help="state directory (default: $TMPDIR/ballot-tests-UID, no servers)")
    p.set_defaults(func=cmd_describe)
    p = sub.add_parser("env", help="print the KEY=VALUE facts of everything started into STATEDIR")
    common(p)
    p.set_defaults(func=cmd_env)

    args = ap.parse_args(argv)
    # On SIGTERM, unwind (so that a half-done `start` stops what it started).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        return args.func(args)
    except HarnessError as e:
        print(f"harness: error: {e}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
