//! The nine steps of a trip's attempt, one function each, in order (docs/consistency.md). Each
//! is idempotent on the trip id, so a retried attempt finds what an earlier one wrote.

use std::sync::LazyLock;
use std::time::Instant;

use mongodb::bson::{self, Bson, Document, doc};
use redis::{Script, ScriptInvocation};
use tracing::Instrument;
use tsp_hub::NamedLock;
use tsp_hub::Point;
use tsp_queue::JobError;

use super::attempt::Attempt;
use super::history::{USER_WAIT, Verdict, user_lock_name};
use super::{Completed, Trips, fnv1a, ms_to_naive, step_span};
use crate::trip::TripCompletion;

/// See `geo.lua`.
pub(super) static GEO_UPDATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("geo.lua")));
/// See `nearest.lua`.
pub(super) static NEAREST_STOPS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("nearest.lua")));

/// Modes whose trajectories record the nearest transit stops of their start and end.
pub const TRANSIT_MODES: &[&str] = &["bus", "tram", "metro", "train", "ferry"];
/// `GEOSEARCH … COUNT 1 WITHDIST`: the nearest stop and its distance, or nothing in range.
pub(super) type Nearest = Vec<(String, f64)>;
/// How far a trip's end may be from a stop for the stop to count as its stop.
const STOP_RADIUS_M: u32 = 500;

impl Attempt<'_> {
    /// Applies the history's verdict: the points to award, or the refusal (a dead job naming
    /// the rule).
    pub(super) fn judged(&mut self, verdict: Verdict) -> Result<(), JobError> {
        match verdict {
            Verdict::Record {
                award,
                capped,
                first,
            } => {
                if capped > 0 && first {
                    ::metrics::counter!(crate::metrics::POINTS_CAPPED).increment(capped as u64);
                }
                self.points = award;
                self.capped = capped;
                Ok(())
            }
            Verdict::Refuse(why) => {
                ::metrics::counter!(crate::metrics::TRIPS_REFUSED, "rule" => "overlap")
                    .increment(1);
                Err(JobError::abort(why))
            }
        }
    }
}

impl Trips {
    /// Runs the steps under the trip's lock; `clock` started when the lock was taken.
    pub(super) async fn steps(
        &self,
        lock: &mut NamedLock,
        job_id: &str,
        trip: &TripCompletion,
    ) -> Result<Completed, JobError> {
        let Some(mut a) = Attempt::new(self, job_id, trip) else {
            return Err(JobError::abort("trajectory: needs at least two points"));
        };
        let clock = &mut Instant::now();
        let already_completed = self.judge_and_record(lock, &mut a, clock).await?;
        let trajectory = async {
            let stops = self.nearest_stops(&a).await?;
            let doc = trajectory(&a, stops);
            Ok::<_, JobError>(self.inner.trajectories.insert(doc).await?)
        };
        trajectory.instrument(step_span("trajectory")).await?;
        self.step_done("trajectory", clock)?;
        let activities = self.inner.activities.insert(activity(&a));
        activities.instrument(step_span("activity")).await?;
        self.step_done("activity", clock)?;
        let booking = self.write_booking(&a);
        booking.instrument(step_span("metrics")).await?;
        self.step_done("metrics", clock)?;
        let position = self.update_position(&a);
        position.instrument(step_span("geo")).await?;
        self.step_done("geo", clock)?;
        let completed = self.mark_completed(lock, &a);
        completed.instrument(step_span("complete")).await?;
        self.step_done("complete", clock)?;
        let tags = [Self::user_tag(trip.user_id)];
        let invalidated = self.inner.cache.invalidate(&tags);
        invalidated.instrument(step_span("cache")).await?;
        self.step_done("cache", clock)?;
        let event = completed_event(&a);
        self.publish(&event)
            .instrument(step_span("publish"))
            .await?;
        self.step_done("publish", clock)?;
        Ok(a.completed(already_completed))
    }

