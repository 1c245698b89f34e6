//! Job specs: read when stored by an earlier build, and a spec that cannot be read fails its own
//! job only, whichever transition meets it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tsp_queue::{Backoff, JobError, JobState, NewJob, Registry};

use crate::common::{self, Running, now_ms, setup, setup_clocked, worker};
use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specs_stored_by_an_earlier_build_are_read() {
    let (_hub, q, _cleanup) = setup(&[]).await;
    // Earlier builds wrote two more elements, run-at and the id again; a waiting job of theirs
    // is listed as its bare id.
    let base = q.base_key().to_string();
    let mut conn = q.store().conn().await.unwrap();
    let (id, created) = ("01KAQ0000000000000000000AB", now_ms() - 5_000);
    let spec = format!(
        r#"["builtin.noop",{{"n":7}},4,5,"fixed:250",60000,"",{created},{},"{id}"]"#,
        created + 1_000
    );
    store_waiting(&q, id, &spec, 4).await;

    let info = q.job(id).await.unwrap().unwrap();
    assert_eq!(
        (info.state.as_str(), info.priority, info.max_attempts),
        ("waiting", 4, 5)
    );
    assert_eq!((info.created_at, info.run_at), (created, created + 1_000));
    let got = q.fetch(10, "w1").await.unwrap();
    let [job] = got.jobs.as_slice() else {
        panic!("fetched {} jobs", got.jobs.len())
    };
    assert_eq!(
        (job.id.as_str(), job.job_type.as_str()),
        (id, "builtin.noop")
    );
    assert_eq!(job.payload, r#"{"n":7}"#);
    assert_eq!((job.attempts, job.max_attempts, job.priority), (1, 5, 4));
    assert_eq!(job.backoff, Backoff::Fixed(250));
    assert_eq!(job.timeout, Duration::from_millis(60_000));
    assert_eq!(
        (job.created_at, job.runnable_at),
        (created, created + 1_000)
    );
    q.finish(&completions(&got.jobs), false).await.unwrap();
    assert_eq!(q.job(id).await.unwrap().unwrap().state, "completed");

    // A spec written now leaves both out: the job's run-at is its creation time.
    let new = q.enqueue(NewJob::raw("builtin.noop", "{}")).await.unwrap();
    let stored: String = redis::cmd("HGET")
        .arg(format!("{base}data"))
        .arg(&new)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!stored.contains(&new), "{stored}");
    let info = q.job(&new).await.unwrap().unwrap();
    assert_eq!(info.run_at, info.created_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_spec_fails_its_own_job_only() {
    let (_hub, q, _cleanup) = setup(&["queue.max_attempts=2", "queue.backoff=50ms"]).await;
    let hooked = Arc::new(Mutex::new(Vec::<u32>::new()));
    let mut reg = Registry::new();
    reg.register("t", |_ctx, _n: u32| async { Ok(()) });
    reg.register("doomed", |_ctx, _n: u32| async {
        Err::<(), _>(JobError::abort("no"))
    });
    let h = hooked.clone();
    reg.on_dead("doomed", move |_id, n: u32| {
        let h = h.clone();
        async move {
            h.lock().unwrap().push(n);
            Ok::<(), tsp_queue::HookError>(())
        }
    });
    // A spec nobody can read (corrupted, or from a newer build) waits between readable jobs.
    let before = enqueue_numbered(&q, 3).await;
    let base = q.base_key().to_string();
    let mut conn = q.store().conn().await.unwrap();
    let bad_created = now_ms() - 60_000;
    let bad = ulid::Ulid::from_parts(u64::try_from(bad_created).unwrap(), 7).to_string();
    let bad = bad.as_str();
    store_waiting(&q, bad, r#"{"v":9,"type":"from.the.future"}"#, 0).await;
    let after = enqueue_numbered(&q, 3).await;
    q.enqueue(NewJob::new("doomed", &7u32).unwrap())
        .await
        .unwrap();

    let running = Running::start(worker(&q, reg, 8));
    common::settled(&q, Duration::from_secs(20)).await;
    let report = running.stop().await;
    for id in before.iter().chain(&after) {
        assert_eq!(q.job(id).await.unwrap().unwrap().state, "completed");
    }
    // Tried the queue's max_attempts times, then dead, each attempt's error kept.
    let dead: Option<f64> = redis::cmd("ZSCORE")
        .arg(format!("{base}dead"))
        .arg(bad)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(dead.is_some(), "{report:?}");
    let errors: String = redis::cmd("HGET")
        .arg(format!("{base}errors"))
        .arg(bad)
        .query_async(&mut conn)
        .await
        .unwrap();
    let errors: Vec<serde_json::Value> = serde_json::from_str(&errors).unwrap();
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert!(
            e["error"]
                .as_str()
                .unwrap()
                .starts_with("unreadable job spec: invalid type: map, expected"),
            "{e}"
        );
    }
    // Operators see it as such, in listings too, and the others' dead-letter hooks still run.
    let info = q.job(bad).await.unwrap().unwrap();
    assert_eq!(
        (info.job_type.as_str(), info.state.as_str(), info.attempts),
        (tsp_queue::UNREADABLE_TYPE, "dead", 2)
    );
    assert_eq!(info.created_at, bad_created, "from its id");
    assert!(info.last_error.unwrap().starts_with("unreadable job spec"));
    let dead = q.list(JobState::Dead, 10).await.unwrap();
    let mut types: Vec<&str> = dead.iter().map(|j| j.job_type.as_str()).collect();
    types.sort();
    assert_eq!(types, ["(unreadable spec)", "doomed"]);
    assert_eq!(*hooked.lock().unwrap(), vec![7]);
    let c = q.counts().await.unwrap();
    assert_eq!((c.completed, c.dead, c.dead_unhandled), (6, 2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_specs_of_due_delayed_jobs_end_dead_with_the_reason_and_lose_nothing() {
    let (_hub, q, _cleanup) = setup(&["queue.max_attempts=2", "queue.backoff=10ms"]).await;
    let mut ids = Vec::new();
    for spec in BAD_SPECS {
        let id = q
            .enqueue(NewJob::raw("t", "1").with_delay(Duration::from_millis(1)))
            .await
            .unwrap();
        corrupt_spec(&q, &id, spec).await;
        ids.push(id);
    }
    let good = q.enqueue(NewJob::raw("builtin.noop", "{}")).await.unwrap();
    // The fetch that promotes the due delayed jobs reads their specs: it must not fail half-way
    // (Redis keeps what a failed script wrote before it failed).
    let running = Running::start(worker(&q, Registry::new(), 4));
    common::settled(&q, Duration::from_secs(20)).await;
    running.stop().await;
    let c = q.counts().await.unwrap();
    assert_eq!(
        (c.completed, c.dead, c.waiting, c.delayed, c.active),
        (1, 3, 0, 0, 0),
        "{c:?}"
    );
    for id in &ids {
        let info = q.job(id).await.unwrap().unwrap();
        assert_eq!(info.state, "dead", "{id}");
        assert!(
            info.last_error
                .as_deref()
                .unwrap_or("")
                .contains("unreadable"),
            "{id}: {info:?}"
        );
    }
    assert_eq!(q.job(&good).await.unwrap().unwrap().state, "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_lease_with_unreadable_specs_dead_letters_them_with_the_reason() {
    // queue.lease = 2 s in the tests' config; the queue's clock moves when the test says.
    let (_hub, q, _cleanup, clock) = setup_clocked(&[]).await;
    let ids = enqueue_numbered(&q, 4).await;
    let fetched = q.fetch(10, "gone").await.unwrap();
    assert_eq!(fetched.jobs.len(), 4);
    for (id, spec) in ids.iter().zip(BAD_SPECS) {
        corrupt_spec(&q, id, spec).await;
    }
    // The holder never heartbeats: its lease lapses.
    clock.advance(Duration::from_millis(2_001));
    let (back, dead) = q.recover_stalled().await.unwrap();
    assert_eq!((back, dead), (1, 3), "the readable one goes back");
    let c = q.counts().await.unwrap();
    assert_eq!((c.waiting, c.dead, c.active), (1, 3, 0), "{c:?}");
    for id in &ids[..3] {
        let info = q.job(id).await.unwrap().unwrap();
        assert!(
            info.last_error
                .as_deref()
                .unwrap_or("")
                .contains("unreadable"),
            "{id}: {info:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_batch_with_unreadable_specs_keeps_every_job_in_line() {
    let (_hub, q, _cleanup) = setup(&["queue.max_attempts=1"]).await;
    let ids = enqueue_numbered(&q, 4).await;
    let fetched = q.fetch(10, "w1").await.unwrap();
    for (id, spec) in ids.iter().zip(BAD_SPECS) {
        corrupt_spec(&q, id, spec).await;
    }
    let held: Vec<(String, String)> = fetched
        .jobs
        .iter()
        .map(|j| (j.id.clone(), j.token.to_string()))
        .collect();
    assert_eq!(q.release(&held).await.unwrap(), 4);
    let c = q.counts().await.unwrap();
    assert_eq!((c.waiting, c.active), (4, 0), "nothing lost: {c:?}");
    // Then a worker runs the readable one and dead-letters the others, saying why.
    let mut reg = Registry::new();
    reg.register("t", |_ctx, _n: u32| async { Ok(()) });
    let running = Running::start(worker(&q, reg, 4));
    common::settled(&q, Duration::from_secs(20)).await;
    running.stop().await;
    let c = q.counts().await.unwrap();
    assert_eq!((c.completed, c.dead), (1, 3), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_keeps_its_origin_and_a_job_without_one_stores_none() {
    let (_hub, q, _cleanup) = setup(&[]).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut traced = NewJob::raw("builtin.noop", "{}").with_request_id("req-7");
    traced.origin.traceparent = Some(traceparent.into());
    let a = q.enqueue(traced).await.unwrap();
    let b = q.enqueue(NewJob::raw("builtin.noop", "{}")).await.unwrap();

    let origin = q.job(&a).await.unwrap().unwrap().origin;
    assert_eq!(origin.request_id.as_deref(), Some("req-7"));
    assert_eq!(origin.traceparent.as_deref(), Some(traceparent));
    assert!(q.job(&b).await.unwrap().unwrap().origin.is_unknown());
    // Untraced work costs Redis nothing more: its spec keeps its eight elements.
    let mut conn = q.store().conn().await.unwrap();
    let spec: String = redis::cmd("HGET")
        .arg(format!("{}data", q.base_key()))
        .arg(&b)
        .query_async(&mut conn)
        .await
        .unwrap();
    let elements: Vec<serde_json::Value> = serde_json::from_str(&spec).unwrap();
    assert_eq!(elements.len(), 8, "{spec}");

    let mut forged = NewJob::raw("builtin.noop", "{}");
    forged.origin.traceparent = Some("00-not-a-trace-01".into());
    let err = q.enqueue(forged).await.unwrap_err().to_string();
    assert!(err.contains("traceparent"), "{err}");
}
