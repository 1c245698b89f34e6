//! The TSP domain on top of the hub: the schemas of every store, the trip job and its
//! compensation, the queries, and the data the main job generates.
//!
//! # Layout
//! - [`migrations`]: the versioned schema of each MySQL instance (`migrations/mysql/<instance>/`).
//! - [`mongo_schema`]: the indexes of each MongoDB collection, as versioned steps.
//! - [`store_schema`]: InfluxDB databases (v1) or buckets (v2) with retention; the Redis
//!   key-schema version.
//! - [`trip`]: the `trip.complete` payload, its validation, distance and duration.
//! - [`complete`]: the `trip.complete` job across every store, and its compensation.
//! - [`metrics`]: the trip job's metric names and help texts.
//! - [`batch`]: a batch of trips through the queue: enqueue, work, measure, count per store.
//! - [`gtfs`]: GTFS feeds imported as versions, their stop copies in MongoDB and Redis, and the
//!   transit queries.
//! - [`queries`]: cached user stats and points, trips and users near a point.
//! - [`today`]: what the console shows of the last hours: completions per hour, recent starts.
//! - [`sandbox`]: an isolated, migrated set of databases for benchmarks, drills and tests.
//! - [`seed`]: deterministic users and trips between the real bus stops of Cairns.

#![warn(missing_docs, unreachable_pub)]

pub mod analytics;
pub mod auth;
pub mod batch;
pub mod cells;
pub mod complete;
pub mod gtfs;
pub mod metrics;
pub mod migrations;
pub mod mongo_schema;
pub mod queries;
pub mod sandbox;
pub mod seed;
pub mod store_schema;
pub mod stores;
pub mod today;
pub mod trip;

use async_recursion::async_recursion as boxed;
use tsp_hub::MigrationReport;
use tsp_hub::{Hub, HubError};

/// FNV-1a, 64 bits: a stable hash (std's may change between releases) for migration checksums,
/// lock names and point timestamps, whose values are stored or shared between processes.
pub(crate) fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// What one store kind's runner returns: the reports, and on failure those so far with the error.
type Run = Result<Vec<MigrationReport>, (Vec<MigrationReport>, HubError)>;

fn collect(reports: &mut Vec<MigrationReport>, run: Run) -> Option<HubError> {
    match run {
        Ok(r) => {
            reports.extend(r);
            None
        }
        Err((r, e)) => {
            reports.extend(r);
            Some(e)
        }
    }
}

/// Every store's migrations, in order: MySQL, then InfluxDB and Redis, then MongoDB. Stops at the
/// first failure; the reports say what ran before it.
#[boxed]
pub async fn migrate_all(hub: &Hub, dry_run: bool) -> (Vec<MigrationReport>, Option<HubError>) {
    let mut reports = Vec::new();
    if let Some(e) = collect(&mut reports, migrations::run_mysql(hub, dry_run).await) {
        return (reports, Some(e));
    }
    if let Some(e) = collect(&mut reports, store_schema::run_all(hub, dry_run).await) {
        return (reports, Some(e));
    }
    let failure = collect(&mut reports, mongo_schema::run_all(hub, dry_run).await);
    (reports, failure)
}
