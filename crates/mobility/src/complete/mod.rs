//! The `trip.complete` job: one completed trip, written consistently to every store, and its
//! compensation when the job fails for good.
//!
//! The nine steps, why each is idempotent, how attempts and compensations of a trip never
//! overlap, and the invariant the consistency drill checks: docs/consistency.md. One function
//! per step is in `steps`; the compensation in `compensate`.

mod attempt;
mod batched;
mod claims;
mod compensate;
mod held;
mod history;
mod steps;
mod timings;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_recursion::async_recursion as boxed;
use serde::Serialize;
use tsp_config::{FaultMode, TripSettings};
use tsp_hub::NamedLock;
use tsp_hub::{Cache, HubError, InsertBatcher, MysqlStore, PointWriter};
use tsp_queue::{
    BatchJob, BatchOptions, JobContext, JobError, JobRules, NewJob, PayloadError, Registry,
};

use crate::stores::TripStores;
use crate::trip::{Plausibility, TripCompletion};
pub use claims::{CLAIM_TTL, Claim};
pub use compensate::Compensation;
pub use steps::TRANSIT_MODES;
pub use timings::StepTiming;
use timings::Timings;

/// The job type.
pub const JOB_TYPE: &str = "trip.complete";
/// The MongoDB collection of trip trajectories (`dataset`).
pub const TRAJECTORIES: &str = "trip_trajectories";
/// The MongoDB collection of user activities (`dataset`).
pub const ACTIVITY_LOG: &str = "activity_log";
/// How long an attempt waits for another attempt (or compensation) of the same trip.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// The steps, in order (names as `trips.fault.step` takes them).
pub const STEPS: &[&str] = tsp_config::schema::FAULT_STEPS.split_at(1).1;

/// What a completed job returns (its result in the queue).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Completed {
    /// The trip's id.
    pub trip_id: String,
    /// Its distance along the trajectory, in metres.
    pub distance_m: f64,
    /// From its first fix to its last, in seconds.
    pub duration_s: f64,
    /// Points awarded for it.
    pub points: i64,
    /// Points it would have earned beyond the user's cap for the day (not awarded).
    #[serde(default)]
    pub points_capped: i64,
    /// The trip had been completed before (a redelivered or resubmitted job).
    pub already_completed: bool,
}

struct Inner {
    timings: Timings,
    held: held::HeldLocks,
    trajectories: InsertBatcher,
    activities: InsertBatcher,
    stores: TripStores,
    /// `gtfs.feed`: the feed whose stops a trip's nearest stops come from.
    feed: String,
    cache: Cache,
    settings: TripSettings,
    plausibility: Plausibility,
    bookings: PointWriter,
}

/// The trip flows on one hub: the job, its compensation, and (see `queries`) the reads.
#[derive(Clone)]
pub struct Trips {
    inner: Arc<Inner>,
}

/// A stable hash of `parts`, each followed by a zero byte (so `["ab", "c"]` and `["a", "bc"]`
/// differ), for lock names and point timestamps.
fn fnv1a(parts: &[&str]) -> u64 {
    crate::fnv1a(parts.iter().flat_map(|p| p.bytes().chain([0u8])))
}

/// The trip's named lock on `dataset` (see docs/consistency.md), held on the connection that
/// writes the trips row.
async fn trip_lock(store: &MysqlStore, trip_id: &str) -> Result<NamedLock, HubError> {
    let name = lock_name(store, trip_id);
    NamedLock::acquire(store, &name, LOCK_WAIT, "another attempt of this trip").await
}

/// The name of a trip's lock: the same for a single attempt, a batch and a compensation.
fn lock_name(store: &MysqlStore, trip_id: &str) -> String {
    format!("tsp.trip.{:016x}", fnv1a(&[store.database_name(), trip_id]))
}

