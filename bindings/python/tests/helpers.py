"""Helpers shared by the tests, and the functions that child processes run
(``multiprocessing`` with the spawn method imports them by module name)."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, TypeVar

import ballot

T = TypeVar("T")

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


@dataclass(frozen=True)
class Backend:
    """One backend of the description that tests/servers/harness.py writes
    (``backends.json``, path in ``BALLOT_TEST_BACKENDS``): the numbers every
    language's tests use. Durations are in seconds."""

    name: str
    family: str
    url: str
    query: str
    ttl: float
    takeover: float
    live: float
    quirks: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)

    def with_query(self, url: str) -> str:
        if not self.query:
            return url
        return f"{url}{'&' if '?' in url else '?'}{self.query}"

    def fresh_url(self, ns: str) -> str:
        """A namespace of the test's own: ``url/ns`` with the backend's query."""
        return self.with_query(f"{self.url}/{ns}")


@functools.cache
def backends() -> dict[str, Backend]:
    """The description; without ``BALLOT_TEST_BACKENDS`` (no harness ran), the
    harness's own description of ``memory`` and ``local``."""
    path = os.environ.get("BALLOT_TEST_BACKENDS")
    if path:
        with open(path) as f:
            doc = json.load(f)
    else:
        spec = importlib.util.spec_from_file_location("harness", os.path.join(REPO, "tests", "servers", "harness.py"))
        assert spec is not None and spec.loader is not None
        harness = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(harness)
        doc = harness.describe(harness.default_describe_dir(), {})
    out: dict[str, Backend] = {}
    for name, b in doc["backends"].items():
        out[name] = Backend(
            name=name,
            family=b["family"],
            url=b["url"],
            query=b["query"],
            ttl=b["ttl_ms"] / 1000,
            takeover=b["takeover_ms"] / 1000,
            live=b["live_ms"] / 1000,
            quirks=b["quirks"],
            facts=b["facts"],
        )
    return out


def backend_of(url: str) -> Backend:
    """The backend a test URL (a backend's URL, a namespace under it, a query) belongs to."""
    base = url.split("?", 1)[0]
    found = [b for b in backends().values() if base == b.url or base.startswith(b.url + "/")]
    if not found:
        raise KeyError(f"{url} is not under any backend of the description")
    return max(found, key=lambda b: len(b.url))


def ttl_for(url: str) -> float:
    """The session TTL of the description for the backend of ``url``."""
    return backend_of(url).ttl


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


def server(kind: str) -> Backend:
    """A server of the description (``etcd-auth``, ``consul-acl``, ...), or skip the
    test (fail it under ``BALLOT_TEST_REQUIRE_SERVERS=1``)."""
    import pytest

    b = backends().get(kind)
    if b is not None:
        return b
    if os.environ.get("BALLOT_TEST_REQUIRE_SERVERS") == "1":
        pytest.fail(f"BALLOT_TEST_REQUIRE_SERVERS=1 but {kind} is not in the backend description")
    pytest.skip(f"{kind} is not in the backend description")


def campaign_in_thread(e: ballot.Election, value: str, timeout: float = 60) -> tuple[threading.Thread, list[Any]]:
    """Starts ``e.campaign(value)`` on a thread; the list gets the Leadership or the exception."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(e.campaign(value, timeout=timeout))
        except BaseException as exc:  # the test inspects it
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def wins_at_once(e: ballot.Election, value: bytes, url: str) -> None:
    """Campaigns ``e`` again and asserts that it wins within the liveness bound and
    is the leader: no candidate that should have withdrawn was left queued ahead
    of it (such a candidate would be elected first). A wait on a state, where a
    sleep and a look at leader() would race with a late withdrawal."""
    e.campaign(value, timeout=backend_of(url).live)
    got = e.leader()
    assert got is not None and got.value == value, got


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
