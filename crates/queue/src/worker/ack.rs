//! The acknowledger: reports finished attempts to Redis in batches, then hands their records
//! over.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use super::Counters;
use super::execute::Done;
use super::health::{AckFaults, WorkerHealth};
use super::held::{Held, lock_held};
use super::retry::persist_bounded;
use crate::error::JobError;
use crate::metrics;
use crate::queue::{Finished, LeasedJob, Outcome, Queue};
use crate::records::{JobRecord, RecordSink};

/// What the acknowledger needs besides its queue and jobs.
pub(super) struct AckContext {
    pub(super) held: Held,
    pub(super) records: RecordSink,
    pub(super) counters: Arc<Counters>,
    pub(super) health: WorkerHealth,
    /// Set when a batch is given up: the fetch loop then takes a new lease id, so the old one,
    /// once no job still running holds it, is no longer extended and lapses.
    pub(super) rotate: Arc<AtomicBool>,
}

/// Acknowledges finished attempts in batches, then hands records over.
pub(super) async fn acknowledge(queue: Queue, mut rx: mpsc::Receiver<Done>, cx: AckContext) {
    let AckContext {
        held,
        records,
        counters,
        health,
        rotate,
    } = cx;
    let faults = AckFaults::new(queue.settings().fault.ack_failures);
    let abandoned = metrics::counter(metrics::ACKS_ABANDONED, queue.name());
    // At 0 from the start, so that an alert's `increase()` sees the first loss.
    abandoned.increment(0);
    metrics::counter(metrics::RECORDS_FAILED, queue.name()).increment(0);
    ::metrics::gauge!(metrics::HEALTHY, "queue" => queue.name().to_string()).set(1.0);
    let mut tally = Tally::new(queue.name(), counters.clone());
    let mut batch: Vec<Done> = Vec::with_capacity(ACK_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < ACK_BATCH {
            match rx.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        let outcomes = match store_outcomes(&queue, &batch, &held, &faults).await {
            Ok(o) => {
                health.recover(queue.name());
                o
            }
            Err(e) => {
                give_up(&queue, &batch, &e, &health, &rotate);
                counters
                    .abandoned
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                abandoned.increment(batch.len() as u64);
                batch.clear();
                continue;
            }
        };
        let mut finished = Vec::new();
        for (d, f) in batch.iter().zip(outcomes) {
            let wait_ms = (d.job.leased_at - d.job.runnable_at.max(d.job.created_at)).max(0) as f64;
            tally.time(&d.job.job_type, wait_ms, d);
            let Some(status) = tally.count(f) else {
                continue;
            };
            if records.is_on() {
                finished.push(record_of(d, queue.name(), status, wait_ms));
            }
        }
        if !finished.is_empty() {
            records.send(&finished).await;
        }
        batch.clear();
    }
}

/// Finished attempts per acknowledgement call, at most.
const ACK_BATCH: usize = 1024;

/// A batch whose outcomes could not be stored: said loudly, the worker marked unhealthy, and a
/// new lease id asked for (see [`AckContext::rotate`]). The jobs are no longer held here, so
/// their lease lapses and a recoverer hands them to another attempt.
fn give_up(
    queue: &Queue,
    batch: &[Done],
    e: &crate::error::QueueError,
    health: &WorkerHealth,
    rotate: &AtomicBool,
) {
    let tries = queue.settings().ack_attempts;
    tracing::error!(
        queue = queue.name(),
        jobs = batch.len(),
        error = %e,
        "outcomes not stored after {tries} tries: the jobs are given up (their leases lapse and \
         they run again elsewhere); this worker is unhealthy until an acknowledgement goes through"
    );
    health.fail(
        queue.name(),
        format!(
            "queue {}: outcomes of {} jobs not stored after {tries} tries: {e}",
            queue.name(),
            batch.len()
        ),
    );
    rotate.store(true, Ordering::Relaxed);
}

/// Stores a batch's outcomes (retried up to `queue.ack_attempts` times: the jobs stay leased,
/// so safe, meanwhile) and forgets the jobs, stored or not. Outcomes in the order of `batch`.
async fn store_outcomes(
    queue: &Queue,
    batch: &[Done],
    held: &Held,
    faults: &AckFaults,
) -> Result<Vec<Finished>, crate::error::QueueError> {
    let now = queue.now_ms();
    let acks: Vec<(&LeasedJob, Outcome)> =
        batch.iter().map(|d| (&d.job, outcome_of(d, now))).collect();
    let any_dedup = batch.iter().any(|d| d.job.has_dedup);
    {
        let mut h = lock_held(held);
        for d in batch {
            if let Some(j) = h.get_mut(&d.job.id) {
                j.acknowledging = true;
            }
        }
    }
    let tries = queue.settings().ack_attempts;
    let outcomes = persist_bounded("acknowledging jobs", tries, || async {
        if faults.take() {
            return Err(crate::error::QueueError::Protocol(
                "acknowledgement failed on purpose (queue.fault.ack_failures)".into(),
            ));
        }
        queue.finish(&acks, any_dedup).await
    })
    .await;
    let mut h = lock_held(held);
    for d in batch {
        h.remove(&d.job.id);
    }
    outcomes
}

/// What an attempt's result means for its job: a retry while attempts remain (after the job's
/// backoff), else death.
fn outcome_of(d: &Done, now: i64) -> Outcome {
    outcome(&d.job, &d.result, now)
}

/// The outcome of a job's attempt that ended with `result`.
pub(super) fn outcome(
    job: &LeasedJob,
    result: &Result<serde_json::Value, JobError>,
    now: i64,
) -> Outcome {
    match result {
        Ok(v) => Outcome::Completed {
            result: v.to_string(),
        },
        Err(JobError::Retry(e)) if job.attempts < job.max_attempts => {
            let delay = job.backoff.delay(job.attempts);
            Outcome::Retry {
                error: e.clone(),
                at: now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2),
            }
        }
        Err(JobError::Retry(e)) | Err(JobError::Abort(e)) => Outcome::Dead { error: e.clone() },
    }
}

