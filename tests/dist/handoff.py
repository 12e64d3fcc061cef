"""Two-process handoff with the installed wheel, on the local backend.

    python handoff.py file://DIR            # the first process: leads, then hands over
    python handoff.py file://DIR --second   # started by the first: waits, then leads

The first process leads, starts the second, waits until the second has seen it
as the leader and is about to campaign, resigns, and then reads the second as
the new leader with a higher term. Prints `version <ballot.__version__>` and
`handoff term <first> -> <second>`; exits non-zero on any failure.
"""

import subprocess
import sys

import ballot

URL = sys.argv[1]
ELECTION = "dist-handoff"


def second() -> None:
    client = ballot.connect(URL)
    election = client.election(ELECTION)
    leader = election.leader()
    assert leader is not None and leader.value == b"first", leader
    print("ready", flush=True)
    lead = election.campaign(b"second", timeout=60)
    print(f"elected {lead.term}", flush=True)
    # Hold until the first process has read this leadership and closed our stdin.
    sys.stdin.read()
    election.resign()
    client.close()


def first() -> None:
    print(f"version {ballot.__version__}")
    print(f"module {ballot.__file__}")
    client = ballot.connect(URL)
    election = client.election(ELECTION)
    lead = election.campaign(b"first", timeout=60)
    child = subprocess.Popen(
        [sys.executable, __file__, URL, "--second"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.readline().strip() == "ready"
    election.resign()
    line = child.stdout.readline().strip()
    assert line.startswith("elected "), line
    term = int(line.split()[1])
    assert term > lead.term, (term, lead.term)
    now = election.leader()
    assert now is not None and now.value == b"second" and now.term == term, now
    child.stdin.close()
    assert child.wait(timeout=60) == 0
    assert election.leader() is None
    client.close()
    print(f"handoff term {lead.term} -> {term}")


if __name__ == "__main__":
    second() if "--second" in sys.argv else first()
