"""Helpers shared by the tests, and the functions that child processes run
(``multiprocessing`` with the spawn method imports them by module name)."""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional, Protocol, TypeVar

import ballot

T = TypeVar("T")


def ttl_for(url: str) -> float:
    """A short session TTL the backend accepts: Consul's minimum is 10 s, and the
    harness's ZooKeeper (2 s ticks) negotiates sessions of 4 s to 40 s."""
    if url.startswith("consul"):
        return 10.0
    if url.startswith("zk"):
        return 6.0
    return 3.0


def connect(url: str) -> ballot.Client:
    return ballot.connect(url, ttl=ttl_for(url), connect_timeout=10)


def eventually(check: Callable[[], Optional[T]], timeout: float, what: str) -> T:
    """Polls ``check`` until it returns something truthy, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def os_thread_name() -> str:
    """The OS name of the calling thread (Python calls threads it did not start "Dummy-N")."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/comm") as f:
            return f.read().strip()
    except OSError:
        return threading.current_thread().name


class Recorder:
    """An ``on_event`` callback that records event kinds (thread-safe)."""

    def __init__(self) -> None:
        self.events: list[ballot.Event] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, ev: ballot.Event) -> None:
        with self._lock:
            self.events.append(ev)
            self.threads.add(os_thread_name())

    def kinds(self) -> list[str]:
        with self._lock:
            return [e.kind for e in self.events]


def lead_until_killed(url: str, name: str, value: str, elected: Event_) -> None:
    """Child process: campaigns, reports election, then sleeps until killed."""
    client = connect(url)
    e = client.election(name)
    e.campaign(value, timeout=60)
    elected.set()
    time.sleep(600)


def campaign_and_report(url: str, name: str, value: str, elected: Event_, term_out: ValueInt) -> None:
    """Child process: campaigns and reports the term it won, then resigns."""
    client = connect(url)
    e = client.election(name)
    lead = e.campaign(value, timeout=120)
    term_out.value = lead.term
    elected.set()
    time.sleep(0.5)
    e.resign()
    client.close()


# The parts of multiprocessing's synchronised objects that these helpers use.
class Event_(Protocol):
    def set(self) -> None: ...
    def wait(self, timeout: Optional[float] = None) -> bool: ...


class ValueInt(Protocol):
    value: int
