//! The election state machine as a pure transition function.
//!
//! [`Machine::step`] takes the machine and one [`Input`] (something a caller did,
//! or something the backend or the session reported) and gives the new machine, the
//! [`Effect`]s the engine performs for every input alike (emit an event, withdraw an
//! entry in the background, stop a task), and the [`Next`] thing the sender of the
//! input does (fail its operation, join again, start holding a won leadership,
//! campaign again after a loss). It does no I/O, takes no lock and reads no clock:
//! whatever it needs to know about the world (the session's health, an epoch, an
//! error) comes in the input. The async code around it (`participant.rs`,
//! `campaign.rs`, `hold.rs`, `monitor.rs`) feeds inputs and performs effects, and
//! every change of state goes through here.
//!
//! The machine is generic over the entry type `E` (the engine's handle on a
//! backend entry), so its tests use plain values.

use crate::error::{Error, ErrorKind};
use crate::model::{Event, Leader, LostReason, State};
use crate::session::{Health, SessionStatus};

/// A campaign's number. It stays the same from `campaign()` through the leadership
/// that campaign wins, and every transition that ends a campaign or a leadership
/// (resign, a loss, `end()`, close, a dropped campaign) moves to a new one. Work
/// started for a ticket (a join, a hold, a requeue) sends its ticket with each
/// input, so a late answer of an old campaign cannot make the handle leader again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Ticket(u64);

impl Ticket {
    fn next(self) -> Ticket {
        Ticket(self.0 + 1)
    }
}

/// Everything the engine knows about one participant, and all it decides from.
#[derive(Debug, Clone)]
pub(crate) struct Machine<E> {
    /// The election name, for error messages.
    name: String,
    /// Whether a participant that lost its leadership (or whose session went while
    /// it waited) campaigns again by itself.
    auto_requeue: bool,
    state: State,
    /// The term of the current leadership (`Leader`, `Suspended`).
    term: Option<u64>,
    ticket: Ticket,
    /// The value of the current campaign, proclaimed value included; a requeue
    /// campaigns with it.
    value: Vec<u8>,
    /// The backend entry of the current campaign or leadership.
    entry: Option<E>,
    /// The election epoch this participant belongs to: the first one it saw. A later
    /// one means the election was ended.
    epoch_base: Option<u64>,
    /// The session generation the current leadership was won under.
    won_generation: Option<u64>,
    /// The leader as this participant has seen it, never going back in term.
    leader: Option<Leader>,
    /// The highest leader term seen.
    max_term: u64,
}

/// What the machine publishes after each transition for the tasks that wait on it
/// (a `Leadership` waiting to end, a campaign waiting on its ticket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Published {
    pub(crate) state: State,
    pub(crate) term: Option<u64>,
    pub(crate) ticket: Ticket,
}

/// Something that happened to a participant: a call of its user, a report of its
/// backend or session, an outcome of its own background work.
#[derive(Debug)]
pub(crate) enum Input<E> {
    /// `campaign(value)` was called; the value was checked already.
    Campaign { value: Vec<u8> },
    /// The backend added the candidate `entry` for `ticket`, in the election epoch
    /// `epoch` when the backend knows it.
    Joined { ticket: Ticket, entry: E, epoch: Option<u64> },
    /// The backend could not add the candidate.
    JoinFailed { error: Error },
    /// The session a waiting candidate joined under was lost or replaced before
    /// it won.
    SessionGone { ticket: Ticket, entry: E },
    /// The backend's wait for the win failed.
    WaitFailed { ticket: Ticket, entry: E, error: Error },
    /// The entry leads, with `term`, having joined under the session `generation`;
    /// `session` is the session as read when the win is recorded.
    Won { ticket: Ticket, entry: E, term: u64, generation: u64, session: SessionStatus },
    /// The hold of a leadership won under `generation` read the session.
    SessionSeen { ticket: Ticket, generation: u64, session: SessionStatus },
    /// The hold asked the backend whether the entry is still this session's
    /// (`owned`) after a reconnect; `session` is the session read after the answer.
    Verified { ticket: Ticket, generation: u64, owned: bool, session: SessionStatus },
    /// The backend saw the leadership end (its record deleted or taken over), or
    /// the session's reports stopped.
    LeadershipLost { ticket: Ticket, reason: LostReason },
    /// A campaign started by auto-requeue failed.
    RequeueFailed { ticket: Ticket, error: Error },
    /// `proclaim(value)` was written for `ticket`.
    Proclaimed { ticket: Ticket, value: Vec<u8> },
    /// `resign()` was called.
    Resign,
    /// The caller dropped its `campaign` future (or it failed) before hearing of a
    /// win.
    CampaignDropped { ticket: Ticket },
    /// The election watch reported the election epoch.
    Epoch(u64),
    /// The election watch reported the epoch and the leader.
    Snapshot { epoch: u64, leader: Option<Leader> },
    /// `end()` of this handle succeeded, or the backend said the election ended.
    End,
    /// `close()` of this handle or of its client.
    Close,
}

