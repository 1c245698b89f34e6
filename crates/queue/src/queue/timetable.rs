//! A queue's schedules in Redis, beside its jobs (same hash slot): `sched` (name → the
//! schedule, JSON), `sched:next` (name → its next tick, ms; absent while paused),
//! `sched:last` (name → the last tick claimed) and `sched:lastjob` (name → the job that tick
//! enqueued). What a schedule means is in `crate::schedule`.

use async_recursion::async_recursion as boxed;
use redis::Value;
use std::collections::HashMap;

/// Members of a sorted set or fields of a hash with their (numeric) values.
type Scored = Vec<(String, i64)>;

use super::Queue;
use super::produce::{dedup_slot, new_id};
use super::scripts::SCRIPTS;
use crate::error::QueueError;
use crate::job::NewJob;

/// One stored schedule and where it stands.
#[derive(Debug, Clone)]
pub struct StoredSchedule {
    /// Its name.
    pub name: String,
    /// Its definition, JSON.
    pub json: String,
    /// Its next tick (Unix ms); `None` while paused or finished.
    pub next: Option<i64>,
    /// The last tick claimed (Unix ms), if any.
    pub last: Option<i64>,
    /// The id of the job the last tick enqueued (ticks claimed by earlier builds have none).
    pub last_job: Option<String>,
}

impl Queue {
    fn sched_key(&self, part: &str) -> String {
        format!("{}{part}", self.inner.base)
    }

    /// Stores schedule `name` (replacing one of that name) with its next tick, or paused.
    #[boxed]
    pub async fn put_schedule(
        &self,
        name: &str,
        json: &str,
        next: Option<i64>,
    ) -> Result<(), QueueError> {
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset(self.sched_key("sched"), name, json)
            .ignore();
        match next {
            Some(t) => pipe.zadd(self.sched_key("sched:next"), name, t).ignore(),
            None => pipe.zrem(self.sched_key("sched:next"), name).ignore(),
        };
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.err("schedule put", &e))?;
        // Listed among the known queues, so its schedules are found.
        self.set_registered(&mut conn, true).await
    }

    /// Removes schedule `name`; whether there was one. No tick is claimed after this returns.
    #[boxed]
    pub async fn remove_schedule(&self, name: &str) -> Result<bool, QueueError> {
        let mut conn = self.conn().await?;
        let (removed,): (u32,) = redis::pipe()
            .atomic()
            .hdel(self.sched_key("sched"), name)
            .zrem(self.sched_key("sched:next"), name)
            .ignore()
            .hdel(self.sched_key("sched:last"), name)
            .ignore()
            .hdel(self.sched_key("sched:lastjob"), name)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(|e| self.err("schedule remove", &e))?;
        Ok(removed > 0)
    }

    /// Every schedule of this queue, by name.
    #[boxed]
    pub async fn schedules(&self) -> Result<Vec<StoredSchedule>, QueueError> {
        #[allow(clippy::type_complexity)]
        let (defs, next, last, jobs): (
            Vec<(String, String)>,
            Scored,
            Scored,
            HashMap<String, String>,
        ) = self
            .read("schedules", |mut conn| async move {
                redis::pipe()
                    .hgetall(self.sched_key("sched"))
                    .zrange_withscores(self.sched_key("sched:next"), 0, -1)
                    .hgetall(self.sched_key("sched:last"))
                    .hgetall(self.sched_key("sched:lastjob"))
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let find = |list: &[(String, i64)], name: &str| {
            list.iter().find(|(n, _)| n == name).map(|(_, t)| *t)
        };
        let mut out: Vec<StoredSchedule> = defs
            .into_iter()
            .map(|(name, json)| StoredSchedule {
                next: find(&next, &name),
                last: find(&last, &name),
                last_job: jobs.get(&name).cloned(),
                name,
                json,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Schedules whose next tick is due at `now`, with that tick and their definition (at most
    /// 100 per call, earliest first), and the earliest tick not yet due.
    #[boxed]
    pub async fn due_ticks(
        &self,
        now: i64,
    ) -> Result<(Vec<(String, i64, String)>, Option<i64>), QueueError> {
        let mut conn = self.conn().await?;
        let (due, upcoming): (Scored, Scored) = redis::pipe()
            .cmd("ZRANGE")
            .arg(self.sched_key("sched:next"))
            .arg("-inf")
            .arg(now)
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(100)
            .arg("WITHSCORES")
            .cmd("ZRANGE")
            .arg(self.sched_key("sched:next"))
            .arg(format!("({now}"))
            .arg("+inf")
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.err("due ticks", &e))?;
        let mut out = Vec::with_capacity(due.len());
        if !due.is_empty() {
            let names: Vec<&str> = due.iter().map(|(n, _)| n.as_str()).collect();
            let defs: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(self.sched_key("sched"))
                .arg(&names)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.err("due ticks", &e))?;
            for ((name, tick), def) in due.into_iter().zip(defs) {
                if let Some(def) = def {
                    out.push((name, tick, def));
                }
            }
        }
        Ok((out, upcoming.first().map(|(_, t)| *t)))
    }

    /// Claims the due tick `due` of schedule `name` (as read from `sched:next`) and enqueues
    /// `job` for tick `run` (`due`, or a later one when missed ticks are skipped), moving the
    /// schedule on to `next` (or ending it). Exactly one caller claims a given due tick; the
    /// others get `None`. The job's dedup key names the schedule and `run`.
    #[boxed]
    pub async fn claim_tick(
        &self,
        name: &str,
        due: i64,
        run: i64,
        next: Option<i64>,
        job: NewJob,
    ) -> Result<Option<String>, QueueError> {
        let job = job.with_dedup_key(format!("schedule:{name}:{run}"));
        let now = self.now_ms();
        let id = new_id();
        let mut conn = self.conn().await?;
        let claimed: Value = SCRIPTS
            .tick
            .key(&self.inner.base)
            .arg(now)
            .arg(name)
            .arg(due)
            .arg(next.map(|t| t.to_string()).unwrap_or_default())
            .arg(&id)
            .arg(self.spec_of(&job, now))
            .arg(job.priority)
            .arg(dedup_slot(&job))
            .arg(run)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err("claim tick", &e))?;
        Ok(matches!(claimed, Value::Int(1)).then_some(id))
    }
}
