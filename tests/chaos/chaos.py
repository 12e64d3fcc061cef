#!/usr/bin/env python3
"""ballot chaos suite: fault injection against real backends, and a checker.

Python 3.11, standard library only. Usually run through tests/chaos/run.sh.

    chaos.py run --bin PATH [--ci | --rounds N] [--backend local|etcd|zk|consul|pg ...]
                 [--seed S] [--candidates K] [--out DIR] [--slack S] [--tolerance-ms MS]
                 [--mode candidate|run --ballot PATH]
    chaos.py check DIR       (re-run the checker over the logs of one backend run)

Per backend it runs K candidate processes (`ballot-chaos`, tests/chaos/src/main.rs)
on one election. Each logs every change of its belief that it leads, stamped with
CLOCK_MONOTONIC (host-wide on Linux; `time.monotonic_ns()` here reads the same
clock), and, while it believes it leads, writes to a fenced store run by this
driver on 127.0.0.1. Between the candidates and the server sits one loopback TCP
proxy per candidate and server member, which this driver can blackhole or reset.
Faults are drawn in random order from a fixed seed (printed; `--seed` replays the
same sequence of faults). After the run, the checker reads the logs and reports
violations; the exit status is 1 if there is any. See tests/chaos/README.md.

In `--mode run`, each candidate is a `ballot run --requeue` process instead, whose
command is a shell wrapper that forks the writer (`ballot-chaos writer`), which
writes to the fenced store until it is killed. The writer tells the store its pid
and its ancestors below `ballot run`; the driver watches their deaths (pidfds), and
the checker takes each such tree, from its first write to the death of its last
process, for a leadership: two trees alive at once, or a write from a tree while
another tree of a higher term runs, is a violation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import random
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse

HOST = "127.0.0.1"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
HARNESS = os.path.join(ROOT, "tests", "servers", "harness.py")


def now_ns() -> int:
    return time.monotonic_ns()


def say(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------
# backends

# expiry_ms: the longest time after a leader's last acknowledged keepalive at which
# the server may still keep its session (so the earliest other leader can be later
# than the fault by up to this); the failover bound is expiry + margin + slack.
BACKENDS = {
    "local": {
        "kind": None, "env": None, "scheme": "file", "ttl_ms": 3000,
        "faults": {"kill": 3, "term": 2, "pause": 2},
        "skipped": {"blackhole": "no server connection to cut", "reset": "no server connection to cut",
                    "expire": "no session: the kernel frees the lock of a dead holder",
                    "restart": "no server", "crash": "no server"},
    },
    "etcd": {
        "kind": "etcd-cluster", "env": "BALLOT_TEST_ETCD_CLUSTER", "scheme": "etcd", "ttl_ms": 3000,
        "faults": {"kill": 3, "term": 1, "pause": 2, "blackhole": 2, "reset": 2, "expire": 2, "restart": 2,
                   "crash": 1},
        "skipped": {},
    },
    "zk": {
        "kind": "zk-ensemble", "env": "BALLOT_TEST_ZK_ENSEMBLE", "scheme": "zk", "ttl_ms": 4000,
        "faults": {"kill": 3, "term": 1, "pause": 2, "blackhole": 2, "reset": 2, "expire": 2, "restart": 2,
                   "crash": 1},
        "skipped": {},
    },
    "zk-tls": {
        # The zk backend over TLS: 3 nodes that serve clients only on their
        # `secureClientPort`; the proxies forward the TLS bytes untouched.
        "kind": "zk-tls-ensemble", "env": "BALLOT_TEST_ZK_TLS_ENSEMBLE", "scheme": "zks", "ttl_ms": 4000,
        "tls_query": True,
        "faults": {"kill": 3, "term": 1, "pause": 2, "blackhole": 2, "reset": 2, "expire": 2, "restart": 2,
                   "crash": 1},
        "skipped": {},
    },
    "consul": {
        "kind": "consul", "env": "BALLOT_TEST_CONSUL", "scheme": "consul", "ttl_ms": 10000,
        "query": "?lock_delay=0s",
        # `consul agent -dev` keeps its state in memory: a restart wipes every key,
        # session and index, so terms start again from small numbers. DESIGN.md
        # promises increasing terms only across restarts with persisted data.
        "wipes": True,
        "faults": {"kill": 2, "term": 2, "pause": 1, "blackhole": 1, "reset": 2, "expire": 2, "restart": 2,
                   "crash": 1},
        "skipped": {},
    },
    "consul-cluster": {
        # Consul as deployed: 3 servers with their data on disk (members 0-2) and the
        # client agent (member 3) that every candidate talks to, through its proxy.
        # `restart` and `crash` hit a server or the client agent; nothing is wiped.
        "kind": "consul-cluster", "env": "BALLOT_TEST_CONSUL_CLUSTER", "scheme": "consul", "ttl_ms": 10000,
        "query": "?lock_delay=0s",
        "via_client": True,
        "faults": {"kill": 2, "term": 1, "pause": 1, "blackhole": 1, "reset": 1, "expire": 1, "restart": 2,
                   "crash": 2},
        "skipped": {},
    },
    "pg": {
        "kind": "pg", "env": "BALLOT_TEST_PG", "scheme": "postgres", "ttl_ms": 3000,
        # Even slots (c0, c2, c4) connect to PostgreSQL directly (LISTEN/NOTIFY); odd
        # slots (c1, c3) go through PgBouncer in transaction mode (`pooler=transaction`:
        # they poll). `pooler` restarts PgBouncer.
        "pooler": ("pgbouncer", "BALLOT_TEST_PGBOUNCER"),
        "faults": {"kill": 3, "term": 1, "pause": 2, "blackhole": 2, "reset": 2, "expire": 2, "restart": 2,
                   "pooler": 2},
        # The harness runs PostgreSQL with fsync=off and synchronous_commit=off (a clean
        # stop writes everything; a SIGKILL of the postmaster may lose the last commits).
        "skipped": {"crash": "synchronous_commit=off in the harness: a SIGKILL may lose commits (terms)"},
    },
}
FAULT_KINDS = ["kill", "term", "pause", "blackhole", "reset", "expire", "restart", "crash", "pooler"]
CI_FAULTS = 20
# Run mode: `ballot run --grace`. Short, so that a `term` fault of a wrapper that
# ignores SIGTERM does not hold the election for long.
RUN_GRACE_MS = 1000


def die_with_parent() -> None:
    """In a forked child before exec: SIGKILL when this driver dies (PR_SET_PDEATHSIG;
    the driver forks from its main thread, which lives as long as it does)."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1


def descendants(root: int) -> list[int]:
    """The live descendants of `root`, from /proc."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if fields and fields[0] not in ("Z", "X"):
            children.setdefault(int(fields[1]), []).append(int(name))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def expiry_ms(backend: str, ttl_ms: int) -> int:
    if backend == "local":
        return 0
    if backend.startswith("zk"):
        return ttl_ms + 1000  # ZooKeeper expires a session up to one tick (1 s) late
    if backend.startswith("consul"):
        return 2 * ttl_ms  # Consul keeps a silent session for TTL to 2 x TTL; lock_delay=0s
    if backend == "pg":
        # The server's clock ends a session TTL after its last renewal; the first waiting
        # candidate looks again 20 ms after that (direct) or within 100 ms (through
        # PgBouncer) and takes its term in one statement: 0.5 s for that look.
        return ttl_ms + 500
    return ttl_ms + 1000  # etcd: a lease outlives its TTL by up to one raft election


# ---------------------------------------------------------------------------
# loopback TCP proxy


class Proxy:
    """Forwards 127.0.0.1:<port> to 127.0.0.1:<target>. Modes: pass, blackhole
    (nothing is read or forwarded, connections stay open; new ones are accepted and
    held), reset (every connection is closed with RST, new ones too)."""

    def __init__(self, target: int, name: str):
        self.target = target
        self.name = name
        self.mode = "pass"
        self.healed = asyncio.Event()
        self.healed.set()
        self.conns: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = set()
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, HOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    @staticmethod
    def _rst(w: asyncio.StreamWriter | None) -> None:
        if w is None:
            return
        sock = w.get_extra_info("socket")
        with contextlib.suppress(OSError):
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        w.transport.abort()

    async def _client(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        if self.mode == "reset":
            self._rst(w)
            return
        await self.healed.wait()
        if self.mode == "reset":
            self._rst(w)
            return
        try:
            ur, uw = await asyncio.wait_for(asyncio.open_connection(HOST, self.target), 5)
        except (OSError, asyncio.TimeoutError):
            self._rst(w)
            return
        pair = (w, uw)
        self.conns.add(pair)
        try:
            await asyncio.gather(self._pump(r, uw), self._pump(ur, w))
        finally:
            self.conns.discard(pair)
            self._rst(w)
            self._rst(uw)

    async def _pump(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self.healed.wait()
                data = await r.read(65536)
                if not data:
                    break
                await self.healed.wait()  # read just before a cut: held until healed
                w.write(data)
                await w.drain()
        except (OSError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._rst(w)

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        if mode == "pass":
            self.healed.set()
        else:
            self.healed.clear()
        if mode == "reset":
            for a, b in list(self.conns):
                self._rst(a)
                self._rst(b)
            self.conns.clear()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for a, b in list(self.conns):
            self._rst(a)
            self._rst(b)
        self.healed.set()


# ---------------------------------------------------------------------------
# the fenced store


class Store:
    """Accepts `W <id> <term> <seq>` only when term >= the highest term seen."""

    def __init__(self, path: str, on_hello=None):
        self.on_hello = on_hello  # run mode: called with (id, term, pids, receive time)
        self.max_term = 0
        self.f = open(path, "a", buffering=1)
        self.accepted = 0
        self.refused = 0
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, HOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _client(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await r.readline()
                if not line:
                    break
                t = now_ns()
                parts = line.decode("utf-8", "replace").split()
                if len(parts) >= 5 and parts[0] == "H" and self.on_hello is not None:
                    # `H <id> <term> <supervisor pid> <pid> <ancestor pids...>`: a writer of the
                    # run mode starts.
                    self.on_hello(parts[1], int(parts[2]), int(parts[3]), [int(x) for x in parts[4:]], t)
                    w.write(b"OK\n")
                    await w.drain()
                    continue
                if len(parts) != 4 or parts[0] != "W":
                    w.write(b"ERR\n")
                    continue
                _, who, term_s, seq = parts
                term = int(term_s)
                ok = term >= self.max_term
                if ok:
                    self.max_term = term
                    self.accepted += 1
                else:
                    self.refused += 1
                self.f.write(json.dumps({"t": t, "id": who, "term": term, "seq": int(seq), "ok": ok}) + "\n")
                w.write(f"{'OK' if ok else 'STALE'} {self.max_term}\n".encode())
                await w.drain()
        except (OSError, ValueError, ConnectionError):
            pass
        finally:
            w.close()

    def reset(self, why: str) -> None:
        """Forgets the highest term: the backend's data was wiped (a new epoch)."""
        self.max_term = 0
        self.f.write(json.dumps({"t": now_ns(), "reset": why}) + "\n")

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        self.f.close()


