//! Queue metric names (Prometheus, through the `metrics` facade). Labels: `queue`, and `type`
//! on the time histograms.

pub const ENQUEUED: &str = "tsp_queue_jobs_enqueued_total";
pub const COMPLETED: &str = "tsp_queue_jobs_completed_total";
/// Failed attempts (each one, whether it will be retried or not).
pub const FAILED: &str = "tsp_queue_jobs_failed_total";
pub const RETRIED: &str = "tsp_queue_jobs_retried_total";
pub const DEAD: &str = "tsp_queue_jobs_dead_lettered_total";
pub const STALLED: &str = "tsp_queue_jobs_stalled_recovered_total";
pub const WAIT: &str = "tsp_queue_job_wait_seconds";
pub const RUN: &str = "tsp_queue_job_run_seconds";
/// Dead-letter hooks that ran to the end (e.g. compensations).
pub const DEAD_HOOKS: &str = "tsp_queue_dead_hooks_total";
pub const DEPTH: &str = "tsp_queue_depth";
pub const RECORDS_WRITTEN: &str = "tsp_queue_records_written_total";
pub const RECORDS_FAILED: &str = "tsp_queue_records_failed_total";

/// A counter labelled with `queue` (none when `queue` is empty).
pub fn counter(name: &'static str, queue: &str) -> ::metrics::Counter {
    if queue.is_empty() {
        ::metrics::counter!(name)
    } else {
        ::metrics::counter!(name, "queue" => queue.to_string())
    }
}
