//! MongoDB schema steps against the real server, each test on a fresh database.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use mongodb::bson::{Document, doc};
use tsp_hub::Hub;
use tsp_mobility::mongo_schema;

async fn fresh() -> (Hub, String) {
    let db = tsp_testkit::unique("tsp_t_");
    let config = tsp_testkit::config(&[
        &format!("mongo.dataset.database={db}"),
        &format!("mongo.cache.database={db}c"),
    ]);
    (Hub::connect(&config).await.unwrap(), db)
}

async fn drop(hub: &Hub) {
    let _ = hub.mongo("dataset").unwrap().database().drop().await;
    let _ = hub.mongo("cache").unwrap().database().drop().await;
}

#[tokio::test]
async fn steps_create_the_indexes_once_and_geo_queries_use_them() {
    let (hub, _) = fresh().await;
    let store = hub.mongo("dataset").unwrap();
    let dry = mongo_schema::run(store, &mongo_schema::steps("dataset"), true)
        .await
        .unwrap();
    assert_eq!(dry.applied.len(), 5);
    assert!(
        store
            .database()
            .list_collection_names()
            .await
            .unwrap()
            .is_empty(),
        "a dry run creates nothing"
    );
    // Two user days of the one-per-user layout, before the bucket index: its creation must not
    // trip over them.
    let user_days = store
        .database()
        .collection::<Document>(tsp_mobility::analytics::USER_DAILY);
    user_days
        .insert_many([
            doc! {"day": "2026-01-01", "userId": 1},
            doc! {"day": "2026-01-01", "userId": 2},
        ])
        .await
        .unwrap();

    let first = mongo_schema::run_all(&hub, false)
        .await
        .map_err(|(_, e)| e)
        .unwrap();
    let applied: Vec<usize> = first.iter().map(|r| r.applied.len()).collect();
    assert_eq!(applied, [1, 5], "cache 1 step, dataset 5 steps");
    let mut names = user_days.list_index_names().await.unwrap();
    names.sort();
    assert_eq!(names, ["_id_", "day", "day_bucket_unique"]);
    let bucket = doc! {"day": "2026-01-01", "bucket": 0_i64, "users": {}};
    user_days.insert_one(bucket.clone()).await.unwrap();
    let again = store
        .timed("insert", user_days.insert_one(bucket))
        .await
        .unwrap_err();
    assert!(
        tsp_hub::MongoStore::only_duplicates(&again),
        "a second document for one day and bucket is refused: {again}"
    );
    let mut names = store
        .database()
        .collection::<Document>("trip_trajectories")
        .list_index_names()
        .await
        .unwrap();
    names.sort();
    assert_eq!(
        names,
        [
            "_id_",
            "endLocation_2dsphere",
            "mode_createdAt",
            "startLocation_2dsphere",
            "tripId_unique",
            "userId_createdAt"
        ]
    );
    let again = mongo_schema::run_all(&hub, false)
        .await
        .map_err(|(_, e)| e)
        .unwrap();
    assert!(again.iter().all(|r| r.applied.is_empty()), "{again:?}");

    // The unique trip index and a $geoNear over the 2dsphere index.
    let trips = store.database().collection::<Document>("trip_trajectories");
    let point = |lng: f64, lat: f64| doc! {"type": "Point", "coordinates": [lng, lat]};
    trips
        .insert_many([
            doc! {"tripId": "a", "startLocation": point(145.7700, -16.9200), "endLocation": point(145.78, -16.93)},
            doc! {"tripId": "b", "startLocation": point(145.7800, -16.9300), "endLocation": point(145.79, -16.94)},
        ])
        .await
        .unwrap();
    assert!(
        trips.insert_one(doc! {"tripId": "a"}).await.is_err(),
        "tripId is unique"
    );
    let near: Vec<Document> = {
        use futures::TryStreamExt;
        trips
            .aggregate([doc! {"$geoNear": {"near": point(145.7701, -16.9201), "distanceField": "d", "key": "startLocation", "maxDistance": 500.0}}])
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    };
    assert_eq!(near.len(), 1);
    assert_eq!(near[0].get_str("tripId").unwrap(), "a");
    drop(&hub).await;
}

#[tokio::test]
async fn a_changed_step_is_refused() {
    let (hub, _) = fresh().await;
    mongo_schema::run_all(&hub, false)
        .await
        .map_err(|(_, e)| e)
        .unwrap();
    let store = hub.mongo("dataset").unwrap();
    store
        .database()
        .collection::<Document>("_tsp_migrations")
        .update_one(doc! {"_id": 2i64}, doc! {"$set": {"checksum": "0000"}})
        .await
        .unwrap();
    let (_, err) = mongo_schema::run_all(&hub, false).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("mongo.dataset"), "{text}");
    assert!(
        text.contains(
            "step 2 activity_log: user and time indexes was changed after it was applied"
        ),
        "{text}"
    );
    drop(&hub).await;
}
