//! `tsp-bench cache`: cache hit latency per level and queries/s, in a sandbox.

use std::time::{Duration, Instant};

use tsp_config::LoadOptions;
use tsp_hub::{Cache, Level};
use tsp_mobility::batch;
use tsp_mobility::complete::Trips;
use tsp_mobility::queries::QueryError;
use tsp_mobility::sandbox::Sandbox;
use tsp_mobility::seed::{self, TripPlan};
use tsp_server::commands::trips::now_ms;

use tsp_server::app::App;

use crate::cli::CacheBenchArgs;

/// One user-stats read at `level`: through the cache (L1, or L2 with L1 off), or straight
/// from MySQL (the source).
async fn one_read(t: &Trips, level: Level) -> Result<(Duration, Level), QueryError> {
    let started = Instant::now();
    let got = if level == Level::Source {
        t.user_stats_from_source(1, 30).await?;
        Level::Source
    } else {
        t.user_stats(1, 30).await?.cache
    };
    Ok((started.elapsed(), got))
}

fn latency_stats(v: Vec<f64>) -> serde_json::Value {
    let p = batch::Percentiles::of(v);
    serde_json::json!({"p50_us": p.p50, "p99_us": p.p99})
}

/// `tsp-bench cache`: per level, the latency of one read and reads/s with `concurrency`
/// readers, on `GET /users/{id}/stats` in a sandbox (one user, 50 trips).
pub async fn bench_cache(
    options: &LoadOptions,
    args: &CacheBenchArgs,
) -> anyhow::Result<serde_json::Value> {
    let sandbox = Sandbox::create(options).await?;
    let result = async {
        let hub = &sandbox.hub;
        let app = App::build(hub)?;
        let trips = app.trips().clone();
        anyhow::ensure!(trips.cache().wait_l1(Duration::from_secs(5)).await, "cache: no subscription");
        // L2 only: a second cache without L1, on the same Redis.
        let mut no_l1 = hub.config().cache.clone();
        no_l1.l1_capacity = 0;
        let l2_cache = Cache::start(app.stores().cache.clone(), &no_l1);
        let l2_trips = Trips::new(
            app.stores().trips.clone(),
            trips.settings().clone(),
            hub.config().gtfs.feed.clone(),
            l2_cache,
        );
        let plan = TripPlan { seed: 11, trips: 50, users: 1, days: 10, now_ms: now_ms() };
        seed::seed_users(&trips.stores().portal, 1).await?;
        for (i, t) in seed::generate_trips(&plan, &seed::cairns_stops().map_err(anyhow::Error::msg)?).iter().enumerate() {
            trips.complete(&format!("bench-{i}"), t).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let mut out = serde_json::Map::new();
        for (name, level) in [("l1", Level::L1), ("l2", Level::L2), ("source", Level::Source)] {
            let t = match level {
                Level::L1 => &trips,
                _ => &l2_trips,
            };
            one_read(t, level).await?; // warm
            let reads = if level == Level::Source { args.reads.min(5_000) } else { args.reads };
            let mut lat = Vec::with_capacity(reads);
            for _ in 0..reads {
                let (d, got) = one_read(t, level).await?;
                anyhow::ensure!(got == level, "expected a {name} answer, got {got:?}");
                lat.push(d.as_secs_f64() * 1e6);
            }
            let started = Instant::now();
            let per_task = reads / args.concurrency.max(1);
            let mut tasks = Vec::new();
            for _ in 0..args.concurrency.max(1) {
                let t = t.clone();
                tasks.push(tokio::spawn(async move {
                    for _ in 0..per_task {
                        one_read(&t, level).await?;
                    }
                    Ok::<_, QueryError>(())
                }));
            }
            for task in tasks {
                task.await??;
            }
            let qps = (per_task * args.concurrency.max(1)) as f64 / started.elapsed().as_secs_f64();
            let mut entry = latency_stats(lat);
            entry["queries_per_s"] = serde_json::json!(qps.round());
            out.insert(name.to_string(), entry);
        }
        let mut v = serde_json::json!({"bench": "cache", "reads": args.reads, "concurrency": args.concurrency});
        if let Some(o) = v.as_object_mut() {
            o.extend(out);
        }
        v["stats"] = serde_json::to_value(trips.cache().stats())?;
        Ok(v)
    }
    .await;
    sandbox.dispose().await;
    result
}
