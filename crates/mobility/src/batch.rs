//! Running a batch of trips through the queue: enqueue, work until drained, measure, and count
//! what landed in each store. The main job (`tsp-job simulate`) and `tsp-bench trips` are
//! built on it.

use std::time::{Duration, Instant};

use async_recursion::async_recursion as boxed;
use futures::future::join_all;
use mongodb::bson::{Document, doc};
use serde::Serialize;
use tokio::sync::oneshot;
use tsp_hub::HubError;
use tsp_queue::{
    BatchOptions, Queue, QueueCounts, QueueError, RecordSink, Registry, Worker, WorkerReport,
};

use crate::complete::{ACTIVITY_LOG, TRAJECTORIES, Trips};
use crate::trip::TripCompletion;

/// Enqueues the trips in bulk; returns their job ids in order.
#[boxed]
pub async fn enqueue(queue: &Queue, trips: &[TripCompletion]) -> Result<Vec<String>, QueueError> {
    let mut ids = Vec::with_capacity(trips.len());
    for chunk in trips.chunks(2_000) {
        let jobs = chunk
            .iter()
            .map(Trips::job)
            .collect::<Result<Vec<_>, _>>()?;
        ids.extend(queue.enqueue_many(jobs).await?);
    }
    Ok(ids)
}

/// Whether nothing is left to do: no job waiting, delayed or running, no dead job awaiting
/// its compensation.
pub fn settled(c: &QueueCounts) -> bool {
    c.waiting + c.delayed + c.active + c.dead_unhandled == 0
}

/// Runs a worker on `queue` with the trip job (its batches collected as `batches` says) and
/// the built-ins until the queue is settled, calling `progress` about five times a second.
/// Returns the worker's totals.
#[boxed]
pub async fn work_until_settled(
    trips: &Trips,
    batches: BatchOptions,
    queue: &Queue,
    concurrency: usize,
    records: RecordSink,
    progress: &mut (dyn FnMut(&QueueCounts) + Send),
) -> Result<WorkerReport, QueueError> {
    let mut registry = Registry::new();
    trips.register(&mut registry, batches);
    let worker = Worker::new(vec![queue.clone()], registry)
        .with_concurrency(concurrency)
        .with_records(records);
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    let mut failures = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        match queue.counts().await {
            Ok(c) => {
                failures = 0;
                progress(&c);
                if settled(&c) {
                    break;
                }
            }
            // Redis away for a moment: the worker retries by itself; keep asking.
            Err(e) if failures < 50 => {
                failures += 1;
                tracing::warn!(error = %e, "queue counts failed; asking again");
            }
            Err(e) => {
                let _ = stop.send(());
                let _ = running.await;
                return Err(e);
            }
        }
    }
    let _ = stop.send(());
    running
        .await
        .map_err(|e| QueueError::Protocol(format!("worker task failed: {e}")))
}

/// Percentiles of job times, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// The median (in the unit of the values).
    pub p50: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The slowest.
    pub max: f64,
}

impl Percentiles {
    /// The percentiles of `v` (nearest rank); zeros when empty.
    pub fn of(mut v: Vec<f64>) -> Percentiles {
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Percentiles {
            p50: at(0.5),
            p99: at(0.99),
            max: v[v.len() - 1],
        }
    }
}

/// Job times of finished jobs, read back from the queue.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobTimes {
    /// From the start of the last attempt to the end: the handler's run time.
    pub run_ms: Percentiles,
    /// From enqueue to the end: what a client waits, queueing included.
    pub latency_ms: Percentiles,
    /// Jobs completed.
    pub completed: u64,
    /// Jobs dead-lettered.
    pub dead: u64,
    /// The most frequent last errors of dead jobs (up to 5), with their counts.
    pub dead_errors: Vec<(String, u64)>,
}

/// Reads each job's times (pipelined, 256 at a time).
#[boxed]
pub async fn job_times(queue: &Queue, ids: &[String]) -> Result<JobTimes, QueueError> {
    let mut run = Vec::with_capacity(ids.len());
    let mut latency = Vec::with_capacity(ids.len());
    let (mut completed, mut dead) = (0, 0);
    let mut errors: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for chunk in ids.chunks(256) {
        for info in join_all(chunk.iter().map(|id| queue.job(id))).await {
            let Some(j) = info? else { continue };
            match j.state.as_str() {
                "completed" => completed += 1,
                "dead" => {
                    dead += 1;
                    // Group by the message's shape: ids and numbers vary.
                    let shape: String = j
                        .last_error
                        .as_deref()
                        .unwrap_or("")
                        .chars()
                        .map(|c| if c.is_ascii_digit() { '#' } else { c })
                        .take(100)
                        .collect();
                    *errors.entry(shape).or_default() += 1;
                }
                _ => {}
            }
            if let Some(end) = j.finished_at {
                latency.push((end - j.created_at) as f64);
                if let Some(start) = j.started_at {
                    run.push((end - start) as f64);
                }
            }
        }
    }
    let mut dead_errors: Vec<(String, u64)> = errors.into_iter().collect();
    dead_errors.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    dead_errors.truncate(5);
    Ok(JobTimes {
        run_ms: Percentiles::of(run),
        latency_ms: Percentiles::of(latency),
        completed,
        dead,
        dead_errors,
    })
}

