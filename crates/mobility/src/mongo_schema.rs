//! MongoDB schema: the indexes of each collection, as versioned, checksummed steps.
//!
//! State lives in each database's `_tsp_migrations` collection: `{_id: version, description,
//! checksum, appliedAt}`. A step's checksum covers its collection and index definitions; a step
//! whose definition changed after it was applied is refused, naming it (add a new step instead).
//! Creating an index that exists with the same definition is a no-op in MongoDB, so two processes
//! running the same step at once both succeed, and the version is recorded once (`_id`).

use async_recursion::async_recursion as boxed;
use mongodb::IndexModel;
use mongodb::bson::{Bson, DateTime, Document, doc};
use mongodb::options::IndexOptions;
use tsp_hub::MigrationReport;
use tsp_hub::{Hub, HubError, MongoStore};

/// One step: indexes to create on one collection.
pub struct Step {
    /// The step's number: steps apply in order, once.
    pub version: i64,
    /// What it does, for reports.
    pub description: &'static str,
    /// The collection it indexes.
    pub collection: &'static str,
    /// The indexes (keys and options).
    pub indexes: Vec<(Document, IndexOptions)>,
}

impl Step {
    /// FNV-1a over the collection and each index's keys and options, in order.
    pub fn checksum(&self) -> String {
        let mut text = self.collection.to_string();
        for (keys, opts) in &self.indexes {
            text.push_str(&format!("|{keys}|{opts:?}"));
        }
        format!("{:016x}", crate::fnv1a(text.bytes()))
    }
}

fn named(name: &str) -> IndexOptions {
    IndexOptions::builder().name(name.to_string()).build()
}

fn unique(name: &str) -> IndexOptions {
    IndexOptions::builder()
        .name(name.to_string())
        .unique(true)
        .build()
}

/// The steps of each Mongo instance.
pub fn steps(instance: &str) -> Vec<Step> {
    use tsp_config::instances as i;
    match instance {
        // The queue creates these itself when its workers start; the step records them here too.
        i::CACHE => vec![Step {
            version: 1,
            description: "job_queue: 24 h TTL and query indexes",
            collection: tsp_queue::RECORDS_COLLECTION,
            indexes: tsp_queue::record_indexes(),
        }],
        i::DATASET => vec![
            Step {
                version: 1,
                description: "trip_trajectories: geo, user, mode and unique trip indexes",
                collection: "trip_trajectories",
                indexes: vec![
                    (
                        doc! {"startLocation": "2dsphere"},
                        named("startLocation_2dsphere"),
                    ),
                    (
                        doc! {"endLocation": "2dsphere"},
                        named("endLocation_2dsphere"),
                    ),
                    (
                        doc! {"userId": 1, "createdAt": -1},
                        named("userId_createdAt"),
                    ),
                    (doc! {"mode": 1, "createdAt": -1}, named("mode_createdAt")),
                    (doc! {"tripId": 1}, unique("tripId_unique")),
                ],
            },
            Step {
                version: 2,
                description: "activity_log: user and time indexes",
                collection: "activity_log",
                indexes: vec![
                    (doc! {"userId": 1, "at": -1}, named("userId_at")),
                    (doc! {"type": 1, "at": -1}, named("type_at")),
                ],
            },
            Step {
                version: 3,
                description: "analytics_daily: one document per day and mode",
                collection: crate::analytics::DAILY,
                indexes: vec![(doc! {"day": 1, "mode": 1}, unique("day_mode_unique"))],
            },
            Step {
                version: 4,
                description: "analytics_user_daily: one document per day and user bucket",
                collection: crate::analytics::USER_DAILY,
                // Partial: documents of the earlier one-per-user layout have no bucket; each
                // day's next rollup replaces them (docs/analytics.md#user-buckets).
                // The plain day index serves the rollup's replacement of a day, which a partial
                // index cannot.
                indexes: vec![
                    (doc! {"day": 1}, named("day")),
                    (
                        doc! {"day": 1, "bucket": 1},
                        IndexOptions::builder()
                            .name("day_bucket_unique".to_string())
                            .unique(true)
                            .partial_filter_expression(doc! {"bucket": {"$exists": true}})
                            .build(),
                    ),
                ],
            },
            Step {
                version: 5,
                description: "gtfs_stops: geo and version indexes",
                collection: crate::gtfs::sync::STOPS_COLLECTION,
                indexes: vec![
                    (doc! {"location": "2dsphere"}, named("location_2dsphere")),
                    (doc! {"feed": 1, "version": 1}, named("feed_version")),
                ],
            },
        ],
        _ => Vec::new(),
    }
}

fn refused(store: &MongoStore, message: String) -> HubError {
    HubError::store("mongo", store.name(), "migrate", message)
}

/// Applies (or, with `dry_run`, reports) the pending steps of one instance.
#[boxed]
pub async fn run(
    store: &MongoStore,
    steps: &[Step],
    dry_run: bool,
) -> Result<MigrationReport, HubError> {
    let db = store.database();
    let state = db.collection::<Document>(tsp_hub::MIGRATIONS_COLLECTION);
    let mut report = MigrationReport::new("mongo", store.name(), dry_run);
    for step in steps {
        let name = format!("{} {}", step.version, step.description);
        let sum = step.checksum();
        let recorded = store
            .timed("find", state.find_one(doc! {"_id": step.version}))
            .await?;
        if let Some(r) = recorded {
            if r.get_str("checksum").unwrap_or_default() != sum {
                return Err(refused(
                    store,
                    format!(
                        "step {name} was changed after it was applied (checksum differs): add a new step instead"
                    ),
                ));
            }
            report.already.push(name);
            continue;
        }
        if !dry_run {
            let models: Vec<IndexModel> = step
                .indexes
                .iter()
                .map(|(keys, opts)| {
                    IndexModel::builder()
                        .keys(keys.clone())
                        .options(opts.clone())
                        .build()
                })
                .collect();
            let coll = db.collection::<Document>(step.collection);
            store
                .timed("create_indexes", coll.create_indexes(models))
                .await?;
            let record = doc! {
                "_id": step.version,
                "description": step.description,
                "checksum": &sum,
                "appliedAt": DateTime::now(),
            };
            if let Err(e) = store.timed("insert", state.insert_one(record)).await {
                // Another process recorded the same step meanwhile: fine if it is the same step.
                let again = store
                    .timed("find", state.find_one(doc! {"_id": step.version}))
                    .await?;
                match again.as_ref().map(|d| d.get("checksum")) {
                    Some(Some(Bson::String(s))) if *s == sum => {
                        report.already.push(name);
                        continue;
                    }
                    _ => return Err(e),
                }
            }
        }
        report.applied.push(name);
    }
    Ok(report)
}

/// Migrates every Mongo instance that has steps.
#[boxed]
pub async fn run_all(
    hub: &Hub,
    dry_run: bool,
) -> Result<Vec<MigrationReport>, (Vec<MigrationReport>, HubError)> {
    let mut reports = Vec::new();
    for store in hub.mongo_instances() {
        let s = steps(store.name());
        if s.is_empty() {
            continue;
        }
        match run(store, &s, dry_run).await {
            Ok(r) => reports.push(r),
            Err(e) => return Err((reports, e)),
        }
    }
    Ok(reports)
}
