"""The blocking API against every backend: handoff, proclaim, observe, events, end,
timeouts, values, and bad input per exception class."""

from __future__ import annotations

import importlib.metadata
import pathlib
import re
import sys
import threading
import time
from typing import Any, Optional

import pytest

import ballot
from helpers import Recorder, campaign_in_thread, connect, eventually, ttl_for, wins_at_once


def test_campaign_resign_handoff(backend: str, name: str) -> None:
    c1, c2 = connect(backend), connect(backend)
    try:
        e1, e2 = c1.election(name), c2.election(name)
        lead1 = e1.campaign(b"one", timeout=30)
        assert e1.state == "leader" and lead1.is_current()
        t, out = campaign_in_thread(e2, "two")
        eventually(lambda: e2.state == "campaigning", 10, "e2 to campaign")
        assert t.is_alive(), "a second candidate must wait while the first leads"
        e1.resign()
        t.join(30)
        assert not t.is_alive()
        lead2 = out[0]
        assert isinstance(lead2, ballot.Leadership), lead2
        assert lead2.term > lead1.term
        assert not lead1.is_current()
        assert e1.state == "idle" and e2.state == "leader"
        now = e1.leader()
        assert now == ballot.Leader(b"two", lead2.term, lead2.key)
    finally:
        c1.close()
        c2.close()


def test_proclaim_changes_value_not_term(backend: str, name: str) -> None:
    with connect(backend) as c:
        e = c.election(name)
        lead = e.campaign("v1")
        e.proclaim("v2")
        got = e.leader()
        assert got is not None
        assert (got.value, got.term) == (b"v2", lead.term)
        other = c.election(name)
        with pytest.raises(ballot.NotLeaderError):
            other.proclaim(b"x")


def test_observe_order(backend: str, name: str) -> None:
    with connect(backend) as c:
        watcher, a, b = c.election(name), c.election(name), c.election(name)
        obs = watcher.observe()
        assert obs.wait(10) is None  # nobody leads yet
        la = a.campaign(b"a")
        first = obs.wait(10)
        assert first is not None and (first.value, first.term) == (b"a", la.term)
        t, out = campaign_in_thread(b, "b")
        eventually(lambda: b.state == "campaigning", 10, "b to campaign")
        a.resign()
        t.join(30)
        lb = out[0]
        assert isinstance(lb, ballot.Leadership)
        seen: list[Optional[ballot.Leader]] = []
        while not seen or seen[-1] is None or seen[-1].term != lb.term:
            seen.append(obs.wait(10))
        terms = [x.term for x in seen if x is not None]
        assert terms == sorted(terms), f"observe went back in term: {seen}"
        assert seen[-1] == ballot.Leader(b"b", lb.term, lb.key)
        with pytest.raises(ballot.TimeoutError):
            obs.wait(0.2)


def test_events_in_order_on_a_library_thread(backend: str, name: str) -> None:
    with connect(backend) as c:
        e = c.election(name)
        rec = Recorder()
        sub = e.on_event(rec)
        lead = e.campaign(b"me")
        # A watch may coalesce a leader that comes and goes quickly: resign only once
        # the leader_changed event has named this candidate.
        eventually(
            lambda: any(ev.kind == "leader_changed" and ev.leader is not None and ev.leader.term == lead.term
                        for ev in rec.events),
            10,
            "the leader_changed event naming this candidate",
        )
        e.resign()
        eventually(lambda: "resigned" in rec.kinds(), 10, "the resigned event")
        kinds = rec.kinds()
        assert kinds.index("elected") < kinds.index("resigned")
        elected = next(ev for ev in rec.events if ev.kind == "elected")
        assert elected.term == lead.term
        changes = [ev.leader for ev in rec.events if ev.kind == "leader_changed"]
        assert any(l is not None and l.term == lead.term for l in changes)
        assert rec.threads == {"ballot-events"}
        sub.cancel()
        assert sub.cancelled
        n = len(rec.events)
        # A subscription still active hears the events that follow; once it has
        # heard the leader change after the new win, the cancelled one would have
        # been called for the win (one thread delivers in order).
        later = Recorder()
        e.on_event(later)
        e.campaign(b"again")
        e.proclaim(b"again2")
        eventually(lambda: any(ev.kind == "leader_changed" and ev.leader and ev.leader.value == b"again2"
                               for ev in later.events), 10, "the leader change after the win")
        assert "elected" in later.kinds()
        assert len(rec.events) == n, "a cancelled subscription must not be called"


def test_callback_exception_is_reported_and_events_go_on(
    backend: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reported: list[BaseException] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_value))
    seen: list[str] = []

    def cb(ev: ballot.Event) -> None:
        seen.append(ev.kind)
        if ev.kind == "elected":
            raise ValueError("boom from a callback")

    with connect(backend) as c:
        e = c.election(name)
        e.on_event(cb)
        e.campaign(b"me")
        e.resign()
        eventually(lambda: "resigned" in seen, 10, "events after the failing callback")
    assert any(isinstance(x, ValueError) and "boom" in str(x) for x in reported), reported


