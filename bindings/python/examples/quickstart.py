"""The README's Python example: lead an election on the local backend."""

import ballot

client = ballot.connect()  # the local backend; or "etcd://127.0.0.1:2379", ttl=10
election = client.election("svc")

with election.leadership(b"node-1") as lead:  # campaign; resign on exit
    print("leading with term", lead.term)  # pass the term to what you write
    election.proclaim("node-1 v2")  # the value changes, the term does not
    leader = election.leader()
    assert leader is not None
    print("leader:", leader.value, leader.term)

print("after resign:", election.leader())
client.close()
