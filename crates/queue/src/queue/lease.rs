//! Leases: fetching jobs under a worker's lease id, keeping the lease alive, taking back the
//! jobs of expired leases, and returning leases.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_recursion::async_recursion as boxed;
use redis::Value;

use super::spec::{UNREADABLE_TYPE, created_from_id, read_spec};
use super::{Queue, SCRIPTS, int, text};
use crate::error::QueueError;
use crate::job::Backoff;

/// Expired worker leases taken back per recover call (each holds up to its concurrency).
const RECOVER_WORKERS: usize = 20;

/// Job ids per heartbeat or release call (same limit).
const IDS_PER_CALL: usize = 4000;

/// Indexes of `tokens` grouped by lease id, groups in order of first appearance.
pub(super) fn by_holder<'a>(tokens: impl Iterator<Item = &'a str>) -> Vec<(&'a str, Vec<usize>)> {
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, t) in tokens.enumerate() {
        match groups.iter_mut().find(|(h, _)| *h == t) {
            Some((_, idx)) => idx.push(i),
            None => groups.push((t, vec![i])),
        }
    }
    groups
}

/// A job leased to a worker.
#[derive(Debug, Clone)]
pub struct LeasedJob {
    /// The job's id.
    pub id: String,
    /// The job's type.
    pub job_type: String,
    /// The payload, JSON text.
    pub payload: String,
    /// This attempt's number, from 1.
    pub attempts: u32,
    /// Attempts allowed in all.
    pub max_attempts: u32,
    /// The wait between attempts.
    pub backoff: Backoff,
    /// The bound on this attempt.
    pub timeout: Duration,
    /// The lease id it is held under: proves this worker holds the current attempt. (Shared:
    /// every job of a fetch has the same one.)
    pub token: Arc<str>,
    /// When the job became runnable (Unix ms): wait time is measured from here.
    pub runnable_at: i64,
    /// The run-at time a delay or a retry set for this attempt, if one did (Unix ms).
    pub run_at: Option<i64>,
    /// Higher runs first.
    pub priority: u16,
    /// When it was enqueued (Unix ms).
    pub created_at: i64,
    /// When it was leased (Unix ms).
    pub leased_at: i64,
    /// Whether it has a dedup key (to release when it finishes).
    pub has_dedup: bool,
    /// Its spec could not be read (corrupted, or written by a newer build): why. The worker
    /// fails the attempt with this instead of running anything, so the job is retried (perhaps
    /// by a worker that reads it) and dead-lettered after the queue's `max_attempts`, while the
    /// rest of its batch runs. Its type is then [`UNREADABLE_TYPE`], its options the queue's.
    pub unreadable: Option<String>,
    /// The trace it continues and the request that enqueued it, when known.
    pub origin: crate::job::Origin,
}

/// The parts of a lease record ("attempts|started|run_at|holder[|finished]", see `common.lua`)
/// that Rust reads; an empty or missing part is 0 attempts or `None`.
pub(super) struct LeaseRecord {
    pub(super) attempts: u32,
    pub(super) started: Option<i64>,
    pub(super) run_at: Option<i64>,
    pub(super) holder: Option<String>,
}

impl LeaseRecord {
    pub(super) fn parse(record: &str) -> LeaseRecord {
        let fields: Vec<&str> = record.split('|').collect();
        let num = |i: usize| fields.get(i).and_then(|x| x.parse::<i64>().ok());
        LeaseRecord {
            attempts: num(0).and_then(|a| u32::try_from(a).ok()).unwrap_or(0),
            started: num(1),
            run_at: num(2),
            holder: fields
                .get(3)
                .filter(|h| !h.is_empty())
                .map(|h| h.to_string()),
        }
    }
}

impl LeasedJob {
    /// This attempt's lease record, "attempts|started|run_at|lease id" (see `common.lua`),
    /// followed by `|<finished>` when given: the worker builds it, as it knows every part.
    pub(super) fn lease_record(&self, finished: Option<&str>) -> String {
        use std::fmt::Write;
        let mut r = String::with_capacity(64);
        let _ = write!(r, "{}|{}|", self.attempts, self.leased_at);
        if let Some(t) = self.run_at {
            let _ = write!(r, "{t}");
        }
        r.push('|');
        r.push_str(&self.token);
        if let Some(f) = finished {
            r.push('|');
            r.push_str(f);
        }
        r
    }
}

