//! `tsp-bench queue`: bulk enqueue and drain rates of no-op jobs, the CPU each costs Redis
//! and this process, the records' check, and enqueue-to-completion latency under a steady load,
//! as one JSON line (docs/benchmarks.md).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use tsp_hub::Hub;
use tsp_queue::{NewJob, Worker};

use tsp_server::app::App;

use crate::cli::QueueBenchArgs;
use crate::hub::{info_number, now_ns, round2};
use tsp_config::instances;
use tsp_server::commands::jobs;

/// CPU seconds used so far: by the Redis server's main thread (from `INFO cpu`) and by this
/// process (all threads), plus how many background AOF rewrites and RDB saves Redis has started
/// and whether one is running (a forked child competing for the same cores: on this two-core
/// machine it takes half of Redis's core while it runs). A phase's `redis_background_forks`
/// counts those started in it plus one already running when it began.
#[derive(Clone, Copy)]
struct CpuMark {
    /// `None` when INFO did not answer one server's figures (a Redis Cluster answers per node).
    redis_s: Option<f64>,
    process_s: f64,
    redis_forks: u64,
    /// A background AOF rewrite or RDB save is running at this mark.
    redis_forked: bool,
}

async fn cpu_mark(conn: &mut tsp_hub::RedisConn) -> CpuMark {
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .arg("persistence")
        .query_async(conn)
        .await
        .unwrap_or_default();
    let field = |name: &str| info_number(&info, name).unwrap_or(0.0);
    CpuMark {
        redis_s: info
            .contains("used_cpu_user_main_thread")
            .then(|| field("used_cpu_user_main_thread") + field("used_cpu_sys_main_thread")),
        process_s: process_cpu_s(),
        redis_forks: (field("aof_rewrites") + field("rdb_saves")) as u64,
        redis_forked: field("aof_rewrite_in_progress") + field("rdb_bgsave_in_progress") > 0.0,
    }
}

/// This process's user + system time, from `/proc/self/stat` (Linux; 0 elsewhere). Its unit is
/// USER_HZ, 100 per second on every Linux platform this runs on.
fn process_cpu_s() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Microseconds of CPU per job between two marks, for Redis and for this process.
fn cpu_per_job(from: CpuMark, to: CpuMark, jobs: usize) -> serde_json::Value {
    let us = |s: f64| (s * 1e6 / jobs.max(1) as f64 * 10.0).round() / 10.0;
    json!({
        "redis_us_per_job": from.redis_s.zip(to.redis_s).map(|(a, b)| us(b - a)),
        "worker_us_per_job": us(to.process_s - from.process_s),
        "redis_background_forks": to.redis_forks.saturating_sub(from.redis_forks) + u64::from(from.redis_forked),
    })
}

/// Waits for every job record, then checks MongoDB holds one per job: a benchmark whose records
/// did not all arrive measured something else, and is refused.
async fn record_check(
    hub: &Hub,
    queue: &str,
    task: tsp_queue::RecordTask,
    jobs: usize,
    started: Instant,
) -> anyhow::Result<serde_json::Value> {
    let unwritten = task.finish(Duration::from_secs(600)).await;
    let all_done_secs = started.elapsed().as_secs_f64();
    let mongo = hub.mongo(instances::CACHE)?;
    let coll = mongo
        .database()
        .collection::<mongodb::bson::Document>(tsp_queue::RECORDS_COLLECTION);
    let docs = mongo
        .timed(
            "count",
            coll.count_documents(mongodb::bson::doc! {"queue": queue}),
        )
        .await?;
    if unwritten > 0 || docs != jobs as u64 {
        bail!("records: {docs} MongoDB documents for {jobs} jobs, {unwritten} unwritten");
    }
    Ok(
        json!({"mongo_documents": docs, "unwritten": unwritten, "all_records_written_per_s": (jobs as f64 / all_done_secs).round()}),
    )
}

