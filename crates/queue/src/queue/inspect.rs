//! Inspection: counts per state, one job, listings by state.

use std::collections::HashMap;

use async_recursion::async_recursion as boxed;

use super::lease::LeaseRecord;
use super::spec::{Spec, UNREADABLE_TYPE, created_from_id};
use super::{Queue, SCRIPTS};
use crate::error::QueueError;
use crate::job::{Backoff, JobInfo, JobState, QueueCounts};

/// The spec's part of a [`JobInfo`].
struct SpecView {
    job_type: String,
    payload: serde_json::Value,
    priority: u16,
    max_attempts: u32,
    backoff: Backoff,
    timeout_ms: u64,
    dedup_key: Option<String>,
    created_at: i64,
    legacy_run_at: Option<i64>,
    origin: crate::job::Origin,
}

impl Queue {
    /// A spec that cannot be read is shown as such with the options a worker applies to it
    /// (see `LeasedJob::unreadable`), so one bad job does not hide the others of a listing.
    fn spec_view(&self, id: &str, spec: Option<Spec<'_>>) -> SpecView {
        let s = &self.inner.settings;
        match spec {
            Some(spec) => SpecView {
                payload: serde_json::from_str(spec.payload.get())
                    .unwrap_or(serde_json::Value::Null),
                priority: spec.priority,
                max_attempts: spec.max_attempts,
                backoff: spec.backoff(),
                timeout_ms: spec.timeout_ms,
                dedup_key: spec.dedup_key().map(str::to_string),
                created_at: spec.created_ms,
                legacy_run_at: spec.legacy_run_at,
                origin: spec.origin,
                job_type: spec.job_type,
            },
            None => SpecView {
                job_type: UNREADABLE_TYPE.to_string(),
                payload: serde_json::Value::Null,
                priority: 0,
                max_attempts: s.max_attempts,
                backoff: self.default_backoff(),
                timeout_ms: u64::try_from(s.timeout.as_millis()).unwrap_or(u64::MAX),
                dedup_key: None,
                created_at: created_from_id(id).unwrap_or(0),
                legacy_run_at: None,
                origin: crate::job::Origin::default(),
            },
        }
    }

    /// A read-only script that takes the queue's base key and nothing else.
    async fn read_script<T: redis::FromRedisValue>(
        &self,
        op: &str,
        script: &redis::Script,
    ) -> Result<T, QueueError> {
        self.read(op, |mut conn| async move {
            script.key(&self.inner.base).invoke_async(&mut conn).await
        })
        .await
    }

    /// Per-state sizes and lifetime counters: one script call, O(priorities + workers).
    #[boxed]
    pub async fn counts(&self) -> Result<QueueCounts, QueueError> {
        #[allow(clippy::type_complexity)]
        let (waiting, delayed, active, completed, dead, dead_unhandled, paused, totals): (
            u64,
            u64,
            u64,
            u64,
            u64,
            u64,
            bool,
            HashMap<String, u64>,
        ) = self.read_script("counts", &SCRIPTS.counts).await?;
        Ok(QueueCounts {
            queue: self.inner.name.clone(),
            paused,
            waiting,
            delayed,
            active,
            completed,
            dead,
            dead_unhandled,
            totals,
        })
    }