/// What the engine does after a transition, whoever sent the input, in order.
#[derive(Debug)]
pub(crate) enum Effect<E> {
    /// Queue this event for every subscriber.
    Emit(Event),
    /// Tell `observe()` streams of a new leader.
    PublishLeader(Option<Leader>),
    /// Withdraw this entry in the background (counted, so `settle` waits for it).
    Withdraw(E),
    /// Stop the task working for the ended ticket (a hold or a requeue); done
    /// while the state changes, so the task cannot act in between.
    StopTask,
    /// Stop the election watch.
    StopWatch,
    /// End every event subscription (after the events already queued).
    CloseSubscriptions,
}

/// What the sender of an input does next.
#[derive(Debug)]
pub(crate) enum Next<E> {
    /// Go on: the operation succeeded, the campaign waits, the hold keeps watching.
    Proceed,
    /// The sender's operation fails with this error.
    Fail(Error),
    /// The campaign joins the election for `ticket`.
    Join { ticket: Ticket },
    /// Withdraw this entry, wait for it, then fail with this error.
    WithdrawThenFail(E, Error),
    /// Withdraw this entry (if any) and wait for it: the outcome of `resign()` and
    /// `close()`.
    Withdraw(Option<E>),
    /// The campaign joins again, after the pause between rejoins when `pause`
    /// (the backend said the session is gone) and at once otherwise (the next
    /// healthy session is awaited before joining anyway).
    Rejoin { pause: bool },
    /// The campaign won: start holding the leadership.
    Hold { ticket: Ticket, generation: u64, entry: E },
    /// The hold asks the backend whether the entry is still this session's.
    Verify,
    /// The hold reads the session again at once, without waiting for a change.
    LookAgain,
    /// The leadership was lost: campaign again with `value` for `ticket`.
    Requeue { ticket: Ticket, value: Vec<u8> },
    /// The requeue tries again after its pause.
    Retry,
    /// The task that sent the input is done.
    Stop,
}

/// The outcome of one transition (the new machine is the one `step` was called on).
#[derive(Debug)]
pub(crate) struct Step<E> {
    pub(crate) effects: Vec<Effect<E>>,
    pub(crate) next: Next<E>,
}

impl<E> Step<E> {
    fn new(effects: Vec<Effect<E>>, next: Next<E>) -> Step<E> {
        Step { effects, next }
    }

    fn proceed() -> Step<E> {
        Step::new(Vec::new(), Next::Proceed)
    }

    fn fail(error: Error) -> Step<E> {
        Step::new(Vec::new(), Next::Fail(error))
    }
}

/// Whether an automatic requeue tries again after an error of this kind: the
/// server or the session may come back; refused credentials, an ended election or
/// a closed handle do not.
pub(crate) fn requeue_retries(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::SessionLost | ErrorKind::Backend)
}

/// `Ended` and `Closed` as the errors an operation on such a handle fails with.
pub(crate) fn terminal_error(state: State) -> Result<(), Error> {
    match state {
        State::Ended | State::Closed => Err(terminal(state)),
        _ => Ok(()),
    }
}

/// The error of a terminal state (`Ended`, or else `Closed`).
fn terminal(state: State) -> Error {
    if state == State::Ended {
        Error::ended()
    } else {
        Error::closed()
    }
}

impl<E: Clone + PartialEq> Machine<E> {
    /// An idle participant of election `name`.
    pub(crate) fn new(name: String, auto_requeue: bool) -> Machine<E> {
        Machine {
            name,
            auto_requeue,
            state: State::Idle,
            term: None,
            ticket: Ticket::default(),
            value: Vec::new(),
            entry: None,
            epoch_base: None,
            won_generation: None,
            leader: None,
            max_term: 0,
        }
    }

    /// The state as the machine holds it (see [`state_seen`](Self::state_seen)).
    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// The current ticket.
    pub(crate) fn ticket(&self) -> Ticket {
        self.ticket
    }

    /// What waiters see.
    pub(crate) fn published(&self) -> Published {
        Published { state: self.state, term: self.term, ticket: self.ticket }
    }

