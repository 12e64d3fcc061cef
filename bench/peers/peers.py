#!/usr/bin/env python3
"""The native clients' side of the ballot benchmarks (bench/run.py calls this).

Each subcommand measures graceful handoff with one native client against one
running server and prints one JSON object on stdout: {"samples_ms": [...], ...}.
Progress goes to stderr. Every loop is bounded in count and in time.

    peers.py kazoo       --hosts H:P   --rounds N   (kazoo's Election recipe, PyPI kazoo)
    peers.py consul-py   --addr H:P    --rounds N   (PyPI py-consul: session + acquire)
    peers.py etcdctl     --endpoint URL --rounds N  (`etcdctl elect`, driven as processes)
    peers.py consul-lock --addr H:P    --rounds N   (`consul lock`, driven as processes)
    peers.py pg-advisory --url URL     --rounds N   (psycopg: pg_advisory_lock / pg_advisory_unlock)
    peers.py ballot-py   --url URL     --rounds N   (ballot's own Python binding, for the surfaces table)

The in-process peers (kazoo, py-consul) time both ends on one clock, as the
ballot driver does: release at t0, the successor's wait returns at t1. The
process peers send SIGINT to the leading process at t0 (it resigns or
releases, then exits) and stamp t1 when the waiting process prints that it
leads; so they include the signal handling and one pipe write, which is how
these tools hand off in practice.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import selectors
import signal
import subprocess
import sys
import threading
import time

WAIT = 60.0  # seconds for any single wait


def log(msg: str) -> None:
    print(f"peers: {msg}", file=sys.stderr, flush=True)


def ms(dt: float) -> float:
    return dt * 1e3


def in_process(rounds: int, warmup: int, settle: float, make_candidate) -> list[float]:
    """Two candidates on threads. make_candidate(idx, won, cmds, stop, max_terms)
    runs a loop: campaign; won.put((idx, t)); cmds.get() ("release") and
    release; cmds.get() ("campaign" or "stop"). As in the ballot driver, the old
    leader campaigns again only once its successor has won.
    """
    won: queue.Queue = queue.Queue()
    release = [queue.Queue(), queue.Queue()]
    stop = threading.Event()
    threads = []
    for i in range(2):
        t = threading.Thread(target=make_candidate, args=(i, won, release[i], stop, warmup + rounds + 2),
                             daemon=True)
        t.start()
        threads.append(t)
        if i == 0:
            leader, _ = won.get(timeout=WAIT)
    samples = []
    t_start = time.monotonic()
    for r in range(warmup + rounds):
        time.sleep(settle)
        t0 = time.perf_counter()
        release[leader].put("go")
        nxt, t1 = won.get(timeout=WAIT)
        if nxt == leader:
            raise SystemExit(f"round {r}: the released candidate won again")
        release[leader].put("campaign")
        leader = nxt
        if r >= warmup:
            samples.append(ms(t1 - t0))
        if (r + 1) % 50 == 0:
            log(f"{r + 1}/{warmup + rounds} rounds, {time.monotonic() - t_start:.1f} s")
    stop.set()
    for q in release:
        q.put("stop")
        q.put("stop")
    for t in threads:
        t.join(timeout=10)
    return samples


def cmd_kazoo(a) -> dict:
    from kazoo.client import KazooClient

    clients = []
    for _ in range(2):
        c = KazooClient(hosts=a.hosts, timeout=10.0)
        c.start(timeout=WAIT)
        clients.append(c)
    path = f"/{a.election}"

    def candidate(idx, won, release, stop, max_terms):
        election = clients[idx].Election(path, f"candidate-{idx}")

        def lead():
            won.put((idx, time.perf_counter()))
            release.get(timeout=WAIT * 10)

        for _ in range(max_terms):
            election.run(lead)
            if release.get(timeout=WAIT * 10) == "stop":
                return

    try:
        samples = in_process(a.rounds, a.warmup, a.settle_ms / 1e3, candidate)
    finally:
        for c in clients:
            c.stop()
            c.close()
    return {"what": "kazoo Election.run handoff", "rounds": a.rounds, "samples_ms": samples}


def cmd_consul_py(a) -> dict:
    import consul

    host, port = a.addr.rsplit(":", 1)
    clients = [consul.Consul(host=host, port=int(port)) for _ in range(2)]
    sessions = [c.session.create(name=f"bench-py-{i}", ttl=60, lock_delay=0, behavior="release")
                for i, c in enumerate(clients)]
    key = f"{a.election}/.lock"

    def acquire(c, sid, deadline) -> None:
        # The usual session lock loop: try to acquire; while someone holds it,
        # wait on a blocking query for the key to change.
        while time.monotonic() < deadline:
            if c.kv.put(key, "v", acquire=sid):
                return
            index, data = c.kv.get(key)
            while data is not None and data.get("Session") and time.monotonic() < deadline:
                index, data = c.kv.get(key, index=index, wait="30s")
        raise TimeoutError("acquire: out of time")

    def candidate(idx, won, release, stop, max_terms):
        c, sid = clients[idx], sessions[idx]
        for _ in range(max_terms):
            acquire(c, sid, time.monotonic() + WAIT * 10)
            won.put((idx, time.perf_counter()))
            release.get(timeout=WAIT * 10)
            c.kv.put(key, "v", release=sid)
            if release.get(timeout=WAIT * 10) == "stop":
                return

    try:
        samples = in_process(a.rounds, a.warmup, a.settle_ms / 1e3, candidate)
    finally:
        for c, s in zip(clients, sessions):
            try:
                c.session.destroy(s)
            except Exception:  # noqa: BLE001 - best-effort cleanup
                pass
    return {"what": "py-consul session+acquire handoff", "rounds": a.rounds, "samples_ms": samples}


def cmd_pg_advisory(a) -> dict:
    import psycopg

    # The usual recipe: each candidate holds a connection of its own and blocks in
    # pg_advisory_lock(key); the leader's pg_advisory_unlock lets the server hand
    # the lock to the next waiter, whose call then returns. autocommit, as such
    # loops run: a session-level lock outlives transactions anyway.
    key = int.from_bytes(a.election.encode()[:7].ljust(7, b"\0"), "big")
    conns = [psycopg.connect(a.url, autocommit=True, connect_timeout=int(WAIT)) for _ in range(2)]

    def candidate(idx, won, release, stop, max_terms):
        c = conns[idx]
        for _ in range(max_terms):
            c.execute("SELECT pg_advisory_lock(%s)", (key,))
            won.put((idx, time.perf_counter()))
            release.get(timeout=WAIT * 10)
            c.execute("SELECT pg_advisory_unlock(%s)", (key,))
            if release.get(timeout=WAIT * 10) == "stop":
                return

    try:
        samples = in_process(a.rounds, a.warmup, a.settle_ms / 1e3, candidate)
    finally:
        for c in conns:
            c.close()
    return {"what": "psycopg pg_advisory_lock handoff", "rounds": a.rounds, "samples_ms": samples}


def cmd_ballot_py(a) -> dict:
    import ballot

    clients = [ballot.connect(a.url, ttl=10) for _ in range(2)]
    elections = [c.election(a.election) for c in clients]

    def candidate(idx, won, cmds, stop, max_terms):
        e = elections[idx]
        for _ in range(max_terms):
            e.campaign(f"candidate-{idx}", timeout=WAIT * 10)
            won.put((idx, time.perf_counter()))
            cmds.get(timeout=WAIT * 10)
            e.resign()
            if cmds.get(timeout=WAIT * 10) == "stop":
                return

    try:
        samples = in_process(a.rounds, a.warmup, a.settle_ms / 1e3, candidate)
    finally:
        for e in elections:
            e.close()
        for c in clients:
            c.close()
    return {"what": "ballot Python binding handoff", "rounds": a.rounds, "samples_ms": samples}


class Proc:
    """A candidate process whose first stdout line means 'I lead'."""

    def __init__(self, argv: list[str]):
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                  start_new_session=True)

    def wait_line(self, timeout: float) -> float:
        sel = selectors.DefaultSelector()
        sel.register(self.p.stdout, selectors.EVENT_READ)
        try:
            if not sel.select(timeout):
                raise TimeoutError(f"no output from {self.p.args[0]} within {timeout} s")
            t = time.perf_counter()
        finally:
            sel.close()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.p.args[0]} exited with {self.p.wait(timeout=5)} before leading")
        return t

    def interrupt(self) -> None:
        self.p.send_signal(signal.SIGINT)

    def stop(self) -> None:
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGINT)
                self.p.wait(timeout=5)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.p.wait(timeout=5)
        if self.p.stdout:
            self.p.stdout.close()


def processes(rounds: int, warmup: int, startup: float, argv_for) -> list[float]:
    procs = [Proc(argv_for(0))]
    samples = []
    try:
        procs[0].wait_line(WAIT)
        leader = 0
        procs.append(Proc(argv_for(1)))
        t_start = time.monotonic()
        for r in range(warmup + rounds):
            time.sleep(startup)  # the waiting process connects and queues
            other = 1 - leader
            t0 = time.perf_counter()
            procs[leader].interrupt()
            t1 = procs[other].wait_line(WAIT)
            procs[leader].p.wait(timeout=WAIT)
            procs[leader].stop()
            procs[leader] = Proc(argv_for(leader))
            leader = other
            if r >= warmup:
                samples.append(ms(t1 - t0))
            if (r + 1) % 50 == 0:
                log(f"{r + 1}/{warmup + rounds} rounds, {time.monotonic() - t_start:.1f} s")
    finally:
        for p in procs:
            p.stop()
    return samples


def cmd_etcdctl(a) -> dict:
    env_ok = os.environ.get("ETCDCTL_API", "3") == "3"
    if not env_ok:
        raise SystemExit("ETCDCTL_API must be 3")
    samples = processes(a.rounds, a.warmup, a.startup_ms / 1e3,
                        lambda i: ["etcdctl", f"--endpoints={a.endpoint}", "elect", a.election, f"candidate-{i}"])
    return {"what": "etcdctl elect handoff (SIGINT to the leader -> successor prints)", "rounds": a.rounds,
            "samples_ms": samples}


def cmd_consul_lock(a) -> dict:
    samples = processes(a.rounds, a.warmup, a.startup_ms / 1e3,
                        lambda i: ["consul", "lock", f"-http-addr={a.addr}", a.election,
                                   "sh", "-c", f"echo candidate-{i}; exec sleep 3600"])
    return {"what": "consul lock handoff (SIGINT to the leader -> successor's command prints)", "rounds": a.rounds,
            "samples_ms": samples}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p, election):
        p.add_argument("--rounds", type=int, default=200)
        p.add_argument("--warmup", type=int, default=5)
        p.add_argument("--election", default=election)

    p = sub.add_parser("kazoo")
    p.add_argument("--hosts", required=True)
    p.add_argument("--settle-ms", type=float, default=20)
    common(p, "bench-kazoo")
    p = sub.add_parser("consul-py")
    p.add_argument("--addr", required=True)
    p.add_argument("--settle-ms", type=float, default=50)
    common(p, "bench-consul-py")
    p = sub.add_parser("etcdctl")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--startup-ms", type=float, default=400)
    common(p, "bench-etcdctl")
    p = sub.add_parser("consul-lock")
    p.add_argument("--addr", required=True)
    p.add_argument("--startup-ms", type=float, default=600)
    common(p, "bench-consul-lock")
    p = sub.add_parser("pg-advisory")
    p.add_argument("--url", required=True)
    p.add_argument("--settle-ms", type=float, default=20)
    common(p, "bench-pg-advisory")
    p = sub.add_parser("ballot-py")
    p.add_argument("--url", required=True)
    p.add_argument("--settle-ms", type=float, default=20)
    common(p, "bench-ballot-py")
    a = ap.parse_args()
    fn = {"ballot-py": cmd_ballot_py, "pg-advisory": cmd_pg_advisory, "kazoo": cmd_kazoo, "consul-py": cmd_consul_py, "etcdctl": cmd_etcdctl, "consul-lock": cmd_consul_lock}
    print(json.dumps(fn[a.cmd](a)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