impl Trips {
    /// The trip flows on `stores`, with the nearest stops from `feed` (`gtfs.feed`),
    /// invalidating through `cache`.
    pub fn new(stores: TripStores, settings: TripSettings, feed: String, cache: Cache) -> Trips {
        let documents = stores.documents.clone();
        Trips {
            inner: Arc::new(Inner {
                timings: Timings::default(),
                held: held::HeldLocks::default(),
                trajectories: InsertBatcher::start(documents.clone(), TRAJECTORIES, 256),
                activities: InsertBatcher::start(documents, ACTIVITY_LOG, 256),
                bookings: stores.metrics.writer(),
                stores,
                feed,
                cache,
                plausibility: Plausibility::from_settings(&settings),
                settings,
            }),
        }
    }

    /// The store instances the flows use.
    pub fn stores(&self) -> &TripStores {
        &self.inner.stores
    }

    /// The query cache the trip flows invalidate.
    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    /// The `trips.*` settings.
    pub fn settings(&self) -> &TripSettings {
        &self.inner.settings
    }

    /// The Redis GEO set of user positions and the sorted set of last-active times.
    pub(crate) fn geo_keys(&self) -> (String, String) {
        let p = self.inner.stores.redis.key_prefix();
        (format!("{p}{{users}}:geo"), format!("{p}{{users}}:active"))
    }