    /// Under the user's lock: the trip judged against the user's history (`history`), then
    /// steps 1 and 2, so the next trip of the user judged sees this one's row and points.
    async fn judge_and_record(
        &self,
        lock: &mut NamedLock,
        a: &mut Attempt<'_>,
        clock: &mut Instant,
    ) -> Result<bool, JobError> {
        let dataset = &self.inner.stores.dataset;
        let user = [user_lock_name(dataset, a.trip.user_id)];
        if !lock.also(dataset, &user, USER_WAIT).await? {
            return Err(JobError::retry(format!(
                "another trip of user {} is being recorded",
                a.trip.user_id
            )));
        }
        let recorded = async {
            let verdict = self.judge(lock.conn(), &[&*a]).await?;
            if let Some(v) = verdict.into_iter().next() {
                a.judged(v)?;
            }
            let inserted = self.insert_trip(lock, a);
            let already_completed = inserted.instrument(step_span("trip")).await?;
            self.step_done("trip", clock)?;
            self.insert_earn(a).instrument(step_span("points")).await?;
            self.step_done("points", clock)?;
            Ok(already_completed)
        }
        .await;
        lock.release_also(&user).await;
        recorded
    }

    /// Step 1: The `dataset.trips` row, status `active` (a no-op when it exists). Returns whether
    /// the trip was completed already; refuses a trip id that belongs to another user.
    async fn insert_trip(&self, lock: &mut NamedLock, a: &Attempt<'_>) -> Result<bool, JobError> {
        let (trip, dataset) = (a.trip, &self.inner.stores.dataset);
        dataset
            .timed(
                "insert trip",
                sqlx::query(
                    "INSERT INTO trips (trip_id, user_id, mode, status, started_at, ended_at, \
                     distance_m, duration_s, points, cost, start_lat, start_lng, end_lat, end_lng) \
                     VALUES (?, ?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                     ON DUPLICATE KEY UPDATE trip_id = trip_id",
                )
                .bind(&trip.trip_id)
                .bind(trip.user_id)
                .bind(&trip.mode)
                .bind(ms_to_naive(a.first.timestamp))
                .bind(ms_to_naive(a.last.timestamp))
                .bind(a.distance_m)
                .bind(a.duration_s.round() as u32)
                .bind(a.points)
                .bind(trip.cost)
                .bind(a.first.lat)
                .bind(a.first.lng)
                .bind(a.last.lat)
                .bind(a.last.lng)
                .execute(&mut *lock.conn()),
            )
            .await?;
        let (owner, status): (u64, String) = dataset
            .timed(
                "select trip",
                sqlx::query_as("SELECT user_id, CAST(status AS CHAR) FROM trips WHERE trip_id = ?")
                    .bind(&trip.trip_id)
                    .fetch_one(&mut *lock.conn()),
            )
            .await?;
        if owner != trip.user_id {
            return Err(JobError::abort(format!(
                "tripId: trip {} belongs to another user",
                trip.trip_id
            )));
        }
        Ok(status == "completed")
    }

    /// Step 2: The `earn` transaction in `incentive.points_transactions` (unique per trip).
    async fn insert_earn(&self, a: &Attempt<'_>) -> Result<(), JobError> {
        let (trip, incentive) = (a.trip, &self.inner.stores.incentive);
        incentive
            .timed(
                "insert earn",
                sqlx::query(
                    "INSERT INTO points_transactions (user_id, transaction_type, points, \
                     reference_type, reference_id, description, created_at) \
                     VALUES (?, 'earn', ?, 'trip', ?, ?, ?) ON DUPLICATE KEY UPDATE id = id",
                )
                .bind(trip.user_id)
                .bind(a.points)
                .bind(&trip.trip_id)
                .bind(format!(
                    "{} trip, {:.1} km",
                    trip.mode,
                    a.distance_m / 1000.0
                ))
                .bind(ms_to_naive(a.last.timestamp))
                .execute(incentive.pool()),
            )
            .await?;
        Ok(())
    }