    /// The state with `session` taken into account: a leadership whose session is
    /// in doubt reads `Suspended` before the hold has said so. That is an unhealthy
    /// session, or a new session generation (the one the leadership was won under
    /// is gone, and a backend may start the next one before the hold runs;
    /// memory:// does so at once).
    pub(crate) fn state_seen(&self, session: SessionStatus) -> State {
        if self.state == State::Leader
            && (session.health != Health::Healthy || Some(session.generation) != self.won_generation)
        {
            return State::Suspended;
        }
        self.state
    }

    /// Whether the leadership of `ticket` holds now, by `session`.
    pub(crate) fn leads(&self, ticket: Ticket, session: SessionStatus) -> bool {
        self.ticket == ticket && self.state_seen(session) == State::Leader
    }

    /// The error for work whose ticket was ended, by the state now.
    pub(crate) fn void_error(&self) -> Error {
        match self.state {
            State::Ended => Error::ended(),
            State::Closed => Error::closed(),
            _ => Error::new(ErrorKind::Cancelled, "the campaign was withdrawn by resign()"),
        }
    }

    /// The entry and ticket of a leadership that may proclaim now.
    pub(crate) fn leading_entry(&self, session: SessionStatus) -> Result<(E, Ticket), Error> {
        match self.state_seen(session) {
            State::Leader => {}
            State::Suspended => return Err(Error::new(ErrorKind::NotLeader, "leadership is suspended")),
            st => {
                terminal_error(st)?;
                return Err(Error::new(
                    ErrorKind::NotLeader,
                    format!("not the leader of {:?} (state {st})", self.name),
                ));
            }
        }
        match &self.entry {
            Some(e) => Ok((e.clone(), self.ticket)),
            None => Err(Error::new(ErrorKind::Internal, "leader without an entry")),
        }
    }

    /// The transition: applies `input` to the machine and says what follows.
    pub(crate) fn step(&mut self, input: Input<E>) -> Step<E> {
        match input {
            Input::Campaign { value } => self.campaign(value),
            Input::Joined { ticket, entry, epoch } => self.joined(ticket, entry, epoch),
            Input::JoinFailed { error } => {
                if error.kind() == ErrorKind::SessionLost && self.auto_requeue {
                    Step::new(Vec::new(), Next::Rejoin { pause: true })
                } else {
                    Step::fail(error)
                }
            }
            Input::SessionGone { ticket, entry } => {
                self.forget_entry(ticket, &entry);
                let next = if self.auto_requeue {
                    Next::Rejoin { pause: false }
                } else {
                    Next::Fail(Error::new(
                        ErrorKind::SessionLost,
                        "the session was lost while campaigning and auto-requeue is off",
                    ))
                };
                Step::new(vec![Effect::Withdraw(entry)], next)
            }
            Input::WaitFailed { ticket, entry, error } => self.wait_failed(ticket, entry, error),
            Input::Won { ticket, entry, term, generation, session } => {
                self.won(ticket, entry, term, generation, session)
            }
            Input::SessionSeen { ticket, generation, session } => self.session_seen(ticket, generation, session),
            Input::Verified { ticket, generation, owned, session } => {
                if !owned {
                    return self.lose(ticket, LostReason::NotOwner);
                }
                // The check may have taken long: only a session that is still the
                // same and healthy now lets leadership come back.
                if session != (SessionStatus { generation, health: Health::Healthy }) {
                    return Step::new(Vec::new(), Next::LookAgain);
                }
                if ticket != self.ticket {
                    return Step::new(Vec::new(), Next::Stop);
                }
                if self.state != State::Suspended {
                    return Step::proceed();
                }
                self.state = State::Leader;
                Step::new(vec![Effect::Emit(Event::Reconnected)], Next::Proceed)
            }
            Input::LeadershipLost { ticket, reason } => self.lose(ticket, reason),
            Input::RequeueFailed { ticket, error } => self.requeue_failed(ticket, error),
            Input::Proclaimed { ticket, value } => {
                if ticket == self.ticket {
                    self.value = value;
                }
                Step::proceed()
            }
            Input::Resign => self.resign(),
            Input::CampaignDropped { ticket } => self.campaign_dropped(ticket),
            Input::Epoch(epoch) => {
                let (_, effects) = self.epoch(epoch);
                Step::new(effects, Next::Proceed)
            }
            Input::Snapshot { epoch, leader } => self.snapshot(epoch, leader),
            Input::End => Step::new(self.end(), Next::Proceed),
            Input::Close => self.close(),
        }
    }

    /// Moves to `state` under a new ticket, with no term.
    fn void(&mut self, state: State) {
        self.ticket = self.ticket.next();
        self.state = state;
        self.term = None;
    }

