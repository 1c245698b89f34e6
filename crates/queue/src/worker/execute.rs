//! Running one job: its handler under the job's timeout, with panics caught.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::contract::JobContext;
use crate::error::JobError;
use crate::handler::Registry;
use crate::queue::{LeasedJob, Queue};

/// A finished attempt on its way to Redis.
pub(super) struct Done {
    pub(super) job: LeasedJob,
    pub(super) result: Result<serde_json::Value, JobError>,
    pub(super) run: Duration,
    pub(super) finished_at: i64,
}

/// Jobs per spawned task. A task per job cost more than a no-op job itself (the task's
/// allocation, its scheduling and its join), so a fetched batch is run by tasks of this many
/// jobs each, concurrently within the task. Handlers are async and mostly wait on stores; a
/// handler that computes for long holds up the others of its group only as it would hold up a
/// runtime thread anyway, and groups still spread over the runtime's threads.
pub(super) const JOBS_PER_TASK: usize = 16;

/// Runs one job and queues its outcome for acknowledgement.
pub(super) async fn run_and_report(
    registry: &Registry,
    queue: &Queue,
    done_tx: &mpsc::Sender<Done>,
    job: LeasedJob,
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    // The slot is freed once the outcome is queued for acknowledgement; that queue is bounded,
    // so when acknowledgements (or the record stores behind them) fall behind, finished jobs
    // keep their slots and fetching slows down instead of leased jobs piling up in memory.
    let _slot = slot;
    let started = Instant::now();
    let span = super::spans::job_span(queue.name(), &job);
    let result = run_one(registry, queue, &job).instrument(span).await;
    let _ = done_tx
        .send(Done {
            job,
            result,
            run: started.elapsed(),
            finished_at: queue.now_ms(),
        })
        .await;
}

/// Runs one job's handler: decode, timeout, panic capture.
pub(super) async fn run_one(
    registry: &Registry,
    queue: &Queue,
    job: &LeasedJob,
) -> Result<serde_json::Value, JobError> {
    if let Some(why) = &job.unreadable {
        return Err(JobError::Retry(format!("unreadable job spec: {why}")));
    }
    let ctx = JobContext {
        id: job.id.clone(),
        job_type: job.job_type.clone(),
        attempt: job.attempts,
        max_attempts: job.max_attempts,
        queue: queue.clone(),
    };
    let Some(fut) = registry.call(ctx, &job.payload) else {
        return Err(JobError::Retry(format!(
            "no handler for job type `{}` in this worker (it knows: {})",
            job.job_type,
            registry.types().join(", ")
        )));
    };
    match tokio::time::timeout(job.timeout, AssertUnwindSafe(fut).catch_unwind()).await {
        Ok(Ok(r)) => r,
        Ok(Err(panic)) => Err(JobError::Retry(format!(
            "handler panicked: {}",
            panic_message(&panic)
        ))),
        Err(_) => Err(JobError::Retry(format!(
            "timed out after {:?}",
            job.timeout
        ))),
    }
}

pub(super) fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".into()
    }
}

/// Runs one batch and queues each job's outcome for acknowledgement. Every job of the batch
/// gets the batch's run time.
pub(super) async fn run_batch_and_report(
    queue: &Queue,
    done_tx: &mpsc::Sender<Done>,
    run: &crate::batch::BatchFn,
    jobs: Vec<(LeasedJob, Option<tokio::sync::OwnedSemaphorePermit>)>,
) {
    let started = Instant::now();
    let (jobs, slots): (Vec<LeasedJob>, Vec<_>) = jobs.into_iter().unzip();
    let span = super::spans::batch_span(queue.name(), &jobs);
    let results = run_batch(queue, run, &jobs).instrument(span).await;
    let (took, finished_at) = (started.elapsed(), queue.now_ms());
    for (job, result) in jobs.into_iter().zip(results) {
        let _ = done_tx
            .send(Done {
                job,
                result,
                run: took,
                finished_at,
            })
            .await;
    }
    drop(slots);
}

/// Runs a batch's handler under the earliest of its jobs' timeouts, panics caught: a timeout
/// or a panic fails every job of this attempt. Unreadable specs fail alone.
async fn run_batch(
    queue: &Queue,
    run: &crate::batch::BatchFn,
    jobs: &[LeasedJob],
) -> Vec<Result<serde_json::Value, JobError>> {
    let mut outcomes: Vec<Option<Result<serde_json::Value, JobError>>> = Vec::new();
    let mut input = Vec::new();
    let mut slots = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        if let Some(why) = &job.unreadable {
            outcomes.push(Some(Err(JobError::Retry(format!(
                "unreadable job spec: {why}"
            )))));
            continue;
        }
        outcomes.push(None);
        slots.push(i);
        input.push((
            JobContext {
                id: job.id.clone(),
                job_type: job.job_type.clone(),
                attempt: job.attempts,
                max_attempts: job.max_attempts,
                queue: queue.clone(),
            },
            job.payload.clone(),
        ));
    }
    let timeout = slots
        .iter()
        .map(|&i| jobs[i].timeout)
        .min()
        .unwrap_or(Duration::ZERO);
    if !input.is_empty() {
        let n = input.len();
        let fut = run(input);
        let results =
            match tokio::time::timeout(timeout, AssertUnwindSafe(fut).catch_unwind()).await {
                Ok(Ok(r)) => r,
                Ok(Err(panic)) => vec![
                    Err(JobError::Retry(format!(
                        "batch handler panicked: {}",
                        panic_message(&panic)
                    )));
                    n
                ],
                Err(_) => vec![
                    Err(JobError::Retry(format!(
                        "batch timed out after {timeout:?}"
                    )));
                    n
                ],
            };
        for (slot, r) in slots.into_iter().zip(results) {
            outcomes[slot] = Some(r);
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Err(JobError::Retry("no outcome".into()))))
        .collect()
}
