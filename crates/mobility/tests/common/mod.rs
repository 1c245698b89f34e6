//! The components under test, wired on a hub as the service's composition root wires them
//! (`tsp-server`'s `app`), from the built-in instances.
#![allow(dead_code)]

use tsp_config::instances as i;
use tsp_hub::{Cache, Hub, MysqlStore};
use tsp_mobility::complete::Trips;
use tsp_mobility::gtfs::Gtfs;
use tsp_mobility::stores::{GtfsStores, TripStores};

/// The trip flows on `hub`, invalidating through `cache`.
pub fn trips(hub: &Hub, cache: Cache) -> Trips {
    let config = hub.config();
    let stores = TripStores {
        portal: portal(hub),
        dataset: hub.mysql(i::DATASET).unwrap().clone(),
        incentive: hub.mysql(i::INCENTIVE).unwrap().clone(),
        documents: hub.mongo(i::DATASET).unwrap().clone(),
        metrics: hub.influx(i::PRIMARY).unwrap().clone(),
        redis: hub.redis(&config.cache.redis).unwrap().clone(),
    };
    Trips::new(
        stores,
        config.trips.clone(),
        config.gtfs.feed.clone(),
        cache,
    )
}

/// The GTFS side on `hub`.
pub fn gtfs(hub: &Hub, cache: Option<Cache>) -> Gtfs {
    let config = hub.config();
    let stores = GtfsStores {
        schedules: hub.mysql(i::GTFS).unwrap().clone(),
        documents: hub.mongo(i::DATASET).unwrap().clone(),
        redis: hub.redis(&config.cache.redis).unwrap().clone(),
    };
    Gtfs::new(stores, config.gtfs.clone(), cache)
}

/// A cache on `hub`'s cache instance.
pub fn cache(hub: &Hub) -> Cache {
    let config = hub.config();
    Cache::start(
        hub.redis(&config.cache.redis).unwrap().clone(),
        &config.cache,
    )
}

/// `mysql.portal`, where users are seeded.
pub fn portal(hub: &Hub) -> MysqlStore {
    hub.mysql(i::PORTAL).unwrap().clone()
}
