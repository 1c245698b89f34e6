//! The TSP domain on top of the hub: the schemas of every store and (in later steps) the trip
//! jobs and queries.
//!
//! # Layout
//! - [`migrations`]: the versioned schema of each MySQL instance (`migrations/mysql/<instance>/`).
//! - [`mongo_schema`]: the indexes of each MongoDB collection, as versioned steps.
//! - [`store_schema`]: InfluxDB databases and retention policies; the Redis key-schema version.
//! - [`trip`]: the `trip.complete` payload, its validation, distance and duration.

pub mod migrations;
pub mod mongo_schema;
pub mod store_schema;
pub mod trip;
