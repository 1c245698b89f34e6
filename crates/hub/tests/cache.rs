//! The two-level cache against the real Redis: levels, single flight, versions, invalidation
//! across cache instances (each with its own L1 and subscription, as two processes have), and
//! Redis being down.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tsp_hub::{Cache, Hub, HubError, Level};

async fn cache(sets: &[&str]) -> (Hub, Cache) {
    let prefix = format!("redis.cache.key_prefix={}:", common::unique("tc"));
    let mut all = vec![prefix.as_str()];
    all.extend_from_slice(sets);
    let hub = Hub::connect(&common::config(&all)).await.unwrap();
    let c = Cache::start(hub.redis("cache").unwrap().clone(), &hub.config().cache);
    (hub, c)
}

/// Removes the test's keys (its own prefix).
async fn done(hub: &Hub) {
    let store = hub.redis("cache").unwrap();
    store
        .delete_matching(&format!("{}*", store.key_prefix()))
        .await
        .unwrap();
}

/// A second cache on the same prefix: another process, as far as the cache can tell.
async fn peer(hub: &Hub) -> Cache {
    let other = Hub::connect(hub.config()).await.unwrap();
    Cache::start(other.redis("cache").unwrap().clone(), &hub.config().cache)
}

async fn value(c: &Cache, tag: &str, v: u64, loads: &AtomicU64) -> (u64, Level) {
    c.get_or_load(tag, "k", || async {
        loads.fetch_add(1, Ordering::SeqCst);
        Ok::<_, HubError>(v)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_then_l1_then_l2_after_l1_is_cleared() {
    let (hub, c) = cache(&[]).await;
    assert!(c.wait_l1(Duration::from_secs(5)).await);
    let loads = AtomicU64::new(0);
    assert_eq!(value(&c, "user:1", 7, &loads).await, (7, Level::Source));
    assert_eq!(value(&c, "user:1", 8, &loads).await, (7, Level::L1));
    c.clear_l1();
    assert_eq!(value(&c, "user:1", 9, &loads).await, (7, Level::L2));
    assert_eq!(value(&c, "user:1", 9, &loads).await, (7, Level::L1));
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let s = c.stats();
    assert_eq!((s.l1_hits, s.l2_hits, s.loads), (2, 1, 1));
    done(&hub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_misses_make_one_load() {
    let (hub, c) = cache(&[]).await;
    // L1 counts every miss once it listens for invalidations: the load below waits for them.
    assert!(c.wait_l1(Duration::from_secs(5)).await);
    let loads = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (c, loads) = (c.clone(), loads.clone());
        tasks.push(tokio::spawn(async move {
            let counted = c.clone();
            c.get_or_load("user:2", "stats", || async move {
                loads.fetch_add(1, Ordering::SeqCst);
                // The load lasts until all hundred have missed: every one of them is then
                // waiting on it (or finds its answer), none can have loaded alone.
                // (A second load fails the test below: it need not wait.)
                let all_missed =
                    || async { counted.stats().l1_misses >= 100 || counted.stats().loads > 1 };
                tsp_testkit::until("all misses", Duration::from_secs(10), all_missed).await;
                Ok::<_, HubError>(vec![1u32, 2, 3])
            })
            .await
            .unwrap()
            .0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), vec![1, 2, 3]);
    }
    assert_eq!(c.stats().l1_misses, 100);
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    done(&hub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_reaches_every_instance_before_it_returns() {
    let (hub, a) = cache(&[]).await;
    let b = peer(&hub).await;
    assert!(a.wait_l1(Duration::from_secs(5)).await && b.wait_l1(Duration::from_secs(5)).await);
    let loads = AtomicU64::new(0);
    for round in 0..50u64 {
        // Both hold the current value in L1.
        assert_eq!(value(&a, "user:3", round, &loads).await.0, round);
        assert_eq!(value(&b, "user:3", round, &loads).await.0, round);
        assert_eq!(value(&b, "user:3", 999, &loads).await, (round, Level::L1));
        // A writes and invalidates; B must not answer from its L1 afterwards.
        let inv = a.invalidate(&["user:3".to_string()]).await.unwrap();
        assert_eq!((inv.receivers, inv.acknowledged), (2, 2));
        let (v, level) = value(&b, "user:3", round + 1, &loads).await;
        assert_eq!((v, level), (round + 1, Level::Source), "round {round}");
        // A reads B's freshly loaded entry from L2, under the new version.
        assert_eq!(
            value(&a, "user:3", 12345, &loads).await,
            (round + 1, Level::L2)
        );
    }
    // Other tags are untouched.
    value(&a, "user:4", 1, &loads).await;
    a.invalidate(&["user:3".to_string()]).await.unwrap();
    assert_eq!(value(&a, "user:4", 2, &loads).await, (1, Level::L1));
    done(&hub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_that_overlaps_an_invalidation_is_not_kept() {
    let (hub, c) = cache(&[]).await;
    assert!(c.wait_l1(Duration::from_secs(5)).await);
    // The load reads its value, then the invalidation happens, then the load returns: each
    // step waits for the one before, so the overlap is certain.
    let (read_tx, read_rx) = tokio::sync::oneshot::channel::<()>();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let slow = {
        let c = c.clone();
        tokio::spawn(async move {
            c.get_or_load("user:5", "k", || async {
                let _ = read_tx.send(());
                let _ = go_rx.await;
                Ok::<_, HubError>(1u64) // read before the write below: stale
            })
            .await
            .unwrap()
        })
    };
    read_rx.await.unwrap();
    c.invalidate(&["user:5".to_string()]).await.unwrap();
    go_tx.send(()).unwrap();
    assert_eq!(slow.await.unwrap(), (1, Level::Source));
    // Neither L1 nor L2 kept the stale value: the next read loads again.
    let loads = AtomicU64::new(0);
    assert_eq!(value(&c, "user:5", 2, &loads).await, (2, Level::Source));
    done(&hub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_is_bounded() {
    let (hub, c) = cache(&["cache.l1_capacity=10"]).await;
    assert!(c.wait_l1(Duration::from_secs(5)).await);
    let loads = AtomicU64::new(0);
    for i in 0..30u64 {
        value(&c, &format!("t:{i}"), i, &loads).await;
    }
    c.clear_l1();
    for i in 20..30u64 {
        value(&c, &format!("t:{i}"), i, &loads).await;
    }
    // The 10 newest are in L1 again; older ones were evicted: L2 answers for them.
    for i in 20..30u64 {
        assert_eq!(
            value(&c, &format!("t:{i}"), 0, &loads).await,
            (i, Level::L1)
        );
    }
    // Each of these goes to L2 and evicts the oldest L1 entry.
    for i in 0..30u64 {
        assert_eq!(
            value(&c, &format!("t:{i}"), 0, &loads).await,
            (i, Level::L2)
        );
    }
    assert_eq!(loads.load(Ordering::SeqCst), 30);
    done(&hub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_means_every_read_goes_to_the_source() {
    let port = common::closed_port().to_string();
    let set = format!("redis.cache.port={port}");
    // On a Cluster (TSP_TEST_REDIS_CLUSTER), its seed is the closed port instead.
    let seed = format!("redis.cache.cluster_nodes=127.0.0.1:{port}");
    let mut sets = vec![set.as_str(), "redis.cache.connect_timeout=300ms"];
    if tsp_testkit::cluster_override().is_some() {
        sets.push(seed.as_str());
    }
    let (_hub, c) = cache(&sets).await;
    let loads = AtomicU64::new(0);
    for i in 0..3 {
        assert_eq!(value(&c, "user:6", i, &loads).await, (i, Level::Source));
    }
    assert!(!c.l1_active());
    assert!(c.invalidate(&["user:6".to_string()]).await.is_err());
}
