//! The order jobs run in: priority, then first in first out; delays; deduplication; deleting a
//! queue.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tsp_queue::{NewJob, Registry};

use crate::common::{Running, drained, now_ms, setup, worker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_first_then_fifo() {
    let (_hub, q, _cleanup) = setup(&[]).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut reg = Registry::new();
    let s = seen.clone();
    reg.register("order", move |_ctx, n: u32| {
        let s = s.clone();
        async move {
            s.lock().unwrap().push(n);
            Ok(())
        }
    });
    q.pause().await.unwrap();
    let plan = [(1, 0), (2, 5), (3, 5), (4, 0), (5, 9), (6, 1023), (7, 5)];
    for (n, p) in plan {
        q.enqueue(NewJob::new("order", &n).unwrap().with_priority(p))
            .await
            .unwrap();
    }
    let running = Running::start(worker(&q, reg, 1));
    q.resume().await.unwrap();
    drained(&q, Duration::from_secs(10)).await;
    running.stop().await;
    assert_eq!(*seen.lock().unwrap(), vec![6, 5, 2, 3, 7, 1, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_job_runs_on_time() {
    let (_hub, q, _cleanup) = setup(&[]).await;
    let started = Arc::new(Mutex::new(None));
    let mut reg = Registry::new();
    let s = started.clone();
    reg.register("stamp", move |_ctx, _p: serde_json::Value| {
        let s = s.clone();
        async move {
            *s.lock().unwrap() = Some(now_ms());
            Ok(())
        }
    });
    // Enqueued before the worker starts: its first fetch finds nothing due, so it goes idle
    // and must wake for the job by itself (no producer pushes its wake list later).
    let id = q
        .enqueue(NewJob::raw("stamp", "{}").with_delay(Duration::from_millis(700)))
        .await
        .unwrap();
    let run_at = q.job(&id).await.unwrap().unwrap().run_at;
    let running = Running::start(worker(&q, reg, 4));
    drained(&q, Duration::from_secs(10)).await;
    running.stop().await;
    let at = started.lock().unwrap().expect("ran");
    assert!(at >= run_at, "ran {}ms early", run_at - at);
    assert!(at - run_at <= 200, "ran {}ms late", at - run_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedup_key_holds_only_within_its_job_type() {
    let (_hub, q, _cleanup) = setup(&[]).await;
    q.pause().await.unwrap();
    let noop = q
        .enqueue(NewJob::raw("builtin.noop", "{}").with_dedup_key("trip:7"))
        .await
        .unwrap();
    let other = q
        .enqueue(NewJob::raw("builtin.fail", "{}").with_dedup_key("trip:7"))
        .await
        .unwrap();
    assert_ne!(
        noop, other,
        "another type's job with the same key is its own job"
    );
    let again = q
        .enqueue(NewJob::raw("builtin.noop", "{}").with_dedup_key("trip:7"))
        .await
        .unwrap();
    assert_eq!(noop, again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedup_key_returns_the_pending_job() {
    let (_hub, q, _cleanup) = setup(&[]).await;
    q.pause().await.unwrap();
    let a = q
        .enqueue(NewJob::raw("builtin.noop", "{}").with_dedup_key("trip-42"))
        .await
        .unwrap();
    let b = q
        .enqueue(NewJob::raw("builtin.noop", "{}").with_dedup_key("trip-42"))
        .await
        .unwrap();
    let other = q
        .enqueue(NewJob::raw("builtin.noop", "{}").with_dedup_key("trip-43"))
        .await
        .unwrap();
    assert_eq!(a, b);
    assert_ne!(a, other);
    assert_eq!(q.counts().await.unwrap().waiting, 2);
    let running = Running::start(worker(&q, Registry::new(), 4));
    q.resume().await.unwrap();
    drained(&q, Duration::from_secs(10)).await;
    running.stop().await;
    let c = q
        .enqueue(NewJob::raw("builtin.noop", "{}").with_dedup_key("trip-42"))
        .await
        .unwrap();
    assert_ne!(a, c, "a finished job no longer deduplicates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_queue_removes_its_keys_and_its_name() {
    let (_hub, q, _cleanup) = setup(&[]).await;
    for n in 0..3u32 {
        q.enqueue(NewJob::new("noop", &n).unwrap()).await.unwrap();
    }
    let known = tsp_queue::Queue::known(q.store()).await.unwrap();
    assert!(known.iter().any(|n| n == q.name()));
    // Every key under the queue's base, on every node of a Cluster too.
    let keys = |q: tsp_queue::Queue| async move {
        q.store()
            .keys_matching(&format!("{}*", q.base_key()))
            .await
            .unwrap()
    };
    assert!(!keys(q.clone()).await.is_empty());
    assert!(q.delete().await.unwrap() > 0);
    assert_eq!(keys(q.clone()).await, Vec::<String>::new());
    let known = tsp_queue::Queue::known(q.store()).await.unwrap();
    assert!(!known.iter().any(|n| n == q.name()));
}
