//! The event subscriptions of a participant: [`Events`], each a bounded queue that
//! never makes the engine wait and, when full, drops what a later event supersedes
//! (the rules are on [`Election::events`](super::Election::events)).

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_util::task::AtomicWaker;

use crate::model::Event;
use crate::sync::lock;

/// The most events a subscription of [`Election::events`](super::Election::events)
/// holds before it makes room by merging (see there; the number is in its docs).
pub(crate) const EVENT_QUEUE_CAPACITY: usize = 1024;

/// The stream returned by [`Election::events`](super::Election::events): a bounded
/// queue, see there.
pub struct Events {
    rx: Receiver,
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Events")
    }
}

impl Events {
    /// Receives the next event (None once the stream has ended).
    pub async fn recv(&mut self) -> Option<Event> {
        futures_util::future::poll_fn(|cx| self.rx.poll_recv(cx)).await
    }
}

impl Stream for Events {
    type Item = Event;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}

/// One subscription: the participant's end and the subscriber's stream.
pub(super) fn subscribe() -> (Sender, Events) {
    let (tx, rx) = channel(EVENT_QUEUE_CAPACITY);
    (tx, Events { rx })
}

/// The queue shared by the two ends of one subscription.
struct Queue {
    state: Mutex<QueueState>,
    waker: AtomicWaker,
    capacity: usize,
}

#[derive(Default)]
struct QueueState {
    events: VecDeque<Event>,
    /// The handle dropped its end: the stream ends once drained.
    closed: bool,
    /// The subscriber dropped its end: nothing more is queued.
    unsubscribed: bool,
}

/// The handle's end of a subscription; dropping it ends the stream after the
/// events already queued.
pub(super) struct Sender(Arc<Queue>);

/// The subscriber's end.
struct Receiver(Arc<Queue>);

fn channel(capacity: usize) -> (Sender, Receiver) {
    let q = Arc::new(Queue { state: Mutex::default(), waker: AtomicWaker::new(), capacity: capacity.max(1) });
    (Sender(q.clone()), Receiver(q))
}

impl Sender {
    /// Queues `ev`, making room first if the queue is full. False once the
    /// subscriber is gone. Never waits.
    pub(super) fn send(&self, ev: Event) -> bool {
        {
            let mut st = lock(&self.0.state);
            if st.unsubscribed {
                return false;
            }
            if st.events.len() >= self.0.capacity {
                make_room(&mut st.events);
            }
            st.events.push_back(ev);
        }
        self.0.waker.wake();
        true
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        lock(&self.0.state).closed = true;
        self.0.waker.wake();
    }
}

impl Receiver {
    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        if let Some(r) = self.try_recv() {
            return Poll::Ready(r);
        }
        self.0.waker.register(cx.waker());
        // An event queued between the first look and the registration.
        match self.try_recv() {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        }
    }

    /// `Some(Some(ev))`: an event; `Some(None)`: the stream is over; `None`:
    /// nothing yet.
    fn try_recv(&self) -> Option<Option<Event>> {
        let mut st = lock(&self.0.state);
        match st.events.pop_front() {
            Some(ev) => Some(Some(ev)),
            None if st.closed => Some(None),
            None => None,
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut st = lock(&self.0.state);
        st.unsubscribed = true;
        st.events.clear();
    }
}

/// Removes from a full queue what a later event supersedes or what cancels out
/// (the rules are listed on `Election::events`). The queued events were not
/// received yet.
fn make_room(q: &mut VecDeque<Event>) {
    if let Some(i) = q.iter().position(|e| matches!(e, Event::LeaderChanged(_))) {
        q.remove(i);
        return;
    }
    if let Some(i) = q.iter().position(|e| matches!(e, Event::Error(_))) {
        q.remove(i);
        return;
    }
    // Only state events are left. A whole leadership: Elected, then only
    // Suspended/Reconnected, then its Lost or Resigned.
    for (i, e) in q.iter().enumerate() {
        if !matches!(e, Event::Elected { .. }) {
            continue;
        }
        let end = q
            .iter()
            .skip(i + 1)
            .position(|e| !matches!(e, Event::Suspended | Event::Reconnected))
            .map(|k| i + 1 + k)
            .filter(|&j| matches!(q[j], Event::Lost { .. } | Event::Resigned));
        if let Some(j) = end {
            q.drain(i..=j);
            return;
        }
    }
    if let Some(i) = (0..q.len().saturating_sub(1))
        .find(|&i| matches!(q[i], Event::Suspended) && matches!(q[i + 1], Event::Reconnected))
    {
        q.drain(i..=i + 1);
    }
    // Otherwise nothing may go. That needs a queue of a few events at most (a
    // state event can only follow a transition that the ones before it allow),
    // so with a capacity in the hundreds it does not happen; were it to, the
    // event is queued anyway rather than a state change lost.
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::election::testing::tag;
    use crate::error::{Error, ErrorKind};
    use crate::model::{Leader, LostReason};

    #[test]
    fn a_full_queue_makes_room_by_the_rules() {
        let room = |q: &[Event]| {
            let mut q: VecDeque<Event> = q.iter().cloned().collect();
            make_room(&mut q);
            q.iter().map(tag).collect::<Vec<_>>().join(" ")
        };
        let err = || Event::Error(Error::new(ErrorKind::Connection, "x"));
        let lost = || Event::Lost { reason: LostReason::Deleted };
        let el = |term| Event::Elected { term };
        let lc = |t: u64| Event::LeaderChanged(Some(Leader::new(format!("v{t}").into_bytes(), t, format!("k{t}"))));
        // The oldest leader change first, then the oldest error.
        assert_eq!(room(&[el(1), lc(2), err(), lc(3)]), "E1 Err C3");
        assert_eq!(room(&[el(1), err(), Event::Suspended, err()]), "E1 S Err");
        // A whole leadership that was never received.
        assert_eq!(room(&[lost(), el(2), Event::Suspended, Event::Reconnected, lost(), el(3)]), "L E3");
        assert_eq!(room(&[el(2), Event::Resigned, el(3)]), "E3");
        // Suspended then Reconnected.
        assert_eq!(room(&[Event::Suspended, Event::Reconnected, lost(), el(4), Event::Suspended]), "L E4 S");
        // What must stay, stays: a Lost of a received Elected, the current
        // leadership, a Suspended that holds, Ended.
        assert_eq!(room(&[Event::Suspended, lost(), el(5), Event::Suspended, Event::Ended]), "S L E5 S End");
    }
}
