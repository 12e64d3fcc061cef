"""The exception classes of ballot: ``BallotError`` and one subclass per error kind.

The native module raises these; the kind's stable name is the class attribute
``kind`` (``"not_leader"``, ...). The underlying cause, when there is one, is
chained as ``__cause__``.
"""

from __future__ import annotations

__all__ = [
    "BallotError",
    "InvalidArgumentError",
    "ConnectionError",
    "TimeoutError",
    "NotLeaderError",
    "NoLeaderError",
    "SessionLostError",
    "EndedError",
    "ClosedError",
    "AuthError",
    "BackendError",
    "InternalError",
    "CancelledError",
]


class BallotError(Exception):
    """Any error from ballot."""

    kind: str = "unknown"


class InvalidArgumentError(BallotError, ValueError):
    """A value, name, URL or option is not acceptable, or the handle's state does
    not allow the operation (for example campaigning twice)."""

    kind = "invalid_argument"


class ConnectionError(BallotError):  # noqa: A001 - named after the kind, like asyncio's
    """The backend could not be reached or the connection broke."""

    kind = "connection"


class TimeoutError(BallotError):  # noqa: A001
    """The operation did not finish within its timeout."""

    kind = "timeout"


class NotLeaderError(BallotError):
    """The operation needs leadership and this handle does not hold it."""

    kind = "not_leader"


class NoLeaderError(BallotError):
    """The election has no leader."""

    kind = "no_leader"


class SessionLostError(BallotError):
    """The session was lost while the operation ran."""

    kind = "session_lost"


class EndedError(BallotError):
    """The election was ended by ``end()``."""

    kind = "ended"


class ClosedError(BallotError):
    """The client or election was closed, or is used in a process made by
    ``fork()`` after it was created (create clients after fork)."""

    kind = "closed"


class AuthError(BallotError):
    """The backend refused the credentials or the permission."""

    kind = "auth"


class BackendError(BallotError):
    """The backend answered with an error that fits no other kind."""

    kind = "backend"


class InternalError(BallotError):
    """A bug or broken invariant inside ballot."""

    kind = "internal"


class CancelledError(BallotError):
    """The operation was cancelled (for example a campaign withdrawn by
    ``resign()`` from another thread)."""

    kind = "cancelled"
