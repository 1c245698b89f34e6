//! Every store handle the service's components receive, resolved from the hub once, here: the
//! one place that says which instance holds what (docs/contributing.md#stores). A
//! configuration that lacks one is refused at start-up, naming each missing instance.

use tsp_config::{Config, instances as i};
use tsp_hub::{Hub, HubError, InfluxStore, MongoStore, RedisStore, Resolver};
use tsp_mobility::stores::{AuthStores, GtfsStores, TripStores};

/// The handles of every component.
#[derive(Clone)]
pub struct Stores {
    /// The trip flows, their queries and the console's trip views and charts.
    pub trips: TripStores,
    /// GTFS imports and transit queries.
    pub gtfs: GtfsStores,
    /// Logins, sessions, keys, limits.
    pub auth: AuthStores,
    /// `queue.redis`: every queue and the schedules.
    pub queue: RedisStore,
    /// `cache.redis`: the shared cache level and its invalidations.
    pub cache: RedisStore,
    /// Where request activity goes (`activity.*`).
    pub activity: ActivityStores,
    /// Where finished jobs' records go (`queue.records.*`).
    pub records: RecordStores,
}

/// `activity.mongo`: the `request_activity` log in `mongo.dataset`; `activity.influx`: request
/// points in `influx.uis`. `None` when that output is off.
#[derive(Clone)]
pub struct ActivityStores {
    /// The activity log's store.
    pub log: Option<MongoStore>,
    /// The request points' store.
    pub points: Option<InfluxStore>,
}

/// `queue.records.mongo`: `job_queue` in `mongo.cache`; `queue.records.influx`:
/// `job_execution` points in `influx.primary`. `None` when that output is off.
#[derive(Clone)]
pub struct RecordStores {
    /// The job records' store.
    pub mongo: Option<MongoStore>,
    /// The job points' store.
    pub influx: Option<InfluxStore>,
}

impl Stores {
    /// Resolves every handle on `hub`. Touches no store.
    ///
    /// # Errors
    /// [`HubError::MissingInstances`] naming the component and each instance it lacks.
    pub fn resolve(hub: &Hub) -> Result<Stores, HubError> {
        let config = hub.config();
        Ok(Stores {
            trips: trips(hub, config)?,
            gtfs: gtfs(hub, config)?,
            auth: auth(hub, config)?,
            queue: one(hub, "the queue", |r| r.redis(&config.queue.redis))?,
            cache: one(hub, "the cache", |r| r.redis(&config.cache.redis))?,
            activity: activity(hub, config)?,
            records: records(hub, config)?,
        })
    }
}

fn trips(hub: &Hub, config: &Config) -> Result<TripStores, HubError> {
    let mut r = Resolver::new(hub);
    let (portal, dataset, incentive) = (
        r.mysql(i::PORTAL),
        r.mysql(i::DATASET),
        r.mysql(i::INCENTIVE),
    );
    let (documents, metrics) = (r.mongo(i::DATASET), r.influx(i::PRIMARY));
    let redis = r.redis(&config.cache.redis);
    r.finish("the trip flows", || {
        Some(TripStores {
            portal: portal?,
            dataset: dataset?,
            incentive: incentive?,
            documents: documents?,
            metrics: metrics?,
            redis: redis?,
        })
    })
}

fn gtfs(hub: &Hub, config: &Config) -> Result<GtfsStores, HubError> {
    let mut r = Resolver::new(hub);
    let (schedules, documents) = (r.mysql(i::GTFS), r.mongo(i::DATASET));
    let redis = r.redis(&config.cache.redis);
    r.finish("the GTFS imports", || {
        Some(GtfsStores {
            schedules: schedules?,
            documents: documents?,
            redis: redis?,
        })
    })
}

fn auth(hub: &Hub, config: &Config) -> Result<AuthStores, HubError> {
    let mut r = Resolver::new(hub);
    let (portal, redis) = (r.mysql(i::PORTAL), r.redis(&config.auth.redis));
    r.finish("the credentials", || {
        Some(AuthStores {
            portal: portal?,
            redis: redis?,
        })
    })
}

fn activity(hub: &Hub, config: &Config) -> Result<ActivityStores, HubError> {
    let mut r = Resolver::new(hub);
    let log = config.activity.mongo.then(|| r.mongo(i::DATASET));
    let points = config.activity.influx.then(|| r.influx(i::UIS));
    r.finish("the request activity", || {
        Some(ActivityStores {
            log: log.flatten(),
            points: points.flatten(),
        })
    })
}

fn records(hub: &Hub, config: &Config) -> Result<RecordStores, HubError> {
    let mut r = Resolver::new(hub);
    let mongo = config.queue.records.mongo.then(|| r.mongo(i::CACHE));
    let influx = config.queue.records.influx.then(|| r.influx(i::PRIMARY));
    r.finish("the job records", || {
        Some(RecordStores {
            mongo: mongo.flatten(),
            influx: influx.flatten(),
        })
    })
}

/// One instance a component needs.
fn one<T>(
    hub: &Hub,
    component: &'static str,
    look_up: impl FnOnce(&mut Resolver<'_>) -> Option<T>,
) -> Result<T, HubError> {
    let mut r = Resolver::new(hub);
    let found = look_up(&mut r);
    r.finish(component, || found)
}

#[cfg(test)]
mod tests {
    use tsp_hub::ErrorKind;

    use super::*;

    #[tokio::test]
    async fn every_instance_resolves_on_the_configured_stores() {
        // Building the hub and resolving touch no store: this holds with every server down.
        let hub = Hub::connect(&tsp_testkit::config(&[])).await.unwrap();
        let stores = Stores::resolve(&hub).unwrap();
        assert_eq!(stores.trips.dataset.name(), "dataset");
        assert_eq!(stores.trips.documents.name(), "dataset");
        assert_eq!(stores.trips.metrics.name(), "primary");
        assert_eq!(stores.gtfs.schedules.name(), "gtfs");
    }

    #[tokio::test]
    async fn missing_instances_are_named_at_start_up() {
        let mut config = tsp_testkit::config(&[]);
        config.mysql.remove("incentive");
        config.mongo.remove("dataset");
        let hub = Hub::connect(&config).await.unwrap();
        let Err(e) = Stores::resolve(&hub) else {
            panic!("resolved without mysql.incentive and mongo.dataset");
        };
        assert_eq!(e.kind(), ErrorKind::Config);
        let message = e.to_string();
        assert!(
            message.contains("mysql.incentive, mongo.dataset"),
            "{message}"
        );
        // The service that needs them fails to build, with the same message.
        let Err(e) = crate::app::App::build(&hub) else {
            panic!("the service built without its stores");
        };
        assert_eq!(e.to_string(), message);
    }
}
