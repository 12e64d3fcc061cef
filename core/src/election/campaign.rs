//! Campaigning: join, wait to win, join again when the session goes under the
//! candidate, start the hold of a win, and campaign again after a loss
//! (auto-requeue). What each outcome means is the state machine's to say; this
//! file waits on the backend and the session and feeds it what happened.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::hold::{hold, Requeue};
use super::in_flight::{InFlight, InFlightToken};
use super::machine::{Input, Next, Published, Ticket};
use super::participant::{EntryRef, Participant};
use crate::backend::{Backend, Entry};
use crate::error::{Error, ErrorKind, Result};
use crate::model::Leader;
use crate::runtime;
use crate::session::{Health, SessionStatus};

/// The pauses before a candidate joins again after its backend reported the
/// session lost under it.
const SESSION_RETRY_MIN: Duration = Duration::from_millis(20);
const SESSION_RETRY_MAX: Duration = Duration::from_secs(1);

/// The pauses between attempts of an automatic requeue that failed on a
/// transient error.
const REQUEUE_PAUSE_MIN: Duration = Duration::from_millis(200);
const REQUEUE_PAUSE_MAX: Duration = Duration::from_secs(5);

/// What ended a wait for the win.
enum WaitOutcome {
    Won(Result<Leader>),
    SessionGone,
    TicketEnded,
}

/// What a [`Participant::join_detached`] task sends: the join's outcome, and the
/// token that keeps the join counted in flight until the receiver has handed the
/// entry to the state machine (or to a counted withdrawal).
type Joined = (Result<Arc<dyn Entry>>, InFlightToken);

/// The receiving end of a [`Participant::join_detached`] task.
struct Joining {
    rx: oneshot::Receiver<Joined>,
    in_flight: Arc<InFlight>,
}

impl Drop for Joining {
    fn drop(&mut self) {
        // An entry sent before the close is ours to withdraw; after it, the join
        // task's send fails and the task withdraws the entry itself.
        self.rx.close();
        if let Ok((Ok(entry), token)) = self.rx.try_recv() {
            self.in_flight.spawn(async move {
                let _ = entry.withdraw().await;
            });
            drop(token);
        }
    }
}

/// Withdraws a candidate whose `campaign` future was dropped or failed before its
/// caller heard of a win.
pub(super) struct CampaignGuard {
    pub(super) participant: Arc<Participant>,
    pub(super) ticket: Ticket,
    pub(super) armed: bool,
}

impl Drop for CampaignGuard {
    fn drop(&mut self) {
        if self.armed {
            self.participant.step(Input::CampaignDropped { ticket: self.ticket });
        }
    }
}

impl Participant {
    /// Idle -> Campaigning with `value`, returning the campaign's ticket.
    pub(super) fn begin_campaign(&self, value: &[u8]) -> Result<Ticket> {
        match self.step(Input::Campaign { value: value.to_vec() }) {
            Next::Join { ticket } => Ok(ticket),
            Next::Fail(e) => Err(e),
            next => Err(unexpected(&next)),
        }
    }

    /// Joins, waits to win and records the win, campaigning again while the
    /// machine says so. Returns the leader record of the win.
    pub(super) async fn acquire_and_win(self: &Arc<Self>, ticket: Ticket, value: &[u8]) -> Result<Leader> {
        let tracker = self.backend().session().clone();
        loop {
            let (entry, leader, generation) = self.acquire(ticket, value).await?;
            let term = leader.term;
            let next = self.step_with(|| Input::Won { ticket, entry, term, generation, session: tracker.status() });
            match next {
                Next::Hold { ticket, generation, entry } => {
                    self.start_hold(ticket, entry, generation)?;
                    return Ok(leader);
                }
                // `acquire` waits for the next healthy session before it joins again.
                Next::Rejoin { .. } => continue,
                Next::Fail(e) => return Err(e),
                next => return Err(unexpected(&next)),
            }
        }
    }

    /// Joins and waits to win, starting over under a new session when the machine
    /// says so. Returns the winning entry, its leader record and the session
    /// generation it joined under.
    async fn acquire(self: &Arc<Self>, ticket: Ticket, value: &[u8]) -> Result<(EntryRef, Leader, u64)> {
        let backend = self.backend().clone();
        let tracker = backend.session().clone();
        let mut pause = SESSION_RETRY_MIN;
        loop {
            let mut states = self.published.subscribe();
            let mut sessions = tracker.subscribe();
            // Wait for a healthy session (a backend replaces a lost one itself).
            let generation = loop {
                let st = tracker.status();
                if st.health == Health::Healthy {
                    break st.generation;
                }
                tokio::select! {
                    _ = sessions.changed() => {}
                    _ = ticket_ended(&mut states, ticket) => return Err(self.void_error()),
                }
            };
            let mut joining = self.join_detached(&backend, value);
            // `counted` keeps the join in flight until the machine has the entry.
            let (joined, counted) = tokio::select! {
                r = &mut joining.rx => match r {
                    Ok((joined, token)) => (joined, Some(token)),
                    Err(_) => (Err(Error::new(ErrorKind::Internal, "the join task stopped")), None),
                },
                _ = ticket_ended(&mut states, ticket) => return Err(self.void_error()),
            };
            let entry = match joined {
                Ok(entry) => EntryRef(entry),
                // The session went, or is being replaced, under the join (the
                // tracker can read healthy a moment before the backend has the new
                // session ready, and a server that lost its data has none of ours).
                Err(error) => {
                    drop(counted);
                    let next = self.step(Input::JoinFailed { error });
                    self.rejoin_or_fail(next, &mut pause, &mut states, ticket).await?;
                    continue;
                }
            };
            let epoch = entry.0.epoch();
            let next = self.step(Input::Joined { ticket, entry: entry.clone(), epoch });
            drop(counted);
            match next {
                Next::Proceed => {}
                Next::Fail(e) => return Err(e),
                next => return Err(unexpected(&next)),
            }
            // In this order when several are ready at once: a win reported under a
            // session that is already gone, or for a campaign already withdrawn, is
            // no win.
            let outcome = tokio::select! {
                biased;
                _ = session_gone(&mut sessions, generation) => WaitOutcome::SessionGone,
                _ = ticket_ended(&mut states, ticket) => WaitOutcome::TicketEnded,
                r = entry.0.wait_won() => WaitOutcome::Won(r),
            };
            let next = match outcome {
                WaitOutcome::Won(Ok(leader)) => return Ok((entry, leader, generation)),
                WaitOutcome::TicketEnded => return Err(self.void_error()),
                WaitOutcome::Won(Err(error)) => self.step(Input::WaitFailed { ticket, entry, error }),
                WaitOutcome::SessionGone => self.step(Input::SessionGone { ticket, entry }),
            };
            self.rejoin_or_fail(next, &mut pause, &mut states, ticket).await?;
        }
    }

