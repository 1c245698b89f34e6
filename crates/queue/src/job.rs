//! Jobs as producers describe them and as the queue reports them.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use crate::error::QueueError;

/// The highest priority; jobs run highest priority first, FIFO within a priority.
pub const MAX_PRIORITY: u16 = 1023;

/// How long to wait before the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", content = "base_ms", rename_all = "lowercase")]
pub enum Backoff {
    /// `base · 2^(attempt-1)` (that floor capped at one hour), plus up to half as much again
    /// at random, so retries of jobs that failed together spread out: at most 90 minutes.
    Exponential(u64),
    /// The same delay every time.
    Fixed(u64),
}

impl Backoff {
    /// The wire form stored with the job (`exp:500`, `fixed:1000`).
    pub fn encode(self) -> String {
        match self {
            Backoff::Exponential(ms) => format!("exp:{ms}"),
            Backoff::Fixed(ms) => format!("fixed:{ms}"),
        }
    }

    /// Reads the stored form (`exp:1000`, `fixed:500`); an unreadable one is exponential from one second.
    pub fn decode(s: &str) -> Backoff {
        match s.split_once(':') {
            Some(("fixed", ms)) => Backoff::Fixed(ms.parse().unwrap_or(1000)),
            Some((_, ms)) => Backoff::Exponential(ms.parse().unwrap_or(1000)),
            None => Backoff::Exponential(1000),
        }
    }

    /// The delay before attempt `attempt + 1`, after attempt `attempt` (1-based) failed.
    pub fn delay(self, attempt: u32) -> Duration {
        match self {
            Backoff::Fixed(ms) => Duration::from_millis(ms),
            Backoff::Exponential(ms) => {
                let floor = ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(30));
                let floor = floor.min(3_600_000);
                let jitter = if floor > 0 {
                    rand::random_range(0..=floor / 2)
                } else {
                    0
                };
                Duration::from_millis(floor + jitter)
            }
        }
    }
}

/// Where a job came from (stored as the ninth element of its spec).
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Origin {
    /// The enqueue's trace context (W3C `traceparent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The id of the HTTP request that enqueued it (`x-request-id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Origin {
    /// Neither is known.
    pub fn is_unknown(&self) -> bool {
        self.traceparent.is_none() && self.request_id.is_none()
    }
}

/// A job to enqueue. Build with [`NewJob::new`] and the `with_*` methods.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Which handler runs it.
    pub job_type: String,
    /// JSON text.
    pub payload: String,
    /// Higher runs first (0 to 1000).
    pub priority: u16,
    /// How long to wait before it may run.
    pub delay: Duration,
    /// Attempts allowed in all; `None`: the queue's default.
    pub max_attempts: Option<u32>,
    /// The wait between attempts; `None`: the queue's default.
    pub backoff: Option<Backoff>,
    /// How long one attempt may run; `None`: the queue's default.
    pub timeout: Option<Duration>,
    /// While a job with this key is not finished, enqueueing another returns that job.
    pub dedup_key: Option<String>,
    /// Where it comes from: the trace it continues (`None`: the enqueue's current trace, if
    /// there is one, [`crate::trace`]) and the request that enqueued it.
    pub origin: Origin,
}

impl NewJob {
    /// A job of `job_type` with a payload that serializes to JSON.
    pub fn new(job_type: impl Into<String>, payload: &impl Serialize) -> Result<Self, QueueError> {
        let payload = serde_json::to_string(payload).map_err(|e| QueueError::Invalid {
            field: "payload".into(),
            message: e.to_string(),
        })?;
        Ok(Self::raw(job_type, payload))
    }

    /// A job whose payload is JSON text already (checked by [`NewJob::validate`]).
    pub fn raw(job_type: impl Into<String>, payload: impl Into<String>) -> Self {
        NewJob {
            job_type: job_type.into(),
            payload: payload.into(),
            priority: 0,
            delay: Duration::ZERO,
            max_attempts: None,
            backoff: None,
            timeout: None,
            dedup_key: None,
            origin: Origin::default(),
        }
    }

    /// Sets the priority.
    pub fn with_priority(mut self, p: u16) -> Self {
        self.priority = p;
        self
    }
    /// Sets the delay before the first attempt.
    pub fn with_delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
    /// Sets the attempts allowed.
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }
    /// Sets the backoff between attempts.
    pub fn with_backoff(mut self, b: Backoff) -> Self {
        self.backoff = Some(b);
        self
    }
    /// Sets the bound on one attempt.
    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
    /// Sets the dedup key.
    pub fn with_dedup_key(mut self, k: impl Into<String>) -> Self {
        self.dedup_key = Some(k.into());
        self
    }
    /// Records the id of the request that enqueues it (shown with the job and on its spans).
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.origin.request_id = Some(id.into());
        self
    }

    /// Checks what the queue cannot fix later, naming the field.
    pub fn validate(&self) -> Result<(), QueueError> {
        let invalid = |field: &str, message: String| {
            Err(QueueError::Invalid {
                field: field.into(),
                message,
            })
        };
        if self.job_type.is_empty() || self.job_type.len() > 200 {
            return invalid("type", "must be 1-200 characters".into());
        }
        if self.priority > MAX_PRIORITY {
            return invalid("priority", format!("must be 0-{MAX_PRIORITY}"));
        }
        if self.max_attempts == Some(0) {
            return invalid("max_attempts", "must be at least 1".into());
        }
        if self.timeout == Some(Duration::ZERO) {
            return invalid("timeout", "must be greater than zero".into());
        }
        if self
            .dedup_key
            .as_deref()
            .is_some_and(|k| k.is_empty() || k.len() > 500)
        {
            return invalid("dedup_key", "must be 1-500 characters".into());
        }
        let o = &self.origin;
        if o.traceparent
            .as_deref()
            .is_some_and(|t| !crate::trace::is_traceparent(t))
        {
            return invalid("traceparent", "must be a W3C traceparent".into());
        }
        if o.request_id
            .as_deref()
            .is_some_and(|r| r.is_empty() || r.len() > 128)
        {
            return invalid("request_id", "must be 1-128 characters".into());
        }
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&self.payload) {
            return invalid("payload", format!("not valid JSON: {e}"));
        }
        Ok(())
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Ready to run, by priority.
    Waiting,
    /// Waiting for its run-at time (a delay or a retry's backoff).
    Delayed,
    /// Leased to a worker.
    Active,
    /// Finished; kept for the retention period.
    Completed,
    /// Failed for good: in the dead letters.
    Dead,
}

