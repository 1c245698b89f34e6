//! The `trip.complete` job: one completed trip, written consistently to every store.
//!
//! # Steps, in order
//! 1. **trip**: `dataset.trips` row, status `active` (in progress);
//! 2. **points**: the `earn` transaction in `incentive.points_transactions`;
//! 3. **trajectory**: the `dataset.trip_trajectories` document (GeoJSON start and end points);
//! 4. **activity**: the `dataset.activity_log` document;
//! 5. **metrics**: a `trip_bookings` point (InfluxDB `primary`);
//! 6. **geo**: the user's position in the Redis GEO set, and their last-active time;
//! 7. **complete**: the trips row becomes `completed`, recording this job's id;
//! 8. **cache**: the user's cached stats and points are invalidated (every process);
//! 9. **publish**: `trip.completed` on Redis pub/sub.
//!
//! # Consistency
//! Each step is idempotent on the trip id: unique keys with no-op updates in MySQL, upserts that
//! insert-if-absent on a unique key in MongoDB, a point whose series and timestamp derive from the
//! trip (a rewrite replaces it), GEO/ZADD updates that never move a user back in time. A failed
//! attempt is retried and redoes every step; what an earlier attempt wrote is found, not doubled.
//! The first write of a trip wins: a second job with the same trip id and other content changes
//! nothing.
//!
//! A job that fails for good (out of attempts, or a payload the data refuses) is **compensated**
//! by its dead-letter hook ([`Trips::compensate`]): its earn transaction, trajectory, activity
//! and trips row are deleted (in that order: never points without a trip) unless the trip was
//! completed by another job, and `trip.compensated` is published. Influx points and the GEO
//! position are observations and stay.
//!
//! Attempts and compensations of one trip never overlap: each holds a MySQL named lock on the
//! trip (`GET_LOCK`) on the `dataset` connection it writes with, for its whole run. A worker that
//! dies loses its connection and so its lock; a hung one keeps it, and the next attempt or the
//! compensation waits, then retries later. So a compensation cannot undo the work of an attempt
//! still running, nor an attempt half-redo a compensated trip.
//!
//! After the queue is drained and every dead job handled: every completed job's trip has one
//! completed trips row, one earn transaction and one trajectory; a dead job's trip has none,
//! unless another job completed that trip.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mongodb::bson::{self, Bson, doc};
use redis::Script;
use serde::Serialize;
use tsp_config::{FaultMode, TripSettings};
use tsp_hub::mysql::NamedLock;
use tsp_hub::{Cache, Hub, HubError, InsertBatcher, MysqlStore, Point, PointWriter, RedisStore};
use tsp_queue::{JobContext, JobError, NewJob, Registry};

use crate::trip::TripCompletion;

/// The job type.
pub const JOB_TYPE: &str = "trip.complete";
pub const TRAJECTORIES: &str = "trip_trajectories";
pub const ACTIVITY_LOG: &str = "activity_log";
/// How long an attempt waits for another attempt (or compensation) of the same trip.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// The steps, in order (names as `trips.fault.step` takes them).
pub const STEPS: &[&str] = tsp_config::schema::FAULT_STEPS.split_at(1).1;

/// What a completed job returns (its result in the queue).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Completed {
    pub trip_id: String,
    pub distance_m: f64,
    pub duration_s: f64,
    pub points: i64,
    /// The trip had been completed before (a redelivered or resubmitted job).
    pub already_completed: bool,
}

/// Checks a payload before it is enqueued, for the job types this crate knows: a
/// `trip.complete` payload must decode and pass [`TripCompletion::validate`]. Returns the trip's
/// dedup key (`trip:<tripId>`) for a trip, `None` for other types; the error names the field
/// (`payload.trajectory[2].timestamp: …`).
pub fn check_payload(job_type: &str, payload: &str) -> Result<Option<String>, String> {
    if job_type != JOB_TYPE {
        return Ok(None);
    }
    let trip: TripCompletion =
        serde_json::from_str(payload).map_err(|e| format!("payload: {e}"))?;
    trip.validate().map_err(|e| format!("payload.{e}"))?;
    Ok(Some(format!("trip:{}", trip.trip_id)))
}

/// What a compensation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compensation {
    /// The trip's partial data was removed.
    Undone,
    /// Another job completed this trip: nothing to undo.
    CompletedElsewhere,
    /// No attempt wrote anything (e.g. a refused payload), or a compensation already ran.
    NothingWritten,
}

