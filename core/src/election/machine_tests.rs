//! The state machine, one row per transition: a start state, an input, and the
//! state, ticket, effects and next step that must follow. Rows named after a bug
//! are the transitions that the chaos suite or a review found wrong once.

use super::*;

type E = &'static str;

const GEN: u64 = 1;

fn healthy(generation: u64) -> SessionStatus {
    SessionStatus { generation, health: Health::Healthy }
}

fn suspended(generation: u64) -> SessionStatus {
    SessionStatus { generation, health: Health::Suspended }
}

fn lost(generation: u64) -> SessionStatus {
    SessionStatus { generation, health: Health::Lost }
}

fn err(kind: ErrorKind) -> Error {
    Error::new(kind, "from the backend")
}

fn leader(term: u64) -> Option<Leader> {
    Some(Leader::new(format!("v{term}").into_bytes(), term, format!("k{term}")))
}

/// Where a row starts, reached through the machine's own inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// New, no epoch seen yet.
    Idle,
    /// Campaigning, not joined yet (the epoch 0 seen).
    Campaigning,
    /// Campaigning with the entry `e1`.
    Joined,
    /// Leading with `e1`, term 7, won under session generation 1.
    Leader,
    /// As `Leader`, then the session's health went into doubt.
    Suspended,
    /// Idle after resigning a leadership (its ticket is stale).
    Resigned,
    Ended,
    Closed,
}

const ALL: [Start; 8] = [
    Start::Idle,
    Start::Campaigning,
    Start::Joined,
    Start::Leader,
    Start::Suspended,
    Start::Resigned,
    Start::Ended,
    Start::Closed,
];

/// The machine at `start`, and the ticket of the last campaign it made (the
/// current ticket while that campaign or its leadership lives).
fn at(start: Start, auto_requeue: bool) -> (Machine<E>, Ticket) {
    let mut m = Machine::new("svc".to_string(), auto_requeue);
    if start == Start::Idle {
        let t = m.ticket();
        return (m, t);
    }
    m.step(Input::Epoch(0));
    m.step(Input::Campaign { value: b"v".to_vec() });
    let t = m.ticket();
    if start != Start::Campaigning {
        m.step(Input::Joined { ticket: t, entry: "e1", epoch: Some(0) });
    }
    if matches!(start, Start::Leader | Start::Suspended | Start::Resigned) {
        m.step(Input::Won { ticket: t, entry: "e1", term: 7, generation: GEN, session: healthy(GEN) });
    }
    match start {
        Start::Suspended => {
            m.step(Input::SessionSeen { ticket: t, generation: GEN, session: suspended(GEN) });
        }
        Start::Resigned => {
            m.step(Input::Resign);
        }
        Start::Ended => {
            m.step(Input::End);
        }
        Start::Closed => {
            m.step(Input::Close);
        }
        _ => {}
    }
    (m, t)
}

/// A ticket that is not the current one.
fn stale(t: Ticket) -> Ticket {
    Ticket(t.0 + 1000)
}

fn show_event(ev: &Event) -> String {
    match ev {
        Event::Elected { term } => format!("elected {term}"),
        Event::Suspended => "suspended".into(),
        Event::Reconnected => "reconnected".into(),
        Event::Lost { reason } => format!("lost {reason}"),
        Event::Resigned => "resigned".into(),
        Event::LeaderChanged(l) => format!("leader_changed {}", l.as_ref().map_or(0, |l| l.term)),
        Event::Ended => "ended".into(),
        Event::Error(e) => format!("error {}", e.kind().as_str()),
    }
}

fn show_effects(effects: &[Effect<E>]) -> String {
    let all: Vec<String> = effects
        .iter()
        .map(|e| match e {
            Effect::Emit(ev) => format!("emit({})", show_event(ev)),
            Effect::PublishLeader(l) => format!("publish_leader({})", l.as_ref().map_or(0, |l| l.term)),
            Effect::Withdraw(e) => format!("withdraw({e})"),
            Effect::StopTask => "stop_task".into(),
            Effect::StopWatch => "stop_watch".into(),
            Effect::CloseSubscriptions => "close_subscriptions".into(),
        })
        .collect();
    all.join(", ")
}

