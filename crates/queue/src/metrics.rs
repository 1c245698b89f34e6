//! Queue metric names (Prometheus, through the `metrics` facade). Labels: `queue`, and `type`
//! on the time histograms.

use tsp_hub::{Metric, MetricKind::*};

/// Jobs enqueued.
pub const ENQUEUED: &str = "tsp_queue_jobs_enqueued_total";
/// Jobs completed.
pub const COMPLETED: &str = "tsp_queue_jobs_completed_total";
/// Failed attempts (each one, whether it will be retried or not).
pub const FAILED: &str = "tsp_queue_jobs_failed_total";
/// Failed attempts that will run again.
pub const RETRIED: &str = "tsp_queue_jobs_retried_total";
/// Jobs moved to the dead letters.
pub const DEAD: &str = "tsp_queue_jobs_dead_lettered_total";
/// Jobs taken back from a worker whose lease expired.
pub const STALLED: &str = "tsp_queue_jobs_stalled_recovered_total";
/// From runnable to leased.
pub const WAIT: &str = "tsp_queue_job_wait_seconds";
/// From leased to finished.
pub const RUN: &str = "tsp_queue_job_run_seconds";
/// Dead-letter hooks that ran to the end (e.g. compensations).
pub const DEAD_HOOKS: &str = "tsp_queue_dead_hooks_total";
/// Jobs per state (gauge, label `state`).
pub const DEPTH: &str = "tsp_queue_depth";
/// Seconds the oldest waiting job has waited (gauge; 0 when none waits).
pub const OLDEST_WAITING: &str = "tsp_queue_oldest_waiting_seconds";
/// Job records stored in MongoDB.
pub const RECORDS_WRITTEN: &str = "tsp_queue_records_written_total";
/// Job records given up on: the record writer had stopped, or MongoDB stayed down at shutdown.
pub const RECORDS_FAILED: &str = "tsp_queue_records_failed_total";
/// `job_execution` points the Influx writer refused to take (invalid, or the writer closed).
pub const POINTS_REFUSED: &str = "tsp_queue_points_refused_total";

/// Jobs whose outcomes a worker gave up storing after `queue.ack_attempts` tries (their leases
/// lapse and they run elsewhere).
pub const ACKS_ABANDONED: &str = "tsp_queue_acks_abandoned_total";
/// 1 while a worker stores its outcomes, 0 after it gave some up (gauge).
pub const HEALTHY: &str = "tsp_worker_healthy";

/// Writes (enqueue or acknowledgement calls) that fewer replicas than `queue.durability_replicas`
/// confirmed in time, with `queue.durability = wait`.
pub const UNREPLICATED: &str = "tsp_queue_unreplicated_writes_total";

const QUEUE: &[&str] = &["queue"];
const QUEUE_TYPE: &[&str] = &["queue", "type"];

/// Every metric the queue records (docs/metrics.md#queue).
pub const ALL: &[Metric] = &[
    Metric::new(ENQUEUED, Counter, QUEUE, "Jobs enqueued."),
    Metric::new(COMPLETED, Counter, QUEUE, "Jobs completed."),
    Metric::new(
        FAILED,
        Counter,
        QUEUE,
        "Failed attempts, whether or not they will run again.",
    ),
    Metric::new(
        RETRIED,
        Counter,
        QUEUE,
        "Failed attempts that will run again.",
    ),
    Metric::new(DEAD, Counter, QUEUE, "Jobs moved to the dead letters."),
    Metric::new(
        STALLED,
        Counter,
        QUEUE,
        "Jobs taken back from a worker whose lease expired.",
    ),
    Metric::new(
        WAIT,
        Histogram,
        QUEUE_TYPE,
        "Seconds from runnable to leased.",
    ),
    Metric::new(
        RUN,
        Histogram,
        QUEUE_TYPE,
        "Seconds from leased to finished.",
    ),
    Metric::new(
        DEAD_HOOKS,
        Counter,
        QUEUE,
        "Dead-letter hooks (compensations) that ran to the end.",
    ),
    Metric::new(
        DEPTH,
        Gauge,
        &["queue", "state"],
        "Jobs per state (waiting, delayed, active, completed, dead, dead_hook_pending), set when serve is scraped.",
    ),
    Metric::new(
        OLDEST_WAITING,
        Gauge,
        QUEUE,
        "Seconds since the oldest waiting job was made (0 when none waits), set when serve is scraped.",
    ),
    Metric::new(
        RECORDS_WRITTEN,
        Counter,
        &[],
        "Job records stored in MongoDB.",
    ),
    Metric::new(
        RECORDS_FAILED,
        Counter,
        QUEUE,
        "Job records given up on (writer stopped, or MongoDB down at shutdown).",
    ),
    Metric::new(
        POINTS_REFUSED,
        Counter,
        QUEUE,
        "job_execution points the Influx writer refused to take.",
    ),
    Metric::new(
        ACKS_ABANDONED,
        Counter,
        QUEUE,
        "Jobs whose outcomes a worker gave up storing after queue.ack_attempts tries.",
    ),
    Metric::new(
        HEALTHY,
        Gauge,
        QUEUE,
        "1 while a worker stores its outcomes, 0 after it gave some up.",
    ),
    Metric::new(
        UNREPLICATED,
        Counter,
        QUEUE,
        "Writes fewer replicas than queue.durability_replicas confirmed in time.",
    ),
];

/// A counter labelled with `queue` (none when `queue` is empty).
pub fn counter(name: &'static str, queue: &str) -> ::metrics::Counter {
    if queue.is_empty() {
        ::metrics::counter!(name)
    } else {
        ::metrics::counter!(name, "queue" => queue.to_string())
    }
}
