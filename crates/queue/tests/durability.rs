//! The durability promise, drilled: a Redis with its append-only file on is killed with SIGKILL
//! in the middle of a bulk enqueue and in the middle of processing, then restarted from its
//! AOF. Every enqueue that was acknowledged is still there, and every completion that was
//! acknowledged stays completed; jobs in flight at the kill run again (at least once), and the
//! drill counts them. With `appendfsync everysec` and `always` (docs/queue.md#durability). And
//! the queue's reads answer on their first call after a restart (docs/queue.md#reads).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Running, setup, worker};
use tsp_hub::Hub;
use tsp_queue::{NewJob, Queue, Registry};
use tsp_testkit::ScratchRedis;

fn aof_redis(fsync: &str) -> ScratchRedis {
    let r =
        ScratchRedis::start_with(&["--save", "", "--appendonly", "yes", "--appendfsync", fsync]);
    r.wait_listening();
    r
}

async fn on(redis: &ScratchRedis) -> (Hub, Queue) {
    let port = format!("redis.cache.port={}", redis.port);
    let (hub, q, cleanup) = setup(&[
        "redis.cache.host=127.0.0.1",
        &port,
        "redis.cache.command_timeout=2s",
        "queue.records.mongo=false",
        "queue.records.influx=false",
    ])
    .await;
    // The scratch server goes away with the test: nothing to clean in the shared Redis.
    std::mem::forget(cleanup);
    (hub, q)
}

/// Asks until the restarted server answers (bounded): the first command may meet the connection
/// the kill broke, or the server still loading its AOF. What is asserted is the data, not how
/// soon the client reconnects (`killed_connections_lose_no_job` is about that).
async fn after_restart<T, F, Fut>(ask: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    tsp_testkit::eventually("an answer after the restart", Duration::from_secs(30), ask).await
}

/// Every job id stored in the queue.
async fn stored(q: &Queue) -> HashSet<String> {
    after_restart(|| async {
        let mut conn = q.store().conn().await.map_err(|e| e.to_string())?;
        redis::cmd("HKEYS")
            .arg(format!("{}data", q.base_key()))
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())
    })
    .await
}

async fn kill_during_enqueue(fsync: &str) {
    let mut redis = aof_redis(fsync);
    let (_hub, q) = on(&redis).await;
    // A producer enqueues batches as fast as they are acknowledged; the test kills Redis once
    // 20 000 are in, while the producer is mid-call.
    let producer = {
        let q = q.clone();
        tokio::spawn(async move {
            let mut acked: Vec<String> = Vec::new();
            let mut n = 0u32;
            loop {
                let batch: Vec<NewJob> = (0..500)
                    .map(|_| {
                        n += 1;
                        NewJob::new("builtin.noop", &n).unwrap()
                    })
                    .collect();
                match q.enqueue_many(batch).await {
                    Ok(ids) => acked.extend(ids),
                    Err(_) => return acked,
                }
            }
        })
    };
    tsp_testkit::eventually("20 000 jobs waiting", Duration::from_secs(30), || async {
        match q.counts().await.map(|c| c.waiting) {
            Ok(n) if n >= 20_000 => Ok(()),
            seen => Err(seen.map_err(|e| e.to_string())),
        }
    })
    .await;
    redis.kill();
    let acked = producer.await.unwrap();
    redis.restart();
    let after = stored(&q).await;
    let lost: Vec<&String> = acked.iter().filter(|id| !after.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{fsync}: {} of {} acknowledged enqueues lost",
        lost.len(),
        acked.len()
    );
    assert!(acked.len() >= 20_000);
    let audit = q.audit(false).await.unwrap();
    assert!(audit.clean(), "{fsync}: {audit:?}");
}