fn show_next(next: &Next<E>) -> String {
    match next {
        Next::Proceed => "proceed".into(),
        Next::Fail(e) => format!("fail({})", e.kind().as_str()),
        Next::Join { .. } => "join".into(),
        Next::WithdrawThenFail(e, error) => format!("withdraw_then_fail({e}, {})", error.kind().as_str()),
        Next::Withdraw(e) => format!("withdraw({})", e.unwrap_or("none")),
        Next::Rejoin { pause: true } => "rejoin(after pause)".into(),
        Next::Rejoin { pause: false } => "rejoin(now)".into(),
        Next::Hold { entry, generation, .. } => format!("hold({entry}, generation {generation})"),
        Next::Verify => "verify".into(),
        Next::LookAgain => "look_again".into(),
        Next::Requeue { value, .. } => format!("requeue({})", String::from_utf8_lossy(value)),
        Next::Retry => "retry".into(),
        Next::Stop => "stop".into(),
    }
}

/// Whether the row's transition moves to a new ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TicketAfter {
    Same,
    New,
}
use TicketAfter::{New, Same};

struct Row {
    name: &'static str,
    start: Start,
    auto_requeue: bool,
    input: fn(Ticket) -> Input<E>,
    state: State,
    ticket: TicketAfter,
    effects: &'static str,
    next: &'static str,
}

const END_FX: &str = "stop_task, stop_watch, emit(ended), close_subscriptions";
const END_FX_E1: &str = "stop_task, withdraw(e1), stop_watch, emit(ended), close_subscriptions";
const CLOSE_FX: &str = "stop_task, stop_watch, close_subscriptions";

