//! The consistency drill: 1 000 trips worked by `tsp-job worker` processes that fail at random
//! after every step (errors in two workers, process aborts in a third, restarted each time it
//! dies), one of them killed with SIGKILL mid-run; once the queue has settled, the invariant is
//! checked with SQL and MongoDB queries: every completed job's trip has exactly one completed
//! trips row, one earn transaction and one trajectory; every dead job's trip has none; and each
//! user's points balance is the sum of their completed trips' points.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use crate::common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Child;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use tsp_mobility::batch;
use tsp_mobility::complete::{TRAJECTORIES, Trips};
use tsp_mobility::sandbox::Sandbox;
use tsp_mobility::trip::TripCompletion;
use tsp_queue::Queue;

const TRIPS: usize = 1_000;
const USERS: u64 = 40;

/// A worker process on the sandbox's trips queue, failing as `fault` says.
fn worker(sandbox: &Sandbox, fault: &[&str]) -> Child {
    worker_with(sandbox, 8, "2s", fault)
}

/// A worker process on the sandbox's trips queue (see `common::trip_worker`).
fn worker_with(sandbox: &Sandbox, concurrency: usize, lease: &str, extra: &[&str]) -> Child {
    common::trip_worker(&sandbox.overrides, concurrency, lease, extra)
}

/// Seeds `users` users, then enqueues `n` generated trips (seed `seed`, ending within `days`) on
/// the sandbox's trips queue: the queue, the trips, and their job ids in order.
async fn enqueue_trips(
    sandbox: &Sandbox,
    seed: u64,
    n: usize,
    users: u64,
    days: u32,
) -> (Queue, Vec<TripCompletion>, Vec<String>) {
    let hub = &sandbox.hub;
    common::seed_users(hub, users).await;
    let queue = Queue::new(
        hub.redis("cache").unwrap().clone(),
        "trips",
        &hub.config().queue,
    )
    .unwrap();
    let (generated, ids) = common::enqueue_generated(&queue, seed, n, users, days).await;
    (queue, generated, ids)
}

/// Runs `healthy` until the queue is settled with `n` jobs completed (bounded), then stops it.
async fn completed_by(mut healthy: Child, queue: &Queue, n: usize) {
    tsp_testkit::eventually("settled", Duration::from_secs(90), || async {
        let c = queue.counts().await.unwrap();
        if batch::settled(&c) && c.completed == n as u64 {
            Ok(())
        } else {
            Err(c)
        }
    })
    .await;
    let _ = healthy.kill();
    let _ = healthy.wait();
}

