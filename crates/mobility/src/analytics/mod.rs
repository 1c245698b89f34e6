//! The analytics flow (docs/analytics.md): completed trips in MySQL, the source of truth, are
//! rolled up per day (by mode and by user) into MongoDB; the query routes read the rollups
//! through the two-level cache; each rollup also writes `mobility_daily` points to InfluxDB.
//!
//! - `rollup`: the `analytics.rollup` job: SQL `GROUP BY` over a day, then one replacement of
//!   that day's documents and points.
//! - `engagement`: the per-user sums behind `/analytics/engagement`.
//! - `reads`: the rollup queries behind `/analytics/daily`, `/analytics/modes` and
//!   `/analytics/users/{id}/daily`.

mod engagement;
mod reads;
mod rollup;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub use engagement::{Engagement, EngagementReport};
pub use reads::{DayRange, MAX_DAYS, ModeTotals};
pub use rollup::{GROUP_BYS, RollupPayload, RollupReport, day_sql, register};

/// The job type.
pub const JOB_TYPE: &str = "analytics.rollup";
/// Per day and mode.
pub const DAILY: &str = "analytics_daily";
/// Per day and user, in buckets of [`USERS_PER_BUCKET`] consecutive user ids.
pub const USER_DAILY: &str = "analytics_user_daily";
/// User ids per `analytics_user_daily` document: one document holds a day's users of one
/// bucket (`user_id / USERS_PER_BUCKET`), keyed by id, so a day is a few documents instead of
/// one per user, and one user's days are read with a projection (docs/analytics.md#user-buckets).
pub const USERS_PER_BUCKET: u64 = 1000;
/// The cache tag of every analytics answer: a rollup invalidates it.
pub const TAG: &str = "analytics";

/// One day and mode, as rolled up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModeDay {
    /// The day (UTC), `YYYY-MM-DD`.
    pub day: String,
    /// The mode.
    pub mode: String,
    /// Completed trips started that day.
    pub trips: u64,
    /// Their distance, metres.
    pub distance_m: f64,
    /// Their duration, seconds.
    pub duration_s: i64,
    /// Points they hold now (earned, less any reversal).
    pub points: i64,
    /// Distinct users.
    pub active_users: u64,
    /// The day's hours with trips (kept in the day's document: one document per mode and day
    /// rather than one per hour; left out of range queries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hours: Vec<HourCount>,
}

/// One hour of a mode's day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HourCount {
    /// The hour, 0-23 (UTC).
    pub hour: u32,
    /// Completed trips started in it.
    pub trips: u64,
    /// Their distance, metres.
    pub distance_m: f64,
    /// Their points.
    pub points: i64,
}

/// One hour (UTC) and mode of a day, as rolled up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModeHour {
    /// The day (UTC), `YYYY-MM-DD`.
    pub day: String,
    /// The hour, 0-23.
    pub hour: u32,
    /// The mode.
    pub mode: String,
    /// Completed trips started in that hour.
    pub trips: u64,
    /// Their distance, metres.
    pub distance_m: f64,
    /// Their points.
    pub points: i64,
}

/// One day and user, as rolled up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDay {
    /// The day (UTC), `YYYY-MM-DD`.
    pub day: String,
    /// The user.
    pub user_id: u64,
    /// Completed trips started that day.
    pub trips: u64,
    /// Their distance, metres.
    pub distance_m: f64,
    /// Their duration, seconds.
    pub duration_s: i64,
    /// Points they hold now.
    pub points: i64,
    /// Distinct modes.
    pub modes: u32,
    /// Those modes.
    #[serde(default)]
    pub mode_list: Vec<String>,
}

/// One `analytics_user_daily` document: a day's users of one bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserBucket {
    day: String,
    bucket: i64,
    /// By user id (as text: document keys are strings). Empty when a projection for one user
    /// finds them absent that day.
    #[serde(default)]
    users: BTreeMap<String, UserDay>,
}

impl UserBucket {
    /// `days` grouped in buckets, one document per bucket.
    fn of(day: &str, users: &[UserDay]) -> Vec<UserBucket> {
        let mut buckets: BTreeMap<u64, UserBucket> = BTreeMap::new();
        for u in users {
            let bucket = u.user_id / USERS_PER_BUCKET;
            buckets
                .entry(bucket)
                .or_insert_with(|| UserBucket {
                    day: day.to_string(),
                    bucket: bucket as i64,
                    users: BTreeMap::new(),
                })
                .users
                .insert(u.user_id.to_string(), u.clone());
        }
        buckets.into_values().collect()
    }

    /// The user days of `buckets`, by day, then user.
    fn flatten(buckets: Vec<UserBucket>) -> Vec<UserDay> {
        let mut out: Vec<UserDay> = buckets
            .into_iter()
            .flat_map(|b| b.users.into_values())
            .collect();
        out.sort_by(|a, b| a.day.cmp(&b.day).then(a.user_id.cmp(&b.user_id)));
        out
    }
}

/// `day` as stored: `YYYY-MM-DD`.
fn day_key(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}
