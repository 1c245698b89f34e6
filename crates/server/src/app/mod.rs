//! The composition root: the one place that resolves store handles ([`Stores`]) and builds
//! the service's components from them, shared by `serve`, `worker`, `simulate`, the
//! benchmarks and the tests. A new job type or component is wired here
//! (docs/contributing.md).

mod schedules;
mod stores;

use std::sync::Arc;

use anyhow::Context;
use tsp_hub::{Cache, Hub, HubError};
use tsp_mobility::auth::Auth;
use tsp_mobility::complete::Trips;
use tsp_mobility::gtfs::Gtfs;
use tsp_queue::{BatchOptions, NewJob, Queue, QueueError, RecordSink, RecordTask, Registry};

pub use schedules::Reconciled;
pub use stores::{ActivityStores, RecordStores, Stores};

/// The service's components on one hub.
#[derive(Clone)]
pub struct App {
    hub: Hub,
    stores: Arc<Stores>,
    trips: Trips,
    registry: Arc<Registry>,
    auth: Auth,
    gtfs: Gtfs,
}

impl App {
    /// Resolves every store handle on `hub` and builds every component from them. Touches no
    /// store; fails, naming them, when the configuration lacks instances the components need.
    pub fn build(hub: &Hub) -> Result<App, HubError> {
        let stores = Stores::resolve(hub)?;
        let config = hub.config();
        let cache = Cache::start(stores.cache.clone(), &config.cache);
        let trips = Trips::new(
            stores.trips.clone(),
            config.trips.clone(),
            config.gtfs.feed.clone(),
            cache.clone(),
        );
        let gtfs = Gtfs::new(
            stores.gtfs.clone(),
            config.gtfs.clone(),
            Some(cache.clone()),
        );
        let auth = Auth::new(
            stores.auth.clone(),
            config.auth.clone(),
            config.limits.clone(),
            cache,
        );
        let batches = BatchOptions::from(config.job_batch(tsp_mobility::complete::JOB_TYPE));
        let registry = Arc::new(registry(hub, &trips, batches, &gtfs));
        Ok(App {
            hub: hub.clone(),
            stores: Arc::new(stores),
            trips,
            registry,
            auth,
            gtfs,
        })
    }

    /// The hub: health, metrics, migrations, backups (what spans every store).
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The store handles the components were built from.
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    pub fn trips(&self) -> &Trips {
        &self.trips
    }

    /// GTFS feeds: imports, versions, transit queries.
    pub fn gtfs(&self) -> &Gtfs {
        &self.gtfs
    }

    /// The credential side: logins, sessions, keys, limits.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// Every job type this build runs, with its rules and dead-letter hooks.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// How the batches of `job_type` are collected (`queue.batch.<type>.*`).
    pub fn batch_options(&self, job_type: &str) -> BatchOptions {
        BatchOptions::from(self.hub.config().job_batch(job_type))
    }

    /// The queue named `name` on the configured Redis instance (`queue.redis`).
    pub fn queue(&self, name: &str) -> Result<Queue, QueueError> {
        Queue::new(self.stores.queue.clone(), name, &self.hub.config().queue)
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

    /// The record sink the configuration asks for (`queue.records.*`), and the task that
    /// writes to MongoDB, if any.
    pub async fn records(&self) -> anyhow::Result<(RecordSink, Option<RecordTask>)> {
        let q = &self.hub.config().queue;
        let RecordStores { mongo, influx } = self.stores.records.clone();
        if let Some(m) = &mongo {
            tsp_queue::ensure_record_indexes(m)
                .await
                .context("cannot create the job_queue indexes")?;
        }
        let influx = influx.map(|i| i.writer());
        if mongo.is_none() && influx.is_none() {
            return Ok((RecordSink::none(), None));
        }
        let (sink, task) = RecordSink::start(mongo, influx, q.records.batch, q.records.buffer);
        Ok((sink, Some(task)))
    }

    /// How many trip jobs a worker runs at once. One at a time, each holds a `dataset`
    /// connection (its trip's lock): more at once than the pool has would only queue on the
    /// pool. In batches, a batch holds one connection for all its trips' locks, so the
    /// queue's concurrency applies.
    pub fn trip_concurrency(&self) -> usize {
        let config = self.hub.config();
        if config.trips.batch {
            return config.queue.concurrency.max(1);
        }
        let pool = self.stores.trips.dataset.pool_stats().max as usize;
        config.queue.concurrency.min(pool).max(1)
    }
}

/// The handlers every worker has: the built-ins, the trip job (with its compensation, its
/// batches collected as `batches` says), the rollup, backups and GTFS imports.
fn registry(hub: &Hub, trips: &Trips, batches: BatchOptions, gtfs: &Gtfs) -> Registry {
    let mut r = Registry::new();
    // The built-ins do nothing but wait and count (tests, drills, benchmarks).
    for builtin in r.types() {
        r.require(&builtin, "jobs:write");
    }
    trips.register(&mut r, batches);
    tsp_mobility::analytics::register(trips, &mut r);
    crate::backup_job::register(hub, &mut r);
    crate::gtfs_job::register(gtfs, &mut r);
    r
}
