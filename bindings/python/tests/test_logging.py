"""ballot's records reach Python's ``logging`` (logger ``"ballot"``), with the
backend and the election as record attributes, and never a value."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import uuid

import pytest

import ballot
from helpers import eventually


def test_state_changes_reach_the_ballot_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ballot")
    name = f"svc-{uuid.uuid4().hex[:8]}"
    secret = "value-that-must-not-be-logged"
    with ballot.connect(f"memory://pylog-{uuid.uuid4().hex}") as c:
        e = c.election(name)
        lead = e.campaign(secret, timeout=10)
        e.resign()

        def seen(level: int, text: str) -> logging.LogRecord | None:
            for r in caplog.records:
                if r.name == "ballot" and r.levelno == level and r.getMessage().endswith(text):
                    if getattr(r, "ballot_election", None) == name:
                        return r
            return None

        elected = eventually(lambda: seen(logging.INFO, f"elected term={lead.term}"), 10, "the elected record")
        assert getattr(elected, "ballot_backend") == "memory"
        assert elected.getMessage() == f"backend=memory election={name}: elected term={lead.term}"
        eventually(lambda: seen(logging.DEBUG, "state idle -> campaigning"), 10, "the state record")
        eventually(lambda: seen(logging.INFO, "resigned"), 10, "the resigned record")
    assert all(secret not in r.getMessage() for r in caplog.records)


def test_a_program_that_configures_nothing_prints_nothing_and_one_that_does_sees_records() -> None:
    program = textwrap.dedent(
        """
        import logging, sys, uuid
        import ballot
        if sys.argv[1] == "configured":
            logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s", stream=sys.stdout)
        with ballot.connect(f"memory://p-{uuid.uuid4().hex}") as c:
            e = c.election("svc")
            e.campaign("x", timeout=10)
            e.resign()
        # Records cross a thread; those made before exit are delivered at exit.
        """
    )
    quiet = subprocess.run([sys.executable, "-c", program, "quiet"], capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == "" and quiet.stderr == "", (quiet.stdout, quiet.stderr)
    loud = subprocess.run([sys.executable, "-c", program, "configured"], capture_output=True, text=True, timeout=60)
    assert loud.returncode == 0, loud.stderr
    assert "ballot INFO backend=memory election=svc: elected term=1" in loud.stdout, loud.stdout
    assert "ballot INFO backend=memory election=svc: resigned" in loud.stdout, loud.stdout