/// Total time and count of one step.
#[derive(Debug, Clone, Serialize)]
pub struct StepTiming {
    pub step: String,
    pub count: u64,
    pub mean_ms: f64,
}

/// Per-step time sums (µs) and counts; "prepare" is validation, the user check and the lock.
#[derive(Default)]
struct Timings {
    sums: [AtomicU64; STEPS.len() + 1],
    counts: [AtomicU64; STEPS.len() + 1],
}

impl Timings {
    fn index(step: &str) -> usize {
        STEPS
            .iter()
            .position(|s| *s == step)
            .map(|i| i + 1)
            .unwrap_or(0)
    }

    fn record(&self, step: &str, d: Duration) {
        let i = Self::index(step);
        self.sums[i].fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Vec<StepTiming> {
        std::iter::once("prepare")
            .chain(STEPS.iter().copied())
            .enumerate()
            .map(|(i, step)| {
                let count = self.counts[i].load(Ordering::Relaxed);
                let sum = self.sums[i].load(Ordering::Relaxed);
                StepTiming {
                    step: step.to_string(),
                    count,
                    mean_ms: if count == 0 {
                        0.0
                    } else {
                        sum as f64 / count as f64 / 1000.0
                    },
                }
            })
            .collect()
    }
}

struct Inner {
    timings: Timings,
    trajectories: InsertBatcher,
    activities: InsertBatcher,
    hub: Hub,
    cache: Cache,
    settings: TripSettings,
    bookings: PointWriter,
    redis: RedisStore,
}

/// The trip flows on one hub: the job, its compensation, and (see `queries`) the reads.
#[derive(Clone)]
pub struct Trips {
    inner: Arc<Inner>,
}

/// Updates a user's GEO position and last-active time, unless a later trip already did; and
/// forgets users inactive for longer than the window (a bounded amount per call).
/// KEYS: geo set, active zset (one hash slot). ARGV: user, lng, lat, at (ms), window (ms).
static GEO_UPDATE: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(
        r#"
local at = tonumber(ARGV[4])
local cur = tonumber(redis.call("ZSCORE", KEYS[2], ARGV[1]))
if not cur or cur <= at then
  redis.call("GEOADD", KEYS[1], ARGV[2], ARGV[3], ARGV[1])
  redis.call("ZADD", KEYS[2], at, ARGV[1])
end
local old = redis.call("ZRANGEBYSCORE", KEYS[2], "-inf", "(" .. (at - tonumber(ARGV[5])), "LIMIT", 0, 100)
if #old > 0 then
  redis.call("ZREM", KEYS[2], unpack(old))
  redis.call("ZREM", KEYS[1], unpack(old))
end
return 1
"#,
    )
});

pub(crate) fn ms_to_naive(ms: i64) -> chrono::NaiveDateTime {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .naive_utc()
}

/// A stable hash of `parts`, each followed by a zero byte (so `["ab", "c"]` and `["a", "bc"]`
/// differ), for lock names and point timestamps.
fn fnv1a(parts: &[&str]) -> u64 {
    crate::fnv1a(parts.iter().flat_map(|p| p.bytes().chain([0u8])))
}

/// The trip's named lock on `dataset` (see the module documentation), held on the connection
/// that writes the trips row.
async fn trip_lock(store: &MysqlStore, trip_id: &str) -> Result<NamedLock, HubError> {
    let name = format!("tsp.trip.{:016x}", fnv1a(&[store.database_name(), trip_id]));
    NamedLock::acquire(store, &name, LOCK_WAIT, "another attempt of this trip").await
}

fn hub_err(e: HubError) -> JobError {
    JobError::Retry(e.to_string())
}

impl Trips {
    /// The trip flows on `hub`, invalidating through `cache`.
    pub fn new(hub: &Hub, cache: Cache) -> Result<Trips, HubError> {
        let config = hub.config();
        let redis = hub.redis(&config.cache.redis)?.clone();
        let bookings = hub.influx("primary")?.writer();
        let mongo = hub.mongo("dataset")?;
        Ok(Trips {
            inner: Arc::new(Inner {
                timings: Timings::default(),
                trajectories: InsertBatcher::start(mongo.clone(), TRAJECTORIES, 256),
                activities: InsertBatcher::start(mongo.clone(), ACTIVITY_LOG, 256),
                hub: hub.clone(),
                cache,
                settings: config.trips.clone(),
                bookings,
                redis,
            }),
        })
    }

    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    pub fn settings(&self) -> &TripSettings {
        &self.inner.settings
    }

