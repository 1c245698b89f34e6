//! The `analytics.rollup` job: one day's completed trips, grouped in MySQL, replacing that
//! day's rollup documents (one MongoDB transaction) and `mobility_daily` points.
//!
//! Late trips: a trip lands in the day it started, and its job may run hours later. The
//! scheduled run (no `day` in the payload) therefore rolls up today and yesterday, so a trip
//! completed up to a day late is counted by the next hourly run; an older day is re-rolled by
//! running the job with that day (docs/analytics.md#late-trips).

use std::collections::HashMap;
use std::time::Instant;

use async_recursion::async_recursion as boxed;
use chrono::{NaiveDate, Utc};
use mongodb::bson::{Document, doc};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tsp_hub::{HubError, Point};
use tsp_queue::{JobContext, JobError, Registry};

use super::{DAILY, HourCount, JOB_TYPE, ModeDay, TAG, USER_DAILY, UserBucket, UserDay, day_key};
use crate::complete::Trips;

/// What one day's rollup did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RollupReport {
    /// The day.
    pub day: String,
    /// Completed trips counted.
    pub trips: u64,
    /// Modes with trips.
    pub modes: usize,
    /// Users with trips.
    pub users: usize,
    /// Time in MySQL's queries, ms.
    pub sql_ms: f64,
    /// Time in all, ms.
    pub total_ms: f64,
}

/// The payload: a day, or none for today and yesterday.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollupPayload {
    /// `YYYY-MM-DD` (UTC).
    #[serde(default)]
    pub day: Option<String>,
}

/// Registers `analytics.rollup` on `registry`.
pub fn register(trips: &Trips, registry: &mut Registry) {
    // Rewrites a day's analytics in two stores: an operator's act.
    registry.require(JOB_TYPE, "admin");
    let trips = trips.clone();
    registry.register(JOB_TYPE, move |_: JobContext, p: RollupPayload| {
        let trips = trips.clone();
        async move {
            let days = match &p.day {
                Some(d) => vec![
                    NaiveDate::parse_from_str(d, "%Y-%m-%d")
                        .map_err(|_| JobError::abort(format!("day: `{d}` is not YYYY-MM-DD")))?,
                ],
                None => {
                    let today = Utc::now().date_naive();
                    vec![today.pred_opt().unwrap_or(today), today]
                }
            };
            let mut reports = Vec::new();
            for day in days {
                reports.push(trips.rollup_day(day).await?);
            }
            Ok(serde_json::to_value(reports).unwrap_or_default())
        }
    });
}

const IDS_PER_QUERY: usize = 1000;

/// The rollup's `GROUP BY`s over a day's completed trips: columns, then what follows the day's
/// `WHERE`. Public so the benchmark times exactly these statements alone.
pub const GROUP_BYS: [(&str, &str); 3] = [
    (
        "mode, COUNT(*), CAST(COALESCE(SUM(distance_m), 0) AS DOUBLE), \
         CAST(COALESCE(SUM(duration_s), 0) AS SIGNED), COUNT(DISTINCT user_id), \
         CAST(COALESCE(SUM(points), 0) AS SIGNED)",
        "GROUP BY mode ORDER BY mode",
    ),
    (
        "user_id, COUNT(*), CAST(COALESCE(SUM(distance_m), 0) AS DOUBLE), \
         CAST(COALESCE(SUM(duration_s), 0) AS SIGNED), COUNT(DISTINCT mode), \
         GROUP_CONCAT(DISTINCT mode ORDER BY mode SEPARATOR ','), \
         CAST(COALESCE(SUM(points), 0) AS SIGNED)",
        "GROUP BY user_id ORDER BY user_id",
    ),
    (
        "CAST(HOUR(started_at) AS SIGNED) AS h, mode, COUNT(*), \
         CAST(COALESCE(SUM(distance_m), 0) AS DOUBLE), \
         CAST(COALESCE(SUM(points), 0) AS SIGNED)",
        "GROUP BY h, mode ORDER BY h, mode",
    ),
];

