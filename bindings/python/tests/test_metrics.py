"""ballot's metrics in Python: ``metrics_text()`` and the ``prometheus_client``
collector, both read back with prometheus_client's own text parser."""

from __future__ import annotations

import math
import threading
import uuid

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample as PromSample

import ballot
import ballot.metrics
from helpers import eventually


def samples(text: str, family: str, election: str) -> list[PromSample]:
    """The samples of `family` (the parser's family name: a counter's without
    ``_total``) whose ``election`` label is `election`."""
    out: list[PromSample] = []
    for f in text_string_to_metric_families(text):
        if f.name == family:
            out += [s for s in f.samples if s.labels.get("election") == election]
    return out


def test_the_text_parses_and_follows_a_handoff() -> None:
    name = f"svc-{uuid.uuid4().hex[:8]}"
    store = f"memory://pymetrics-{uuid.uuid4().hex}"
    with ballot.connect(store) as a, ballot.connect(store) as b:
        ea, eb = a.election(name), b.election(name)
        ea.campaign("secret-a", timeout=10)
        text = ballot.metrics_text()
        types = {f.name: f.type for f in text_string_to_metric_families(text)}
        assert types["ballot_leader"] == "gauge"
        assert types["ballot_elections_won"] == "counter"
        assert types["ballot_leadership_lost"] == "counter"
        assert types["ballot_handoff_wait_seconds"] == "histogram"
        assert types["ballot_keepalive_rtt_seconds"] == "histogram"
        assert types["ballot_session_healthy"] == "gauge"
        assert types["ballot_session_deadline_seconds"] == "gauge"
        assert "secret-a" not in text
        lead = samples(text, "ballot_leader", name)
        assert sorted(s.value for s in lead) == [0.0, 1.0]
        a_client = next(s.labels["client"] for s in lead if s.value == 1.0)
        assert all(s.labels["backend"] == "memory" for s in lead)

        # Handoff: b waits; a's session expires; b wins.
        waiting = threading.Thread(target=lambda: eb.campaign("b", timeout=10))
        waiting.start()
        eventually(lambda: eb.state == "campaigning", 10, "b campaigns")
        a.expire_session()
        waiting.join(10)

        def b_leads() -> bool:
            now = samples(ballot.metrics_text(), "ballot_leader", name)
            return [s.labels["client"] for s in now if s.value == 1.0] not in ([], [a_client])

        eventually(b_leads, 10, "b's ballot_leader is 1")
        text = ballot.metrics_text()
        lost = [
            s
            for s in samples(text, "ballot_leadership_lost", name)
            if s.labels["client"] == a_client and s.name == "ballot_leadership_lost_total"
        ]
        assert {s.labels["reason"]: s.value for s in lost} == {"session_lost": 1.0, "deleted": 0.0, "not_owner": 0.0}
        waits = [s for s in samples(text, "ballot_handoff_wait_seconds", name) if s.name.endswith("_count")]
        assert sum(s.value for s in waits) == 2.0
    # Closed clients have no series left.
    assert samples(ballot.metrics_text(), "ballot_leader", name) == []


def test_the_collector_registers_with_prometheus_client() -> None:
    name = f"svc-{uuid.uuid4().hex[:8]}"
    registry = CollectorRegistry()
    registry.register(ballot.metrics.Collector())
    with ballot.connect(f"memory://pymetrics-{uuid.uuid4().hex}") as c:
        e = c.election(name)
        e.campaign("v", timeout=10)
        text = generate_latest(registry).decode()
        lead = samples(text, "ballot_leader", name)
        assert [s.value for s in lead] == [1.0]
        assert set(lead[0].labels) == {"backend", "client", "election"}
        won = samples(text, "ballot_elections_won", name)
        assert [(s.name, s.value) for s in won if s.name.endswith("_total")] == [("ballot_elections_won_total", 1.0)]
        buckets = [s for s in samples(text, "ballot_handoff_wait_seconds", name) if s.name.endswith("_bucket")]
        assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == 1.0
        # The collector and metrics_text() say the same.
        direct = samples(ballot.metrics_text(), "ballot_leader", name)
        assert [s.value for s in direct] == [1.0]


def test_snapshot_is_typed_data() -> None:
    name = f"svc-{uuid.uuid4().hex[:8]}"
    with ballot.connect(f"memory://pymetrics-{uuid.uuid4().hex}") as c:
        e = c.election(name)  # kept: a dropped handle's series go
        e.campaign("v", timeout=10)
        snap = {f.name: f for f in ballot.metrics.snapshot()}
        assert list(snap)[:2] == ["ballot_leader", "ballot_campaigning"]
        lead = [s for s in snap["ballot_leader"].samples if s.labels.get("election") == name]
        assert [(s.value, s.buckets) for s in lead] == [(1.0, None)]
        hist = [s for s in snap["ballot_handoff_wait_seconds"].samples if s.labels.get("election") == name][0]
        assert hist.count == 1 and hist.buckets is not None
        assert math.isinf(hist.buckets[-1].le) and hist.buckets[-1].count == 1
        assert snap["ballot_elections_won_total"].type == "counter"