fn record_of(d: &Done, queue: &str, status: &'static str, wait_ms: f64) -> JobRecord {
    let (result, error) = match &d.result {
        Ok(v) => (Some(v.to_string()), None),
        Err(e) => (None, Some(e.to_string())),
    };
    JobRecord {
        id: d.job.id.clone(),
        queue: queue.to_string(),
        job_type: d.job.job_type.clone(),
        payload: d.job.payload.clone(),
        status,
        priority: d.job.priority,
        attempts: d.job.attempts,
        result,
        error,
        created_at: d.job.created_at,
        started_at: d.job.leased_at,
        finished_at: d.finished_at,
        run_ms: d.run.as_secs_f64() * 1000.0,
        wait_ms,
    }
}

/// The counters and metrics of one queue's outcomes.
struct Tally {
    queue: String,
    counters: Arc<Counters>,
    completed: ::metrics::Counter,
    failed: ::metrics::Counter,
    retried: ::metrics::Counter,
    dead: ::metrics::Counter,
    /// Wait and run histograms by job type: one registry lookup per type, not two per job.
    timings: HashMap<String, (::metrics::Histogram, ::metrics::Histogram)>,
}

impl Tally {
    fn new(queue: &str, counters: Arc<Counters>) -> Tally {
        Tally {
            queue: queue.to_string(),
            counters,
            completed: metrics::counter(metrics::COMPLETED, queue),
            failed: metrics::counter(metrics::FAILED, queue),
            retried: metrics::counter(metrics::RETRIED, queue),
            dead: metrics::counter(metrics::DEAD, queue),
            timings: HashMap::new(),
        }
    }

    fn time(&mut self, job_type: &str, wait_ms: f64, d: &Done) {
        if !self.timings.contains_key(job_type) {
            let (q, t) = (self.queue.clone(), job_type.to_string());
            let pair = (
                ::metrics::histogram!(metrics::WAIT, "queue" => q.clone(), "type" => t.clone()),
                ::metrics::histogram!(metrics::RUN, "queue" => q, "type" => t.clone()),
            );
            self.timings.insert(t, pair);
        }
        if let Some((wait, run)) = self.timings.get(job_type) {
            wait.record(wait_ms / 1000.0);
            run.record(d.run.as_secs_f64());
        }
    }

    /// Counts an outcome; the status of its record, `None` when it gets none (a retry, whose
    /// job is not finished, or a stale outcome, which was not this worker's to report).
    fn count(&self, f: Finished) -> Option<&'static str> {
        let c = &self.counters;
        match f {
            Finished::Completed => {
                c.completed.fetch_add(1, Ordering::Relaxed);
                self.completed.increment(1);
                Some("completed")
            }
            Finished::Retrying => {
                c.retried.fetch_add(1, Ordering::Relaxed);
                self.failed.increment(1);
                self.retried.increment(1);
                None
            }
            Finished::Dead => {
                c.dead.fetch_add(1, Ordering::Relaxed);
                self.failed.increment(1);
                self.dead.increment(1);
                Some("dead")
            }
            Finished::Stale => {
                c.stale.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}