    /// One job, if it exists (completed and dead jobs exist until retention removes them).
    #[boxed]
    pub async fn job(&self, id: &str) -> Result<Option<JobInfo>, QueueError> {
        if !super::valid_job_id(id) {
            return Err(QueueError::Invalid {
                field: "id".into(),
                message: "not a job id".into(),
            });
        }
        // Bytes, not strings: a stored value that is not UTF-8 (a corrupted spec) is shown as
        // unreadable rather than failing the whole answer.
        let raw: Vec<Option<Vec<u8>>> = self
            .read("job", |mut conn| async move {
                SCRIPTS
                    .job
                    .key(&self.inner.base)
                    .arg(id)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        let v: Vec<Option<String>> = raw
            .into_iter()
            .map(|b| b.map(|b| String::from_utf8_lossy(&b).into_owned()))
            .collect();
        let [spec_text, record, result, errors, progress, state, finished] = v.as_slice() else {
            return Err(QueueError::Protocol(format!(
                "job returned {} values",
                v.len()
            )));
        };
        let Some(spec_text) = spec_text.as_deref() else {
            return Ok(None);
        };
        let spec = Spec::parse(spec_text).ok();
        let record = LeaseRecord::parse(record.as_deref().unwrap_or(""));
        let state = state.as_deref().and_then(JobState::parse);
        let json = |t: &Option<String>| {
            t.as_deref().map(|x| {
                serde_json::from_str(x).unwrap_or(serde_json::Value::String(x.to_string()))
            })
        };
        let errors: Vec<crate::job::AttemptError> = errors
            .as_deref()
            .and_then(|e| serde_json::from_str(e).ok())
            .unwrap_or_default();
        let spec = self.spec_view(id, spec);
        Ok(Some(JobInfo {
            id: id.to_string(),
            queue: self.inner.name.clone(),
            state: state.map(JobState::as_str).unwrap_or("unknown").to_string(),
            attempts: record.attempts,
            run_at: record
                .run_at
                .or(spec.legacy_run_at)
                .unwrap_or(spec.created_at),
            job_type: spec.job_type,
            payload: spec.payload,
            priority: spec.priority,
            max_attempts: spec.max_attempts,
            backoff: spec.backoff,
            timeout_ms: spec.timeout_ms,
            dedup_key: spec.dedup_key,
            created_at: spec.created_at,
            origin: spec.origin,
            started_at: record.started,
            finished_at: finished
                .as_deref()
                .and_then(|x| x.parse::<f64>().ok())
                .map(|x| x as i64),
            progress: json(progress),
            result: json(result).or(if state == Some(JobState::Completed) {
                Some(serde_json::Value::Null)
            } else {
                None
            }),
            last_error: errors.last().map(|e| e.error.clone()),
            errors,
            holder: record.holder,
        }))
    }

    /// Up to `limit` jobs in `state`: waiting ones in the order they will run, the others
    /// oldest first (active ones by worker).
    #[boxed]
    pub async fn list(&self, state: JobState, limit: usize) -> Result<Vec<JobInfo>, QueueError> {
        self.page(state, 0, limit, Order::Oldest).await
    }

    /// A page of jobs in `state`: `limit` after skipping `offset`, in `order` (waiting jobs'
    /// oldest-first order is the order they will run; active ones are listed by worker). Redis
    /// work is O(priorities in use + page), whatever the state's size.
    #[boxed]
    pub async fn page(
        &self,
        state: JobState,
        offset: usize,
        limit: usize,
        order: Order,
    ) -> Result<Vec<JobInfo>, QueueError> {
        let ids = self.page_ids(state, offset, limit, order).await?;
        let infos = futures::future::join_all(ids.iter().map(|id| self.job(id))).await;
        let mut out = Vec::with_capacity(ids.len());
        for info in infos {
            if let Some(j) = info? {
                out.push(j);
            }
        }
        Ok(out)
    }

    /// The ids of [`Queue::page`], without reading the jobs.
    #[boxed]
    pub async fn page_ids(
        &self,
        state: JobState,
        offset: usize,
        limit: usize,
        order: Order,
    ) -> Result<Vec<String>, QueueError> {
        self.read("list", |mut conn| async move {
            SCRIPTS
                .list
                .key(&self.inner.base)
                .arg(state.as_str())
                .arg(limit)
                .arg(offset)
                .arg(order.as_str())
                .invoke_async(&mut conn)
                .await
        })
        .await
    }

    /// The job types of `ids` (`None` for a job that is gone or unreadable): one HMGET.
    #[boxed]
    pub async fn types_of(&self, ids: &[String]) -> Result<Vec<Option<String>>, QueueError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let specs: Vec<Option<Vec<u8>>> = self
            .read("hmget", |mut conn| async move {
                redis::cmd("HMGET")
                    .arg(format!("{}data", self.inner.base))
                    .arg(ids)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(specs
            .into_iter()
            .map(|s| {
                let text = String::from_utf8(s?).ok()?;
                Spec::parse(&text).ok().map(|s| s.job_type)
            })
            .collect())
    }

    /// The ids of the pending or active jobs holding dedup key `key` as a job shows it, under
    /// any of `types` (a key is held per type, `type:key`), or `key` as held: one round trip.
    #[boxed]
    pub async fn by_dedup_key(
        &self,
        types: &[String],
        key: &str,
    ) -> Result<Vec<String>, QueueError> {
        let mut slots = vec![key.to_string()];
        slots.extend(types.iter().map(|t| format!("{t}:{key}")));
        let held: Vec<Option<String>> = self
            .read("hmget", |mut conn| {
                let slots = slots.clone();
                async move {
                    redis::cmd("HMGET")
                        .arg(format!("{}dedup", self.inner.base))
                        .arg(slots)
                        .query_async(&mut conn)
                        .await
                }
            })
            .await?;
        let mut ids: Vec<String> = held.into_iter().flatten().collect();
        ids.dedup();
        Ok(ids)
    }

    /// When the oldest waiting job was made (its id, a ULID, says) and every worker lease
    /// holding jobs:
    /// O(priorities in use + workers).
    #[boxed]
    pub async fn glance(&self) -> Result<Glance, QueueError> {
        let (heads, workers): (Vec<String>, Vec<String>) =
            self.read_script("glance", &SCRIPTS.glance).await?;
        let oldest_waiting_ms = heads.iter().filter_map(|id| created_from_id(id)).min();
        let leases = workers
            .chunks_exact(3)
            .map(|w| Lease {
                holder: w[0].clone(),
                deadline_ms: w[1].parse::<f64>().map(|d| d as i64).unwrap_or(0),
                held: w[2].parse().unwrap_or(0),
            })
            .collect();
        Ok(Glance {
            oldest_waiting_ms,
            leases,
        })
    }
}

/// The order of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Newest first (waiting: the last to run first).
    Newest,
    /// Oldest first (waiting: the next to run first).
    Oldest,
}

impl Order {
    fn as_str(self) -> &'static str {
        match self {
            Order::Newest => "newest",
            Order::Oldest => "oldest",
        }
    }
}

/// A worker lease holding jobs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Lease {
    /// The lease id.
    pub holder: String,
    /// When it expires unless its worker heartbeats (Unix ms).
    pub deadline_ms: i64,
    /// Jobs it holds.
    pub held: u64,
}

/// See [`Queue::glance`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct Glance {
    /// When the oldest waiting job was made (Unix ms, from its id), if any waits.
    pub oldest_waiting_ms: Option<i64>,
    /// The worker leases holding jobs.
    pub leases: Vec<Lease>,
}
