//! Repeatable jobs: a schedule enqueues a job per tick, in the queue it names, exactly once per
//! tick however many workers run (docs/queue.md#schedules).
//!
//! - `timing`: cron expressions in a time zone, or fixed intervals.
//! - `ticker`: the loop each worker runs per queue: claims due ticks (one atomic script per
//!   tick, `lua/tick.lua`) and enqueues their jobs.
//!
//! A schedule is stored beside its queue's jobs (`Queue::put_schedule`); the tick it stands for
//! is in its job's dedup key (`schedule:<name>:<tick ms>`).

mod ticker;
mod timing;

use std::time::Duration;

use async_recursion::async_recursion as boxed;
use serde::{Deserialize, Serialize};

use crate::error::QueueError;
use crate::job::{MAX_PRIORITY, NewJob};
use crate::queue::Queue;

pub(crate) use ticker::tick_loop;
use timing::Timing;

/// What to do with ticks that passed while no worker ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "policy")]
pub enum Missed {
    /// Run only the latest missed tick, then carry on from now.
    #[default]
    Skip,
    /// Run every missed tick, at most `max` of them (the latest ones).
    CatchUp {
        /// The most missed ticks run.
        max: u32,
    },
}

/// A schedule as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Its name: 1-64 letters, digits, `.`, `_`, `-`.
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub name: String,
    /// A cron expression (five fields, or six with seconds first); or set `every_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// The time zone of `cron` (IANA name); UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    /// A fixed interval instead of `cron`, counted from when the schedule was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_ms: Option<u64>,
    /// The job type each tick enqueues.
    pub job_type: String,
    /// Its payload.
    #[serde(default)]
    pub payload: serde_json::Value,
    /// The queue it goes to.
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub queue: String,
    /// Its priority.
    #[serde(default)]
    pub priority: u16,
    /// Its attempts; the queue's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Its attempt timeout (ms); the queue's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Missed ticks.
    #[serde(default)]
    pub missed: Missed,
    /// When an `every_ms` schedule counts from (Unix ms); set when it is added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// Declared in the configuration (`schedules.<name>.*`): the reconcile owns it, and
    /// removes it once no longer declared. Schedules added by hand are never touched by it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub declared: bool,
}

