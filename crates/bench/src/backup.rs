//! `tsp-bench backup`: backup and restore of MySQL, Redis and InfluxDB after N trips, beside
//! the stores' own tools run alone on the same data in the same run (docs/benchmarks.md).
//!
//! The trips go straight into MySQL (as `tsp-bench analytics` writes them), one `trip_bookings`
//! point each into InfluxDB, and one completed `trip.complete` job each into the sandbox's trips
//! queue in Redis (what the queue keeps after as many trips, `queue.keep_completed` allowing);
//! Redis is snapshotted whole (a snapshot is of the whole server).
//! MongoDB has no native tool here to compare with, and writing 100 000 trajectories into the
//! local document store alone takes minutes, so it is left out.

use std::time::Instant;

use chrono::Utc;
use serde_json::json;
use tsp_backup::{Backups, Stores};
use tsp_config::LoadOptions;
use tsp_hub::Point;
use tsp_mobility::sandbox::Sandbox;
use tsp_mobility::seed::{self, SplitMix64, TripPlan};
use tsp_queue::Outcome;

use tsp_server::app::App;

use crate::cli::BackupBenchArgs;
use crate::hub::{info_number, round2};
use tsp_config::instances;

const STORES: [&str; 3] = ["mysql", "redis", "influx"];

fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    (bytes as f64 / 1e6 / seconds.max(1e-9) * 10.0).round() / 10.0
}

async fn fill(sandbox: &Sandbox, trips: usize) -> anyhow::Result<()> {
    let hub = &sandbox.hub;
    let day = Utc::now().date_naive() - chrono::Duration::days(1);
    let mut rng = SplitMix64::new(11);
    crate::analytics::write_trips(
        hub.mysql(instances::DATASET)?,
        hub.mysql(instances::INCENTIVE)?,
        day,
        trips,
        "bk",
        &mut rng,
    )
    .await?;
    let writer = hub.influx(instances::PRIMARY)?.writer();
    let start = Utc::now().timestamp_nanos_opt().unwrap_or(0) - trips as i64 * 1_000_000;
    for i in 0..trips {
        let p = Point::new("trip_bookings")
            .tag("mode", "bus")
            .field("points", (i % 50) as i64)
            .field("distance_m", 1000.0 + i as f64)
            .timestamp_ns(start + i as i64 * 1_000_000);
        writer.write_wait(&p).await?;
    }
    writer.flush().await;
    fill_queue(sandbox, trips).await
}

/// `trips` generated trip jobs enqueued and marked completed without running them: the queue's
/// state after the main job, without the minutes the other stores would take.
async fn fill_queue(sandbox: &Sandbox, trips: usize) -> anyhow::Result<()> {
    let hub = &sandbox.hub;
    let plan = TripPlan {
        seed: 11,
        trips,
        users: 300,
        days: 30,
        now_ms: Utc::now().timestamp_millis(),
    };
    let stops = seed::cairns_stops().map_err(anyhow::Error::msg)?;
    let queue = App::build(hub)?.queue(&hub.config().trips.queue)?;
    tsp_mobility::batch::enqueue(&queue, &seed::generate_trips(&plan, &stops)).await?;
    loop {
        let fetched = queue.fetch(2_000, "bench-backup").await?;
        if fetched.jobs.is_empty() {
            return Ok(());
        }
        let acks: Vec<_> = fetched
            .jobs
            .iter()
            .map(|j| {
                let done = Outcome::Completed {
                    result: "{}".into(),
                };
                (j, done)
            })
            .collect();
        // Trip jobs carry dedup keys, which completion frees.
        queue.finish(&acks, true).await?;
    }
}

/// Waits (bounded) until the Redis server is neither saving nor rewriting its append-only file,
/// so that neither side of the comparison waits behind a fork it did not ask for. `rewrite`
/// first compacts the append-only file the fill grew, which would otherwise start a rewrite by
/// itself during a timed run.
async fn redis_quiet(hub: &tsp_hub::Hub, rewrite: bool) -> anyhow::Result<()> {
    let store = hub.redis(&hub.config().queue.redis)?;
    let mut conn = store.conn().await?;
    if rewrite {
        // Refused when the append-only file is off, or a rewrite runs already: either is fine.
        let _: Result<String, _> = redis::cmd("BGREWRITEAOF").query_async(&mut conn).await;
    }
    let deadline = Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query_async(&mut conn)
            .await?;
        let busy = [
            "rdb_bgsave_in_progress",
            "aof_rewrite_in_progress",
            "aof_rewrite_scheduled",
        ]
        .iter()
        .any(|field| info_number(&info, field) == Some(1.0));
        if !busy {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "Redis still saving after 300 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// `tsp-bench backup`: one JSON line.
pub async fn bench_backup(
    options: &LoadOptions,
    args: &BackupBenchArgs,
) -> anyhow::Result<serde_json::Value> {
    let source = Sandbox::create(options).await?;
    let target = Sandbox::create(options).await?;
    let result = async {
        fill(&source, args.trips).await?;
        let dir = tempfile::tempdir()?;
        let sets = dir.path().join("sets");
        let backups = Backups::new(&source.hub, Some(sets.clone()))?;
        let native_dir = dir.path().join("native");
        std::fs::create_dir_all(&native_dir)?;
        redis_quiet(&source.hub, true).await?;
        let native = backups.native_baseline(&native_dir).await?;
        let restore_into = Backups::new(&target.hub, Some(sets))?;
        let mut rows = Vec::new();
        let (mut ours_sum, mut native_sum) = (0.0, 0.0);
        for store in STORES {
            let stores = Stores::parse(store)?;
            redis_quiet(&source.hub, false).await?;
            let started = Instant::now();
            let m = backups.create(stores).await?;
            let backup_s = started.elapsed().as_secs_f64();
            let bytes: u64 = m.parts.iter().map(|p| p.bytes).sum();
            let raw: u64 = m.parts.iter().map(|p| p.raw_bytes).sum();
            let started = Instant::now();
            restore_into.restore(&m.id, stores, true).await?;
            let restore_s = started.elapsed().as_secs_f64();
            let (native_s, native_bytes) = native.get(store).copied().unwrap_or_default();
            ours_sum += backup_s;
            native_sum += native_s;
            rows.push(json!({
                "store": store,
                "backup_s": round2(backup_s),
                "backup_mb_per_s": mb_per_s(raw, backup_s),
                "raw_mb": round2(raw as f64 / 1e6),
                "stored_mb": round2(bytes as f64 / 1e6),
                "restore_s": round2(restore_s),
                "restore_mb_per_s": mb_per_s(raw, restore_s),
                "native_backup_s": round2(native_s),
                "native_mb": round2(native_bytes as f64 / 1e6),
                "ratio": round2(backup_s / native_s.max(1e-9)),
            }));
        }
        Ok::<_, anyhow::Error>(json!({
            "bench": "backup",
            "trips": args.trips,
            "stores": rows,
            "backup_s": round2(ours_sum),
            "native_backup_s": round2(native_sum),
            "ratio": round2(ours_sum / native_sum.max(1e-9)),
        }))
    }
    .await;
    for s in [source, target] {
        let failed = s.remove().await;
        if !failed.is_empty() {
            tracing::warn!(?failed, "sandbox not fully removed");
        }
    }
    result
}