async fn kill_during_processing(fsync: &str) {
    let mut redis = aof_redis(fsync);
    let (hub, q) = on(&redis).await;
    let set = format!("d{fsync}");
    let jobs = vec![NewJob::raw("builtin.mark", format!(r#"{{"set":"{set}","ms":2}}"#)); 20_000];
    let ids = q.enqueue_many(jobs).await.unwrap();
    let running = Running::start(worker(&q, Registry::new(), 256));
    // Kill once a good share is done, with the worker mid-stride.
    let what = "5 000 jobs completed";
    let completed_before = tsp_testkit::eventually(what, Duration::from_secs(60), || async {
        let c = q.counts().await.unwrap();
        if c.completed >= 5_000 {
            Ok(c.completed)
        } else {
            Err(c)
        }
    })
    .await;
    redis.kill();
    redis.restart();
    // Completions acknowledged before the kill are still completed after it.
    let c = after_restart(|| async { q.counts().await.map_err(|e| e.to_string()) }).await;
    assert!(
        c.completed >= completed_before,
        "{fsync}: {} completions seen before the kill, {} after the restart",
        completed_before,
        c.completed
    );
    // The same worker carries on against the restarted server: every job completes.
    common::settled(&q, Duration::from_secs(120)).await;
    running.stop().await;
    let c = q.counts().await.unwrap();
    assert_eq!(
        (c.completed, c.dead),
        (ids.len() as u64, 0),
        "{fsync}: {c:?}"
    );
    let marks = common::marks(&hub, &set).await;
    assert_eq!(marks.len(), ids.len(), "{fsync}: every job ran");
    let again = marks.values().filter(|n| **n > 1).count();
    // At least once: only jobs in flight at the kill may have run twice.
    assert!(again <= 256 * 2, "{fsync}: {again} jobs ran more than once");
    eprintln!(
        "{fsync}: {again} of {} jobs ran twice (in flight at the kill)",
        ids.len()
    );
    assert!(q.audit(false).await.unwrap().clean());
}

/// Restarts `redis` and waits until it answers a read (bounded; while it loads its AOF it
/// answers `LOADING`), asking on a connection of its own: the queue's is left as the restart
/// broke it.
async fn restart_loaded(redis: &mut ScratchRedis) {
    redis.restart();
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", redis.port)).unwrap();
    after_restart(|| async {
        let mut c = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        redis::cmd("DBSIZE")
            .query_async::<u64>(&mut c)
            .await
            .map_err(|e| e.to_string())
    })
    .await;
}

/// An operator's first look after Redis restarts: the shared connection the restart broke is
/// replaced, and the read is asked again once, so it answers rather than failing
/// (docs/queue.md#reads). Counts, one job, a page and the schedules, each after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_answer_on_the_first_try_after_a_restart() {
    let mut redis = aof_redis("always");
    let (_hub, q) = on(&redis).await;
    let id = q
        .enqueue(NewJob::new("builtin.noop", &1u32).unwrap())
        .await
        .unwrap();
    assert_eq!(q.counts().await.unwrap().waiting, 1);
    restart_loaded(&mut redis).await;
    // No retry here: the queue's own is what is tested.
    let c = q.counts().await.unwrap();
    assert_eq!((c.waiting, c.active), (1, 0), "the AOF kept the job");
    restart_loaded(&mut redis).await;
    let job = q.job(&id).await.unwrap().unwrap();
    assert_eq!(job.state, "waiting");
    restart_loaded(&mut redis).await;
    let ids = q
        .page_ids(
            tsp_queue::JobState::Waiting,
            0,
            10,
            tsp_queue::Order::Oldest,
        )
        .await;
    assert_eq!(ids.unwrap(), vec![id]);
    q.put_schedule("nightly", "{}", Some(1)).await.unwrap();
    restart_loaded(&mut redis).await;
    let schedules = q.schedules().await.unwrap();
    assert_eq!(schedules.len(), 1);
    assert_eq!(
        (schedules[0].name.as_str(), schedules[0].next),
        ("nightly", Some(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_enqueue_with_everysec_loses_no_acknowledged_enqueue() {
    kill_during_enqueue("everysec").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_enqueue_with_always_loses_no_acknowledged_enqueue() {
    kill_during_enqueue("always").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_processing_with_everysec_loses_no_acknowledged_completion() {
    kill_during_processing("everysec").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_processing_with_always_loses_no_acknowledged_completion() {
    kill_during_processing("always").await;
}

async fn replication_up(replica: &ScratchRedis) {
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", replica.port)).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    tsp_testkit::eventually("the replica synced", Duration::from_secs(20), || {
        let mut conn = conn.clone();
        async move {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut conn)
                .await
                .unwrap();
            if info.contains("master_link_status:up") {
                Ok(())
            } else {
                Err(info)
            }
        }
    })
    .await
}

/// `queue.durability = wait`: enqueues and acknowledgements wait for the replica, which then
/// holds every job and every completion; with the replica gone, an enqueue fails within the
/// timeout saying so (the primary has the jobs: a retry with a dedup key finds them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_durability_wait_writes_are_on_the_replica_before_they_are_acknowledged() {
    let primary = aof_redis("everysec");
    let port = primary.port.to_string();
    let mut replica = ScratchRedis::start_with(&["--save", "", "--replicaof", "127.0.0.1", &port]);
    replica.wait_listening();
    replication_up(&replica).await;
    let at = format!("redis.cache.port={}", primary.port);
    let (_hub, q, cleanup) = setup(&[
        "redis.cache.host=127.0.0.1",
        &at,
        "queue.records.mongo=false",
        "queue.records.influx=false",
        "queue.durability=wait",
        "queue.durability_timeout=500ms",
    ])
    .await;
    std::mem::forget(cleanup);
    let ids = q
        .enqueue_many(
            (0..2_000u32)
                .map(|n| NewJob::new("builtin.noop", &n).unwrap())
                .collect(),
        )
        .await
        .unwrap();
    let running = Running::start(worker(&q, Registry::new(), 64));
    common::settled(&q, Duration::from_secs(60)).await;
    running.stop().await;
    // The replica has what was acknowledged: read there directly.
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", replica.port)).unwrap();
    let mut on_replica = client.get_multiplexed_async_connection().await.unwrap();
    let done: u64 = redis::cmd("LLEN")
        .arg(format!("{}done", q.base_key()))
        .query_async(&mut on_replica)
        .await
        .unwrap();
    assert_eq!(
        done,
        ids.len() as u64,
        "every acknowledged completion is on the replica"
    );
    // Without the replica, an enqueue is not acknowledged as durable.
    replica.kill();
    let started = std::time::Instant::now();
    let e = q
        .enqueue(
            NewJob::new("builtin.noop", &1u32)
                .unwrap()
                .with_dedup_key("once"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            tsp_queue::QueueError::NotReplicated {
                confirmed: 0,
                wanted: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the timeout"
    );
    // The primary has it: the same dedup key finds the same job rather than a second one.
    let stored_before = stored(&q).await.len();
    let _ = q
        .enqueue(
            NewJob::new("builtin.noop", &1u32)
                .unwrap()
                .with_dedup_key("once"),
        )
        .await;
    assert_eq!(stored(&q).await.len(), stored_before);
}
