//! The built-in handlers, one fetch at a time through `Worker::run_once`: no background loops,
//! so each assertion sees exactly what one step of the runtime did.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::setup;
use tsp_queue::{Finished, JobError, NewJob, Registry, Worker};

#[tokio::test]
async fn noop_and_sleep_complete_and_a_bad_sleep_is_dead_at_once() {
    let (_hub, q, _cleanup) = setup(&[]).await;
    let ids = q
        .enqueue_many(vec![
            NewJob::raw("builtin.noop", r#"{"anything": [1, 2]}"#),
            NewJob::raw("builtin.sleep", r#"{"ms": 5}"#),
            NewJob::raw("builtin.sleep", r#"{"ms": 3600001}"#),
            NewJob::raw("builtin.sleep", r#"{"seconds": 1}"#),
        ])
        .await
        .unwrap();
    let worker = Worker::new(vec![q.clone()], Registry::new());
    let ran = worker.run_once(&q).await.unwrap();
    let got: Vec<(&str, Finished)> = ran.iter().map(|r| (r.id.as_str(), r.finished)).collect();
    assert_eq!(
        got,
        vec![
            (ids[0].as_str(), Finished::Completed),
            (ids[1].as_str(), Finished::Completed),
            (ids[2].as_str(), Finished::Dead),
            (ids[3].as_str(), Finished::Dead),
        ]
    );
    assert_eq!(ran[1].result.as_ref().unwrap()["slept_ms"], 5);
    assert!(
        matches!(&ran[2].result, Err(JobError::Abort(m)) if m.contains("at most 3600000")),
        "{:?}",
        ran[2].result
    );
    assert!(
        matches!(&ran[3].result, Err(JobError::Abort(m)) if m.contains("unknown field `seconds`")),
        "{:?}",
        ran[3].result
    );
    // Nothing is left to run, and the queue saw what run_once reported.
    assert!(worker.run_once(&q).await.unwrap().is_empty());
    let c = q.counts().await.unwrap();
    assert_eq!((c.waiting, c.active, c.completed, c.dead), (0, 0, 2, 2));
}

#[tokio::test]
async fn mark_counts_each_run_under_the_job_id() {
    let (hub, q, _cleanup) = setup(&[]).await;
    let set = tsp_testkit::unique("s");
    let payload = format!(r#"{{"set": "{set}"}}"#);
    let ids = q
        .enqueue_many(vec![NewJob::raw("builtin.mark", &payload); 3])
        .await
        .unwrap();
    let worker = Worker::new(vec![q.clone()], Registry::new());
    let ran = worker.run_once(&q).await.unwrap();
    assert_eq!(ran.len(), 3);
    for r in &ran {
        assert_eq!(r.finished, Finished::Completed);
        assert_eq!(r.result.as_ref().unwrap()["runs"], 1);
    }
    let marks = common::marks(&hub, &set).await;
    let mut marked: Vec<&String> = marks.keys().collect();
    marked.sort();
    let mut expected: Vec<&String> = ids.iter().collect();
    expected.sort();
    assert_eq!(marked, expected);
    assert!(marks.values().all(|n| *n == 1), "{marks:?}");
}

#[tokio::test]
async fn an_unknown_type_is_retried_for_a_worker_that_knows_it() {
    let (_hub, q, _cleanup) = setup(&["queue.max_attempts=2"]).await;
    let id = q
        .enqueue(NewJob::raw("elsewhere.only", "{}"))
        .await
        .unwrap();
    let worker = Worker::new(vec![q.clone()], Registry::new());
    let ran = worker.run_once(&q).await.unwrap();
    assert_eq!(
        (ran[0].id.as_str(), ran[0].finished),
        (id.as_str(), Finished::Retrying)
    );
    assert!(
        matches!(&ran[0].result, Err(JobError::Retry(m)) if m.contains("no handler for job type `elsewhere.only`")),
        "{:?}",
        ran[0].result
    );
}

#[tokio::test]
async fn a_type_s_rules_refuse_a_payload_before_it_is_queued() {
    let mut registry = Registry::new();
    registry.register_with(
        "test.order",
        tsp_queue::JobRules::new()
            .check(|n: &u32| {
                if *n > 0 {
                    Ok(())
                } else {
                    Err(tsp_queue::PayloadError {
                        field: "count".into(),
                        message: "must be positive".into(),
                    })
                }
            })
            .dedup_key(|n: &u32| format!("order:{n}")),
        |_ctx, _n: u32| async { Ok(()) },
    );
    assert_eq!(
        registry.prepare("test.order", "7").unwrap(),
        Some("order:7".to_string())
    );
    let e = registry.prepare("test.order", "0").unwrap_err().to_string();
    assert_eq!(e, "invalid payload.count: must be positive");
    let e = registry
        .prepare("test.order", r#""seven""#)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("invalid payload: invalid type: string"),
        "{e}"
    );
    // Built-ins decode their payloads too; a type this build does not know passes.
    assert!(registry.prepare("builtin.sleep", r#"{"ms": "x"}"#).is_err());
    assert_eq!(registry.prepare("elsewhere.only", "{}").unwrap(), None);
}
