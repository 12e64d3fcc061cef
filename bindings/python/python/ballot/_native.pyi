"""Typing stubs of the native module ``ballot._native`` (re-exported by ``ballot``)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType
from typing import Literal, Optional, TypedDict, Union, final

from typing_extensions import Unpack

from ballot._errors import BallotError

__version__: str

__all__ = ["__version__", "connect", "connect_async", "default_backend_url", "_table", "Client", "Election", "Leader"]
__all__ += ["Leadership", "LeadershipContext", "Event", "Observer", "AsyncObserver", "AsyncLeadershipContext"]
__all__ += ["Participant"]
__all__ += ["Subscription"]
__all__ += ["metrics_text", "_metrics_snapshot"]

# Aliases of these stubs only (a leading underscore: not in the module).
_Value = Union[bytes, bytearray, str]
_Path = Union[str, "os.PathLike[str]"]
# The core's event kinds by name; tests/test_table.py checks this list against
# the core's table. A kind added to the core later arrives by its name too.
_EventKind = Literal["elected", "suspended", "reconnected", "lost", "resigned", "leader_changed", "ended", "error"]

class _Options(TypedDict, total=False):
    """``connect``'s keywords: the core's options by their names (tests/test_table.py
    checks them against the core's table). Durations in seconds; None: the default."""

    ttl: Optional[float]
    safety_margin: Optional[float]
    connect_timeout: Optional[float]
    auto_requeue: Optional[bool]
    username: Optional[str]
    password: Optional[str]
    token: Optional[str]
    tls_ca: Optional[_Path]
    tls_cert: Optional[_Path]
    tls_key: Optional[_Path]

def connect(url: Optional[str] = None, **options: Unpack[_Options]) -> Client:
    """Connects to the backend ``url`` (None: the local default) and starts a session.

    An option that the URL also gives (``?ttl=10s``, ``user:password@``) must have
    the same value there; a different value and other contradictions (a token with
    a username, TLS files for a backend without TLS, ...) raise
    ``InvalidArgumentError``. Raises ``InvalidArgumentError``, ``ConnectionError``,
    ``TimeoutError``, ``AuthError``."""

def connect_async(url: Optional[str] = None, **options: Unpack[_Options]) -> Awaitable[Client]:
    """``connect()`` for asyncio."""

def default_backend_url() -> str:
    """The backend used when none is given: the local backend in
    ``$XDG_STATE_HOME/ballot`` (``~/.local/state/ballot``), or ``/var/lib/ballot`` for root."""

class _Table(TypedDict):
    errors: list[tuple[int, str, str, str]]
    events: list[tuple[int, str]]
    options: list[tuple[str, str, str]]

def _table() -> _Table:
    """The core's table: ``errors`` as (code, name, class name, description),
    ``events`` as (code, name), ``options`` as (name, type, summary)."""

# One sample of ``_metrics_snapshot``: labels as (name, value) pairs, the number
# (a histogram's sum), the buckets of a histogram (upper bound, cumulative count;
# the last bound is ``inf``) or None, and a histogram's count (0 otherwise).
_MetricSample = tuple[list[tuple[str, str]], float, Optional[list[tuple[float, int]]], int]

def _metrics_snapshot() -> list[tuple[str, str, str, list[_MetricSample]]]:
    """The core's metrics snapshot as plain data: ``(name, help, type, samples)``
    per family. ``ballot.metrics`` builds its snapshot and collector from it."""

def metrics_text() -> str:
    """Every metric family of ballot in this process in the Prometheus text
    format 0.0.4."""

@final
class Client:
    """A connection to one backend with one session, kept alive by the library.
    Thread-safe. Create it after ``fork()``, in the process that uses it."""

    @property
    def url(self) -> str:
        """The backend URL, with any password replaced by ``***``."""

    @property
    def closed(self) -> bool: ...
    def election(self, name: str) -> Election:
        """A handle on election ``name``; several handles are independent participants."""

    def close(self) -> None:
        """Resigns and withdraws every election of this client and releases the session."""

    def close_async(self) -> Awaitable[None]: ...
    def expire_session(self) -> None:
        """memory:// only: the session expires now (leaders get ``lost``, the next
        candidates lead) and a new one starts. ``InvalidArgumentError`` otherwise."""

    def __enter__(self) -> Client: ...
    def __exit__(
        self,
        ty: Optional[type[BaseException]],
        value: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

@final
class Leader:
    """The leader of an election as the backend records it."""

    def __new__(cls, value: _Value, term: int, key: str) -> Leader: ...
    @property
    def value(self) -> bytes: ...
    @property
    def term(self) -> int:
        """The fencing token: strictly increasing over successive leaders."""

    @property
    def key(self) -> str: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Participant:
    """One candidate of an election, as ``Election.participants()`` lists it."""

    def __new__(cls, key: str, value: _Value, leader: bool) -> Participant: ...
    @property
    def key(self) -> str:
        """The backend's name for the candidate's record (for the leader, ``Leader.key``)."""

    @property
    def value(self) -> bytes: ...
    @property
    def leader(self) -> bool:
        """Whether it leads; only the first participant can."""

    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Leadership:
    """Proof of a won campaign."""

    @property
    def term(self) -> int: ...
    @property
    def key(self) -> str: ...
    @property
    def value(self) -> bytes: ...
    def is_current(self) -> bool:
        """Whether this leadership still holds right now. False in a child made by
        ``fork()``: the leadership is the parent's."""

@final
class LeadershipContext:
    """Returned by ``Election.leadership()``: campaigns on enter, resigns on exit."""

    def __enter__(self) -> Leadership: ...
    def __exit__(
        self,
        ty: Optional[type[BaseException]],
        value: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

@final
class AsyncLeadershipContext:
    """Returned by ``Election.leadership_async()``: campaigns on enter, resigns on exit."""

    def __aenter__(self) -> Awaitable[Leadership]: ...
    def __aexit__(
        self,
        ty: Optional[type[BaseException]],
        value: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Awaitable[bool]: ...

@final
class Event:
    """One event of an election handle; ``kind`` is the core's name of its kind."""

    @property
    def kind(self) -> _EventKind: ...
    @property
    def term(self) -> Optional[int]:
        """Set for ``elected``."""

    @property
    def reason(self) -> Optional[Literal["session_lost", "deleted", "not_owner"]]:
        """Set for ``lost``."""

    @property
    def leader(self) -> Optional[Leader]:
        """For ``leader_changed``: the new leader, or None."""

    @property
    def error(self) -> Optional[BallotError]:
        """Set for ``error``."""

@final
class Subscription:
    """An ``on_event`` registration."""

    @property
    def cancelled(self) -> bool: ...
    def cancel(self) -> None:
        """Stops the callback; waits for a running call unless called from inside it.
        Callbacks stay registered until this is called or the election is gone."""

@final
class Observer:
    """A blocking iterator over leader changes; stops when the election is ended or closed."""

    def __iter__(self) -> Iterator[Optional[Leader]]: ...
    def __next__(self) -> Optional[Leader]: ...
    def wait(self, timeout: Optional[float] = None) -> Optional[Leader]:
        """The next change within ``timeout`` seconds (``TimeoutError``); at the end
        raises ``EndedError`` or ``ClosedError``."""

@final
class AsyncObserver:
    """An async iterator over leader changes."""

    def __aiter__(self) -> AsyncObserver: ...
    def __anext__(self) -> Awaitable[Optional[Leader]]: ...

@final
class Election:
    """A handle on one election. Thread-safe; waiting calls release the GIL.

    Dropping the last reference withdraws the candidate (resigning if it leads)
    in the background. A handle inherited through ``fork()`` raises ``ClosedError``
    in the child and is never withdrawn from there."""

    @property
    def name(self) -> str: ...
    @property
    def state(self) -> str:
        """"idle", "campaigning", "leader", "suspended", "ended" or "closed". A plain
        ``str`` (not a Literal) because it changes under the caller's feet. "closed"
        in a child made by ``fork()``, where the handle raises ``ClosedError``."""
    def campaign(self, value: _Value, timeout: Optional[float] = None) -> Leadership:
        """Campaigns and blocks until elected. ``TimeoutError`` after ``timeout``
        seconds; Ctrl-C raises KeyboardInterrupt. Both withdraw the candidate."""

    def leadership(self, value: _Value, timeout: Optional[float] = None) -> LeadershipContext:
        """``with e.leadership(value) as lead:`` campaigns on enter and resigns on exit."""

    def proclaim(self, value: _Value) -> None:
        """Replaces the leader's value; the term stays. ``NotLeaderError`` unless leading."""

    def resign(self) -> None:
        """Gives up leadership or withdraws a waiting candidate."""

    def leader(self) -> Optional[Leader]:
        """The current leader, or None."""

    def participants(self) -> list[Participant]:
        """The candidates in queue order, the leader first; empty when nobody campaigns."""

    def end(self) -> None:
        """Ends the election for every participant."""

    def close(self) -> None:
        """Withdraws and makes later calls raise ``ClosedError``."""

    def observe(self) -> Observer:
        """The current leader first, then each change."""

    def on_event(self, callback: Callable[[Event], object]) -> Subscription:
        """Calls ``callback(event)`` in order on a library thread, with the GIL taken.
        Exceptions from the callback go to ``sys.unraisablehook``."""

    def campaign_async(self, value: _Value, timeout: Optional[float] = None) -> Awaitable[Leadership]:
        """``campaign()`` for asyncio; cancelling the task withdraws the candidate, resigning if
        it had won: a win that the awaiting code never received is given back."""

    def leadership_async(self, value: _Value, timeout: Optional[float] = None) -> AsyncLeadershipContext:
        """``async with e.leadership_async(value) as lead:`` campaigns on enter and resigns on exit."""

    def proclaim_async(self, value: _Value) -> Awaitable[None]: ...
    def resign_async(self) -> Awaitable[None]: ...
    def leader_async(self) -> Awaitable[Optional[Leader]]: ...
    def participants_async(self) -> Awaitable[list[Participant]]: ...
    def end_async(self) -> Awaitable[None]: ...
    def close_async(self) -> Awaitable[None]: ...
    def observe_async(self) -> AsyncObserver: ...
