//! `tsp-bench trips` (docs/benchmarks.md#bench-trips): the main job's flow in a sandbox, in
//! batches or one job at a time (`--compare`: both, each on a fresh sandbox, in one run), and
//! `--ceiling`: what the slowest store alone allows for the same documents, measured before and
//! after the flows; `first_of_ceiling` is the first flow's rate (batched unless `--per-job`)
//! over their mean.
//!
//! Each phase starts once the store servers are idle (see `quiesce`). Only completed trips count, over the time until every job record and point is written; every
//! store's counts are checked against the completed jobs in the output itself.

use std::time::Instant;

use anyhow::Context;
use mongodb::bson::Document;
use serde_json::{Value, json};
use tsp_config::LoadOptions;
use tsp_mobility::complete::{ACTIVITY_LOG, TRAJECTORIES};
use tsp_mobility::sandbox::Sandbox;
use tsp_mobility::seed::{self, TripPlan};
use tsp_queue::JobRecord;

use tsp_server::app::App;

use crate::cli::TripBenchArgs;
use tsp_server::commands::trips::{BatchSummary, now_ms, run_batch};

/// `tsp-bench trips`: one JSON line.
pub async fn bench_trips(options: &LoadOptions, args: &TripBenchArgs) -> anyhow::Result<Value> {
    let mut out = serde_json::Map::new();
    out.insert("bench".into(), json!("trips"));
    out.insert("trips".into(), json!(args.trips));
    // The local MongoDB-compatible server's speed drifts within minutes; the ceiling is measured
    // before and after the flows, and the flow compared with their mean.
    let before = if args.ceiling {
        Some(
            ceiling(options, args)
                .await
                .context("the ceiling run before")?,
        )
    } else {
        None
    };
    let modes: Vec<bool> = if args.compare {
        vec![true, false]
    } else {
        vec![!args.per_job]
    };
    let mut rates = Vec::new();
    for batched in modes {
        let name = if batched { "batched" } else { "per_job" };
        let r = run_mode(options, args, batched)
            .await
            .with_context(|| format!("the {name} run"))?;
        rates.push(r["trips_per_s"].as_f64().unwrap_or(0.0));
        out.insert(name.into(), r);
    }
    if args.compare && rates[1] > 0.0 {
        out.insert("batched_over_per_job".into(), json!(rates[0] / rates[1]));
    }
    if let Some(before) = before {
        let after = ceiling(options, args)
            .await
            .context("the ceiling run after")?;
        let rate = |c: &Value| c["trips_per_s"].as_f64().unwrap_or(0.0);
        let mean = (rate(&before) + rate(&after)) / 2.0;
        if mean > 0.0 {
            out.insert("first_of_ceiling".into(), json!(rates[0] / mean));
        }
        // The most batches can gain over one job at a time while both wait on the document
        // store: the ceiling over the per-job rate (docs/benchmarks.md#bench-trips).
        if args.compare && rates[1] > 0.0 {
            out.insert("ceiling_over_per_job".into(), json!(mean / rates[1]));
        }
        out.insert("ceiling_trips_per_s".into(), json!(mean));
        out.insert("ceiling_before".into(), before);
        out.insert("ceiling_after".into(), after);
    }
    Ok(Value::Object(out))
}

fn plan(args: &TripBenchArgs) -> TripPlan {
    TripPlan {
        seed: 7,
        trips: args.trips,
        users: args.users,
        days: 30,
        now_ms: now_ms(),
    }
}