#[rustfmt::skip]
fn rows() -> Vec<Row> {
    use Start as S;
    use State as St;
    let r = |name, start, auto_requeue, input, state, ticket, effects, next| Row {
        name, start, auto_requeue, input, state, ticket, effects, next,
    };
    vec![
        // campaign()
        r("idle campaigns", S::Idle, true, |_| Input::Campaign { value: b"w".to_vec() }, St::Campaigning, New, "", "join"),
        r("resigned campaigns again", S::Resigned, true, |_| Input::Campaign { value: b"w".to_vec() }, St::Campaigning, New, "", "join"),
        r("campaign while campaigning", S::Joined, true, |_| Input::Campaign { value: b"w".to_vec() }, St::Campaigning, Same, "", "fail(invalid_argument)"),
        r("campaign while leading", S::Leader, true, |_| Input::Campaign { value: b"w".to_vec() }, St::Leader, Same, "", "fail(invalid_argument)"),
        r("campaign while suspended", S::Suspended, true, |_| Input::Campaign { value: b"w".to_vec() }, St::Suspended, Same, "", "fail(invalid_argument)"),
        r("campaign after end", S::Ended, true, |_| Input::Campaign { value: b"w".to_vec() }, St::Ended, Same, "", "fail(ended)"),
        r("campaign after close", S::Closed, true, |_| Input::Campaign { value: b"w".to_vec() }, St::Closed, Same, "", "fail(closed)"),

        // the join
        r("joined", S::Campaigning, true, |t| Input::Joined { ticket: t, entry: "e2", epoch: Some(0) }, St::Campaigning, Same, "", "proceed"),
        r("joined, the backend knows no epoch", S::Campaigning, true, |t| Input::Joined { ticket: t, entry: "e2", epoch: None }, St::Campaigning, Same, "", "proceed"),
        // b21df77: a join that lands after an end() the handle has not seen yet
        // ends the handle instead of winning the next round.
        r("bug b21df77: joined in a later epoch", S::Campaigning, true, |t| Input::Joined { ticket: t, entry: "e2", epoch: Some(1) }, St::Ended, New, "withdraw(e2), stop_task, stop_watch, emit(ended), close_subscriptions", "fail(ended)"),
        r("joined after resign()", S::Resigned, true, |t| Input::Joined { ticket: t, entry: "e2", epoch: Some(0) }, St::Idle, Same, "withdraw(e2)", "fail(cancelled)"),
        r("joined after close", S::Closed, true, |t| Input::Joined { ticket: t, entry: "e2", epoch: Some(0) }, St::Closed, Same, "withdraw(e2)", "fail(closed)"),
        r("joined after end", S::Ended, true, |t| Input::Joined { ticket: t, entry: "e2", epoch: Some(0) }, St::Ended, Same, "withdraw(e2)", "fail(ended)"),
        // e95b016: a campaign never fails with SessionLost while auto-requeue is on.
        r("join failed, session lost", S::Campaigning, true, |_| Input::JoinFailed { error: err(ErrorKind::SessionLost) }, St::Campaigning, Same, "", "rejoin(after pause)"),
        r("join failed, session lost, no requeue", S::Campaigning, false, |_| Input::JoinFailed { error: err(ErrorKind::SessionLost) }, St::Campaigning, Same, "", "fail(session_lost)"),
        r("join failed, connection", S::Campaigning, true, |_| Input::JoinFailed { error: err(ErrorKind::Connection) }, St::Campaigning, Same, "", "fail(connection)"),

        // the wait for the win
        r("session gone while waiting", S::Joined, true, |t| Input::SessionGone { ticket: t, entry: "e1" }, St::Campaigning, Same, "withdraw(e1)", "rejoin(now)"),
        r("session gone while waiting, no requeue", S::Joined, false, |t| Input::SessionGone { ticket: t, entry: "e1" }, St::Campaigning, Same, "withdraw(e1)", "fail(session_lost)"),
        r("wait failed: the backend saw end()", S::Joined, true, |t| Input::WaitFailed { ticket: t, entry: "e1", error: err(ErrorKind::Ended) }, St::Ended, New, END_FX_E1, "fail(ended)"),
        r("wait failed: entry gone, requeue", S::Joined, true, |t| Input::WaitFailed { ticket: t, entry: "e1", error: err(ErrorKind::SessionLost) }, St::Campaigning, Same, "withdraw(e1)", "rejoin(after pause)"),
        r("wait failed: entry gone, no requeue", S::Joined, false, |t| Input::WaitFailed { ticket: t, entry: "e1", error: err(ErrorKind::SessionLost) }, St::Campaigning, Same, "", "withdraw_then_fail(e1, session_lost)"),
        r("wait failed: connection", S::Joined, true, |t| Input::WaitFailed { ticket: t, entry: "e1", error: err(ErrorKind::Connection) }, St::Campaigning, Same, "", "withdraw_then_fail(e1, connection)"),
        r("wait failed after resign(): cancelled", S::Resigned, true, |t| Input::WaitFailed { ticket: t, entry: "e1", error: err(ErrorKind::Backend) }, St::Idle, Same, "", "fail(cancelled)"),
        r("wait failed after end", S::Ended, true, |t| Input::WaitFailed { ticket: t, entry: "e1", error: err(ErrorKind::Backend) }, St::Ended, Same, "", "fail(ended)"),

        // the win
        r("won", S::Joined, true, |t| Input::Won { ticket: t, entry: "e1", term: 7, generation: GEN, session: healthy(GEN) }, St::Leader, Same, "emit(elected 7)", "hold(e1, generation 1)"),
        r("won while the session is in doubt: the hold says so", S::Joined, true, |t| Input::Won { ticket: t, entry: "e1", term: 7, generation: GEN, session: suspended(GEN) }, St::Leader, Same, "emit(elected 7)", "hold(e1, generation 1)"),
        // 746daee: a win reported under a lost session does not lead.
        r("bug 746daee: won under a lost session", S::Joined, true, |t| Input::Won { ticket: t, entry: "e1", term: 7, generation: GEN, session: lost(GEN) }, St::Campaigning, Same, "withdraw(e1)", "rejoin(now)"),
        r("bug 746daee: won under a replaced session", S::Joined, true, |t| Input::Won { ticket: t, entry: "e1", term: 7, generation: GEN, session: healthy(GEN + 1) }, St::Campaigning, Same, "withdraw(e1)", "rejoin(now)"),
        r("bug 746daee: won under a lost session, no requeue", S::Joined, false, |t| Input::Won { ticket: t, entry: "e1", term: 7, generation: GEN, session: lost(GEN) }, St::Campaigning, Same, "withdraw(e1)", "fail(session_lost)"),
        // 2db3ad2: Client::close marks every handle closed first, so a waiting
        // handle cannot win in the gap.
        r("bug 2db3ad2: won after close", S::Closed, true, |t| Input::Won { ticket: t, entry: "e1", term: 7, generation: GEN, session: healthy(GEN) }, St::Closed, Same, "withdraw(e1)", "fail(closed)"),
        r("won after resign()", S::Resigned, true, |t| Input::Won { ticket: t, entry: "e1", term: 7, generation: GEN, session: healthy(GEN) }, St::Idle, Same, "withdraw(e1)", "fail(cancelled)"),

        // the hold
        r("hold: healthy leader", S::Leader, true, |t| Input::SessionSeen { ticket: t, generation: GEN, session: healthy(GEN) }, St::Leader, Same, "", "proceed"),
        r("hold: session in doubt", S::Leader, true, |t| Input::SessionSeen { ticket: t, generation: GEN, session: suspended(GEN) }, St::Suspended, Same, "emit(suspended)", "proceed"),
        r("hold: still in doubt", S::Suspended, true, |t| Input::SessionSeen { ticket: t, generation: GEN, session: suspended(GEN) }, St::Suspended, Same, "", "proceed"),
        r("hold: healthy again, verify first", S::Suspended, true, |t| Input::SessionSeen { ticket: t, generation: GEN, session: healthy(GEN) }, St::Suspended, Same, "", "verify"),
        r("hold: session lost", S::Leader, true, |t| Input::SessionSeen { ticket: t, generation: GEN, session: lost(GEN) }, St::Campaigning, New, "withdraw(e1), emit(lost session_lost)", "requeue(v)"),
        // 2ab0306: a leadership whose session generation changed is lost.
        r("bug 2ab0306: hold: session replaced", S::Leader, true, |t| Input::SessionSeen { ticket: t, generation: GEN, session: healthy(GEN + 1) }, St::Campaigning, New, "withdraw(e1), emit(lost session_lost)", "requeue(v)"),
        r("hold: suspended, then lost, no requeue", S::Suspended, false, |t| Input::SessionSeen { ticket: t, generation: GEN, session: lost(GEN) }, St::Idle, New, "withdraw(e1), emit(lost session_lost)", "stop"),
        r("hold of a resigned leadership", S::Resigned, true, |t| Input::SessionSeen { ticket: t, generation: GEN, session: suspended(GEN) }, St::Idle, Same, "", "stop"),
        r("hold of an ended leadership sees the loss", S::Ended, true, |t| Input::SessionSeen { ticket: t, generation: GEN, session: lost(GEN) }, St::Ended, Same, "", "stop"),
        r("verified: reconnected", S::Suspended, true, |t| Input::Verified { ticket: t, generation: GEN, owned: true, session: healthy(GEN) }, St::Leader, Same, "emit(reconnected)", "proceed"),
        r("verified, but the session is in doubt again", S::Suspended, true, |t| Input::Verified { ticket: t, generation: GEN, owned: true, session: suspended(GEN) }, St::Suspended, Same, "", "look_again"),
        r("verified, but the session was replaced", S::Suspended, true, |t| Input::Verified { ticket: t, generation: GEN, owned: true, session: healthy(GEN + 1) }, St::Suspended, Same, "", "look_again"),
        r("verified: not ours", S::Suspended, true, |t| Input::Verified { ticket: t, generation: GEN, owned: false, session: healthy(GEN) }, St::Campaigning, New, "withdraw(e1), emit(lost not_owner)", "requeue(v)"),
        r("verified: not ours, no requeue", S::Suspended, false, |t| Input::Verified { ticket: t, generation: GEN, owned: false, session: healthy(GEN) }, St::Idle, New, "withdraw(e1), emit(lost not_owner)", "stop"),
        r("verified after resign()", S::Resigned, true, |t| Input::Verified { ticket: t, generation: GEN, owned: true, session: healthy(GEN) }, St::Idle, Same, "", "stop"),
        r("lost: record deleted", S::Leader, true, |t| Input::LeadershipLost { ticket: t, reason: LostReason::Deleted }, St::Campaigning, New, "withdraw(e1), emit(lost deleted)", "requeue(v)"),
        r("lost while suspended, no requeue", S::Suspended, false, |t| Input::LeadershipLost { ticket: t, reason: LostReason::SessionLost }, St::Idle, New, "withdraw(e1), emit(lost session_lost)", "stop"),
        r("lost after resign()", S::Resigned, true, |t| Input::LeadershipLost { ticket: t, reason: LostReason::Deleted }, St::Idle, Same, "", "stop"),
        r("lost after close", S::Closed, true, |t| Input::LeadershipLost { ticket: t, reason: LostReason::Deleted }, St::Closed, Same, "", "stop"),

        // the requeue after a loss (its ticket is the current campaign's)
        r("requeue failed: server away, try again", S::Joined, true, |t| Input::RequeueFailed { ticket: t, error: err(ErrorKind::Connection) }, St::Campaigning, Same, "emit(error connection)", "retry"),
        r("requeue failed: session lost, try again", S::Campaigning, true, |t| Input::RequeueFailed { ticket: t, error: err(ErrorKind::SessionLost) }, St::Campaigning, Same, "emit(error session_lost)", "retry"),
        r("requeue failed: refused credentials", S::Joined, true, |t| Input::RequeueFailed { ticket: t, error: err(ErrorKind::Auth) }, St::Idle, New, "withdraw(e1), emit(error auth)", "stop"),
        r("requeue failed after end", S::Ended, true, |t| Input::RequeueFailed { ticket: t, error: err(ErrorKind::Ended) }, St::Ended, Same, "", "stop"),
        r("requeue failed after resign()", S::Resigned, true, |t| Input::RequeueFailed { ticket: t, error: err(ErrorKind::Connection) }, St::Idle, Same, "", "stop"),

        // proclaim()
        r("proclaimed", S::Leader, true, |t| Input::Proclaimed { ticket: t, value: b"v2".to_vec() }, St::Leader, Same, "", "proceed"),
        r("proclaimed after resign()", S::Resigned, true, |t| Input::Proclaimed { ticket: t, value: b"v2".to_vec() }, St::Idle, Same, "", "proceed"),

        // resign()
        r("resign a leadership", S::Leader, true, |_| Input::Resign, St::Idle, New, "stop_task, emit(resigned)", "withdraw(e1)"),
        r("resign a suspended leadership", S::Suspended, true, |_| Input::Resign, St::Idle, New, "stop_task, emit(resigned)", "withdraw(e1)"),
        r("resign a waiting candidate", S::Joined, true, |_| Input::Resign, St::Idle, New, "stop_task", "withdraw(e1)"),
        r("resign a campaign not joined yet", S::Campaigning, true, |_| Input::Resign, St::Idle, New, "stop_task", "withdraw(none)"),
        r("resign when idle", S::Idle, true, |_| Input::Resign, St::Idle, Same, "", "fail(not_leader)"),
        r("resign twice", S::Resigned, true, |_| Input::Resign, St::Idle, Same, "", "fail(not_leader)"),
        r("resign after end", S::Ended, true, |_| Input::Resign, St::Ended, Same, "", "fail(ended)"),
        r("resign after close", S::Closed, true, |_| Input::Resign, St::Closed, Same, "", "fail(closed)"),

        // the campaign future dropped
        r("campaign dropped while waiting", S::Joined, true, |t| Input::CampaignDropped { ticket: t }, St::Idle, New, "withdraw(e1)", "proceed"),
        r("campaign dropped before the join", S::Campaigning, true, |t| Input::CampaignDropped { ticket: t }, St::Idle, New, "", "proceed"),
        // d042c80: a win the caller never heard of is resigned, not kept.
        r("bug d042c80: campaign dropped as it won", S::Leader, true, |t| Input::CampaignDropped { ticket: t }, St::Idle, New, "stop_task, emit(resigned), withdraw(e1)", "proceed"),
        r("bug d042c80: campaign dropped as it won, suspended", S::Suspended, true, |t| Input::CampaignDropped { ticket: t }, St::Idle, New, "stop_task, emit(resigned), withdraw(e1)", "proceed"),
        r("an old campaign's guard", S::Leader, true, |t| Input::CampaignDropped { ticket: stale(t) }, St::Leader, Same, "", "proceed"),
        r("campaign dropped after close", S::Closed, true, |t| Input::CampaignDropped { ticket: t }, St::Closed, Same, "", "proceed"),

        // the election watch
        r("the first epoch fixes the participant's", S::Idle, true, |_| Input::Epoch(5), St::Idle, Same, "", "proceed"),
        r("the same epoch again", S::Leader, true, |_| Input::Epoch(0), St::Leader, Same, "", "proceed"),
        r("a later epoch ends a leader", S::Leader, true, |_| Input::Epoch(1), St::Ended, New, END_FX_E1, "proceed"),
        r("a later epoch ends a candidate", S::Joined, true, |_| Input::Epoch(1), St::Ended, New, END_FX_E1, "proceed"),
        r("a later epoch ends an idle handle", S::Resigned, true, |_| Input::Epoch(1), St::Ended, New, END_FX, "proceed"),
        r("a later epoch after end", S::Ended, true, |_| Input::Epoch(2), St::Ended, Same, "", "proceed"),
        r("a later epoch after close", S::Closed, true, |_| Input::Epoch(1), St::Closed, Same, "", "proceed"),
        r("a new leader", S::Joined, true, |_| Input::Snapshot { epoch: 0, leader: leader(3) }, St::Campaigning, Same, "publish_leader(3), emit(leader_changed 3)", "proceed"),
        r("a snapshot of a later epoch ends, and tells no leader", S::Joined, true, |_| Input::Snapshot { epoch: 1, leader: leader(3) }, St::Ended, New, END_FX_E1, "proceed"),

        // end()
        r("end when idle", S::Idle, true, |_| Input::End, St::Ended, New, END_FX, "proceed"),
        r("end while campaigning", S::Joined, true, |_| Input::End, St::Ended, New, END_FX_E1, "proceed"),
        r("end while leading", S::Leader, true, |_| Input::End, St::Ended, New, END_FX_E1, "proceed"),
        r("end while suspended", S::Suspended, true, |_| Input::End, St::Ended, New, END_FX_E1, "proceed"),
        r("end twice", S::Ended, true, |_| Input::End, St::Ended, Same, "", "proceed"),
        r("end after close", S::Closed, true, |_| Input::End, St::Closed, Same, "", "proceed"),

        // close()
        r("close when idle", S::Idle, true, |_| Input::Close, St::Closed, New, CLOSE_FX, "withdraw(none)"),
        r("close while campaigning", S::Joined, true, |_| Input::Close, St::Closed, New, CLOSE_FX, "withdraw(e1)"),
        r("close while leading", S::Leader, true, |_| Input::Close, St::Closed, New, CLOSE_FX, "withdraw(e1)"),
        r("close while suspended", S::Suspended, true, |_| Input::Close, St::Closed, New, CLOSE_FX, "withdraw(e1)"),
        r("close after end", S::Ended, true, |_| Input::Close, St::Closed, New, CLOSE_FX, "withdraw(none)"),
        r("close twice", S::Closed, true, |_| Input::Close, St::Closed, Same, "", "withdraw(none)"),
    ]
}

