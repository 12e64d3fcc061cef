"""Backends for the tests: the local backend always, and each real server whose URL
the harness exported (``BALLOT_TEST_ETCD``, ``BALLOT_TEST_ZK``, ``BALLOT_TEST_CONSUL``).

With ``BALLOT_TEST_REQUIRE_SERVERS=1`` (set by tests/run.sh when it started the
servers) a missing URL fails the run instead of quietly testing less.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator

import pytest

SERVERS = {"etcd": "BALLOT_TEST_ETCD", "zk": "BALLOT_TEST_ZK", "consul": "BALLOT_TEST_CONSUL"}


def backend_params() -> list[str]:
    kinds = ["local"]
    require = os.environ.get("BALLOT_TEST_REQUIRE_SERVERS") == "1"
    for kind, var in SERVERS.items():
        if os.environ.get(var):
            kinds.append(kind)
        elif require:
            raise RuntimeError(
                f"BALLOT_TEST_REQUIRE_SERVERS=1 but {var} is not set: start the {kind} server with "
                "tests/servers/harness.py (tests/run.sh does) or unset BALLOT_TEST_REQUIRE_SERVERS"
            )
    return kinds


@pytest.fixture(scope="session")
def local_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="ballot-py-") as d:
        yield d


@pytest.fixture(params=backend_params())
def backend(request: pytest.FixtureRequest, local_dir: str) -> str:
    """A backend URL; every test that takes it runs once per backend."""
    kind: str = request.param
    if kind == "local":
        return f"file://{local_dir}"
    url = os.environ[SERVERS[kind]]
    # Consul's default 15 s lock delay would hold every takeover after a crash.
    return f"{url}?lock_delay=0s" if kind == "consul" else url


@pytest.fixture
def name() -> str:
    """An election name no other test (or earlier run on a shared server) uses."""
    return f"pytest/{uuid.uuid4().hex}"
