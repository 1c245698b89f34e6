//! The composition root: what the hub's consumers are built from, in one place shared by
//! `serve`, `worker`, `simulate`, the benchmarks and the tests. A new job type or component is
//! wired here (docs/contributing.md).

use std::sync::Arc;

use anyhow::Context;
use tsp_hub::{Cache, Hub, HubError};
use tsp_mobility::auth::Auth;
use tsp_mobility::complete::Trips;
use tsp_mobility::gtfs::Gtfs;
use tsp_queue::{NewJob, Queue, QueueError, RecordSink, RecordTask, Registry, Schedules};

/// The service's components on one hub.
#[derive(Clone)]
pub struct App {
    hub: Hub,
    trips: Trips,
    registry: Arc<Registry>,
    auth: Auth,
    gtfs: Gtfs,
}

impl App {
    /// Builds every component on `hub`. Touches no store; fails, naming them, when the
    /// configuration lacks instances the components need.
    pub fn build(hub: &Hub) -> Result<App, HubError> {
        let trips = trips(hub)?;
        let gtfs = Gtfs::new(hub, Some(trips.cache().clone()))?;
        let registry = Arc::new(registry(&trips, &gtfs));
        let auth = Auth::new(hub, trips.cache().clone())?;
        Ok(App {
            hub: hub.clone(),
            trips,
            registry,
            auth,
            gtfs,
        })
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    pub fn trips(&self) -> &Trips {
        &self.trips
    }

    /// GTFS feeds: imports, versions, transit queries.
    pub fn gtfs(&self) -> &Gtfs {
        &self.gtfs
    }

    /// Every job type this build runs, with its rules and dead-letter hooks.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The queue named `name`.
    pub fn queue(&self, name: &str) -> Result<Queue, QueueError> {
        queue(&self.hub, name)
    }

    /// Applies the job type's rules (payload check, dedup key) to a job a producer built. A
    /// type that deduplicates by its own rule refuses a key chosen by the producer.
    pub fn prepare(&self, job: NewJob) -> Result<NewJob, QueueError> {
        let key = self.registry.prepare(&job.job_type, &job.payload)?;
        match (key, job.dedup_key.is_some()) {
            (Some(_), true) => Err(QueueError::Invalid {
                field: "dedup_key".into(),
                message: format!("{} jobs are deduplicated by their own rule", job.job_type),
            }),
            (Some(k), false) => Ok(job.with_dedup_key(k)),
            (None, _) => Ok(job),
        }
    }

    /// The schedules of repeatable jobs, on every queue.
    pub fn schedules(&self) -> Result<Schedules, HubError> {
        let store = self.hub.redis(&self.hub.config().queue.redis)?.clone();
        let hub = self.hub.clone();
        Ok(Schedules::new(store, move |name| queue(&hub, name)))
    }

    /// Adds the schedules the service ships with, unless one of that name exists (an operator
    /// may have changed or paused it): `analytics-rollup`, hourly at minute 5.
    pub async fn ensure_default_schedules(&self) -> Result<(), tsp_queue::ScheduleError> {
        let schedules = self
            .schedules()
            .map_err(|e| tsp_queue::ScheduleError::Queue(e.into()))?;
        if schedules.find("analytics-rollup").await?.is_none() {
            schedules
                .put(tsp_queue::Schedule {
                    name: "analytics-rollup".into(),
                    cron: Some("0 5 * * * *".into()),
                    tz: None,
                    every_ms: None,
                    job_type: tsp_mobility::analytics::JOB_TYPE.into(),
                    payload: serde_json::json!({}),
                    queue: "default".into(),
                    priority: 0,
                    max_attempts: None,
                    timeout_ms: None,
                    missed: tsp_queue::Missed::Skip,
                    since: None,
                    declared: false,
                })
                .await?;
        }
        Ok(())
    }

    /// Makes the stored schedules match the ones the configuration declares
    /// (`schedules.<name>.*`): a declared schedule that is missing or differs is put (its next
    /// tick from now); one that matches is left as it is, paused or not; one stored from an
    /// earlier declaration and declared no longer is removed. Schedules added by hand are left
    /// alone (docs/queue.md#schedules).
    pub async fn reconcile_schedules(&self) -> Result<Reconciled, tsp_queue::ScheduleError> {
        let schedules = self
            .schedules()
            .map_err(|e| tsp_queue::ScheduleError::Queue(e.into()))?;
        // One listing of what is stored, compared against every declared schedule.
        let stored: std::collections::HashMap<String, tsp_queue::Schedule> = schedules
            .list()
            .await?
            .into_iter()
            .map(|s| (s.schedule.name.clone(), s.schedule))
            .collect();
        let declared = &self.hub.config().schedules;
        let mut done = Reconciled::default();
        for (name, settings) in declared {
            let wanted = declared_schedule(name, settings)?;
            let same = stored.get(name).is_some_and(|s| {
                let mut s = s.clone();
                s.since = None;
                s == wanted
            });
            if !same {
                schedules.put(wanted).await?;
                done.put.push(name.clone());
            }
        }
        for (name, s) in &stored {
            if s.declared && !declared.contains_key(name) {
                schedules.remove(name).await?;
                done.removed.push(name.clone());
            }
        }
        done.removed.sort();
        Ok(done)
    }

    /// The credential side: logins, sessions, keys, limits.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }
}

/// What [`App::reconcile_schedules`] changed.
#[derive(Debug, Default, PartialEq)]
pub struct Reconciled {
    /// Declared schedules stored because they were missing or differed.
    pub put: Vec<String>,
    /// Schedules of an earlier declaration, declared no longer, removed.
    pub removed: Vec<String>,
}

/// The schedule `schedules.<name>.*` declares.
fn declared_schedule(
    name: &str,
    s: &tsp_config::ScheduleSettings,
) -> Result<tsp_queue::Schedule, tsp_queue::ScheduleError> {
    let invalid = |field, message: String| tsp_queue::ScheduleError::Invalid { field, message };
    let every_ms = match &s.every {
        Some(text) => Some(
            tsp_config::parse_duration_text(text)
                .map_err(|e| invalid("every", format!("schedules.{name}.every: {e}")))?
                .as_millis() as u64,
        ),
        None => None,
    };
    let payload = serde_json::from_str(&s.payload)
        .map_err(|e| invalid("payload", format!("schedules.{name}.payload: {e}")))?;
    Ok(tsp_queue::Schedule {
        name: name.to_string(),
        cron: s.cron.clone(),
        tz: s.cron.as_ref().map(|_| s.tz.clone()),
        every_ms,
        job_type: s.job_type.clone().unwrap_or_default(),
        payload,
        queue: s.queue.clone(),
        priority: s.priority,
        max_attempts: None,
        timeout_ms: None,
        missed: if s.missed == "catch_up" {
            tsp_queue::Missed::CatchUp {
                max: s.catch_up_max,
            }
        } else {
            tsp_queue::Missed::Skip
        },
        since: None,
        declared: true,
    })
}

/// The queue named `name` on the configured Redis instance.
pub fn queue(hub: &Hub, name: &str) -> Result<Queue, QueueError> {
    let config = hub.config();
    let store = hub.redis(&config.queue.redis)?.clone();
    Queue::new(store, name, &config.queue)
}

/// The record sink the configuration asks for (Mongo `cache.job_queue`, Influx `primary`).
pub async fn records(hub: &Hub) -> anyhow::Result<(RecordSink, Option<RecordTask>)> {
    let q = &hub.config().queue;
    let mongo = if q.records.mongo {
        let m = hub.mongo("cache")?.clone();
        tsp_queue::ensure_record_indexes(&m)
            .await
            .context("cannot create the job_queue indexes")?;
        Some(m)
    } else {
        None
    };
    let influx = if q.records.influx {
        Some(hub.influx("primary")?.writer())
    } else {
        None
    };
    if mongo.is_none() && influx.is_none() {
        return Ok((RecordSink::none(), None));
    }
    let (sink, task) = RecordSink::start(mongo, influx, q.records.batch, q.records.buffer);
    Ok((sink, Some(task)))
}

/// The handlers every worker has: the built-ins, the trip job (with its compensation), the
/// rollup, backups and GTFS imports.
pub fn registry(trips: &Trips, gtfs: &Gtfs) -> Registry {
    let mut r = Registry::new();
    // The built-ins do nothing but wait and count (tests, drills, benchmarks).
    for builtin in r.types() {
        r.require(&builtin, "jobs:write");
    }
    trips.register(&mut r);
    tsp_mobility::analytics::register(trips, &mut r);
    crate::backup_job::register(trips.hub(), &mut r);
    crate::gtfs_job::register(gtfs, &mut r);
    r
}

/// The trip flows on `hub`, with a cache subscribed to invalidations.
pub fn trips(hub: &Hub) -> Result<Trips, HubError> {
    let config = hub.config();
    let cache = Cache::start(hub.redis(&config.cache.redis)?.clone(), &config.cache);
    Trips::new(hub, cache)
}

/// Trip jobs run one at a time each hold a `dataset` connection (their trip's lock): more at once
/// than the pool has would only queue on the pool. In batches, a batch holds one connection for
/// all its trips' locks, so the queue's concurrency applies.
pub fn trip_concurrency(hub: &Hub) -> usize {
    let config = hub.config();
    if config.trips.batch {
        return config.queue.concurrency.max(1);
    }
    let pool = config
        .mysql
        .get("dataset")
        .map(|m| m.pool.max as usize)
        .unwrap_or(10);
    config.queue.concurrency.min(pool).max(1)
}