    /// Step 5: A `trip_bookings` point. Its timestamp is the trip's end plus a per-trip offset below
    /// 1 ms, so a rewrite replaces the point and two trips ending in the same millisecond do
    /// not collide.
    async fn write_booking(&self, a: &Attempt<'_>) -> Result<(), JobError> {
        self.inner
            .bookings
            .write_wait(&booking(a))
            .await
            .map_err(|e| JobError::abort(format!("trip_bookings point: {e}")))
    }

    /// Step 6: The user's position in the Redis GEO set and last-active time, unless a later trip
    /// already moved them (see `geo.lua`).
    async fn update_position(&self, a: &Attempt<'_>) -> Result<(), JobError> {
        let redis = &self.inner.stores.redis;
        let mut conn = redis.conn().await?;
        self.geo_call(a)
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(|e| redis.command_error("geo update", &e))?;
        Ok(())
    }

    /// For a transit trip, the nearest stops (within 500 m) of its start and end in the live
    /// version of `gtfs.feed`, from the Redis GEO set; `None` for other modes or when no feed
    /// is imported. Part of step 3: the document records them (docs/gtfs.md#trips).
    async fn nearest_stops(&self, a: &Attempt<'_>) -> Result<Option<Document>, JobError> {
        if !TRANSIT_MODES.contains(&a.trip.mode.as_str()) {
            return Ok(None);
        }
        let redis = &self.inner.stores.redis;
        let mut conn = redis.conn().await?;
        let found: Option<(String, Nearest, Nearest)> = nearest_call(&self.stop_keys(), a)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| redis.command_error("nearest stops", &e))?;
        Ok(stops_document(&self.inner.feed, found))
    }

    /// The `geo.lua` call of step 6 for `a`.
    pub(super) fn geo_call(&self, a: &Attempt<'_>) -> ScriptInvocation<'static> {
        let (geo, active) = self.geo_keys();
        let window_ms = self.inner.settings.active_window.as_millis() as u64;
        let mut call = GEO_UPDATE.key(geo);
        call.key(active)
            .arg(a.trip.user_id)
            .arg(a.last.lng)
            .arg(a.last.lat)
            .arg(a.last.timestamp)
            .arg(window_ms);
        call
    }

    /// The Redis keys `nearest.lua` reads for `gtfs.feed`: its live pointer, and the prefix of
    /// its versions' GEO sets.
    pub(super) fn stop_keys(&self) -> (String, String) {
        let redis = &self.inner.stores.redis;
        let feed = &self.inner.feed;
        (
            crate::gtfs::sync::live_key(redis, feed),
            crate::gtfs::sync::versions_base(redis, feed),
        )
    }

    /// Step 7: The trips row becomes `completed`, recording this job's id (once).
    async fn mark_completed(&self, lock: &mut NamedLock, a: &Attempt<'_>) -> Result<(), JobError> {
        self.inner
            .stores
            .dataset
            .timed(
                "complete trip",
                sqlx::query(
                    "UPDATE trips SET status = 'completed', job_id = ? \
                     WHERE trip_id = ? AND status <> 'completed'",
                )
                .bind(a.job_id)
                .bind(&a.trip.trip_id)
                .execute(&mut *lock.conn()),
            )
            .await?;
        Ok(())
    }
}

