"""The core's one table (error kinds, event kinds, options) as Python spells it.

Every exception class, event kind and ``connect`` keyword equals the table read
from the native module (``_native._table()``), spelt by Python's rules, in the
module and in the stubs; every option works without the URL; and the scenario
every language runs (campaign, a successor waits, resign, end) reports the same
set of event names.
"""

from __future__ import annotations

import ast
import os
import pathlib
import threading
from typing import Any

import pytest

import ballot
from ballot import _errors, _native
from helpers import Recorder, backend_of, eventually, server, ttl_for

TABLE = _native._table()
STUBS = pathlib.Path(__file__).resolve().parents[1] / "python" / "ballot"


def camel(name: str) -> str:
    """Python's rule for a class name, written out independently of the module's."""
    return "".join(w[:1].upper() + w[1:] for w in name.split("_"))


def stub(name: str) -> ast.Module:
    return ast.parse((STUBS / name).read_text(encoding="utf-8"))


def test_codes_are_stable_and_in_order_and_names_unique() -> None:
    for rows in (TABLE["errors"], TABLE["events"]):
        assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
        assert len({r[1] for r in rows}) == len(rows)
    assert [r[1] for r in TABLE["events"]] == [
        "elected",
        "suspended",
        "reconnected",
        "lost",
        "resigned",
        "leader_changed",
        "ended",
        "error",
    ]


def test_one_exception_class_per_kind_named_by_the_rule() -> None:
    declared = [n.name for n in stub("_errors.pyi").body if isinstance(n, ast.ClassDef)]
    assert declared == ["BallotError"] + [camel(kind) + "Error" for _, kind, _, _ in TABLE["errors"]]
    for code, kind, class_name, doc in TABLE["errors"]:
        assert class_name == camel(kind) + "Error"
        cls = getattr(ballot, class_name)
        assert cls is getattr(_errors, class_name)
        assert issubclass(cls, ballot.BallotError) and cls is not ballot.BallotError
        assert (cls.kind, cls.code, cls.__doc__, cls.__module__) == (kind, code, doc, "ballot._errors")
        assert class_name in ballot.__all__
    assert issubclass(ballot.InvalidArgumentError, ValueError)


def test_a_core_error_raises_the_class_of_its_kind(tmp_path: pathlib.Path) -> None:
    with ballot.connect(f"file://{tmp_path}") as c:
        with pytest.raises(ballot.NotLeaderError) as info:
            c.election("svc").proclaim("v")
    assert info.value.kind == "not_leader" and info.value.code == 4


def test_event_kinds_are_the_core_names_in_the_stub() -> None:
    [alias] = [
        n.value
        for n in stub("_native.pyi").body
        if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name) and n.targets[0].id == "_EventKind"
    ]
    assert isinstance(alias, ast.Subscript) and isinstance(alias.slice, ast.Tuple)
    literal = [e.value for e in alias.slice.elts if isinstance(e, ast.Constant)]
    assert literal == [name for _, name in TABLE["events"]]


def test_connect_takes_every_option_by_its_name_in_the_stub() -> None:
    body = stub("_native.pyi").body
    [options] = [n for n in body if isinstance(n, ast.ClassDef) and n.name == "_Options"]
    types = {"duration": "Optional[float]", "bool": "Optional[bool]", "text": "Optional[str]", "path": "Optional[_Path]"}
    declared = [(ast.unparse(a.target), ast.unparse(a.annotation)) for a in options.body if isinstance(a, ast.AnnAssign)]
    assert declared == [(name, types[ty]) for name, ty, _ in TABLE["options"]]
    for fn in (n for n in body if isinstance(n, ast.FunctionDef) and n.name in ("connect", "connect_async")):
        assert fn.args.kwarg is not None and ast.unparse(fn.args.kwarg) == "options: Unpack[_Options]", fn.name


def test_options_are_parsed_by_the_core_which_names_them(tmp_path: pathlib.Path) -> None:
    url = f"file://{tmp_path}"
    ballot.connect(url, ttl=3, safety_margin=0.5, connect_timeout=2.0, auto_requeue=False).close()
    as_text: dict[str, Any] = {"ttl": "3s", "safety_margin": None}  # the URL's syntax; None: the default
    ballot.connect(url, **as_text).close()
    refused: list[tuple[dict[str, Any], str]] = [
        ({"tll": 5}, "unknown option \"tll\""),
        ({"ttl": True}, "option ttl takes a duration"),
        ({"ttl": 1e300}, "too large"),
        ({"ttl": 10**400}, "finite"),
        ({"ttl": [1]}, "option ttl takes a duration (a number, or text such as 10s), not list"),
        ({"auto_requeue": 1}, "option auto_requeue takes true or false"),
        ({"token": "t", "username": "u"}, "exclude each other"),
        ({"token": "s3cret"}, "file:// takes no credentials"),
        ({"tls_ca": pathlib.Path("/nonexistent/ca.pem")}, "does not speak TLS"),
    ]
    for kwargs, text in refused:
        with pytest.raises(ballot.InvalidArgumentError) as info:
            ballot.connect(url, **kwargs)
        assert text in str(info.value), (kwargs, str(info.value))
        assert "s3cret" not in str(info.value)