#[test]
fn every_transition_of_the_table() {
    let mut failures = Vec::new();
    for row in rows() {
        let (mut m, t) = at(row.start, row.auto_requeue);
        let before = m.ticket();
        let step = m.step((row.input)(t));
        let got = (
            m.state(),
            if m.ticket() == before { Same } else { New },
            show_effects(&step.effects),
            show_next(&step.next),
        );
        let want = (row.state, row.ticket, row.effects.to_string(), row.next.to_string());
        if got != want {
            failures.push(format!("{} (from {:?}):\n  got  {got:?}\n  want {want:?}", row.name, row.start));
        }
    }
    assert!(failures.is_empty(), "{} rows differ:\n{}", failures.len(), failures.join("\n"));
}

/// Every input that carries a ticket, with a ticket that is not the current one,
/// from every state: nothing changes, and nothing is done but withdrawing the
/// entry the input brought (which nobody else would withdraw).
#[test]
fn a_stale_ticket_changes_nothing() {
    let inputs: [fn(Ticket) -> Input<E>; 11] = [
        |t| Input::Joined { ticket: t, entry: "old", epoch: Some(0) },
        |t| Input::SessionGone { ticket: t, entry: "old" },
        |t| Input::WaitFailed { ticket: t, entry: "old", error: err(ErrorKind::Connection) },
        |t| Input::Won { ticket: t, entry: "old", term: 9, generation: GEN, session: healthy(GEN) },
        |t| Input::SessionSeen { ticket: t, generation: GEN, session: suspended(GEN) },
        |t| Input::SessionSeen { ticket: t, generation: GEN, session: lost(GEN) },
        |t| Input::Verified { ticket: t, generation: GEN, owned: true, session: healthy(GEN) },
        |t| Input::Verified { ticket: t, generation: GEN, owned: false, session: healthy(GEN) },
        |t| Input::LeadershipLost { ticket: t, reason: LostReason::Deleted },
        |t| Input::RequeueFailed { ticket: t, error: err(ErrorKind::Connection) },
        |t| Input::CampaignDropped { ticket: t },
    ];
    for start in ALL {
        for (i, input) in inputs.iter().enumerate() {
            let (mut m, t) = at(start, true);
            let before = (m.published(), m.entry, m.value.clone());
            let step = m.step(input(stale(t)));
            assert_eq!((m.published(), m.entry, m.value.clone()), before, "input {i} from {start:?}");
            let fx = show_effects(&step.effects);
            assert!(fx.is_empty() || fx == "withdraw(old)", "input {i} from {start:?}: {fx}");
            assert!(!matches!(step.next, Next::Hold { .. } | Next::Requeue { .. }), "input {i} from {start:?}");
        }
    }
}