    /// Drops `entry` from the machine if it is the current campaign's.
    fn forget_entry(&mut self, ticket: Ticket, entry: &E) {
        if ticket == self.ticket && self.entry.as_ref() == Some(entry) {
            self.entry = None;
        }
    }

    fn campaign(&mut self, value: Vec<u8>) -> Step<E> {
        match self.state {
            State::Idle => {}
            State::Campaigning | State::Leader | State::Suspended => {
                return Step::fail(Error::invalid(format!(
                    "election {:?} is already {}; resign() first",
                    self.name, self.state
                )))
            }
            st => return Step::fail(terminal(st)),
        }
        self.value = value;
        self.void(State::Campaigning);
        Step::new(Vec::new(), Next::Join { ticket: self.ticket })
    }

    fn joined(&mut self, ticket: Ticket, entry: E, epoch: Option<u64>) -> Step<E> {
        if ticket != self.ticket {
            return Step::new(vec![Effect::Withdraw(entry)], Next::Fail(self.void_error()));
        }
        // An end() between the moment this participant fixed its epoch and the join:
        // the entry belongs to the next round, this participant to the ended one.
        if let Some(ep) = epoch {
            if ep > *self.epoch_base.get_or_insert(ep) {
                let mut effects = vec![Effect::Withdraw(entry)];
                effects.extend(self.end());
                return Step::new(effects, Next::Fail(Error::ended()));
            }
        }
        self.entry = Some(entry);
        Step::proceed()
    }

    fn wait_failed(&mut self, ticket: Ticket, entry: E, error: Error) -> Step<E> {
        // An end() or resign() withdraws the entry, which fails the wait: report why
        // the ticket ended, not the withdrawal.
        if ticket != self.ticket {
            return Step::fail(self.void_error());
        }
        // The backend saw the end() before this participant's watch did.
        if error.kind() == ErrorKind::Ended {
            return Step::new(self.end(), Next::Fail(error));
        }
        self.forget_entry(ticket, &entry);
        // The backend found the entry or its session gone (for example, a server
        // restarted without its data): join again.
        if error.kind() == ErrorKind::SessionLost && self.auto_requeue {
            return Step::new(vec![Effect::Withdraw(entry)], Next::Rejoin { pause: true });
        }
        Step::new(Vec::new(), Next::WithdrawThenFail(entry, error))
    }

    /// A win is checked against the session as it is recorded: the backend can
    /// report a win an instant after the session it was won under was lost or
    /// replaced, and such a win is void (the server may already be freeing the
    /// entry). A loss after this check is the hold's to report.
    fn won(&mut self, ticket: Ticket, entry: E, term: u64, generation: u64, session: SessionStatus) -> Step<E> {
        if ticket != self.ticket {
            return Step::new(vec![Effect::Withdraw(entry)], Next::Fail(self.void_error()));
        }
        if session.generation != generation || session.health == Health::Lost {
            self.forget_entry(ticket, &entry);
            let next = if self.auto_requeue {
                Next::Rejoin { pause: false }
            } else {
                Next::Fail(Error::new(ErrorKind::SessionLost, "the session was lost as the campaign won"))
            };
            return Step::new(vec![Effect::Withdraw(entry)], next);
        }
        self.entry = Some(entry.clone());
        self.won_generation = Some(generation);
        self.state = State::Leader;
        self.term = Some(term);
        Step::new(vec![Effect::Emit(Event::Elected { term })], Next::Hold { ticket, generation, entry })
    }

    fn session_seen(&mut self, ticket: Ticket, generation: u64, session: SessionStatus) -> Step<E> {
        if session.generation != generation || session.health == Health::Lost {
            return self.lose(ticket, LostReason::SessionLost);
        }
        if ticket != self.ticket {
            return Step::new(Vec::new(), Next::Stop);
        }
        match (session.health, self.state) {
            (Health::Suspended, State::Leader) => {
                self.state = State::Suspended;
                Step::new(vec![Effect::Emit(Event::Suspended)], Next::Proceed)
            }
            (Health::Healthy, State::Suspended) => Step::new(Vec::new(), Next::Verify),
            _ => Step::proceed(),
        }
    }

    /// The leadership of `ticket` is over: Idle, or Campaigning again with the same
    /// value when auto-requeue is on.
    fn lose(&mut self, ticket: Ticket, reason: LostReason) -> Step<E> {
        if ticket != self.ticket {
            return Step::new(Vec::new(), Next::Stop);
        }
        let mut effects: Vec<Effect<E>> = self.entry.take().map(Effect::Withdraw).into_iter().collect();
        effects.push(Effect::Emit(Event::Lost { reason }));
        self.void(State::Idle);
        let next = if self.auto_requeue {
            self.void(State::Campaigning);
            Next::Requeue { ticket: self.ticket, value: self.value.clone() }
        } else {
            Next::Stop
        };
        Step::new(effects, next)
    }

