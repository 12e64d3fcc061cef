"""Callbacks and the GIL: cancelling or dropping while a callback runs does not
deadlock, and the interpreter exits cleanly with callbacks in flight."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
import time

import ballot
from helpers import Recorder, connect, eventually, ttl_for


def test_cancel_while_a_callback_runs(backend: str, name: str) -> None:
    with connect(backend) as c:
        e = c.election(name)
        running = threading.Event()
        calls: list[str] = []

        def slow(ev: ballot.Event) -> None:
            running.set()
            t0 = time.monotonic()
            while time.monotonic() - t0 < 0.2:  # holds the GIL most of the time
                sum(range(1000))
            calls.append(ev.kind)

        sub = e.on_event(slow)
        e.campaign(b"me")
        assert running.wait(10)
        sub.cancel()  # must wait for the running call without holding the GIL
        n = len(calls)
        assert n >= 1, "cancel() returned before the running callback finished"
        later = Recorder()
        e.on_event(later)
        e.proclaim(b"more")
        # Events are delivered in order on one thread: once the active subscription
        # heard the change, the cancelled one would have been called for it.
        eventually(lambda: any(ev.kind == "leader_changed" and ev.leader and ev.leader.value == b"more"
                               for ev in later.events), 10, "the leader change of the proclaim")
        assert len(calls) == n


def test_dropping_the_election_while_a_callback_runs(backend: str, name: str) -> None:
    with connect(backend) as c:
        e = c.election(name)
        running = threading.Event()

        def slow(ev: ballot.Event) -> None:
            running.set()
            t0 = time.monotonic()
            while time.monotonic() - t0 < 0.2:
                sum(range(1000))

        e.on_event(slow)
        e.campaign(b"me")
        assert running.wait(10)
        del e
        gc.collect()
        # The handle is gone, so the candidate was withdrawn in the background.
        eventually(lambda: c.election(name).leader() is None, 10, "the dropped leader to be withdrawn")


EXIT_CHILD = textwrap.dedent(
    """
    import sys, time, ballot
    c = ballot.connect(sys.argv[1], ttl=float(sys.argv[2]))
    def cb(ev):
        time.sleep(0.01)
        sum(range(10000))
    handles = [c.election(sys.argv[3]) for _ in range(2)]
    for h in handles:
        h.on_event(cb)
    handles[0].campaign(b"a")
    for i in range(20):
        handles[0].proclaim(f"v{i}")
    print("exiting", flush=True)
    """
)


def test_interpreter_exits_cleanly_with_callbacks_in_flight(backend: str, name: str) -> None:
    for i in range(5):
        r = subprocess.run(
            [sys.executable, "-c", EXIT_CHILD, backend, str(ttl_for(backend)), f"{name}-{i}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0 and r.stdout.strip() == "exiting", (r.returncode, r.stdout, r.stderr)
