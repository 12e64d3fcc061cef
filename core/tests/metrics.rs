//! `ballot::metrics`: the registry's mechanics on `memory://` (gauges follow the
//! handles, counters and the join-to-win histogram, series removed on close, the
//! text form), and what a real server's session feeds it (keepalive round trips,
//! the deadline, health).
//!
//! The registry is process-wide and tests run side by side, so each test reads
//! only the series of its own election names (handles) or its own backend (clients).

mod common;

use std::time::Duration;

use ballot::metrics::{snapshot, Family, HistogramValue, MetricType, Sample, SampleValue, Snapshot};
use ballot::{Client, Event, LostReason, Options, State};

use common::{backend, unique, wait_event, wait_state, wait_until};

const LIVE: Duration = Duration::from_secs(20);

fn family<'a>(s: &'a Snapshot, name: &str) -> &'a Family {
    s.families.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no family {name}"))
}

fn label<'a>(s: &'a Sample, name: &str) -> Option<&'a str> {
    s.labels.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
}

/// The samples of `name` for election `election`.
fn of<'a>(s: &'a Snapshot, name: &str, election: &str) -> Vec<&'a Sample> {
    family(s, name).samples.iter().filter(|x| label(x, "election") == Some(election)).collect()
}

fn number(s: &Sample) -> f64 {
    match &s.value {
        SampleValue::Number(v) => *v,
        v => panic!("not a number: {v:?}"),
    }
}

fn histogram(s: &Sample) -> &HistogramValue {
    match &s.value {
        SampleValue::Histogram(h) => h,
        v => panic!("not a histogram: {v:?}"),
    }
}

