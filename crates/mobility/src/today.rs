//! Today's trips for the operator console: completed trips and points per hour, and where the
//! latest trips started.

use async_recursion::async_recursion as boxed;
use chrono::NaiveDateTime;
use tsp_hub::HubError;

use crate::complete::Trips;

/// Trips are at most this long (`trip.max_duration` bounds them far lower), so a trip that ended
/// after a moment started at most a day before it: lets the query use the `(status, started_at)`
/// index.
const LONGEST_TRIP_DAYS: i64 = 1;

impl Trips {
    /// Completed trips and the points they earned per hour of their end, for trips that ended
    /// at or after `since` (UTC): (hour, trips, points).
    #[boxed]
    pub async fn completed_by_hour(
        &self,
        since: NaiveDateTime,
    ) -> Result<Vec<(u32, i64, i64)>, HubError> {
        let dataset = &self.stores().dataset;
        dataset
            .timed(
                "console trips by hour",
                sqlx::query_as::<_, (u32, i64, i64)>(
                    "SELECT CAST(HOUR(ended_at) AS UNSIGNED), CAST(COUNT(*) AS SIGNED), \
                     CAST(COALESCE(SUM(points), 0) AS SIGNED) FROM trips \
                     WHERE status = 'completed' AND started_at >= ? - INTERVAL ? DAY \
                     AND ended_at >= ? GROUP BY 1 ORDER BY 1",
                )
                .bind(since)
                .bind(LONGEST_TRIP_DAYS)
                .bind(since)
                .fetch_all(dataset.pool()),
            )
            .await
    }

    /// Where the `limit` latest completed trips started: (latitude, longitude).
    #[boxed]
    pub async fn recent_starts(&self, limit: u32) -> Result<Vec<(f64, f64)>, HubError> {
        let dataset = &self.stores().dataset;
        dataset
            .timed(
                "console trip starts",
                sqlx::query_as(
                    "SELECT CAST(start_lat AS DOUBLE), CAST(start_lng AS DOUBLE) FROM trips \
                     WHERE status = 'completed' AND start_lat IS NOT NULL \
                     ORDER BY started_at DESC LIMIT ?",
                )
                .bind(limit)
                .fetch_all(dataset.pool()),
            )
            .await
    }
}
