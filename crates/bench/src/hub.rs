//! `tsp-bench hub`: health latency, the Influx writer against a raw-HTTP baseline and one
//! request per point, and MySQL / Redis throughput through the hub's pools, as one JSON line.

use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use tsp_hub::{Hub, Point};

use crate::cli::HubBenchArgs;
use crate::trips::quiesce;
use tsp_config::instances;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The median of `v` (the mean of the middle two when their number is even; 0 when empty).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[mid],
        _ => (v[mid - 1] + v[mid]) / 2.0,
    }
}

/// A numeric field of Redis `INFO` text (`name:value` lines).
pub(crate) fn info_number(info: &str, name: &str) -> Option<f64> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse::<f64>().ok())
}

pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn bench_point(run: &str, n: usize, t: i64) -> Point {
    Point::new("hub_bench")
        .tag("run", run)
        .tag("shard", format!("s{}", n % 16))
        .field("value", n as f64 * 0.5)
        .field("seq", n as i64)
        .timestamp_ns(t)
}

/// Runs `tasks` copies of `op` for `seconds`; returns completed operations per second.
async fn throughput<F, Fut>(tasks: usize, seconds: f64, op: F) -> anyhow::Result<f64>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let op = op.clone();
            let done = done.clone();
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    op().await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    for h in handles {
        h.await.context("benchmark task panicked")??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

pub async fn run(hub: &Hub, args: &HubBenchArgs) -> anyhow::Result<serde_json::Value> {
    let lat = health_latencies(hub, args.health_rounds).await?;
    let influx = hub.influx(instances::PRIMARY)?;
    let target = bench_target(hub, influx).await?;
    let run = format!("{:x}", now_ns());
    let base = now_ns() - 3_600_000_000_000;
    let rounds = writer_rounds(influx, &target, &run, base, args).await?;
    let format_per_s = influx_format(influx, &run, base, args.points)?;
    let single_secs = influx_single(influx, &target, &run, base, args).await?;
    let mysql_qps = mysql_select_1(hub.mysql(instances::PORTAL)?, args).await?;
    let gets = redis_get(hub.redis(instances::CACHE)?, args).await?;
    Ok(json!({
        "bench": "hub",
        "health_all_instances_ms": {"p50": round2(percentile(&lat, 50.0)), "p99": round2(percentile(&lat, 99.0)), "rounds": args.health_rounds, "instances": hub.health().await.instances.len()},
        "influx_writer": {"points": args.points, "rounds": args.writer_rounds, "points_per_s": rounds.writer_per_s, "format_only_points_per_s": format_per_s.round(), "batch_max_points": influx.settings().batch.max_points, "in_flight": influx.settings().batch.in_flight},
        "influx_raw_http": {"points": args.points, "points_per_s": rounds.raw_per_s, "requests_in_flight": RAW_IN_FLIGHT, "writer_share": rounds.share, "writer_shares": rounds.shares},
        "influx_one_request_per_point": {"points": args.single_points, "points_per_s": (args.single_points as f64 / single_secs).round(), "concurrency": args.concurrency},
        "mysql_select_1": {"queries_per_s": mysql_qps.round(), "concurrency": args.concurrency, "pool_max": hub.mysql(instances::PORTAL)?.pool_stats().max},
        "redis_get": {"ops_per_s": gets.ops_per_s.round(), "concurrency": args.concurrency, "server_commands_per_read": gets.commands_per_read, "server_us_per_get": gets.server_us_per_get},
    }))
}

/// Health of every instance, `rounds` times: the latencies (ms), sorted.
async fn health_latencies(hub: &Hub, rounds: usize) -> anyhow::Result<Vec<f64>> {
    let mut lat = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let h = hub.health().await;
        lat.push(started.elapsed().as_secs_f64() * 1000.0);
        if h.status != tsp_hub::Status::Up {
            bail!("a required store is down; run `tsp-job health`");
        }
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    Ok(lat)
}

/// Where the Influx benchmarks write: a database of their own (v1), or the default bucket (v2).
/// Creating it is a schema change: the migrator account does it and, when the app account is
/// another, grants that one access (docs/store-security.md#least-privilege).
async fn bench_target(hub: &Hub, influx: &tsp_hub::InfluxStore) -> anyhow::Result<String> {
    let target = "tsp_bench";
    if influx.settings().api != tsp_config::InfluxApi::V1 {
        return Ok(influx.default_target());
    }
    let migrator = Hub::connect(&hub.current_config().as_migrator()).await?;
    let admin = migrator.influx(influx.name())?;
    let made = async {
        admin
            .query_v1(target, &format!("CREATE DATABASE \"{target}\""))
            .await?;
        tsp_mobility::store_schema::grant_app_account(admin, &[target]).await?;
        anyhow::Ok(())
    }
    .await;
    migrator.shutdown(Duration::from_secs(1)).await;
    made.map(|()| target.to_string())
}

/// The writer against the raw-HTTP baseline: medians over the rounds.
struct WriterRounds {
    writer_per_s: f64,
    raw_per_s: f64,
    /// The median of the rounds' shares (writer's rate over the baseline's).
    share: f64,
    shares: Vec<f64>,
}

/// `args.writer_rounds` rounds of the batching writer and the raw-HTTP baseline, each writing
/// `args.points` points as a run of its own. Each side starts once the servers are idle (InfluxDB
/// snapshots and compacts what the previous side wrote), and the order alternates (writer first
/// in odd rounds, the baseline first in even ones) in case some of that work still falls on the
/// second.
async fn writer_rounds(
    influx: &tsp_hub::InfluxStore,
    target: &str,
    run: &str,
    base: i64,
    args: &HubBenchArgs,
) -> anyhow::Result<WriterRounds> {
    let (mut writer, mut raw, mut shares) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.writer_rounds {
        let (writer_run, raw_run) = (format!("{run}-w{round}"), format!("{run}-r{round}"));
        let writer_side = async {
            quiesce(Duration::from_secs_f64(args.settle_max)).await;
            influx_writer(influx, target, &writer_run, base, args.points).await
        };
        let raw_side = async {
            quiesce(Duration::from_secs_f64(args.settle_max)).await;
            influx_raw(influx, target, &raw_run, base, args.points).await
        };
        let (w, r) = if round % 2 == 0 {
            let w = writer_side.await?;
            (w, raw_side.await?)
        } else {
            let r = raw_side.await?;
            (writer_side.await?, r)
        };
        writer.push(args.points as f64 / w);
        raw.push(args.points as f64 / r);
        shares.push(round2(r / w));
    }
    Ok(WriterRounds {
        writer_per_s: median(writer).round(),
        raw_per_s: median(raw).round(),
        share: round2(median(shares.clone())),
        shares,
    })
}

/// Requests in flight for the raw-HTTP baseline: a few keep-alive connections.
const RAW_IN_FLIGHT: usize = 4;

/// The baseline: the same points as lines, in the writer's batch size, formatted before the
/// clock starts and posted `RAW_IN_FLIGHT` at a time through the same HTTP client. Seconds.
async fn influx_raw(
    influx: &tsp_hub::InfluxStore,
    target: &str,
    run: &str,
    base: i64,
    points: usize,
) -> anyhow::Result<f64> {
    let per = influx.settings().batch.max_points.max(1);
    let tags = influx.default_tags().to_vec();
    let mut bodies = Vec::new();
    for start in (0..points).step_by(per) {
        let mut body = String::new();
        for n in start..(start + per).min(points) {
            bench_point(run, n, base + n as i64).write_line(&tags, &mut body)?;
        }
        bodies.push(bytes::Bytes::from(body));
    }
    let started = Instant::now();
    let results: Vec<_> = futures::stream::iter(bodies)
        .map(|b| influx.write_body(target, b))
        .buffer_unordered(RAW_IN_FLIGHT)
        .collect()
        .await;
    let secs = started.elapsed().as_secs_f64();
    if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
        bail!("raw write failed: {}", e.message());
    }
    Ok(secs)
}

