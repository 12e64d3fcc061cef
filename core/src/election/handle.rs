//! The public face of the engine: [`Election`], the handle a user holds, and
//! [`Leadership`], the proof of a won campaign.

use std::fmt;
use std::sync::{Arc, Weak};

use tokio::sync::watch;

use super::campaign::CampaignGuard;
use super::events::{self, Events};
use super::machine::{Published, Ticket};
use super::monitor::Observe;
use super::participant::{Participant, WatchScope};
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::model::{Event, Leader, Participant as Candidate, State};
use crate::runtime;

/// Proof of a won campaign: the term and key, and a way to learn when it is over.
#[derive(Debug, Clone)]
pub struct Leadership {
    term: u64,
    key: String,
    value: Vec<u8>,
    ticket: Ticket,
    state: watch::Receiver<Published>,
    participant: Weak<Participant>,
}

impl Leadership {
    /// The term (fencing token) of this leadership.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// The leader key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value campaigned with.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// Whether this leadership still holds right now (state `Leader`, same term,
    /// session healthy by the boot-time clock, which counts a host suspend). A
    /// process paused after this check cannot know that it has gone stale; that is
    /// what the term is for.
    pub fn is_current(&self) -> bool {
        match self.participant.upgrade() {
            Some(p) => p.read(|m| m.leads(self.ticket, p.backend().session().status())),
            None => false,
        }
    }

    /// Resolves when this leadership is over (lost, resigned, suspended, ended or
    /// closed). Cancel-safe.
    pub async fn lost(&self) {
        let mut rx = self.state.clone();
        let ticket = self.ticket;
        let _ = rx.wait_for(|p| !(p.state == State::Leader && p.ticket == ticket)).await;
    }
}

/// A handle on one election: campaign, proclaim, resign, read and observe the
/// leader, end the election.
///
/// `Election` is `Send + Sync` and cheap to clone; clones are the same participant.
/// Operations run on the library runtime, so they can be awaited from any
/// executor. Dropping the last clone withdraws the candidate (resigning if it
/// leads) in the background.
#[derive(Clone)]
pub struct Election {
    owner: Arc<CloseOnDrop>,
}

/// The participant behind every clone of one `Election`; dropping the last clone
/// drops this, which closes the participant in the background.
struct CloseOnDrop {
    participant: Arc<Participant>,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        let p = self.participant.clone();
        runtime::spawn_detached(async move { p.close().await });
    }
}

impl fmt::Debug for Election {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Election").field("name", &self.owner.participant.name).field("state", &self.state()).finish()
    }
}

impl Election {
    pub(crate) fn new(connection: Arc<Connection>, name: String) -> Election {
        let participant = Arc::new(Participant::new(connection, name));
        let probe: std::sync::Weak<dyn crate::metrics::HandleProbe> = Arc::downgrade(&participant) as _;
        participant.metrics.set_probe(probe);
        Election { owner: Arc::new(CloseOnDrop { participant }) }
    }

    /// The participant behind this handle.
    pub(crate) fn participant(&self) -> &Arc<Participant> {
        &self.owner.participant
    }

    /// The election name.
    pub fn name(&self) -> &str {
        &self.owner.participant.name
    }

    /// The state now. A `Leader` whose session has passed its local deadline (for
    /// example a process resumed after SIGSTOP, or a host resumed from suspend: the
    /// deadline counts `CLOCK_BOOTTIME`, which runs on during a suspend) reads as
    /// `Suspended` even before the background task has reported `Lost`.
    ///
    /// A process that is paused right after this read and acts later cannot know
    /// what happened meanwhile; pass the term to the resource you protect, so that
    /// it can refuse a stale leader (see the README's safety section).
    pub fn state(&self) -> State {
        self.owner.participant.state_now()
    }

    /// What a health endpoint answers for this handle: `ok` while the client's
    /// session is healthy and the handle is neither suspended, ended nor closed (an
    /// idle or campaigning handle on a healthy session is healthy), with a one-line
    /// reason that names no value, key or URL. The CLI's `/healthz` serves it.
    pub fn health_check(&self) -> crate::metrics::HealthCheck {
        use crate::metrics::HealthCheck;
        use crate::session::Health;
        let p = &self.owner.participant;
        let state = p.state_now();
        match state {
            State::Closed => return HealthCheck::new(false, "closed"),
            State::Ended => return HealthCheck::new(false, "ended: the election was ended"),
            _ => {}
        }
        match p.backend().session().status().health {
            Health::Lost => return HealthCheck::new(false, "session lost"),
            Health::Suspended => {
                return HealthCheck::new(
                    false,
                    "session suspended: no keepalive answered, or the server is unreachable",
                )
            }
            Health::Healthy => {}
        }
        match state {
            State::Suspended => HealthCheck::new(false, "suspended: leadership in doubt"),
            s => HealthCheck::new(true, format!("ok: {s}")),
        }
    }