/// `ballot_leader` per client number, for election `election`.
fn leaders(election: &str) -> Vec<(String, f64)> {
    let s = snapshot();
    let mut v: Vec<_> = of(&s, "ballot_leader", election)
        .into_iter()
        .map(|x| (label(x, "client").unwrap().to_string(), number(x)))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

async fn memory_client() -> Client {
    Client::connect(&backend("memory").unwrap().url, Options::default()).await.unwrap()
}

#[test]
fn families_follow_prometheus_conventions() {
    let s = snapshot();
    let names: Vec<_> = s.families.iter().map(|f| (f.name, f.kind)).collect();
    assert_eq!(
        names,
        [
            ("ballot_leader", MetricType::Gauge),
            ("ballot_campaigning", MetricType::Gauge),
            ("ballot_elections_won_total", MetricType::Counter),
            ("ballot_leadership_lost_total", MetricType::Counter),
            ("ballot_handoff_wait_seconds", MetricType::Histogram),
            ("ballot_session_healthy", MetricType::Gauge),
            ("ballot_session_deadline_seconds", MetricType::Gauge),
            ("ballot_keepalive_rtt_seconds", MetricType::Histogram),
        ]
    );
    for f in &s.families {
        assert!(f.name.starts_with("ballot_"));
        assert!(!f.help.is_empty() && !f.help.contains('\n'), "{}", f.name);
        assert_eq!(f.kind == MetricType::Counter, f.name.ends_with("_total"), "{}", f.name);
        if f.kind == MetricType::Histogram {
            assert!(f.name.ends_with("_seconds"), "{}", f.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gauges_counters_and_the_handoff_histogram_follow_two_handles() {
    let name = unique("metrics-handoff");
    let (a, b) = (memory_client().await, memory_client().await);
    let (ea, eb) = (a.election(&name).unwrap(), b.election(&name).unwrap());
    // Before any campaign: both idle.
    assert_eq!(leaders(&name).iter().map(|x| x.1).collect::<Vec<_>>(), [0.0, 0.0]);

    ea.campaign("a").await.unwrap();
    let eb2 = eb.clone();
    let waiting = tokio::spawn(async move { eb2.campaign("b").await });
    wait_state(&eb, State::Campaigning, LIVE).await;
    let s = snapshot();
    let lead: f64 = of(&s, "ballot_leader", &name).iter().map(|x| number(x)).sum();
    let camp: f64 = of(&s, "ballot_campaigning", &name).iter().map(|x| number(x)).sum();
    assert_eq!((lead, camp), (1.0, 1.0));
    let clients: Vec<_> = leaders(&name);
    let (a_client, b_client) = if clients[0].1 == 1.0 { (0, 1) } else { (1, 0) };
    let a_id = clients[a_client].0.clone();
    let b_id = clients[b_client].0.clone();
    assert_ne!(a_id, b_id);

    // Handoff: the leader's session expires, the waiting candidate wins.
    let mut a_events = ea.events();
    ballot::memory::expire_session(&a).unwrap();
    wait_event(&mut a_events, LIVE, "a lost", |e| matches!(e, Event::Lost { reason: LostReason::SessionLost })).await;
    waiting.await.unwrap().unwrap();
    wait_until(LIVE, "the gauge follows the handoff", || {
        leaders(&name).into_iter().filter(|x| x.1 == 1.0).map(|x| x.0).collect::<Vec<_>>() == [b_id.clone()]
    })
    .await;

    let s = snapshot();
    let won = |client: &str| {
        of(&s, "ballot_elections_won_total", &name)
            .into_iter()
            .find(|x| label(x, "client") == Some(client))
            .map(number)
            .unwrap()
    };
    assert_eq!((won(&a_id), won(&b_id)), (1.0, 1.0));
    let lost: Vec<_> = of(&s, "ballot_leadership_lost_total", &name)
        .into_iter()
        .filter(|x| label(x, "client") == Some(a_id.as_str()))
        .map(|x| (label(x, "reason").unwrap().to_string(), number(x)))
        .collect();
    assert_eq!(lost, [("session_lost".to_string(), 1.0), ("deleted".to_string(), 0.0), ("not_owner".to_string(), 0.0)]);
    let waits: Vec<_> = of(&s, "ballot_handoff_wait_seconds", &name).into_iter().map(histogram).collect();
    assert_eq!(waits.iter().map(|h| h.count).sum::<u64>(), 2, "one join-to-win per win");
    for h in &waits {
        assert_eq!(h.buckets.last().unwrap().le, f64::INFINITY);
        assert_eq!(h.buckets.last().unwrap().count, h.count);
        assert!(h.buckets.windows(2).all(|w| w[0].le < w[1].le && w[0].count <= w[1].count));
    }
    let b_wait = of(&s, "ballot_handoff_wait_seconds", &name)
        .into_iter()
        .find(|x| label(x, "client") == Some(b_id.as_str()))
        .map(histogram)
        .unwrap();
    assert!(b_wait.sum > 0.0);

    // Closing removes the series of the handle and of its client.
    eb.close().await;
    assert!(leaders(&name).iter().all(|x| x.0 != b_id), "{:?}", leaders(&name));
    b.close().await.unwrap();
    let s = snapshot();
    assert!(family(&s, "ballot_session_healthy").samples.iter().all(|x| label(x, "client") != Some(b_id.as_str())));
    a.close().await.unwrap();
    assert!(leaders(&name).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_handle_loses_its_series_and_labels_carry_no_value() {
    let name = unique("metrics-drop");
    let c = memory_client().await;
    let e = c.election(&name).unwrap();
    e.campaign("secret-value-1").await.unwrap();
    let text = ballot::metrics::render_prometheus();
    assert!(text.contains(&format!("election=\"{name}\"")));
    assert!(!text.contains("secret-value-1"));
    assert!(!text.contains("memory://"), "no URL in labels");
    drop(e);
    wait_until(LIVE, "the dropped handle's series go", || leaders(&name).is_empty()).await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_follows_the_session() {
    let name = unique("metrics-health");
    let c = memory_client().await;
    let e = c.election(&name).unwrap();
    assert!(e.health_check().ok, "{:?}", e.health_check());
    e.campaign("v").await.unwrap();
    assert!(e.health_check().ok);
    assert_eq!(e.health_check().reason, "ok: leader");
    ballot::memory::suspend_session(&c).unwrap();
    wait_until(LIVE, "unhealthy while suspended", || !e.health_check().ok).await;
    assert!(e.health_check().reason.contains("suspended"), "{:?}", e.health_check());
    ballot::memory::resume_session(&c).unwrap();
    wait_state(&e, State::Leader, LIVE).await;
    assert!(e.health_check().ok);
    c.close().await.unwrap();
    assert_eq!(e.health_check().reason, "closed");
    assert!(!e.health_check().ok);
}

/// A real server's keepalives feed the round-trip histogram, and the deadline and
/// health gauges read the session. Each backend has one test in this binary, so the
/// client series of its scheme are that test's.
async fn keepalives_feed_the_rtt_histogram_and_the_deadline(name: &str) {
    let Some(b) = backend(name) else { return };
    let c = Client::connect(&b.fresh_url(&unique("metrics")), Options::default()).await.unwrap();
    let scheme = b.url.split("://").next().unwrap().to_string();
    let mine = |x: &&Sample| label(x, "backend") == Some(scheme.as_str());
    let ttl = c.options().ttl();
    let rtt_count = || {
        family(&snapshot(), "ballot_keepalive_rtt_seconds")
            .samples
            .iter()
            .filter(mine)
            .map(|x| histogram(x).count)
            .sum::<u64>()
    };
    // The first keepalive (or ZooKeeper ping) goes out within a third of the TTL.
    wait_until(ttl * 2, "a keepalive answered", || rtt_count() >= 1).await;
    let s = snapshot();
    let healthy: Vec<_> = family(&s, "ballot_session_healthy").samples.iter().filter(mine).map(number).collect();
    assert_eq!(healthy, [1.0], "{name}");
    let deadline: Vec<_> =
        family(&s, "ballot_session_deadline_seconds").samples.iter().filter(mine).map(number).collect();
    assert_eq!(deadline.len(), 1, "{name}");
    assert!(deadline[0] > 0.0 && deadline[0] <= ttl.as_secs_f64(), "{name}: {deadline:?} (ttl {ttl:?})");
    let rtt = family(&s, "ballot_keepalive_rtt_seconds").samples.iter().find(mine).map(histogram).unwrap();
    assert!(rtt.sum > 0.0 && rtt.sum < ttl.as_secs_f64() * rtt.count as f64, "{name}: {rtt:?}");
    c.close().await.unwrap();
    let s = snapshot();
    assert!(family(&s, "ballot_session_healthy").samples.iter().find(mine).is_none(), "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_keepalives_feed_the_rtt_histogram_and_the_deadline() {
    keepalives_feed_the_rtt_histogram_and_the_deadline("etcd").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_pings_feed_the_rtt_histogram_and_the_deadline() {
    keepalives_feed_the_rtt_histogram_and_the_deadline("zk").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_renewals_feed_the_rtt_histogram_and_the_deadline() {
    keepalives_feed_the_rtt_histogram_and_the_deadline("consul").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_renewals_feed_the_rtt_histogram_and_the_deadline() {
    keepalives_feed_the_rtt_histogram_and_the_deadline("pg").await
}