/// Every one of the `n` trips is whole: a completed trips row, an earn, a trajectory and an
/// activity each, and nothing unfinished.
async fn every_trip_whole(trips: &Trips, n: usize) {
    let f = batch::footprint(trips).await.unwrap();
    let n = n as i64;
    assert_eq!(
        (f.trips_completed, f.trips_unfinished, f.earn_transactions),
        (n, 0, n)
    );
    assert_eq!((f.trajectories, f.activities), (n as u64, n as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_after_every_step_and_killed_workers_leave_every_trip_whole_or_absent() {
    drill(&["trips.batch=false"]).await;
}

/// The same drill with trips completed in batches (up to 8 per batch, the workers' concurrency):
/// a fault fails one trip of a batch, an abort or a SIGKILL a whole batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drill_holds_with_trips_completed_in_batches() {
    drill(&[
        "trips.batch=true",
        "queue.batch.trip.complete.max_wait=20ms",
    ])
    .await;
}

/// Faults after every step (6 % per trip and step), a worker aborting now and then, and one
/// SIGKILLed while it holds jobs; then every trip must be whole in every store or absent from all.
async fn drill(mode: &[&str]) {
    let worker = |sandbox: &Sandbox, fault: &[&str]| {
        let mut sets: Vec<&str> = fault.to_vec();
        sets.extend(mode);
        worker(sandbox, &sets)
    };
    let sandbox = Sandbox::create(&common::load_options()).await.unwrap();
    let hub = sandbox.hub.clone();
    let (queue, generated, ids) = enqueue_trips(&sandbox, 99, TRIPS, USERS, 20).await;
    let trips = common::trips(&hub);
    let trip_of: HashMap<&str, &TripCompletion> = ids
        .iter()
        .map(String::as_str)
        .zip(generated.iter())
        .collect();

    // 6 % per step: over a third of the attempts fail, and some jobs use up their 3 attempts.
    let errors = ["trips.fault.mode=error", "trips.fault.rate=60"];
    // 4 ‰ per step: the abort worker dies every few dozen jobs.
    let aborts = ["trips.fault.mode=abort", "trips.fault.rate=4"];
    let mut error_workers = vec![worker(&sandbox, &errors), worker(&sandbox, &errors)];
    let mut abort_worker = worker(&sandbox, &aborts);
    let mut restarts = 0;
    let mut killed = false;
    // Processes that died without a graceful stop: what they had buffered may be lost.
    let mut crashed: BTreeSet<u32> = BTreeSet::new();
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let c = queue.counts().await.unwrap();
        let finished = c.completed + c.dead;
        if !killed && finished >= (TRIPS / 3) as u64 {
            // SIGKILL while it holds jobs (seen in its lease, not assumed): their leases expire
            // and others take them.
            let pid = error_workers[0].id();
            let held = holds_jobs(&queue, pid).await;
            error_workers[0].kill().unwrap();
            error_workers[0].wait().unwrap();
            eprintln!("drill: worker {pid} killed holding {held} jobs");
            crashed.insert(pid);
            error_workers[0] = worker(&sandbox, &errors);
            killed = true;
        }
        if let Ok(Some(_)) = abort_worker.try_wait() {
            restarts += 1;
            crashed.insert(abort_worker.id());
            abort_worker = worker(&sandbox, &aborts);
        }
        if killed && batch::settled(&c) && finished == TRIPS as u64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "not settled: {c:?}"
        );
    }
    // A graceful stop: each worker flushes what it buffered.
    for mut w in error_workers.into_iter().chain([abort_worker]) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &w.id().to_string()])
            .status();
        if tokio::task::block_in_place(|| w.wait()).is_ok_and(|s| s.code().is_none()) {
            // An abort worker may have died on its own meanwhile.
            crashed.insert(w.id());
        }
    }

    // The queue's view: each job completed or dead.
    let mut completed = BTreeSet::new();
    let mut dead = BTreeSet::new();
    for id in &ids {
        let job = queue.job(id).await.unwrap().unwrap();
        let trip_id = trip_of[id.as_str()].trip_id.clone();
        match job.state.as_str() {
            "completed" => completed.insert(trip_id),
            "dead" => dead.insert(trip_id),
            other => panic!("job {id} is {other}"),
        };
    }
    assert_eq!(completed.len() + dead.len(), TRIPS);
    let c = queue.counts().await.unwrap();
    eprintln!(
        "drill: {} completed, {} dead (compensated), {} failed attempts, {} stalled, \
         {} abort-worker restarts, {:.1} s",
        completed.len(),
        dead.len(),
        c.totals.get("failed").copied().unwrap_or(0),
        c.totals.get("stalled").copied().unwrap_or(0),
        restarts,
        started.elapsed().as_secs_f64()
    );
    assert!(
        !dead.is_empty(),
        "the faults should have exhausted some jobs' attempts"
    );
    assert!(
        restarts > 0,
        "the abort worker should have died at least once"
    );

    // The stores' view.
    let dataset = hub.mysql("dataset").unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT trip_id, CAST(status AS CHAR) FROM trips")
            .fetch_all(dataset.pool())
            .await
            .unwrap();
    let mut trip_rows = BTreeMap::new();
    for (id, status) in rows {
        assert!(trip_rows.insert(id, status).is_none());
    }
    assert!(
        trip_rows.values().all(|s| s == "completed"),
        "unfinished rows left"
    );
    let row_ids: BTreeSet<String> = trip_rows.into_keys().collect();
    assert_eq!(row_ids, completed, "trips rows = completed jobs' trips");

    let incentive = hub.mysql("incentive").unwrap();
    let earns: Vec<String> = sqlx::query_scalar(
        "SELECT reference_id FROM points_transactions WHERE transaction_type = 'earn'",
    )
    .fetch_all(incentive.pool())
    .await
    .unwrap();
    assert_eq!(earns.len(), completed.len(), "one earn per completed trip");
    assert_eq!(earns.into_iter().collect::<BTreeSet<_>>(), completed);

    one_document_per_completed_trip(&hub, TRAJECTORIES, &completed).await;

    one_document_per_completed_trip(&hub, tsp_mobility::complete::ACTIVITY_LOG, &completed).await;
    booking_points_per_completed_trip(&hub, &queue, &ids, &trip_of, &completed, &dead, &crashed)
        .await;

    // Balances: per user, the points of their completed trips, by the configured rates.
    let mut expected: BTreeMap<u64, i64> = BTreeMap::new();
    for t in generated.iter().filter(|t| completed.contains(&t.trip_id)) {
        *expected.entry(t.user_id).or_default() += trips.points_for(&t.mode, t.distance_m());
    }
    let balances: Vec<(u64, i64)> = sqlx::query_as(
        "SELECT user_id, CAST(SUM(points) AS SIGNED) FROM points_transactions GROUP BY user_id",
    )
    .fetch_all(incentive.pool())
    .await
    .unwrap();
    let balances: BTreeMap<u64, i64> = balances.into_iter().collect();
    let expected_nonzero: BTreeMap<u64, i64> = expected.into_iter().collect();
    assert_eq!(
        balances.keys().collect::<Vec<_>>(),
        expected_nonzero.keys().collect::<Vec<_>>()
    );
    assert_eq!(balances, expected_nonzero);
    // And the API's answer agrees.
    for (user, points) in balances.iter().take(5) {
        assert_eq!(
            trips.user_points(*user).await.unwrap().value.balance,
            *points
        );
    }
    assert!(sandbox.remove().await.is_empty());
}