def test_callback_may_call_the_blocking_api(backend: str, name: str) -> None:
    leaders: list[Optional[ballot.Leader]] = []
    with connect(backend) as c:
        e = c.election(name)

        def cb(ev: ballot.Event) -> None:
            if ev.kind == "elected":
                leaders.append(e.leader())

        e.on_event(cb)
        lead = e.campaign(b"me")
        eventually(lambda: leaders, 10, "the callback's leader() call")
        assert leaders[0] is not None and leaders[0].term == lead.term


def test_end_reaches_every_participant(backend: str, name: str) -> None:
    c1, c2 = connect(backend), connect(backend)
    try:
        e1, e2, watcher = c1.election(name), c2.election(name), c2.election(name)
        obs = watcher.observe()
        rec = Recorder()
        e2.on_event(rec)
        lead = e1.campaign(b"one")
        # The observer joins the election at its first read (as a participant
        # joins at its first call); one made but never read before end() is not ended.
        assert eventually(lambda: obs.wait(10), 10, "the first leader").term == lead.term
        t, out = campaign_in_thread(e2, "two")
        eventually(lambda: e2.state == "campaigning", 10, "e2 to campaign")
        e1.end()
        t.join(30)
        assert isinstance(out[0], ballot.EndedError), out
        assert e1.state == "ended" and e2.state == "ended"
        eventually(lambda: "ended" in rec.kinds(), 10, "the ended event")
        rest = list(obs)  # stops by itself once the election is ended
        assert len(rest) <= 3
        with pytest.raises(ballot.EndedError):
            obs.wait(1)
        with pytest.raises(ballot.EndedError):
            e1.campaign(b"again")
        # The name can be used again by new handles, and terms keep increasing.
        again = c1.election(name).campaign(b"new")
        assert again.term > 0
    finally:
        c1.close()
        c2.close()


def test_campaign_timeout_withdraws(backend: str, name: str) -> None:
    c1, c2 = connect(backend), connect(backend)
    try:
        e1, e2 = c1.election(name), c2.election(name)
        e1.campaign(b"one")
        with pytest.raises(ballot.TimeoutError):
            e2.campaign(b"two", timeout=0.5)
        assert e2.state == "idle"
        e1.resign()
        # The timed-out candidate left nothing behind: e1 wins again at once.
        wins_at_once(e1, b"again", backend)
    finally:
        c1.close()
        c2.close()


def test_blocking_campaign_releases_the_gil(backend: str, name: str) -> None:
    with connect(backend) as c:
        leader = c.election(name)  # kept: dropping the last reference withdraws
        leader.campaign(b"one")
        waiter = c.election(name)
        t, _ = campaign_in_thread(waiter, "two")
        eventually(lambda: waiter.state == "campaigning", 10, "the waiter to campaign")
        n = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.3:
            n += 1
        assert n > 1000, "the main thread barely ran while another thread waited in campaign"
        waiter.resign()
        t.join(10)
        assert not t.is_alive()


def test_resign_from_another_thread_cancels_a_waiting_campaign(backend: str, name: str) -> None:
    with connect(backend) as c:
        leader = c.election(name)  # kept: dropping the last reference withdraws
        leader.campaign(b"one")
        waiter = c.election(name)
        t, out = campaign_in_thread(waiter, "two")
        eventually(lambda: waiter.state == "campaigning", 10, "the waiter to campaign")
        waiter.resign()
        t.join(10)
        assert isinstance(out[0], ballot.CancelledError), out


def test_values_str_and_bytes_come_back_as_bytes(backend: str, name: str) -> None:
    with connect(backend) as c:
        e = c.election(name)
        lead = e.campaign("nœud-1")
        assert lead.value == "nœud-1".encode()
        e.proclaim(bytearray(b"\x00\xffraw"))
        got = e.leader()
        assert got is not None and got.value == b"\x00\xffraw" and isinstance(got.value, bytes)
        assert isinstance(got.term, int) and isinstance(got.key, str)


def test_leadership_context_manager(backend: str, name: str) -> None:
    with connect(backend) as c:
        e = c.election(name)
        with e.leadership("me") as lead:
            assert e.state == "leader" and lead.value == b"me"
        assert e.state == "idle"
        with pytest.raises(RuntimeError, match="inside"):
            with e.leadership(b"me"):
                raise RuntimeError("inside")
        assert e.state == "idle"
        assert e.leader() is None


def test_close(backend: str, name: str) -> None:
    c = connect(backend)
    e = c.election(name)
    e.campaign(b"me")
    c.close()
    assert c.closed and e.state == "closed"
    with pytest.raises(ballot.ClosedError):
        c.election(name)
    with pytest.raises(ballot.ClosedError):
        e.campaign(b"again")
    c.close()  # idempotent
    with connect(backend) as c2:
        assert c2.election(name).leader() is None, "close() resigns"


