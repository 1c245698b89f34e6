//! The store instances the trip flows use, resolved once at start-up.
//!
//! The domain never names an instance by string mid-job: [`TripStores::resolve`] looks up each
//! one when the component is built, and a configuration without one of them fails there, naming
//! every missing instance, instead of failing jobs one by one.

use tsp_hub::{Hub, HubError, InfluxStore, MongoStore, MysqlStore, RedisStore};

/// Handles on every instance the trip job, its compensation and the queries use.
#[derive(Clone)]
pub struct TripStores {
    /// `mysql.portal`: users.
    pub portal: MysqlStore,
    /// `mysql.dataset`: trips (and the trip locks).
    pub dataset: MysqlStore,
    /// `mysql.incentive`: points.
    pub incentive: MysqlStore,
    /// `mongo.dataset`: trajectories and the activity log.
    pub documents: MongoStore,
    /// `influx.primary`: `trip_bookings` points.
    pub metrics: InfluxStore,
    /// The Redis instance of the cache (`cache.redis`): positions, events.
    pub redis: RedisStore,
}

impl TripStores {
    /// Resolves every instance on `hub`.
    ///
    /// # Errors
    /// [`HubError::MissingInstances`] naming each instance the configuration lacks.
    pub fn resolve(hub: &Hub) -> Result<TripStores, HubError> {
        let mut missing = Vec::new();
        let m = &mut missing;
        let redis_name = &hub.config().cache.redis;
        let portal = take(hub.mysql("portal"), m);
        let dataset = take(hub.mysql("dataset"), m);
        let incentive = take(hub.mysql("incentive"), m);
        let documents = take(hub.mongo("dataset"), m);
        let metrics = take(hub.influx("primary"), m);
        let redis = take(hub.redis(redis_name), m);
        match (portal, dataset, incentive, documents, metrics, redis) {
            (
                Some(portal),
                Some(dataset),
                Some(incentive),
                Some(documents),
                Some(metrics),
                Some(redis),
            ) => Ok(TripStores {
                portal,
                dataset,
                incentive,
                documents,
                metrics,
                redis,
            }),
            _ => Err(HubError::MissingInstances {
                component: "the trip flows",
                missing: missing.join(", "),
            }),
        }
    }
}

/// The instance a lookup found, or `None` after noting its name (`kind.instance`) as missing.
fn take<T: Clone>(lookup: Result<&T, HubError>, missing: &mut Vec<String>) -> Option<T> {
    match lookup {
        Ok(store) => Some(store.clone()),
        Err(HubError::UnknownInstance { store, instance }) => {
            missing.push(format!("{store}.{instance}"));
            None
        }
        Err(other) => {
            missing.push(other.to_string());
            None
        }
    }
}
