//! The registry of job types: each with its handler (typed payload), and optionally the rules
//! producers apply before enqueueing ([`JobRules`]: a payload check and a dedup key) and a
//! dead-letter hook. A job type owns its rules, so the CLI and HTTP enqueue paths apply them
//! through [`Registry::prepare`] without naming any type.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::batch::{BatchFn, BatchFuture, BatchJob, BatchOptions, ErasedBatch};
use crate::contract::{
    ErasedHandler, ErasedRules, HandlerFuture, JobContext, JobRules, erase_rules,
};
use crate::error::{JobError, QueueError};

/// Why a dead-letter hook failed (any error type).
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// A dead-letter hook's future: `Err` (why) makes the worker run it again later.
pub type HookFuture = Pin<Box<dyn Future<Output = Result<(), HookError>> + Send>>;

type ErasedHook = Arc<dyn Fn(String, &str) -> HookFuture + Send + Sync>;

/// Handlers by job type. [`Registry::new`] includes the built-ins: `builtin.noop`,
/// `builtin.sleep` (payload `{"ms": N}`) and `builtin.mark` (payload `{"set": "name", "ms": N}`,
/// a batch handler).
#[derive(Clone)]
pub struct Registry {
    pub(crate) handlers: HashMap<String, ErasedHandler>,
    pub(crate) rules: HashMap<String, ErasedRules>,
    dead_hooks: HashMap<String, ErasedHook>,
    /// Types with a batch handler (see `batch`), and how their batches are collected.
    pub(crate) batches: HashMap<String, ErasedBatch>,
    /// What a producer must be allowed to enqueue each type ([`Registry::require`]).
    permissions: HashMap<String, &'static str>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SleepPayload {
    ms: u64,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkPayload {
    set: String,
    #[serde(default)]
    ms: u64,
}

/// `builtin.mark` for a batch: one sleep, then every job's mark in one pipeline.
async fn mark_batch(jobs: Vec<BatchJob<MarkPayload>>) -> Vec<Result<serde_json::Value, JobError>> {
    let valid = |p: &MarkPayload| {
        if p.set.is_empty() || p.set.len() > 100 {
            Err(JobError::abort("set: must be 1-100 characters"))
        } else if p.ms > 3_600_000 {
            Err(JobError::abort("ms: at most 3600000 (one hour)"))
        } else {
            Ok(())
        }
    };
    let checks: Vec<Result<(), JobError>> = jobs.iter().map(|j| valid(&j.payload)).collect();
    let Some(first) = jobs.first() else {
        return Vec::new();
    };
    let longest = jobs.iter().map(|j| j.payload.ms).max().unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(longest)).await;
    let store = first.ctx.queue.store().clone();
    let mut pipe = redis::pipe();
    for (j, ok) in jobs.iter().zip(&checks) {
        if ok.is_ok() {
            let key = format!("{}marks:{}", store.key_prefix(), j.payload.set);
            pipe.cmd("HINCRBY").arg(key).arg(&j.ctx.id).arg(1);
        }
    }
    let runs: Result<Vec<i64>, JobError> = match store.conn().await {
        Ok(mut conn) => pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| JobError::retry(store.command_error("hincrby", &e))),
        Err(e) => Err(JobError::retry(e)),
    };
    let mut runs = match runs {
        Ok(r) => r.into_iter(),
        Err(e) => return jobs.iter().map(|_| Err(e.clone())).collect(),
    };
    checks
        .into_iter()
        .map(|c| c.map(|()| serde_json::json!({"runs": runs.next().unwrap_or(0)})))
        .collect()
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// A registry holding the built-in job types.
    pub fn new() -> Self {
        let mut r = Registry {
            handlers: HashMap::new(),
            rules: HashMap::new(),
            dead_hooks: HashMap::new(),
            batches: HashMap::new(),
            permissions: HashMap::new(),
        };
        r.register("builtin.noop", |_ctx, _p: serde::de::IgnoredAny| async {
            Ok(())
        });
        r.register("builtin.sleep", |_ctx, p: SleepPayload| async move {
            if p.ms > 3_600_000 {
                return Err(JobError::abort("ms: at most 3600000 (one hour)"));
            }
            tokio::time::sleep(Duration::from_millis(p.ms)).await;
            Ok(serde_json::json!({"slept_ms": p.ms}))
        });
        // Leaves a trace per run: `HINCRBY <prefix>marks:<set> <job id> 1`, after sleeping `ms`
        // (default 0). For smoke tests and drills: afterwards every job id should show exactly
        // 1. A batch handler: a batch's marks go in one pipeline, after one sleep (the longest).
        r.register_batch(
            "builtin.mark",
            BatchOptions {
                max_batch: 256,
                max_wait: Duration::ZERO,
            },
            JobRules::new(),
            mark_batch,
        );
        r
    }

    /// Registers `handler` for `job_type`. A payload that does not decode as `P` fails the job
    /// without retry, with the decode error.
    pub fn register<P, R, F, Fut>(&mut self, job_type: &str, handler: F)
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize,
        F: Fn(JobContext, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, JobError>> + Send + 'static,
    {
        self.register_with(job_type, JobRules::new(), handler);
    }

    /// [`Registry::register`], with the rules producers apply before enqueueing a job of this
    /// type (see [`Registry::prepare`]).
    pub fn register_with<P, R, F, Fut>(&mut self, job_type: &str, rules: JobRules<P>, handler: F)
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize,
        F: Fn(JobContext, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, JobError>> + Send + 'static,
    {
        self.rules.insert(job_type.to_string(), erase_rules(rules));
        let handler = Arc::new(handler);
        let name = job_type.to_string();
        let erased: ErasedHandler = Arc::new(move |ctx: JobContext, payload: &str| {
            let decoded: Result<P, _> = serde_json::from_str(payload);
            let handler = handler.clone();
            let name = name.clone();
            Box::pin(async move {
                let p = decoded.map_err(|e| {
                    JobError::Abort(format!("payload does not decode as {name}: {e}"))
                })?;
                let r = handler(ctx, p).await?;
                serde_json::to_value(r)
                    .map_err(|e| JobError::Abort(format!("result does not serialize: {e}")))
            }) as HandlerFuture
        });
        self.handlers.insert(job_type.to_string(), erased);
    }
}

impl Registry {
    /// Registers a dead-letter hook for `job_type`: it runs once a job of that type is
    /// dead-lettered (out of attempts, aborted, or stalled for the last time), with the job's id
    /// and payload, typically to compensate for the work of its failed attempts. It runs in some
    /// worker of the queue, at least once: if it fails, or its worker dies, it runs again, so it
    /// must be idempotent. Every worker of a queue should register the same hooks: a worker
    /// without one for a dead job's type marks it handled.
    pub fn on_dead<P, E, F, Fut>(&mut self, job_type: &str, hook: F)
    where
        P: DeserializeOwned + Send + 'static,
        E: Into<HookError>,
        F: Fn(String, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let hook = Arc::new(hook);
        let erased: ErasedHook = Arc::new(move |id: String, payload: &str| {
            match serde_json::from_str::<P>(payload) {
                // A payload that never decoded never ran: there is nothing to undo.
                Err(_) => Box::pin(async { Ok(()) }) as HookFuture,
                Ok(p) => {
                    let hook = hook.clone();
                    Box::pin(async move { hook(id, p).await.map_err(Into::into) }) as HookFuture
                }
            }
        });
        self.dead_hooks.insert(job_type.to_string(), erased);
    }

    /// The dead-letter hook's future for a job, or `None` when its type has none.
    pub(crate) fn dead_hook(&self, id: &str, job_type: &str, payload: &str) -> Option<HookFuture> {
        let h = self.dead_hooks.get(job_type)?.clone();
        Some(h(id.to_string(), payload))
    }

    /// Applies a job type's rules to a payload before it is enqueued: it must decode as the
    /// handler's payload type and pass the type's check. Returns the type's dedup key for it,
    /// if the type has one. A type this registry does not know passes unchecked: another
    /// worker's build may know it.
    ///
    /// # Errors
    /// [`QueueError::Invalid`] naming the field of the payload (`payload.tripId: …`).
    pub fn prepare(&self, job_type: &str, payload: &str) -> Result<Option<String>, QueueError> {
        let Some(rules) = self.rules.get(job_type) else {
            return Ok(None);
        };
        rules(payload)
    }

    /// Declares what a producer must be allowed to enqueue `job_type` (an API scope such as
    /// `admin`). The queue does not interpret it; the API refuses a type without one.
    pub fn require(&mut self, job_type: &str, permission: &'static str) {
        self.permissions.insert(job_type.to_string(), permission);
    }

    /// What enqueueing `job_type` requires, if declared.
    pub fn permission(&self, job_type: &str) -> Option<&'static str> {
        self.permissions.get(job_type).copied()
    }

    /// The registered job types, sorted.
    pub fn types(&self) -> Vec<String> {
        let mut t: Vec<String> = self.handlers.keys().cloned().collect();
        t.sort();
        t
    }

    /// The handler's future for a job, or `None` for an unknown type.
    pub(crate) fn call(&self, ctx: JobContext, payload: &str) -> Option<HandlerFuture> {
        let h = self.handlers.get(&ctx.job_type)?.clone();
        Some(h(ctx, payload))
    }
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
