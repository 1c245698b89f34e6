//! What a job type's handler is given and gives back ([`JobContext`], [`HandlerFuture`]), and
//! the rules producers apply to its jobs ([`JobRules`]): the contract between a job type and
//! the queue, apart from the registry that holds them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_recursion::async_recursion as boxed;
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
    #[boxed]
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