# ---------------------------------------------------------------------------
# candidates


class Proc:
    def __init__(self, slot: int, inc: int, log: str):
        self.slot = slot
        self.inc = inc
        self.id = f"c{slot}.{inc}"
        self.log = log
        self.popen: asyncio.subprocess.Process | None = None
        self.pos = 0
        self.buf = b""
        self.term: int | None = None  # believed term, None if not leading
        self.paused = False
        self.alive = False
        self.stopping = False  # the driver signalled it to stop (run mode)
        self.frozen: list[int] = []  # run mode: the tree's pids stopped with it

    def poll_log(self) -> list[dict]:
        out = []
        try:
            with open(self.log, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return out
        self.pos += len(data)
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        for ln in lines:
            with contextlib.suppress(ValueError):
                rec = json.loads(ln)
                out.append(rec)
                if rec.get("ev") == "lead":
                    self.term = rec["term"]
                elif rec.get("ev") == "unlead":
                    self.term = None
        return out


class Run:
    """One backend's run: servers, proxies, store, candidates, faults."""

    def __init__(self, backend: str, args, servers: "Servers", rng: random.Random, out: str):
        self.b = backend
        self.cfg = BACKENDS[backend]
        self.args = args
        self.servers = servers
        self.rng = rng
        self.out = out
        self.ttl_ms = self.cfg["ttl_ms"]
        self.margin_ms = self.ttl_ms // 5
        self.expiry_ms = expiry_ms(backend, self.ttl_ms)
        self.bound_ms = self.expiry_ms + self.margin_ms + int(args.slack * 1000)
        self.election = f"chaos-{backend}-{args.seed}-{os.getpid()}-{int(time.time())}"
        self.procs: dict[int, Proc] = {}
        self.proxies: dict[int, list[Proxy]] = {}
        self.events = open(os.path.join(out, "driver.jsonl"), "a", buffering=1)
        self.run_mode = getattr(args, "mode", "candidate") == "run"
        self.store = Store(os.path.join(out, "store.jsonl"), self.on_hello if self.run_mode else None)
        # Run mode: (candidate id, term, writer pid) -> {"pids": live pids of the tree, "writer": pid}.
        # The writer's pid is in the key because after a Consul wipe a `ballot run` can win
        # the same term number again, with a new tree.
        self.trees: dict[tuple[str, int, int], dict] = {}
        self.t_start = time.monotonic()
        self.tailer: asyncio.Task | None = None
        self.members: list[int] = []
        self.max_secs = 0

    def ev(self, ev: str, **kw) -> dict:
        rec = {"t": now_ns(), "ev": ev, **kw}
        self.events.write(json.dumps(rec) + "\n")
        return rec

    def elapsed(self) -> str:
        return f"{time.monotonic() - self.t_start:6.1f}s"

    # --- candidates

    def url(self, slot: int) -> str:
        if self.b == "local":
            url = f"file://{os.path.join(self.out, 'local-backend')}"
            return url + (f"?ttl={self.ttl_ms}ms&margin={self.margin_ms}ms" if self.run_mode else "")
        hosts = ",".join(f"{HOST}:{p.port}" for p in self.proxies[slot])
        if self.b == "pg":
            env, var = self.servers.env, self.cfg["env"]
            url = f"postgres://{env[var + '_USER']}:{env[var + '_PASSWORD']}@{hosts}/{env[var + '_DB']}" \
                  f"?pooler={'transaction' if self.pooled(slot) else 'none'}"
        elif self.cfg.get("tls_query"):
            # The harness's CA and client certificate (the servers require one).
            env, var = self.servers.env, self.cfg["env"]
            files = "&".join(f"{k}={urllib.parse.quote(env[f'{var}_{k.upper()}'], safe='/')}"
                             for k in ("ca", "cert", "key"))
            url = f"{self.cfg['scheme']}://{hosts}?{files}"
        else:
            url = f"{self.cfg['scheme']}://{hosts}{self.cfg.get('query', '')}"
        if self.run_mode:
            # `ballot run` takes its TTL and margin from the URL.
            url += ("&" if "?" in url else "?") + f"ttl={self.ttl_ms}ms&margin={self.margin_ms}ms"
        return url

    def pooled(self, slot: int) -> bool:
        """pg: odd slots reach PostgreSQL through PgBouncer (transaction pooling)."""
        return bool(self.cfg.get("pooler")) and slot % 2 == 1

    async def spawn(self, slot: int) -> Proc:
        inc = self.procs[slot].inc + 1 if slot in self.procs else 0
        p = Proc(slot, inc, os.path.join(self.out, f"c{slot}.{inc}.jsonl"))
        argv = [self.args.bin, "--url", self.url(slot), "--election", self.election, "--id", p.id,
                "--log", p.log, "--store", f"{HOST}:{self.store.port}", "--ttl-ms", str(self.ttl_ms),
                "--margin-ms", str(self.margin_ms), "--tick-ms", "20", "--max-secs", str(self.max_secs)]
        if self.args.unsafe:
            argv.append("--unsafe-ignore-loss")
        extra = {}
        if self.run_mode:
            writer = " ".join(shlex.quote(a) for a in [self.args.bin, "writer", "--store", f"{HOST}:{self.store.port}",
                                                        "--id", p.id, "--tick-ms", "20"])
            # Half the wrappers (and so their writers) ignore SIGTERM: only SIGKILL stops them.
            trap = "trap '' TERM; " if slot % 2 else ""
            argv = [self.args.ballot, "--backend", self.url(slot), "run", self.election, "--value", p.id,
                    "--grace", f"{RUN_GRACE_MS}ms", "--requeue", "--", "sh", "-c", f"{trap}{writer} & wait"]
            # `ballot run` has no --max-secs: it dies with this driver (and its tree with it).
            extra["preexec_fn"] = die_with_parent
        errf = open(os.path.join(self.out, f"c{slot}.{inc}.stderr"), "ab")
        p.popen = await asyncio.create_subprocess_exec(*argv, stdin=subprocess.DEVNULL, stdout=errf, stderr=errf,
                                                       start_new_session=True, **extra)
        errf.close()
        p.alive = True
        self.procs[slot] = p
        self.ev("spawn", proc=p.id, pid=p.popen.pid)
        return p

    def signal_proc(self, p: Proc, sig: int, ev: str) -> None:
        if p.popen is None or p.popen.returncode is not None:
            return
        self.ev(ev, proc=p.id, pid=p.popen.pid)  # logged before the signal: the stamp is no later than it
        if sig in (signal.SIGKILL, signal.SIGTERM):
            p.stopping = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.popen.pid, sig)

    async def reap(self, p: Proc, timeout: float) -> None:
        if p.popen is None:
            return
        try:
            await asyncio.wait_for(p.popen.wait(), timeout)
        except asyncio.TimeoutError:
            self.signal_proc(p, signal.SIGCONT, "resume")
            self.signal_proc(p, signal.SIGKILL, "kill")
            await asyncio.wait_for(p.popen.wait(), 10)
        p.alive = False
        self.ev("exited", proc=p.id, code=p.popen.returncode)

    async def tail(self) -> None:
        while True:
            for p in list(self.procs.values()):
                p.poll_log()
                if self.run_mode and p.alive and p.popen is not None and p.popen.returncode is not None \
                        and not p.stopping:
                    # `ballot run --requeue` stays in the election until told to stop.
                    p.alive = False
                    self.ev("exited_by_itself", proc=p.id, code=p.popen.returncode)
                    say(f"[{self.b} {self.elapsed()}] {p.id} exited by itself ({p.popen.returncode}); replacing it")
                    await self.spawn(p.slot)
            await asyncio.sleep(0.02)

    # --- run mode: the process trees of `ballot run`

    def on_hello(self, pid: str, term: int, supervisor: int, pids: list[int], t: int) -> None:
        key = (pid, term, pids[0])
        if key in self.trees:
            return  # a writer that reconnected
        tree = {"pids": set(), "writer": pids[0]}
        self.trees[key] = tree
        self.events.write(json.dumps({"t": t, "ev": "hello", "proc": pid, "term": term, "pids": pids,
                                      "supervisor": supervisor}) + "\n")
        loop = asyncio.get_running_loop()
        for q in pids + ([supervisor] if supervisor else []):
            try:
                fd = os.pidfd_open(q)
            except ProcessLookupError:
                self.ev("died", proc=pid, term=term, writer=pids[0], pid=q, late=True)
                continue
            tree["pids"].add(q)
            loop.add_reader(fd, self.on_died, fd, key, q)
        owner = next((p for p in self.procs.values() if p.id == pid), None)
        if owner is not None and tree["writer"] in tree["pids"]:
            owner.term = term

    def on_died(self, fd: int, key: tuple[str, int, int], q: int) -> None:
        asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)
        pid, term, writer = key
        self.ev("died", proc=pid, term=term, writer=writer, pid=q)
        tree = self.trees[key]
        tree["pids"].discard(q)
        owner = next((p for p in self.procs.values() if p.id == pid), None)
        if q == tree["writer"] and owner is not None and owner.term == term:
            owner.term = None

    def close_trees(self) -> None:
        for key, tree in self.trees.items():
            if tree["pids"]:
                self.ev("untracked", proc=key[0], term=key[1], writer=key[2], pids=sorted(tree["pids"]))

    def leaders(self) -> list[Proc]:
        return [p for p in self.procs.values() if p.alive and not p.paused and p.term is not None]

    async def wait_leader(self, timeout: float, stable: float = 0.3) -> Proc | None:
        """A single leader that stays for `stable` seconds, or None after `timeout`."""
        deadline = time.monotonic() + timeout
        since = None
        cur = None
        while time.monotonic() < deadline:
            ls = self.leaders()
            if len(ls) == 1 and ls[0] is cur:
                if since is not None and time.monotonic() - since >= stable:
                    # Read the logs once more: the tailer reads them every 20 ms, and
                    # the next fault must not start in a gap that has just begun.
                    for p in self.procs.values():
                        p.poll_log()
                    if self.leaders() == [cur]:
                        return cur
                    continue
            else:
                cur = ls[0] if len(ls) == 1 else None
                since = time.monotonic() if cur else None
            await asyncio.sleep(0.02)
        return None

    # --- servers

    async def harness(self, *cmd: str) -> float:
        t0 = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, HARNESS, *cmd, "--dir", self.servers.dir, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 90)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise RuntimeError(f"harness {' '.join(cmd)}: timed out")
        if proc.returncode != 0:
            raise RuntimeError(f"harness {' '.join(cmd)} failed: {err.decode(errors='replace')[-2000:]}")
        return time.monotonic() - t0

    # --- faults

    async def fault(self, n: int, kind: str) -> dict:
        """Injects one fault; returns its record (t0, heal, target...)."""
        rec: dict = {"n": n, "kind": kind}
        if self.b == "local" and kind not in ("kill", "term", "pause"):
            raise RuntimeError(f"fault {kind} does not apply to the local backend")
        leader = await self.wait_leader(self.bound_ms / 1000 + 10)
        if leader is None:
            rec["no_leader_before"] = True
        target = leader
        rec["leader"] = leader.id if leader else None
        rec["leader_term"] = leader.term if leader else None
        desc = ""
        if kind in ("kill", "term", "pause") and target is None:
            kind = rec["kind"] = "restart" if self.b != "local" else kind
        if kind in ("blackhole", "reset") and (target is None or self.rng.random() < 0.25):
            others = [p for p in self.procs.values() if p is not target]
            target = self.rng.choice(others)
        if kind in ("kill", "term") and target is not None:
            # SIGKILL, or SIGTERM (the candidate resigns); a new incarnation replaces it.
            sig, reap_s = (signal.SIGKILL, 10) if kind == "kill" else (signal.SIGTERM, 8)
            t0 = self.ev("fault", n=n, kind=kind, target=target.id)["t"]
            self.signal_proc(target, sig, kind)
            await self.reap(target, reap_s)
            await self.spawn(target.slot)
            rec.update(t0=t0, heal=t0, target=target.id)
        elif kind == "pause" and target is not None:
            dur = (self.ttl_ms + 1000 + self.rng.randrange(1000)) / 1000 if self.b != "local" \
                else 1 + self.rng.random()
            t0 = self.ev("fault", n=n, kind=kind, target=target.id, secs=dur)["t"]
            target.paused = True
            self.signal_proc(target, signal.SIGSTOP, "pause")
            if self.run_mode:
                # The whole candidate freezes, like a stopped VM: `ballot run` and its tree.
                target.frozen = descendants(target.popen.pid)
                for q in target.frozen:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(q, signal.SIGSTOP)
            await asyncio.sleep(dur)
            target.paused = False
            heal = self.ev("resume", proc=target.id, pid=target.popen.pid)["t"]
            for q in [target.popen.pid] + target.frozen:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(q, signal.SIGCONT)
            target.frozen = []
            rec.update(t0=t0, heal=heal, target=target.id, secs=round(dur, 2))
            desc = f" for {dur:.1f}s"
        elif kind in ("blackhole", "reset") or (kind == "expire" and self.b.startswith("zk")):
            if kind == "expire":
                dur = (self.ttl_ms + 2500) / 1000  # past the server's session expiry
                mode = "blackhole"
            elif kind == "blackhole":
                dur = self.ttl_ms * (0.3 + 1.2 * self.rng.random()) / 1000
                mode = "blackhole"
            else:
                dur = 0.5 + self.rng.random()
                mode = "reset"
            if target is None:
                target = self.rng.choice(list(self.procs.values()))
            t0 = self.ev("fault", n=n, kind=kind, target=target.id, mode=mode, secs=dur)["t"]
            for px in self.proxies[target.slot]:
                px.set_mode(mode)
            await asyncio.sleep(dur)
            for px in self.proxies[target.slot]:
                px.set_mode("pass")
            heal = self.ev("heal", n=n)["t"]
            rec.update(t0=t0, heal=heal, target=target.id, secs=round(dur, 2))
            desc = f" {mode} {dur:.1f}s"
        elif kind == "expire":
            t0 = self.ev("fault", n=n, kind=kind, target=target.id if target else None)["t"]
            what = await asyncio.to_thread(self.expire_leader)
            heal = self.ev("heal", n=n, what=what)["t"]
            rec.update(t0=t0, heal=heal, target=target.id if target else None, what=what)
            desc = f" ({what})"
        elif kind in ("restart", "crash"):
            i = self.rng.randrange(len(self.members))
            t0 = self.ev("fault", n=n, kind=kind, member=i)["t"]
            if kind == "restart":
                took = await self.harness("restart-member", self.cfg["kind"], str(i))
            else:
                await self.harness("kill-member", self.cfg["kind"], str(i))
                await asyncio.sleep(1 + 2 * self.rng.random())
                took = await self.harness("restart-member", self.cfg["kind"], str(i))
            heal = self.ev("heal", n=n)["t"]
            rec.update(t0=t0, heal=heal, member=i)
            if self.cfg.get("wipes"):
                rec["wipe"] = True
                self.store.reset(f"fault {n}: {kind} wiped the server's data")
            desc = f" member {i} (restart took {took:.1f}s)"
            if self.cfg.get("wipes"):
                desc += "; data wiped: terms and the fence start again"
        elif kind == "pooler":
            # PgBouncer goes away: restarted (SIGTERM: it closes every client connection),
            # or, 1 in 2, SIGKILLed and down for 1..3 s. It keeps no state.
            pkind = self.cfg["pooler"][0]
            crash = self.rng.random() < 0.5
            down = 1 + 2 * self.rng.random() if crash else 0.0
            t0 = self.ev("fault", n=n, kind=kind, member=pkind, crash=crash, secs=round(down, 2))["t"]
            if crash:
                await self.harness("kill-member", pkind, "0")
                await asyncio.sleep(down)
            took = await self.harness("restart-member", pkind, "0")
            heal = self.ev("heal", n=n)["t"]
            rec.update(t0=t0, heal=heal, member=pkind, crash=crash)
            desc = f"{pkind} " + (f"SIGKILL, down {down:.1f}s, " if crash else "") + f"restart took {took:.1f}s"
        else:
            # No leader to aim at (the checker reports it): go on with the next fault.
            self.ev("fault", n=n, kind=kind, target=None, skipped="no leader")
            rec.update(desc=" skipped: no leader to aim at")
            return rec
        healed_counts = kind in ("restart", "crash", "pooler") or (kind == "pause" and self.b == "local")
        rec["anchor"] = rec["heal"] if healed_counts else rec["t0"]
        rec["desc"] = desc
        return rec

    def expire_leader(self) -> str:
        """Ends the leader's session on the server: etcd lease revoke, Consul session destroy."""
        env = self.servers.env
        if self.b == "etcd":
            eps = env["BALLOT_TEST_ETCD_CLUSTER_ENDPOINTS"]
            out = subprocess.run(["etcdctl", "--endpoints", eps, "get", self.election + "/", "--prefix",
                                  "--sort-by=CREATE", "--order=ASCEND", "--keys-only"],
                                 capture_output=True, text=True, timeout=20, env={**os.environ, "ETCDCTL_API": "3"})
            keys = [k for k in out.stdout.split() if k.strip()]
            if not keys:
                return "no leader key"
            lease = keys[0].rsplit("/", 1)[1]
            r = subprocess.run(["etcdctl", "--endpoints", eps, "lease", "revoke", lease], capture_output=True,
                               text=True, timeout=20, env={**os.environ, "ETCDCTL_API": "3"})
            return f"lease revoke {lease}: {(r.stdout or r.stderr).strip()}"
        if self.b.startswith("consul"):
            host, port = env[self.cfg["env"] + "_HTTP_ADDR"].rsplit(":", 1)
            c = http.client.HTTPConnection(host, int(port), timeout=10)
            try:
                c.request("GET", f"/v1/kv/{self.election}/.lock")
                r = c.getresponse()
                body = r.read()
                if r.status != 200:
                    return f"no lock key ({r.status})"
                sess = (json.loads(body)[0] or {}).get("Session")
                if not sess:
                    return "lock not held"
                c.request("PUT", f"/v1/session/destroy/{sess}")
                r = c.getresponse()
                r.read()
                return f"session destroy {sess[:8]}: {r.status}"
            finally:
                c.close()
        if self.b == "pg":
            return self.expire_pg_session()
        return "n/a"

    def expire_pg_session(self) -> str:
        """PostgreSQL: the leader's session row expires now by the server's clock
        (`expires_at = clock_timestamp()`), the state a session reaches TTL after its
        last renewal. Nothing else is done, as the server does nothing else: the
        leader's next renewal fails (an expired session never comes back), and the
        first waiting candidate sweeps the session at its next look. On the
        PostgreSQL server directly, not through any candidate's proxy."""
        env, var = self.servers.env, self.cfg["env"]
        e = self.election.replace("'", "''")
        sql = f"""
            WITH l AS (
                SELECT c.session_id, c.term, convert_from(c.value, 'UTF8') AS who
                FROM ballot.candidates c JOIN ballot.sessions s ON s.id = c.session_id
                WHERE c.election = '{e}' AND s.expires_at > clock_timestamp()
                ORDER BY c.id LIMIT 1),
            u AS (
                UPDATE ballot.sessions s SET expires_at = clock_timestamp()
                FROM l WHERE s.id = l.session_id AND l.term IS NOT NULL
                RETURNING s.id)
            SELECT l.session_id, coalesce(l.term::text, 'none'), l.who, (SELECT count(*) FROM u) FROM l;
        """
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", " ", "-v", "ON_ERROR_STOP=1",
                            "-d", env[f"{var}_URL"]], input=sql, capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            return f"psql failed: {r.stderr.strip()[-300:]}"
        row = r.stdout.split()
        if len(row) != 4:
            return "no leader row"
        sess, term, who, n = row
        return f"session {sess} of {who} (term {term}) expired now" if n == "1" else \
            f"first candidate {who} has no term: nothing expired"

    # --- the run

    async def main(self, n_faults: int) -> list[dict]:
        cfg = self.cfg
        # The candidates stop by themselves after this.
        self.max_secs = int(n_faults * (self.bound_ms / 1000 + 30) + 120)
        await self.store.start()
        if cfg["kind"]:
            env = self.servers.env
            self.members = [int(env[f"{cfg['env']}_{i}_PORT"]) for i in range(int(env[f"{cfg['env']}_MEMBERS"]))]
            pooler_port = int(env[f"{cfg['pooler'][1]}_PORT"]) if cfg.get("pooler") else 0
            for slot in range(self.args.candidates):
                self.proxies[slot] = []
                targets = [pooler_port] if self.pooled(slot) else self.members
                if cfg.get("via_client"):
                    # One agent per URL: the client agent, as applications on a host have.
                    targets = [int(env[f"{cfg['env']}_HTTP_ADDR"].rsplit(":", 1)[1])]
                for i, port in enumerate(targets):
                    px = Proxy(port, f"c{slot}->{'pooler' if self.pooled(slot) else 'm'}{i}")
                    await px.start()
                    self.proxies[slot].append(px)
        self.tailer = asyncio.create_task(self.tail())
        kinds = cfg["faults"]
        if self.args.faults:
            unknown = set(self.args.faults) - set(kinds)
            if unknown:
                raise RuntimeError(f"fault(s) {sorted(unknown)} do not apply to {self.b}; it has {sorted(kinds)}")
            kinds = {k: w for k, w in kinds.items() if k in self.args.faults}
        if cfg.get("pooler"):
            say(f"[{self.b}] candidates in odd slots go through {cfg['pooler'][0]} (pooler=transaction), "
                f"the others connect directly")
        say(f"[{self.b} {self.elapsed()}] election {self.election}; {self.args.candidates} candidates; "
            f"ttl {self.ttl_ms} ms, margin {self.margin_ms} ms, failover bound {self.bound_ms} ms; "
            f"faults: {', '.join(kinds)}")
        for k, why in cfg["skipped"].items():
            say(f"[{self.b}] skipping fault '{k}': {why}")
        faults: list[dict] = []
        try:
            for slot in range(self.args.candidates):
                await self.spawn(slot)
            first = await self.wait_leader(30 + self.bound_ms / 1000)
            if first is None:
                raise RuntimeError("no leader within 30 s of start")
            say(f"[{self.b} {self.elapsed()}] first leader {first.id} term {first.term}")
            names = list(kinds)
            weights = [kinds[k] for k in names]
            for n in range(1, n_faults + 1):
                kind = self.rng.choices(names, weights)[0]
                t_fault = time.monotonic()
                rec = await self.fault(n, kind)
                faults.append(rec)
                self.save(faults)
                if rec.get("wipe"):
                    # Every old session is gone, but a client learns it only at its next
                    # renewal (TTL/3): until then the old leader still believes it leads.
                    await asyncio.sleep(self.ttl_ms / 3000 + 1)
                new = await self.wait_leader(self.bound_ms / 1000 + 10)
                if new is not None and "t0" in rec:
                    # The checker follows a leaderless gap that opens after this moment
                    # past the next fault's start (see check(), rule 4).
                    self.ev("recovered", n=n, proc=new.id, term=new.term)
                took = (now_ns() - rec.get("t0", now_ns())) / 1e6
                who = f"{new.id} term {new.term}" if new else "NONE"
                say(f"[{self.b} {self.elapsed()}] fault {n}/{n_faults}: {rec['kind']} "
                    f"{rec.get('target') or ''}{rec['desc']} (leader was {rec['leader']} term {rec['leader_term']})"
                    f" -> leader {who}, {took:.0f} ms after the fault; step {time.monotonic() - t_fault:.1f}s")
                await asyncio.sleep(0.2 + 0.6 * self.rng.random())
        finally:
            self.ev("stop_all")
            for p in self.procs.values():
                self.signal_proc(p, signal.SIGCONT, "resume") if p.paused else None
                for q in p.frozen:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(q, signal.SIGCONT)
                self.signal_proc(p, signal.SIGTERM, "term")
            for p in self.procs.values():
                with contextlib.suppress(Exception):
                    await self.reap(p, 8)
            if self.tailer:
                self.tailer.cancel()
            if self.run_mode:
                # The trees of the last `ballot run`s die with them; give their deaths a moment to arrive.
                for _ in range(100):
                    if not any(t["pids"] for t in self.trees.values()):
                        break
                    await asyncio.sleep(0.05)
                self.close_trees()
            for pxs in self.proxies.values():
                for px in pxs:
                    px.close()
            self.store.close()
            self.ev("end")
            self.events.close()
            self.save(faults)
        return faults

    def save(self, faults: list[dict]) -> None:
        """faults.json: what the checker needs besides the logs (written after every fault)."""
        tmp = os.path.join(self.out, "faults.json.tmp")
        with open(tmp, "w") as f:
            json.dump({"backend": self.b, "mode": "run" if self.run_mode else "candidate",
                       "seed": self.args.seed, "tolerance_ms": self.args.tolerance_ms,
                       "bound_ms": self.bound_ms, "ttl_ms": self.ttl_ms, "margin_ms": self.margin_ms,
                       "expiry_ms": self.expiry_ms, "skipped": self.cfg["skipped"], "faults": faults}, f, indent=1)
        os.replace(tmp, os.path.join(self.out, "faults.json"))


