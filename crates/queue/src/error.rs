//! Queue errors, and the errors handlers return to steer retries.

use tsp_hub::HubError;

/// An error from the queue itself.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// Bad input from a producer or operator, naming the field.
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    #[error("job {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Hub(#[from] HubError),
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
    pub fn retry(e: impl std::fmt::Display) -> Self {
        JobError::Retry(e.to_string())
    }
    pub fn abort(e: impl std::fmt::Display) -> Self {
        JobError::Abort(e.to_string())
    }
}

impl From<HubError> for JobError {
    /// Store trouble is usually passing: retry.
    fn from(e: HubError) -> Self {
        JobError::Retry(e.to_string())
    }
}
