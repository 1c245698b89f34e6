//! The stop copies beside MySQL, one per version: MongoDB `dataset.gtfs_stops` (2dsphere, for
//! `$near` beside trajectories) and a Redis GEO set. Both are keyed by version, made before the
//! version goes live, and removed when it is pruned; readers pick the version first, so they
//! never mix two (docs/gtfs.md#copies).

use async_recursion::async_recursion as boxed;
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use sqlx::Row;
use tsp_hub::{HubError, MongoStore, MysqlStore, RedisStore};

/// The MongoDB collection of stops (`mongo.dataset`).
pub const STOPS_COLLECTION: &str = "gtfs_stops";
/// Documents per `insert_many`, GEOADD members per command.
const CHUNK: usize = 1_000;

/// A stop with coordinates, as the copies hold it.
struct Located {
    id: String,
    name: Option<String>,
    code: Option<String>,
    lat: f64,
    lng: f64,
    location_type: u8,
}

/// The Redis GEO set of a version's stops. One hash tag per feed, so every version's keys and
/// the live pointer share a slot on Redis Cluster.
pub fn geo_key(redis: &RedisStore, feed: &str, version: u32) -> String {
    format!("{}{version}:stops", versions_base(redis, feed))
}

/// What every version key of `feed` starts with (the version number follows).
pub fn versions_base(redis: &RedisStore, feed: &str) -> String {
    format!("{}{{gtfs:{feed}}}:v", redis.key_prefix())
}

/// The Redis copy of `feeds.live_version` (written after the MySQL switch).
pub fn live_key(redis: &RedisStore, feed: &str) -> String {
    format!("{}{{gtfs:{feed}}}:live", redis.key_prefix())
}

async fn located(store: &MysqlStore, version: u32) -> Result<Vec<Located>, HubError> {
    let rows = store
        .timed(
            "read stops",
            sqlx::query(
                "SELECT stop_id, stop_name, stop_code, CAST(stop_lat AS DOUBLE), \
                 CAST(stop_lon AS DOUBLE), location_type FROM stops \
                 WHERE version_id = ? AND stop_lat IS NOT NULL AND stop_lon IS NOT NULL",
            )
            .bind(version)
            .fetch_all(store.pool()),
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Located {
            id: r.get(0),
            name: r.get(1),
            code: r.get(2),
            lat: r.get(3),
            lng: r.get(4),
            location_type: r.get(5),
        })
        .collect())
}

/// How many stops each copy holds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CopyCounts {
    /// Stops with coordinates in MySQL.
    pub mysql: u64,
    /// Documents in `gtfs_stops`.
    pub mongo: u64,
    /// Members of the GEO set.
    pub redis: u64,
}

impl CopyCounts {
    /// Both copies hold every located stop.
    pub fn complete(&self) -> bool {
        self.mongo == self.mysql && self.redis == self.mysql
    }
}

/// Counts each copy of `version`'s stops.
#[boxed]
pub async fn counts(
    mysql: &MysqlStore,
    mongo: &MongoStore,
    redis: &RedisStore,
    feed: &str,
    version: u32,
) -> Result<CopyCounts, HubError> {
    let n: i64 = mysql
        .timed(
            "count stops",
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM stops WHERE version_id = ? \
                 AND stop_lat IS NOT NULL AND stop_lon IS NOT NULL",
            )
            .bind(version)
            .fetch_one(mysql.pool()),
        )
        .await?;
    let coll = mongo.database().collection::<Document>(STOPS_COLLECTION);
    let docs = mongo
        .timed(
            "count stops",
            coll.count_documents(doc! {"feed": feed, "version": i64::from(version)}),
        )
        .await?;
    let mut conn = redis.conn().await?;
    let members: u64 = redis::cmd("ZCARD")
        .arg(geo_key(redis, feed, version))
        .query_async(&mut conn)
        .await
        .map_err(|e| redis.command_error("zcard", &e))?;
    Ok(CopyCounts {
        mysql: n as u64,
        mongo: docs,
        redis: members,
    })
}

/// Makes both copies of `version` (replacing any partial ones of an earlier attempt) and
/// returns their counts.
#[boxed]
pub async fn make(
    mysql: &MysqlStore,
    mongo: &MongoStore,
    redis: &RedisStore,
    feed: &str,
    version: u32,
) -> Result<CopyCounts, HubError> {
    let stops = located(mysql, version).await?;
    tokio::try_join!(
        mongo_copy(mongo, feed, version, &stops),
        redis_copy(redis, feed, version, &stops)
    )?;
    counts(mysql, mongo, redis, feed, version).await
}

