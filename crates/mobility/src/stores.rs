//! The store handles each component receives. The composition root (`tsp-server`'s `app`)
//! resolves them once at start-up, so the domain never names an instance mid-job, and a
//! configuration without one of them is refused there, naming every missing instance.

use tsp_hub::{InfluxStore, MongoStore, MysqlStore, RedisStore};

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

/// Handles of the GTFS side: imports, versions, transit queries.
#[derive(Clone)]
pub struct GtfsStores {
    /// `mysql.gtfs`: the feeds' versions.
    pub schedules: MysqlStore,
    /// `mongo.dataset`: the live version's stops, for geo queries.
    pub documents: MongoStore,
    /// The Redis instance of the cache (`cache.redis`): stop details, the live version.
    pub redis: RedisStore,
}

/// Handles of the credential side: logins, sessions, keys, limits.
#[derive(Clone)]
pub struct AuthStores {
    /// `mysql.portal`: users, operators, API keys.
    pub portal: MysqlStore,
    /// `auth.redis`: sessions, generations, limits.
    pub redis: RedisStore,
}
