//! Cancelling waiting and delayed jobs (an operator's action).

use async_recursion::async_recursion as boxed;

use super::{Queue, SCRIPTS};
use crate::error::QueueError;

/// What became of one job asked to be cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cancelled {
    /// It was waiting or delayed; it is gone, with everything stored for it.
    Cancelled,
    /// No such job.
    Missing,
    /// Left alone: a worker holds it.
    Active,
    /// Left alone: it has finished.
    Completed,
    /// Left alone: it is dead-lettered (retry it, or let retention remove it).
    Dead,
}

impl Queue {
    /// Cancels these jobs if they are waiting or delayed, atomically: each is removed from its
    /// line with its spec, record and dedup key, counted in the `cancelled` total, and a
    /// `cancelled` event is published. Per id, in order, what became of it. Removing a waiting
    /// job walks its priority's list from the head (Redis `LREM`), O(its position).
    #[boxed]
    pub async fn cancel(&self, ids: &[String]) -> Result<Vec<Cancelled>, QueueError> {
        if let Some(bad) = ids.iter().find(|id| !super::valid_job_id(id)) {
            return Err(QueueError::Invalid {
                field: "id".into(),
                message: format!("`{bad:.70}` is not a job id"),
            });
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let answers: Vec<String> = SCRIPTS
            .cancel
            .key(&self.inner.base)
            .arg(&self.inner.events)
            .arg(ids)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err("cancel", &e))?;
        answers
            .iter()
            .map(|a| match a.as_str() {
                "cancelled" => Ok(Cancelled::Cancelled),
                "missing" => Ok(Cancelled::Missing),
                "active" => Ok(Cancelled::Active),
                "completed" => Ok(Cancelled::Completed),
                "dead" => Ok(Cancelled::Dead),
                other => Err(QueueError::Protocol(format!("cancel answered `{other}`"))),
            })
            .collect()
    }
}
