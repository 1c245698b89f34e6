//! `tsp-bench analytics`: the rollup of a busy day and of a month, against the bare
//! `GROUP BY` queries over the same rows, in one run, in a sandbox (docs/benchmarks.md).
//!
//! The trips are written straight into MySQL (multi-row inserts: completed trips in `dataset`
//! with their points, as the trip job writes them, and one earn each in `incentive`), not
//! through the trip job: the benchmark measures the rollup.

use std::time::Instant;

use chrono::{NaiveDate, Utc};
use serde_json::json;
use tsp_config::LoadOptions;
use tsp_hub::{HubError, MysqlStore};
use tsp_mobility::analytics::{GROUP_BYS, day_sql};
use tsp_mobility::complete::Trips;
use tsp_mobility::sandbox::Sandbox;
use tsp_mobility::seed::SplitMix64;
use tsp_mobility::trip::MODES;

use tsp_server::app::App;

use crate::cli::AnalyticsBenchArgs;

const ROWS_PER_INSERT: usize = 2_000;
const USERS: u64 = 2_000;

/// Writes `n` completed trips starting on `day`, ids prefixed `prefix`.
pub(crate) async fn write_trips(
    dataset: &MysqlStore,
    incentive: &MysqlStore,
    day: NaiveDate,
    n: usize,
    prefix: &str,
    rng: &mut SplitMix64,
) -> Result<(), HubError> {
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    let mut done = 0;
    while done < n {
        let batch = (n - done).min(ROWS_PER_INSERT);
        let (mut trips, mut earns) = (Vec::with_capacity(batch), Vec::with_capacity(batch));
        for i in done..done + batch {
            let user = rng.next_u64() % USERS + 1;
            let mode = MODES[(rng.next_u64() % MODES.len() as u64) as usize];
            let start = midnight + chrono::Duration::seconds((rng.next_u64() % 86_000) as i64);
            let metres = 500 + rng.next_u64() % 15_000;
            let seconds = 120 + rng.next_u64() % 3_000;
            let end = start + chrono::Duration::seconds(seconds as i64);
            trips.push(format!(
                "('{prefix}{i}', {user}, '{mode}', 'completed', '{start}', '{end}', {metres}, {seconds}, {})",
                metres / 100
            ));
            earns.push(format!(
                "({user}, 'earn', {}, 'trip', '{prefix}{i}', '{end}')",
                metres / 100
            ));
        }
        dataset
            .timed(
                "bench insert",
                sqlx::query(&format!(
                    "INSERT INTO trips (trip_id, user_id, mode, status, started_at, ended_at, \
                     distance_m, duration_s, points) VALUES {}",
                    trips.join(",")
                ))
                .execute(dataset.pool()),
            )
            .await?;
        incentive
            .timed(
                "bench insert",
                sqlx::query(&format!(
                    "INSERT INTO points_transactions (user_id, transaction_type, points, \
                     reference_type, reference_id, created_at) VALUES {}",
                    earns.join(",")
                ))
                .execute(incentive.pool()),
            )
            .await?;
        done += batch;
    }
    Ok(())
}

/// The rollup's own `GROUP BY` statements alone (`tsp_mobility::analytics::GROUP_BYS`), over
/// `days`: their time in ms.
async fn bare_queries(dataset: &MysqlStore, days: &[NaiveDate]) -> Result<f64, HubError> {
    let started = Instant::now();
    for d in days {
        let from = d.and_hms_opt(0, 0, 0).unwrap_or_default();
        let to = from + chrono::Duration::days(1);
        for (columns, tail) in GROUP_BYS {
            dataset
                .timed(
                    "bench group",
                    sqlx::query(&day_sql(columns, tail))
                        .bind(from)
                        .bind(to)
                        .fetch_all(dataset.pool()),
                )
                .await?;
        }
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// What rolling up some days took.
struct Rolled {
    trips: u64,
    /// In all.
    ms: f64,
    /// In MySQL (the GROUP BYs and the points of each trip).
    sql_ms: f64,
}

/// Rolls up `days` one after another.
async fn rollups(trips: &Trips, days: &[NaiveDate]) -> Result<Rolled, HubError> {
    let started = Instant::now();
    let (mut n, mut sql_ms) = (0, 0.0);
    for d in days {
        let r = trips.rollup_day(*d).await?;
        n += r.trips;
        sql_ms += r.sql_ms;
    }
    Ok(Rolled {
        trips: n,
        ms: started.elapsed().as_secs_f64() * 1000.0,
        sql_ms,
    })
}

fn seconds(ms: f64) -> f64 {
    (ms / 10.0).round() / 100.0
}

fn figures(name: &str, r: &Rolled, bare_ms: f64) -> serde_json::Value {
    json!({
        "case": name,
        "trips": r.trips,
        "rollup_s": seconds(r.ms),
        "trips_per_s": (r.trips as f64 / (r.ms / 1000.0)).round(),
        "rollup_mysql_s": seconds(r.sql_ms),
        "rollup_other_s": seconds(r.ms - r.sql_ms),
        "bare_group_by_s": seconds(bare_ms),
        "ratio": (r.ms / bare_ms * 100.0).round() / 100.0,
    })
}

/// `tsp-bench analytics`: one JSON line.
pub async fn bench_analytics(
    options: &LoadOptions,
    args: &AnalyticsBenchArgs,
) -> anyhow::Result<serde_json::Value> {
    let sandbox = Sandbox::create(options).await?;
    let result = async {
        let hub = &sandbox.hub;
        let app = App::build(hub)?;
        let trips = app.trips().clone();
        let (dataset, incentive) = (&trips.stores().dataset, &trips.stores().incentive);
        let mut rng = SplitMix64::new(7);
        let today = Utc::now().date_naive();
        let busy = today - chrono::Duration::days(40);
        let month: Vec<NaiveDate> = (1..=30)
            .map(|k| today - chrono::Duration::days(k))
            .collect();
        let started = Instant::now();
        write_trips(dataset, incentive, busy, args.day_trips, "d", &mut rng).await?;
        let per_day = args.month_trips / month.len();
        for (k, d) in month.iter().enumerate() {
            write_trips(dataset, incentive, *d, per_day, &format!("m{k}-"), &mut rng).await?;
        }
        let written_s = started.elapsed().as_secs_f64();
        // Warm both paths once (buffer pool, connections), then measure.
        bare_queries(dataset, &[busy]).await?;
        let day_bare = bare_queries(dataset, &[busy]).await?;
        let day = rollups(&trips, &[busy]).await?;
        let month_bare = bare_queries(dataset, &month).await?;
        let month_rolled = rollups(&trips, &month).await?;
        Ok(json!({
            "bench": "analytics",
            "written_s": (written_s * 10.0).round() / 10.0,
            "cases": [
                figures("day", &day, day_bare),
                figures("month", &month_rolled, month_bare),
            ],
        }))
    }
    .await;
    sandbox.dispose().await;
    result
}