def test_an_option_the_url_also_gives_must_agree_with_it(tmp_path: pathlib.Path) -> None:
    # Neither place overrides the other: the same value in both is used, a
    # different one is refused naming the option.
    url = f"file://{tmp_path}"
    with pytest.raises(ballot.InvalidArgumentError, match="ttl=3s"):
        ballot.connect(f"{url}?ttl=3s", ttl=30)
    ballot.connect(f"{url}?ttl=30s", ttl=30).close()


def lead_and_resign(client: ballot.Client, name: str) -> None:
    try:
        e = client.election(name)
        assert e.campaign("me", timeout=10).term > 0
        e.resign()
    finally:
        client.close()


def test_username_and_password_reach_etcd(name: str) -> None:
    b = server("etcd-auth")
    prefix = b.facts["PREFIX"].rstrip("/")
    url = f"{b.url}/{prefix}/{name.replace('/', '-')}"
    with pytest.raises(ballot.AuthError):
        ballot.connect(url, connect_timeout=5)
    user, password = b.facts["USER"], b.facts["PASSWORD"]
    lead_and_resign(ballot.connect(url, username=user, password=password, ttl=b.ttl), "svc")


def test_tls_files_reach_etcd(name: str) -> None:
    b = server("etcd-tls")
    key = pathlib.Path(b.facts["KEY"])  # an os.PathLike works as well as a str
    c = ballot.connect(b.url, tls_ca=b.facts["CA"], tls_cert=b.facts["CERT"], tls_key=key, ttl=b.ttl)
    lead_and_resign(c, name)


def test_token_reaches_consul(name: str) -> None:
    b = server("consul-acl")
    lead_and_resign(ballot.connect(b.with_query(b.url), token=b.facts["TOKEN"], ttl=b.ttl), name)


def test_username_password_and_ca_reach_postgresql(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    b = server("pg")
    monkeypatch.delenv("PGUSER", raising=False)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    url = f"{b.facts['0_URL']}/{name.replace('/', '-')}"  # no user, no password
    with pytest.raises(ballot.AuthError) as refused:
        ballot.connect(url, username=b.facts["USER"], password="wr0ng-pa55word", connect_timeout=5)
    assert "wr0ng-pa55word" not in str(refused.value)
    user, password = b.facts["USER"], b.facts["PASSWORD"]
    lead_and_resign(ballot.connect(url, username=user, password=password, ttl=b.ttl), "svc")
    c = ballot.connect(f"{url}?sslmode=verify-full", username=user, password=password, tls_ca=b.facts["CA"], ttl=b.ttl)
    lead_and_resign(c, "svc")


def test_the_common_scenario_reports_the_same_event_names(backend: str, name: str) -> None:
    """Campaign, a successor waits, resign, end: C, Python and Node report the same
    set of event names (here the core's names)."""
    limit = backend_of(backend).live
    ca, cb = (ballot.connect(backend, ttl=ttl_for(backend), connect_timeout=10) for _ in range(2))
    try:
        a, b = ca.election(name), cb.election(name)
        ra, rb = Recorder(), Recorder()
        a.on_event(ra)
        b.on_event(rb)

        def names(rec: Recorder, value: bytes) -> bool:
            return any(e.kind == "leader_changed" and e.leader is not None and e.leader.value == value for e in rec.events)

        a.campaign("a", timeout=limit)
        eventually(lambda: names(ra, b"a"), limit, "a's leader_changed naming a")
        won: list[ballot.Leadership] = []
        waiter = threading.Thread(target=lambda: won.append(b.campaign("b", timeout=limit)))
        waiter.start()
        eventually(lambda: b.state == "campaigning", limit, "b to campaign")
        a.resign()
        waiter.join(limit + 5)
        assert won, "b was elected after a resigned"
        eventually(lambda: names(rb, b"b"), limit, "b's leader_changed naming b")
        b.end()
        for rec in (ra, rb):
            eventually(lambda: "ended" in rec.kinds(), limit, "ended")
        assert set(ra.kinds()) | set(rb.kinds()) == {"elected", "leader_changed", "resigned", "ended"}, (
            ra.kinds(),
            rb.kinds(),
        )
        assert ra.kinds()[-1] == rb.kinds()[-1] == "ended"
    finally:
        ca.close()
        cb.close()