/// The `nearest.lua` call for `a`'s first and last fix, on `keys` (see [`Trips::stop_keys`]).
pub(super) fn nearest_call(keys: &(String, String), a: &Attempt<'_>) -> ScriptInvocation<'static> {
    let mut call = NEAREST_STOPS.key(&keys.0);
    call.arg(&keys.1)
        .arg(a.first.lng)
        .arg(a.first.lat)
        .arg(a.last.lng)
        .arg(a.last.lat)
        .arg(STOP_RADIUS_M);
    call
}

/// What `nearest.lua` found, as the trajectory document records it (`None`: no live version).
pub(super) fn stops_document(
    feed: &str,
    found: Option<(String, Nearest, Nearest)>,
) -> Option<Document> {
    let (version, start, end) = found?;
    let stop = |found: &[(String, f64)]| match found.first() {
        Some((id, m)) => Bson::Document(doc! {"stopId": id, "distanceM": m.round()}),
        None => Bson::Null,
    };
    Some(doc! {
        "feed": feed,
        "version": version.parse::<i64>().unwrap_or(0),
        "start": stop(&start),
        "end": stop(&end),
    })
}

/// Step 5: A trip's `trip_bookings` point. Its timestamp is the trip's end plus a per-trip offset
/// below 1 ms, so a rewrite replaces the point and two trips ending in the same millisecond do
/// not collide.
pub(super) fn booking(a: &Attempt<'_>) -> Point {
    let trip = a.trip;
    let offset_ns = (fnv1a(&[&trip.trip_id]) % 1_000_000) as i64;
    let mut point = Point::new("trip_bookings")
        .tag("mode", &trip.mode)
        .field("distance_m", a.distance_m)
        .field("duration_s", a.duration_s)
        .field("points", a.points)
        .field("count", 1i64)
        .timestamp_ns(a.last.timestamp * 1_000_000 + offset_ns);
    if let Some(c) = trip.cost {
        point = point.field("cost", c);
    }
    point
}

/// Step 3: The `dataset.trip_trajectories` document (GeoJSON start and end, every fix), inserted
/// if absent on the unique `tripId`: the first write wins.
pub(super) fn trajectory(a: &Attempt<'_>, stops: Option<Document>) -> Document {
    let trip = a.trip;
    let track: Vec<Bson> = trip
        .trajectory
        .iter()
        .map(|p| {
            let mut d = doc! {
                "lat": p.lat,
                "lng": p.lng,
                "timestamp": bson::DateTime::from_millis(p.timestamp),
            };
            if let Some(acc) = p.accuracy {
                d.insert("accuracy", acc);
            }
            if let Some(s) = p.speed {
                d.insert("speed", s);
            }
            Bson::Document(d)
        })
        .collect();
    doc! {
        "tripId": &trip.trip_id,
        "userId": trip.user_id as i64,
        "mode": &trip.mode,
        "startLocation": {"type": "Point", "coordinates": [a.first.lng, a.first.lat]},
        "endLocation": {"type": "Point", "coordinates": [a.last.lng, a.last.lat]},
        "points": track,
        "distanceM": a.distance_m,
        "durationS": a.duration_s,
        "startedAt": bson::DateTime::from_millis(a.first.timestamp),
        "createdAt": bson::DateTime::from_millis(a.last.timestamp),
        "stops": stops,
    }
}

/// Step 4: The `dataset.activity_log` document, keyed by the trip.
pub(super) fn activity(a: &Attempt<'_>) -> Document {
    let trip = a.trip;
    let mut activity = doc! {
        "_id": format!("trip.completed:{}", trip.trip_id),
        "userId": trip.user_id as i64,
        "type": "trip.completed",
        "tripId": &trip.trip_id,
        "mode": &trip.mode,
        "distanceM": a.distance_m,
        "durationS": a.duration_s,
        "points": a.points,
        "at": bson::DateTime::from_millis(a.last.timestamp),
    };
    if let Some(c) = trip.cost {
        activity.insert("cost", c);
    }
    activity
}

/// Step 9: The `trip.completed` event.
pub(super) fn completed_event(a: &Attempt<'_>) -> serde_json::Value {
    serde_json::json!({
        "event": "trip.completed",
        "tripId": a.trip.trip_id,
        "userId": a.trip.user_id,
        "mode": a.trip.mode,
        "distanceM": a.distance_m,
        "durationS": a.duration_s,
        "points": a.points,
        "jobId": a.job_id,
    })
}
