//! The stores of this process: one per `memory://NAME`, each holding its elections.
//!
//! Everything here is synchronous and runs under one lock per store, so every
//! operation is atomic: a withdrawal and the promotion of the next candidate, or
//! an `end()` and the removal of every candidate, are one step that no reader can
//! see half done. Waiters learn of changes through `tokio::sync::watch` channels,
//! which the lock holder updates before it lets go.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::backend::Snapshot;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Leader, Participant};
use crate::sync::{lock, PerProcess};

/// The stores of this process, by name. A forked child gets an empty map: the
/// parent's stores (and their locks, which a parent's thread may have held at the
/// fork) are never touched there.
static STORES: PerProcess<Mutex<HashMap<String, Arc<Store>>>> = PerProcess::new(Default::default);

/// The store `memory://name` names in this process, made on first use. Stores
/// live as long as the process, so terms keep increasing for every client that
/// ever uses the name.
pub(super) fn store(name: &str) -> Arc<Store> {
    lock(STORES.get()).entry(name.to_string()).or_insert_with(|| Arc::new(Store::new())).clone()
}

/// Where one candidate stands; the store updates it, the candidate's entry reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    /// In the queue behind the leader.
    Waiting,
    /// At the front of the queue: it leads.
    Leading,
    /// Out of the queue, for good.
    Gone(Gone),
}

/// Why a candidate left the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gone {
    /// Its entry withdrew it (resign, a given-up campaign, close).
    Withdrawn,
    /// Its session expired (`expire_session`, or the client went away).
    Expired,
    /// The election was ended.
    Ended,
}

/// One `memory://NAME`: its elections and its counters.
#[derive(Debug)]
pub(super) struct Store {
    /// The process that made the store: a forked child never locks its parent's.
    pid: u32,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    races: HashMap<String, Race>,
    next_session: u64,
    next_candidate: u64,
}

/// One election: its FIFO queue of candidates, whose front leads.
#[derive(Debug)]
struct Race {
    /// The last term handed out; the next leader gets one more.
    term: u64,
    /// Bumped by every `end()`.
    epoch: u64,
    queue: VecDeque<Candidate>,
    /// The leader and the epoch, for watchers; updated after every change.
    snapshot: watch::Sender<Snapshot>,
    /// The epoch alone, so that epoch watchers do not wake at every handoff.
    epoch_tx: watch::Sender<u64>,
}

#[derive(Debug)]
struct Candidate {
    id: u64,
    session: u64,
    key: String,
    value: Vec<u8>,
    /// Set when the candidate reaches the front of the queue.
    term: Option<u64>,
    status: watch::Sender<Status>,
}

/// What `join` gives the new entry.
#[derive(Debug)]
pub(super) struct Joined {
    pub(super) id: u64,
    pub(super) epoch: u64,
    pub(super) status: watch::Receiver<Status>,
}

impl Race {
    fn new() -> Race {
        Race {
            term: 0,
            epoch: 0,
            queue: VecDeque::new(),
            snapshot: watch::channel(Snapshot { leader: None, epoch: 0 }).0,
            epoch_tx: watch::channel(0).0,
        }
    }

    fn leader(&self) -> Option<Leader> {
        let c = self.queue.front()?;
        Some(Leader::new(c.value.clone(), c.term?, c.key.clone()))
    }

    /// Makes the front candidate the leader if it is not yet, and tells watchers.
    fn settle(&mut self) {
        if let Some(front) = self.queue.front_mut() {
            if front.term.is_none() {
                // One more per leader: a u64 does not run out.
                self.term += 1;
                front.term = Some(self.term);
                front.status.send_replace(Status::Leading);
            }
        }
        let snap = Snapshot { leader: self.leader(), epoch: self.epoch };
        self.snapshot.send_if_modified(|s| {
            let changed = *s != snap;
            *s = snap;
            changed
        });
    }

