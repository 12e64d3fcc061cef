#!/usr/bin/env python3
"""What etcd's server spends on a successor's read, by the number of candidates (issue 18's etcd item).

    python3 bench/etcd_read.py                      # starts its own etcd through tests/servers/harness.py
    python3 bench/etcd_read.py --endpoint 127.0.0.1:2379 --sizes 2 100 1000 10000

A waiting ballot candidate finds the candidate just before it with one range read: the election's prefix,
keys only, at most 8 rows with a create revision below its own, newest first (the read of etcd's own Go recipe,
`concurrency.Election`, is the same). This script puts N keys named as `etcdctl elect` names them (a lease id in
hex, so key order is not creation order) under a prefix and times, over one kept-alive HTTP connection to etcd's
JSON gateway, that read and the reads that might replace it: the same read bounded by an older store revision,
a count, an unsorted read with a limit, and one key. It prints a Markdown table of medians in milliseconds.

The reads that do not grow with N (count, unsorted limit, one key) cannot name the predecessor: etcd applies
create-revision filters and sorting only after it has fetched every key of the range, and a count or an
unsorted limit says nothing about creation order. Figures are measurements, never assertions.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARNESS = os.path.join(ROOT, "tests", "servers", "harness.py")


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


class Etcd:
    """One kept-alive connection to etcd's JSON gateway (`/v3/kv/...`)."""

    def __init__(self, endpoint: str):
        host, port = endpoint.replace("http://", "").rsplit(":", 1)
        self.c = http.client.HTTPConnection(host, int(port), timeout=30)

    def call(self, path: str, body: dict) -> dict:
        self.c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = self.c.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"{path}: HTTP {r.status}: {data[:200]!r}")
        return json.loads(data)


def median_ms(etcd: Etcd, body: dict, rounds: int) -> float:
    for _ in range(rounds // 10 + 1):
        etcd.call("/v3/kv/range", body)
    ts = []
    for _ in range(rounds):
        t = time.perf_counter()
        etcd.call("/v3/kv/range", body)
        ts.append((time.perf_counter() - t) * 1000)
    ts.sort()
    return ts[len(ts) // 2]


def measure(etcd: Etcd, n: int, value_len: int, rounds: int) -> dict:
    prefix = f"bench-etcd-read-{n}-{time.time_ns()}/"
    end = b64(prefix[:-1] + chr(ord(prefix[-1]) + 1))
    revs = []
    for i in range(n):
        # Lease ids in hex, as `etcdctl elect` names its keys: scattered, so the key order is not the create order.
        key = f"{prefix}{(i * 2654435761 + 0x694d) % (1 << 63):x}"
        put = etcd.call("/v3/kv/put", {"key": b64(key), "value": b64("v" * value_len)})
        revs.append(int(put["header"]["revision"]))
    # The candidate in the middle of the queue looks for its predecessor.
    mine = revs[n // 2]
    own_key = f"{prefix}{((n // 2) * 2654435761 + 0x694d) % (1 << 63):x}"
    rng = {"key": b64(prefix), "range_end": end}
    ballot = {**rng, "keys_only": True, "sort_order": "DESCEND", "sort_target": "CREATE",
              "max_create_revision": mine - 1, "limit": 8}
    reads = {
        "ballot's read (keys only, create < own, newest first, limit 8)": ballot,
        "the same with values": {k: v for k, v in ballot.items() if k != "keys_only"},
        "the same at the store revision before its own key": {**ballot, "revision": mine - 1},
        "count of the prefix": {**rng, "count_only": True},
        "unsorted, limit 8 (key order)": {**rng, "keys_only": True, "limit": 8},
        "its own key": {"key": b64(own_key)},
    }
    out = {name: median_ms(etcd, body, rounds) for name, body in reads.items()}
    etcd.call("/v3/kv/deleterange", rng)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", help="HOST:PORT of etcd's client port (default: start one with the harness)")
    ap.add_argument("--sizes", nargs="*", type=int, default=[2, 100, 1000, 10000])
    ap.add_argument("--value-len", type=int, default=16, help="bytes of each candidate's value (default 16)")
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    a = ap.parse_args()
    state = None
    endpoint = a.endpoint
    try:
        if not endpoint:
            state = tempfile.mkdtemp(prefix="ballot-etcd-read.")
            subprocess.run([sys.executable, HARNESS, "start", "etcd", "--dir", state], check=True,
                           stdout=subprocess.DEVNULL, timeout=120)
            with open(os.path.join(state, "env.json")) as f:
                endpoint = json.load(f)["BALLOT_TEST_ETCD_ENDPOINTS"].split(",")[0]
        etcd = Etcd(endpoint)
        res = {}
        for n in a.sizes:
            print(f"etcd_read: N = {n} ...", file=sys.stderr, flush=True)
            res[n] = measure(etcd, n, a.value_len, a.rounds)
        if a.json:
            print(json.dumps(res, indent=1))
            return 0
        names = list(next(iter(res.values())))
        print(f"p50 of {a.rounds} reads in ms, values of {a.value_len} bytes, one connection, etcd at {endpoint}")
        print()
        print("| read | " + " | ".join(f"N = {n}" for n in a.sizes) + " |")
        print("|---|" + "---:|" * len(a.sizes))
        for name in names:
            print(f"| {name} | " + " | ".join(f"{res[n][name]:.2f}" for n in a.sizes) + " |")
        return 0
    finally:
        if state:
            subprocess.run([sys.executable, HARNESS, "stop", "--dir", state], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60)
            shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