async fn mongo_copy(
    mongo: &MongoStore,
    feed: &str,
    version: u32,
    stops: &[Located],
) -> Result<(), HubError> {
    let coll = mongo.database().collection::<Document>(STOPS_COLLECTION);
    let filter = doc! {"feed": feed, "version": i64::from(version)};
    mongo
        .timed("clear stops", coll.delete_many(filter.clone()))
        .await?;
    for chunk in stops.chunks(CHUNK) {
        let docs: Vec<Document> = chunk
            .iter()
            .map(|s| {
                doc! {
                    "_id": format!("{feed}:{version}:{}", s.id),
                    "feed": feed,
                    "version": i64::from(version),
                    "stopId": &s.id,
                    "name": s.name.as_deref(),
                    "code": s.code.as_deref(),
                    "locationType": i32::from(s.location_type),
                    "location": {"type": "Point", "coordinates": [s.lng, s.lat]},
                }
            })
            .collect();
        mongo.timed("insert stops", coll.insert_many(docs)).await?;
    }
    Ok(())
}

/// Builds the GEO set under a scratch name and renames it into place, so the versioned key
/// exists only complete.
async fn redis_copy(
    redis: &RedisStore,
    feed: &str,
    version: u32,
    stops: &[Located],
) -> Result<(), HubError> {
    let key = geo_key(redis, feed, version);
    let scratch = format!("{key}:building");
    let mut conn = redis.conn().await?;
    let mut pipe = redis::pipe();
    pipe.del(&scratch).ignore();
    for chunk in stops.chunks(CHUNK) {
        let mut cmd = redis::cmd("GEOADD");
        cmd.arg(&scratch);
        for s in chunk {
            cmd.arg(s.lng).arg(s.lat).arg(&s.id);
        }
        pipe.add_command(cmd).ignore();
    }
    if !stops.is_empty() {
        pipe.rename(&scratch, &key).ignore();
    }
    pipe.query_async::<()>(&mut conn)
        .await
        .map_err(|e| redis.command_error("geoadd stops", &e))
}

/// Points the Redis live pointer at `version`.
#[boxed]
pub async fn set_live(redis: &RedisStore, feed: &str, version: u32) -> Result<(), HubError> {
    let mut conn = redis.conn().await?;
    redis::cmd("SET")
        .arg(live_key(redis, feed))
        .arg(version)
        .query_async::<()>(&mut conn)
        .await
        .map_err(|e| redis.command_error("set live stops", &e))
}

/// Removes both copies of `version`.
#[boxed]
pub async fn remove(
    mongo: &MongoStore,
    redis: &RedisStore,
    feed: &str,
    version: u32,
) -> Result<(), HubError> {
    let coll = mongo.database().collection::<Document>(STOPS_COLLECTION);
    mongo
        .timed(
            "remove stops",
            coll.delete_many(doc! {"feed": feed, "version": i64::from(version)}),
        )
        .await?;
    let mut conn = redis.conn().await?;
    redis::cmd("DEL")
        .arg(geo_key(redis, feed, version))
        .query_async::<()>(&mut conn)
        .await
        .map_err(|e| redis.command_error("remove stops", &e))
}

/// Stops of `feed`'s `version` within `radius_m` of a point, nearest first, by MongoDB `$near`
/// (the 2dsphere index): what analytics beside trajectories uses.
#[boxed]
pub async fn mongo_near(
    mongo: &MongoStore,
    feed: &str,
    version: u32,
    lat: f64,
    lng: f64,
    radius_m: f64,
    limit: i64,
) -> Result<Vec<String>, HubError> {
    let coll = mongo.database().collection::<Document>(STOPS_COLLECTION);
    let filter = doc! {
        "feed": feed,
        "version": i64::from(version),
        "location": {"$near": {
            "$geometry": {"type": "Point", "coordinates": [lng, lat]},
            "$maxDistance": radius_m,
        }},
    };
    let cursor = mongo
        .timed("near stops", coll.find(filter).limit(limit))
        .await?;
    let docs: Vec<Document> = mongo.timed("near stops", cursor.try_collect()).await?;
    Ok(docs
        .iter()
        .filter_map(|d| d.get_str("stopId").ok().map(str::to_string))
        .collect())
}