    /// The Redis GEO set of user positions and the sorted set of last-active times.
    pub(crate) fn geo_keys(&self) -> (String, String) {
        let p = self.inner.redis.key_prefix();
        (format!("{p}{{users}}:geo"), format!("{p}{{users}}:active"))
    }

    pub(crate) fn redis(&self) -> &RedisStore {
        &self.inner.redis
    }

    /// The pub/sub channel of trip events (`trip.completed`, `trip.compensated`).
    pub fn events_channel(&self) -> String {
        format!("{}events:trips", self.inner.redis.key_prefix())
    }

    /// The cache tag of everything cached about one user.
    pub fn user_tag(user_id: u64) -> String {
        format!("user:{user_id}")
    }

    /// Points for a trip: whole points per km by mode, rounded down.
    pub fn points_for(&self, mode: &str, distance_m: f64) -> i64 {
        let per_km = self
            .inner
            .settings
            .points_per_km
            .get(mode)
            .copied()
            .unwrap_or(0);
        (distance_m / 1000.0 * f64::from(per_km)).floor() as i64
    }

    /// Registers the job and its compensation on `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let me = self.clone();
        registry.register(JOB_TYPE, move |ctx: JobContext, trip: TripCompletion| {
            let me = me.clone();
            async move { me.complete(&ctx.id, &trip).await }
        });
        let me = self.clone();
        registry.on_dead(JOB_TYPE, move |id: String, trip: TripCompletion| {
            let me = me.clone();
            async move {
                me.compensate(&id, &trip)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        });
    }

    /// The queue job for a trip: deduplicated on the trip id while pending.
    pub fn job(trip: &TripCompletion) -> Result<NewJob, tsp_queue::QueueError> {
        Ok(NewJob::new(JOB_TYPE, trip)?.with_dedup_key(format!("trip:{}", trip.trip_id)))
    }

    /// Records the time since `clock` as `step`'s, restarts the clock, then injects a fault
    /// when configured.
    fn step_done(&self, step: &str, clock: &mut Instant) -> Result<(), JobError> {
        let took = clock.elapsed();
        self.inner.timings.record(step, took);
        ::metrics::histogram!("tsp_trip_step_seconds", "step" => step.to_string())
            .record(took.as_secs_f64());
        *clock = Instant::now();
        self.fault(step)
    }

    /// Time spent per step so far in this process (attempts that reached the step).
    pub fn step_timings(&self) -> Vec<StepTiming> {
        self.inner.timings.snapshot()
    }

    /// A drill's fault after `step`, when configured.
    fn fault(&self, step: &str) -> Result<(), JobError> {
        let s = &self.inner.settings;
        if s.fault.mode == FaultMode::Off
            || s.fault.rate == 0
            || s.fault.step.as_deref().is_some_and(|only| only != step)
            || rand::random_range(0..1000) >= s.fault.rate
        {
            return Ok(());
        }
        match s.fault.mode {
            FaultMode::Abort => {
                eprintln!("fault injection: aborting the process after step `{step}`");
                std::process::abort();
            }
            _ => Err(JobError::Retry(format!(
                "injected fault after step `{step}`"
            ))),
        }
    }

    /// A portal user's status (`active`, `suspended`, `deleted`), or `None` when there is none.
    pub(crate) async fn user_status(&self, user_id: u64) -> Result<Option<String>, HubError> {
        let portal = self.inner.hub.mysql("portal")?;
        portal
            .timed(
                "select user",
                sqlx::query_scalar("SELECT CAST(status AS CHAR) FROM users WHERE id = ?")
                    .bind(user_id)
                    .fetch_optional(portal.pool()),
            )
            .await
    }

