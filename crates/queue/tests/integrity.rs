//! The queue's accounting under damage: `Queue::audit` finds orphans, ghosts, duplicates and
//! stray leases and mends them so every job runs once; and a Redis that runs out of memory
//! (`maxmemory`, `noeviction`) in the middle of a run loses no acknowledged job.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::{Running, setup, worker};
use tsp_queue::{NewJob, Queue, Registry};

async fn redis_cmd(q: &Queue, args: &[&str]) -> redis::Value {
    let mut conn = q.store().conn().await.unwrap();
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(&mut conn).await.unwrap()
}

fn noop(n: u32) -> NewJob {
    NewJob::new("builtin.noop", &n).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_finds_each_kind_of_damage_and_the_repair_runs_every_job_once() {
    let (_hub, q, _cleanup) = setup(&[]).await;
    let base = q.base_key().to_string();
    let ids = q.enqueue_many((0..8).map(noop).collect()).await.unwrap();
    let clean = q.audit(false).await.unwrap();
    assert!(clean.clean(), "{clean:?}");
    assert_eq!((clean.jobs, clean.states.get("waiting")), (8, Some(&8)));

    // Orphan: a job out of its line. Ghost: an id in line with nothing stored. Duplicate: a
    // waiting job also delayed. Stray lease: jobs held under a lease nobody will ever expire.
    redis_cmd(&q, &["LREM", &format!("{base}wait:0"), "0", &ids[0]]).await;
    let held = q.fetch(2, "w-stray").await.unwrap().jobs;
    assert_eq!(held.len(), 2);
    redis_cmd(&q, &["ZREM", &format!("{base}workers"), "w-stray"]).await;
    redis_cmd(
        &q,
        &[
            "RPUSH",
            &format!("{base}wait:0"),
            "01GHOSTGHOSTGHOSTGHOSTGHOS",
        ],
    )
    .await;
    // Due in a second: the repair keeps it delayed (the further state), and it still runs.
    let due = (common::now_ms() + 1_000).to_string();
    redis_cmd(&q, &["ZADD", &format!("{base}delayed"), &due, &ids[3]]).await;

    let found = q.audit(false).await.unwrap();
    assert!(!found.repaired);
    let kind_of = |id: &str| {
        found
            .findings
            .iter()
            .find(|f| f.id == id)
            .map(|f| (f.kind.clone(), f.states.clone()))
    };
    assert_eq!(kind_of(&ids[0]), Some(("orphan".into(), vec![])));
    assert_eq!(
        kind_of("01GHOSTGHOSTGHOSTGHOSTGHOS"),
        Some(("ghost".into(), vec!["waiting".into()]))
    );
    assert_eq!(
        kind_of(&ids[3]),
        Some(("duplicate".into(), vec!["delayed".into(), "waiting".into()]))
    );
    assert_eq!(found.findings.len(), 3, "{found:?}");
    assert_eq!(found.stray_leases, vec!["w-stray".to_string()]);
    // A check changes nothing.
    assert_eq!(q.audit(false).await.unwrap().findings.len(), 3);

    let mended = q.audit(true).await.unwrap();
    assert!(mended.repaired);
    assert_eq!(mended.findings.len(), 3);
    // The stray lease now has a lapsed deadline: the recoverer takes its jobs back.
    let (back, dead) = q.recover_stalled().await.unwrap();
    assert_eq!((back, dead), (2, 0));
    let after = q.audit(false).await.unwrap();
    assert!(after.clean(), "{after:?}");

    // Every stored job runs exactly once; the ghost is gone.
    let running = Running::start(worker(&q, Registry::new(), 4));
    common::settled(&q, Duration::from_secs(20)).await;
    running.stop().await;
    let c = q.counts().await.unwrap();
    assert_eq!(
        (c.completed, c.dead, c.waiting, c.delayed),
        (8, 0, 0, 0),
        "{c:?}"
    );
    assert_eq!(c.totals.get("completed"), Some(&8));
    assert!(q.audit(false).await.unwrap().clean());
}

async fn used_memory(q: &Queue) -> u64 {
    let info = redis_cmd(q, &["INFO", "memory"]).await;
    let text = match info {
        redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        redis::Value::VerbatimString { text, .. } => text,
        other => panic!("INFO answered {other:?}"),
    };
    text.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// A private Redis with a small `maxmemory` and `noeviction` fills up while producers enqueue
/// and a worker works: commands fail with OOM, then memory is raised and the worker drains.
/// Every enqueue that was acknowledged ends completed exactly once, and the accounting is clean
/// (no job left in no state by a script that stopped half-way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_out_of_memory_mid_run_loses_no_acknowledged_job() {
    let scratch = tsp_testkit::ScratchRedis::start();
    scratch.wait_listening();
    let port = format!("redis.cache.port={}", scratch.port);
    let (_hub, q, _cleanup) = setup(&[
        "redis.cache.host=127.0.0.1",
        &port,
        "queue.records.mongo=false",
        "queue.records.influx=false",
        "queue.lease=5s",
    ])
    .await;
    redis_cmd(&q, &["CONFIG", "SET", "maxmemory-policy", "noeviction"]).await;
    let limit = used_memory(&q).await + 3 * 1024 * 1024;
    redis_cmd(&q, &["CONFIG", "SET", "maxmemory", &limit.to_string()]).await;

    // Jobs that take a few ms each: a backlog stands while memory is full, so the worker's
    // fetches and acknowledgements run against the limit too.
    let mut registry = Registry::new();
    registry.register("padded", |_ctx, _p: serde_json::Value| async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok(())
    });
    let running = Running::start(worker(&q, registry, 16));
    let padding = "x".repeat(400);
    let (mut acked, mut refused) = (Vec::new(), 0u32);
    let mut n = 0u32;
    // Produce until memory runs out, then go on for two seconds against the full Redis while
    // the worker fetches and acknowledges (each of its scripts may hit the limit).
    let mut full_since: Option<std::time::Instant> = None;
    while full_since.is_none_or(|t| t.elapsed() < Duration::from_secs(2)) && acked.len() < 200_000 {
        let batch: Vec<NewJob> = (0..200)
            .map(|_| {
                n += 1;
                NewJob::new("padded", &serde_json::json!({"n": n, "pad": padding})).unwrap()
            })
            .collect();
        match q.enqueue_many(batch).await {
            Ok(ids) => acked.extend(ids),
            Err(e) => {
                assert!(e.to_string().contains("OOM"), "{e}");
                refused += 1;
                full_since.get_or_insert_with(std::time::Instant::now);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    assert!(
        refused > 0,
        "memory never ran out ({} jobs enqueued)",
        acked.len()
    );
    // The worker kept working against a full Redis meanwhile; now there is room again.
    redis_cmd(&q, &["CONFIG", "SET", "maxmemory", "0"]).await;
    common::settled(&q, Duration::from_secs(120)).await;
    let report = running.stop().await;
    let c = q.counts().await.unwrap();
    assert_eq!(
        (c.completed, c.dead, c.waiting, c.delayed, c.active),
        (acked.len() as u64, 0, 0, 0, 0),
        "{c:?}, worker {report:?}"
    );
    assert_eq!(c.totals.get("completed"), Some(&(acked.len() as u64)));
    for id in acked.iter().step_by(97) {
        assert_eq!(q.job(id).await.unwrap().unwrap().state, "completed", "{id}");
    }
    let audit = q.audit(false).await.unwrap();
    assert!(audit.clean(), "{audit:?}");
}

/// Outcomes that cannot be stored (here the first three acknowledgement calls fail, by
/// `queue.fault.ack_failures`) are given up after `queue.ack_attempts` tries instead of being
/// retried forever under a lease kept alive: the worker says it is unhealthy and why, takes a
/// new lease id, the old one lapses, and the given-up jobs run again and complete; once an
/// acknowledgement goes through, the worker is healthy again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_that_cannot_be_stored_are_given_up_and_their_jobs_run_again() {
    let (hub, q, _cleanup) = setup(&["queue.ack_attempts=3", "queue.fault.ack_failures=3"]).await;
    let set = tsp_testkit::unique("ack");
    let jobs = vec![NewJob::raw("builtin.mark", format!(r#"{{"set":"{set}"}}"#)); 20];
    let ids = q.enqueue_many(jobs).await.unwrap();
    let w = worker(&q, Registry::new(), 4);
    let health = w.health();
    assert!(health.healthy());
    let running = Running::start(w);
    // The first batch's three tries fail: it is given up and the worker says so (unhealthy
    // until the next acknowledgement goes through, which may be at once: the count stays).
    tsp_testkit::until("a batch given up", Duration::from_secs(20), || async {
        health.given_up() > 0
    })
    .await;
    let why = health.last_failure().unwrap();
    assert!(
        why.contains("not stored after 3 tries") && why.contains("on purpose"),
        "{why}"
    );
    // Its jobs' lease lapses (2 s in the tests' config) and they run again.
    common::settled(&q, Duration::from_secs(30)).await;
    let report = running.stop().await;
    assert!(report.abandoned > 0, "{report:?}");
    let c = q.counts().await.unwrap();
    assert_eq!((c.completed, c.dead), (ids.len() as u64, 0), "{c:?}");
    let marks = common::marks(&hub, &set).await;
    assert_eq!(marks.len(), ids.len());
    let twice = marks.values().filter(|n| **n == 2).count() as u64;
    assert_eq!(
        twice, report.abandoned,
        "the given-up jobs, and only they, ran twice"
    );
    assert!(marks.values().all(|n| *n <= 2), "{marks:?}");
    assert!(
        health.healthy(),
        "healthy again once acknowledgements went through"
    );
}