    /// Campaigns with `value` (1 byte to the backend's limit) and resolves once this
    /// handle leads.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` for an empty or oversized value or when already
    /// campaigning or leading; `Ended`, `Closed`; `SessionLost` if the session is
    /// lost while waiting (or as the campaign wins) and auto-requeue is off; `Cancelled` if `resign()` withdrew
    /// the candidate; backend errors (`Connection`, `Auth`, `Backend`).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future (or a timeout around it) withdraws the candidate and
    /// leaves no entry behind.
    pub async fn campaign(&self, value: impl AsRef<[u8]>) -> Result<Leadership> {
        let s = self.owner.participant.clone();
        let value = value.as_ref().to_vec();
        {
            let (s, v) = (s.clone(), value.clone());
            runtime::run(async move {
                s.check_usable()?;
                s.check_value(&v)?;
                // Fixes the epoch this participant belongs to before it joins.
                s.ensure_watch(WatchScope::Epoch).await
            })
            .await?;
        }
        let ticket = s.begin_campaign(&value)?;
        // The guard lives in the caller's future, so dropping that future resets the
        // state and withdraws synchronously, not whenever the runtime gets to the
        // aborted task.
        let mut guard = CampaignGuard { participant: s.clone(), ticket, armed: true };
        let s2 = s.clone();
        let leader = runtime::run(async move { s2.acquire_and_win(ticket, &value).await }).await?;
        guard.armed = false;
        Ok(Leadership {
            term: leader.term,
            key: leader.key,
            value: leader.value,
            ticket,
            state: s.published.subscribe(),
            participant: Arc::downgrade(&s),
        })
    }

    /// Replaces the leader's value; the term does not change.
    ///
    /// # Errors
    ///
    /// `NotLeader` unless the state is `Leader`; `InvalidArgument` for a bad value.
    pub async fn proclaim(&self, value: impl AsRef<[u8]>) -> Result<()> {
        let s = self.owner.participant.clone();
        let value = value.as_ref().to_vec();
        runtime::run(async move { s.proclaim(value).await }).await
    }

    /// Gives up leadership, or withdraws a waiting candidate (a pending `campaign`
    /// then fails with `Cancelled`).
    ///
    /// # Errors
    ///
    /// `NotLeader` when neither leading nor campaigning; `Ended`, `Closed`; a
    /// backend error if the record could not be removed (the session's expiry
    /// removes it later).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops only the waiting: the resignation completes in the
    /// background, so the record never outlives the handle's wish to lead.
    pub async fn resign(&self) -> Result<()> {
        let s = self.owner.participant.clone();
        runtime::run_to_completion(async move { s.resign().await }).await
    }

    /// Reads the current leader from the backend.
    ///
    /// # Errors
    ///
    /// `Ended`, `Closed`, or a backend error.
    pub async fn leader(&self) -> Result<Option<Leader>> {
        let s = self.owner.participant.clone();
        runtime::run(async move {
            s.check_usable()?;
            s.bounded("reading the leader", s.backend().leader(&s.name)).await
        })
        .await
    }

    /// Lists the candidates of the election in queue order, the leader first:
    /// each with its key, its value and whether it leads. Candidates of the native
    /// recipes that share the election are listed too: Curator `LeaderLatch` nodes
    /// on ZooKeeper, `etcdctl elect` keys on etcd, a `consul lock` holder on Consul
    /// (with the value it stored; it has no queue entry, so it is listed only while
    /// it holds the lock).
    ///
    /// The list comes from one consistent read where the backend allows it (an
    /// etcd revision, a ZooKeeper multi-read, one Consul KV read, one SQL
    /// statement), so the order and the leader flag agree. Only the first
    /// participant can lead; a first participant without the flag is next in
    /// line while nobody leads (between a release and the next win). An election
    /// without candidates gives an empty list. On `file://` the waiting
    /// candidates of other processes are not recorded anywhere: the list is the
    /// leader, then the waiting candidates of this process in their order.
    ///
    /// # Errors
    ///
    /// `Ended` once this handle saw the election ended, `Closed` after `close()`,
    /// `Timeout` when the backend does not answer within the TTL (or the connect
    /// timeout, if longer), or a backend error (`Connection`, `Auth`, `Backend`).
    ///
    /// # Cancel safety
    ///
    /// A read only: dropping the future leaves nothing behind.
    pub async fn participants(&self) -> Result<Vec<Candidate>> {
        let s = self.owner.participant.clone();
        runtime::run(async move {
            s.check_usable()?;
            s.bounded("listing the participants", s.backend().participants(&s.name)).await
        })
        .await
    }