    /// Runs the job for one trip (see the module documentation).
    pub async fn complete(
        &self,
        job_id: &str,
        trip: &TripCompletion,
    ) -> Result<Completed, JobError> {
        let mut clock = Instant::now();
        trip.validate().map_err(JobError::abort)?;
        let hub = &self.inner.hub;
        let status = self.user_status(trip.user_id).await.map_err(hub_err)?;
        match status.as_deref() {
            Some("active") => {}
            Some(other) => {
                return Err(JobError::abort(format!(
                    "userId: user {} is {other}",
                    trip.user_id
                )));
            }
            None => {
                return Err(JobError::abort(format!(
                    "userId: no user {} in portal",
                    trip.user_id
                )));
            }
        }
        let dataset = hub.mysql("dataset").map_err(hub_err)?;
        let mut lock = trip_lock(dataset, &trip.trip_id).await.map_err(hub_err)?;
        self.inner.timings.record("prepare", clock.elapsed());
        clock = Instant::now();
        let r = self
            .steps(&mut lock, dataset, job_id, trip, &mut clock)
            .await;
        lock.release().await;
        if let Ok(done) = &r {
            let kind = if done.already_completed {
                "again"
            } else {
                "new"
            };
            ::metrics::counter!("tsp_trips_completed_total", "kind" => kind).increment(1);
        }
        r
    }

    async fn steps(
        &self,
        lock: &mut NamedLock,
        dataset: &MysqlStore,
        job_id: &str,
        trip: &TripCompletion,
        clock: &mut Instant,
    ) -> Result<Completed, JobError> {
        let hub = &self.inner.hub;
        let distance_m = trip.distance_m();
        let duration_s = trip.duration_s();
        let points = self.points_for(&trip.mode, distance_m);
        let (first, last) = match (trip.trajectory.first(), trip.trajectory.last()) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err(JobError::abort("trajectory: needs at least two points")),
        };

        // 1. trip
        dataset
            .timed(
                "insert trip",
                sqlx::query(
                    "INSERT INTO trips (trip_id, user_id, mode, status, started_at, ended_at, \
                     distance_m, duration_s, cost, start_lat, start_lng, end_lat, end_lng) \
                     VALUES (?, ?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                     ON DUPLICATE KEY UPDATE trip_id = trip_id",
                )
                .bind(&trip.trip_id)
                .bind(trip.user_id)
                .bind(&trip.mode)
                .bind(ms_to_naive(first.timestamp))
                .bind(ms_to_naive(last.timestamp))
                .bind(distance_m)
                .bind(duration_s.round() as u32)
                .bind(trip.cost)
                .bind(first.lat)
                .bind(first.lng)
                .bind(last.lat)
                .bind(last.lng)
                .execute(&mut *lock.conn()),
            )
            .await
            .map_err(hub_err)?;
        let (owner, status): (u64, String) = dataset
            .timed(
                "select trip",
                sqlx::query_as("SELECT user_id, CAST(status AS CHAR) FROM trips WHERE trip_id = ?")
                    .bind(&trip.trip_id)
                    .fetch_one(&mut *lock.conn()),
            )
            .await
            .map_err(hub_err)?;
        if owner != trip.user_id {
            return Err(JobError::abort(format!(
                "tripId: trip {} belongs to another user",
                trip.trip_id
            )));
        }
        let already_completed = status == "completed";
        self.step_done("trip", clock)?;

        // 2. points
        let incentive = hub.mysql("incentive").map_err(hub_err)?;
        incentive
            .timed(
                "insert earn",
                sqlx::query(
                    "INSERT INTO points_transactions (user_id, transaction_type, points, \
                     reference_type, reference_id, description, created_at) \
                     VALUES (?, 'earn', ?, 'trip', ?, ?, ?) ON DUPLICATE KEY UPDATE id = id",
                )
                .bind(trip.user_id)
                .bind(points)
                .bind(&trip.trip_id)
                .bind(format!("{} trip, {:.1} km", trip.mode, distance_m / 1000.0))
                .bind(ms_to_naive(last.timestamp))
                .execute(incentive.pool()),
            )
            .await
            .map_err(hub_err)?;
        self.step_done("points", clock)?;

