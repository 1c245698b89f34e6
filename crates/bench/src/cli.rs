//! The benchmarks' arguments (docs/benchmarks.md).

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Health checks, Influx writer, MySQL and Redis throughput; prints one JSON line.
    Hub(HubBenchArgs),
    /// Queue throughput: bulk enqueue, then one worker drains; prints one JSON line.
    Queue(QueueBenchArgs),
    /// trip.complete end to end on every store, in a sandbox; prints one JSON line.
    Trips(TripBenchArgs),
    /// Cache hit latency per level and queries/s, in a sandbox; prints one JSON line.
    Cache(CacheBenchArgs),
    /// Authenticated cached reads over HTTP, with and without authentication and limits.
    Http(HttpBenchArgs),
    /// Rollups of a busy day and of a month against the bare GROUP BY queries.
    Analytics(AnalyticsBenchArgs),
    /// Backup and restore of MySQL, Redis and InfluxDB beside the stores' own tools alone.
    Backup(BackupBenchArgs),
    /// A GTFS import beside the server's bare LOAD DATA of the same rows, and the main job's
    /// trips/s while an import runs.
    Gtfs(GtfsBenchArgs),
    /// The operator console's pages on a queue of a million waiting jobs.
    Console(ConsoleBenchArgs),
}

#[derive(Debug, Args, Clone)]
pub struct ConsoleBenchArgs {
    /// Waiting jobs in the benchmark's queue.
    #[arg(long, default_value_t = 1_000_000)]
    pub jobs: usize,
    /// Requests per page, one at a time.
    #[arg(long, default_value_t = 50)]
    pub requests: usize,
}

#[derive(Debug, Args, Clone)]
pub struct BackupBenchArgs {
    /// Trips written first (rows in MySQL, points in InfluxDB, completed jobs in Redis).
    #[arg(long, default_value_t = 100_000)]
    pub trips: usize,
}

#[derive(Debug, Args, Clone)]
pub struct AnalyticsBenchArgs {
    /// Trips on the busy day.
    #[arg(long, default_value_t = 100_000)]
    pub day_trips: usize,
    /// Trips over the month (30 days).
    #[arg(long, default_value_t = 1_000_000)]
    pub month_trips: usize,
}

#[derive(Debug, Args, Clone)]
pub struct HttpBenchArgs {
    /// Concurrent client connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Seconds of load per variant.
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    pub seconds: f64,
    /// Clients logging in at once, each as a user of its own, for the login part.
    #[arg(long, default_value_t = 200)]
    pub login_clients: usize,
    /// Seconds of the login part (0: none).
    #[arg(long, default_value_t = 5.0, value_parser = seconds)]
    pub login_seconds: f64,
}

#[derive(Debug, Args, Clone)]
pub struct TripBenchArgs {
    #[arg(long, default_value_t = 5_000)]
    pub trips: usize,
    #[arg(long, default_value_t = 300)]
    pub users: u64,
    /// Trip jobs run at once [default: queue.concurrency in batches; one job at a time, the
    /// smaller of that and the dataset pool].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Write the queue's Mongo records and job_execution points too.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub records: String,
    /// One job at a time instead of batches.
    #[arg(long, conflicts_with = "compare")]
    pub per_job: bool,
    /// Both paths, each on a fresh sandbox, in one run.
    #[arg(long)]
    pub compare: bool,
    /// Also insert the flow's documents alone (trajectory, activity, job record) into MongoDB:
    /// the trips/s that store allows.
    #[arg(long)]
    pub ceiling: bool,
}

#[derive(Debug, Args, Clone)]
pub struct CacheBenchArgs {
    /// Reads timed per level.
    #[arg(long, default_value_t = 20_000)]
    pub reads: usize,
    /// Concurrent readers for the queries/s figures.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

#[derive(Debug, Args, Clone)]
pub struct QueueBenchArgs {
    #[arg(long, default_value_t = 200_000)]
    pub jobs: usize,
    /// Jobs in flight in the worker. No-op jobs take microseconds, so this is the depth of the
    /// pipeline between fetching and acknowledging: at a few hundred, a fetch often waits for
    /// the acknowledgement of the previous batch and Redis idles meanwhile.
    #[arg(long, default_value_t = 1024)]
    pub concurrency: usize,
    /// Write Mongo records and Influx points for every job.
    #[arg(long, default_value = "off", value_parser = ["on", "off"])]
    pub records: String,
    /// Then, jobs per second enqueued at a steady pace while the worker runs, to time each
    /// job from enqueue to completion (0: skip that phase).
    #[arg(long, default_value_t = 20_000)]
    pub load_rate: u64,
    /// Seconds of that steady load.
    #[arg(long, default_value_t = 5.0, value_parser = seconds)]
    pub load_seconds: f64,
}

#[derive(Debug, Args, Clone)]
pub struct HubBenchArgs {
    /// Health checks of all instances to time.
    #[arg(long, default_value_t = 50)]
    pub health_rounds: usize,
    /// Points through the batching writer.
    #[arg(long, default_value_t = 500_000)]
    pub points: usize,
    /// Rounds of the writer against the raw-HTTP baseline, in alternating order (an even number
    /// puts each side first equally often); the medians are reported.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub writer_rounds: u32,
    /// Seconds each side of a round waits at most for the store servers to be idle first.
    #[arg(long, default_value_t = 60.0, value_parser = seconds)]
    pub settle_max: f64,
    /// Points sent one request each, for comparison.
    #[arg(long, default_value_t = 5_000)]
    pub single_points: usize,
    /// Seconds of each MySQL / Redis throughput run.
    #[arg(long, default_value_t = 5.0, value_parser = seconds)]
    pub seconds: f64,
    /// Concurrent tasks for MySQL, Redis and single-point Influx runs.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

/// A number of seconds: finite, zero or more, at most a day (a clear error before any work).
fn seconds(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if v.is_finite() && (0.0..=86_400.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("`{text}`: seconds must be between 0 and 86400"))
    }
}

#[derive(Debug, Args, Clone)]
pub struct GtfsBenchArgs {
    /// The feed (folder or zip).
    #[arg(
        long,
        default_value = "../shared/data/gtfs-halifax/mdb-734-202602180121.zip"
    )]
    pub path: std::path::PathBuf,
    /// Trips of the main job run alone, then during an import (0: skip).
    #[arg(long, default_value_t = 3_000)]
    pub trips: usize,
}