    /// Follows the machine's word after a failed join or wait: join again (after
    /// a pause that doubles up to a second, so that a session that keeps failing
    /// does not become a busy loop), or fail. Fails when the ticket ends during the
    /// pause.
    async fn rejoin_or_fail(
        &self,
        next: Next<EntryRef>,
        pause: &mut Duration,
        states: &mut watch::Receiver<Published>,
        ticket: Ticket,
    ) -> Result<()> {
        match next {
            Next::Rejoin { pause: false } => Ok(()),
            Next::Rejoin { pause: true } => {
                tokio::select! {
                    _ = tokio::time::sleep(*pause) => {}
                    _ = ticket_ended(states, ticket) => return Err(self.void_error()),
                }
                *pause = (*pause * 2).min(SESSION_RETRY_MAX);
                Ok(())
            }
            Next::Fail(e) => Err(e),
            Next::WithdrawThenFail(entry, e) => {
                let _ = entry.0.withdraw().await;
                Err(e)
            }
            next => Err(unexpected(&next)),
        }
    }

    /// The error for work whose ticket ended, by the state now.
    fn void_error(&self) -> Error {
        self.read(|m| m.void_error())
    }

    /// Starts `backend.join` as its own task and returns the receiving end of its
    /// outcome.
    ///
    /// A join is a request that may be applied by the server after the caller gave
    /// up on it: dropping the request future would leave a candidate entry that a
    /// clean-up sent in parallel can overtake (seen on Consul: the orphan key then
    /// held up every later candidate of the election). Here the request always runs
    /// to completion, and an entry that nobody received is withdrawn right after it.
    /// The task is counted in flight, and its count passes with the entry to the
    /// receiver, so [`settle`](Participant::settle) waits for it and for the
    /// withdrawal of an entry that the machine no longer wants.
    fn join_detached(&self, backend: &Arc<dyn Backend>, value: &[u8]) -> Joining {
        let (tx, rx) = oneshot::channel();
        let (backend, name, value) = (backend.clone(), self.name.clone(), value.to_vec());
        self.in_flight.spawn_with(move |token| async move {
            let joined = backend.join(&name, &value).await;
            if let Err((Ok(unwanted), token)) = tx.send((joined, token)) {
                let _ = unwanted.withdraw().await;
                drop(token);
            }
        });
        Joining { rx, in_flight: self.in_flight.clone() }
    }

    /// Starts the hold of the leadership of `ticket`; when the hold ends in a loss
    /// that the machine requeues, the requeue starts from the hold's task.
    fn start_hold(self: &Arc<Self>, ticket: Ticket, entry: EntryRef, generation: u64) -> Result<()> {
        let p = self.clone();
        let task = runtime::spawn(async move {
            if let Some(requeue) = hold(&p, ticket, entry, generation).await {
                p.start_requeue(requeue);
            }
        })?;
        self.keep_task(ticket, task.abort_handle());
        Ok(())
    }

    /// Campaigns again after a loss, in the background, until it wins, its ticket
    /// ends, or the machine gives up on an error.
    fn start_requeue(self: &Arc<Self>, Requeue { ticket, value }: Requeue) {
        let p = self.clone();
        let task = runtime::spawn(async move {
            let mut pause = REQUEUE_PAUSE_MIN;
            loop {
                let error = match p.acquire_and_win(ticket, &value).await {
                    Ok(_) => return,
                    Err(e) => e,
                };
                match p.step(Input::RequeueFailed { ticket, error }) {
                    Next::Retry => {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(REQUEUE_PAUSE_MAX);
                    }
                    _ => return,
                }
            }
        });
        if let Ok(task) = task {
            self.keep_task(ticket, task.abort_handle());
        }
    }
}

/// The error for a word of the machine that the sender cannot follow (a bug).
fn unexpected(next: &Next<EntryRef>) -> Error {
    Error::new(ErrorKind::Internal, format!("the election state machine answered {next:?} out of place"))
}

/// Resolves when the ticket is no longer `ticket` (resign, end, close, loss).
async fn ticket_ended(states: &mut watch::Receiver<Published>, ticket: Ticket) {
    let _ = states.wait_for(|p| p.ticket != ticket).await;
}

/// Resolves when the session of `generation` is lost or replaced.
async fn session_gone(sessions: &mut watch::Receiver<SessionStatus>, generation: u64) {
    let _ = sessions.wait_for(|s| s.generation != generation || s.health == Health::Lost).await;
}