/// Bulk-enqueues `jobs` no-op jobs, then one in-process worker drains them.
pub async fn run(hub: &Hub, args: &QueueBenchArgs) -> anyhow::Result<serde_json::Value> {
    let name = format!("bench-{:x}", now_ns());
    let app = App::build(hub)?;
    let q = app.queue(&name)?;
    let records_on = args.records == "on";
    let mut info_conn = q.store().conn().await?;

    let mark_start = cpu_mark(&mut info_conn).await;
    // The jobs are built inside the timer, as bench/bullmq/bench.mjs builds BullMQ's: both
    // sides time the same work.
    let started = Instant::now();
    let batch = vec![NewJob::raw("builtin.noop", "{}"); args.jobs];
    let ids = q.enqueue_many(batch).await?;
    let enqueue_secs = started.elapsed().as_secs_f64();
    let mark_enqueued = cpu_mark(&mut info_conn).await;
    if ids.len() != args.jobs {
        bail!("enqueued {} of {} jobs", ids.len(), args.jobs);
    }

    let (sink, task) = if records_on {
        app.records().await?
    } else {
        (tsp_queue::RecordSink::none(), None)
    };
    let worker = Worker::new(vec![q.clone()], tsp_queue::Registry::new())
        .with_concurrency(args.concurrency)
        .with_records(sink);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let running = tokio::spawn(worker.run(async {
        let _ = stop_rx.await;
    }));
    jobs::drained(&q, Duration::from_secs(600)).await?;
    let process_secs = started.elapsed().as_secs_f64();
    let mark_processed = cpu_mark(&mut info_conn).await;
    let _ = stop_tx.send(());
    let report = running.await.context("worker task")?;
    let records = match task {
        Some(t) => match record_check(hub, &name, t, args.jobs, started).await {
            Ok(v) => v,
            Err(e) => {
                q.delete().await?;
                return Err(e);
            }
        },
        None => serde_json::Value::Null,
    };
    if report.completed != args.jobs as u64 {
        bail!(
            "completed {} of {} jobs: {report:?}",
            report.completed,
            args.jobs
        );
    }
    // The bench queue is removed (keys and name); nothing else uses it.
    q.delete().await?;
    let latency = if args.load_rate > 0 {
        latency_under_load(hub, args).await?
    } else {
        serde_json::Value::Null
    };
    Ok(json!({
        "bench": "queue",
        "jobs": args.jobs,
        "concurrency": args.concurrency,
        // The async runtime's worker threads (`server.threads`).
        "threads": tokio::runtime::Handle::current().metrics().num_workers(),
        "records": records_on,
        "enqueue_per_s": (args.jobs as f64 / enqueue_secs).round(),
        "process_per_s": (args.jobs as f64 / process_secs).round(),
        "cpu": {
            "enqueue": cpu_per_job(mark_start, mark_enqueued, args.jobs),
            "process": cpu_per_job(mark_enqueued, mark_processed, args.jobs),
        },
        "record_check": records,
        "latency_under_load": latency,
    }))
}

/// Jobs enqueued at a steady `load_rate` for `load_seconds` while one worker runs: each job's
/// time from enqueue to completion (its spec's creation time to its finish time, both stored by
/// the queue), over a sample of up to 5 000 jobs spread over the run.
async fn latency_under_load(hub: &Hub, args: &QueueBenchArgs) -> anyhow::Result<serde_json::Value> {
    let name = format!("bench-{:x}", now_ns());
    // A batch every 10 ms.
    let per_tick = (args.load_rate / 100).max(1) as usize;
    let ticks = (args.load_seconds * 100.0).round().max(1.0) as usize;
    // Every job of the run is kept until it is read back, whatever the retention configured.
    let mut settings = hub.config().queue.clone();
    settings.keep_completed = settings.keep_completed.max((per_tick * ticks) as u64);
    let store = hub.redis(&settings.redis)?.clone();
    let q = tsp_queue::Queue::new(store, &name, &settings)?;
    let worker =
        Worker::new(vec![q.clone()], tsp_queue::Registry::new()).with_concurrency(args.concurrency);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async {
        let _ = stop_rx.await;
    }));
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut ids = Vec::with_capacity(per_tick * ticks);
    let started = Instant::now();
    for _ in 0..ticks {
        tick.tick().await;
        let batch = vec![NewJob::raw("builtin.noop", "{}"); per_tick];
        ids.extend(q.enqueue_many(batch).await?);
    }
    let offered_s = started.elapsed().as_secs_f64();
    jobs::drained(&q, Duration::from_secs(600)).await?;
    let _ = stop_tx.send(());
    let report = running.await.context("worker task")?;
    let step = (ids.len() / 5_000).max(1);
    let mut latencies = Vec::new();
    for id in ids.iter().step_by(step) {
        if let Some(j) = q.job(id).await?
            && let Some(done) = j.finished_at
        {
            latencies.push((done - j.created_at) as f64);
        }
    }
    q.delete().await?;
    if report.completed != ids.len() as u64 {
        bail!(
            "under load: completed {} of {} jobs",
            report.completed,
            ids.len()
        );
    }
    let sampled = latencies.len();
    if sampled < ids.len().div_ceil(step) {
        bail!("under load: {sampled} of the sampled jobs could be read back");
    }
    let p = tsp_mobility::batch::Percentiles::of(latencies);
    Ok(json!({
        "rate_per_s": (ids.len() as f64 / offered_s).round(),
        "seconds": round2(offered_s),
        "jobs": ids.len(),
        "sampled": sampled,
        "enqueue_to_completion_ms": {"p50": p.p50, "p99": p.p99, "max": p.max},
    }))
}