@pytest.mark.parametrize(
    "call",
    [
        lambda c, n: c.election("a//b"),
        lambda c, n: c.election(""),
        lambda c, n: c.election("x" * 300),
        lambda c, n: c.election(n).campaign(b""),
        lambda c, n: c.election(n).campaign(42),
        lambda c, n: c.election(n).campaign(None),
        lambda c, n: c.election(n).campaign(b"v", timeout=-1),
        lambda c, n: c.election(n).campaign(b"v", timeout=float("nan")),
        lambda c, n: c.election(n).proclaim(b"x" * (2 << 20)),
        lambda c, n: c.election(n).leadership(b"v", timeout=-5),
        lambda c, n: c.election(n).on_event("not callable"),
        lambda c, n: c.election(n).observe().wait(-1),
    ],
)
def test_invalid_argument(backend: str, name: str, call: Any) -> None:
    with connect(backend) as c:
        with pytest.raises(ballot.InvalidArgumentError) as info:
            call(c, name)
        assert isinstance(info.value, ValueError) and str(info.value)


def test_campaigning_twice_is_invalid(backend: str, name: str) -> None:
    with connect(backend) as c:
        e = c.election(name)
        e.campaign(b"me")
        with pytest.raises(ballot.InvalidArgumentError):
            e.campaign(b"me")


def test_not_leader(backend: str, name: str) -> None:
    with connect(backend) as c:
        e = c.election(name)
        with pytest.raises(ballot.NotLeaderError):
            e.resign()
        with pytest.raises(ballot.NotLeaderError):
            e.proclaim(b"x")


@pytest.mark.parametrize(
    "url,kwargs",
    [
        ("bogus://h", {}),
        ("file:///tmp/ballot-py?ttl=abc", {}),
        ("file:///tmp/ballot-py?nope=1", {}),
        ("file:///tmp/ballot-py", {"ttl": 0.5}),
        ("file:///tmp/ballot-py", {"ttl": -1.0}),
        ("file:///tmp/ballot-py", {"ttl": 5, "safety_margin": 6}),
        ("file:///tmp/ballot-py", {"connect_timeout": float("inf")}),
    ],
)
def test_bad_connect_arguments(url: str, kwargs: Any) -> None:
    with pytest.raises(ballot.InvalidArgumentError):
        ballot.connect(url, **kwargs)


def test_connection_error_chains_its_cause() -> None:
    with pytest.raises(ballot.ConnectionError) as info:
        ballot.connect("file:///proc/ballot-cannot-be-here/x")
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.__cause__.errno is not None


def test_version_is_the_workspace_version() -> None:
    cargo = pathlib.Path(__file__).resolve().parents[3] / "Cargo.toml"
    m = re.search(r'\[workspace\.package\][^\[]*?version = "([^"]+)"', cargo.read_text())
    assert m, "no workspace version in Cargo.toml"
    assert ballot.__version__ == m.group(1)
    assert importlib.metadata.version("ballot-election") == m.group(1)


def test_leader_value_type() -> None:
    a = ballot.Leader("x", 3, "k")
    assert a == ballot.Leader(b"x", 3, "k") and hash(a) == hash(ballot.Leader(b"x", 3, "k"))
    assert a != ballot.Leader(b"x", 4, "k")
    assert a.value == b"x" and "term=3" in repr(a)


def test_ttl_helper_is_accepted(backend: str) -> None:
    with ballot.connect(backend, ttl=ttl_for(backend)) as c:
        assert c.url


def test_readme_example_is_the_checked_example() -> None:
    """The README's Python block is examples/quickstart.py, which mypy --strict checks
    and tests/run.sh runs in a fresh venv."""
    root = pathlib.Path(__file__).resolve().parents[3]
    section = (root / "README.md").read_text(encoding="utf-8").split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    example = (root / "bindings/python/examples/quickstart.py").read_text(encoding="utf-8")
    assert block == example.split("\n", 1)[1].lstrip("\n")


def test_participants_in_queue_order(backend: str, name: str) -> None:
    clients = [connect(backend) for _ in range(4)]

    def queue_of(n: int) -> Optional[list[ballot.Participant]]:
        p = reader.participants()
        return p if len(p) == n and p[0].leader else None

    try:
        ea, eb, ec, reader = (c.election(name) for c in clients)
        assert reader.participants() == []
        lead = ea.campaign(b"a")
        tb, outb = campaign_in_thread(eb, "b")
        eventually(lambda: queue_of(2), 10, "b to queue")
        tc, _ = campaign_in_thread(ec, "c")
        got = eventually(lambda: queue_of(3), 10, "c to queue")
        assert [(p.value, p.leader) for p in got] == [(b"a", True), (b"b", False), (b"c", False)]
        assert all(isinstance(p, ballot.Participant) for p in got)
        assert got[0].key == lead.key
        assert got[0] == ballot.Participant(lead.key, b"a", True)
        assert "leader=True" in repr(got[0])
        ea.resign()
        tb.join(30)
        assert isinstance(outb[0], ballot.Leadership), outb
        got = eventually(lambda: queue_of(2), 10, "the queue to move on")
        assert [(p.value, p.leader) for p in got] == [(b"b", True), (b"c", False)]
        reader.end()
        with pytest.raises(ballot.EndedError):
            reader.participants()
        tc.join(30)
    finally:
        for c in clients:
            c.close()
    with pytest.raises(ballot.ClosedError):
        reader.participants()