/// One run on a fresh sandbox: the flow in batches or one job at a time.
async fn run_mode(
    options: &LoadOptions,
    args: &TripBenchArgs,
    batched: bool,
) -> anyhow::Result<Value> {
    let mut opts = options.clone();
    opts.overrides.push(format!("trips.batch={batched}"));
    if args.records == "off" {
        opts.overrides.push("queue.records.mongo=false".into());
        opts.overrides.push("queue.records.influx=false".into());
    }
    let sandbox = Sandbox::create(&opts).await?;
    let result = async {
        let hub = &sandbox.hub;
        let app = App::build(hub)?;
        // One job at a time, more at once than the dataset pool only queue on the pool.
        let limit = app.trip_concurrency();
        let concurrency = match args.concurrency {
            Some(c) if batched => c,
            Some(c) => c.min(limit),
            None => limit,
        };
        quiesce(QUIESCE_BOUND).await;
        let cpu = ServerCpu::start();
        let s = run_batch(&app, &plan(args), concurrency, None).await?;
        let cpu = cpu.finish();
        let records = if args.records == "on" {
            let mongo = app
                .stores()
                .records
                .mongo
                .as_ref()
                .context("queue.records.mongo is off")?;
            mongo
                .database()
                .collection::<Document>(tsp_queue::RECORDS_COLLECTION)
                .count_documents(mongodb::bson::doc! {})
                .await?
        } else {
            s.completed
        };
        Ok::<Value, anyhow::Error>(summary(&s, records, cpu))
    }
    .await;
    sandbox.dispose().await;
    result
}

/// The run's figures, and every store's count beside the completed jobs.
fn summary(s: &BatchSummary, records: u64, cpu: Value) -> Value {
    let f = &s.stores;
    let counts = json!({
        "jobs_completed": s.completed,
        "trips_rows_completed": f.trips_completed,
        "earn_transactions": f.earn_transactions,
        "trajectories": f.trajectories,
        "activities": f.activities,
        "booking_points": f.booking_points,
        "job_records": records,
    });
    let n = s.completed;
    let agree = f.trips_completed as u64 == n
        && f.earn_transactions as u64 == n
        && f.trajectories == n
        && f.activities == n
        && f.booking_points == n
        && records == s.completed + s.failed;
    json!({
        "concurrency": s.concurrency,
        "peak_trips_locked": s.peak_trips_locked,
        "dataset_pool": s.dataset_pool,
        "completed": s.completed,
        "failed": s.failed,
        "seconds": s.run.seconds,
        "trips_per_s": s.run.per_second,
        "run_p50_ms": s.times.run_ms.p50,
        "run_p99_ms": s.times.run_ms.p99,
        "latency_p50_ms": s.times.latency_ms.p50,
        "latency_p99_ms": s.times.latency_ms.p99,
        "step_mean_ms": s.steps.iter().map(|t| (t.step.clone(), json!(t.mean_ms))).collect::<serde_json::Map<_, _>>(),
        "counts": counts,
        "counts_agree": agree,
        "server_cpu_s": cpu,
    })
}

/// The ceiling: the same trajectory, activity and job-record documents the flow writes for
/// these trips (same sizes, the same indexes, the same batch sizes), inserted into a scratch
/// sandbox's MongoDB with nothing else running: documents in batches of the flow's batch size,
/// records beside them in batches of `queue.records.batch`, as the flow's acknowledger writes
/// them.
async fn ceiling(options: &LoadOptions, args: &TripBenchArgs) -> anyhow::Result<Value> {
    let sandbox = Sandbox::create(options).await?;
    let result = async {
        let hub = &sandbox.hub;
        let app = App::build(hub)?;
        let trips = app.trips();
        // The stops the flows' runs generate their trips between (`run_batch`): the same trips.
        let (stops, _) = seed::trip_stops(app.gtfs()).await?;
        let generated = seed::generate_trips(&plan(args), &stops);
        let config = hub.config();
        let concurrency = args.concurrency.unwrap_or_else(|| app.trip_concurrency());
        let batch = config
            .job_batch(tsp_mobility::complete::JOB_TYPE)
            .max_batch
            .min(concurrency)
            .max(1);
        let mut documents = Vec::with_capacity(generated.len());
        let mut records = Vec::with_capacity(generated.len());
        let now = now_ms();
        for (i, t) in generated.iter().enumerate() {
            let id = format!("{:026}", i);
            let Some(docs) = trips.documents(&id, t) else {
                continue;
            };
            documents.push(docs);
            records.push(record(&id, t, now)?);
        }
        // The ceiling writes records as the flow does, whatever `queue.records.mongo` says.
        let record_store = hub.mongo(tsp_config::instances::CACHE)?;
        tsp_queue::ensure_record_indexes(record_store).await?;
        let data = trips.stores().documents.database();
        let (traj, act) = (
            data.collection::<Document>(TRAJECTORIES),
            data.collection::<Document>(ACTIVITY_LOG),
        );
        let rec = record_store
            .database()
            .collection::<Document>(tsp_queue::RECORDS_COLLECTION);
        quiesce(QUIESCE_BOUND).await;
        let cpu = ServerCpu::start();
        let started = Instant::now();
        let docs_side = async {
            for chunk in documents.chunks(batch) {
                let (t, a): (Vec<Document>, Vec<Document>) = chunk.iter().cloned().unzip();
                traj.insert_many(t).ordered(false).await?;
                act.insert_many(a).ordered(false).await?;
            }
            anyhow::Ok(())
        };
        let records_side = async {
            for chunk in records.chunks(config.queue.records.batch.max(1)) {
                rec.insert_many(chunk.to_vec()).ordered(false).await?;
            }
            anyhow::Ok(())
        };
        tokio::try_join!(docs_side, records_side)?;
        let seconds = started.elapsed().as_secs_f64();
        Ok::<Value, anyhow::Error>(json!({
            "trips": documents.len(),
            "documents_per_batch": batch,
            "records_per_batch": config.queue.records.batch,
            "seconds": seconds,
            "trips_per_s": documents.len() as f64 / seconds,
            "server_cpu_s": cpu.finish(),
        }))
    }
    .await;
    sandbox.dispose().await;
    result
}