/// 2ab0306 and `an_expired_leader_stops_reading_leader_at_once`: a leader whose
/// session is in doubt, expired or replaced reads `Suspended` at once, before
/// the hold reports anything, and may not proclaim.
#[test]
fn a_leader_reads_suspended_as_soon_as_its_session_is_in_doubt() {
    let (m, t) = at(Start::Leader, true);
    let cases = [
        (healthy(GEN), State::Leader),
        (suspended(GEN), State::Suspended),
        (lost(GEN), State::Suspended),
        (healthy(GEN + 1), State::Suspended),
    ];
    for (session, want) in cases {
        assert_eq!(m.state_seen(session), want, "{session:?}");
        assert_eq!(m.leads(t, session), want == State::Leader, "{session:?}");
        match m.leading_entry(session) {
            Ok((entry, ticket)) => assert_eq!((entry, ticket, want), ("e1", t, State::Leader)),
            Err(e) => assert_eq!((e.kind(), want), (ErrorKind::NotLeader, State::Suspended), "{session:?}"),
        }
    }
    assert!(!m.leads(stale(t), healthy(GEN)), "an older leadership of the same handle");
    // Only a leader is read through the session.
    for start in [Start::Idle, Start::Joined, Start::Suspended, Start::Ended, Start::Closed] {
        let (m, _) = at(start, true);
        assert_eq!(m.state_seen(lost(GEN + 1)), m.state(), "{start:?}");
    }
}

