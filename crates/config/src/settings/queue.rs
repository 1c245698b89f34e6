//! The job queue (`queue.*`), batches by job type (`queue.batch.<type>.*`) and declared
//! schedules (`schedules.<name>.*`).

use std::time::Duration;

use serde::Deserialize;
use tsp_config_derive::Settings;

use crate::field::FieldType;

/// `queue.batch.<type>.max_batch` when the type has no section (see `Config::job_batch`).
pub const BATCH_MAX_DEFAULT: usize = 128;
/// `queue.batch.<type>.max_wait` when the type has no section.
pub const BATCH_WAIT_DEFAULT: &str = "5ms";

/// The job queue.
#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    /// redis instance holding the queues
    #[setting(default = "cache")]
    pub redis: String,
    /// how long a fetched job stays leased without a heartbeat; an expired lease sends the job back
    #[setting(default = "30s")]
    pub lease: Duration,
    /// jobs fetched per round trip
    #[setting(ty = FieldType::UInt { min: 1, max: 10_000 }, default = 256)]
    pub fetch_batch: usize,
    /// jobs run at once per queue in one worker process
    #[setting(ty = FieldType::UInt { min: 1, max: 100_000 }, default = 64)]
    pub concurrency: usize,
    /// attempts of a job unless it says otherwise
    #[setting(ty = FieldType::UInt { min: 1, max: 1000 }, default = 3)]
    pub max_attempts: u32,
    /// first retry delay (exponential with jitter) unless a job says otherwise
    #[setting(default = "1s")]
    pub backoff: Duration,
    /// a job's run time limit unless it says otherwise
    #[setting(default = "5m")]
    pub timeout: Duration,
    /// completed jobs kept per queue (newest)
    #[setting(ty = FieldType::UInt { min: 0, max: 100_000_000 }, default = 100_000)]
    pub keep_completed: u64,
    /// completed jobs older than this are removed
    #[setting(default = "24h")]
    pub keep_completed_age: Duration,
    /// dead-lettered jobs kept per queue (newest)
    #[setting(ty = FieldType::UInt { min: 0, max: 100_000_000 }, default = 1_000_000)]
    pub keep_dead: u64,
    /// dead-lettered jobs older than this are removed
    #[setting(default = "7d")]
    pub keep_dead_age: Duration,
    /// on SIGINT/SIGTERM, how long in-flight jobs may finish before their leases are returned
    #[setting(default = "30s")]
    pub shutdown_grace: Duration,
    /// `wait`: enqueues and acknowledgements wait until `durability_replicas` replicas have the
    /// write (Redis WAIT); an enqueue they do not confirm within `durability_timeout` fails
    #[setting(ty = FieldType::Enum(&["none", "wait"]), default = "none")]
    pub durability: Durability,
    /// with durability = wait: replicas that must confirm each write
    #[setting(ty = FieldType::UInt { min: 1, max: 16 }, default = 1)]
    pub durability_replicas: u32,
    /// with durability = wait: how long to wait for the replicas
    #[setting(default = "1s")]
    pub durability_timeout: Duration,
    /// tries to store one batch of outcomes before the worker gives it up: its jobs' leases lapse
    /// and they run elsewhere, and the worker reports itself unhealthy
    #[setting(ty = FieldType::UInt { min: 1, max: 1000 }, default = 10)]
    pub ack_attempts: u32,
    #[setting(nested)]
    pub fault: QueueFault,
    #[setting(nested)]
    pub records: RecordSettings,
}

/// Faults a drill injects into workers (`queue.fault.*`).
#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct QueueFault {
    /// fault injection for drills and tests: this many acknowledgement calls fail before any is
    /// sent
    #[setting(ty = FieldType::UInt { min: 0, max: 1_000_000 }, default = 0)]
    pub ack_failures: u64,
}

/// Records of finished jobs (`queue.records.*`).
#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct RecordSettings {
    /// write each finished job's record to mongo.cache job_queue
    #[setting(default = true)]
    pub mongo: bool,
    /// write a job_execution point per finished job
    #[setting(default = true)]
    pub influx: bool,
    /// records per MongoDB insert
    #[setting(ty = FieldType::UInt { min: 1, max: 100_000 }, default = 1000)]
    pub batch: usize,
    /// records waiting for MongoDB; when full, workers wait (backpressure)
    #[setting(ty = FieldType::UInt { min: 1, max: 10_000_000 }, default = 50_000)]
    pub buffer: usize,
}

/// How a job type's batches are collected (`queue.batch.<type>.*`).
#[derive(Debug, Clone, Copy, Deserialize, Settings, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobBatchSettings {
    /// most jobs of the type handed to its batch handler at once (also bounded by the queue's
    /// concurrency)
    #[setting(ty = FieldType::UInt { min: 1, max: 10_000 }, default = BATCH_MAX_DEFAULT as i64)]
    pub max_batch: usize,
    /// how long a batch that is not full waits for more jobs of the type before it runs
    #[setting(default = BATCH_WAIT_DEFAULT)]
    pub max_wait: Duration,
}

/// A repeatable job declared in the configuration (`schedules.<name>.*`).
#[derive(Debug, Clone, Deserialize, Settings, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSettings {
    /// cron expression (five fields, or six with seconds first); or set `every`
    pub cron: Option<String>,
    /// IANA time zone of `cron`
    #[setting(default = "UTC")]
    pub tz: String,
    /// fixed interval instead of `cron` (e.g. 30s, 5m, 1h)
    pub every: Option<String>,
    /// job type each tick enqueues
    #[setting(key = "type")]
    #[serde(rename = "type")]
    pub job_type: Option<String>,
    /// its payload, JSON
    #[setting(default = "{}")]
    pub payload: String,
    /// the queue it goes to
    #[setting(default = "default")]
    pub queue: String,
    /// the job's priority
    #[setting(ty = FieldType::UInt { min: 0, max: 1023 }, default = 0)]
    pub priority: u16,
    /// ticks missed while no worker ran: run the latest only, or every one (at most `catch_up_max`)
    #[setting(ty = FieldType::Enum(&["skip", "catch_up"]), default = "skip")]
    pub missed: String,
    /// with `missed = catch_up`: the most missed ticks run
    #[setting(ty = FieldType::UInt { min: 1, max: 10_000 }, default = 100)]
    pub catch_up_max: u32,
}

/// How durable an acknowledged queue write is (docs/queue.md#durability).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Acknowledged once the primary has it (and its AOF, as configured there).
    None,
    /// Acknowledged once `durability_replicas` replicas have it too (Redis `WAIT`).
    Wait,
}
