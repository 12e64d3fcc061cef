//! Helpers shared by the Rust tests of `ballot`: the backend description
//! ([`backends`]) and waits on states and events with a liveness bound. Each
//! test crate includes this module (`mod common;`) and uses a part of it.
#![allow(dead_code, unused_imports)]

pub mod backends;
pub mod consul_lock;
pub mod harness;

use std::future::Future;
use std::time::{Duration, Instant};

use ballot::{Election, Event, State};
use futures_util::StreamExt;

pub use backends::{backend, backend_of, require, unique, Backend};

/// Awaits `f`, failing the test after `bound` (a liveness bound, not a speed claim).
pub async fn within<T>(bound: Duration, what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(bound, f).await.unwrap_or_else(|_| panic!("{what}: not done within {bound:?}"))
}

/// Polls `check` until it holds, failing the test after `bound`.
pub async fn wait_until(bound: Duration, what: &str, mut check: impl FnMut() -> bool) {
    within(bound, what, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// Waits until `e` is in state `want`.
pub async fn wait_state(e: &Election, want: State, bound: Duration) {
    let what = format!("state {want:?}");
    wait_until(bound, &what, || e.state() == want).await
}

/// The first event of `events` for which `pick` holds, and when it arrived.
pub async fn wait_event(
    events: &mut ballot::Events,
    bound: Duration,
    what: &str,
    pick: impl Fn(&Event) -> bool,
) -> Instant {
    within(bound, what, async {
        while let Some(ev) = events.next().await {
            if pick(&ev) {
                return Instant::now();
            }
        }
        panic!("{what}: the events ended first");
    })
    .await
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    l.local_addr().expect("its address").port()
}

/// How many of the events already queued on `events` `pick` accepts (it does not
/// wait for more).
pub async fn count_queued(events: &mut ballot::Events, pick: impl Fn(&Event) -> bool) -> usize {
    let mut n = 0;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::ZERO, events.next()).await {
        if pick(&ev) {
            n += 1;
        }
    }
    n
}

/// Reads `e.participants()` until `done` holds for it (candidates join and leave
/// in the background; nothing announces a change of the queue), within `bound`.
pub async fn participants_until(
    e: &Election,
    bound: Duration,
    what: &str,
    done: impl Fn(&[ballot::Participant]) -> bool,
) -> Vec<ballot::Participant> {
    within(bound, what, async {
        loop {
            let p = e.participants().await.unwrap();
            if done(&p) {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}
