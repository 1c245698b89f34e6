//! Running completed jobs again, after a restore rolled back what they wrote to other stores.

use async_recursion::async_recursion as boxed;

use super::{Queue, SCRIPTS};
use crate::error::QueueError;

/// What a rerun did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Rerun {
    /// Completed jobs moved back to waiting.
    pub rerun: u64,
    /// Completed jobs that finished earlier, left as they were.
    pub left_completed: u64,
}

impl Queue {
    /// Moves the completed jobs that finished at or after `since_ms` (Unix milliseconds, the
    /// workers' clocks) back to waiting, attempts starting over. Only jobs still kept as
    /// completed (`queue.keep_completed`, `keep_completed_age`) can run again; their handlers
    /// must be idempotent, as every handler here is (docs/backup.md#redis-kept-by-its-append-only-file).
    #[boxed]
    pub async fn rerun_completed_since(&self, since_ms: i64) -> Result<Rerun, QueueError> {
        let mut conn = self.conn().await?;
        let (rerun, left_completed): (u64, u64) = SCRIPTS
            .rerun
            .key(&self.inner.base)
            .arg(since_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err("rerun", &e))?;
        Ok(Rerun {
            rerun,
            left_completed,
        })
    }
}
