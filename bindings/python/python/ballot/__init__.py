"""ballot: leader election over etcd, ZooKeeper, Consul and a local backend.

>>> import ballot
>>> client = ballot.connect()                      # the local backend
>>> e = client.election("svc")
>>> with e.leadership(b"node-1") as lead:          # campaign; resign on exit
...     print("leading with term", lead.term)

Blocking calls release the GIL, and Ctrl-C during ``campaign`` withdraws the
candidate. Callbacks given to ``on_event`` run on a library thread with the GIL
taken. The asyncio counterparts end in ``_async``.

Names come from the core's one table: ``connect``'s keywords are the core's
options (``ttl=``, ``token=``, ``tls_ca=``, ...; durations in seconds), an
``Event.kind`` is the core's name of its kind (``"leader_changed"``), and each
error kind has the class named by it in CamelCase and ``Error``
(``not_leader``: ``NotLeaderError``).

Metrics: ``ballot.metrics_text()`` is the Prometheus text of every client and
election handle of the process; ``ballot.metrics.Collector()`` registers them with
``prometheus_client`` (the extra ``ballot-election[prometheus]``).

Fork: create clients after ``fork()``, in the process that uses them. A client
made before a fork raises ``ClosedError`` when used in the child.

Logs: ballot's records go to the ``logging`` logger ``"ballot"`` (state changes,
session trouble, requeues and errors; each record has ``ballot_backend`` and
``ballot_election`` attributes). The package adds a ``NullHandler`` only, so an
application sees them once it configures logging, for example
``logging.basicConfig(level=logging.INFO)``.
"""

import logging as _logging

_logging.getLogger("ballot").addHandler(_logging.NullHandler())

from ballot._errors import (
    AuthError,
    BackendError,
    BallotError,
    CancelledError,
    ClosedError,
    ConnectionError,
    EndedError,
    InternalError,
    InvalidArgumentError,
    NoLeaderError,
    NotLeaderError,
    SessionLostError,
    TimeoutError,
)
from ballot._native import (
    AsyncLeadershipContext,
    AsyncObserver,
    Client,
    Election,
    Event,
    Leader,
    Leadership,
    LeadershipContext,
    Observer,
    Participant,
    Subscription,
    __version__,
    connect,
    connect_async,
    default_backend_url,
    metrics_text,
)
from ballot import metrics

__all__ = [
    "AsyncLeadershipContext",
    "AsyncObserver",
    "AuthError",
    "BackendError",
    "BallotError",
    "CancelledError",
    "Client",
    "ClosedError",
    "ConnectionError",
    "Election",
    "EndedError",
    "Event",
    "InternalError",
    "InvalidArgumentError",
    "Leader",
    "Leadership",
    "LeadershipContext",
    "NoLeaderError",
    "NotLeaderError",
    "Observer",
    "Participant",
    "SessionLostError",
    "Subscription",
    "TimeoutError",
    "__version__",
    "connect",
    "connect_async",
    "default_backend_url",
    "metrics",
    "metrics_text",
]