/// The full statement of one of [`GROUP_BYS`], with two `?` for the day's range.
pub fn day_sql(columns: &str, tail: &str) -> String {
    format!(
        "SELECT {columns} FROM trips \
         WHERE status = 'completed' AND started_at >= ? AND started_at < ? {tail}"
    )
}

/// The day's completed trips grouped in MySQL: per mode, per user, per hour and mode.
struct Grouped {
    modes: Vec<ModeDay>,
    users: Vec<UserDay>,
}

impl Trips {
    /// Rolls up `day`: replaces its documents and points with what MySQL holds now.
    #[boxed]
    pub async fn rollup_day(&self, day: NaiveDate) -> Result<RollupReport, HubError> {
        let started = Instant::now();
        self.fill_points(day).await?;
        let g = self.group_day(day).await?;
        let sql_ms = started.elapsed().as_secs_f64() * 1000.0;
        self.replace_documents(day, &g).await?;
        self.write_points(day, &g.modes).await;
        self.cache().invalidate(&[TAG.to_string()]).await?;
        Ok(RollupReport {
            day: day_key(day),
            trips: g.modes.iter().map(|m| m.trips).sum(),
            modes: g.modes.len(),
            users: g.users.len(),
            sql_ms,
            total_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    async fn group_day(&self, day: NaiveDate) -> Result<Grouped, HubError> {
        let from = day.and_hms_opt(0, 0, 0).unwrap_or_default();
        let to = from + chrono::Duration::days(1);
        let key = day_key(day);
        let [(modes, columns), (users, ucols), (hours, hcols)] = GROUP_BYS;
        let modes = self
            .day_rows("rollup modes", modes, columns, (from, to))
            .await?;
        let users = self
            .day_rows("rollup users", users, ucols, (from, to))
            .await?;
        let hours = self
            .day_rows("rollup hours", hours, hcols, (from, to))
            .await?;
        let mut modes: Vec<ModeDay> = modes.iter().map(|r| mode_day(&key, r)).collect();
        for r in &hours {
            let mode: String = r.get(1);
            if let Some(m) = modes.iter_mut().find(|m| m.mode == mode) {
                m.hours.push(hour_count(r));
            }
        }
        Ok(Grouped {
            modes,
            users: users.iter().map(|r| user_day(&key, r)).collect(),
        })
    }

    /// `SELECT columns FROM trips` over the day's completed trips, then `tail`.
    async fn day_rows(
        &self,
        op: &str,
        columns: &str,
        tail: &str,
        (from, to): (chrono::NaiveDateTime, chrono::NaiveDateTime),
    ) -> Result<Vec<sqlx::mysql::MySqlRow>, HubError> {
        let dataset = &self.stores().dataset;
        let sql = day_sql(columns, tail);
        dataset
            .timed(
                op,
                sqlx::query(&sql)
                    .bind(from)
                    .bind(to)
                    .fetch_all(dataset.pool()),
            )
            .await
    }

    /// Fills the points of the day's completed trips that have none yet (rows from before the
    /// trips row carried its points) from the ledger in `incentive`, a thousand per query. Once
    /// a day's rows are filled, this finds nothing to do.
    async fn fill_points(&self, day: NaiveDate) -> Result<(), HubError> {
        let from = day.and_hms_opt(0, 0, 0).unwrap_or_default();
        let to = from + chrono::Duration::days(1);
        let missing: Vec<String> = self
            .day_rows(
                "rollup unfilled",
                "trip_id",
                "AND points IS NULL",
                (from, to),
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let (dataset, incentive) = (&self.stores().dataset, &self.stores().incentive);
        for chunk in missing.chunks(IDS_PER_QUERY) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!(
                "SELECT reference_id, CAST(SUM(points) AS SIGNED) FROM points_transactions \
                 WHERE reference_type = 'trip' AND reference_id IN ({marks}) GROUP BY reference_id"
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            let rows = incentive
                .timed("rollup points", q.fetch_all(incentive.pool()))
                .await?;
            let found: HashMap<String, i64> = rows
                .iter()
                .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
                .collect();
            for id in chunk {
                let points = found.get(id).copied().unwrap_or(0);
                dataset
                    .timed(
                        "rollup fill points",
                        sqlx::query(
                            "UPDATE trips SET points = ? WHERE trip_id = ? AND points IS NULL",
                        )
                        .bind(points)
                        .bind(id)
                        .execute(dataset.pool()),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Replaces the day's documents in both collections, in one transaction: a reader sees
    /// the old day or the new one, never a mix.
    async fn replace_documents(&self, day: NaiveDate, g: &Grouped) -> Result<(), HubError> {
        fn docs<T: Serialize>(items: &[T]) -> Vec<Document> {
            items
                .iter()
                .filter_map(|i| mongodb::bson::to_document(i).ok())
                .collect()
        }
        let mongo = &self.stores().documents;
        let filter = doc! {"day": day_key(day)};
        let db = mongo.database();
        let mut session = mongo
            .timed("start session", mongo.client().start_session())
            .await?;
        mongo
            .timed("start transaction", session.start_transaction())
            .await?;
        let buckets = UserBucket::of(&day_key(day), &g.users);
        for (name, docs) in [(DAILY, docs(&g.modes)), (USER_DAILY, docs(&buckets))] {
            let coll = db.collection::<Document>(name);
            mongo
                .timed(
                    "rollup",
                    coll.delete_many(filter.clone()).session(&mut session),
                )
                .await?;
            if !docs.is_empty() {
                mongo
                    .timed("rollup", coll.insert_many(docs).session(&mut session))
                    .await?;
            }
        }
        mongo.timed("commit", session.commit_transaction()).await
    }

    /// One `mobility_daily` point per mode (every mode, zeros where there were no trips) at the
    /// day's midnight (UTC): a re-run overwrites the same points, also when a mode's trips
    /// were all compensated since.
    async fn write_points(&self, day: NaiveDate, modes: &[ModeDay]) {
        let writer = self.stores().metrics.writer();
        let at = day
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc()
            .timestamp_nanos_opt()
            .unwrap_or(0);
        for mode in crate::trip::MODES {
            let m = modes.iter().find(|m| m.mode == *mode);
            // The writer adds the deployment tags (`influx.tags.*`) to every point.
            let point = Point::new("mobility_daily")
                .tag("mode", *mode)
                .field("trips", m.map_or(0, |m| m.trips as i64))
                .field("distance_km", m.map_or(0.0, |m| m.distance_m / 1000.0))
                .field("points", m.map_or(0, |m| m.points))
                .field("active_users", m.map_or(0, |m| m.active_users as i64))
                .timestamp_ns(at);
            if let Err(e) = writer.write_wait(&point).await {
                tracing::warn!(error = %e, "mobility_daily point refused");
            }
        }
    }
}

fn mode_day(day: &str, r: &sqlx::mysql::MySqlRow) -> ModeDay {
    ModeDay {
        day: day.to_string(),
        mode: r.get(0),
        trips: r.get::<i64, _>(1) as u64,
        distance_m: r.get(2),
        duration_s: r.get(3),
        points: r.get(5),
        active_users: r.get::<i64, _>(4) as u64,
        hours: Vec::new(),
    }
}

fn user_day(day: &str, r: &sqlx::mysql::MySqlRow) -> UserDay {
    UserDay {
        day: day.to_string(),
        user_id: r.get(0),
        trips: r.get::<i64, _>(1) as u64,
        distance_m: r.get(2),
        duration_s: r.get(3),
        points: r.get(6),
        modes: r.get::<i64, _>(4) as u32,
        mode_list: r
            .get::<String, _>(5)
            .split(',')
            .map(str::to_string)
            .collect(),
    }
}

fn hour_count(r: &sqlx::mysql::MySqlRow) -> HourCount {
    HourCount {
        hour: r.get::<i64, _>(0) as u32,
        trips: r.get::<i64, _>(2) as u64,
        distance_m: r.get(3),
        points: r.get(4),
    }
}