/// The job record a completed trip job leaves (its result as the flow returns it).
fn record(id: &str, t: &tsp_mobility::trip::TripCompletion, now: i64) -> anyhow::Result<Document> {
    let result = json!({
        "tripId": t.trip_id,
        "distanceM": t.distance_m(),
        "durationS": t.duration_s(),
        "points": 0,
        "alreadyCompleted": false,
    });
    Ok(JobRecord {
        id: id.to_string(),
        queue: "trips".into(),
        job_type: tsp_mobility::complete::JOB_TYPE.into(),
        payload: serde_json::to_string(t)?,
        status: "completed",
        priority: 0,
        attempts: 1,
        result: Some(result.to_string()),
        error: None,
        created_at: now,
        started_at: now,
        finished_at: now,
        run_ms: 10.0,
        wait_ms: 1.0,
    }
    .document())
}

/// CPU seconds used by each local store server process over a run (from `/proc`): where the
/// time goes on a machine whose cores the servers share.
struct ServerCpu {
    before: Vec<(String, u32, f64)>,
}

/// How long a phase waits for idle servers before it starts anyway.
const QUIESCE_BOUND: std::time::Duration = std::time::Duration::from_secs(60);

const SERVERS: &[(&str, &str)] = &[
    ("mariadb", "mariadbd"),
    ("redis", "redis-server"),
    ("influxdb", "influxd"),
    ("mongodb-compatible", "secantus"),
];

/// Waits (at most `bound`) until the store servers are idle: under 5 % of a core in all over
/// half a second. A phase that starts while a server still digests the previous one (dropping a
/// sandbox's databases, a checkpoint) would measure that too.
pub(crate) async fn quiesce(bound: std::time::Duration) {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        let cpu = ServerCpu::start();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let used: f64 = cpu
            .finish()
            .as_object()
            .map(|m| m.values().filter_map(Value::as_f64).sum())
            .unwrap_or(0.0);
        if used < 0.025 {
            return;
        }
    }
}

impl ServerCpu {
    fn start() -> ServerCpu {
        ServerCpu {
            before: server_processes(),
        }
    }

    fn finish(self) -> Value {
        let after = server_processes();
        let mut out = serde_json::Map::new();
        for (name, pid, t0) in &self.before {
            if let Some((_, _, t1)) = after.iter().find(|(_, p, _)| p == pid) {
                let v = out.entry(name.clone()).or_insert(json!(0.0));
                *v = json!(v.as_f64().unwrap_or(0.0) + (t1 - t0));
            }
        }
        Value::Object(out)
    }
}

/// (server, pid, CPU seconds so far) of every local store server process found.
fn server_processes() -> Vec<(String, u32, f64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let tick = 100.0; // USER_HZ on Linux.
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let Some((name, _)) = SERVERS.iter().find(|(_, needle)| cmd.contains(needle)) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command's closing parenthesis: utime and stime are the 12th and
        // 13th of them.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        out.push((name.to_string(), pid, (ticks(11) + ticks(12)) / tick));
    }
    out
}