    /// Ends the election for every participant: each gets `Ended` and leaders step
    /// down. This handle becomes `Ended` too. Terms keep increasing if the name is
    /// used again by new handles.
    ///
    /// # Errors
    ///
    /// `Closed`, or a backend error.
    pub async fn end(&self) -> Result<()> {
        let s = self.owner.participant.clone();
        runtime::run(async move {
            match s.state() {
                State::Closed => return Err(Error::closed()),
                State::Ended => return Ok(()),
                _ => {}
            }
            s.bounded("ending the election", s.backend().end(&s.name)).await?;
            s.end_locally();
            Ok(())
        })
        .await
    }

    /// Watches the leader: the current one first, then each change. Never yields
    /// an older term after a newer one. Ends after yielding `Err(Ended)` or
    /// `Err(Closed)`; other errors are yielded as the watch is re-established.
    pub fn observe(&self) -> Observe {
        Observe::new(self.owner.participant.clone())
    }

    /// Subscribes to this handle's events, in order. The stream ends after `Ended`
    /// or when the handle is closed. Each call makes an independent subscription.
    ///
    /// # Slow subscribers
    ///
    /// The library never waits for a subscriber, and a subscription holds at most
    /// 1024 events that were not received yet. When an
    /// event arrives at a full queue, room is made by removing what a later event
    /// supersedes or what cancels out, in this order:
    ///
    /// 1. the oldest queued `LeaderChanged`: each one carries the whole leader, and
    ///    the newest one is always kept;
    /// 2. the oldest queued `Error`;
    /// 3. when only state events are queued, a span that the subscriber has not
    ///    received and whose effect is nil: a whole leadership (`Elected` up to
    ///    its `Lost` or `Resigned`, with the `Suspended`/`Reconnected` between),
    ///    or a `Suspended` directly followed by `Reconnected`.
    ///
    /// So a subscriber that falls behind may miss intermediate leaders, background
    /// errors and leaderships that began and ended while it was not reading, but it
    /// never misses a state change it needs: the `Lost` or `Resigned` of an
    /// `Elected` it received, a `Suspended` that still holds, the `Elected` of the
    /// current leadership, `Ended`. Reading the queue as it comes keeps every event.
    ///
    /// # Threading
    ///
    /// [`Events`] may be moved to and polled from any thread or executor.
    pub fn events(&self) -> Events {
        let (tx, events) = events::subscribe();
        let p = &self.owner.participant;
        if p.subscribe(tx) {
            let p = p.clone();
            runtime::spawn_detached(async move {
                if let Err(e) = p.ensure_watch(WatchScope::Leader).await {
                    p.emit(Event::Error(e));
                }
            });
        }
        events
    }

