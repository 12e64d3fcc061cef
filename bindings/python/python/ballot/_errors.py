"""The exception classes of ballot: ``BallotError`` and one subclass per error kind.

The classes are made from the core's table (``ballot._native._table()``), so
there is one per kind and no list to keep by hand. Python's rule names them: the
kind's name in CamelCase and ``Error`` (``not_leader`` is ``NotLeaderError``).
Each has the kind's stable name as ``kind`` and its stable number as ``code``
(the C ``ballot_result``). The underlying cause, when there is one, is chained as
``__cause__``. ``_errors.pyi`` declares them for type checkers; the test command
checks it against this module with mypy's stubtest.
"""

from __future__ import annotations

from ballot import _native


class BallotError(Exception):
    """Any error from ballot."""

    kind: str = "unknown"
    code: int = 0


# Python-only extra bases: a bad argument is also a ValueError.
_EXTRA_BASES: dict[str, tuple[type[Exception], ...]] = {"invalid_argument": (ValueError,)}

__all__ = ["BallotError"]

for _code, _kind, _class_name, _doc in _native._table()["errors"]:
    globals()[_class_name] = type(
        _class_name,
        (BallotError, *_EXTRA_BASES.get(_kind, ())),
        {"__doc__": _doc, "__module__": __name__, "kind": _kind, "code": _code},
    )
    __all__.append(_class_name)