/// The jobs worker process `pid` holds right now, waiting (bounded) until it holds some.
async fn holds_jobs(queue: &Queue, pid: u32) -> u64 {
    let prefix = format!("{}-{pid}-", tsp_queue::host_name());
    common::until_some(Duration::from_secs(30), || async {
        let glance = queue.glance().await.ok()?;
        glance
            .leases
            .iter()
            .find(|l| l.holder.starts_with(&prefix) && l.held > 0)
            .map(|l| l.held)
    })
    .await
}

/// One document in `collection` (`dataset` MongoDB) per completed trip, none for a dead one.
async fn one_document_per_completed_trip(
    hub: &tsp_hub::Hub,
    collection: &str,
    completed: &BTreeSet<String>,
) {
    let docs: Vec<Document> = hub
        .mongo("dataset")
        .unwrap()
        .database()
        .collection::<Document>(collection)
        .find(doc! {})
        .projection(doc! {"tripId": 1})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let trips: Vec<String> = docs
        .iter()
        .map(|d| d.get_str("tripId").unwrap().to_string())
        .collect();
    assert_eq!(
        trips.len(),
        completed.len(),
        "{collection}: one per completed trip"
    );
    assert_eq!(
        trips.into_iter().collect::<BTreeSet<_>>(),
        *completed,
        "{collection}"
    );
}

/// `trip_bookings` points: each belongs to a generated trip (a dead trip's may stay: points are
/// observations, docs/consistency.md); a completed trip without one is allowed only when the
/// worker that completed it crashed before flushing, and the drill says how many.
#[allow(clippy::too_many_arguments)]
async fn booking_points_per_completed_trip(
    hub: &tsp_hub::Hub,
    queue: &Queue,
    ids: &[String],
    trip_of: &HashMap<&str, &TripCompletion>,
    completed: &BTreeSet<String>,
    dead: &BTreeSet<String>,
    crashed: &BTreeSet<u32>,
) {
    let influx = hub.influx("primary").unwrap();
    let db = influx.writer().target().to_string();
    let body = influx
        .query_v1(&db, "SELECT points, mode FROM trip_bookings")
        .await
        .unwrap();
    let values = body
        .pointer("/results/0/series/0/values")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    // A point's time is its trip's end (ms) plus a per-trip offset below 1 ms.
    let mut by_end: HashMap<(i64, String), Vec<&str>> = HashMap::new();
    for t in trip_of.values() {
        let end = t.trajectory.last().unwrap().timestamp;
        by_end
            .entry((end, t.mode.clone()))
            .or_default()
            .push(&t.trip_id);
    }
    let mut with_point = BTreeSet::new();
    for v in &values {
        let ns = chrono::DateTime::parse_from_rfc3339(v[0].as_str().unwrap())
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap();
        let key = (ns.div_euclid(1_000_000), v[2].as_str().unwrap().to_string());
        let trips = by_end
            .get(&key)
            .unwrap_or_else(|| panic!("point {v} is no trip's"));
        with_point.extend(trips.iter().map(|t| t.to_string()));
    }
    assert!(
        with_point
            .iter()
            .all(|t| completed.contains(t) || dead.contains(t))
    );
    let host = tsp_queue::host_name();
    let mut lost = 0;
    for id in ids {
        let trip = &trip_of[id.as_str()].trip_id;
        if !completed.contains(trip) || with_point.contains(trip) {
            continue;
        }
        let holder = queue
            .job(id)
            .await
            .unwrap()
            .unwrap()
            .holder
            .unwrap_or_default();
        assert!(
            crashed
                .iter()
                .any(|pid| holder.starts_with(&format!("{host}-{pid}-"))),
            "trip {trip} has no point and was completed by {holder}, which did not crash"
        );
        lost += 1;
    }
    eprintln!(
        "drill: {} trip_bookings points for {} completed trips; {lost} lost in {} crashes",
        values.len(),
        completed.len(),
        crashed.len()
    );
}

