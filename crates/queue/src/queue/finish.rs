//! Outcomes: reporting finished attempts, one script call per lease id and chunk.

use std::time::Duration;

use async_recursion::async_recursion as boxed;
use redis::Value;

use super::lease::{LeasedJob, by_holder};
use super::{Queue, SCRIPTS, int};
use crate::error::QueueError;

/// Jobs per finish script call (its arguments stay within Lua's `unpack` limit, 8 000).
const FINISH_CHUNK: usize = 1000;

/// How an attempt ended, as the worker reports it.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The handler succeeded.
    Completed {
        /// Its result, JSON text.
        result: String,
    },
    /// The attempt failed and the job runs again.
    Retry {
        /// Why the attempt failed.
        error: String,
        /// When to run again (Unix ms).
        at: i64,
    },
    /// The job failed for good: it goes to the dead letters.
    Dead {
        /// Why the last attempt failed.
        error: String,
    },
}

/// What the queue made of a reported outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// It completed.
    Completed,
    /// It will run again.
    Retrying,
    /// It is in the dead letters.
    Dead,
    /// The lease was no longer this worker's (expired and recovered): nothing was changed.
    Stale,
}

impl Queue {
    /// Reports finished attempts: one round trip per lease id among them (usually one).
    /// `any_dedup`: some of these jobs have a dedup key to release (skips that work for the
    /// common batch without any). Outcomes in the order of `acks`.
    #[boxed]
    pub async fn finish(
        &self,
        acks: &[(&LeasedJob, Outcome)],
        any_dedup: bool,
    ) -> Result<Vec<Finished>, QueueError> {
        let mut out = vec![Finished::Stale; acks.len()];
        for (holder, idx) in by_holder(acks.iter().map(|(j, _)| &*j.token)) {
            for part in idx.chunks(FINISH_CHUNK) {
                let got = self.finish_held(holder, acks, part, any_dedup).await?;
                for (i, f) in got {
                    out[i] = f;
                }
            }
        }
        // The outcomes are stored on the primary whatever the replicas say, so a shortfall is
        // counted and logged, not returned: retrying would find the jobs finished.
        if let Some((confirmed, wanted)) = self.wait_replicas().await?
            && confirmed < wanted
        {
            tracing::warn!(
                queue = self.name(),
                confirmed,
                wanted,
                "acknowledged outcomes not confirmed by the replicas in time"
            );
        }
        Ok(out)
    }

    /// One finish call for jobs held under `holder`: `part` indexes `acks`.
    async fn finish_held(
        &self,
        holder: &str,
        acks: &[(&LeasedJob, Outcome)],
        part: &[usize],
        any_dedup: bool,
    ) -> Result<Vec<(usize, Finished)>, QueueError> {
        let s = &self.inner.settings;
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let now = self.now_ms().to_string();
        let (plain, other): (Vec<usize>, Vec<usize>) = part.iter().partition(
            |&&i| matches!(&acks[i].1, Outcome::Completed { result } if result == "null"),
        );
        let mut inv = SCRIPTS.finish.key(&self.inner.base);
        inv.arg(&now)
            .arg(s.keep_completed)
            .arg(ms(s.keep_completed_age))
            .arg(s.keep_dead)
            .arg(ms(s.keep_dead_age))
            .arg(&self.inner.events)
            .arg(if any_dedup { "1" } else { "0" })
            .arg(holder)
            .arg(plain.len());
        for &i in &plain {
            let job = acks[i].0;
            inv.arg(&job.id).arg(job.lease_record(Some(&now)));
        }
        inv.arg(other.len());
        for &i in &other {
            let job = acks[i].0;
            inv.arg(&job.id);
            match &acks[i].1 {
                Outcome::Completed { result } => inv.arg("ok").arg(result).arg(0),
                Outcome::Retry { error, at } => inv.arg("retry").arg(error).arg(*at),
                Outcome::Dead { error } => inv.arg("dead").arg(error).arg(0),
            };
            inv.arg(job.lease_record(None));
        }
        let mut conn = self.conn().await?;
        let reply: Vec<Value> = inv
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err("finish", &e))?;
        // {L, statuses...}: the first L jobs completed, then one status per remaining job.
        let lead = reply
            .first()
            .and_then(int)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(usize::MAX);
        let answered = lead.saturating_add(reply.len().saturating_sub(1));
        if answered != part.len() {
            return Err(QueueError::Protocol(format!(
                "finish answered {answered} of {} jobs",
                part.len()
            )));
        }
        let statuses = reply[1..].iter().map(|r| match r {
            Value::BulkString(b) => match b.as_slice() {
                b"completed" => Ok(Finished::Completed),
                b"retrying" => Ok(Finished::Retrying),
                b"dead" => Ok(Finished::Dead),
                b"stale" => Ok(Finished::Stale),
                other => Err(QueueError::Protocol(format!(
                    "finish: {}",
                    String::from_utf8_lossy(other)
                ))),
            },
            other => Err(QueueError::Protocol(format!("finish: {other:?}"))),
        });
        plain
            .iter()
            .chain(&other)
            .zip(std::iter::repeat_n(Ok(Finished::Completed), lead).chain(statuses))
            .map(|(&i, f)| f.map(|f| (i, f)))
            .collect()
    }
}
