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

use crate::error::{JobError, QueueError};
use crate::queue::Queue;

/// What a handler knows about the job it runs.
#[derive(Clone)]
pub struct JobContext {
    /// The job's id.
    pub id: String,
    /// The job's type.
    pub job_type: String,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// Attempts allowed in all.
    pub max_attempts: u32,
    /// The queue it came from (for progress, or to enqueue follow-ups).
    pub queue: Queue,
}

impl JobContext {
    /// Records progress (any JSON) and publishes a `progress` event.
    pub async fn progress(&self, value: serde_json::Value) -> Result<(), QueueError> {
        self.queue.set_progress(&self.id, &value).await
    }
}

/// A handler's future: the result (JSON) or why it failed.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<serde_json::Value, JobError>> + Send>>;

pub(crate) type ErasedHandler = Arc<dyn Fn(JobContext, &str) -> HandlerFuture + Send + Sync>;

/// A type's producer-side rules over a raw payload: the dedup key, or why it is refused.
pub(crate) type ErasedRules = Arc<dyn Fn(&str) -> Result<Option<String>, QueueError> + Send + Sync>;

/// Why a payload check refused a payload: the field (within the payload, e.g.
/// `trajectory[2].timestamp`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadError {
    /// The field within the payload.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// What producers check before a job of a type is enqueued. Built with [`JobRules::new`],
/// then [`JobRules::check`] and [`JobRules::dedup_key`].
pub struct JobRules<P> {
    check: Option<Check<P>>,
    dedup_key: Option<DedupKey<P>>,
}

/// A payload check: why the payload is refused, naming the field.
type Check<P> = Box<dyn Fn(&P) -> Result<(), PayloadError> + Send + Sync>;

/// A payload's dedup key.
type DedupKey<P> = Box<dyn Fn(&P) -> String + Send + Sync>;

impl<P> Default for JobRules<P> {
    fn default() -> Self {
        JobRules {
            check: None,
            dedup_key: None,
        }
    }
}

impl<P> JobRules<P> {
    /// No rules beyond the payload decoding as `P`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuses payloads that `check` refuses, naming the field.
    pub fn check(
        mut self,
        check: impl Fn(&P) -> Result<(), PayloadError> + Send + Sync + 'static,
    ) -> Self {
        self.check = Some(Box::new(check));
        self
    }

    /// Deduplicates jobs on this key while one is pending (unless the producer gives its own).
    pub fn dedup_key(mut self, key: impl Fn(&P) -> String + Send + Sync + 'static) -> Self {
        self.dedup_key = Some(Box::new(key));
        self
    }
}

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
    pub(crate) batches: HashMap<String, crate::batch::ErasedBatch>,
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
async fn mark_batch(
    jobs: Vec<crate::batch::BatchJob<MarkPayload>>,
) -> Vec<Result<serde_json::Value, JobError>> {
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
            crate::batch::BatchOptions {
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

/// A type's rules over raw payloads: decode as `P`, check, dedup key.
pub(crate) fn erase_rules<P>(rules: JobRules<P>) -> ErasedRules
where
    P: DeserializeOwned + Send + 'static,
{
    Arc::new(move |payload: &str| {
        let p: P = serde_json::from_str(payload).map_err(|e| QueueError::Invalid {
            field: "payload".into(),
            message: e.to_string(),
        })?;
        if let Some(check) = &rules.check {
            check(&p).map_err(|e| QueueError::Invalid {
                field: format!("payload.{}", e.field),
                message: e.message,
            })?;
        }
        Ok(rules.dedup_key.as_ref().map(|key| key(&p)))
    })
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
