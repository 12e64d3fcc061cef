#!/usr/bin/env python3
"""ballot benchmarks, side by side with the native clients, on the same servers in the same run.

    python3 bench/run.py            # full run: writes bench/RESULTS.md, bench/plots/*.png, bench/results.json
    python3 bench/run.py --quick    # a couple of minutes, only to keep the harness working; writes bench/quick/

It builds the Rust driver (crate ballot-bench) and the ballot CLI in release
mode, starts etcd, ZooKeeper, Consul, PostgreSQL and PgBouncer on loopback through
tests/servers/harness.py into its own state directory (stopped by PID at exit,
also on failure or Ctrl-C), runs each measurement with progress and timings on
stderr, and writes the report. Python packages it needs (matplotlib, kazoo,
py-consul, psycopg) are installed into a venv (BALLOT_BENCH_VENV, default
~/.cache/ballot-bench-venv) when the running interpreter lacks them.

Figures are measurements, never assertions: nothing here fails because a
number is large. A measurement that fails is reported as failed, and the run
goes on.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
HARNESS = os.path.join(ROOT, "tests", "servers", "harness.py")
PY_DEPS = {"matplotlib": "matplotlib", "kazoo": "kazoo", "consul": "py-consul", "psycopg": "psycopg[binary]"}
VENV = os.environ.get("BALLOT_BENCH_VENV", os.path.expanduser("~/.cache/ballot-bench-venv"))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BACKENDS = ["local", "etcd", "zk", "consul", "pg", "pgpool"]
NAMES = {"local": "local (file)", "etcd": "etcd", "zk": "ZooKeeper", "consul": "Consul", "pg": "PostgreSQL",
         "pgpool": "PostgreSQL via PgBouncer (polling)"}
# The harness kinds each backend needs.
SERVERS = {"local": [], "etcd": ["etcd"], "zk": ["zk"], "consul": ["consul", "consul-default"], "pg": ["pg"], "pgpool": ["pg", "pgbouncer"]}
# ballot opens two connections per client on a direct PostgreSQL URL (queries, and LISTEN): the scale section's
# N = 1000 needs 2,000 of them, and the harness's server allows 500 unless told otherwise. Each idle server
# process takes a few MiB; 2,200 fit this machine's memory.
PG_MAX_CONNECTIONS = 2200
T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def ensure_python_deps() -> None:
    """Re-executes under a venv that has matplotlib, kazoo, py-consul and psycopg, made when missing."""
    missing = []
    for mod in PY_DEPS:
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if not missing:
        return
    if os.environ.get("BALLOT_BENCH_REEXEC"):
        raise SystemExit(f"error: still missing Python modules after installing them: {missing}")
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        log(f"creating venv {VENV}")
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    check = subprocess.run([py, "-c", "import " + ",".join(PY_DEPS)], capture_output=True)
    if check.returncode != 0:
        log(f"installing {', '.join(PY_DEPS.values())} into {VENV}")
        subprocess.run([py, "-m", "pip", "install", "-q", *PY_DEPS.values()], check=True)
    os.environ["BALLOT_BENCH_REEXEC"] = "1"
    os.execv(py, [py, os.path.abspath(__file__), *sys.argv[1:]])


# ---------------------------------------------------------------- profiles

FULL = dict(rounds=200, warmup=5, proc_rounds=200, scale=[2, 10, 100, 1000], scale_rounds=100,
            scale_rounds_big=20, failover=20, fp_elections=10000, fp_clients=100)
QUICK = dict(rounds=20, warmup=2, proc_rounds=8, scale=[2, 10], scale_rounds=10, scale_rounds_big=10,
             failover=2, fp_elections=200, fp_clients=10)
SETTLE_MS = {"local": 20, "etcd": 20, "zk": 20, "consul": 50, "pg": 20, "pgpool": 20}
# A random extra pause before each resign (ms): through PgBouncer the successor polls every 100 ms, and rounds
# of a fixed period would fall into step with that poll and show one phase of it only.
JITTER_MS = {"pgpool": 100}


# ---------------------------------------------------------------- servers and processes

class Servers:
    """The harness's servers in a state directory of our own; stopped by PID at exit."""

    def __init__(self, keep: bool, kinds: list[str]):
        self.dir = tempfile.mkdtemp(prefix="ballot-bench.")
        self.keep = keep
        self.kinds = kinds
        self.env: dict = {}
        self.started = False
        atexit.register(self.stop)

    def start(self) -> None:
        if not self.kinds:
            return
        log(f"starting {', '.join(self.kinds)} through tests/servers/harness.py")
        self.started = True
        subprocess.run([sys.executable, HARNESS, "start", *self.kinds, "--zk-tick-ms", "1000",
                        "--pg-max-connections", str(PG_MAX_CONNECTIONS), "--dir", self.dir],
                       check=True, stdout=subprocess.DEVNULL, timeout=180)
        with open(os.path.join(self.dir, "env.json")) as f:
            self.env = json.load(f)
        log(f"servers ready in {self.dir}")

    def stop(self) -> None:
        if self.started and not self.keep:
            self.started = False
            subprocess.run([sys.executable, HARNESS, "stop", "--dir", self.dir], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60)
            shutil.rmtree(self.dir, ignore_errors=True)


# Every measurement that failed in this run, for --strict.
FAILED: list[str] = []


def run_json(argv: list[str], timeout: float, what: str) -> dict:
    """Runs a measurement process; returns its JSON, or {"error": ...} when it failed."""
    out = _run_json(argv, timeout, what)
    if "error" in out:
        FAILED.append(f"{what}: {out['error']}")
    return out


def _run_json(argv: list[str], timeout: float, what: str) -> dict:
    t = time.monotonic()
    log(f"{what}: running")
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"{what}: TIMEOUT after {timeout:.0f} s")
        return {"error": f"no result within {timeout:.0f} s"}
    dt = time.monotonic() - t
    if p.returncode != 0:
        err = (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]
        log(f"{what}: FAILED in {dt:.1f} s: {err}")
        return {"error": err}
    try:
        out = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        log(f"{what}: FAILED in {dt:.1f} s: no JSON on stdout")
        return {"error": "no JSON result"}
    out["wall_s"] = round(dt, 1)
    if isinstance(out.get("url"), str):
        # The harness's throwaway password stays out of results.json.
        out["url"] = re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", out["url"])
    if "samples_ms" in out:
        s = summary(out["samples_ms"])
        log(f"{what}: done in {dt:.1f} s: n={s['n']} p50={fmt(s['p50'])} ms p99={fmt(s['p99'])} ms")
    else:
        log(f"{what}: done in {dt:.1f} s")
    return out


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    k = min(len(s) - 1, max(0, int(round(q / 100 * len(s) + 0.5)) - 1))  # nearest rank
    return s[k]


