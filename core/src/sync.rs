//! Small synchronisation helpers shared by the engine and the backends.

use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: every critical section in ballot leaves its data
/// consistent, so a panic elsewhere (which poisons) must not make it unusable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A process-wide value that a forked child gets afresh, never inherited.
///
/// A child made by `fork()` has only the thread that forked. A value the parent's
/// other threads used (a table behind a `Mutex`, a runtime, a watcher) may have
/// been in any state at that instant: a mutex locked by a thread that does not
/// exist in the child stays locked for ever. A `PID` check *under* such a mutex
/// therefore hangs in the child exactly when it matters. This type checks the
/// process first, without any lock: the slot holds a pointer to the value and the
/// pid that made it, and the first access in a new process installs a new value
/// with a compare-and-swap. The parent's value is leaked in the child, never
/// dropped (dropping it would talk to threads that are gone).
///
/// Thread-safe; `init` may run more than once when threads race in a new process
/// (the losers' values are dropped at once, in the process that made them).
pub struct PerProcess<T: 'static> {
    slot: AtomicPtr<Owned<T>>,
    init: fn() -> T,
    // Shares `&T` across threads: Sync and Send only as far as `T` is.
    _marker: std::marker::PhantomData<T>,
}

struct Owned<T> {
    pid: u32,
    value: T,
}

impl<T: 'static> PerProcess<T> {
    /// A slot whose value `init` makes, once per process, on first use.
    pub const fn new(init: fn() -> T) -> PerProcess<T> {
        PerProcess { slot: AtomicPtr::new(std::ptr::null_mut()), init, _marker: std::marker::PhantomData }
    }

    /// This process's value, made on the first call in this process.
    pub fn get(&self) -> &'static T {
        let pid = std::process::id();
        let mut cur = self.slot.load(Ordering::Acquire);
        loop {
            // SAFETY: a non-null pointer in the slot came from `Box::into_raw` below
            // and is never freed (values are leaked, not dropped), so it is valid for
            // 'static.
            if let Some(owned) = unsafe { cur.as_ref() } {
                if owned.pid == pid {
                    return &owned.value;
                }
            }
            let fresh = Box::into_raw(Box::new(Owned { pid, value: (self.init)() }));
            match self.slot.compare_exchange(cur, fresh, Ordering::AcqRel, Ordering::Acquire) {
                // SAFETY: `fresh` was just made by `Box::into_raw` and is now owned by
                // the slot, which never frees it.
                Ok(_) => return unsafe { &(*fresh).value },
                Err(now) => {
                    // SAFETY: `fresh` never left this function: nobody else saw it.
                    drop(unsafe { Box::from_raw(fresh) });
                    cur = now;
                }
            }
        }
    }
}

impl<T: 'static> std::fmt::Debug for PerProcess<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PerProcess")
    }
}

/// Test support: runs `child` in a forked child while another thread of this
/// process holds `busy` (a lock of a process-wide table), as a parent's thread may
/// at the instant of a real fork.
#[cfg(test)]
pub(crate) mod fork_test {
    use std::sync::{mpsc, Mutex};
    use std::time::{Duration, Instant};

    /// Forks while a helper thread holds `busy`; the child runs `child` and exits 0
    /// when it returns true. Returns the child's wait status, or panics when the
    /// child does not finish within 20 s (it hung: the bug these tests are for).
    pub(crate) fn fork_while_locked<T: Send + 'static>(busy: &'static Mutex<T>, child: fn() -> bool) -> i32 {
        let (locked_tx, locked_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let _g = busy.lock().unwrap_or_else(|p| p.into_inner());
            let _ = locked_tx.send(());
            let _ = release_rx.recv();
        });
        locked_rx.recv().expect("the holder thread took the lock");
        // SAFETY: the child calls the code under test and then `_exit`s; it never
        // returns into the test harness. A hang there is bounded by SIGALRM.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: alarm and _exit are async-signal-safe.
            unsafe { libc::alarm(20) };
            let ok = child();
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let _ = release_tx.send(());
        holder.join().expect("holder thread");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut status = 0;
        loop {
            // SAFETY: waits for our own child.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                return status;
            }
            if Instant::now() > deadline {
                // SAFETY: kills and reaps our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                panic!("the forked child hung");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Asserts that the child exited by itself with status 0.
    pub(crate) fn assert_child_ok(status: i32, what: &str) {
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{what}: the forked child failed or hung (wait status {status:#x}; 14 = SIGALRM: it hung)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::fork_test::{assert_child_ok, fork_while_locked};
    use super::*;

    static TABLE: PerProcess<Mutex<Vec<u32>>> = PerProcess::new(|| Mutex::new(Vec::new()));

    #[test]
    fn a_forked_child_gets_a_fresh_value_even_while_the_parents_is_locked() {
        lock(TABLE.get()).push(std::process::id());
        let status = fork_while_locked(TABLE.get(), || {
            // The parent's table is locked for ever in here; the child's is new.
            let mut t = lock(TABLE.get());
            let fresh = t.is_empty();
            t.push(std::process::id());
            fresh
        });
        assert_child_ok(status, "PerProcess in a child");
        assert_eq!(*lock(TABLE.get()), vec![std::process::id()], "the parent's value is untouched");
    }
}
