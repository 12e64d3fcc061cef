//! The etcd v3 backend (`etcd://`, `etcds://`).
//!
//! # Key layout
//!
//! `<ns>` is the URL's namespace followed by `/` (`etcd://h/app` gives `app/`), or
//! nothing. For the election `<name>`:
//!
//! - **Candidates:** `<ns><name>/<lease id in lowercase hex>`, written with the
//!   client's lease, holding the candidate's value. A second handle of the same
//!   client in the same election uses `<ns><name>/<lease hex>_<n>`. This is the
//!   layout of etcd's Go `concurrency.Election`, so `etcdctl elect <name>` and a
//!   ballot election `<name>` (with no namespace) are the same election.
//! - **Leader:** the candidate with the smallest create revision. Its create
//!   revision is the `term`: revisions only grow, so terms strictly increase, also
//!   across `end()`, restarts and reconnects.
//! - **Epoch:** `<ns>\0ballot/epoch/<name>`, a decimal counter that `end()` bumps.
//!   It is outside `<ns><name>/` because `etcdctl elect` takes every key under the
//!   prefix for a candidate; the NUL byte (never part of a name) keeps it out of
//!   every election's prefix, including those of nested names (`svc` and
//!   `svc/x`). It stays inside `<ns>`, so a role granted on the namespace prefix
//!   covers it. A user whose role covers only `<ns><name>/` cannot read it: give
//!   the role the namespace prefix.
//!
//! Only the direct children of `<ns><name>/` count as candidates, so the keys of a
//! nested election `<name>/x` never lead `<name>` in ballot (`etcdctl elect`, which
//! looks at the whole prefix, does not make that distinction).
//!
//! # The recipe
//!
//! ballot does not use etcd's server-side Election RPC; it runs the Go recipe
//! itself with transactions and watches:
//!
//! - **campaign:** one transaction puts the candidate key with the lease and reads
//!   back its create revision. A waiting candidate then watches only the key just
//!   before its own (no herd) *and its own key*: if its own key disappears (lease
//!   expiry, `end()`, a foreign delete) it stops waiting instead of waiting forever
//!   (etcd issue 19597). It finds that predecessor with one transaction that reads
//!   its own key, the epoch and the candidates below its create revision (newest
//!   first, a few rows), so a handoff reads the same with 2 candidates or 1,000.
//! - **the epoch** of every election a client takes part in is followed by one
//!   watch of the epoch keys' common prefix `<ns>\0ballot/epoch/`; `end()` is the
//!   only writer, so handoffs never wake it.
//! - **one gRPC stream** carries every watch of a client, each under an id the
//!   client picks (etcd 3.4+; older servers get a stream per watch). A stream costs
//!   the client about 22 KiB, and a process leading 10,000 elections held 20,000.
//! - **watches require a leader:** the stream is opened with `hasleader: true`,
//!   so a member cut off from its cluster cancels it ("no leader") instead of
//!   holding it open and silent while the others elect and end without it. An
//!   observer then gets an `Error` event and the watch is opened again (on
//!   another member when the URL names several); waiting candidates read again.
//! - **a failed or cancelled campaign** deletes its key before it lets go of it, in
//!   the background when the caller's future is dropped (etcd issue 21128).
//! - **proclaim** is a transaction that checks the key's create revision;
//!   **resign** deletes the key under the same check.
//! - **observe** reads the election and the epoch in one transaction at revision
//!   `R`, watches both from `R + 1`, and reads again after every event. A watch
//!   cancelled because `R + 1` was compacted is simply re-established after a new
//!   read (etcd issue 7815): nothing is lost because every item is a fresh read.
//! - **end()** bumps the epoch and deletes every candidate key in one transaction.
//!   Each ballot participant sees the epoch change in its watch and ends. An
//!   `etcdctl elect` campaigner whose key is deleted does not notice (the Go
//!   recipe does not watch its own key), but the epoch key never looks like a
//!   candidate to it. A candidate that joins between `end()`'s read and its
//!   transaction outlives it; it reads the epoch with every look at its
//!   predecessor, and one that sees a later epoch than it joined under is ended,
//!   never elected.
//!
//! # The session
//!
//! The client's lease is kept alive every TTL/3 on one keepalive stream, one
//! request at a time; each answer is credited to the send time of its request,
//! and the next request is due TTL/3 after the previous *send*, so that an answer
//! latency below TTL/6 never reaches the overdue mark (TTL/2 after the last
//! acknowledged send). Below a 3 s TTL the 500 ms stall bound exceeds TTL/6: an
//! answer slower than TTL/6 but faster than 500 ms suspends the session until it
//! arrives, without moving to another member.
//! With several members the keepalive talks to one member at a time and moves on
//! to the next when that one fails or stalls, that is, does not answer within half
//! an interval (TTL/6, at least 500 ms); a frozen member keeps its TCP connection
//! open, and the balanced channel would keep choosing it.
//! The session tracker turns that into `Suspended` and `Lost` with
//! `deadline = send time of the last acknowledged keepalive + TTL - margin`. The TTL
//! the server reports is ignored: an etcd leader change resets lease TTLs on the
//! server (etcd issue 9395), which must not extend our own idea of validity. When
//! the lease is lost (locally or by the server's word) the backend revokes it
//! (best effort) and grants a new one: a new session generation, under which the
//! engine campaigns again.
//!
//! Auth tokens (`simple` tokens expire) are refreshed by the client on "invalid
//! auth token" and the request is retried.
//!
//! # Files
//!
//! - `backend.rs`: [`EtcdBackend`] and its entries, the recipe above.
//! - `hub.rs`: the one gRPC watch stream that every watch of a client shares.
//! - `error.rs`: etcd-client errors as ballot errors.

mod backend;
mod error;
mod hub;

pub(crate) use backend::EtcdBackend;
