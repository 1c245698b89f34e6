//! Batch handlers against the real Redis: mixed outcomes in one batch, a batch gathered from
//! several fetches, a timeout, a panic, and a lease lost mid-batch (its late outcomes refused,
//! every job completed once by the next lease).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Running, drained, setup, worker};
use tsp_queue::{BatchJob, BatchOptions, JobError, JobRules, NewJob, Registry};

#[derive(serde::Deserialize)]
struct Item {
    n: i64,
    #[serde(default)]
    outcome: String,
}

fn options(max_batch: usize, max_wait_ms: u64) -> BatchOptions {
    BatchOptions {
        max_batch,
        max_wait: Duration::from_millis(max_wait_ms),
    }
}

/// A registry with batch type `items`: every batch's size is recorded in `sizes`; each job's
/// outcome is what its payload asks for.
fn items(sizes: Arc<Mutex<Vec<usize>>>, opts: BatchOptions) -> Registry {
    let mut reg = Registry::new();
    reg.register_batch(
        "items",
        opts,
        JobRules::new(),
        move |jobs: Vec<BatchJob<Item>>| {
            sizes.lock().unwrap().push(jobs.len());
            async move {
                jobs.iter()
                    .map(|j| match j.payload.outcome.as_str() {
                        "abort" => Err(JobError::abort(format!("item {} refused", j.payload.n))),
                        "retry-once" if j.ctx.attempt == 1 => Err(JobError::retry("not yet")),
                        _ => Ok(serde_json::json!({"double": j.payload.n * 2})),
                    })
                    .collect::<Vec<_>>()
            }
        },
    );
    reg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_holds_every_outcome_and_a_bad_payload_fails_alone() {
    let (_hub, q, _cleanup) = setup(&["queue.backoff=10ms"]).await;
    let mut ids = Vec::new();
    for (n, outcome) in [(1, "ok"), (2, "abort"), (3, "retry-once"), (4, "ok")] {
        let payload = serde_json::json!({"n": n, "outcome": outcome}).to_string();
        ids.push(
            q.enqueue(NewJob::raw("items", &payload).with_max_attempts(2))
                .await
                .unwrap(),
        );
    }
    ids.push(
        q.enqueue(NewJob::raw("items", r#"{"n": "five"}"#))
            .await
            .unwrap(),
    );
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let running = Running::start(worker(&q, items(sizes.clone(), options(64, 50)), 16));
    drained(&q, Duration::from_secs(10)).await;
    let report = running.stop().await;
    let job = |i: usize| {
        let q = q.clone();
        let id = ids[i].clone();
        async move { q.job(&id).await.unwrap().unwrap() }
    };
    let ok = job(0).await;
    assert_eq!(
        (ok.state.as_str(), ok.result.clone()),
        ("completed", Some(serde_json::json!({"double": 2})))
    );
    let refused = job(1).await;
    assert_eq!(
        (refused.state.as_str(), refused.last_error.as_deref()),
        ("dead", Some("item 2 refused"))
    );
    let retried = job(2).await;
    assert_eq!((retried.state.as_str(), retried.attempts), ("completed", 2));
    assert_eq!(job(3).await.state, "completed");
    let bad = job(4).await;
    assert_eq!(bad.state, "dead");
    assert!(
        bad.last_error
            .unwrap()
            .starts_with("payload does not decode as items")
    );
    // The first four ran as one batch (the bad payload never reached the handler), the retry
    // alone later.
    assert_eq!(*sizes.lock().unwrap(), vec![4, 1]);
    assert_eq!((report.completed, report.dead, report.retried), (3, 2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_gathers_jobs_from_several_fetches() {
    let (_hub, q, _cleanup) = setup(&["queue.fetch_batch=4"]).await;
    for n in 0..40 {
        q.enqueue(NewJob::raw("items", format!(r#"{{"n": {n}}}"#)))
            .await
            .unwrap();
    }
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let running = Running::start(worker(&q, items(sizes.clone(), options(40, 500)), 64));
    drained(&q, Duration::from_secs(10)).await;
    let report = running.stop().await;
    assert_eq!(report.completed, 40);
    let sizes = sizes.lock().unwrap().clone();
    assert_eq!(sizes.iter().sum::<usize>(), 40);
    assert!(
        sizes.iter().any(|s| *s > 4),
        "no batch larger than a fetch of 4: {sizes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_runs_under_its_earliest_deadline_and_a_panic_fails_only_that_attempt() {
    let (_hub, q, _cleanup) = setup(&["queue.backoff=10ms"]).await;
    let mut reg = Registry::new();
    reg.register_batch(
        "slow",
        options(8, 100),
        JobRules::new(),
        |jobs: Vec<BatchJob<serde_json::Value>>| async move {
            // Never finishes: only the deadline ends it.
            std::future::pending::<()>().await;
            jobs.iter()
                .map(|_| Ok(()))
                .collect::<Vec<Result<(), JobError>>>()
        },
    );
    reg.register_batch(
        "boom",
        options(8, 100),
        JobRules::new(),
        |jobs: Vec<BatchJob<serde_json::Value>>| async move {
            if jobs.iter().any(|j| j.ctx.attempt == 1) {
                panic!("boom in a batch of {}", jobs.len());
            }
            jobs.iter()
                .map(|_| Ok(()))
                .collect::<Vec<Result<(), JobError>>>()
        },
    );
    let quick = q
        .enqueue(
            NewJob::raw("slow", "{}")
                .with_timeout(Duration::from_millis(100))
                .with_max_attempts(1),
        )
        .await
        .unwrap();
    let patient = q
        .enqueue(
            NewJob::raw("slow", "{}")
                .with_timeout(Duration::from_secs(20))
                .with_max_attempts(1),
        )
        .await
        .unwrap();
    let mut booms = Vec::new();
    for _ in 0..3 {
        booms.push(
            q.enqueue(NewJob::raw("boom", "{}").with_max_attempts(2))
                .await
                .unwrap(),
        );
    }
    let running = Running::start(worker(&q, reg, 16));
    drained(&q, Duration::from_secs(10)).await;
    let report = running.stop().await;
    for id in [&quick, &patient] {
        let job = q.job(id).await.unwrap().unwrap();
        assert_eq!(
            (job.state.as_str(), job.last_error.as_deref()),
            ("dead", Some("batch timed out after 100ms")),
            "the earliest deadline holds for the whole batch"
        );
    }
    for id in &booms {
        let job = q.job(id).await.unwrap().unwrap();
        assert_eq!((job.state.as_str(), job.attempts), ("completed", 2));
        assert_eq!(
            job.errors[0].error,
            "batch handler panicked: boom in a batch of 3"
        );
    }
    assert_eq!((report.completed, report.dead), (3, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_lost_mid_batch_refuses_the_late_outcomes_and_each_job_completes_once() {
    let (hub, q, _cleanup) = setup(&[]).await;
    let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let release = Arc::new(tokio::sync::Notify::new());
    let runs = Arc::new(Mutex::new(Vec::new()));
    let mut reg = Registry::new();
    {
        let (release, runs) = (release.clone(), runs.clone());
        reg.register_batch(
            "held",
            options(16, 100),
            JobRules::new(),
            move |jobs: Vec<BatchJob<serde_json::Value>>| {
                let (release, runs, entered) = (release.clone(), runs.clone(), entered_tx.clone());
                async move {
                    runs.lock()
                        .unwrap()
                        .extend(jobs.iter().map(|j| (j.ctx.id.clone(), j.ctx.attempt)));
                    if jobs[0].ctx.attempt == 1 {
                        let _ = entered.send(jobs.len());
                        release.notified().await;
                    }
                    jobs.iter()
                        .map(|_| Ok(()))
                        .collect::<Vec<Result<(), JobError>>>()
                }
            },
        );
    }
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(q.enqueue(NewJob::raw("held", "{}")).await.unwrap());
    }
    let running = Running::start(worker(&q, reg, 16));
    assert_eq!(entered.recv().await, Some(8));
    // The worker's lease deadline moved into the past (as if it had stopped heartbeating), and
    // recovery takes its jobs back.
    let store = hub.redis("cache").unwrap();
    let mut conn = store.conn().await.unwrap();
    let workers_key = format!("{}workers", q.base_key());
    let holders: Vec<String> = redis::cmd("ZRANGE")
        .arg(&workers_key)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(holders.len(), 1, "{holders:?}");
    let _: () = redis::cmd("ZADD")
        .arg(&workers_key)
        .arg(0)
        .arg(&holders[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(q.recover_stalled().await.unwrap(), (8, 0));
    // The worker carries on under a new lease id and completes them as second attempts...
    drained(&q, Duration::from_secs(10)).await;
    // ...then the first batch ends: its outcomes are stale.
    release.notify_one();
    let report = running.stop().await;
    assert_eq!((report.completed, report.stale), (8, 8));
    for id in &ids {
        let job = q.job(id).await.unwrap().unwrap();
        assert_eq!((job.state.as_str(), job.attempts), ("completed", 2));
    }
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 16, "each job ran twice: {runs:?}");
    assert_eq!(q.counts().await.unwrap().totals.get("completed"), Some(&8));
}
