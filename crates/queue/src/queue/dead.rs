//! Dead letters: requeueing them, and claiming those whose dead-letter hook has not run.

use std::time::Duration;

use async_recursion::async_recursion as boxed;

use super::spec::{Spec, UNREADABLE_TYPE};
use super::{Queue, SCRIPTS};
use crate::error::QueueError;

/// A dead job waiting for its dead-letter hook.
#[derive(Debug, Clone)]
pub struct DeadJob {
    /// The job's id.
    pub id: String,
    /// The job's type.
    pub job_type: String,
    /// The payload, JSON text.
    pub payload: String,
}

/// What a requeue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Requeued {
    /// Moved back to waiting.
    pub requeued: u64,
    /// Left dead because their dead-letter hook is running; try again shortly.
    pub hook_running: u64,
}

impl Queue {
    /// Moves dead-lettered jobs back to waiting, attempts reset. `None`: all of them. Jobs whose
    /// dead-letter hook is running stay dead (counted in `hook_running`).
    #[boxed]
    pub async fn requeue(&self, ids: Option<&[String]>) -> Result<Requeued, QueueError> {
        let mut inv = SCRIPTS.requeue.key(&self.inner.base);
        inv.arg(self.now_ms());
        match ids {
            None => {
                inv.arg("all");
            }
            Some(ids) => {
                inv.arg("ids");
                for id in ids {
                    inv.arg(id);
                }
            }
        }
        let mut conn = self.conn().await?;
        let (requeued, hook_running): (u64, u64) = inv
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err("requeue", &e))?;
        Ok(Requeued {
            requeued,
            hook_running,
        })
    }

    /// Claims up to `limit` dead jobs whose dead-letter hook has not run, for `claim` (after
    /// which another worker may claim them again).
    #[boxed]
    pub async fn claim_dead(
        &self,
        claim: Duration,
        limit: usize,
    ) -> Result<Vec<DeadJob>, QueueError> {
        let mut conn = self.conn().await?;
        // Bytes: a spec that is not UTF-8 must not fail the claim of the others.
        let flat: Vec<Vec<u8>> = SCRIPTS
            .deadclaim
            .key(&self.inner.base)
            .arg(self.now_ms())
            .arg(u64::try_from(claim.as_millis()).unwrap_or(u64::MAX))
            .arg(limit)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err("deadclaim", &e))?;
        let mut out = Vec::with_capacity(flat.len() / 2);
        for pair in flat.chunks_exact(2) {
            // A spec that cannot be read has no hook to run; it must not stop the others'.
            let text = std::str::from_utf8(&pair[1]).unwrap_or("");
            let (job_type, payload) = match Spec::parse(text) {
                Ok(spec) => (spec.job_type, spec.payload.get().to_string()),
                Err(_) => (UNREADABLE_TYPE.to_string(), "null".to_string()),
            };
            out.push(DeadJob {
                id: String::from_utf8_lossy(&pair[0]).into_owned(),
                job_type,
                payload,
            });
        }
        Ok(out)
    }

    /// Marks dead jobs as handled: their hook ran (or they need none).
    #[boxed]
    pub async fn dead_handled(&self, ids: &[String]) -> Result<(), QueueError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        redis::cmd("ZREM")
            .arg(format!("{}deadhook", self.inner.base))
            .arg(ids)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.err("zrem", &e))
    }

    /// Lets the hooks of these claimed dead jobs run again at `at` (Unix ms) after a failure.
    #[boxed]
    pub async fn dead_retry_at(&self, ids: &[String], at: i64) -> Result<(), QueueError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(format!("{}deadhook", self.inner.base)).arg("XX");
        for id in ids {
            cmd.arg(at).arg(id);
        }
        let mut conn = self.conn().await?;
        cmd.query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.err("zadd", &e))
    }
}