def summary(xs: list[float]) -> dict:
    return {"n": len(xs), "p50": pct(xs, 50), "p99": pct(xs, 99), "max": max(xs) if xs else None,
            "mean": statistics.fmean(xs) if xs else None}


def fmt(v, digits: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.{digits}f}"
    return str(v)


# ---------------------------------------------------------------- the bench

class Bench:
    def __init__(self, args, prof: dict, servers: Servers):
        self.a = args
        self.p = prof
        self.s = servers
        self.driver = os.path.join(TARGET, "release", "ballot-bench")
        self.cli = os.path.join(TARGET, "release", "ballot")
        self.peers = [sys.executable, os.path.join(BENCH, "peers", "peers.py")]
        self.local_dir = os.path.join(servers.dir, "local")
        self.backends = [b for b in BACKENDS if not args.backends or b in args.backends]
        self.r: dict = {"handoff": {}, "floor": {}, "peers": {}, "scale": {}, "failover": {}, "footprint": {},
                        "surfaces": {}, "errors": []}

    # URLs and addresses
    def url(self, b: str, extra: str = "") -> str:
        e = self.s.env
        # PostgreSQL in plain text on loopback, as every other server here (TLS is the default, `prefer`).
        # Through PgBouncer, pooler=transaction says so up front, rather than the 500 ms probe at connect.
        base = {"local": f"file://{self.local_dir}", "etcd": e.get("BALLOT_TEST_ETCD"),
                "zk": e.get("BALLOT_TEST_ZK"), "consul": e.get("BALLOT_TEST_CONSUL"),
                "pg": f"{e.get('BALLOT_TEST_PG_URL')}?sslmode=disable",
                "pgpool": f"{e.get('BALLOT_TEST_PGBOUNCER_URL')}?sslmode=disable&pooler=transaction"}[b]
        return base + (("&" if "?" in base else "?") + extra if extra else "")

    def addr(self, b: str) -> str:
        e = self.s.env
        return {"local": self.local_dir, "etcd": f"127.0.0.1:{e.get('BALLOT_TEST_ETCD_PORT')}",
                "zk": e.get("BALLOT_TEST_ZK_CONNECT"), "consul": e.get("BALLOT_TEST_CONSUL_HTTP_ADDR"),
                "pg": self.url("pg"), "pgpool": self.url("pgpool")}[b]

    def counter(self, b: str) -> list[str]:
        return {"local": [], "etcd": ["--count", f"etcd:{self.addr('etcd')}"], "zk": ["--count", f"zk:{self.addr('zk')}"],
                "consul": ["--count", "consul"], "pg": ["--count", "pg"], "pgpool": ["--count", "pg"]}[b]

    def jitter(self, b: str) -> list[str]:
        return ["--jitter-ms", str(JITTER_MS[b])] if b in JITTER_MS else []

    def want(self, section: str) -> bool:
        return not self.a.only or section in self.a.only

    # 1 and 2
    def handoff_and_floor(self) -> None:
        p = self.p
        # Warm the servers first: ZooKeeper is a JVM, and whichever client ran first
        # would pay for its JIT. Every client below, ballot and peers, meets a warm server.
        for b in self.backends:
            # Through PgBouncer every handoff waits for a poll: pg's warm-up serves it too.
            if b not in ("local", "pgpool"):
                run_json([self.driver, "handoff", "--url", self.url(b), "--election", f"bench-warmup-{b}",
                          "--rounds", str(5 * p["rounds"]), "--warmup", "0", "--settle-ms", "1"],
                         600, f"server warm-up {b} (not reported)")
        for b in self.backends:
            self.r["handoff"][b] = run_json(
                [self.driver, "handoff", "--url", self.url(b), "--election", f"bench-handoff-{b}",
                 "--rounds", str(p["rounds"]), "--warmup", str(p["warmup"]), "--settle-ms", str(SETTLE_MS[b]),
                 *self.jitter(b)],
                600, f"handoff ballot {b}")
            if b == "pgpool":
                continue  # no notification through a transaction pooler: the floor is pg's
            self.r["floor"][b] = run_json(
                [self.driver, "floor", "--kind", b, "--addr", self.addr(b), "--rounds", str(p["rounds"])],
                600, f"floor {b}")

    # 3
    def peer_runs(self) -> None:
        p, e = self.p, self.s.env
        rounds, warm = str(p["rounds"]), str(p["warmup"])
        prounds = str(p["proc_rounds"])
        runs = {
            "etcd": {
                "etcd Election RPC (etcd-client crate)": [self.driver, "etcd-rpc", "--addr", self.addr("etcd"),
                                                          "--rounds", rounds, "--warmup", warm],
                "etcdctl elect (processes)": [*self.peers, "etcdctl", "--endpoint", e.get("BALLOT_TEST_ETCD_ENDPOINTS", ""),
                                              "--rounds", prounds, "--warmup", "2"],
            },
            "zk": {
                "kazoo Election (Python)": [*self.peers, "kazoo", "--hosts", self.addr("zk"), "--rounds", rounds,
                                            "--warmup", warm],
            },
            "consul": {
                "py-consul session+acquire (Python)": [*self.peers, "consul-py", "--addr", self.addr("consul"),
                                                       "--rounds", rounds, "--warmup", warm],
                "consul lock (processes)": [*self.peers, "consul-lock", "--addr", self.addr("consul"),
                                            "--rounds", prounds, "--warmup", "2"],
            },
        }
        runs["pg"] = {
            "psycopg pg_advisory_lock (Python)": [*self.peers, "pg-advisory", "--url", self.url("pg"),
                                                  "--rounds", rounds, "--warmup", warm],
        }
        runs = {b: x for b, x in runs.items() if b in self.backends}
        curator = self.curator_cmd(rounds, warm) if "zk" in runs else None
        if curator:
            runs["zk"]["Curator LeaderLatch (Java)"] = curator
        if "etcd" in runs and self.node_peers():
            runs["etcd"]["etcd3 Election (Node)"] = [
                "node", os.path.join(BENCH, "peers", "etcd3_election.js"), e.get("BALLOT_TEST_ETCD_ENDPOINTS", ""), rounds,
                warm, str(SETTLE_MS["etcd"]), "bench-etcd3"]
        for b, peers in runs.items():
            self.r["peers"][b] = {}
            for name, argv in peers.items():
                self.r["peers"][b][name] = run_json(argv, 1200, f"peer {b}: {name}")

    def node_peers(self) -> bool:
        """Installs the etcd3 npm package for the Node peer (npm ci, from its lock file) when missing."""
        d = os.path.join(BENCH, "peers", "node")
        if not (shutil.which("node") and shutil.which("npm")):
            self.r["errors"].append("etcd3 (Node): node or npm is missing; skipped")
            return False
        stamp = os.path.join(d, "node_modules", ".package-lock.json")
        if os.path.exists(stamp) and os.path.getmtime(stamp) >= os.path.getmtime(os.path.join(d, "package-lock.json")):
            return True
        log("peers: npm ci in bench/peers/node (the etcd3 package)")
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=d, capture_output=True, text=True,
                           timeout=1800)
        if r.returncode != 0:
            self.r["errors"].append(f"etcd3 (Node): npm ci failed: {r.stderr.strip()[-300:]}")
            return False
        return True

    def curator_cmd(self, rounds: str, warm: str) -> list[str] | None:
        jar = "/usr/share/java/curator-recipes.jar"
        if not (os.path.exists(jar) and shutil.which("javac") and shutil.which("java")):
            self.r["errors"].append("Curator: libcurator-recipes-java or a JDK is missing; skipped")
            return None
        out = os.path.join(self.s.dir, "java")
        os.makedirs(out, exist_ok=True)
        cp = f"{jar}:/usr/share/java/slf4j-nop.jar"
        r = subprocess.run(["javac", "-cp", cp, "-d", out, os.path.join(BENCH, "peers", "CuratorLatch.java")],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            self.r["errors"].append(f"Curator: javac failed: {r.stderr.strip()[-300:]}")
            return None
        return ["java", "-Xmx256m", "-cp", f"{cp}:{out}", "CuratorLatch", self.addr("zk"), rounds, warm,
                str(SETTLE_MS["zk"]), "/bench-curator"]

    # 4
    def scale(self) -> None:
        p = self.p
        for b in self.backends:
            self.r["scale"][b] = {}
            for n in p["scale"]:
                if b == "pg" and 2 * n > PG_MAX_CONNECTIONS - 20:
                    why = (f"not measured: {n} clients hold {2 * n} server connections (queries and LISTEN), "
                           f"over the harness server's max_connections={PG_MAX_CONNECTIONS}; see the PgBouncer row")
                    log(f"scale {b} N={n}: {why}")
                    self.r["scale"][b][str(n)] = {"skipped": why}
                    continue
                rounds = p["scale_rounds"] if n <= 100 else p["scale_rounds_big"]
                self.r["scale"][b][str(n)] = run_json(
                    [self.driver, "handoff", "--url", self.url(b), "--election", f"bench-scale-{b}-{n}",
                     "--rounds", str(rounds), "--warmup", "3", "--waiters", str(n - 1),
                     "--settle-ms", str(SETTLE_MS[b]), *self.jitter(b), "--timeout-s", "120", "--budget-s", "240",
                     *self.counter(b)],
                    600, f"scale {b} N={n}")

    # 5
    def failover(self) -> None:
        ttl = {"local": "", "etcd": "ttl=3s", "zk": "session_timeout=3s", "consul": "ttl=10s&lock_delay=0s",
               "pg": "ttl=3s", "pgpool": "ttl=3s"}
        results: dict = {}
        threads = []
        for b in self.backends:
            t = threading.Thread(target=lambda b=b: results.__setitem__(b, self.failover_one(b, ttl[b])))
            t.start()
            threads.append(t)
        for t in threads:
            t.join(timeout=3600)
        for b in self.backends:
            r = results.get(b, {"error": "did not finish"})
            r["ttl"] = ttl[b] or "none (the kernel frees the flock)"
            self.r["failover"][b] = r

    def failover_one(self, b: str, opts: str) -> dict:
        url = self.url(b, opts)
        election = f"bench-failover-{b}"
        samples: list[float] = []
        procs: list[subprocess.Popen] = []

        def start() -> subprocess.Popen:
            p = subprocess.Popen([self.cli, "--backend", url, "campaign", election, "v", "--monotonic"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            procs.append(p)
            return p

        def elected(p: subprocess.Popen, timeout: float) -> int:
            box: list = []

            def read():
                for line in p.stdout:
                    if line.startswith("elected"):
                        box.append(int(line.rsplit("mono_ns=", 1)[1]))
                        return

            t = threading.Thread(target=read, daemon=True)
            t.start()
            t.join(timeout)
            if not box:
                raise TimeoutError(f"no 'elected' within {timeout:.0f} s")
            return box[0]

        t_start = time.monotonic()
        try:
            leader = start()
            elected(leader, 60)
            waiter = start()
            for i in range(self.p["failover"]):
                time.sleep(1.0)  # the waiter connects and queues
                t0 = time.monotonic_ns()
                leader.send_signal(signal.SIGKILL)
                t1 = elected(waiter, 120)
                leader.wait(timeout=10)
                samples.append((t1 - t0) / 1e6)
                leader, waiter = waiter, start()
                log(f"failover {b}: trial {i + 1}/{self.p['failover']}: {samples[-1]:.0f} ms")
        except Exception as e:  # noqa: BLE001 - reported, the run goes on
            log(f"failover {b}: FAILED: {e}")
            return {"error": str(e), "samples_ms": samples}
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait(timeout=5)
        return {"samples_ms": samples, "wall_s": round(time.monotonic() - t_start, 1)}

    # 7
    def surfaces(self) -> None:
        """The same handoff through the C ABI, Python and Node, next to Rust (section 1's figures)."""
        argv = {}
        try:
            argv = build_surfaces(self.s.dir)
        except Exception as e:  # noqa: BLE001 - reported, the run goes on
            self.r["errors"].append(f"surfaces: build failed: {e}")
            log(f"surfaces: build FAILED: {e}")
        # Not through PgBouncer: the surface drivers have no jitter, and their rounds would fall into step with
        # the 100 ms poll.
        for b in [x for x in self.backends if x != "pgpool"]:
            self.r["surfaces"][b] = {}
            # Rust again, in this section, so that the surfaces compare within minutes of each other.
            self.r["surfaces"][b]["Rust"] = run_json(
                [self.driver, "handoff", "--url", self.url(b), "--election", f"bench-surface-rust-{b}",
                 "--rounds", str(self.p["rounds"]), "--warmup", str(self.p["warmup"]), "--settle-ms",
                 str(SETTLE_MS[b])], 600, f"surface {b}: Rust")
            for name, cmd in argv.items():
                rounds, warm, settle = str(self.p["rounds"]), str(self.p["warmup"]), str(SETTLE_MS[b])
                election = f"bench-surface-{name.split()[0].lower()}-{b}"
                if name.startswith("Python"):
                    full = [*cmd, "--url", self.url(b), "--rounds", rounds, "--warmup", warm, "--settle-ms", settle,
                            "--election", election]
                else:
                    full = [*cmd, self.url(b), rounds, warm, settle, election]
                self.r["surfaces"][b][name] = run_json(full, 900, f"surface {b}: {name}")

    # 6
    def footprint(self) -> None:
        p = self.p
        for b in self.backends:
            one_url = self.url(b)
            if b == "consul":
                # One client against an agent with Consul's default limits (200 HTTP connections per client
                # address), as a new user runs it: the client keeps its connections under that limit.
                one_url = f"{self.s.env.get('BALLOT_TEST_CONSUL_DEFAULT')}"
            one = run_json([self.driver, "footprint", "--url", one_url, "--clients", "1",
                            "--elections", str(p["fp_elections"])], 900, f"footprint {b} 1 client")
            if b == "consul" and "error" not in one:
                one["agent_limits"] = "default"
            # Many clients in one process all connect from 127.0.0.1, where a deployment's come from many
            # hosts: for Consul they use the agent that allows 8192 connections per address.
            self.r["footprint"][b] = {
                "one client": one,
                "many clients": run_json([self.driver, "footprint", "--url", self.url(b), "--clients",
                                          str(p["fp_clients"]), "--elections", str(p["fp_clients"])], 900,
                                         f"footprint {b} {p['fp_clients']} clients"),
            }


# ---------------------------------------------------------------- report

def machine_facts(servers: Servers) -> dict:
    e = servers.env
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit.stdout.strip(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "etcd": e.get("BALLOT_TEST_ETCD_VERSION"),
        "zk": e.get("BALLOT_TEST_ZK_VERSION"),
        "consul": e.get("BALLOT_TEST_CONSUL_VERSION"),
        "pg": e.get("BALLOT_TEST_PG_VERSION"),
        "pgbouncer": e.get("BALLOT_TEST_PGBOUNCER_VERSION"),
    }


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def targets_section(r: dict, ratios: dict, sm) -> list[str]:
    """The issue's targets next to this run's figures, each met or missed by how much."""
    rows: list[tuple[str, str, float | None, float, str]] = []  # (target, backend, value, limit, unit)

    ran = {b for k in ("handoff", "peers", "scale", "failover", "footprint", "surfaces") for b in r.get(k) or {}}

    def add(target: str, b: str, value: float | None, limit: float, unit: str = "") -> None:
        if b in ran:  # a backend this run (or a merged one) measured at all
            rows.append((target, NAMES[b], value, limit, unit))

    for b in ["etcd", "zk"]:
        add("handoff p50 <= 2 ms", b, sm(r["handoff"].get(b))["p50"], 2.0, " ms")
    # On a direct connection; through PgBouncer the successor polls every 100 ms (the handoff table says what
    # that costs).
    add("handoff p50 <= 3 ms", "pg", sm(r["handoff"].get("pg"))["p50"], 3.0, " ms")
    for b in BACKENDS:
        if b in ratios:
            add(f"ballot / best peer ({ratios[b][0]}) at p50 <= 1.0", b, ratios[b][1], 1.0)
    # The performance issue names Curator's LeaderLatch as ZooKeeper's peer; the best peer may be another.
    curator = sm((r["peers"].get("zk") or {}).get("Curator LeaderLatch (Java)"))["p50"]
    zk = sm(r["handoff"].get("zk"))["p50"]
    if curator and zk is not None and ratios.get("zk", ("",))[0] != "Curator LeaderLatch (Java)":
        add("ballot / Curator LeaderLatch (Java) at p50 <= 1.0", "zk", zk / curator, 1.0)
    for b in BACKENDS:
        if b == "pgpool":
            continue  # no notification through the pooler: no floor
        h, fl = sm(r["handoff"].get(b))["p50"], sm(r["floor"].get(b))["p50"]
        add("handoff p50 / floor p50 <= 3", b, h / fl if h is not None and fl else None, 3.0)
    # The second performance issue's own target for local: 15 times the bare flock handoff (its floor).
    h, fl = sm(r["handoff"].get("local"))["p50"], sm(r["floor"].get("local"))["p50"]
    add("local: handoff p50 / bare flock handoff p50 <= 15", "local", h / fl if h is not None and fl else None, 15.0)
    for b in BACKENDS:
        sc = r["scale"].get(b) or {}
        lo, hi = sm(sc.get("2"))["p50"], sm(sc.get("1000"))["p50"]
        add("scale: p50 at N = 1000 / p50 at N = 2 <= 1.5", b, hi / lo if lo and hi is not None else None, 1.5)
        q = {n: ((sc.get(n) or {}).get("requests") or {}).get("per_handoff") for n in ["2", "100", "1000"]}
        if q["2"]:
            for n in ["100", "1000"]:
                add(f"scale: requests per handoff at N = {n} / at N = 2 (flat: <= 1.5)", b,
                    q[n] / q["2"] if q[n] is not None else None, 1.5)
    for b in ["pg", "pgpool"]:
        x = r["failover"].get(b)
        if x:
            ttl_s = float(x.get("ttl", "ttl=3s").split("=")[1].rstrip("s"))
            add(f"failover p99 <= TTL + 1 s ({ttl_s + 1:.0f} s)", b,
                sm(x)["p99"] / 1e3 if sm(x)["p99"] is not None else None, ttl_s + 1, " s")
    for b in BACKENDS:
        x = next((v for v in (r["footprint"].get(b) or {}).values() if v and v.get("elections") == 10000), None)
        add("footprint: RSS of 10,000 elections on one client <= 100 MB", b,
            x["rss_kib_holding"] * 1024 / 1e6 if x else None, 100.0, " MB")
        add("footprint: OS threads of that process <= 8", b, float(x["threads_holding"]) if x else None, 8.0)
    for b in BACKENDS:
        sf = r.get("surfaces", {}).get(b) or {}
        rust = sm(sf.get("Rust"))["p50"]
        for name in ["Python binding", "Node binding"]:
            v = sm(sf.get(name))["p50"]
            if name in sf:
                add(f"surfaces: {name} p50 / Rust p50 <= 1.2", b, v / rust if rust and v is not None else None, 1.2)
    if not rows:
        return []
    L = ["## Targets", "",
         "The targets of the benchmark issue against this run. A miss says by how much; `bench/ANALYSIS.md` "
         "(appended below) says why and what would fix it. The footprint process's thread count includes the "
         "benchmark's own runtime (3 threads before the first client). Requests per handoff are the idle-"
         "subtracted figures of the scale table; at N = 1000 the keepalives and pings of 1,000 sessions are "
         "tens of times the traffic of a handoff, so that ratio carries the noise of the subtraction, and the "
         "N = 100 one is the precise check.", "",
         "| target | backend | measured | limit | verdict |", "|---|---|---:|---:|---|"]
    for target, name, value, limit, unit in rows:
        if value is None:
            L.append(f"| {target} | {name} | – | {fmt(limit)}{unit} | not measured (see the tables above) |")
            continue
        if value < 0:
            verdict = "inconclusive: below zero after subtracting the idle traffic"
        else:
            verdict = "met" if value <= limit else f"**missed** by {100 * (value / limit - 1):.0f}%"
        L.append(f"| {target} | {name} | {fmt(value)}{unit} | {fmt(limit)}{unit} | {verdict} |")
    return L + [""]


def write_report(r: dict, out_dir: str, quick: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = os.path.join(out_dir, "plots")
    os.makedirs(plots, exist_ok=True)
    L: list[str] = []
    f = r["facts"]
    L += ["# ballot benchmarks", ""]
    if quick:
        L += ["**Quick mode** (`--quick`): a handful of rounds only, to keep the harness working. "
              "These figures mean nothing; see bench/RESULTS.md for a full run.", ""]
    L += [
        "Written by `python3 bench/run.py` (see bench/README.md). Each section was measured in one run, "
        "ballot and the native clients against the same servers, started by `tests/servers/harness.py` on "
        "loopback" + (" (the sections named below come from a later run)" if r.get("later_runs") else "")
        + ". Figures are measurements, not assertions.",
        "",
        f"- Run: {f['date']}, commit `{f['commit']}`, {f['cpus']} CPUs, Linux {f['kernel']}; "
        f"etcd {f['etcd']}, ZooKeeper {f['zk']}, Consul {f['consul']}, PostgreSQL {f.get('pg')}, PgBouncer "
        f"{f.get('pgbouncer')}; release build.",
        f"- Load average at start {r['load_start']}, at end {r['load_end']} (the first figure includes the release "
        "build just before). The machine has 2 CPUs; other work on it, if any, shows in these averages and in the "
        "tails (p99, max).",
        f"- Total time {r['total_s']:.0f} s.",
        *[f"- Sections {', '.join(x['sections'])}"
          + (f" for {', '.join(NAMES.get(b, b) for b in x['backends'])}" if x.get("backends") else "")
          + f" come from a later run of the same command with `--only ... --merge`: {x['date']}, commit "
          f"`{x['commit']}`, load average {x['load_start']} -> {x['load_end']}, {x['total_s']:.0f} s."
          for x in r.get("later_runs", [])],
        "- Percentiles are nearest-rank over the timed rounds; warm-up rounds are not counted.",
        "",
    ]
    if r["errors"]:
        L += ["Problems in this run:", ""] + [f"- {e}" for e in r["errors"]] + [""]

    def sm(x: dict | None) -> dict:
        if not x or "samples_ms" not in x:
            return summary([])
        return summary(x["samples_ms"])

    def err(x: dict | None) -> str:
        return f"failed: {x['error']}" if x and "error" in x else ""

    # 1-3 summary table
    L += ["## Graceful handoff: ballot, the server's floor, and the best peer", "",
          "Handoff = the leader resigns (or releases) at t0; the waiting candidate's campaign returns at t1. "
          "Two candidates, each with its own session. The floor is the server's own notification latency "
          "(etcd: delete -> watch event; ZooKeeper: delete -> exists-watch event; Consul: release -> blocking "
          "query returns; local: flock unlock -> the blocked flock returns; PostgreSQL: NOTIFY on one connection "
          "-> another connection's LISTEN receives it). Through PgBouncer in transaction mode there is no "
          "notification: the successor polls every 100 ms (a random 0-100 ms pause before each resign keeps the "
          "rounds out of step with the poll), so that row has no floor and shows what the polling costs.", "",
          "| backend | ballot p50 | ballot p99 | floor p50 | floor p99 | best peer | peer p50 | peer p99 "
          "| ballot / peer (p50) | ballot / peer (p99) |",
          "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    ratios = {}
    for b in BACKENDS:
        if b not in r["handoff"]:
            continue
        h, fl = sm(r["handoff"].get(b)), sm(r["floor"].get(b))
        peers = {k: sm(v) for k, v in r["peers"].get(b, {}).items() if v and "samples_ms" in v and v["samples_ms"]}
        best = min(peers.items(), key=lambda kv: kv[1]["p50"]) if peers else None
        row = f"| {NAMES[b]} | {fmt(h['p50'])} | {fmt(h['p99'])} | {fmt(fl['p50'])} | {fmt(fl['p99'])} |"
        if best and h["p50"] is not None:
            r50, r99 = h["p50"] / best[1]["p50"], h["p99"] / best[1]["p99"]
            ratios[b] = (best[0], r50, r99)
            row += f" {best[0]} | {fmt(best[1]['p50'])} | {fmt(best[1]['p99'])} | {r50:.2f} | {r99:.2f} |"
        else:
            row += " (none) | – | – | – | – |"
        L.append(row)
    L += ["", "All times in milliseconds. A ratio below 1 means ballot hands off faster than that peer.", ""]
    for b in BACKENDS:
        for name, x in [("ballot", r["handoff"].get(b)), ("floor", r["floor"].get(b))]:
            if err(x):
                L.append(f"- {NAMES[b]} {name}: {err(x)}")
    L.append("")

    # peers detail
    L += ["## Every client, same server, same run", "",
          "| backend | client | n | p50 | p99 | max | mean |", "|---|---|---:|---:|---:|---:|---:|"]
    for b in BACKENDS:
        if b not in r["handoff"] and b not in r["peers"]:
            continue
        rows = [("ballot (Rust)", r["handoff"].get(b))]
        if b != "pgpool":
            rows.append(("floor (server notification)", r["floor"].get(b)))
        rows += list(r["peers"].get(b, {}).items())
        for name, x in rows:
            s = sm(x)
            note = f" ({err(x)})" if err(x) else ""
            L.append(f"| {NAMES[b]} | {name}{note} | {s['n']} | {fmt(s['p50'])} | {fmt(s['p99'])} | "
                     f"{fmt(s['max'])} | {fmt(s['mean'])} |")
    L += ["", "How each peer is driven:", "",
          "- **etcd Election RPC**: etcd's server-side `v3electionpb.Election` service through the `etcd-client` "
          "crate, two clients with a lease each in one process (`ballot-bench etcd-rpc`).",
          "- **etcdctl elect** and **consul lock**: two processes; SIGINT to the leading one at t0 (it resigns or "
          "releases, then exits), t1 when the waiting one prints that it leads (for `consul lock`, when its child "
          "`sh -c 'echo ..'` prints). These include signal handling and a pipe write, and for `consul lock` a "
          "fork+exec of the child, so they are an upper bound on the recipe itself.",
          "- **etcd3 (Node)**: the `etcd3` npm package's `election(name).campaign(value)`, two `Etcd3` clients in "
          "one process; `campaign.resign()` at t0, the other campaign's `wait()` resolves at t1 "
          "(bench/peers/etcd3_election.js, the package pinned by bench/peers/node/package-lock.json).",
          "- **kazoo**: `client.Election(path).run(func)`, two KazooClients on threads in one process.",
          "- **Curator LeaderLatch**: two CuratorFrameworks in one JVM; `close()` of the leader's latch at t0, "
          "`await()` of the other returns at t1 (bench/peers/CuratorLatch.java, Debian's Curator 5.4.0 jars).",
          "- **py-consul**: session + `kv.put(acquire=)`, and on failure a blocking `kv.get(index=)` until the "
          "lock is free, the usual lock loop; two clients on threads in one process.",
          "- **psycopg pg_advisory_lock**: the usual PostgreSQL recipe, two psycopg 3 connections on threads in one "
          "process (autocommit); each candidate blocks in `SELECT pg_advisory_lock(k)`, the leader's "
          "`SELECT pg_advisory_unlock(k)` at t0, the other's call returns at t1. It has no fencing term and no "
          "value, and the lock lives as long as that one connection.",
          "- **ballot**: `Election::campaign` / `resign` from Rust, one `Client` per candidate in one process "
          "(`ballot-bench handoff`). PostgreSQL without TLS on loopback (`sslmode=disable`), as every server "
          "here; through PgBouncer with `pooler=transaction`.", ""]

    # plot: handoff CDFs
    shown = [b for b in BACKENDS if b in r["handoff"]]
    # `--only scale` (or any run without the handoff section) has nothing to draw here.
    if shown:
        fig, axes = plt.subplots(1, len(shown), figsize=(4.5 * len(shown), 4.2), squeeze=False)
        axes = axes[0]
        for ax, b in zip(axes, shown):
            series = [("ballot", r["handoff"].get(b)), ("floor", r["floor"].get(b))] + list(r["peers"].get(b, {}).items())
            for name, x in series:
                if x and x.get("samples_ms"):
                    xs = sorted(x["samples_ms"])
                    ax.plot(xs, [(i + 1) / len(xs) for i in range(len(xs))], label=name,
                            linewidth=2.2 if name == "ballot" else 1.2, linestyle="--" if name == "floor" else "-")
            ax.set_xscale("log")
            ax.set_title(NAMES[b])
            ax.set_xlabel("handoff latency (ms, log)")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7, loc="lower right")
        axes[0].set_ylabel("fraction of handoffs")
        fig.tight_layout()
        fig.savefig(os.path.join(plots, "handoff.png"), dpi=110)
        plt.close(fig)
        L += ["![handoff latency CDFs](plots/handoff.png)", ""]

    # 4 scale
    if r["scale"]:
        L += ["## Scale: N candidates waiting on one election", "",
              "Same handoff, with N candidates (N-1 waiting). A cycle is: the leader resigns, the next one wins, "
              "and the resigned one campaigns again at the back of the queue. Requests per handoff count that "
              "whole cycle: etcd: the server's `grpc_server_msg_received_total` (all methods); ZooKeeper: "
              "`zk_packets_received` from `mntr`; both less the idle rate (keepalives, pings) measured for 2 s "
              "just before, times the duration. Consul: ballot's own count of acquire attempts on the lock key "
              "(`ballot::__consul_acquire_attempts`), which is what a herd would multiply. PostgreSQL: the "
              "statements ballot's clients send, counted on the wire by a proxy of the bench that every client "
              "of these rows connects through (one more loopback hop each way, so compare these rows with each "
              "other rather than with the handoff table), less session renewals, which the proxy tells apart "
              "by their text; the idle rate (waiting candidates looking again, and through PgBouncer their "
              "100 ms polls) is subtracted as for the others, and the idle / s column is that rate. local: no "
              "server to count.", "",
              "| backend | N | n | p50 | p99 | requests / handoff | raw / handoff | idle / s |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for b in BACKENDS:
            for n, x in r["scale"].get(b, {}).items():
                if x and "skipped" in x:
                    L.append(f"| {NAMES[b]} | {n} ({x['skipped']}) | | | | | | |")
                    continue
                s = sm(x)
                q = (x or {}).get("requests") or {}
                note = f" {err(x)}" if err(x) else ""
                if x and x.get("truncated"):
                    note += " (time budget spent: fewer rounds)"
                L.append(f"| {NAMES[b]} | {n}{note} | {s['n']} | {fmt(s['p50'])} | {fmt(s['p99'])} | "
                         f"{fmt(q.get('per_handoff'))} | {fmt(q.get('raw_per_handoff'))} | {fmt(q.get('idle_per_s'))} |")
        L.append("")
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2))
        for b in BACKENDS:
            pts = [(int(n), sm(x), (x or {}).get("requests") or {}) for n, x in r["scale"].get(b, {}).items()]
            pts = [p for p in pts if p[1]["p50"] is not None]
            if pts:
                a1.plot([p[0] for p in pts], [p[1]["p50"] for p in pts], marker="o", label=f"{NAMES[b]} p50")
                a1.plot([p[0] for p in pts], [p[1]["p99"] for p in pts], marker="x", linestyle=":",
                        label=f"{NAMES[b]} p99")
            # A log axis cannot show a figure that the idle subtraction took below zero.
            rq = [(p[0], p[2].get("per_handoff")) for p in pts if (p[2].get("per_handoff") or 0) > 0]
            if rq:
                a2.plot([p[0] for p in rq], [p[1] for p in rq], marker="o", label=NAMES[b])
        for ax, t in [(a1, "handoff latency (ms)"), (a2, "requests per handoff cycle")]:
            ax.set_xscale("log")
            ax.set_xlabel("candidates N (log)")
            ax.set_ylabel(t)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        a1.set_yscale("log")
        a2.set_yscale("log")
        fig.tight_layout()
        fig.savefig(os.path.join(plots, "scale.png"), dpi=110)
        plt.close(fig)
        L += ["![scale](plots/scale.png)", ""]

    # 5 failover
    if r["failover"]:
        L += ["## Crash failover", "",
              "Two `ballot campaign` processes (the CLI, release build); SIGKILL of the leader at t0; t1 is the "
              "CLOCK_MONOTONIC stamp the successor prints when it is elected. The TTL / session timeout is the "
              "configured one for this measurement; the server decides when the dead session ends.", "",
              "| backend | TTL / session timeout | n | p50 | p99 | max | min |", "|---|---|---:|---:|---:|---:|---:|"]
        for b in BACKENDS:
            if b not in r["failover"]:
                continue
            x = r["failover"].get(b) or {}
            s = sm(x)
            mn = min(x["samples_ms"]) if x.get("samples_ms") else None
            note = f" ({err(x)})" if err(x) else ""
            L.append(f"| {NAMES[b]}{note} | {x.get('ttl', '')} | {s['n']} | {fmt(s['p50'])} | {fmt(s['p99'])} | "
                     f"{fmt(s['max'])} | {fmt(mn)} |")
        L += ["", "Consul keeps a session whose TTL has run out for up to twice the TTL before it invalidates it, "
              "and `lock_delay=0s` was set so that the lock-delay (15 s by default) does not add to it. "
              "PostgreSQL: the server's clock ends the dead session's lease; the waiting candidate sleeps until "
              "that lease's expiry (read with its position) and looks again then.", ""]
        fig, ax = plt.subplots(figsize=(8, 4))
        data = [(NAMES[b], (r["failover"].get(b) or {}).get("samples_ms") or []) for b in BACKENDS]
        data = [(n, [v / 1e3 for v in xs]) for n, xs in data if xs]
        if data:
            ax.boxplot([d[1] for d in data])
            ax.set_xticks(range(1, len(data) + 1), [d[0] for d in data])
            ax.set_yscale("log")
            ax.set_ylabel("failover after SIGKILL (s, log)")
            ax.grid(True, which="both", alpha=0.3)
            fig.tight_layout()
            fig.savefig(os.path.join(plots, "failover.png"), dpi=110)
            L += ["![failover](plots/failover.png)", ""]
        plt.close(fig)

    # 6 footprint
    if r["footprint"]:
        L += ["## Footprint", "",
              "One process (`ballot-bench footprint`) leading many elections, each won by its only candidate; "
              "64 worker tasks campaign, each taking the next election once its last campaign won. "
              "RSS and threads from /proc/self/status, 3 s after the last campaign returned. The process's own "
              "tokio runtime has 2 workers; ballot's library runtime has its own 2.", "",
              "| backend | shape | elections | campaign all (s) | RSS before (MiB) | RSS holding (MiB) | peak (MiB) "
              "| threads before | threads holding |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for b in BACKENDS:
            for shape, x in (r["footprint"].get(b) or {}).items():
                if not x or "error" in x:
                    L.append(f"| {NAMES[b]} | {shape} | | {err(x)} | | | | | |")
                    continue
                label = "1 client" if x["clients"] == 1 else f"{x['clients']} clients"
                if x.get("agent_limits") == "default":
                    label += " (agent's default limits)"
                L.append(f"| {NAMES[b]} | {label} | {x['elections']} | {x['campaign_all_ms'] / 1e3:.1f} | "
                         f"{x['rss_kib_before'] / 1024:.1f} | {x['rss_kib_holding'] / 1024:.1f} | "
                         f"{x['hwm_kib'] / 1024:.1f} | {x['threads_before']} | {x['threads_holding']} |")
        L.append("")

    # 7 surfaces
    if r.get("surfaces") and any(r["surfaces"].values()):
        L += ["## Surfaces: the same handoff from C, Python and Node", "",
              "Two candidates, each with its own client, in one process of that language; resign at t0, the "
              "successor's campaign returns (C: its `ballot_election_campaign_async` callback; Python: "
              "`campaign()` on a thread; Node: the `campaign()` promise) at t1. Rust is measured again in "
              "this section, just before the others.", "",
              "| backend | surface | n | p50 | p99 | max |", "|---|---|---:|---:|---:|---:|"]
        for b in BACKENDS:
            rows = list((r["surfaces"].get(b) or {}).items())
            for name, x in rows:
                s = sm(x)
                note = f" ({err(x)})" if err(x) else ""
                L.append(f"| {NAMES[b]} | {name}{note} | {s['n']} | {fmt(s['p50'])} | {fmt(s['p99'])} | "
                         f"{fmt(s['max'])} |")
        L.append("")

    L += targets_section(r, ratios, sm)

    # where ballot loses
    L += ["## Ratios against the best peer", ""]
    for b in BACKENDS:
        if b not in r["handoff"]:
            continue
        if b in ratios:
            name, r50, r99 = ratios[b]
            verdict = "ballot is faster" if r50 < 1 else "**ballot is slower**"
            L.append(f"- {NAMES[b]}: ballot / {name} = {r50:.2f} at p50, {r99:.2f} at p99: {verdict} at p50.")
        elif b == "local":
            L.append(f"- {NAMES[b]}: no peer measured (the local backend has no native peer).")
        elif b == "pgpool":
            L.append(f"- {NAMES[b]}: no peer measured (session-level advisory locks do not work through a "
                     "transaction pooler).")
        else:
            L.append(f"- {NAMES[b]}: no peer measured in this run.")
    L.append("")
    analysis = r.get("analysis")
    if analysis:
        L += [analysis, ""]
    with open(os.path.join(out_dir, "RESULTS.md"), "w") as fh:
        fh.write("\n".join(L))
    log(f"wrote {os.path.join(out_dir, 'RESULTS.md')} and {plots}/")


# ---------------------------------------------------------------- main

def build() -> None:
    log(f"building ballot-bench and the ballot CLI (release, CARGO_TARGET_DIR={TARGET})")
    t = time.monotonic()
    subprocess.run(["nice", "-n", "10", "cargo", "build", "--release", "--locked", "-q", "-p", "ballot-bench",
                    "-p", "ballot-cli"], cwd=ROOT, check=True, timeout=3600)
    log(f"built in {time.monotonic() - t:.0f} s")


def build_surfaces(state_dir: str) -> dict:
    """Builds libballot (C ABI), the Python wheel (into this venv) and the Node addon; returns the argv
    prefix of each surface's handoff driver."""
    out = {}
    t = time.monotonic()
    log("surfaces: building libballot, the C driver, the Python package and the Node addon")
    subprocess.run(["nice", "-n", "10", "cargo", "build", "--release", "--locked", "-q", "-p", "ballot-ffi"],
                   cwd=ROOT, check=True, timeout=3600)
    lib = os.path.join(TARGET, "release")
    exe = os.path.join(state_dir, "handoff-c")
    subprocess.run(["cc", "-O2", "-Wall", "-I", os.path.join(ROOT, "include"),
                    os.path.join(BENCH, "peers", "handoff.c"), "-L", lib, "-lballot", f"-Wl,-rpath,{lib}",
                    "-lpthread", "-o", exe], check=True, timeout=300)
    out["C ABI"] = [exe]
    subprocess.run(["nice", "-n", "10", sys.executable, "-m", "pip", "install", "-q", "--force-reinstall",
                    "--no-deps", os.path.join(ROOT, "bindings", "python")], check=True, timeout=3600)
    out["Python binding"] = [sys.executable, os.path.join(BENCH, "peers", "peers.py"), "ballot-py"]
    node = os.path.join(ROOT, "bindings", "node")
    if shutil.which("node") and shutil.which("npm"):
        if not os.path.isdir(os.path.join(node, "node_modules")):
            # npm install may rewrite package-lock.json (see tests/run.sh); the bench must leave it as it is.
            lock = os.path.join(node, "package-lock.json")
            with open(lock, "rb") as fh:
                saved = fh.read()
            try:
                subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=node, check=True, timeout=1800,
                               stdout=subprocess.DEVNULL)
            finally:
                with open(lock, "wb") as fh:
                    fh.write(saved)
        subprocess.run(["nice", "-n", "10", "npm", "run", "build"], cwd=node, check=True, timeout=3600,
                       stdout=subprocess.DEVNULL)
        out["Node binding"] = ["node", os.path.join(BENCH, "peers", "handoff.js")]
    log(f"surfaces: built in {time.monotonic() - t:.0f} s")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a couple of minutes; writes bench/quick/ by default")
    ap.add_argument("--out", help="output directory (default: bench/, or bench/quick/ with --quick)")
    ap.add_argument("--only", nargs="*", choices=["handoff", "peers", "scale", "failover", "footprint", "surfaces"],
                    help="run only these sections")
    ap.add_argument("--backends", nargs="*", choices=BACKENDS,
                    help="run only these backends (pgpool: PostgreSQL through PgBouncer); only their servers start")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already in CARGO_TARGET_DIR")
    ap.add_argument("--keep-servers", action="store_true", help="leave the servers running (debugging)")
    ap.add_argument("--strict", action="store_true",
                    help="exit with status 1 when any measurement or build failed (the test command uses it)")
    ap.add_argument("--merge", action="store_true",
                    help="start from OUT/results.json and replace only the sections run now (with --only)")
    ap.add_argument("--report-only", action="store_true",
                    help="measure nothing: write RESULTS.md and the plots again from OUT/results.json")
    args = ap.parse_args()
    ensure_python_deps()
    out_dir = args.out or (os.path.join(BENCH, "quick") if args.quick else BENCH)
    os.makedirs(out_dir, exist_ok=True)
    if args.report_only:
        with open(os.path.join(out_dir, "results.json")) as fh:
            r = json.load(fh)
        analysis_path = os.path.join(BENCH, "ANALYSIS.md")
        if r.get("profile") == "full" and os.path.exists(analysis_path):
            with open(analysis_path) as fh:
                r["analysis"] = fh.read().strip()
        write_report(r, out_dir, r.get("profile") == "quick")
        return 0
    if not args.no_build:
        build()
    chosen = [b for b in BACKENDS if not args.backends or b in args.backends]
    kinds = list(dict.fromkeys(k for b in chosen for k in SERVERS[b]))
    servers = Servers(args.keep_servers, kinds)

    def on_signal(signum, _frame):
        log(f"signal {signum}: stopping the servers")
        servers.stop()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    servers.start()
    prof = QUICK if args.quick else FULL
    b = Bench(args, prof, servers)
    load_start = loadavg()
    t = time.monotonic()
    steps = [("handoff", b.handoff_and_floor), ("peers", b.peer_runs), ("scale", b.scale),
             ("failover", b.failover), ("footprint", b.footprint), ("surfaces", b.surfaces)]
    for name, fn in steps:
        if b.want(name):
            log(f"== {name}")
            fn()
    r = b.r
    r["facts"] = machine_facts(servers)
    r["load_start"], r["load_end"] = load_start, loadavg()
    r["total_s"] = time.monotonic() - t
    prev_path = os.path.join(out_dir, "results.json")
    if args.merge and os.path.exists(prev_path):
        with open(prev_path) as fh:
            prev = json.load(fh)
        ran = set(args.only or [])
        keys = {"handoff": ["handoff", "floor"], "peers": ["peers"], "scale": ["scale"], "failover": ["failover"],
                "footprint": ["footprint"], "surfaces": ["surfaces"]}
        merged = dict(prev)
        for sec in ran:
            for k in keys[sec]:
                if args.backends:
                    # Only these backends' entries: the others keep the earlier run's.
                    merged[k] = {**prev.get(k, {}), **{b: v for b, v in r[k].items() if b in args.backends}}
                else:
                    merged[k] = r[k]
        merged["errors"] = prev.get("errors", []) + r["errors"]
        # The facts of the servers this run started (a PostgreSQL-only run knows no etcd version).
        merged["facts"] = {**r["facts"], **{k: v for k, v in prev.get("facts", {}).items()
                                             if k in ("etcd", "zk", "consul", "pg", "pgbouncer") and v and not
                                             r["facts"].get(k)},
                           "date": prev.get("facts", r["facts"])["date"],
                           "commit": prev.get("facts", r["facts"])["commit"]}
        # An earlier later run whose every section and backend this run measured again says nothing any more.
        def covered(x: dict) -> bool:
            return set(x["sections"]) <= ran and (
                not args.backends or set(x.get("backends") or [None]) <= set(args.backends))
        merged["later_runs"] = [x for x in merged.get("later_runs", []) if not covered(x)]
        merged.setdefault("later_runs", []).append(
            {"sections": sorted(ran), "backends": args.backends or [], "date": r["facts"]["date"],
             "commit": r["facts"]["commit"], "load_start": r["load_start"], "load_end": r["load_end"],
             "total_s": r["total_s"]})
        r = merged
    r["profile"] = "quick" if args.quick else "full"
    analysis_path = os.path.join(BENCH, "ANALYSIS.md")
    if not args.quick and os.path.exists(analysis_path):
        with open(analysis_path) as fh:
            r["analysis"] = fh.read().strip()
    with open(os.path.join(out_dir, "results.json"), "w") as fh:
        json.dump(r, fh, indent=1)
    write_report(r, out_dir, args.quick)
    servers.stop()
    problems = FAILED + b.r["errors"]
    if args.strict and problems:
        log(f"FAILED: {len(problems)} problem(s) in this run:")
        for p in problems:
            log(f"  - {p}")
        return 1
    log(f"done in {time.monotonic() - t:.0f} s; report in {os.path.join(out_dir, 'RESULTS.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
