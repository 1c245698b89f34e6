//! Batch handlers: a job type whose handler takes up to `max_batch` jobs at once and returns one
//! outcome per job, so it can write them to its stores in one round trip each
//! (docs/queue.md#batch-handlers). Per-job semantics are unchanged: each job keeps its own
//! attempts, backoff, lease, outcome, record, events and dead-letter hook.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::JobError;
use crate::handler::{HandlerFuture, JobContext, JobRules, Registry, erase_rules};

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

impl BatchOptions {
    /// The options `queue.batch.<type>.*` configures.
    pub fn from_config(config: &tsp_config::Config, job_type: &str) -> BatchOptions {
        let s = config.job_batch(job_type);
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

impl Registry {
    /// Registers a batch handler for `job_type`: it receives up to `options.max_batch` jobs of
    /// the type and returns one outcome per job, in their order. A job whose payload does not
    /// decode fails alone (without retry) and is not passed to the handler; a handler that
    /// returns another number of outcomes fails every job of the batch (retried). The type also
    /// gets a single-job handler that runs a batch of one, so everything that runs one job
    /// (`Worker::run_once`) works for it.
    pub fn register_batch<P, R, F, Fut>(
        &mut self,
        job_type: &str,
        options: BatchOptions,
        rules: JobRules<P>,
        handler: F,
    ) where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(Vec<BatchJob<P>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<R, JobError>>> + Send + 'static,
    {
        self.rules.insert(job_type.to_string(), erase_rules(rules));
        let handler = Arc::new(handler);
        let name = job_type.to_string();
        let run: BatchFn = Arc::new(move |jobs: Vec<(JobContext, String)>| {
            let handler = handler.clone();
            let name = name.clone();
            Box::pin(run_decoded(jobs, name, handler)) as BatchFuture
        });
        let single = run.clone();
        self.handlers.insert(
            job_type.to_string(),
            Arc::new(move |ctx: JobContext, payload: &str| {
                let batch = single(vec![(ctx, payload.to_string())]);
                Box::pin(async move {
                    batch.await.pop().unwrap_or_else(|| {
                        Err(JobError::Retry("batch handler returned nothing".into()))
                    })
                }) as HandlerFuture
            }),
        );
        self.batches
            .insert(job_type.to_string(), ErasedBatch { options, run });
    }

    /// The batch handler of `job_type`, if it has one.
    pub(crate) fn batch(&self, job_type: &str) -> Option<&ErasedBatch> {
        self.batches.get(job_type)
    }
}

/// Decodes each payload, runs the handler on those that decode, and puts every outcome back in
/// the jobs' order.
async fn run_decoded<P, R, F, Fut>(
    jobs: Vec<(JobContext, String)>,
    name: String,
    handler: Arc<F>,
) -> Vec<Result<serde_json::Value, JobError>>
where
    P: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(Vec<BatchJob<P>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<Result<R, JobError>>> + Send + 'static,
{
    let mut outcomes: Vec<Option<Result<serde_json::Value, JobError>>> = Vec::new();
    let mut decoded = Vec::new();
    let mut slots = Vec::new();
    for (i, (ctx, payload)) in jobs.into_iter().enumerate() {
        match serde_json::from_str::<P>(&payload) {
            Ok(p) => {
                decoded.push(BatchJob { ctx, payload: p });
                slots.push(i);
                outcomes.push(None);
            }
            Err(e) => outcomes.push(Some(Err(JobError::Abort(format!(
                "payload does not decode as {name}: {e}"
            ))))),
        }
    }
    if !decoded.is_empty() {
        let n = decoded.len();
        let results = handler(decoded).await;
        if results.len() == n {
            for (slot, r) in slots.into_iter().zip(results) {
                outcomes[slot] = Some(r.and_then(|v| {
                    serde_json::to_value(v)
                        .map_err(|e| JobError::Abort(format!("result does not serialize: {e}")))
                }));
            }
        } else {
            let why = format!(
                "batch handler returned {} outcomes for {n} jobs",
                results.len()
            );
            for slot in slots {
                outcomes[slot] = Some(Err(JobError::Retry(why.clone())));
            }
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Err(JobError::Retry("no outcome".into()))))
        .collect()
}
