//! `GET /analytics/engagement` and `tsp-job query engagement`: per user, trips, distance,
//! duration and modes over a window of days, summed from the per-user daily rollups.

use std::collections::{BTreeMap, BTreeSet};

use async_recursion::async_recursion as boxed;
use serde::{Deserialize, Serialize};

use super::{DayRange, UserDay};
use crate::complete::Trips;
use crate::queries::{Cached, QueryError, check_days, check_limit};

/// One user's row of `GET /analytics/engagement`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Engagement {
    /// The user.
    pub user_id: u64,
    /// Completed trips in the window.
    pub trips: u64,
    /// Their distance, summed.
    pub distance_m: f64,
    /// Their duration, summed.
    pub duration_s: f64,
    /// Distinct modes used.
    pub mode_variety: u32,
}

/// `GET /analytics/engagement`: one row per user, most trips first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EngagementReport {
    /// The window, in days back from now.
    pub days: u32,
    /// One row per user.
    pub users: Vec<Engagement>,
}

impl Trips {
    /// Per user over the last `days` days and today (whole UTC days): trips, distance,
    /// duration and distinct modes, most trips first, from the daily rollups
    /// (docs/analytics.md), through the cache.
    #[boxed]
    pub async fn engagement(
        &self,
        days: u32,
        limit: u32,
    ) -> Result<Cached<EngagementReport>, QueryError> {
        let days = check_days(days)?;
        let limit = check_limit(limit)?;
        let to = chrono::Utc::now().date_naive();
        let range = DayRange {
            from: to - chrono::Duration::days(i64::from(days)),
            to,
        };
        let (value, cache) = self
            .cache()
            .get_or_load(
                "analytics",
                &format!("engagement:{days}:{limit}"),
                || async {
                    let rows = self.all_user_days(range).await?;
                    Ok::<_, QueryError>(EngagementReport {
                        days,
                        users: engagement_of(rows, limit as usize),
                    })
                },
            )
            .await?;
        Ok(Cached { value, cache })
    }
}

/// Sums user days per user: trips, distance, duration, and the modes used on any day.
fn engagement_of(rows: Vec<UserDay>, limit: usize) -> Vec<Engagement> {
    let mut by_user: BTreeMap<u64, (Engagement, BTreeSet<String>)> = BTreeMap::new();
    for r in rows {
        let (e, modes) = by_user.entry(r.user_id).or_insert_with(|| {
            (
                Engagement {
                    user_id: r.user_id,
                    trips: 0,
                    distance_m: 0.0,
                    duration_s: 0.0,
                    mode_variety: 0,
                },
                Default::default(),
            )
        });
        e.trips += r.trips;
        e.distance_m += r.distance_m;
        e.duration_s += r.duration_s as f64;
        modes.extend(r.mode_list);
    }
    let mut out: Vec<Engagement> = by_user
        .into_values()
        .map(|(mut e, modes)| {
            e.mode_variety = modes.len() as u32;
            e
        })
        .collect();
    out.sort_by(|a, b| b.trips.cmp(&a.trips).then(a.user_id.cmp(&b.user_id)));
    out.truncate(limit);
    out
}
