//! The names of the built-in store instances: written here once, for the schema and for the
//! code that maps each instance to what the service keeps in it (migrations, the composition
//! root). Components never look a store up by name; they receive handles (docs/contributing.md).

/// `mysql.portal`: users, operators, API keys.
pub const PORTAL: &str = "portal";
/// `mysql.dataset` (trips) and `mongo.dataset` (trajectories, activity log, transit stops).
pub const DATASET: &str = "dataset";
/// `mysql.gtfs`: transit schedules.
pub const GTFS: &str = "gtfs";
/// `mysql.incentive`: points.
pub const INCENTIVE: &str = "incentive";
/// `redis.cache` (queue, sessions, cache) and `mongo.cache` (job records).
pub const CACHE: &str = "cache";
/// `influx.primary`: job and business metrics.
pub const PRIMARY: &str = "primary";
/// `influx.uis`: request metrics.
pub const UIS: &str = "uis";

/// The built-in MySQL instances, first one first.
pub const MYSQL: [&str; 4] = [PORTAL, DATASET, GTFS, INCENTIVE];
/// The built-in Redis instances.
pub const REDIS: [&str; 1] = [CACHE];
/// The built-in MongoDB instances.
pub const MONGO: [&str; 2] = [CACHE, DATASET];
/// The built-in InfluxDB instances.
pub const INFLUX: [&str; 2] = [PRIMARY, UIS];
