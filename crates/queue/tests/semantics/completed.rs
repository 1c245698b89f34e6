//! Completed jobs: retention by count and age, reruns after a restore, and completed jobs stored
//! by an earlier build.

use std::time::Duration;

use tsp_queue::{NewJob, Registry};

use crate::common::{self, Running, drained, now_ms, setup, setup_clocked, worker};
use crate::helpers::*;

/// After a restore rolled other stores back to a moment, the jobs completed since then run
/// again, once each; those that finished before stay completed with their results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_completed_since_a_moment_run_again_once_each() {
    let (hub, q, _cleanup, clock) = setup_clocked(&[]).await;
    let set = common::unique("rerun");
    let mark = || NewJob::raw("builtin.mark", format!(r#"{{"set":"{set}"}}"#));
    let before = q.enqueue_many(vec![mark(); 5]).await.unwrap();
    let running = Running::start(worker(&q, Registry::new(), 4));
    drained(&q, Duration::from_secs(10)).await;
    // The moment: a millisecond after every earlier completion, before the next jobs are even
    // enqueued.
    clock.advance(Duration::from_millis(1));
    let since = q.now_ms();
    let after = q.enqueue_many(vec![mark(); 7]).await.unwrap();
    drained(&q, Duration::from_secs(10)).await;
    running.stop().await;

    let r = q.rerun_completed_since(since).await.unwrap();
    assert_eq!((r.rerun, r.left_completed), (7, 5));
    let c = q.counts().await.unwrap();
    assert_eq!((c.waiting, c.completed), (7, 5), "{c:?}");
    let waiting = q.job(&after[0]).await.unwrap().unwrap();
    assert_eq!((waiting.state.as_str(), waiting.attempts), ("waiting", 0));
    assert_eq!(waiting.finished_at, None);
    // Asked again before they ran, nothing more moves.
    let r = q.rerun_completed_since(since).await.unwrap();
    assert_eq!((r.rerun, r.left_completed), (0, 5));

    let running = Running::start(worker(&q, Registry::new(), 4));
    drained(&q, Duration::from_secs(10)).await;
    running.stop().await;
    let marks = common::marks(&hub, &set).await;
    for id in &before {
        assert_eq!(marks.get(id), Some(&1), "{id} ran before the moment: once");
    }
    for id in &after {
        assert_eq!(
            marks.get(id),
            Some(&2),
            "{id} ran after the moment: again, once"
        );
    }
    let c = q.counts().await.unwrap();
    assert_eq!((c.completed, c.waiting, c.active), (12, 0, 0), "{c:?}");
    assert_eq!(c.totals.get("rerun"), Some(&7));
    let again = q.job(&after[0]).await.unwrap().unwrap();
    assert_eq!((again.state.as_str(), again.attempts), ("completed", 1));
    assert!(q.audit(false).await.unwrap().clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_jobs_are_kept_within_the_count_and_age_limits() {
    let (hub, q, _cleanup) = setup(&["queue.keep_completed=5"]).await;
    let ids = enqueue_numbered(&q, 12).await;
    let got = q.fetch(12, "w1").await.unwrap();
    for part in got.jobs.chunks(4) {
        q.finish(&completions(part), false).await.unwrap();
    }
    // The five completed last are kept; the seven before them are gone, data and all.
    assert_eq!(q.counts().await.unwrap().completed, 5);
    for id in &ids[..7] {
        assert!(q.job(id).await.unwrap().is_none(), "{id} kept");
    }
    for id in &ids[7..] {
        assert_eq!(q.job(id).await.unwrap().unwrap().state, "completed");
    }

    // By age: jobs completed more than 300 ms before a later completion are removed by it
    // (the queue's clock moves when the test says).
    let mut settings = hub.config().queue.clone();
    settings.keep_completed_age = Duration::from_millis(300);
    let clock = tsp_queue::Clock::manual();
    let aged = tsp_queue::Queue::new(q.store().clone(), "aged", &settings)
        .unwrap()
        .with_clock(clock.clone());
    let old = enqueue_numbered(&aged, 3).await;
    let got = aged.fetch(3, "w1").await.unwrap();
    aged.finish(&completions(&got.jobs), false).await.unwrap();
    let young = enqueue_numbered(&aged, 2).await;
    let got = aged.fetch(2, "w1").await.unwrap();
    // 300 ms after the first completions, all four are kept.
    clock.advance(Duration::from_millis(300));
    aged.finish(&completions(&got.jobs[..1]), false)
        .await
        .unwrap();
    assert_eq!(aged.counts().await.unwrap().completed, 4);
    clock.advance(Duration::from_millis(301));
    // Now all four are over 300 ms old: the next completion removes them and is kept.
    aged.finish(&completions(&got.jobs[1..]), false)
        .await
        .unwrap();
    for id in old.iter().chain(&young[..1]) {
        assert!(aged.job(id).await.unwrap().is_none(), "{id} kept");
    }
    let kept = completed_ids(&aged).await;
    assert_eq!(kept, young[1..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_jobs_stored_by_an_earlier_build_are_converted() {
    let (_hub, q, _cleanup) = setup(&[]).await;
    let ids = enqueue_numbered(&q, 3).await;
    let got = q.fetch(3, "w1").await.unwrap();
    // The earlier layout: completed jobs in a sorted set (score = finish time), the lease
    // record without a finish time.
    let base = q.base_key().to_string();
    let mut conn = q.store().conn().await.unwrap();
    let t = now_ms();
    for (i, j) in got.jobs.iter().enumerate() {
        let _: () = redis::pipe()
            .cmd("SREM")
            .arg(format!("{base}active:w1"))
            .arg(&j.id)
            .cmd("HSET")
            .arg(format!("{base}lease"))
            .arg(&j.id)
            .arg(format!("1|{}||w1", j.leased_at))
            .cmd("ZADD")
            .arg(format!("{base}completed"))
            .arg(t + i as i64)
            .arg(&j.id)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // One completed in the current layout meanwhile.
    let later = enqueue_numbered(&q, 1).await;
    let got_later = q.fetch(1, "w1").await.unwrap();
    q.finish(&completions(&got_later.jobs), false)
        .await
        .unwrap();

    assert_eq!(q.upgrade_storage().await.unwrap(), 3);
    assert_eq!(q.upgrade_storage().await.unwrap(), 0);
    let exists: bool = redis::cmd("EXISTS")
        .arg(format!("{base}completed"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!exists);
    for (i, id) in ids.iter().enumerate() {
        let info = q.job(id).await.unwrap().unwrap();
        assert_eq!((info.state.as_str(), info.attempts), ("completed", 1));
        assert_eq!(info.finished_at, Some(t + i as i64));
    }
    assert_eq!(q.counts().await.unwrap().completed, 4);
    let listed = completed_ids(&q).await;
    let mut want = ids.clone();
    want.extend(later);
    assert_eq!(listed, want, "oldest first");
}