# ---------------------------------------------------------------------------
# servers


class Servers:
    """Servers from the environment (harness facts) or started here into our own dir."""

    def __init__(self, base: str):
        self.env: dict[str, str] = {}
        self.dir = ""
        self.own_dir = os.path.join(base, "servers")
        self.started = False
        self.statedirs: dict[str, str] = {}

    def ensure(self, backend: str) -> None:
        cfg = BACKENDS[backend]
        if not cfg["kind"]:
            return
        # pg: PgBouncer too, from the same state dir (the harness builds it in front of that pg).
        kinds = [(cfg["kind"], cfg["env"])] + ([cfg["pooler"]] if cfg.get("pooler") else [])
        dirs = {os.path.dirname(os.environ.get(f"{var}_0_LOG", "")) for _, var in kinds}
        if all(os.environ.get(var) and os.environ.get(f"{var}_0_LOG") for _, var in kinds) and len(dirs) == 1:
            # Already running (tests/run.sh): the harness's state dir is where its logs are.
            self.dir = dirs.pop()
            for _, var in kinds:
                self.env.update({k: v for k, v in os.environ.items() if k.startswith(var)})
            say(f"[{backend}] using running {' and '.join(k for k, _ in kinds)} from {self.dir}")
            return
        self.dir = self.own_dir
        t0 = time.monotonic()
        self.started = True
        r = subprocess.run([sys.executable, HARNESS, "start", *(k for k, _ in kinds), "--zk-tick-ms", "1000",
                            "--dir", self.dir],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"harness start {cfg['kind']} failed:\n{r.stderr[-3000:]}")
        with open(os.path.join(self.dir, "env.json")) as f:
            self.env.update({k: str(v) for k, v in json.load(f).items()})
        say(f"[{backend}] started {' and '.join(k for k, _ in kinds)} in {time.monotonic() - t0:.1f}s ({self.dir})")

    def stop(self) -> None:
        if self.started:
            subprocess.run([sys.executable, HARNESS, "stop", "--dir", self.own_dir], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=120)
            self.started = False


