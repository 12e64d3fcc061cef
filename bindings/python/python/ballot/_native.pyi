"""Typing stubs of the native module ``ballot._native`` (re-exported by ``ballot``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType
from typing import Literal, Optional, Union, final

from ballot._errors import BallotError

__version__: str

Value = Union[bytes, bytearray, str]
EventKind = Literal[
    "elected", "suspended", "reconnected", "lost", "resigned", "leader_changed", "ended", "error", "unknown"
]

def connect(
    url: Optional[str] = None,
    *,
    ttl: Optional[float] = None,
    safety_margin: Optional[float] = None,
    connect_timeout: Optional[float] = None,
    auto_requeue: bool = True,
) -> Client:
    """Connects to the backend ``url`` (None: the local default) and starts a session.

    Durations are in seconds. An option also given in the URL's query
    (``?ttl=10s``) must have the same value there. Raises ``InvalidArgumentError``, ``ConnectionError``, ``TimeoutError``,
    ``AuthError``."""

def connect_async(
    url: Optional[str] = None,
    *,
    ttl: Optional[float] = None,
    safety_margin: Optional[float] = None,
    connect_timeout: Optional[float] = None,
    auto_requeue: bool = True,
) -> Awaitable[Client]:
    """``connect()`` for asyncio."""

def default_backend_url() -> str:
    """The backend used when none is given: the local backend in
    ``$XDG_STATE_HOME/ballot`` (``~/.local/state/ballot``), or ``/var/lib/ballot`` for root."""

def _error_kinds() -> list[tuple[str, str]]: ...
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

    def __init__(self, value: Value, term: int, key: str) -> None: ...
    @property
    def value(self) -> bytes: ...
    @property
    def term(self) -> int:
        """The fencing token: strictly increasing over successive leaders."""

    @property
    def key(self) -> str: ...
    def __eq__(self, other: object) -> bool: ...
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
    """One event of an election handle."""

    @property
    def kind(self) -> EventKind: ...
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
    def campaign(self, value: Value, timeout: Optional[float] = None) -> Leadership:
        """Campaigns and blocks until elected. ``TimeoutError`` after ``timeout``
        seconds; Ctrl-C raises KeyboardInterrupt. Both withdraw the candidate."""

    def leadership(self, value: Value, timeout: Optional[float] = None) -> LeadershipContext:
        """``with e.leadership(value) as lead:`` campaigns on enter and resigns on exit."""

    def proclaim(self, value: Value) -> None:
        """Replaces the leader's value; the term stays. ``NotLeaderError`` unless leading."""

    def resign(self) -> None:
        """Gives up leadership or withdraws a waiting candidate."""

    def leader(self) -> Optional[Leader]:
        """The current leader, or None."""

    def end(self) -> None:
        """Ends the election for every participant."""

    def close(self) -> None:
        """Withdraws and makes later calls raise ``ClosedError``."""

    def observe(self) -> Observer:
        """The current leader first, then each change."""

    def on_event(self, callback: Callable[[Event], object]) -> Subscription:
        """Calls ``callback(event)`` in order on a library thread, with the GIL taken.
        Exceptions from the callback go to ``sys.unraisablehook``."""

    def campaign_async(self, value: Value, timeout: Optional[float] = None) -> Awaitable[Leadership]:
        """``campaign()`` for asyncio; cancelling the task withdraws the candidate, resigning if
        it had won: a win that the awaiting code never received is given back."""

    def leadership_async(self, value: Value, timeout: Optional[float] = None) -> AsyncLeadershipContext:
        """``async with e.leadership_async(value) as lead:`` campaigns on enter and resigns on exit."""

    def proclaim_async(self, value: Value) -> Awaitable[None]: ...
    def resign_async(self) -> Awaitable[None]: ...
    def leader_async(self) -> Awaitable[Optional[Leader]]: ...
    def end_async(self) -> Awaitable[None]: ...
    def close_async(self) -> Awaitable[None]: ...
    def observe_async(self) -> AsyncObserver: ...