/// A schedule refused, naming the field.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScheduleError {
    /// A field is wrong.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// No schedule of that name.
    #[error("no schedule named `{0}`")]
    NotFound(String),
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl ScheduleError {
    fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        ScheduleError::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl Schedule {
    /// Checks every field; the timing it describes.
    pub(crate) fn timing(&self) -> Result<Timing, ScheduleError> {
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if self.name.is_empty() || self.name.len() > 64 || !self.name.chars().all(valid) {
            return Err(ScheduleError::invalid(
                "name",
                "1-64 characters: letters, digits, `.`, `_`, `-`",
            ));
        }
        if self.job_type.is_empty() {
            return Err(ScheduleError::invalid("job_type", "required"));
        }
        if self.priority > MAX_PRIORITY {
            return Err(ScheduleError::invalid(
                "priority",
                format!("must be 0-{MAX_PRIORITY}"),
            ));
        }
        if let Missed::CatchUp { max } = self.missed
            && !(1..=10_000).contains(&max)
        {
            return Err(ScheduleError::invalid("missed.max", "1 to 10000"));
        }
        match (&self.cron, self.every_ms) {
            (Some(expr), None) => {
                let tz = timing::parse_tz(self.tz.as_deref().unwrap_or("UTC"))?;
                Ok(Timing::Cron {
                    cron: Box::new(timing::parse_cron(expr)?),
                    tz,
                })
            }
            (None, Some(ms)) if (100..=366 * 24 * 3_600_000).contains(&ms) => {
                if self.tz.is_some() {
                    return Err(ScheduleError::invalid("tz", "only with `cron`"));
                }
                Ok(Timing::Every {
                    ms: ms as i64,
                    from: self.since.unwrap_or(0),
                })
            }
            (None, Some(_)) => Err(ScheduleError::invalid("every_ms", "100 ms to a year")),
            _ => Err(ScheduleError::invalid(
                "cron",
                "give either `cron` or `every_ms`",
            )),
        }
    }

    /// The job one tick enqueues.
    pub(crate) fn job(&self) -> NewJob {
        let mut job = NewJob::raw(self.job_type.clone(), self.payload.to_string())
            .with_priority(self.priority);
        if let Some(n) = self.max_attempts {
            job = job.with_max_attempts(n);
        }
        if let Some(ms) = self.timeout_ms {
            job = job.with_timeout(Duration::from_millis(ms));
        }
        job
    }
}

/// Which tick to run now and which comes next, for a schedule whose tick `due` has come at
/// `now`, under its missed-tick policy.
pub(crate) fn plan(timing: &Timing, missed: Missed, due: i64, now: i64) -> (i64, Option<i64>) {
    let keep = match missed {
        Missed::Skip => 1,
        Missed::CatchUp { max } => max as usize,
    };
    // The ticks from `due` up to now, keeping the latest `keep`. Bounded: a schedule far behind
    // (a year of one-second ticks) is walked once, then is current.
    let mut window = std::collections::VecDeque::with_capacity(keep.min(1024));
    let mut tick = due;
    let mut next = Some(due);
    while let Some(t) = next
        && t <= now
    {
        if window.len() == keep {
            window.pop_front();
        }
        window.push_back(t);
        tick = t;
        next = timing.next_after(t);
    }
    let run = match missed {
        Missed::Skip => tick,
        Missed::CatchUp { .. } => window.front().copied().unwrap_or(due),
    };
    // Catching up, the tick after this one may be due already: the ticker claims it next.
    let following = match missed {
        Missed::Skip => next,
        Missed::CatchUp { .. } => timing.next_after(run),
    };
    (run, following)
}

/// Opens a queue by name.
type QueueOpener = std::sync::Arc<dyn Fn(&str) -> Result<Queue, QueueError> + Send + Sync>;

/// Where schedules are kept: beside the queues, one hash per queue.
#[derive(Clone)]
pub struct Schedules {
    queue: QueueOpener,
    store: tsp_hub::RedisStore,
}

/// A schedule and where it stands.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScheduleState {
    /// The schedule.
    #[serde(flatten)]
    pub schedule: Schedule,
    /// Whether its ticks are held.
    pub paused: bool,
    /// Its next tick (RFC 3339, UTC), unless paused.
    pub next_run: Option<String>,
    /// The last tick claimed (RFC 3339, UTC).
    pub last_run: Option<String>,
    /// The id of the job the last tick enqueued in the schedule's queue (its outcome:
    /// [`Queue::job`]).
    pub last_job: Option<String>,
}

fn rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339())
}

impl Schedules {
    /// Schedules on the queues `queue` opens (by name), all in `store`.
    pub fn new(
        store: tsp_hub::RedisStore,
        queue: impl Fn(&str) -> Result<Queue, QueueError> + Send + Sync + 'static,
    ) -> Schedules {
        Schedules {
            queue: std::sync::Arc::new(queue),
            store,
        }
    }

    /// Adds (or replaces) a schedule; its first tick is the first after now.
    #[boxed]
    pub async fn put(&self, mut s: Schedule) -> Result<ScheduleState, ScheduleError> {
        let now = (self.queue)(&s.queue)?.now_ms();
        if s.every_ms.is_some() {
            s.since.get_or_insert(now);
        }
        let timing = s.timing()?;
        let q = (self.queue)(&s.queue)?;
        // A name names one schedule: drop one of that name in another queue.
        if let Some(old) = self.find(&s.name).await?
            && old.schedule.queue != s.queue
        {
            (self.queue)(&old.schedule.queue)?
                .remove_schedule(&s.name)
                .await?;
        }
        let json = serde_json::to_string(&s).unwrap_or_default();
        let next = timing.next_after(now);
        q.put_schedule(&s.name, &json, next).await?;
        Ok(ScheduleState {
            schedule: s,
            paused: false,
            next_run: next.and_then(rfc3339),
            last_run: None,
            last_job: None,
        })
    }