/// Formatting alone: the same points into line protocol, in one thread, nothing sent. Points per
/// second: the writer's own CPU cost, which on a machine where InfluxDB has every core to use
/// comes out of the server's share (docs/influx.md#batches-in-flight).
fn influx_format(
    influx: &tsp_hub::InfluxStore,
    run: &str,
    base: i64,
    points: usize,
) -> anyhow::Result<f64> {
    let made: Vec<_> = (0..points)
        .map(|n| bench_point(run, n, base + n as i64))
        .collect();
    let per = influx.settings().batch.max_points.max(1);
    let mut body = String::new();
    let started = Instant::now();
    for batch in made.chunks(per) {
        body.clear();
        for p in batch {
            p.write_line(influx.default_tags(), &mut body)?;
        }
        std::hint::black_box(&body);
    }
    Ok(points as f64 / started.elapsed().as_secs_f64())
}

/// The batching writer: seconds to write `points` (every one, or an error).
async fn influx_writer(
    influx: &tsp_hub::InfluxStore,
    target: &str,
    run: &str,
    base: i64,
    points: usize,
) -> anyhow::Result<f64> {
    let writer = influx.writer_for(target);
    let before = writer.stats();
    // The points are made before the clock starts, as the baseline's lines are: both sides are
    // timed from the same input to the same rows written (the writer formats, batches, sends).
    let made: Vec<_> = (0..points)
        .map(|n| bench_point(run, n, base + n as i64))
        .collect();
    let started = Instant::now();
    for p in &made {
        writer.write_wait(p).await?;
    }
    writer.flush().await;
    let secs = started.elapsed().as_secs_f64();
    let after = writer.stats();
    let written = after.written - before.written;
    if written != points as u64 {
        bail!(
            "writer wrote {written} of {points} points (failed {}, dropped {})",
            after.failed - before.failed,
            after.dropped - before.dropped
        );
    }
    Ok(secs)
}

