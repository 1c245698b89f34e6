//! Queue semantics against the real Redis: order, delays, retries and dead letters, dedup,
//! timeouts, panics, bad payloads, a killed connection, and records in MongoDB and InfluxDB.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Running, drained, now_ms, setup, worker};
use tsp_queue::{Backoff, JobError, JobState, NewJob, Registry};

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
async fn a_handler_that_times_out_is_retried_then_dead() {
    let (_hub, q, _cleanup) = setup(&[]).await;
    let mut reg = Registry::new();
    reg.register("slow", |_ctx, _p: serde_json::Value| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_lose_no_job() {
    let (hub, q, _cleanup) = setup(&[]).await;
    let set = common::unique("kill");
    let n = 20_000;
    let jobs = vec![NewJob::raw("builtin.mark", format!(r#"{{"set":"{set}"}}"#)); n];
    q.enqueue_many(jobs).await.unwrap();
    let running = Running::start(worker(&q, Registry::new(), 64));
    // Kill the worker's connection three times while it runs (only ours: other tests share
    // this Redis). Its id is asked through the connection itself.
    let client = redis::Client::open(tsp_testkit::redis_url(hub.config())).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let store = hub.redis("cache").unwrap();
    let mut kills = 0;
    for k in [1u64, 3, 5] {
        // At a tenth, three tenths and half of the work: jobs are leased and running then.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let c = loop {
            assert!(std::time::Instant::now() < deadline, "no progress");
            // The connection is shared with the worker: the one killed before may still be
            // reconnecting.
            // Past the mark and with jobs leased at that moment (between two fetches a worker
            // may briefly hold none).
            match q.counts().await {
                Ok(c) if c.completed >= k * n as u64 / 10 && c.active > 0 => break c,
                _ => tokio::task::yield_now().await,
            }
        };
        assert!(c.completed < n as u64, "work left at the kill: {c:?}");
        if let Some(seeds) = std::env::var("TSP_TEST_REDIS_CLUSTER")
            .ok()
            .filter(|s| !s.is_empty())
        {
            kills += kill_own_cluster_clients(&seeds).await.min(1);
            continue;
        }
        let mut ours = store.conn().await.unwrap();
        let Ok(id) = redis::cmd("CLIENT")
            .arg("ID")
            .query_async::<i64>(&mut ours)
            .await
        else {
            continue;
        };
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query_async(&mut admin)
            .await
            .unwrap();
        kills += killed;
    }
    assert_eq!(kills, 3, "connections were killed");
    drained(&q, Duration::from_secs(60)).await;
    let report = running.stop().await;
    let c = q.counts().await.unwrap();
    assert_eq!(
        (c.completed, c.dead, c.active),
        (n as u64, 0, 0),
        "{report:?}"
    );
    let marks = common::marks(&hub, &set).await;
    assert_eq!(marks.len(), n, "every job ran");
    assert!(marks.values().all(|v| *v >= 1));
}

/// On a Redis Cluster, `CLIENT ID` cannot be asked through the worker's connections (it goes to
/// some node): kill, on every node, the clients whose address is one of this test process's
/// sockets. How many were killed.
async fn kill_own_cluster_clients(seeds: &str) -> i64 {
    let mine = tsp_testkit::own_tcp_ports();
    let mut killed = 0;
    for seed in seeds.split(',') {
        let client = redis::Client::open(format!("redis://{}/", seed.trim())).unwrap();
        let mut admin = client.get_multiplexed_async_connection().await.unwrap();
        let own_id: i64 = redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut admin)
            .await
            .unwrap();
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut admin)
            .await
            .unwrap();
        for line in list.lines() {
            let field = |k: &str| {
                line.split(' ')
                    .find_map(|kv| kv.strip_prefix(k))
                    .unwrap_or("")
                    .to_string()
            };
            let id: i64 = field("id=").parse().unwrap_or(0);
            let port: u16 = field("addr=")
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            if id != own_id && mine.contains(&port) {
                let n: i64 = redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("ID")
                    .arg(id)
                    .query_async(&mut admin)
                    .await
                    .unwrap_or(0);
                killed += n;
            }
        }
    }
    killed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_have_exactly_one_mongo_record_and_one_influx_point() {
    let db = common::unique("tsp_t_");
    let (hub, q, _cleanup) = setup(&[
        &format!("mongo.cache.database={db}"),
        &format!("influx.primary.database={db}"),
    ])
    .await;
    let influx = hub.influx("primary").unwrap();
    influx
        .query_v1(&db, &format!("CREATE DATABASE \"{db}\""))
        .await
        .unwrap();
    let mongo = hub.mongo("cache").unwrap().clone();
    tsp_queue::ensure_record_indexes(&mongo).await.unwrap();
    let (sink, task) =
        tsp_queue::RecordSink::start(Some(mongo.clone()), Some(influx.writer()), 500, 2_000);
    let good = vec![NewJob::raw("builtin.noop", "{}"); 1_200];
    let bad = vec![NewJob::raw("builtin.sleep", "[]"); 300];
    q.enqueue_many(good).await.unwrap();
    q.enqueue_many(bad).await.unwrap();
    let running = Running::start(worker(&q, Registry::new(), 64).with_records(sink));
    drained(&q, Duration::from_secs(60)).await;
    running.stop().await;
    assert_eq!(task.finish(Duration::from_secs(60)).await, 0);
    influx.writer().flush().await;

    let coll = mongo
        .database()
        .collection::<mongodb::bson::Document>("job_queue");
    let count = |f: mongodb::bson::Document| {
        let coll = coll.clone();
        async move { coll.count_documents(f).await.unwrap() }
    };
    assert_eq!(count(mongodb::bson::doc! {"queue": "jobs"}).await, 1_500);
    assert_eq!(
        count(mongodb::bson::doc! {"status": "completed", "jobType": "builtin.noop"}).await,
        1_200
    );
    assert_eq!(
        count(mongodb::bson::doc! {"status": "dead", "jobType": "builtin.sleep"}).await,
        300
    );
    let mut names = mongo
        .database()
        .collection::<mongodb::bson::Document>("job_queue")
        .list_index_names()
        .await
        .unwrap();
    names.sort();
    assert_eq!(
        names,
        [
            "_id_",
            "jobType_status",
            "status_priority_createdAt",
            "ttl_createdAt"
        ]
    );

    let body = influx
        .query_v1(
            &db,
            "SELECT count(duration_ms) FROM job_execution GROUP BY outcome",
        )
        .await
        .unwrap();
    let series = body
        .pointer("/results/0/series")
        .and_then(|s| s.as_array())
        .cloned()
        .unwrap_or_default();
    let by_outcome: std::collections::HashMap<String, i64> = series
        .iter()
        .map(|s| {
            (
                s.pointer("/tags/outcome")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string(),
                s.pointer("/values/0/1")
                    .and_then(|v| v.as_i64())
                    .unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(by_outcome.get("completed"), Some(&1_200), "{body}");
    assert_eq!(by_outcome.get("dead"), Some(&300), "{body}");
    let _ = influx
        .query_v1(&db, &format!("DROP DATABASE \"{db}\""))
        .await;
    let _ = mongo.database().drop().await;
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

/// After a restore rolled other stores back to a moment, the jobs completed since then run
/// again, once each; those that finished before stay completed with their results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_completed_since_a_moment_run_again_once_each() {
    let (hub, q, _cleanup) = setup(&[]).await;
    let set = common::unique("rerun");
    let mark = || NewJob::raw("builtin.mark", format!(r#"{{"set":"{set}"}}"#));
    let before = q.enqueue_many(vec![mark(); 5]).await.unwrap();
    let running = Running::start(worker(&q, Registry::new(), 4));
    drained(&q, Duration::from_secs(10)).await;
    // The moment: a millisecond after every earlier completion, reached before the next jobs
    // are even enqueued.
    let since = now_ms() + 1;
    while now_ms() < since {
        tokio::task::yield_now().await;
    }
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
async fn an_expired_lease_is_taken_back_and_its_late_outcomes_are_stale() {
    use tsp_queue::Finished;
    // queue.lease = 2 s in the tests' config.
    let (_hub, q, _cleanup) = setup(&[]).await;
    let ids = enqueue_numbered(&q, 3).await;
    let fetched = q.fetch(10, "w1").await.unwrap();
    assert_eq!(job_ids(&fetched.jobs), ids);
    assert!(
        fetched
            .jobs
            .iter()
            .all(|j| j.attempts == 1 && &*j.token == "w1")
    );
    assert_eq!(q.counts().await.unwrap().active, 3);
    let info = q.job(&ids[0]).await.unwrap().unwrap();
    assert_eq!((info.state.as_str(), info.attempts), ("active", 1));
    // A first attempt's start is stored by its holder's first heartbeat (or when it finishes).
    assert_eq!(info.started_at, None);

    // Within the lease nothing is taken back; the heartbeat keeps it.
    assert_eq!(q.recover_stalled().await.unwrap(), (0, 0));
    let held: Vec<(String, String, i64)> = fetched
        .jobs
        .iter()
        .map(|j| (j.id.clone(), j.token.to_string(), j.leased_at))
        .collect();
    assert!(q.extend(&held).await.unwrap().is_empty());
    let info = q.job(&ids[0]).await.unwrap().unwrap();
    assert_eq!((info.state.as_str(), info.attempts), ("active", 1));
    assert_eq!(info.started_at, Some(fetched.jobs[0].leased_at));

    // No heartbeat for a whole lease: the three go back, the attempt counted.
    let leased_at = now_ms();
    let mut recovered = (0, 0);
    while recovered == (0, 0) {
        assert!(now_ms() - leased_at < 5_000, "not recovered within 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
        recovered = q.recover_stalled().await.unwrap();
    }
    assert!(
        now_ms() - leased_at >= 1_900,
        "recovered before the lease ended"
    );
    assert_eq!(recovered, (3, 0));
    let c = q.counts().await.unwrap();
    assert_eq!((c.waiting, c.active), (3, 0));
    let info = q.job(&ids[0]).await.unwrap().unwrap();
    assert_eq!((info.state.as_str(), info.attempts), ("waiting", 1));
    assert!(
        info.errors[0].error.starts_with("lease expired"),
        "{info:?}"
    );

    // The old holder's outcome, heartbeat and next fetch are all refused.
    let late = q
        .finish(&completions(&fetched.jobs[..1]), false)
        .await
        .unwrap();
    assert_eq!(late, vec![Finished::Stale]);
    assert_eq!(q.extend(&held).await.unwrap().len(), 3);
    assert!(q.fetch(10, "w1").await.unwrap().evicted);

    // Another lease takes them, in their order, as second attempts; its outcomes count.
    let again = q.fetch(10, "w2").await.unwrap();
    assert_eq!(job_ids(&again.jobs), ids);
    assert!(again.jobs.iter().all(|j| j.attempts == 2));
    let acks = completions(&again.jobs);
    assert_eq!(
        q.finish(&acks, false).await.unwrap(),
        vec![Finished::Completed; 3]
    );
    // Twice: counted once.
    assert_eq!(
        q.finish(&acks, false).await.unwrap(),
        vec![Finished::Stale; 3]
    );
    let c = q.counts().await.unwrap();
    assert_eq!((c.completed, c.active, c.waiting), (3, 0, 0));
    assert_eq!(c.totals.get("completed"), Some(&3));
    assert_eq!(c.totals.get("stalled"), Some(&3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_jobs_go_back_to_the_front_without_counting_the_attempt() {
    let (_hub, q, _cleanup) = setup(&[]).await;
    let ids = enqueue_numbered(&q, 5).await;
    let first = q.fetch(2, "w1").await.unwrap();
    assert_eq!(first.jobs.len(), 2);
    assert_eq!(first.ready_left, 3);
    let held: Vec<(String, String)> = first
        .jobs
        .iter()
        .map(|j| (j.id.clone(), j.token.to_string()))
        .collect();
    assert_eq!(q.release(&held).await.unwrap(), 2);
    // Released twice: nothing more to return.
    assert_eq!(q.release(&held).await.unwrap(), 0);
    let all = q.fetch(10, "w2").await.unwrap();
    assert_eq!(job_ids(&all.jobs), ids);
    assert!(all.jobs.iter().all(|j| j.attempts == 1), "{:?}", all.jobs);
    let listed: Vec<String> = q
        .list(JobState::Active, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed.len(), 5);
}

/// Enqueues `n` jobs of type "t" with payloads 0..n; their ids in order.
async fn enqueue_numbered(q: &tsp_queue::Queue, n: u32) -> Vec<String> {
    q.enqueue_many((0..n).map(|i| NewJob::new("t", &i).unwrap()).collect())
        .await
        .unwrap()
}

/// Puts a job in line by hand, as a given spec: for specs this build would not write.
async fn store_waiting(q: &tsp_queue::Queue, id: &str, spec: &str, priority: u16) {
    let base = q.base_key();
    let mut conn = q.store().conn().await.unwrap();
    let _: () = redis::pipe()
        .cmd("HSET")
        .arg(format!("{base}data"))
        .arg(id)
        .arg(spec)
        .cmd("RPUSH")
        .arg(format!("{base}wait:{priority}"))
        .arg(id)
        .cmd("ZADD")
        .arg(format!("{base}prios"))
        .arg(1023 - priority)
        .arg(priority)
        .query_async(&mut conn)
        .await
        .unwrap();
}

fn job_ids(jobs: &[tsp_queue::LeasedJob]) -> Vec<String> {
    jobs.iter().map(|j| j.id.clone()).collect()
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

/// A fetched batch runs in tasks of several jobs each: a job that waits must not hold up the
/// others of its task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_job_does_not_hold_up_the_jobs_fetched_with_it() {
    let (_hub, q, _cleanup) = setup(&[]).await;
    let release = Arc::new(tokio::sync::Notify::new());
    let mut reg = Registry::new();
    let r = release.clone();
    reg.register("slow", move |_ctx, _p: serde_json::Value| {
        let r = r.clone();
        async move {
            r.notified().await;
            Ok(())
        }
    });
    reg.register("fast", |_ctx, _p: serde_json::Value| async { Ok(()) });
    q.pause().await.unwrap();
    let slow = q.enqueue(NewJob::raw("slow", "{}")).await.unwrap();
    for _ in 0..15 {
        q.enqueue(NewJob::raw("fast", "{}")).await.unwrap();
    }
    // 16 jobs, one fetch, one task: the slow job first in it.
    let running = Running::start(worker(&q, reg, 32));
    q.resume().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let c = q.counts().await.unwrap();
        if c.completed == 15 {
            assert_eq!(c.active, 1, "{c:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the fast jobs did not complete while the slow one ran: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(q.job(&slow).await.unwrap().unwrap().state, "active");
    release.notify_one();
    drained(&q, Duration::from_secs(10)).await;
    let report = running.stop().await;
    assert_eq!(report.completed, 16);
}

/// The ids `list` gives for completed jobs (oldest first), up to 10.
async fn completed_ids(q: &tsp_queue::Queue) -> Vec<String> {
    q.list(JobState::Completed, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect()
}

/// Plain completions (no result) of these jobs, for `Queue::finish`.
fn completions(jobs: &[tsp_queue::LeasedJob]) -> Vec<(&tsp_queue::LeasedJob, tsp_queue::Outcome)> {
    jobs.iter()
        .map(|j| {
            (
                j,
                tsp_queue::Outcome::Completed {
                    result: "null".into(),
                },
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_acknowledgement_completes_the_jobs_still_held_and_refuses_the_rest() {
    use tsp_queue::Finished;
    let (_hub, q, _cleanup) = setup(&[]).await;
    let ids = enqueue_numbered(&q, 4).await;
    let got = q.fetch(10, "w1").await.unwrap();
    assert_eq!(job_ids(&got.jobs), ids);
    // Jobs 0 and 1 complete; then all four are acknowledged in one call: 0 and 1 a second time.
    let first = q.finish(&completions(&got.jobs[..2]), false).await.unwrap();
    assert_eq!(first, vec![Finished::Completed; 2]);
    let all = q.finish(&completions(&got.jobs), false).await.unwrap();
    assert_eq!(
        all,
        vec![
            Finished::Stale,
            Finished::Stale,
            Finished::Completed,
            Finished::Completed
        ]
    );
    let c = q.counts().await.unwrap();
    assert_eq!((c.completed, c.active), (4, 0));
    assert_eq!(c.totals.get("completed"), Some(&4));
    for (id, job) in ids.iter().zip(&got.jobs) {
        let info = q.job(id).await.unwrap().unwrap();
        assert_eq!((info.state.as_str(), info.attempts), ("completed", 1));
        assert_eq!(info.started_at, Some(job.leased_at));
        assert!(info.finished_at.unwrap() >= job.leased_at, "{info:?}");
    }
    let listed = completed_ids(&q).await;
    assert_eq!(listed, ids, "completion order");
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

    // By age: jobs completed more than 300 ms before a later completion are removed by it.
    let mut settings = hub.config().queue.clone();
    settings.keep_completed_age = Duration::from_millis(300);
    let aged = tsp_queue::Queue::new(q.store().clone(), "aged", &settings).unwrap();
    let old = enqueue_numbered(&aged, 3).await;
    let got = aged.fetch(3, "w1").await.unwrap();
    let old_done = now_ms();
    aged.finish(&completions(&got.jobs), false).await.unwrap();
    let young = enqueue_numbered(&aged, 2).await;
    let got = aged.fetch(2, "w1").await.unwrap();
    aged.finish(&completions(&got.jobs[..1]), false)
        .await
        .unwrap();
    let done_at = now_ms();
    // Within 300 ms (checked, not assumed) of the first completions, all four are kept.
    if now_ms() - old_done < 300 {
        assert_eq!(aged.counts().await.unwrap().completed, 4);
    }
    while now_ms() - done_at <= 400 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
async fn jobs_leased_by_a_fetch_whose_answer_was_lost_are_taken_back() {
    let (_hub, q, _cleanup) = setup(&[]).await;
    let ids = enqueue_numbered(&q, 5).await;
    // The worker got the answer for the first two only (say the connection dropped while the
    // second fetch's answer was on its way).
    let first = q.fetch(2, "w1").await.unwrap();
    let lost = q.fetch(3, "w1").await.unwrap();
    assert_eq!(lost.jobs.len(), 3);
    let known = job_ids(&first.jobs);
    let returned = q
        .release_unknown("w1", |id| known.iter().any(|k| k == id))
        .await
        .unwrap();
    assert_eq!(returned, 3);
    let c = q.counts().await.unwrap();
    assert_eq!((c.active, c.waiting), (2, 3));
    // Back at the front, in order, the attempt not counted.
    let again = q.fetch(10, "w2").await.unwrap();
    assert_eq!(job_ids(&again.jobs), ids[2..]);
    assert!(again.jobs.iter().all(|j| j.attempts == 1));
    // The known ones are still held by w1 and complete normally.
    q.finish(&completions(&first.jobs), false).await.unwrap();
    assert_eq!(q.release_unknown("w1", |_| false).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_takes_back_what_a_failed_fetch_leased() {
    let (_hub, q, _cleanup) = setup(&[]).await;
    let ids = enqueue_numbered(&q, 20).await;
    // `workers` of the wrong type makes every fetch fail after it has leased its jobs (scripts
    // are not rolled back): the worker never sees them, as when an answer is lost.
    let base = q.base_key().to_string();
    let mut conn = q.store().conn().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{base}workers"))
        .arg("not a sorted set")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut reg = Registry::new();
    reg.register("t", |_ctx, _n: u32| async { Ok(()) });
    let running = Running::start(worker(&q, reg, 8));
    // A release writes the returned jobs' lease records: wait for the first one.
    let started = std::time::Instant::now();
    loop {
        let n: u64 = redis::cmd("HLEN")
            .arg(format!("{base}lease"))
            .query_async(&mut conn)
            .await
            .unwrap();
        if n > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nothing was taken back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _: () = redis::cmd("DEL")
        .arg(format!("{base}workers"))
        .query_async(&mut conn)
        .await
        .unwrap();
    drained(&q, Duration::from_secs(20)).await;
    running.stop().await;
    for id in &ids {
        let info = q.job(id).await.unwrap().unwrap();
        assert_eq!((info.state.as_str(), info.attempts), ("completed", 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_unwritten_when_the_grace_period_ends_are_counted_one_by_one() {
    // MongoDB does not answer: nothing handed over can be written, and finish says how much.
    let port = tsp_testkit::closed_port();
    let hub = tsp_hub::Hub::connect(&common::config(&[&format!("mongo.cache.port={port}")]))
        .await
        .unwrap();
    let mongo = hub.mongo("cache").unwrap().clone();
    let (sink, task) = tsp_queue::RecordSink::start(Some(mongo), None, 500, 100);
    let record = |i: usize| tsp_queue::JobRecord {
        id: format!("r-{i}"),
        queue: "jobs".into(),
        job_type: "builtin.noop".into(),
        payload: "{}".into(),
        status: "completed",
        priority: 0,
        attempts: 1,
        result: None,
        error: None,
        created_at: 1,
        started_at: 2,
        finished_at: 3,
        run_ms: 1.0,
        wait_ms: 1.0,
    };
    let records: Vec<_> = (0..7).map(record).collect();
    sink.send(&records).await;
    assert_eq!(task.finish(Duration::from_millis(300)).await, 7);
    hub.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_jobs_run_again_replace_the_older_outcome_and_the_rest_are_inserted() {
    let db = common::unique("tsp_t_");
    let (hub, _q, _cleanup) = setup(&[&format!("mongo.cache.database={db}")]).await;
    let mongo = hub.mongo("cache").unwrap().clone();
    tsp_queue::ensure_record_indexes(&mongo).await.unwrap();
    // Created now: the records' TTL index would remove a record from 1970 at its next pass.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let record = |i: usize, status: &'static str| tsp_queue::JobRecord {
        id: format!("r-{i}"),
        queue: "jobs".into(),
        job_type: "builtin.noop".into(),
        payload: "{}".into(),
        status,
        priority: 0,
        attempts: 1,
        result: None,
        error: None,
        created_at: now,
        started_at: now,
        finished_at: now,
        run_ms: 1.0,
        wait_ms: 1.0,
    };
    // The first outcomes of jobs 0, 2, 4, 6 and 8; then all ten jobs end, in one batch.
    for (statuses, expected) in [
        ((0..10).step_by(2).collect::<Vec<_>>(), "dead"),
        ((0..10).collect(), "completed"),
    ] {
        let (sink, task) = tsp_queue::RecordSink::start(Some(mongo.clone()), None, 500, 100);
        let records: Vec<_> = statuses.into_iter().map(|i| record(i, expected)).collect();
        sink.send(&records).await;
        drop(sink);
        assert_eq!(task.finish(Duration::from_secs(30)).await, 0);
    }
    let coll = mongo
        .database()
        .collection::<mongodb::bson::Document>("job_queue");
    assert_eq!(
        coll.count_documents(mongodb::bson::doc! {}).await.unwrap(),
        10
    );
    assert_eq!(
        coll.count_documents(mongodb::bson::doc! {"status": "completed"})
            .await
            .unwrap(),
        10
    );
    hub.shutdown(Duration::from_secs(1)).await;
}

/// Overwrites the stored spec of job `id` (what a corrupted store or a bad hand edit leaves).
async fn corrupt_spec(q: &tsp_queue::Queue, id: &str, spec: &[u8]) {
    let mut conn = q.store().conn().await.unwrap();
    let _: () = redis::cmd("HSET")
        .arg(format!("{}data", q.base_key()))
        .arg(id)
        .arg(spec)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// Specs that are not JSON, cut short, or of the wrong shape.
const BAD_SPECS: [&[u8]; 3] = [
    b"\xff\x00 not json at all \x9c",
    br#"["t","{}",0,3"#,
    br#"["t"]"#,
];

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
    // queue.lease = 2 s in the tests' config.
    let (_hub, q, _cleanup) = setup(&[]).await;
    let ids = enqueue_numbered(&q, 4).await;
    let fetched = q.fetch(10, "gone").await.unwrap();
    assert_eq!(fetched.jobs.len(), 4);
    for (id, spec) in ids.iter().zip(BAD_SPECS) {
        corrupt_spec(&q, id, spec).await;
    }
    // The holder never heartbeats: its lease lapses (time passing is the point here).
    tokio::time::sleep(Duration::from_millis(2_100)).await;
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
