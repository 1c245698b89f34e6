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
        let mut need = |r: Result<(), HubError>, name: String| {
            if r.is_err() {
                missing.push(name);
            }
        };
        let redis_name = hub.config().cache.redis.clone();
        need(hub.mysql("portal").map(drop), "mysql.portal".into());
        need(hub.mysql("dataset").map(drop), "mysql.dataset".into());
        need(hub.mysql("incentive").map(drop), "mysql.incentive".into());
        need(hub.mongo("dataset").map(drop), "mongo.dataset".into());
        need(hub.influx("primary").map(drop), "influx.primary".into());
        need(
            hub.redis(&redis_name).map(drop),
            format!("redis.{redis_name}"),
        );
        let all = || -> Result<TripStores, HubError> {
            Ok(TripStores {
                portal: hub.mysql("portal")?.clone(),
                dataset: hub.mysql("dataset")?.clone(),
                incentive: hub.mysql("incentive")?.clone(),
                documents: hub.mongo("dataset")?.clone(),
                metrics: hub.influx("primary")?.clone(),
                redis: hub.redis(&redis_name)?.clone(),
            })
        };
        if !missing.is_empty() {
            return Err(HubError::MissingInstances {
                component: "the trip flows",
                missing: missing.join(", "),
            });
        }
        all()
    }
}