/// The result of one fetch.
#[derive(Debug, Default)]
pub struct Fetched {
    /// The jobs leased, at most the number asked for.
    pub jobs: Vec<LeasedJob>,
    /// The earliest delayed job's run time, if any (Unix ms).
    pub next_delayed_at: Option<i64>,
    /// Jobs still ready after this fetch.
    pub ready_left: u64,
    /// The lease id was evicted (its deadline passed and its jobs were taken back).
    pub evicted: bool,
}

impl Queue {
    /// Leases up to `n` jobs under lease id `holder` (promoting due delayed jobs first).
    /// `Fetched::evicted`: that lease id expired and its jobs were taken back; fetch again under
    /// a new one.
    #[boxed]
    pub async fn fetch(&self, n: usize, holder: &str) -> Result<Fetched, QueueError> {
        let mut conn = self.conn().await?;
        let lease = i64::try_from(self.inner.settings.lease.as_millis()).unwrap_or(30_000);
        let now = self.now_ms();
        let reply: Vec<Value> = SCRIPTS
            .fetch
            .key(&self.inner.base)
            .arg(now)
            .arg(n)
            .arg(now + lease)
            .arg(holder)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err("fetch", &e))?;
        if reply.len() == 1 {
            return Ok(Fetched {
                evicted: true,
                ..Fetched::default()
            });
        }
        let (specs, before, ids) = match reply.as_slice() {
            [_, _, Value::Array(s), Value::Array(b), Value::Array(i)] if i.len() == s.len() => {
                (s, b, i)
            }
            _ => {
                return Err(QueueError::Protocol(format!(
                    "fetch returned {} values",
                    reply.len()
                )));
            }
        };
        let next = int(&reply[0]).filter(|t| *t >= 0);
        let ready_left = int(&reply[1])
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0);
        let jobs = self.leased_jobs(specs, before, ids, holder, now);
        Ok(Fetched {
            jobs,
            next_delayed_at: next,
            ready_left,
            evicted: false,
        })
    }

    /// The jobs of a fetch's reply: `specs` and `ids` in order, `before` pairs of (index, lease
    /// record) for the jobs that had an attempt before this one.
    fn leased_jobs(
        &self,
        specs: &[Value],
        before: &[Value],
        ids: &[Value],
        holder: &str,
        now: i64,
    ) -> Vec<LeasedJob> {
        // Lease records before this attempt, for the jobs that had one: "attempts|started|
        // run_at|holder". The others are first attempts.
        let mut records: HashMap<usize, String> = HashMap::new();
        for pair in before.chunks_exact(2) {
            if let Some(i) = int(&pair[0]).and_then(|i| usize::try_from(i).ok()) {
                records.insert(i, text(&pair[1]));
            }
        }
        let token: Arc<str> = Arc::from(holder);
        let mut jobs = Vec::with_capacity(specs.len());
        for (i, (spec, id)) in specs.iter().zip(ids).enumerate() {
            let (attempts, run_at) = match records.get(&i) {
                None => (1, None),
                Some(r) => {
                    let before = LeaseRecord::parse(r);
                    (before.attempts + 1, before.run_at)
                }
            };
            let id = text(id);
            let spec = match read_spec(spec) {
                Ok(spec) => spec,
                Err(why) => {
                    jobs.push(self.unreadable_job(id, why, attempts, run_at, &token, now));
                    continue;
                }
            };
            jobs.push(LeasedJob {
                backoff: spec.backoff(),
                has_dedup: spec.dedup_key().is_some(),
                payload: spec.payload.get().to_string(),
                priority: spec.priority,
                max_attempts: spec.max_attempts,
                timeout: Duration::from_millis(spec.timeout_ms),
                created_at: spec.created_ms,
                runnable_at: run_at.or(spec.legacy_run_at).unwrap_or(spec.created_ms),
                job_type: spec.job_type,
                run_at,
                attempts,
                token: token.clone(),
                leased_at: now,
                id,
                unreadable: None,
                origin: spec.origin,
            });
        }
        jobs
    }

    /// A fetched job whose spec could not be read, with the queue's options (see
    /// `LeasedJob::unreadable`).
    fn unreadable_job(
        &self,
        id: String,
        why: String,
        attempts: u32,
        run_at: Option<i64>,
        token: &Arc<str>,
        now: i64,
    ) -> LeasedJob {
        let s = &self.inner.settings;
        tracing::warn!(queue = %self.inner.name, job = %id, error = %why, "unreadable job spec; the attempt fails");
        let created_at = created_from_id(&id).unwrap_or(now);
        LeasedJob {
            id,
            job_type: UNREADABLE_TYPE.to_string(),
            payload: "null".to_string(),
            attempts,
            max_attempts: s.max_attempts,
            backoff: self.default_backoff(),
            timeout: s.timeout,
            token: token.clone(),
            runnable_at: run_at.unwrap_or(now),
            run_at,
            priority: 0,
            created_at,
            leased_at: now,
            has_dedup: false,
            unreadable: Some(why),
            origin: crate::job::Origin::default(),
        }
    }

    /// Returns to the front of their line the jobs held under lease id `holder` that `known`
    /// does not claim: jobs a `fetch` leased whose answer never reached the worker (the
    /// connection dropped after the script ran). Without this they would stay leased for as
    /// long as the worker's heartbeat keeps `holder` alive. The attempt is not counted. Call it
    /// only while no fetch under `holder` is in flight.
    pub async fn release_unknown(
        &self,
        holder: &str,
        known: impl Fn(&str) -> bool,
    ) -> Result<u64, QueueError> {
        let mut conn = self.conn().await?;
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{}active:{holder}", self.inner.base))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.err("release_unknown", &e))?;
        let unknown: Vec<(String, String)> = members
            .into_iter()
            .filter(|id| !known(id))
            .map(|id| (id, holder.to_string()))
            .collect();
        if unknown.is_empty() {
            return Ok(0);
        }
        self.release(&unknown).await
    }

    /// Heartbeat: extends the leases of these (id, lease id, leased at) triples; returns the
    /// ids whose lease this worker no longer holds. Jobs on their first attempt get the lease
    /// record their fetch left out (see `common.lua`), so their start shows while they run.
    #[boxed]
    pub async fn extend(
        &self,
        leases: &[(String, String, i64)],
    ) -> Result<Vec<String>, QueueError> {
        let deadline =
            self.now_ms() + i64::try_from(self.inner.settings.lease.as_millis()).unwrap_or(30_000);
        let mut lost = Vec::new();
        for (holder, idx) in by_holder(leases.iter().map(|(_, t, _)| t.as_str())) {
            for part in idx.chunks(IDS_PER_CALL / 2) {
                let mut inv = SCRIPTS.extend.key(&self.inner.base);
                inv.arg(deadline).arg(holder);
                for &i in part {
                    inv.arg(&leases[i].0).arg(leases[i].2);
                }
                let mut conn = self.conn().await?;
                let l: Vec<String> = inv
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| self.err("extend", &e))?;
                lost.extend(l);
            }
        }
        Ok(lost)
    }

    /// Takes back jobs whose lease expired; returns (sent back, dead-lettered).
    #[boxed]
    pub async fn recover_stalled(&self) -> Result<(u64, u64), QueueError> {
        let mut conn = self.conn().await?;
        let (back, dead): (u64, u64) = SCRIPTS
            .recover
            .key(&self.inner.base)
            .arg(self.now_ms())
            .arg(RECOVER_WORKERS)
            .arg(&self.inner.events)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err("recover", &e))?;
        if back + dead > 0 {
            metrics::counter!(crate::metrics::STALLED, "queue" => self.inner.name.clone())
                .increment(back + dead);
            if dead > 0 {
                metrics::counter!(crate::metrics::DEAD, "queue" => self.inner.name.clone())
                    .increment(dead);
            }
        }
        Ok((back, dead))
    }

    /// Returns leases of (id, lease id) pairs without counting the attempt (graceful
    /// shutdown); returns how many were still held.
    #[boxed]
    pub async fn release(&self, leases: &[(String, String)]) -> Result<u64, QueueError> {
        let mut returned = 0;
        for (holder, idx) in by_holder(leases.iter().map(|(_, t)| t.as_str())) {
            for part in idx.chunks(IDS_PER_CALL) {
                let mut inv = SCRIPTS.release.key(&self.inner.base);
                inv.arg(holder);
                for &i in part {
                    inv.arg(&leases[i].0);
                }
                let mut conn = self.conn().await?;
                let n: u64 = inv
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| self.err("release", &e))?;
                returned += n;
            }
        }
        Ok(returned)
    }
}
