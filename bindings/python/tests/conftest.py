"""Backends for the tests, from the one description that tests/servers/harness.py
writes (``BALLOT_TEST_BACKENDS``; see helpers.backends): the local backend always,
and each real server (etcd, zk, zk-tls, consul, pg) that runs.

With ``BALLOT_TEST_REQUIRE_SERVERS=1`` (set by tests/run.sh when it started the
servers) a missing server fails the run instead of quietly testing less.
"""

from __future__ import annotations

import os
import uuid

import pytest

from helpers import backends

SERVERS = ("etcd", "zk", "zk-tls", "consul", "pg")


def backend_params() -> list[str]:
    kinds = ["local"]
    require = os.environ.get("BALLOT_TEST_REQUIRE_SERVERS") == "1"
    for kind in SERVERS:
        if kind in backends():
            kinds.append(kind)
        elif require:
            raise RuntimeError(
                f"BALLOT_TEST_REQUIRE_SERVERS=1 but {kind} is not in the backend description: start it with "
                "tests/servers/harness.py (tests/run.sh does) or unset BALLOT_TEST_REQUIRE_SERVERS"
            )
    return kinds


@pytest.fixture(params=backend_params())
def backend(request: pytest.FixtureRequest) -> str:
    """A backend URL with the description's query (Consul's ``lock_delay=0s``);
    every test that takes it runs once per backend."""
    b = backends()[request.param]
    if b.family == "local":
        # A directory of this run's own under the description's.
        return b.fresh_url(f"py-{os.getpid()}")
    return b.with_query(b.url)


@pytest.fixture
def name() -> str:
    """An election name no other test (or earlier run on a shared server) uses."""
    return f"pytest/{uuid.uuid4().hex}"
