//! Queue errors, and the errors handlers return to steer retries.

use tsp_hub::HubError;

/// An error from the queue itself.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// Bad input from a producer or operator, naming the field.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The field, as the producer named it (`priority`, `payload.user_id`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    #[error("job {0} not found")]
    /// No job with this id (or it has expired).
    NotFound(String),
    #[error(transparent)]
    /// The queue's Redis store failed.
    Hub(#[from] HubError),
    /// With `queue.durability = wait`, fewer replicas than asked confirmed the write in time:
    /// the primary has it, but it is not acknowledged as durable (retry with a dedup key).
    #[error("{op}: {confirmed} of {wanted} replicas confirmed the write within the timeout")]
    NotReplicated {
        /// What was written (`enqueue`).
        op: &'static str,
        /// Replicas that confirmed.
        confirmed: u32,
        /// Replicas asked for (`queue.durability_replicas`).
        wanted: u32,
    },
    /// A reply the scripts never send: a bug or a foreign key in the way.
    #[error("unexpected reply from redis: {0}")]
    Protocol(String),
}

/// What a handler's failure means for the job.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    /// Try again after the job's backoff, while attempts remain.
    #[error("{0}")]
    Retry(String),
    /// Retrying cannot help (bad payload, a rule the data breaks): dead-letter now.
    #[error("{0}")]
    Abort(String),
}

impl JobError {
    /// A retryable failure, with `e`'s message.
    pub fn retry(e: impl std::fmt::Display) -> Self {
        JobError::Retry(e.to_string())
    }
    /// A failure retrying cannot fix, with `e`'s message.
    pub fn abort(e: impl std::fmt::Display) -> Self {
        JobError::Abort(e.to_string())
    }
}

impl From<HubError> for JobError {
    /// Store trouble is usually passing: retry. A configuration error is not: no attempt can
    /// succeed until the configuration changes, so the job is dead-lettered at once.
    fn from(e: HubError) -> Self {
        match e.kind() {
            tsp_hub::ErrorKind::Config => JobError::Abort(e.to_string()),
            _ => JobError::Retry(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_trouble_is_retried_and_configuration_errors_are_not() {
        let timeout = HubError::Timeout {
            store: "redis",
            instance: "cache".into(),
            op: "get".into(),
            after: std::time::Duration::from_secs(1),
        };
        assert!(matches!(JobError::from(timeout), JobError::Retry(_)));
        let missing = HubError::UnknownInstance {
            store: "mysql",
            instance: "reporting".into(),
        };
        assert!(
            matches!(JobError::from(missing), JobError::Abort(m) if m.contains("mysql.reporting"))
        );
    }
}