#[test]
fn proclaim_needs_a_leader_with_its_entry() {
    let kind = |start| at(start, true).0.leading_entry(healthy(GEN)).map(|(e, _)| e).map_err(|e| e.kind());
    assert_eq!(kind(Start::Leader), Ok("e1"));
    assert_eq!(kind(Start::Suspended), Err(ErrorKind::NotLeader));
    assert_eq!(kind(Start::Joined), Err(ErrorKind::NotLeader));
    assert_eq!(kind(Start::Resigned), Err(ErrorKind::NotLeader));
    assert_eq!(kind(Start::Ended), Err(ErrorKind::Ended));
    assert_eq!(kind(Start::Closed), Err(ErrorKind::Closed));
}

/// Work whose ticket ended fails with what ended it.
#[test]
fn the_error_of_ended_work_says_what_ended_it() {
    let kind = |start| at(start, true).0.void_error().kind();
    assert_eq!(kind(Start::Resigned), ErrorKind::Cancelled);
    assert_eq!(kind(Start::Ended), ErrorKind::Ended);
    assert_eq!(kind(Start::Closed), ErrorKind::Closed);
}

/// A requeue campaigns with the value last proclaimed, not the first one.
#[test]
fn a_requeue_campaigns_with_the_proclaimed_value() {
    let (mut m, t) = at(Start::Leader, true);
    m.step(Input::Proclaimed { ticket: t, value: b"v2".to_vec() });
    let step = m.step(Input::LeadershipLost { ticket: t, reason: LostReason::Deleted });
    assert_eq!(show_next(&step.next), "requeue(v2)");
    let Next::Requeue { ticket, .. } = step.next else { unreachable!() };
    assert_eq!(ticket, m.ticket(), "the requeue works for the new ticket");
}

