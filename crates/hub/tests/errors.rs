//! Store errors keep their driver error as a redacted source: what a caller steers on (a
//! duplicate key, a database error code) is read from the driver's error, not its text.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::error::Error as _;

use mongodb::bson::{Document, doc};
use tsp_hub::{ErrorKind, Hub, MongoStore};

#[tokio::test]
async fn a_duplicate_key_is_told_apart_from_other_mongo_errors() {
    let hub = Hub::connect(&common::config(&[])).await.unwrap();
    let store = hub.mongo("cache").unwrap();
    let coll = store
        .database()
        .collection::<Document>(&common::unique("errors"));
    let docs = [doc! {"_id": 1}, doc! {"_id": 2}];
    store
        .timed("insert_many", coll.insert_many(docs.iter()))
        .await
        .unwrap();

    let again = [doc! {"_id": 2}, doc! {"_id": 3}];
    let dup = store
        .timed("insert_many", coll.insert_many(again.iter()).ordered(false))
        .await
        .unwrap_err();
    assert!(MongoStore::only_duplicates(&dup), "{dup}");
    assert_eq!(dup.kind(), ErrorKind::Store);
    assert!(dup.source().is_some(), "the driver error is the source");

    let bad = store
        .timed("find", coll.find_one(doc! {"$nosuchoperator": 1}))
        .await
        .unwrap_err();
    assert!(!MongoStore::only_duplicates(&bad), "{bad}");
    coll.drop().await.unwrap();
    hub.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_mysql_error_keeps_the_database_error_code() {
    let hub = Hub::connect(&common::config(&[])).await.unwrap();
    let store = hub.mysql("portal").unwrap();
    let e = store
        .timed(
            "select",
            sqlx::query("SELECT * FROM no_such_table_here").execute(store.pool()),
        )
        .await
        .unwrap_err();
    let driver = e
        .cause()
        .and_then(|c| c.downcast_ref::<sqlx::Error>())
        .unwrap();
    let code = driver.as_database_error().and_then(|d| d.code()).unwrap();
    assert_eq!(code, "42S02", "table not found: {e}");
    hub.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_wrong_password_is_redacted_in_the_error_and_its_source() {
    let secret = "wrong-Pa55word-xyz";
    let config = common::config(&[&format!("mysql.portal.password={secret}")]);
    let hub = Hub::connect(&config).await.unwrap();
    let store = hub.mysql("portal").unwrap();
    let e = store
        .timed("select", sqlx::query("SELECT 1").execute(store.pool()))
        .await
        .unwrap_err();
    let mut text = format!("{e} {e:?}");
    let mut next = e.source();
    while let Some(s) = next {
        text.push_str(&format!(" {s} {s:?}"));
        next = s.source();
    }
    assert!(text.contains("denied"), "{text}");
    assert!(!text.contains(secret), "{text}");
    hub.shutdown(std::time::Duration::from_secs(1)).await;
}

/// A `mongodb+srv://` seed list needs the driver's DNS resolver, a cargo feature: a build
/// without it refuses the URI up front, naming the feature and never the password in it.
#[cfg(not(feature = "mongodb-srv"))]
#[tokio::test]
async fn a_seed_list_uri_without_the_resolver_is_refused_naming_the_feature() {
    let secret = "srv-Pa55word-xyz";
    let uri = format!("mongodb+srv://tsp:{secret}@cluster0.example.org/tsp_cache");
    let config = common::config(&[&format!("mongo.cache.uri={uri}")]);
    let e = Hub::connect(&config).await.err().expect("refused");
    let text = format!("{e} {e:?}");
    assert!(text.contains("mongodb-srv"), "{text}");
    assert!(text.contains("cache"), "{text}");
    assert!(!text.contains(secret), "{text}");
}
