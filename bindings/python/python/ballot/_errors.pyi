# Types of ballot._errors, whose classes are made at import from the core's
# table. mypy's stubtest (in bindings/python/test.sh) checks this file against
# the module, and tests/test_table.py checks the names against the table.

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
    kind: str
    code: int

class InvalidArgumentError(BallotError, ValueError): ...
class ConnectionError(BallotError): ...  # noqa: A001 - named after the kind
class TimeoutError(BallotError): ...  # noqa: A001
class NotLeaderError(BallotError): ...
class NoLeaderError(BallotError): ...
class SessionLostError(BallotError): ...
class EndedError(BallotError): ...
class ClosedError(BallotError): ...
class AuthError(BallotError): ...
class BackendError(BallotError): ...
class InternalError(BallotError): ...
class CancelledError(BallotError): ...