# ---------------------------------------------------------------------------
# checker


def read_jsonl(path: str) -> list[dict]:
    out = []
    with contextlib.suppress(OSError):
        with open(path, "rb") as f:
            for ln in f:
                with contextlib.suppress(ValueError):
                    out.append(json.loads(ln))
    return out


def subtract(iv: tuple[int, int], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    parts = [iv]
    for hs, he in holes:
        nxt = []
        for s, e in parts:
            if he <= s or hs >= e:
                nxt.append((s, e))
                continue
            if s < hs:
                nxt.append((s, hs))
            if he < e:
                nxt.append((he, e))
        parts = nxt
    return parts


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def cand_of(label: str) -> str:
    """The candidate of a belief label (run mode labels a tree `<candidate>/t<term>`)."""
    return label.split("/", 1)[0]


def run_intervals(driver: list[dict], end_t: int, tol: int, raw: list, leads: list, violations: list[str],
                  stats: dict, wipes: list[int]) -> None:
    """Run mode: each tree of `ballot run` (the writer, its wrapper, the supervisor)
    counts as a leadership from its hello (just before its first write) to the death
    of its last process. Also: a `ballot run` that exited (not by SIGKILL) before its
    tree was gone, and one that left the election by itself, are violations."""
    died: dict[tuple, dict[int, int]] = {}
    for r in driver:
        if r["ev"] == "died":
            died.setdefault((r["proc"], r["term"], r.get("writer")), {})[r["pid"]] = r["t"]
    killed = {r["proc"]: r["t"] for r in driver if r["ev"] == "kill"}
    exited = {r["proc"]: r["t"] for r in driver if r["ev"] in ("exited", "exited_by_itself")}
    for r in driver:
        if r["ev"] == "exited_by_itself":
            if r["code"] == 5 and any(w <= r["t"] for w in wipes):
                # Nobody calls end() here: `ended` comes from the backend's view of the epoch,
                # which only a wipe of the server's data disturbs (outside the contract; the
                # Consul backend took the `.epoch` key that a client re-creates after a wipe
                # for an end() when it joined while the key was missing, until issue 14's fix:
                # the count should be 0).
                stats["ended_by_wipe"] += 1
                continue
            stats["exited"] += 1
            violations.append(f"{r['proc']} (ballot run --requeue) exited by itself with {r['code']} at t={r['t']}")
    for h in (r for r in driver if r["ev"] == "hello"):
        key = (h["proc"], h["term"], h["pids"][0])
        # Logs of before the writer's pid was recorded with each death.
        deaths = died.get(key) or died.get((h["proc"], h["term"], None), {})
        # The command's processes; the supervisor (which only kills and reaps) counts
        # for rule 3 below.
        gone = all(q in deaths for q in h["pids"])
        end = max(deaths[q] for q in h["pids"]) if gone else end_t
        sup = h.get("supervisor") or 0
        sup_end = deaths.get(sup, end_t) if sup else end
        label = f"{h['proc']}/t{h['term']}/{h['pids'][0]}"
        raw.append((label, h["term"], h["t"], max(end, h["t"])))
        leads.append((h["t"], label, h["term"]))
        stats["trees"] += 1
        # The tree that ran when its `ballot run` was SIGKILLed (with --requeue, earlier
        # trees of the same process ended at earlier losses).
        if h["proc"] in killed and gone and h["t"] <= killed[h["proc"]] <= end:
            stats["kill_to_gone_ms"].append((end - killed[h["proc"]]) / 1e6)
        ex = exited.get(h["proc"])
        if h["proc"] not in killed and ex is not None and max(end, sup_end) > ex + tol:
            stats["outlived"] += 1
            alive = sorted(q for q in h["pids"] + ([sup] if sup else []) if deaths.get(q, end_t) > ex + tol)
            violations.append(f"tree of {label} (pids {alive}) outlived its `ballot run`, which exited at t={ex}")


def run_writes(store: list[dict], driver: list[dict], raw: list, meta: dict, tol: int, violations: list[str],
               stats: dict) -> None:
    """Run mode: a write (accepted or refused) from a tree while a tree of a higher
    term had started is a write from a candidate that does not lead. Exempt, and
    counted: writes of the target of an expire fault until TTL + 1 s after it (the
    server handed leadership on by itself), writes within the tolerance after the
    candidate was resumed from SIGSTOP (its first act, before `ballot run` could
    run), and writes around a wipe of the server's data."""
    starts = sorted((s, term, cand_of(label)) for label, term, s, _ in raw)
    exempt = (meta["ttl_ms"] + 1000) * 1_000_000
    resumes: dict[str, list[int]] = {}
    for r in driver:
        if r["ev"] == "resume":
            resumes.setdefault(r["proc"], []).append(r["t"])
    wipes = [fl for fl in meta["faults"] if fl.get("wipe") and "t0" in fl]
    for w in store:
        if "reset" in w:
            continue
        t = w["t"]
        epoch = max([fl["t0"] for fl in wipes if fl["t0"] <= t] + [0])
        newer = [(s, term, who) for s, term, who in starts
                 if epoch <= s < t - tol and term > w["term"] and who != w["id"]]
        if not newer:
            continue
        if any(fl["t0"] <= t <= fl["heal"] + exempt for fl in wipes):
            continue
        if any(fl["kind"] == "expire" and fl.get("target") == w["id"] and fl["t0"] <= t <= fl["heal"] + exempt
               for fl in meta["faults"] if "t0" in fl):
            continue
        if any(rt <= t <= rt + tol for rt in resumes.get(w["id"], [])):
            stats["resumed_writes"] += 1
            continue
        stats["late_writes"] += 1
        s, term, who = newer[-1]
        violations.append(f"write of {w['id']} term {w['term']} at t={t} ({'accepted' if w['ok'] else 'refused'}) "
                          f"while {who} led with term {term} since t={s}")


def check(out: str) -> dict:
    """Checks one backend run's logs. Returns {violations: [...], stats...}."""
    with open(os.path.join(out, "faults.json")) as f:
        meta = json.load(f)
    tol = int(meta["tolerance_ms"] * 1e6)
    driver = read_jsonl(os.path.join(out, "driver.jsonl"))
    store = read_jsonl(os.path.join(out, "store.jsonl"))
    logs = {}
    for name in sorted(os.listdir(out)):
        if name.startswith("c") and name.endswith(".jsonl"):
            recs = read_jsonl(os.path.join(out, name))
            if recs:
                logs[recs[0]["id"]] = recs
    end_t = max([r["t"] for r in driver] + [0])
    # Driver facts per process: kill time, pauses.
    killed: dict[str, int] = {}
    pauses: dict[str, list[tuple[int, int]]] = {}
    open_pause: dict[str, int] = {}
    for r in driver:
        if r["ev"] == "kill":
            killed.setdefault(r["proc"], r["t"])
        elif r["ev"] == "pause":
            open_pause[r["proc"]] = r["t"]
        elif r["ev"] == "resume" and r["proc"] in open_pause:
            pauses.setdefault(r["proc"], []).append((open_pause.pop(r["proc"]), r["t"]))
    for p, t in open_pause.items():
        pauses.setdefault(p, []).append((t, end_t))
    violations: list[str] = []
    run_mode = meta.get("mode") == "run"
    # Belief intervals (raw) per process. In run mode, per tree: the label is
    # `<candidate>/t<term>`, and cand_of() gives the candidate back.
    raw: list[tuple[str, int, int, int]] = []  # (proc, term, start, end)
    leads: list[tuple[int, str, int]] = []
    run_stats = {"trees": 0, "late_writes": 0, "resumed_writes": 0, "outlived": 0, "exited": 0, "ended_by_wipe": 0,
                 "kill_to_gone_ms": [], "handover_gap_ms": []}
    if run_mode:
        wipe_t0 = [fl["t0"] for fl in meta["faults"] if fl.get("wipe") and "t0" in fl]
        run_intervals(driver, end_t, tol, raw, leads, violations, run_stats, wipe_t0)
        logs = {}
    for pid, recs in logs.items():
        cur = None
        for r in recs:
            if r["ev"] == "lead":
                leads.append((r["t"], pid, r["term"]))
                if cur is not None:
                    raw.append((pid, cur[0], cur[1], r["t"]))
                cur = (r["term"], r["t"])
            elif r["ev"] == "unlead" and cur is not None:
                raw.append((pid, cur[0], cur[1], r["t"]))
                cur = None
        if cur is not None:
            e = killed.get(pid, recs[-1]["t"])
            if pid not in killed and recs[-1]["ev"] != "exit":
                e = max(e, end_t)  # neither killed nor exited: believed to the end
            raw.append((pid, cur[0], cur[1], max(e, cur[1])))
    eff = []  # effective: a stopped process cannot act
    for pid, term, s, e in raw:
        for ps, pe in subtract((s, e), pauses.get(cand_of(pid), [])):
            eff.append((pid, term, ps, pe))
    eff.sort(key=lambda x: x[2])
    # Rule 1: no two processes believe they lead at overlapping times.
    max_overlap = 0
    worst = ""
    expire_overlaps: list[float] = []
    wipe_overlaps: list[float] = []
    exempt = (meta["ttl_ms"] + 1000) * 1_000_000
    for i, (p1, t1, s1, e1) in enumerate(eff):
        for p2, t2, s2, e2 in eff[i + 1:]:
            if s2 >= e1:
                break
            if p1 == p2:
                continue
            ov = min(e1, e2) - s2
            if any(fl.get("wipe") and fl["t0"] <= s2 <= fl["heal"] + exempt for fl in meta["faults"] if "t0" in fl):
                # The server forgot every session (consul -dev restart): another candidate may
                # win as soon as it is back, before the old leader's next renewal tells it.
                wipe_overlaps.append(ov / 1e6)
                continue
            if any(fl["kind"] == "expire" and fl.get("target") in (cand_of(p1), cand_of(p2))
                   and fl["t0"] <= s2 <= fl["heal"] + exempt for fl in meta["faults"] if "t0" in fl):
                # The server ended the target's session on our request: another candidate
                # may win at once, before the target can know. Only the fence protects here.
                expire_overlaps.append(ov / 1e6)
                continue
            if ov > max_overlap:
                max_overlap = ov
                paused = [q for q in (p1, p2) if pauses.get(cand_of(q))]
                worst = f"{p1} (term {t1}) / {p2} (term {t2}) at t={s2}" + \
                    (f"; {', '.join(paused)} had been paused" if paused else "")
            if ov > tol:
                both = "processes of both trees were alive" if run_mode else "both believed they led"
                violations.append(f"overlap {ov / 1e6:.1f} ms: {p1} (term {t1}) and {p2} (term {t2}) "
                                  f"{both} at t={s2}")
    # Rule 2: terms strictly increase over successive leaders; a term has one holder.
    leads.sort()
    max_term, holder = -1, None
    holders: dict[int, str] = {}
    # A fault that wiped the server's data starts a new epoch of terms at its start.
    wipes = sorted(fl["t0"] for fl in meta["faults"] if fl.get("wipe"))
    for t, pid, term in leads:
        while wipes and t >= wipes[0]:
            wipes.pop(0)
            max_term, holder, holders = -1, None, {}
        if term in holders and holders[term] != pid:
            violations.append(f"term {term} held by {holders[term]} and by {pid} (t={t})")
        holders.setdefault(term, pid)
        if term < max_term:
            violations.append(f"term went back: {pid} led with {term} after {holder} led with {max_term} (t={t})")
        elif term == max_term and pid != holder:
            pass  # reported above
        else:
            max_term, holder = term, pid
    # Rule 3: the fenced store never accepted a stale term, and every accepted write
    # came from a process that believed it led with that term at that moment.
    smax = 0
    by_proc: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for pid, term, s, e in raw:
        by_proc.setdefault((cand_of(pid), term), []).append((s, e))
    refused = 0
    for w in store:
        if "reset" in w:
            smax = 0
            continue
        if not w["ok"]:
            refused += 1
            continue
        if w["term"] < smax:
            violations.append(f"store accepted stale term {w['term']} < {smax} from {w['id']} (t={w['t']})")
        smax = max(smax, w["term"])
        ivs = by_proc.get((w["id"], w["term"]), [])
        if not any(s <= w["t"] <= e + tol for s, e in ivs):
            violations.append(f"write of {w['id']} term {w['term']} at t={w['t']} outside its belief of leading")
    if run_mode:
        run_writes(store, driver, raw, meta, tol, violations, run_stats)
        # From the death of the last process of the trees before it (their parts
        # before any freeze, as in rule 1) to the first write of a tree. A tree
        # resumed from SIGSTOP after the next one started is judged by rule 1 alone.
        # Handovers inside the exempt windows of rule 1 (expire, wipe) are left out.
        windows = [(fl["t0"], fl["heal"] + exempt) for fl in meta["faults"]
                   if "t0" in fl and (fl["kind"] == "expire" or fl.get("wipe"))]
        for label, _, start, _ in sorted(raw, key=lambda x: x[2]):
            before = [e for lb, _, s2, e in eff if lb != label and s2 < start]
            if before and not any(a <= start <= b for a, b in windows):
                run_stats["handover_gap_ms"].append((start - max(before)) / 1e6)
    # Rule 5: with auto-requeue on, a candidate stays in the election until it resigns:
    # its handle never goes Idle by itself, and campaign() never fails with SessionLost.
    dropped = 0
    for pid, recs in logs.items():
        for r in recs:
            if r["ev"] == "dropped":
                dropped += 1
                violations.append(f"{pid} dropped out of the election at t={r['t']} (handle Idle with "
                                  f"auto-requeue on); last error: {r.get('last_error')}")
            elif r["ev"] == "campaign_error" and r.get("kind") == "SessionLost":
                dropped += 1
                violations.append(f"{pid}: campaign() failed with SessionLost at t={r['t']} although "
                                  f"auto-requeue is on: {r.get('error')}")
    # Rule 4: after every fault a leader exists again within the bound.
    merged: list[list[int]] = []
    for _, _, s, e in eff:
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    faults = meta["faults"]
    bound = meta["bound_ms"] * 1_000_000
    stop_t = next((r["t"] for r in driver if r["ev"] == "stop_all"), end_t)
    recovered_at = {r["n"]: r["t"] for r in driver if r["ev"] == "recovered"}
    per_kind: dict[str, dict] = {}
    for i, fl in enumerate(faults):
        if fl.get("no_leader_before"):
            violations.append(f"fault {fl['n']} ({fl['kind']}): no single stable leader before it "
                              f"(waited bound + 10 s)")
        if "t0" not in fl:
            continue
        t0 = fl["t0"]
        t_end = faults[i + 1]["t0"] if i + 1 < len(faults) and "t0" in faults[i + 1] else stop_t
        # The end of the last leaderless gap within [t0, t_end). A gap still open at
        # t_end that began after the driver had seen a stable leader again after this
        # fault ("recovered": the next fault may start a few ms into such a gap, before
        # the driver reads its `unlead`) is followed to its end, which must be within
        # the bound of this fault too; any other gap open at t_end is a violation.
        recovered = recovered_at.get(fl["n"])
        rec_at = None
        cursor = t0
        for s, e in merged:
            if e <= cursor:
                continue
            if s > cursor:  # a gap [cursor, s)
                if s >= t_end:
                    rec_at = s if recovered is not None and cursor >= recovered else -1
                    break
                rec_at = s
            cursor = e
            if cursor >= t_end:
                break
        else:
            if cursor < t_end:
                rec_at = -1  # no leader again until the end
        kd = per_kind.setdefault(fl["kind"], {"n": 0, "failover": [], "kept": 0, "over": 0})
        kd["n"] += 1
        if rec_at == -1:
            violations.append(f"fault {fl['n']} ({fl['kind']}): no leader again before the next step")
            kd["over"] += 1
            continue
        if rec_at is None:
            kd["kept"] += 1
            kd["failover"].append(0.0)
            continue
        took = rec_at - t0
        kd["failover"].append(took / 1e6)
        if rec_at - fl["anchor"] > bound:
            kd["over"] += 1
            violations.append(f"fault {fl['n']} ({fl['kind']}): leader again {took / 1e6:.0f} ms after the fault, "
                              f"{(rec_at - fl['anchor']) / 1e6:.0f} ms after its anchor; bound {meta['bound_ms']} ms")
    return {"backend": meta["backend"], "mode": meta.get("mode", "candidate"), "run": run_stats if run_mode else None,
            "violations": violations, "per_kind": per_kind, "refused": refused,
            "accepted": sum(1 for w in store if w.get("ok")),
            "wipes": sum(1 for fl in faults if fl.get("wipe")), "max_overlap_ms": max_overlap / 1e6, "worst_overlap": worst,
            "leaderships": len(leads), "expire_overlaps": expire_overlaps,
            "wipe_overlaps": wipe_overlaps, "dropped": dropped, "bound_ms": meta["bound_ms"], "skipped": meta["skipped"],
            "faults": len(faults)}


def summary(res: dict, wall: float | None = None) -> str:
    lines = []
    b = res["backend"]
    head = f"== {b}{' (run mode)' if res.get('mode') == 'run' else ''}: {res['faults']} faults, " \
        f"{len(res['violations'])} violations"
    if wall is not None:
        head += f", wall {wall:.0f}s"
    lines.append(head)
    lines.append(f"   {'fault':<10} {'n':>4} {'no gap':>9} {'p50 ms':>8} {'max ms':>8} {'over bound':>10}")
    for k in FAULT_KINDS:
        if k in res["per_kind"]:
            d = res["per_kind"][k]
            fo = d["failover"]
            lines.append(f"   {k:<10} {d['n']:>4} {d['kept']:>9} {pct(fo, 0.5):>8.0f} {max(fo) if fo else 0:>8.0f} "
                         f"{d['over']:>10}")
        elif k in res["skipped"]:
            lines.append(f"   {k:<10}    - skipped: {res['skipped'][k]}")
    lines.append(f"   leaderships {res['leaderships']}, store writes accepted {res['accepted']}, "
                 f"stale writes fenced off {res['refused']}, max belief overlap {res['max_overlap_ms']:.1f} ms, "
                 f"failover bound {res['bound_ms']} ms")
    if res.get("worst_overlap"):
        lines.append(f"   largest overlap (within the tolerance): {res['worst_overlap']}")
    if res.get("wipes"):
        wo = res.get("wipe_overlaps") or [0.0]
        lines.append(f"   {res['wipes']} fault(s) wiped the server's data (consul -dev): terms and the fence "
                     f"started a new epoch after each; {len(res.get('wipe_overlaps') or [])} overlap(s) of the "
                     f"old leader with a new one after a wipe, max {max(wo):.1f} ms (exempt, outside the contract)")
    if res.get("expire_overlaps"):
        eo = res["expire_overlaps"]
        lines.append(f"   expire faults: {len(eo)} overlap(s) of the revoked leader with its successor, max "
                     f"{max(eo):.1f} ms (exempt: the server ended the session itself; the fence refused "
                     f"{res['refused']} stale write(s))")
    if res.get("dropped"):
        lines.append(f"   candidates dropped out of the election (auto-requeue gave up): {res['dropped']}")
    if res.get("run"):
        r = res["run"]
        lines.append(f"   run mode: {r['trees']} process trees of `ballot run`; writes from a tree that did not lead: "
                     f"{r['late_writes']}; trees that outlived their `ballot run`: {r['outlived']}; `ballot run` "
                     f"exits by itself: {r['exited']}; writes within the tolerance after a SIGCONT: "
                     f"{r['resumed_writes']}")
        if r.get("ended_by_wipe"):
            lines.append(f"   `ballot run` exits with `ended` after a wipe of the server's data (exempt, outside the "
                         f"contract): {r['ended_by_wipe']}")
        k, g = r["kill_to_gone_ms"], r["handover_gap_ms"]
        if k:
            lines.append(f"   SIGKILL of `ballot run` -> its whole tree gone: p50 {pct(k, 0.5):.1f} ms, max {max(k):.1f} ms "
                         f"({len(k)} kills)")
        if g:
            lines.append(f"   a tree's last death -> the next tree's first write: min {min(g):.1f} ms, "
                         f"p50 {pct(g, 0.5):.1f} ms (stopped time cut out, expire and wipe windows left out)")
    for v in res["violations"][:20]:
        lines.append(f"   VIOLATION: {v}")
    if len(res["violations"]) > 20:
        lines.append(f"   ... and {len(res['violations']) - 20} more")
    return "\n".join(lines)


def selftest() -> int:
    """The checker against made-up logs: a clean history passes, and each rule fires
    on a history that breaks it."""
    ms = 1_000_000

    def write(d: str, name: str, recs: list[dict]) -> None:
        with open(os.path.join(d, name), "w") as f:
            for r in recs:
                f.write(json.dumps(r) + "\n")

    def history(d: str, b_start: int, b_term: int, a_writes_late: bool, dropped: bool = False) -> None:
        # a leads term 5 from 0 to 1000 ms, is killed at 1000 ms; b leads b_term from b_start.
        write(d, "c0.0.jsonl", [{"t": 0, "id": "c0.0", "ev": "start"},
                                {"t": 10 * ms, "id": "c0.0", "ev": "lead", "term": 5}])
        write(d, "c1.0.jsonl", [{"t": 0, "id": "c1.0", "ev": "start"},
                                {"t": b_start, "id": "c1.0", "ev": "lead", "term": b_term},
                                {"t": 5000 * ms, "id": "c1.0", "ev": "unlead", "term": b_term, "why": "sigterm"},
                                {"t": 5001 * ms, "id": "c1.0", "ev": "exit"}])
        write(d, "c2.0.jsonl", [{"t": 0, "id": "c2.0", "ev": "start"}]
              + ([{"t": 3000 * ms, "id": "c2.0", "ev": "dropped", "last_error": "x"}] if dropped else []))
        write(d, "driver.jsonl", [{"t": 1000 * ms, "ev": "fault", "n": 1, "kind": "kill"},
                                  {"t": 1000 * ms, "ev": "kill", "proc": "c0.0"},
                                  {"t": 5000 * ms, "ev": "stop_all"}, {"t": 5002 * ms, "ev": "end"}])
        st = [{"t": 500 * ms, "id": "c0.0", "term": 5, "seq": 1, "ok": True},
              {"t": 2000 * ms, "id": "c1.0", "term": b_term, "seq": 1, "ok": True}]
        if a_writes_late:
            st.append({"t": 1500 * ms, "id": "c0.0", "term": 5, "seq": 2, "ok": True})
        write(d, "store.jsonl", sorted(st, key=lambda r: r["t"]))
        faults = [{"n": 1, "kind": "kill", "t0": 1000 * ms, "heal": 1000 * ms, "anchor": 1000 * ms,
                   "target": "c0.0"}]
        with open(os.path.join(d, "faults.json"), "w") as f:
            json.dump({"backend": "selftest", "seed": 0, "tolerance_ms": 100, "bound_ms": 2000, "ttl_ms": 1000,
                       "margin_ms": 200, "expiry_ms": 1000, "skipped": {}, "faults": faults}, f)

    cases = [
        ("clean", dict(b_start=1200 * ms, b_term=7, a_writes_late=False), []),
        ("overlap", dict(b_start=800 * ms, b_term=7, a_writes_late=False), ["overlap"]),
        ("term back", dict(b_start=1200 * ms, b_term=4, a_writes_late=False),
         ["term went back", "stale term"]),
        ("write outside belief", dict(b_start=1200 * ms, b_term=7, a_writes_late=True),
         ["outside its belief"]),
        ("dropped", dict(b_start=1200 * ms, b_term=7, a_writes_late=False, dropped=True), ["dropped out"]),
        ("slow failover", dict(b_start=3500 * ms, b_term=7, a_writes_late=False), ["bound"]),
    ]
    def gap_history(d: str, recovered: bool) -> None:
        # c0.0 leads term 5 and is killed at 1000 ms (fault 1); c1.0 leads term 7 from
        # 1200 ms, is suspended at 2500 ms, 5 ms before fault 2 starts, and leads again
        # from 2600 ms. The driver saw c1.0 as a stable leader at 1600 ms, or never.
        write(d, "c0.0.jsonl", [{"t": 0, "id": "c0.0", "ev": "start"},
                                {"t": 10 * ms, "id": "c0.0", "ev": "lead", "term": 5}])
        write(d, "c1.0.jsonl", [{"t": 0, "id": "c1.0", "ev": "start"},
                                {"t": 1200 * ms, "id": "c1.0", "ev": "lead", "term": 7},
                                {"t": 2500 * ms, "id": "c1.0", "ev": "unlead", "term": 7, "why": "suspended"},
                                {"t": 2600 * ms, "id": "c1.0", "ev": "lead", "term": 7},
                                {"t": 5000 * ms, "id": "c1.0", "ev": "unlead", "term": 7, "why": "sigterm"},
                                {"t": 5001 * ms, "id": "c1.0", "ev": "exit"}])
        write(d, "driver.jsonl", [{"t": 1000 * ms, "ev": "fault", "n": 1, "kind": "kill"},
                                  {"t": 1000 * ms, "ev": "kill", "proc": "c0.0"},
                                  *([{"t": 1600 * ms, "ev": "recovered", "n": 1, "proc": "c1.0", "term": 7}]
                                    if recovered else []),
                                  {"t": 2505 * ms, "ev": "fault", "n": 2, "kind": "reset"},
                                  {"t": 5000 * ms, "ev": "stop_all"}, {"t": 5002 * ms, "ev": "end"}])
        write(d, "store.jsonl", [])
        faults = [{"n": 1, "kind": "kill", "t0": 1000 * ms, "heal": 1000 * ms, "anchor": 1000 * ms,
                   "target": "c0.0"},
                  {"n": 2, "kind": "reset", "t0": 2505 * ms, "heal": 3000 * ms, "anchor": 2505 * ms,
                   "target": "c3.0"}]
        with open(os.path.join(d, "faults.json"), "w") as f:
            json.dump({"backend": "selftest", "seed": 0, "tolerance_ms": 100, "bound_ms": 2000, "ttl_ms": 1000,
                       "margin_ms": 200, "expiry_ms": 1000, "skipped": {}, "faults": faults}, f)

    gap_cases = [
        ("gap: a leader again, then a gap across the next fault's start", dict(recovered=True), []),
        ("gap: no leader seen again before the next fault", dict(recovered=False), ["no leader again"]),
    ]

    def run_history(d: str, a_dead: int, b_start: int, a_writes_late: bool = False, b_dead: int = 5000 * ms,
                    a_sup_lag: int = 0) -> None:
        # Run mode: c0.0's tree (term 5) from 10 ms; its `ballot run` is SIGKILLed at
        # 1000 ms and the supervisor kills the tree by a_dead; c1.0's tree (term 7)
        # from b_start; c1.0 gets SIGTERM at 4990 ms and exits at 5001 ms.
        write(d, "driver.jsonl", [
            {"t": 10 * ms, "ev": "hello", "proc": "c0.0", "term": 5, "pids": [100, 101], "supervisor": 102},
            {"t": 1000 * ms, "ev": "fault", "n": 1, "kind": "kill"},
            {"t": 1000 * ms, "ev": "kill", "proc": "c0.0"},
            *[{"t": a_dead, "ev": "died", "proc": "c0.0", "term": 5, "writer": 100, "pid": q} for q in (100, 101)],
            {"t": a_dead + a_sup_lag, "ev": "died", "proc": "c0.0", "term": 5, "writer": 100, "pid": 102},
            {"t": b_start, "ev": "hello", "proc": "c1.0", "term": 7, "pids": [200, 201], "supervisor": 202},
            {"t": 4990 * ms, "ev": "stop_all"}, {"t": 4990 * ms, "ev": "term", "proc": "c1.0"},
            *[{"t": b_dead, "ev": "died", "proc": "c1.0", "term": 7, "writer": 200, "pid": q} for q in (200, 201, 202)],
            {"t": 5001 * ms, "ev": "exited", "proc": "c1.0", "code": 143},
            {"t": max(b_dead, 5001 * ms) + ms, "ev": "end"}])
        st = [{"t": 500 * ms, "id": "c0.0", "term": 5, "seq": 1, "ok": True},
              {"t": 2000 * ms, "id": "c1.0", "term": 7, "seq": 1, "ok": True}]
        if a_writes_late:
            st.append({"t": 1500 * ms, "id": "c0.0", "term": 5, "seq": 2, "ok": False})
        write(d, "store.jsonl", sorted(st, key=lambda r: r["t"]))
        faults = [{"n": 1, "kind": "kill", "t0": 1000 * ms, "heal": 1000 * ms, "anchor": 1000 * ms,
                   "target": "c0.0"}]
        with open(os.path.join(d, "faults.json"), "w") as f:
            json.dump({"backend": "selftest", "mode": "run", "seed": 0, "tolerance_ms": 100, "bound_ms": 2000,
                       "ttl_ms": 1000, "margin_ms": 200, "expiry_ms": 1000, "skipped": {}, "faults": faults}, f)

    run_cases = [
        ("run: clean", dict(a_dead=1050 * ms, b_start=1200 * ms), []),
        # The supervisor only kills and reaps: it may exit after the next tree started.
        ("run: clean, a slow supervisor", dict(a_dead=1050 * ms, b_start=1200 * ms, a_sup_lag=400 * ms), []),
        ("run: tree outlives the leadership", dict(a_dead=1600 * ms, b_start=1200 * ms), ["trees were alive"]),
        ("run: write from a tree that does not lead", dict(a_dead=1600 * ms, b_start=1200 * ms, a_writes_late=True),
         ["trees were alive", "while c1.0 led"]),
        ("run: tree outlives its ballot run", dict(a_dead=1050 * ms, b_start=1200 * ms, b_dead=5500 * ms),
         ["outlived its `ballot run`"]),
    ]
    bad = 0
    for name, kw, expect in cases + run_cases + gap_cases:
        with tempfile.TemporaryDirectory(prefix="ballot-chaos-selftest-") as d:
            (run_history if name.startswith("run:") else gap_history if name.startswith("gap:") else history)(d, **kw)
            got = check(d)["violations"]
            ok = all(any(e in v for v in got) for e in expect) and (expect or not got)
            bad += not ok
            say(f"checker selftest {name}: {'ok' if ok else 'WRONG'} ({len(got)} violation(s): {got[:2]})")
    return 1 if bad else 0


# ---------------------------------------------------------------------------
# main


def cmd_run(args) -> int:
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 2**31)
    n_faults = args.rounds if args.rounds else CI_FAULTS
    base = args.out or tempfile.mkdtemp(prefix="ballot-chaos-")
    os.makedirs(base, exist_ok=True)
    say(f"chaos: seed {args.seed} (replay with --seed {args.seed}), {n_faults} faults per backend, "
        f"backends {' '.join(args.backend)}, {args.mode} mode, logs in {base}")
    servers = Servers(base)
    results = []
    bad = False
    t_all = time.monotonic()

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        for b in args.backend:
            t0 = time.monotonic()
            out = os.path.join(base, b)
            if os.path.exists(out):
                shutil.rmtree(out)
            os.makedirs(out)
            # One RNG per backend from the seed, so a backend replays alone too.
            rng = random.Random(f"{args.seed}-{b}")
            try:
                servers.ensure(b)
                run = Run(b, args, servers, rng, out)
                asyncio.run(run.main(n_faults))
            except Exception as e:  # a broken run is a failure, the others still run
                say(f"[{b}] ERROR: {type(e).__name__}: {e}")
                bad = True
                if not os.path.exists(os.path.join(out, "faults.json")):
                    continue
            finally:
                servers.stop()
            res = check(out)
            wall = time.monotonic() - t0
            results.append((res, wall))
            say(summary(res, wall))
            if res["violations"]:
                bad = True
    finally:
        servers.stop()
    say("")
    say(f"chaos: seed {args.seed}; total wall {time.monotonic() - t_all:.0f}s; logs in {base}")
    for res, wall in results:
        say(summary(res, wall))
    total = sum(len(r["violations"]) for r, _ in results)
    say(f"chaos: {'FAILED' if bad else 'passed'}: {total} violation(s)")
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(prog="chaos.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run")
    p.add_argument("--bin", required=True, help="the ballot-chaos candidate binary")
    p.add_argument("--backend", nargs="+", default=["local", "etcd", "zk", "consul", "pg"],
                   choices=list(BACKENDS))
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ci", action="store_true", help=f"bounded: {CI_FAULTS} faults per backend (default)")
    g.add_argument("--rounds", type=int, help="faults per backend (long mode)")
    p.add_argument("--seed", type=int)
    p.add_argument("--candidates", type=int, default=5)
    p.add_argument("--faults", nargs="+", metavar="KIND", help="draw only these fault kinds")
    p.add_argument("--unsafe", action="store_true",
                   help="deliberately unsafe candidates that ignore Suspended and Lost (the checker must catch them)")
    p.add_argument("--mode", choices=["candidate", "run"], default="candidate",
                   help="candidate: ballot-chaos processes (default); run: `ballot run` processes whose command "
                        "forks the writer (needs --ballot)")
    p.add_argument("--ballot", help="the `ballot` CLI binary (run mode)")
    p.add_argument("--out", help="log directory (default: a new temporary one)")
    p.add_argument("--slack", type=float, default=3.0, help="seconds added to the failover bound")
    p.add_argument("--tolerance-ms", type=float, default=100.0,
                   help="measurement slack for overlapping beliefs and for writes (ms)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("check")
    p.add_argument("dir")
    p.set_defaults(func=lambda a: (say(summary(r := check(a.dir))), 1 if r["violations"] else 0)[1])
    p = sub.add_parser("selftest", help="run the checker on made-up histories")
    p.set_defaults(func=lambda a: selftest())
    args = ap.parse_args()
    if getattr(args, "candidates", 5) < 5:
        ap.error("--candidates must be at least 5")
    if getattr(args, "mode", None) == "run" and (not args.ballot or args.unsafe):
        ap.error("--mode run needs --ballot PATH, and has no --unsafe")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