impl JobState {
    /// Every state, in a job's order.
    pub const ALL: [JobState; 5] = [
        JobState::Waiting,
        JobState::Delayed,
        JobState::Active,
        JobState::Completed,
        JobState::Dead,
    ];

    /// The state's name in the API and in Redis.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Delayed => "delayed",
            JobState::Active => "active",
            JobState::Completed => "completed",
            JobState::Dead => "dead",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .or(match s {
                "failed" => Some(JobState::Dead),
                _ => None,
            })
    }
}

/// One attempt's failure.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AttemptError {
    /// The attempt's number, from 1.
    pub attempt: u32,
    /// Unix ms.
    pub at: i64,
    /// What went wrong.
    pub error: String,
}

/// A job as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobInfo {
    /// The job's id.
    pub id: String,
    /// The queue's name.
    pub queue: String,
    #[serde(rename = "type")]
    /// Which handler runs it.
    pub job_type: String,
    /// The payload (JSON).
    pub payload: serde_json::Value,
    /// One of [`JobState`]'s names.
    pub state: String,
    /// Higher runs first.
    pub priority: u16,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed in all.
    pub max_attempts: u32,
    /// The wait between attempts.
    pub backoff: Backoff,
    /// The bound on one attempt.
    pub timeout_ms: u64,
    /// The dedup key, if it has one.
    pub dedup_key: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// When it may run next (Unix ms).
    pub run_at: i64,
    /// When the current or last attempt started (Unix ms).
    pub started_at: Option<i64>,
    /// When it finished (Unix ms).
    pub finished_at: Option<i64>,
    /// The last progress its handler reported.
    pub progress: Option<serde_json::Value>,
    /// Its handler's result, once completed.
    pub result: Option<serde_json::Value>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// The trace and the request that enqueued it, when known (docs/metrics.md#traces).
    #[serde(skip_serializing_if = "Origin::is_unknown")]
    pub origin: Origin,
    /// Every failed attempt's error.
    pub errors: Vec<AttemptError>,
    /// The lease id of the worker that holds it or ran its last attempt, if any did.
    pub holder: Option<String>,
}

/// Per-state sizes (one command per priority in use and per worker holding jobs, never a scan)
/// and lifetime counters of one queue.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct QueueCounts {
    /// The queue's name.
    pub queue: String,
    /// Whether workers are held from fetching.
    pub paused: bool,
    /// Jobs ready to run.
    pub waiting: u64,
    /// Jobs waiting for their run-at time.
    pub delayed: u64,
    /// Jobs leased to workers.
    pub active: u64,
    /// Finished jobs kept.
    pub completed: u64,
    /// Jobs in the dead letters.
    pub dead: u64,
    /// Dead jobs whose dead-letter hook has not run yet (compensation pending).
    pub dead_unhandled: u64,
    /// Lifetime counters: enqueued, completed, failed (attempts), retried, dead, stalled,
    /// requeued, rerun.
    pub totals: HashMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_grows_with_bounded_jitter() {
        for attempt in 1..6u32 {
            let floor = 100u64 << (attempt - 1);
            let delays: Vec<u64> = (0..50)
                .map(|_| Backoff::Exponential(100).delay(attempt).as_millis() as u64)
                .collect();
            for d in &delays {
                assert!(
                    *d >= floor && *d <= floor + floor / 2,
                    "attempt {attempt}: {d}"
                );
            }
            // The jitter is there: of 50 uniform draws, some land in the upper half of its
            // range (all missing it has odds of 2^-50).
            assert!(
                delays.iter().any(|d| *d > floor + floor / 4),
                "attempt {attempt}: {delays:?}"
            );
        }
        // The floor stops at an hour; the jitter adds at most half of it.
        let late = Backoff::Exponential(1000).delay(40).as_millis() as u64;
        assert!((3_600_000..=5_400_000).contains(&late), "{late}");
        assert_eq!(Backoff::Fixed(250).delay(7), Duration::from_millis(250));
        assert_eq!(
            Backoff::decode(&Backoff::Fixed(5).encode()),
            Backoff::Fixed(5)
        );
    }

    #[test]
    fn validation_names_the_field() {
        let e = NewJob::raw("t", "{not json").validate().unwrap_err();
        assert!(e.to_string().contains("payload"), "{e}");
        let e = NewJob::raw("t", "{}")
            .with_priority(5000)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("priority"), "{e}");
        assert!(NewJob::raw("t", "{}").validate().is_ok());
    }
}