        // 3. trajectory
        let ended = bson::DateTime::from_millis(last.timestamp);
        let track: Vec<Bson> = trip
            .trajectory
            .iter()
            .map(|p| {
                let mut d = doc! {
                    "lat": p.lat,
                    "lng": p.lng,
                    "timestamp": bson::DateTime::from_millis(p.timestamp),
                };
                if let Some(a) = p.accuracy {
                    d.insert("accuracy", a);
                }
                if let Some(s) = p.speed {
                    d.insert("speed", s);
                }
                Bson::Document(d)
            })
            .collect();
        let trajectory = doc! {
            "tripId": &trip.trip_id,
            "userId": trip.user_id as i64,
            "mode": &trip.mode,
            "startLocation": {"type": "Point", "coordinates": [first.lng, first.lat]},
            "endLocation": {"type": "Point", "coordinates": [last.lng, last.lat]},
            "points": track,
            "distanceM": distance_m,
            "durationS": duration_s,
            "startedAt": bson::DateTime::from_millis(first.timestamp),
            "createdAt": ended,
        };
        // Insert-if-absent on the unique tripId: the first write wins. Batched with the other
        // jobs' trajectories (the call returns once this one is stored).
        self.inner
            .trajectories
            .insert(trajectory)
            .await
            .map_err(hub_err)?;
        self.step_done("trajectory", clock)?;

        // 4. activity
        let mut activity = doc! {
            "_id": format!("trip.completed:{}", trip.trip_id),
            "userId": trip.user_id as i64,
            "type": "trip.completed",
            "tripId": &trip.trip_id,
            "mode": &trip.mode,
            "distanceM": distance_m,
            "durationS": duration_s,
            "points": points,
            "at": ended,
        };
        if let Some(c) = trip.cost {
            activity.insert("cost", c);
        }
        self.inner
            .activities
            .insert(activity)
            .await
            .map_err(hub_err)?;
        self.step_done("activity", clock)?;

        // 5. metrics: the timestamp is the trip's end plus a per-trip offset below 1 ms, so a
        // rewrite replaces the point and two trips ending in the same millisecond do not collide.
        let offset_ns = (fnv1a(&[&trip.trip_id]) % 1_000_000) as i64;
        let mut point = Point::new("trip_bookings")
            .tag("mode", &trip.mode)
            .field("distance_m", distance_m)
            .field("duration_s", duration_s)
            .field("points", points)
            .field("count", 1i64)
            .timestamp_ns(last.timestamp * 1_000_000 + offset_ns);
        if let Some(c) = trip.cost {
            point = point.field("cost", c);
        }
        self.inner
            .bookings
            .write_wait(&point)
            .await
            .map_err(|e| JobError::abort(format!("trip_bookings point: {e}")))?;
        self.step_done("metrics", clock)?;

        // 6. geo
        let (geo, active) = self.geo_keys();
        let redis = &self.inner.redis;
        let window_ms = self.inner.settings.active_window.as_millis() as u64;
        {
            let mut conn = redis.conn().await.map_err(hub_err)?;
            GEO_UPDATE
                .key(&geo)
                .key(&active)
                .arg(trip.user_id)
                .arg(last.lng)
                .arg(last.lat)
                .arg(last.timestamp)
                .arg(window_ms)
                .invoke_async::<i64>(&mut conn)
                .await
                .map_err(|e| hub_err(redis.command_error("geo update", &e)))?;
        }
        self.step_done("geo", clock)?;

        // 7. complete
        dataset
            .timed(
                "complete trip",
                sqlx::query(
                    "UPDATE trips SET status = 'completed', job_id = ? \
                     WHERE trip_id = ? AND status <> 'completed'",
                )
                .bind(job_id)
                .bind(&trip.trip_id)
                .execute(&mut *lock.conn()),
            )
            .await
            .map_err(hub_err)?;
        self.step_done("complete", clock)?;

        // 8. cache
        self.inner
            .cache
            .invalidate(&[Self::user_tag(trip.user_id)])
            .await
            .map_err(hub_err)?;
        self.step_done("cache", clock)?;

        // 9. publish
        let event = serde_json::json!({
            "event": "trip.completed",
            "tripId": trip.trip_id,
            "userId": trip.user_id,
            "mode": trip.mode,
            "distanceM": distance_m,
            "durationS": duration_s,
            "points": points,
            "jobId": job_id,
        });
        self.publish(&event).await.map_err(hub_err)?;
        self.step_done("publish", clock)?;

