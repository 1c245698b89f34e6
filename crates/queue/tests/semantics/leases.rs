//! Leases: what a worker holds, heartbeats, expiry and recovery, releases, acknowledgements, and
//! the fetch whose answer is lost or whose connection is killed.

use std::sync::Arc;
use std::time::Duration;

use tsp_queue::{JobState, NewJob, Registry};

use crate::common::{self, Running, drained, setup, setup_clocked, worker};
use crate::helpers::*;

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
async fn an_expired_lease_is_taken_back_and_its_late_outcomes_are_stale() {
    use tsp_queue::Finished;
    // queue.lease = 2 s in the tests' config; the queue's clock moves when the test says.
    let (_hub, q, _cleanup, clock) = setup_clocked(&[]).await;
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

    // No heartbeat for a whole lease: until its last millisecond nothing goes back; after
    // it, the three do, the attempt counted.
    clock.advance(Duration::from_millis(1_999));
    assert_eq!(q.recover_stalled().await.unwrap(), (0, 0));
    clock.advance(Duration::from_millis(2));
    assert_eq!(q.recover_stalled().await.unwrap(), (3, 0));
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
    let what = "the fast jobs complete while the slow one runs";
    let c = tsp_testkit::eventually(what, Duration::from_secs(10), || async {
        let c = q.counts().await.unwrap();
        if c.completed == 15 { Ok(c) } else { Err(c) }
    })
    .await;
    assert_eq!(c.active, 1, "{c:?}");
    assert_eq!(q.job(&slow).await.unwrap().unwrap().state, "active");
    release.notify_one();
    drained(&q, Duration::from_secs(10)).await;
    let report = running.stop().await;
    assert_eq!(report.completed, 16);
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
    let lease = format!("{base}lease");
    tsp_testkit::eventually("a job taken back", Duration::from_secs(10), || {
        let mut conn = conn.clone();
        let lease = lease.clone();
        async move {
            let n: u64 = redis::cmd("HLEN")
                .arg(&lease)
                .query_async(&mut conn)
                .await
                .unwrap();
            if n > 0 { Ok(()) } else { Err(n) }
        }
    })
    .await;
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
