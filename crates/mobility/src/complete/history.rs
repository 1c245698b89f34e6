//! A trip judged against its user's history, before anything of it is written: it may not
//! overlap in time a trip of theirs already recorded (active or completed), and its points are
//! capped by what the user earned on the same UTC day (`trips.max_points_per_day`). Both read
//! MySQL, the source of truth, under a per-user lock held until the trip's row and earn are
//! written, so two trips of one user judged at once by two workers see each other
//! (docs/security.md#points).

use std::collections::HashMap;
use std::time::Duration;

use chrono::NaiveDateTime;
use sqlx::{MySql, QueryBuilder, Row};
use tsp_hub::MysqlStore;
use tsp_queue::JobError;

use super::attempt::Attempt;
use super::{Trips, fnv1a, ms_to_naive};

/// How long a trip waits for another trip of the same user being recorded.
pub(super) const USER_WAIT: Duration = Duration::from_secs(5);

/// The lock serialising the recording of one user's trips.
pub(super) fn user_lock_name(store: &MysqlStore, user_id: u64) -> String {
    format!(
        "tsp.user.{:016x}",
        fnv1a(&[store.database_name(), &user_id.to_string()])
    )
}

/// What the history says of one trip.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Verdict {
    /// Record it, awarding `award` of its points (`capped` more were over the day's cap);
    /// `first`: no earlier attempt awarded it (a retry keeps the first award, counted once).
    Record {
        award: i64,
        capped: i64,
        first: bool,
    },
    /// Refuse it: the rule's name and why.
    Refuse(String),
}

/// A trip already recorded: (trip id, user, start ms, end ms).
type Recorded = (String, u64, i64, i64);

fn ms(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp_millis()
}

/// The UTC day (days since 1970) of a moment in ms: the day whose cap a trip's points count
/// against (the day it ended, as its earn is dated).
fn day_of(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

impl Trips {
    /// The verdict of each of `attempts`, in order: against what MySQL holds, and against the
    /// attempts before it in the list (a batch). `conn` is the dataset session holding the
    /// users' locks.
    pub(super) async fn judge(
        &self,
        conn: &mut sqlx::MySqlConnection,
        attempts: &[&Attempt<'_>],
    ) -> Result<Vec<Verdict>, JobError> {
        if attempts.is_empty() {
            return Ok(Vec::new());
        }
        let recorded = self.recorded_overlapping(conn, attempts).await?;
        let (earned, own) = self.earned_on_their_days(attempts).await?;
        let cap = i64::from(self.inner.settings.max_points_per_day);
        let mut used = earned;
        let mut accepted: Vec<Recorded> = Vec::new();
        let mut out = Vec::with_capacity(attempts.len());
        for a in attempts {
            let (user, start, end) = (a.trip.user_id, a.first.timestamp, a.last.timestamp);
            let clash = recorded
                .iter()
                .chain(&accepted)
                .find(|r| r.1 == user && r.0 != a.trip.trip_id && r.2 < end && start < r.3);
            if let Some((other, ..)) = clash {
                out.push(Verdict::Refuse(format!(
                    "overlap: the trip overlaps trip {other} of the same user, already recorded"
                )));
                continue;
            }
            accepted.push((a.trip.trip_id.clone(), user, start, end));
            // A retried attempt keeps what its first attempt was awarded.
            if let Some(&award) = own.get(&a.trip.trip_id) {
                out.push(Verdict::Record {
                    award,
                    capped: (a.points - award).max(0),
                    first: false,
                });
                continue;
            }
            let day = used.entry((user, day_of(end))).or_insert(0);
            let award = if cap == 0 {
                a.points
            } else {
                a.points.min((cap - *day).max(0))
            };
            *day += award;
            out.push(Verdict::Record {
                award,
                capped: a.points - award,
                first: true,
            });
        }
        Ok(out)
    }

    /// The recorded trips (active or completed) of the attempts' users that overlap any of
    /// their spans: one query.
    async fn recorded_overlapping(
        &self,
        conn: &mut sqlx::MySqlConnection,
        attempts: &[&Attempt<'_>],
    ) -> Result<Vec<Recorded>, JobError> {
        let mut q = QueryBuilder::<MySql>::new(
            "SELECT trip_id, user_id, started_at, ended_at FROM trips \
             WHERE status IN ('active', 'completed') AND ended_at IS NOT NULL AND (",
        );
        for (i, a) in attempts.iter().enumerate() {
            if i > 0 {
                q.push(" OR ");
            }
            q.push("(user_id = ")
                .push_bind(a.trip.user_id)
                .push(" AND started_at < ")
                .push_bind(ms_to_naive(a.last.timestamp))
                .push(" AND ended_at > ")
                .push_bind(ms_to_naive(a.first.timestamp))
                .push(")");
        }
        q.push(")");
        let dataset = &self.inner.stores.dataset;
        let rows = dataset
            .timed("trips overlapping", q.build().fetch_all(&mut *conn))
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let start: NaiveDateTime = r.get(2);
                let end: NaiveDateTime = r.get(3);
                (r.get(0), r.get(1), ms(start), ms(end))
            })
            .collect())
    }

    /// Points the attempts' users earned from trips on the attempts' days, by (user, day),
    /// leaving out the attempts' own earns; and those own earns (retries), by trip id.
    async fn earned_on_their_days(
        &self,
        attempts: &[&Attempt<'_>],
    ) -> Result<(HashMap<(u64, i64), i64>, HashMap<String, i64>), JobError> {
        let mut q = QueryBuilder::<MySql>::new(
            "SELECT user_id, reference_id, points, created_at FROM points_transactions \
             WHERE transaction_type = 'earn' AND reference_type = 'trip' AND (",
        );
        for (i, a) in attempts.iter().enumerate() {
            let day = day_of(a.last.timestamp);
            if i > 0 {
                q.push(" OR ");
            }
            q.push("(user_id = ")
                .push_bind(a.trip.user_id)
                .push(" AND created_at >= ")
                .push_bind(ms_to_naive(day * 86_400_000))
                .push(" AND created_at < ")
                .push_bind(ms_to_naive((day + 1) * 86_400_000))
                .push(")");
        }
        q.push(")");
        let incentive = &self.inner.stores.incentive;
        let rows = incentive
            .timed("points of the day", q.build().fetch_all(incentive.pool()))
            .await?;
        let mine: HashMap<&str, ()> = attempts
            .iter()
            .map(|a| (a.trip.trip_id.as_str(), ()))
            .collect();
        let mut earned: HashMap<(u64, i64), i64> = HashMap::new();
        let mut own = HashMap::new();
        for r in &rows {
            let (user, reference, points): (u64, String, i32) = (r.get(0), r.get(1), r.get(2));
            let at: NaiveDateTime = r.get(3);
            if mine.contains_key(reference.as_str()) {
                own.insert(reference, i64::from(points));
            } else {
                *earned.entry((user, day_of(ms(at)))).or_insert(0) += i64::from(points);
            }
        }
        Ok((earned, own))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trip_counts_against_the_utc_day_it_ended_on() {
        let midnight = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        assert_eq!(day_of(midnight) - day_of(midnight - 1), 1);
        assert_eq!(day_of(midnight), day_of(midnight + 86_399_999));
    }
}