/// What the trip flows hold, per store.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Footprint {
    /// `dataset.trips` rows, completed.
    pub trips_completed: i64,
    /// `dataset.trips` rows not completed (in progress, or left by a failure not yet
    /// compensated).
    pub trips_unfinished: i64,
    /// `incentive.point_transactions` rows of type `earn`.
    pub earn_transactions: i64,
    /// The points those rows award, summed.
    pub points_awarded: i64,
    /// Documents in MongoDB `dataset.trip_trajectories`.
    pub trajectories: u64,
    /// Documents in MongoDB `dataset.activity_log`.
    pub activities: u64,
    /// `trip_bookings` points in InfluxDB `primary`.
    pub booking_points: u64,
    /// Points this process's `primary` writer accepted and did not write (refused by the
    /// server, or dropped for a full buffer), after a flush.
    pub points_unwritten: u64,
    /// Users in the Redis GEO set.
    pub users_located: u64,
    /// `portal.users` rows.
    pub users: i64,
}

/// `trip_bookings` points in InfluxDB after this process's writer flushed, and the points that
/// writer accepted and did not write.
async fn booking_points(trips: &Trips) -> Result<(u64, u64), HubError> {
    let influx = &trips.stores().metrics;
    influx.writer().flush().await;
    let points_unwritten = influx.writer().stats().unwritten();
    let r = influx
        .query_v1(
            &influx.settings().database,
            "SELECT count(\"count\") FROM trip_bookings",
        )
        .await?;
    let booking_points = r
        .pointer("/results/0/series/0/values/0/1")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    Ok((booking_points, points_unwritten))
}

/// Counts what every store holds for the trip flows.
#[boxed]
pub async fn footprint(trips: &Trips) -> Result<Footprint, HubError> {
    let stores = trips.stores();
    let dataset = &stores.dataset;
    let (done, unfinished): (i64, i64) = dataset
        .timed(
            "count trips",
            sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(status = 'completed'), 0) AS SIGNED), \
                 CAST(COALESCE(SUM(status <> 'completed'), 0) AS SIGNED) FROM trips",
            )
            .fetch_one(dataset.pool()),
        )
        .await?;
    let incentive = &stores.incentive;
    let (earns, points): (i64, i64) = incentive
        .timed(
            "count points",
            sqlx::query_as(
                "SELECT COUNT(*), CAST(COALESCE(SUM(points), 0) AS SIGNED) FROM points_transactions \
                 WHERE transaction_type = 'earn' AND reference_type = 'trip'",
            )
            .fetch_one(incentive.pool()),
        )
        .await?;
    let portal = &stores.portal;
    let users: i64 = portal
        .timed(
            "count users",
            sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(portal.pool()),
        )
        .await?;
    let mongo = &stores.documents;
    let db = mongo.database();
    let trajectories = mongo
        .timed(
            "count trajectories",
            db.collection::<Document>(TRAJECTORIES)
                .count_documents(doc! {}),
        )
        .await?;
    let activities = mongo
        .timed(
            "count activities",
            db.collection::<Document>(ACTIVITY_LOG)
                .count_documents(doc! {"type": "trip.completed"}),
        )
        .await?;
    let (booking_points, points_unwritten) = booking_points(trips).await?;
    let (geo, _) = trips.geo_keys();
    let redis = &trips.stores().redis;
    let mut conn = redis.conn().await?;
    let users_located: u64 = redis::cmd("ZCARD")
        .arg(&geo)
        .query_async(&mut conn)
        .await
        .map_err(|e| redis.command_error("zcard", &e))?;
    Ok(Footprint {
        trips_completed: done,
        trips_unfinished: unfinished,
        earn_transactions: earns,
        points_awarded: points,
        trajectories,
        activities,
        booking_points,
        points_unwritten,
        users_located,
        users,
    })
}

/// A run's wall time and rate.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rate {
    /// Seconds elapsed.
    pub seconds: f64,
    /// Items per second over them.
    pub per_second: f64,
}

impl Rate {
    /// The rate of `count` items since `since`.
    pub fn of(count: u64, since: Instant) -> Rate {
        let seconds = since.elapsed().as_secs_f64();
        Rate {
            seconds,
            per_second: if seconds > 0.0 {
                count as f64 / seconds
            } else {
                0.0
            },
        }
    }
}
