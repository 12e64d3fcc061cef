"""ballot's Prometheus metrics: every client and election handle of this process
(the table is in the README's "Operating ballot").

- ``metrics_text()``: the Prometheus text exposition format 0.0.4, to serve as is.
- ``snapshot()``: the same as typed data (``Family``, ``Sample``).
- ``Collector``: a ``prometheus_client`` collector, so that ballot's series appear in
  an application's own registry::

      from prometheus_client import REGISTRY
      import ballot.metrics
      REGISTRY.register(ballot.metrics.Collector())

  ``prometheus_client`` is an optional dependency: ``pip install
  'ballot-election[prometheus]'``. Without it, ``Collector`` is a plain class
  whose ``collect`` raises ``ImportError``.

Every value is read when asked for (a scrape); nothing is kept between scrapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Optional

from ballot._native import _metrics_snapshot, metrics_text

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector as _Base
else:
    # A subclass of prometheus_client's Collector when it is installed, so that
    # `Registry.register` accepts it by type; a plain class otherwise.
    try:
        from prometheus_client.registry import Collector as _Base
    except ImportError:
        _Base = object

__all__ = ["Bucket", "Collector", "Family", "Sample", "metrics_text", "snapshot"]


@dataclass(frozen=True)
class Bucket:
    """A histogram bucket: observations at most ``le`` (cumulative); the last
    bucket's ``le`` is ``math.inf``."""

    le: float
    count: int


@dataclass(frozen=True)
class Sample:
    """One series: its labels, its value (a histogram's sum), and for a histogram
    its buckets and count (``buckets`` is None and ``count`` 0 otherwise)."""

    labels: dict[str, str]
    value: float
    buckets: Optional[list[Bucket]]
    count: int


@dataclass(frozen=True)
class Family:
    """A metric family: name (a counter's ends in ``_total``), one line of help,
    type (``"counter"``, ``"gauge"`` or ``"histogram"``) and its series."""

    name: str
    help: str
    type: str
    samples: list[Sample]


def snapshot() -> list[Family]:
    """Every family of ballot now, always all of them in the same order (a family
    with no live handle has no samples). Thread-safe; does not wait on the network."""
    return [
        Family(
            name,
            help_,
            type_,
            [
                Sample(dict(labels), value, None if b is None else [Bucket(le, n) for le, n in b], count)
                for labels, value, b, count in samples
            ],
        )
        for name, help_, type_, samples in _metrics_snapshot()
    ]


def _bound(le: float) -> str:
    return "+Inf" if math.isinf(le) else repr(le)


class Collector(_Base):
    """A ``prometheus_client`` collector of ballot's series, built from ``snapshot()``
    at each collection: ``REGISTRY.register(ballot.metrics.Collector())``.

    Register one per registry. Raises ``ImportError`` at collection when
    ``prometheus_client`` is not installed.
    """

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        for f in snapshot():
            names = list(f.samples[0].labels) if f.samples else []
            if f.type == "counter":
                c = CounterMetricFamily(f.name, f.help, labels=names)
                for s in f.samples:
                    c.add_metric(list(s.labels.values()), s.value)
                yield c
            elif f.type == "histogram":
                h = HistogramMetricFamily(f.name, f.help, labels=names)
                for s in f.samples:
                    buckets = [(_bound(b.le), float(b.count)) for b in s.buckets or []]
                    h.add_metric(list(s.labels.values()), buckets, s.value)
                yield h
            else:
                g = GaugeMetricFamily(f.name, f.help, labels=names)
                for s in f.samples:
                    g.add_metric(list(s.labels.values()), s.value)
                yield g

    def describe(self) -> list[Metric]:
        """Nothing: the families' samples depend on the handles alive at collection."""
        return []