    /// Closes this handle: withdraws the candidate (resigning if leading; a join
    /// still on its way to the server is waited for, at most the TTL, and
    /// withdrawn) and makes every later operation fail with `Closed`. Idempotent.
    pub async fn close(&self) {
        let s = self.owner.participant.clone();
        let _ = runtime::run_to_completion(async move {
            s.close().await;
            Ok(())
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::election::testing::{connection, emit, tag, Loss};
    use crate::election::EVENT_QUEUE_CAPACITY;
    use crate::error::ErrorKind;
    use crate::model::LostReason;
    use futures_util::FutureExt;

    /// A campaign whose session is lost when its win is reported must not lead: the
    /// engine must prefer the loss when both are ready, and check the session when
    /// it records the win.
    #[tokio::test]
    async fn a_win_under_a_lost_session_does_not_lead() {
        for loss in [Loss::AfterJoin, Loss::WhileWinning] {
            // Without an order between the two, the wrong one wins about half the time.
            for round in 0..64 {
                let (c, tracker) = connection(loss);
                let e = Election::new(c, "svc".into());
                let r = e.campaign(b"v").await;
                let err = r.as_ref().err().map(|e| e.kind());
                assert_eq!(
                    err,
                    Some(ErrorKind::SessionLost),
                    "{loss:?}, round {round}: campaign gave {r:?} with the session {:?}",
                    tracker.status()
                );
                assert_eq!(e.state(), State::Idle, "{loss:?}, round {round}");
                e.close().await;
            }
        }
    }

    fn leader(term: u64) -> Option<Leader> {
        Some(Leader::new(format!("v{term}").into_bytes(), term, format!("k{term}")))
    }

    /// Everything queued now, without waiting.
    fn drain(events: &mut Events) -> Vec<Event> {
        std::iter::from_fn(|| events.recv().now_or_never().flatten()).collect()
    }

    /// Takes out of a sequence of state events the spans whose effect is nil: a
    /// `Suspended` right before `Reconnected`, a whole leadership.
    fn net(mut v: Vec<String>) -> Vec<String> {
        loop {
            let pair = (0..v.len().saturating_sub(1)).find(|&i| v[i] == "S" && v[i + 1] == "R");
            if let Some(i) = pair {
                v.drain(i..=i + 1);
                continue;
            }
            let whole = (0..v.len()).find_map(|i| {
                if !v[i].starts_with('E') {
                    return None;
                }
                let j = (i + 1..v.len()).find(|&j| v[j] != "S" && v[j] != "R")?;
                (v[j] == "L" || v[j] == "Res").then_some((i, j))
            });
            match whole {
                Some((i, j)) => drop(v.drain(i..=j)),
                None => return v,
            }
        }
    }

    /// A subscriber that does not read while thousands of events happen finds at
    /// most the capacity queued, and what it finds still tells the state: the loss
    /// of the leadership it had heard of, the latest leader, the current leadership
    /// (suspended), and nothing of the leaderships that came and went unread.
    #[tokio::test]
    async fn a_subscriber_that_falls_behind_gets_a_bounded_summary() {
        let (c, _) = connection(Loss::Never);
        let e = Election::new(c, "svc".into());
        let mut events = e.events();
        emit(&e, Event::Elected { term: 1 });
        assert_eq!(drain(&mut events).iter().map(tag).collect::<Vec<_>>(), ["E1"]);

        // Then it stops reading.
        let mut sent = 0;
        let mut term = 1;
        for round in 0..600 {
            for _ in 0..5 {
                term += 1;
                emit(&e, Event::LeaderChanged(leader(term)));
                sent += 1;
            }
            emit(&e, Event::Error(Error::new(ErrorKind::Connection, format!("blip {round}"))));
            emit(&e, Event::Suspended);
            emit(&e, Event::Reconnected);
            sent += 3;
            if round == 0 {
                emit(&e, Event::Lost { reason: LostReason::SessionLost }); // of term 1
                sent += 1;
            } else if round < 599 {
                // A whole leadership while the subscriber is away.
                emit(&e, Event::Elected { term: term + 1 });
                emit(&e, Event::Suspended);
                emit(&e, Event::Lost { reason: LostReason::SessionLost });
                sent += 3;
            }
        }
        term += 1;
        emit(&e, Event::Elected { term });
        emit(&e, Event::LeaderChanged(leader(term)));
        emit(&e, Event::Suspended);
        sent += 3;

        let got = drain(&mut events);
        assert!(sent > 5_000, "the test sends {sent}");
        // The capacity documented on `events()`.
        assert!(got.len() <= 1024, "{} events queued of {sent} sent", got.len());
        // The state events received mean what the ones sent mean: with the spans
        // whose effect is nil taken out, both read "lost the leadership it knew of,
        // leads again in `term`, suspended".
        let states: Vec<String> =
            got.iter().filter(|ev| !matches!(ev, Event::LeaderChanged(_) | Event::Error(_))).map(tag).collect();
        assert_eq!(net(states), ["L".to_string(), format!("E{term}"), "S".to_string()], "state events");
        let last_leader = got.iter().rev().find_map(|ev| match ev {
            Event::LeaderChanged(l) => Some(l.clone()),
            _ => None,
        });
        assert_eq!(last_leader, Some(leader(term)), "the latest leader is kept");

        // Read as it comes, nothing is merged.
        for t in 0..3 * EVENT_QUEUE_CAPACITY as u64 {
            emit(&e, Event::LeaderChanged(leader(100_000 + t)));
            let ev = events.recv().now_or_never().flatten().expect("queued");
            assert_eq!(tag(&ev), format!("C{}", 100_000 + t));
        }
        e.close().await;
        assert!(events.recv().await.is_none(), "the stream ends when the handle closes");
    }
}