    /// Every schedule, by queue then name.
    #[boxed]
    pub async fn list(&self) -> Result<Vec<ScheduleState>, ScheduleError> {
        let mut out = Vec::new();
        for name in Queue::known(&self.store).await? {
            let q = (self.queue)(&name)?;
            for stored in q.schedules().await? {
                // A schedule stored by a later build that this one cannot read is skipped.
                let Ok(schedule) = serde_json::from_str::<Schedule>(&stored.json) else {
                    continue;
                };
                out.push(ScheduleState {
                    schedule,
                    paused: stored.next.is_none(),
                    next_run: stored.next.and_then(rfc3339),
                    last_run: stored.last.and_then(rfc3339),
                    last_job: stored.last_job,
                });
            }
        }
        Ok(out)
    }

    /// The schedule named `name`, if there is one.
    #[boxed]
    pub async fn find(&self, name: &str) -> Result<Option<ScheduleState>, ScheduleError> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .find(|s| s.schedule.name == name))
    }

    /// Removes schedule `name`: no process enqueues a tick of it after this returns.
    #[boxed]
    pub async fn remove(&self, name: &str) -> Result<(), ScheduleError> {
        let Some(s) = self.find(name).await? else {
            return Err(ScheduleError::NotFound(name.to_string()));
        };
        (self.queue)(&s.schedule.queue)?
            .remove_schedule(name)
            .await?;
        Ok(())
    }

    /// Holds (`paused`) or releases a schedule's ticks. Ticks that pass while paused are not
    /// run; released, it carries on from its next tick after now.
    #[boxed]
    pub async fn set_paused(&self, name: &str, paused: bool) -> Result<(), ScheduleError> {
        let Some(s) = self.find(name).await? else {
            return Err(ScheduleError::NotFound(name.to_string()));
        };
        let q = (self.queue)(&s.schedule.queue)?;
        let next = if paused {
            None
        } else {
            s.schedule.timing()?.next_after(q.now_ms())
        };
        let json = serde_json::to_string(&s.schedule).unwrap_or_default();
        q.put_schedule(name, &json, next).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_ticks_follow_the_policy() {
        let every = Timing::Every { ms: 1000, from: 0 };
        // On time: run it, next one second later.
        assert_eq!(
            plan(&every, Missed::Skip, 5_000, 5_010),
            (5_000, Some(6_000))
        );
        // Ten seconds late: skip runs only the latest, catch-up the oldest of the last three.
        assert_eq!(
            plan(&every, Missed::Skip, 5_000, 15_010),
            (15_000, Some(16_000))
        );
        let three = Missed::CatchUp { max: 3 };
        assert_eq!(plan(&every, three, 5_000, 15_010), (13_000, Some(14_000)));
        assert_eq!(plan(&every, three, 14_000, 15_010), (14_000, Some(15_000)));
    }

    #[test]
    fn a_schedule_names_its_bad_field() {
        let s = Schedule {
            name: "nightly".into(),
            cron: Some("0 3 * * *".into()),
            tz: Some("Europe/Berlin".into()),
            every_ms: None,
            job_type: "builtin.noop".into(),
            payload: serde_json::json!({}),
            queue: "default".into(),
            priority: 0,
            max_attempts: None,
            timeout_ms: None,
            missed: Missed::Skip,
            since: None,
            declared: false,
        };
        assert!(s.timing().is_ok());
        let mut bad = s.clone();
        bad.every_ms = Some(1000);
        assert!(
            bad.timing()
                .unwrap_err()
                .to_string()
                .starts_with("cron: give either")
        );
        let mut bad = s.clone();
        bad.name = "no spaces".into();
        assert!(bad.timing().unwrap_err().to_string().starts_with("name:"));
        let mut bad = s;
        bad.tz = Some("Nowhere/City".into());
        assert!(bad.timing().unwrap_err().to_string().starts_with("tz:"));
    }
}
