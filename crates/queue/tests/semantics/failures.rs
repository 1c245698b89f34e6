//! Failed attempts: retries with backoff, timeouts, panics, payloads that do not decode, dead
//! letters and their hooks, requeues.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tsp_queue::{Backoff, JobError, NewJob, Registry};

use crate::common::{self, Running, drained, now_ms, setup, worker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_follow_the_backoff_then_dead_letter_then_requeue() {
    let (_hub, q, _cleanup) = setup(&[]).await;
    let fail = Arc::new(AtomicBool::new(true));
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let mut reg = Registry::new();
    let (f, a) = (fail.clone(), attempts.clone());
    reg.register("flaky", move |ctx, _p: serde_json::Value| {
        let (f, a) = (f.clone(), a.clone());
        async move {
            a.lock().unwrap().push((ctx.attempt, now_ms()));
            if f.load(Ordering::SeqCst) {
                Err(JobError::retry(format!("attempt {} failed", ctx.attempt)))
            } else {
                Ok(())
            }
        }
    });
    let running = Running::start(worker(&q, reg, 4));
    let id = q
        .enqueue(
            NewJob::raw("flaky", "{}")
                .with_max_attempts(3)
                .with_backoff(Backoff::Fixed(300)),
        )
        .await
        .unwrap();
    drained(&q, Duration::from_secs(10)).await;
    let job = q.job(&id).await.unwrap().unwrap();
    assert_eq!(job.state, "dead");
    assert_eq!(job.attempts, 3);
    let errors: Vec<&str> = job.errors.iter().map(|e| e.error.as_str()).collect();
    assert_eq!(
        errors,
        ["attempt 1 failed", "attempt 2 failed", "attempt 3 failed"]
    );
    let times: Vec<i64> = attempts.lock().unwrap().iter().map(|(_, t)| *t).collect();
    for w in times.windows(2) {
        assert!(
            w[1] - w[0] >= 300,
            "retried after {}ms, backoff is 300ms",
            w[1] - w[0]
        );
    }
    assert_eq!(q.counts().await.unwrap().dead, 1);

    fail.store(false, Ordering::SeqCst);
    assert_eq!(
        q.requeue(Some(std::slice::from_ref(&id)))
            .await
            .unwrap()
            .requeued,
        1
    );
    drained(&q, Duration::from_secs(10)).await;
    running.stop().await;
    let job = q.job(&id).await.unwrap().unwrap();
    assert_eq!((job.state.as_str(), job.attempts), ("completed", 1));
    let c = q.counts().await.unwrap();
    assert_eq!((c.dead, c.completed), (0, 1));
    assert_eq!(c.totals.get("retried"), Some(&2));
    assert_eq!(c.totals.get("requeued"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_times_out_is_retried_then_dead() {
    let (_hub, q, _cleanup) = setup(&[]).await;
    let mut reg = Registry::new();
    reg.register("slow", |_ctx, _p: serde_json::Value| async {
        // Never finishes: only the timeout ends it.
        std::future::pending::<()>().await;
        Ok(())
    });
    let running = Running::start(worker(&q, reg, 4));
    let id = q
        .enqueue(
            NewJob::raw("slow", "{}")
                .with_timeout(Duration::from_millis(100))
                .with_max_attempts(2)
                .with_backoff(Backoff::Fixed(10)),
        )
        .await
        .unwrap();
    drained(&q, Duration::from_secs(10)).await;
    running.stop().await;
    let job = q.job(&id).await.unwrap().unwrap();
    assert_eq!((job.state.as_str(), job.attempts), ("dead", 2));
    assert!(
        job.errors
            .iter()
            .all(|e| e.error == "timed out after 100ms"),
        "{:?}",
        job.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_its_attempt_and_the_worker_goes_on() {
    let (_hub, q, _cleanup) = setup(&[]).await;
    let mut reg = Registry::new();
    reg.register("boom", |_ctx, _p: serde_json::Value| async {
        if true {
            panic!("boom at {}", 42);
        }
        Ok(())
    });
    let running = Running::start(worker(&q, reg, 4));
    let id = q
        .enqueue(NewJob::raw("boom", "{}").with_max_attempts(1))
        .await
        .unwrap();
    drained(&q, Duration::from_secs(10)).await;
    let after = q.enqueue(NewJob::raw("builtin.noop", "{}")).await.unwrap();
    drained(&q, Duration::from_secs(10)).await;
    let report = running.stop().await;
    let job = q.job(&id).await.unwrap().unwrap();
    assert_eq!(job.state, "dead");
    assert_eq!(
        job.last_error.as_deref(),
        Some("handler panicked: boom at 42")
    );
    assert_eq!(q.job(&after).await.unwrap().unwrap().state, "completed");
    assert_eq!((report.completed, report.dead), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_that_does_not_decode_fails_with_the_decode_error() {
    let (_hub, q, _cleanup) = setup(&[]).await;
    let running = Running::start(worker(&q, Registry::new(), 4));
    let bad = q
        .enqueue(NewJob::raw("builtin.sleep", r#"{"ms": "soon"}"#))
        .await
        .unwrap();
    let good = q
        .enqueue(NewJob::raw("builtin.sleep", r#"{"ms": 1}"#))
        .await
        .unwrap();
    drained(&q, Duration::from_secs(10)).await;
    running.stop().await;
    let job = q.job(&bad).await.unwrap().unwrap();
    assert_eq!(
        (job.state.as_str(), job.attempts),
        ("dead", 1),
        "no retry for a bad payload"
    );
    assert!(
        job.last_error
            .as_deref()
            .unwrap()
            .starts_with("payload does not decode as builtin.sleep: invalid type: string \"soon\""),
        "{:?}",
        job.last_error
    );
    assert_eq!(q.job(&good).await.unwrap().unwrap().state, "completed");
    // Producers get field-named errors before anything is stored.
    let e = q.enqueue(NewJob::raw("x", "{oops")).await.unwrap_err();
    assert!(
        e.to_string().starts_with("invalid payload: not valid JSON"),
        "{e}"
    );
}

/// Dead jobs run their type's dead-letter hook once it succeeds: a failing hook runs again, a
/// type without a hook is just marked handled, and the pending count returns to zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_hooks_run_until_they_succeed() {
    let (_hub, q, _cleanup) = setup(&[]).await;
    let calls = Arc::new(Mutex::new(std::collections::HashMap::<u32, u32>::new()));
    let mut reg = Registry::new();
    reg.register("doomed", |_ctx, _n: u32| async {
        Err::<(), _>(JobError::abort("no"))
    });
    reg.register("doomed.nohook", |_ctx, _n: u32| async {
        Err::<(), _>(JobError::abort("no"))
    });
    let c = calls.clone();
    reg.on_dead("doomed", move |_id, n: u32| {
        let c = c.clone();
        async move {
            let mut m = c.lock().unwrap();
            let k = m.entry(n).or_insert(0);
            *k += 1;
            // Job 3's hook fails on its first run.
            if n == 3 && *k == 1 {
                return Err("first run of 3 fails".to_string());
            }
            Ok(())
        }
    });
    for n in 0..5u32 {
        q.enqueue(NewJob::new("doomed", &n).unwrap()).await.unwrap();
    }
    q.enqueue(NewJob::new("doomed.nohook", &9u32).unwrap())
        .await
        .unwrap();
    let running = Running::start(worker(&q, reg, 4));
    common::settled(&q, Duration::from_secs(20)).await;
    running.stop().await;
    let m = calls.lock().unwrap().clone();
    let mut got: Vec<(u32, u32)> = m.into_iter().collect();
    got.sort();
    assert_eq!(got, vec![(0, 1), (1, 1), (2, 1), (3, 2), (4, 1)]);
    let c = q.counts().await.unwrap();
    assert_eq!((c.dead, c.dead_unhandled), (6, 0));
}

/// A dead job whose hook is running (claimed) is not requeued; once handled, it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_job_is_not_requeued_while_its_hook_runs() {
    use tsp_queue::{Finished, Outcome};
    let (_hub, q, _cleanup) = setup(&[]).await;
    let id = q
        .enqueue(NewJob::new("doomed", &1u32).unwrap())
        .await
        .unwrap();
    // Dead-lettered by hand (fetch, then a dead outcome): no worker, so no sweeper claims its
    // hook before the test does.
    let fetched = q.fetch(1, "w1").await.unwrap();
    let dead = Outcome::Dead { error: "no".into() };
    let done = q.finish(&[(&fetched.jobs[0], dead)], false).await.unwrap();
    assert_eq!(done, [Finished::Dead]);
    let claimed = q.claim_dead(Duration::from_secs(30), 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, id);
    assert_eq!(claimed[0].payload, "1");
    // Its hook is running: a requeue leaves it alone and says so.
    let r = q.requeue(Some(std::slice::from_ref(&id))).await.unwrap();
    assert_eq!((r.requeued, r.hook_running), (0, 1));
    q.dead_handled(std::slice::from_ref(&id)).await.unwrap();
    let r = q.requeue(Some(std::slice::from_ref(&id))).await.unwrap();
    assert_eq!((r.requeued, r.hook_running), (1, 0));
}