    /// The pub/sub channel of trip events (`trip.completed`, `trip.compensated`).
    pub fn events_channel(&self) -> String {
        format!("{}events:trips", self.inner.stores.redis.key_prefix())
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

    /// The rules producers apply to a trip before it is queued: it must pass
    /// [`TripCompletion::validate`] and [`TripCompletion::plausible`], and it is deduplicated
    /// on its user and trip id while pending.
    pub fn rules(&self) -> JobRules<TripCompletion> {
        let plausibility = self.inner.plausibility.clone();
        JobRules::new()
            .check(move |trip: &TripCompletion| {
                trip.validate()
                    .and_then(|()| trip.plausible(&plausibility))
                    .map_err(|e| PayloadError {
                        field: e.field,
                        message: e.message,
                    })
            })
            .dedup_key(|trip: &TripCompletion| dedup_key(trip))
    }

    /// Registers the job, its rules and its compensation on `registry`: a batch handler
    /// collecting batches as `batches` says when `trips.batch` is on
    /// (docs/consistency.md#batches), else one job at a time.
    pub fn register(&self, registry: &mut Registry, batches: BatchOptions) {
        let me = self.clone();
        if self.inner.settings.batch {
            registry.register_batch(
                JOB_TYPE,
                batches,
                self.rules(),
                move |jobs: Vec<BatchJob<TripCompletion>>| {
                    let me = me.clone();
                    async move {
                        let pairs: Vec<(String, TripCompletion)> =
                            jobs.into_iter().map(|j| (j.ctx.id, j.payload)).collect();
                        me.complete_batch(&pairs).await
                    }
                },
            );
        } else {
            registry.register_with(
                JOB_TYPE,
                self.rules(),
                move |ctx: JobContext, trip: TripCompletion| {
                    let me = me.clone();
                    async move { me.complete(&ctx.id, &trip).await }
                },
            );
        }
        // Enqueued for any user with `trips:write`; a user's own trips are the API's exception.
        registry.require(JOB_TYPE, "trips:write");
        let me = self.clone();
        registry.on_dead(JOB_TYPE, move |id: String, trip: TripCompletion| {
            let me = me.clone();
            async move { me.compensate(&id, &trip).await.map(|_| ()) }
        });
    }

    /// The trajectory and activity documents the job writes for `trip` (no nearest stops): what
    /// `tsp-bench trips --ceiling` inserts alone.
    pub fn documents(
        &self,
        job_id: &str,
        trip: &TripCompletion,
    ) -> Option<(mongodb::bson::Document, mongodb::bson::Document)> {
        let a = attempt::Attempt::new(self, job_id, trip)?;
        Some((steps::trajectory(&a, None), steps::activity(&a)))
    }

    /// Waits until every `trip_bookings` point accepted so far is written (or given up).
    #[boxed]
    pub async fn flush_bookings(&self) {
        self.inner.bookings.flush().await;
    }

    /// The queue job for a trip: deduplicated on its user and trip id while pending.
    pub fn job(trip: &TripCompletion) -> Result<NewJob, tsp_queue::QueueError> {
        Ok(NewJob::new(JOB_TYPE, trip)?.with_dedup_key(dedup_key(trip)))
    }

    /// Records the time since `clock` as `step`'s (its span, [`step_span`], has ended), restarts
    /// the clock, then injects a fault
    /// when configured.
    fn step_done(&self, step: &str, clock: &mut Instant) -> Result<(), JobError> {
        let took = clock.elapsed();
        self.inner.timings.record(step, took);
        ::metrics::histogram!(crate::metrics::TRIP_STEP, "step" => step.to_string())
            .record(took.as_secs_f64());
        *clock = Instant::now();
        self.fault(step)
    }

    /// Time spent per step so far in this process (attempts that reached the step).
    pub fn step_timings(&self) -> Vec<StepTiming> {
        self.inner.timings.snapshot()
    }

    /// The most trips that held their lock at once in this process: one job at a time, each
    /// holds a `dataset` connection, so never more than its pool; in batches, many share one.
    pub fn peak_trips_locked(&self) -> usize {
        self.inner.held.peak()
    }

    /// A drill's fault after `step`, when configured (`trips.fault.*`).
    fn fault(&self, step: &str) -> Result<(), JobError> {
        let f = &self.inner.settings.fault;
        if f.mode == FaultMode::Off
            || f.rate == 0
            || f.step.as_deref().is_some_and(|only| only != step)
            || rand::random_range(0..1000) >= f.rate
        {
            return Ok(());
        }
        match f.mode {
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
        let portal = &self.inner.stores.portal;
        portal
            .timed(
                "select user",
                sqlx::query_scalar("SELECT CAST(status AS CHAR) FROM users WHERE id = ?")
                    .bind(user_id)
                    .fetch_optional(portal.pool()),
            )
            .await
    }

    /// Runs the job for one trip (see docs/consistency.md).
    #[boxed]
    pub async fn complete(
        &self,
        job_id: &str,
        trip: &TripCompletion,
    ) -> Result<Completed, JobError> {
        let clock = Instant::now();
        trip.validate()
            .and_then(|()| trip.plausible(&self.inner.plausibility))
            .map_err(JobError::abort)?;
        match self.user_status(trip.user_id).await?.as_deref() {
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
        let dataset = &self.inner.stores.dataset;
        let mut lock = trip_lock(dataset, &trip.trip_id).await?;
        let held = self.inner.held.hold(1);
        self.inner.timings.record("prepare", clock.elapsed());
        let r = self.steps(&mut lock, job_id, trip).await;
        lock.release().await;
        drop(held);
        if let Ok(done) = &r {
            let kind = if done.already_completed {
                "again"
            } else {
                "new"
            };
            ::metrics::counter!(crate::metrics::TRIPS_COMPLETED, "kind" => kind).increment(1);
        }
        r
    }

    async fn publish(&self, event: &serde_json::Value) -> Result<(), HubError> {
        let redis = &self.inner.stores.redis;
        let mut conn = redis.conn().await?;
        redis::cmd("PUBLISH")
            .arg(self.events_channel())
            .arg(event.to_string())
            .query_async::<i64>(&mut conn)
            .await
            .map_err(|e| redis.command_error("publish", &e))?;
        Ok(())
    }
}

/// A trip's dedup key in the queue: per user, so a job of one user never swallows another
/// user's submission of the same trip id (claims keep the id itself to one user: `claims`).
fn dedup_key(trip: &TripCompletion) -> String {
    format!("trip:{}:{}", trip.user_id, trip.trip_id)
}

pub(crate) fn ms_to_naive(ms: i64) -> chrono::NaiveDateTime {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .naive_utc()
}

/// The span of one step of `trip.complete` (docs/metrics.md#traces).
fn step_span(step: &'static str) -> tracing::Span {
    tracing::info_span!("trip.step", step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_stable() {
        // Lock names and point timestamps must not change between releases.
        assert_eq!(fnv1a(&[]), 0xcbf2_9ce4_8422_2325);
        assert_ne!(fnv1a(&["ab", "c"]), fnv1a(&["a", "bc"]));
        assert_eq!(fnv1a(&["trip-1"]), 0xeee0_5c00_91a5_d294);
    }
}