    /// Takes out the candidates `pick` selects, telling each why.
    fn remove(&mut self, why: Gone, pick: impl Fn(&Candidate) -> bool) -> bool {
        let before = self.queue.len();
        self.queue.retain(|c| {
            let keep = !pick(c);
            if !keep {
                c.status.send_replace(Status::Gone(why));
            }
            keep
        });
        let removed = self.queue.len() != before;
        if removed {
            self.settle();
        }
        removed
    }

    fn candidate_mut(&mut self, id: u64) -> Option<&mut Candidate> {
        self.queue.iter_mut().find(|c| c.id == id)
    }
}

impl Store {
    fn new() -> Store {
        Store { pid: std::process::id(), inner: Mutex::new(Inner::default()) }
    }

    /// The store's state, or `Closed` in a forked child: the parent's store is not
    /// this process's (its lock may be held for ever by a thread the child lacks).
    fn lock(&self) -> Result<MutexGuard<'_, Inner>> {
        if self.pid != std::process::id() {
            return Err(Error::new(
                ErrorKind::Closed,
                "this memory:// client was made by the parent of this forked process; memory:// state is per \
                 process, so connect again in this process",
            ));
        }
        Ok(lock(&self.inner))
    }

    /// A new session number.
    pub(super) fn new_session(&self) -> Result<u64> {
        let mut st = self.lock()?;
        st.next_session += 1;
        Ok(st.next_session)
    }

    /// Queues a candidate with `value` at the back of `race`, under the session
    /// that `session` (called under the lock, so no expiry falls between the check
    /// and the queueing) names, or not at all when it refuses. The candidate leads
    /// at once if the queue was empty.
    pub(super) fn join(&self, race: &str, session: impl FnOnce() -> Result<u64>, value: &[u8]) -> Result<Joined> {
        let mut st = self.lock()?;
        let session = session()?;
        st.next_candidate += 1;
        let id = st.next_candidate;
        let r = st.races.entry(race.to_string()).or_insert_with(Race::new);
        let (tx, rx) = watch::channel(Status::Waiting);
        r.queue.push_back(Candidate {
            id,
            session,
            key: format!("s{session}-c{id}"),
            value: value.to_vec(),
            term: None,
            status: tx,
        });
        r.settle();
        Ok(Joined { id, epoch: r.epoch, status: rx })
    }

    /// The leader of `race` now.
    pub(super) fn leader(&self, race: &str) -> Result<Option<Leader>> {
        Ok(self.lock()?.races.get(race).and_then(Race::leader))
    }

    /// The queue of `race` now, its front first (leading once it took its term).
    pub(super) fn participants(&self, race: &str) -> Result<Vec<Participant>> {
        let st = self.lock()?;
        let Some(r) = st.races.get(race) else { return Ok(Vec::new()) };
        Ok(r.queue
            .iter()
            .enumerate()
            .map(|(i, c)| Participant::new(c.key.clone(), c.value.clone(), i == 0 && c.term.is_some()))
            .collect())
    }

    /// The leader record of candidate `id`, if it leads.
    pub(super) fn leading(&self, race: &str, id: u64) -> Result<Option<Leader>> {
        let st = self.lock()?;
        Ok(st.races.get(race).and_then(|r| r.leader().filter(|_| r.queue.front().is_some_and(|c| c.id == id))))
    }

    /// Follows `race`: its snapshot now, then every change.
    pub(super) fn watch(&self, race: &str) -> Result<watch::Receiver<Snapshot>> {
        Ok(self.lock()?.races.entry(race.to_string()).or_insert_with(Race::new).snapshot.subscribe())
    }

    /// Follows the epoch of `race` alone.
    pub(super) fn watch_epoch(&self, race: &str) -> Result<watch::Receiver<u64>> {
        Ok(self.lock()?.races.entry(race.to_string()).or_insert_with(Race::new).epoch_tx.subscribe())
    }

    /// Replaces the value of candidate `id` if it leads.
    pub(super) fn proclaim(&self, race: &str, id: u64, value: &[u8]) -> Result<()> {
        let mut st = self.lock()?;
        let r = st.races.get_mut(race);
        match r.and_then(|r| r.queue.front().is_some_and(|c| c.id == id).then_some(r)) {
            Some(r) => {
                if let Some(c) = r.candidate_mut(id) {
                    c.value = value.to_vec();
                }
                r.settle();
                Ok(())
            }
            None => Err(Error::new(ErrorKind::NotLeader, "this candidate does not lead the election")),
        }
    }

    /// Whether candidate `id` is still queued and leads (its session is alive:
    /// an expired session's candidates are removed with it).
    pub(super) fn verify(&self, race: &str, id: u64) -> Result<bool> {
        let st = self.lock()?;
        Ok(st.races.get(race).is_some_and(|r| r.queue.front().is_some_and(|c| c.id == id && c.term.is_some())))
    }

    /// Takes candidate `id` out of `race`; the next one leads if it led.
    /// Idempotent.
    pub(super) fn withdraw(&self, race: &str, id: u64) -> Result<()> {
        if let Some(r) = self.lock()?.races.get_mut(race) {
            r.remove(Gone::Withdrawn, |c| c.id == id);
        }
        Ok(())
    }

    /// Ends the current round of `race`: a new epoch, and every candidate out.
    /// Terms go on from where they were.
    pub(super) fn end(&self, race: &str) -> Result<()> {
        let mut st = self.lock()?;
        let r = st.races.entry(race.to_string()).or_insert_with(Race::new);
        r.epoch += 1;
        r.epoch_tx.send_replace(r.epoch);
        if !r.remove(Gone::Ended, |_| true) {
            r.settle();
        }
        Ok(())
    }

    /// Removes every candidate of `session` from every election (the session
    /// expired): their successors lead.
    pub(super) fn drop_session(&self, session: u64) -> Result<()> {
        for r in self.lock()?.races.values_mut() {
            r.remove(Gone::Expired, |c| c.session == session);
        }
        Ok(())
    }

    /// [`drop_session`](Self::drop_session) of the session that `current` holds,
    /// and a new session number into `current`, in one step: joins read `current`
    /// under the same lock, so none lands in the expired session after its
    /// candidates were removed.
    pub(super) fn replace_session(&self, current: &AtomicU64) -> Result<()> {
        let mut st = self.lock()?;
        let old = current.load(Ordering::SeqCst);
        for r in st.races.values_mut() {
            r.remove(Gone::Expired, |c| c.session == old);
        }
        st.next_session += 1;
        current.store(st.next_session, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Store {
        Store::new()
    }

    fn leader_key(s: &Store, race: &str) -> Option<(String, u64)> {
        s.leader(race).unwrap().map(|l| (l.key, l.term))
    }

    #[test]
    fn the_queue_is_fifo_and_terms_grow_by_one_per_leader() {
        let s = fresh();
        let a = s.join("e", || Ok(1), b"a").unwrap();
        let b = s.join("e", || Ok(2), b"b").unwrap();
        let c = s.join("e", || Ok(3), b"c").unwrap();
        assert_eq!(*a.status.borrow(), Status::Leading);
        assert_eq!(*b.status.borrow(), Status::Waiting);
        assert_eq!(leader_key(&s, "e"), Some((format!("s1-c{}", a.id), 1)));
        s.withdraw("e", a.id).unwrap();
        assert_eq!(*a.status.borrow(), Status::Gone(Gone::Withdrawn));
        assert_eq!(*b.status.borrow(), Status::Leading);
        assert_eq!(s.leader("e").unwrap().map(|l| (l.value, l.term)), Some((b"b".to_vec(), 2)));
        // A waiting candidate leaving does not change the leader or the term.
        s.withdraw("e", c.id).unwrap();
        assert_eq!(s.leader("e").unwrap().map(|l| l.term), Some(2));
        s.withdraw("e", c.id).unwrap(); // idempotent
        s.withdraw("e", b.id).unwrap();
        assert_eq!(s.leader("e").unwrap(), None);
        let d = s.join("e", || Ok(1), b"d").unwrap();
        assert_eq!(s.leading("e", d.id).unwrap().map(|l| l.term), Some(3));
    }

    #[test]
    fn proclaim_changes_the_value_only_for_the_leader() {
        let s = fresh();
        let a = s.join("e", || Ok(1), b"a").unwrap();
        let b = s.join("e", || Ok(1), b"b").unwrap();
        assert_eq!(s.proclaim("e", b.id, b"x").unwrap_err().kind(), ErrorKind::NotLeader);
        s.proclaim("e", a.id, b"a2").unwrap();
        assert_eq!(s.leader("e").unwrap().map(|l| (l.value, l.term)), Some((b"a2".to_vec(), 1)));
        assert!(s.verify("e", a.id).unwrap());
        assert!(!s.verify("e", b.id).unwrap());
    }

    #[test]
    fn an_expired_session_leaves_every_election_and_end_clears_the_round() {
        let s = fresh();
        let a1 = s.join("one", || Ok(1), b"a").unwrap();
        let a2 = s.join("two", || Ok(1), b"a").unwrap();
        let b1 = s.join("one", || Ok(2), b"b").unwrap();
        let mut snaps = s.watch("one").unwrap();
        let mut epochs = s.watch_epoch("one").unwrap();
        snaps.borrow_and_update();
        epochs.borrow_and_update();
        s.drop_session(1).unwrap();
        assert_eq!(*a1.status.borrow(), Status::Gone(Gone::Expired));
        assert_eq!(*a2.status.borrow(), Status::Gone(Gone::Expired));
        assert_eq!(*b1.status.borrow(), Status::Leading);
        assert!(snaps.has_changed().unwrap());
        assert!(!epochs.has_changed().unwrap(), "a handoff does not wake epoch watchers");
        assert_eq!(s.leader("two").unwrap(), None);

        let c1 = s.join("one", || Ok(3), b"c").unwrap();
        s.end("one").unwrap();
        assert_eq!(*b1.status.borrow(), Status::Gone(Gone::Ended));
        assert_eq!(*c1.status.borrow(), Status::Gone(Gone::Ended));
        assert_eq!(*epochs.borrow_and_update(), 1);
        assert_eq!(*snaps.borrow_and_update(), Snapshot { leader: None, epoch: 1 });
        // Terms go on after end().
        let d = s.join("one", || Ok(3), b"d").unwrap();
        assert_eq!(d.epoch, 1);
        assert_eq!(s.leader("one").unwrap().map(|l| l.term), Some(3));
    }

    #[test]
    fn a_refused_admission_queues_nothing() {
        let s = fresh();
        let e = s.join("e", || Err(Error::new(ErrorKind::SessionLost, "gone")), b"a").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::SessionLost);
        assert_eq!(s.leader("e").unwrap(), None);
    }

    #[test]
    fn a_forked_child_gets_fresh_stores_even_while_the_parents_are_locked() {
        use crate::sync::fork_test::{assert_child_ok, fork_while_locked};
        let parent = store("fork-test");
        parent.join("e", || Ok(1), b"parent").unwrap();
        let status = fork_while_locked(STORES.get(), || {
            // The parent's map is locked for ever in here; the child's is new,
            // and a store inherited from the parent refuses without locking.
            let fresh = store("fork-test");
            let empty = fresh.leader("e").ok() == Some(None);
            let theirs = Store { pid: std::process::id().wrapping_add(1), inner: Mutex::new(Inner::default()) };
            empty && theirs.leader("e").is_err_and(|e| e.kind() == ErrorKind::Closed)
        });
        assert_child_ok(status, "memory stores in a child");
        assert!(store("fork-test").leader("e").unwrap().is_some(), "the parent's store is untouched");
    }
}