/// One request per point, `concurrency` in flight: seconds for `single_points`.
async fn influx_single(
    influx: &tsp_hub::InfluxStore,
    target: &str,
    run: &str,
    base: i64,
    args: &HubBenchArgs,
) -> anyhow::Result<f64> {
    let single_run = format!("{run}-single");
    let next = Arc::new(AtomicU64::new(0));
    let total = args.single_points as u64;
    let started = Instant::now();
    let handles: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let influx = influx.clone();
            let next = next.clone();
            let target = target.to_string();
            let single_run = single_run.clone();
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let mut line = String::new();
                    bench_point(&single_run, n as usize, base + n as i64)
                        .write_line(influx.default_tags(), &mut line)?;
                    influx
                        .write_body(&target, line.into())
                        .await
                        .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.context("benchmark task panicked")??;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// `SELECT 1` through the pool: queries per second.
async fn mysql_select_1(mysql: &tsp_hub::MysqlStore, args: &HubBenchArgs) -> anyhow::Result<f64> {
    let mysql = mysql.clone();
    throughput(args.concurrency, args.seconds, move || {
        let mysql = mysql.clone();
        async move {
            mysql
                .timed(
                    "select_1",
                    sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(mysql.pool()),
                )
                .await?;
            Ok(())
        }
    })
    .await
}

/// What `redis_get` measured.
struct RedisGets {
    ops_per_s: f64,
    /// Commands the server took per socket read: how many GETs a read carried.
    commands_per_read: Option<f64>,
    /// The server's main-thread CPU per GET, microseconds.
    server_us_per_get: Option<f64>,
}

/// `GET` of one key through the multiplexed connection, with the server's own counters around
/// it (docs/benchmarks.md#tls: TLS costs Redis per read, so how many commands a read carries
/// matters).
async fn redis_get(redis: &tsp_hub::RedisStore, args: &HubBenchArgs) -> anyhow::Result<RedisGets> {
    let key = format!("{}bench:get", redis.key_prefix());
    let mut conn = redis.conn().await?;
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("x".repeat(64))
        .query_async(&mut conn)
        .await?;
    let before = server_counters(&mut conn).await;
    let ops_per_s = throughput(args.concurrency, args.seconds, {
        let conn = conn.clone();
        move || {
            let mut conn = conn.clone();
            let key = key.clone();
            async move {
                let _: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
                Ok(())
            }
        }
    })
    .await?;
    let after = server_counters(&mut conn).await;
    let delta = before.zip(after).map(|(b, a)| {
        (
            a.commands.saturating_sub(b.commands) as f64,
            a.reads.saturating_sub(b.reads) as f64,
            a.cpu_s - b.cpu_s,
        )
    });
    Ok(RedisGets {
        ops_per_s,
        commands_per_read: delta
            .filter(|d| d.1 > 0.0)
            .map(|(commands, reads, _)| round2(commands / reads)),
        server_us_per_get: delta
            .filter(|d| d.0 > 0.0)
            .map(|(commands, _, cpu)| round2(cpu * 1e6 / commands)),
    })
}

/// A Redis server's command, read and main-thread CPU counters.
#[derive(Clone, Copy)]
struct ServerCounters {
    commands: u64,
    reads: u64,
    cpu_s: f64,
}

/// `None` when INFO does not give them (a Redis Cluster answers per node).
async fn server_counters(conn: &mut tsp_hub::RedisConn) -> Option<ServerCounters> {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .arg("cpu")
        .query_async(conn)
        .await
        .ok()?;
    let field = |name: &str| info_number(&info, name);
    Some(ServerCounters {
        commands: field("total_commands_processed")? as u64,
        reads: field("total_reads_processed")? as u64,
        cpu_s: field("used_cpu_user_main_thread")? + field("used_cpu_sys_main_thread")?,
    })
}