/// The leader seen never goes back in term, and a repeat is not news.
#[test]
fn the_leader_seen_never_goes_back() {
    let (mut m, _) = at(Start::Joined, true);
    let seen = |m: &mut Machine<E>, l| show_effects(&m.step(Input::Snapshot { epoch: 0, leader: l }).effects);
    assert_eq!(seen(&mut m, leader(3)), "publish_leader(3), emit(leader_changed 3)");
    assert_eq!(seen(&mut m, leader(3)), "");
    assert_eq!(seen(&mut m, leader(2)), "", "an older leader after a newer one");
    assert_eq!(seen(&mut m, None), "publish_leader(0), emit(leader_changed 0)");
    assert_eq!(seen(&mut m, leader(2)), "", "still older than the highest term seen");
    assert_eq!(seen(&mut m, leader(4)), "publish_leader(4), emit(leader_changed 4)");
}

/// The whole life of a participant through the machine alone, with the events
/// in the order a subscriber gets them.
#[test]
fn a_life_in_order() {
    let mut m: Machine<E> = Machine::new("svc".into(), true);
    let mut events = Vec::new();
    let mut feed = |m: &mut Machine<E>, input| {
        let step = m.step(input);
        for e in &step.effects {
            if let Effect::Emit(ev) = e {
                events.push(show_event(ev));
            }
        }
        step.next
    };
    feed(&mut m, Input::Epoch(0));
    let Next::Join { ticket } = feed(&mut m, Input::Campaign { value: b"a".to_vec() }) else { panic!() };
    feed(&mut m, Input::Joined { ticket, entry: "e1", epoch: Some(0) });
    feed(&mut m, Input::Won { ticket, entry: "e1", term: 1, generation: 1, session: healthy(1) });
    feed(&mut m, Input::SessionSeen { ticket, generation: 1, session: suspended(1) });
    assert!(matches!(feed(&mut m, Input::SessionSeen { ticket, generation: 1, session: healthy(1) }), Next::Verify));
    feed(&mut m, Input::Verified { ticket, generation: 1, owned: true, session: healthy(1) });
    let Next::Requeue { ticket, .. } = feed(&mut m, Input::SessionSeen { ticket, generation: 1, session: healthy(2) })
    else {
        panic!()
    };
    feed(&mut m, Input::Joined { ticket, entry: "e2", epoch: Some(0) });
    feed(&mut m, Input::Won { ticket, entry: "e2", term: 3, generation: 2, session: healthy(2) });
    feed(&mut m, Input::Resign);
    feed(&mut m, Input::Epoch(1));
    feed(&mut m, Input::Close);
    assert_eq!(
        events,
        ["elected 1", "suspended", "reconnected", "lost session_lost", "elected 3", "resigned", "ended"]
    );
    assert_eq!(m.state(), State::Closed);
}