        Ok(Completed {
            trip_id: trip.trip_id.clone(),
            distance_m,
            duration_s,
            points,
            already_completed,
        })
    }

    async fn publish(&self, event: &serde_json::Value) -> Result<(), HubError> {
        let redis = &self.inner.redis;
        let mut conn = redis.conn().await?;
        redis::cmd("PUBLISH")
            .arg(self.events_channel())
            .arg(event.to_string())
            .query_async::<i64>(&mut conn)
            .await
            .map_err(|e| redis.command_error("publish", &e))?;
        Ok(())
    }

    /// Undoes what the attempts of dead job `job_id` wrote for `trip`, unless another job
    /// completed the trip. Idempotent.
    pub async fn compensate(
        &self,
        job_id: &str,
        trip: &TripCompletion,
    ) -> Result<Compensation, HubError> {
        let hub = &self.inner.hub;
        let dataset = hub.mysql("dataset")?;
        let mut lock = trip_lock(dataset, &trip.trip_id).await?;
        let r = self.undo(&mut lock, dataset, job_id, trip).await;
        lock.release().await;
        if let Ok(c) = &r {
            let result = match c {
                Compensation::Undone => "undone",
                Compensation::CompletedElsewhere => "completed_elsewhere",
                Compensation::NothingWritten => "nothing_written",
            };
            ::metrics::counter!("tsp_trips_compensations_total", "result" => result).increment(1);
        }
        r
    }

    async fn undo(
        &self,
        lock: &mut NamedLock,
        dataset: &MysqlStore,
        job_id: &str,
        trip: &TripCompletion,
    ) -> Result<Compensation, HubError> {
        let hub = &self.inner.hub;
        let row: Option<(String, Option<String>, u64)> = dataset
            .timed(
                "select trip",
                sqlx::query_as(
                    "SELECT CAST(status AS CHAR), job_id, user_id FROM trips WHERE trip_id = ?",
                )
                .bind(&trip.trip_id)
                .fetch_optional(&mut *lock.conn()),
            )
            .await?;
        if let Some((status, owner, _)) = &row
            && status == "completed"
            && owner.as_deref() != Some(job_id)
        {
            return Ok(Compensation::CompletedElsewhere);
        }
        // Another user's trip under this id is not this job's to undo.
        if let Some((_, _, user)) = &row
            && *user != trip.user_id
        {
            return Ok(Compensation::CompletedElsewhere);
        }
        let incentive = hub.mysql("incentive")?;
        let earns = incentive
            .timed(
                "delete earn",
                sqlx::query(
                    "DELETE FROM points_transactions WHERE reference_type = 'trip' \
                     AND reference_id = ? AND transaction_type = 'earn' AND user_id = ?",
                )
                .bind(&trip.trip_id)
                .bind(trip.user_id)
                .execute(incentive.pool()),
            )
            .await?
            .rows_affected();
        let mongo = hub.mongo("dataset")?;
        let db = mongo.database();
        let owned = doc! {"tripId": &trip.trip_id, "userId": trip.user_id as i64};
        let trajectories = mongo
            .timed(
                "delete trajectory",
                db.collection::<bson::Document>(TRAJECTORIES)
                    .delete_one(owned.clone()),
            )
            .await?
            .deleted_count;
        let activities = mongo
            .timed(
                "delete activity",
                db.collection::<bson::Document>(ACTIVITY_LOG)
                    .delete_one(owned),
            )
            .await?
            .deleted_count;
        let rows = dataset
            .timed(
                "delete trip",
                sqlx::query("DELETE FROM trips WHERE trip_id = ? AND user_id = ?")
                    .bind(&trip.trip_id)
                    .bind(trip.user_id)
                    .execute(&mut *lock.conn()),
            )
            .await?
            .rows_affected();
        if earns + trajectories + activities + rows == 0 {
            return Ok(Compensation::NothingWritten);
        }
        self.inner
            .cache
            .invalidate(&[Self::user_tag(trip.user_id)])
            .await?;
        self.publish(&serde_json::json!({
            "event": "trip.compensated",
            "tripId": trip.trip_id,
            "userId": trip.user_id,
            "jobId": job_id,
        }))
        .await?;
        Ok(Compensation::Undone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_stable() {
        // Lock names and point timestamps must not change between releases.
        assert_eq!(fnv1a(&[]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(&["a"]), fnv1a(&["a"]));
        assert_ne!(fnv1a(&["ab", "c"]), fnv1a(&["a", "bc"]));
        assert_eq!(fnv1a(&["trip-1"]), 0xeee0_5c00_91a5_d294);
    }
}
