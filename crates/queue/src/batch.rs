//! Batch handlers: a job type whose handler takes up to `max_batch` jobs at once and returns one
//! outcome per job, so it can write them to its stores in one round trip each
//! (docs/queue.md#batch-handlers). Per-job semantics are unchanged: each job keeps its own
//! attempts, backoff, lease, outcome, record, events and dead-letter hook.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::contract::JobContext;
use crate::error::JobError;

/// How a type's batches are collected: at most `max_batch` jobs, waiting at most `max_wait`
/// after the first for more (`queue.batch.<type>.*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchOptions {
    /// Most jobs per batch (the queue's concurrency bounds it too: every job of a batch holds
    /// a slot).
    pub max_batch: usize,
    /// How long a batch that is not full waits for more jobs.
    pub max_wait: Duration,
}

impl From<tsp_config::JobBatchSettings> for BatchOptions {
    /// The options `queue.batch.<type>.*` configures (`Config::job_batch`).
    fn from(s: tsp_config::JobBatchSettings) -> BatchOptions {
        BatchOptions {
            max_batch: s.max_batch.max(1),
            max_wait: s.max_wait,
        }
    }
}

/// One job of a batch: its context and its decoded payload.
pub struct BatchJob<P> {
    /// The job's context, as a single-job handler gets it.
    pub ctx: JobContext,
    /// The payload.
    pub payload: P,
}

/// The outcomes of a batch, one per job, in the order of the jobs.
pub type BatchFuture =
    Pin<Box<dyn Future<Output = Vec<Result<serde_json::Value, JobError>>> + Send>>;

pub(crate) type BatchFn = Arc<dyn Fn(Vec<(JobContext, String)>) -> BatchFuture + Send + Sync>;

/// A registered batch handler, its payloads still JSON text.
#[derive(Clone)]
pub(crate) struct ErasedBatch {
    pub(crate) options: BatchOptions,
    pub(crate) run: BatchFn,
}