    /// Nobody waits on a requeue to hear its error: a server that cannot be reached
    /// for a while (the cause of many losses) must not drop the participant out of
    /// the election for good, so such an error is reported and the campaign goes
    /// on. Any other error ends the campaign.
    fn requeue_failed(&mut self, ticket: Ticket, error: Error) -> Step<E> {
        if ticket != self.ticket {
            return Step::new(Vec::new(), Next::Stop);
        }
        if requeue_retries(error.kind()) {
            return Step::new(vec![Effect::Emit(Event::Error(error))], Next::Retry);
        }
        let mut effects: Vec<Effect<E>> = self.entry.take().map(Effect::Withdraw).into_iter().collect();
        self.void(State::Idle);
        effects.push(Effect::Emit(Event::Error(error)));
        Step::new(effects, Next::Stop)
    }

    fn resign(&mut self) -> Step<E> {
        let was_leader = match self.state {
            State::Leader | State::Suspended => true,
            State::Campaigning => false,
            State::Idle => {
                return Step::fail(Error::new(
                    ErrorKind::NotLeader,
                    format!("not leading or campaigning in {:?}", self.name),
                ))
            }
            st => return Step::fail(terminal(st)),
        };
        let entry = self.entry.take();
        self.void(State::Idle);
        let mut effects = vec![Effect::StopTask];
        // With the state change, so it precedes the LeaderChanged that the removal
        // of the entry causes.
        if was_leader {
            effects.push(Effect::Emit(Event::Resigned));
        }
        Step::new(effects, Next::Withdraw(entry))
    }

    /// A campaign whose caller stopped listening: a candidate is withdrawn, and a
    /// win the caller never heard of is resigned, since nobody knows it leads.
    fn campaign_dropped(&mut self, ticket: Ticket) -> Step<E> {
        if ticket != self.ticket {
            return Step::proceed();
        }
        let mut effects = Vec::new();
        match self.state {
            State::Campaigning => {}
            State::Leader | State::Suspended => {
                effects.push(Effect::StopTask);
                effects.push(Effect::Emit(Event::Resigned));
            }
            _ => return Step::proceed(),
        }
        let entry = self.entry.take();
        self.void(State::Idle);
        effects.extend(entry.map(Effect::Withdraw));
        Step::new(effects, Next::Proceed)
    }

    /// Records `epoch`; the first one seen is the participant's own, a later one
    /// ends it. Says whether the epoch is a later one.
    fn epoch(&mut self, epoch: u64) -> (bool, Vec<Effect<E>>) {
        let base = *self.epoch_base.get_or_insert(epoch);
        if epoch > base {
            (true, self.end())
        } else {
            (false, Vec::new())
        }
    }

    fn snapshot(&mut self, epoch: u64, leader: Option<Leader>) -> Step<E> {
        let (ended, effects) = self.epoch(epoch);
        if ended || self.leader == leader {
            return Step::new(effects, Next::Proceed);
        }
        if let Some(l) = &leader {
            if l.term < self.max_term {
                return Step::proceed(); // an older leader than one already reported
            }
            self.max_term = l.term;
        }
        self.leader = leader.clone();
        Step::new(
            vec![Effect::PublishLeader(leader.clone()), Effect::Emit(Event::LeaderChanged(leader))],
            Next::Proceed,
        )
    }

    /// Moves to `Ended` (from a local `end()` or an observed epoch change).
    fn end(&mut self) -> Vec<Effect<E>> {
        if matches!(self.state, State::Ended | State::Closed) {
            return Vec::new();
        }
        let entry = self.entry.take();
        self.void(State::Ended);
        let mut effects = vec![Effect::StopTask];
        effects.extend(entry.map(Effect::Withdraw));
        effects.extend([Effect::StopWatch, Effect::Emit(Event::Ended), Effect::CloseSubscriptions]);
        effects
    }

    /// Moves to `Closed` at once (no later win is accepted) and hands the entry to
    /// the sender to withdraw.
    fn close(&mut self) -> Step<E> {
        if self.state == State::Closed {
            return Step::new(Vec::new(), Next::Withdraw(None));
        }
        let entry = self.entry.take();
        self.void(State::Closed);
        Step::new(vec![Effect::StopTask, Effect::StopWatch, Effect::CloseSubscriptions], Next::Withdraw(entry))
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
