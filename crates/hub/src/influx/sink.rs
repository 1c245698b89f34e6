//! Where a point writer sends its batches: the instance's HTTP client ([`super::InfluxStore`])
//! is one, seen by the writer only through this trait.

use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use tsp_config::BatchSettings;

/// Why a write failed, and whether sending it again may work.
#[derive(Debug, Clone)]
pub enum WriteFailure {
    /// 429, 5xx, timeouts and connection errors: retry, after `retry_after` if the server said.
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Anything else (bad line protocol, unknown database, auth): retrying cannot help.
    Permanent { message: String },
}

impl WriteFailure {
    pub fn message(&self) -> &str {
        match self {
            WriteFailure::Retryable { message, .. } | WriteFailure::Permanent { message } => {
                message
            }
        }
    }
}

/// What a point writer needs of the instance it writes to.
pub(crate) trait LineSink: Send + Sync + 'static {
    /// The instance's name, for metrics and logs.
    fn name(&self) -> &str;
    /// `influx.<instance>.batch.*`.
    fn batch(&self) -> &BatchSettings;
    /// The tags added to every point.
    fn default_tags(&self) -> &[(String, String)];
    /// Sends one body of line protocol to `target` (a v2 bucket or v1 database).
    fn write_body<'a>(
        &'a self,
        target: &'a str,
        body: Bytes,
    ) -> BoxFuture<'a, Result<(), WriteFailure>>;
}
