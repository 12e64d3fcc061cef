"""A user's own test of leader logic on memory:// (in-process, no server): elect,
hand off, end, and a session that expires."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

import ballot
from helpers import Recorder, campaign_in_thread, eventually


def store() -> str:
    """A store of this test's own: clients with the same URL share its elections."""
    return f"memory://pytest-{uuid.uuid4().hex}"


def test_elect_hand_off_and_end() -> None:
    url = store()
    with ballot.connect(url) as a, ballot.connect(url) as b:
        ea, eb = a.election("svc"), b.election("svc")
        first = ea.campaign("a", timeout=10)
        assert (ea.state, first.term) == ("leader", 1)
        t, out = campaign_in_thread(eb, "b")
        eventually(lambda: eb.state == "campaigning", 10, "b to campaign")
        assert t.is_alive(), "b waits while a leads"
        ea.resign()
        t.join(10)
        assert isinstance(out[0], ballot.Leadership), out
        assert (out[0].term, eb.state, ea.state) == (2, "leader", "idle")
        assert ea.leader() == ballot.Leader(b"b", 2, out[0].key)
        ea.end()
        eventually(lambda: eb.state == "ended", 10, "b to be ended")
        with pytest.raises(ballot.EndedError):
            ea.campaign("again", timeout=1)


def test_an_expired_session_hands_over_to_the_next_candidate() -> None:
    url = store()
    # Without auto-requeue a does not join again after the expiry, so b wins
    # whether or not it had joined by then ("campaigning" comes before the join).
    with ballot.connect(url, auto_requeue=False) as a, ballot.connect(url) as b:
        ea, eb = a.election("svc"), b.election("svc")
        events = Recorder()
        ea.on_event(events)
        first = ea.campaign("a", timeout=10)
        t, out = campaign_in_thread(eb, "b")
        eventually(lambda: eb.state == "campaigning", 10, "b to campaign")
        a.expire_session()
        assert ea.state != "leader" and not first.is_current()
        t.join(10)
        assert isinstance(out[0], ballot.Leadership) and out[0].term == first.term + 1, out
        eventually(lambda: "lost" in events.kinds(), 10, "a's lost event")
        lost = next(e for e in events.events if e.kind == "lost")
        assert lost.reason == "session_lost"
        assert ea.state == "idle"


def test_memory_urls_and_other_clients_are_refused_clearly(tmp_path: Any) -> None:
    for bad in ["memory://", "memory://x:1", "memory://x?ttl=5s", "memory://u:pw@x"]:
        with pytest.raises(ballot.InvalidArgumentError):
            ballot.connect(bad)
    with ballot.connect(f"file://{tmp_path}") as local:
        with pytest.raises(ballot.InvalidArgumentError, match="memory://"):
            local.expire_session()