/// Batch-specific fault points: a worker holding batches of up to 16 trips aborts right after a
/// batch's MySQL steps (trips rows and earn transactions written, nothing in MongoDB), another
/// right after its MongoDB steps; a healthy worker then completes every trip once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_abort_after_a_batch_s_mysql_or_mongo_steps_is_finished_by_another_worker() {
    let sandbox = Sandbox::create(&common::load_options()).await.unwrap();
    let hub = sandbox.hub.clone();
    let (queue, _, ids) = enqueue_trips(&sandbox, 6, 48, 5, 2).await;
    let batched = [
        "trips.batch=true",
        "queue.batch.trip.complete.max_wait=200ms",
    ];
    for step in ["points", "activity"] {
        let at = format!("trips.fault.step={step}");
        let mut sets = vec!["trips.fault.mode=abort", "trips.fault.rate=1000", &at];
        sets.extend(batched);
        let mut w = worker_with(&sandbox, 16, "10s", &sets);
        let status = tokio::task::block_in_place(|| w.wait().unwrap());
        assert_eq!(status.code(), None, "{step}: {status:?}");
    }
    let trips = common::trips(&hub);
    // The first abort left trips rows and earns without documents; the second, documents too.
    let f = batch::footprint(&trips).await.unwrap();
    assert!(f.trips_unfinished > 0 && f.trips_completed == 0, "{f:?}");
    assert!(
        f.earn_transactions > f.trajectories as i64 && f.trajectories > 0,
        "{f:?}"
    );
    completed_by(
        worker_with(&sandbox, 16, "10s", &batched),
        &queue,
        ids.len(),
    )
    .await;
    let mut aborted = 0;
    for id in &ids {
        let job = queue.job(id).await.unwrap().unwrap();
        assert_eq!(job.state, "completed");
        let expiries = job
            .errors
            .iter()
            .filter(|e| e.error.starts_with("lease expired"))
            .count();
        assert!(expiries <= 1, "{id}: {:?}", job.errors);
        aborted += expiries;
    }
    assert!(aborted >= 2, "two batches were cut short: {aborted} jobs");
    every_trip_whole(&trips, ids.len()).await;
    assert!(sandbox.remove().await.is_empty());
}

/// A worker process that aborts after each step in turn: after each abort, the trip it held
/// is completed whole by a healthy worker once the lease expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_abort_after_each_step_is_finished_by_another_worker() {
    let sandbox = Sandbox::create(&common::load_options()).await.unwrap();
    let hub = sandbox.hub.clone();
    let steps = tsp_mobility::complete::STEPS;
    let (queue, _, ids) = enqueue_trips(&sandbox, 5, steps.len(), 3, 2).await;
    for step in steps {
        let at = format!("trips.fault.step={step}");
        // Leases long enough that no aborted job is recovered (and aborted again) before every
        // step has had its abort: each abort hits a different trip.
        let mut w = worker_with(
            &sandbox,
            1,
            "10s",
            &["trips.fault.mode=abort", "trips.fault.rate=1000", &at],
        );
        let status = tokio::task::block_in_place(|| w.wait().unwrap());
        // Aborted (SIGABRT), not a clean exit.
        assert_eq!(status.code(), None, "{step}: {status:?}");
    }
    completed_by(worker(&sandbox, &[]), &queue, steps.len()).await;
    for id in &ids {
        let job = queue.job(id).await.unwrap().unwrap();
        assert_eq!(job.state, "completed");
        let expiries = job
            .errors
            .iter()
            .filter(|e| e.error.starts_with("lease expired"))
            .count();
        assert_eq!(
            (expiries, job.attempts),
            (1, 2),
            "{id}: one abort, then done"
        );
    }
    let trips = common::trips(&hub);
    every_trip_whole(&trips, steps.len()).await;
    assert!(sandbox.remove().await.is_empty());
}
