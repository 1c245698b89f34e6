//! The hub against the real local services: every default instance healthy; a store on a closed
//! port or stopped is exactly the one reported down, within its timeout plus one second; one that
//! answers pings but not reads is degraded; the round trip (`tsp-job roundtrip`) reads back what
//! it wrote to each instance.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::{Duration, Instant};

use tsp_hub::{Hub, HubHealth, InstanceHealth, Status};

fn assert_up(i: &InstanceHealth) {
    let (store, instance, why) = (i.store, &i.instance, &i.error);
    assert_eq!(i.status, Status::Up, "{store}.{instance}: {why:?}");
}

fn assert_only_down(h: &HubHealth, store: &str, instance: &str) {
    for i in &h.instances {
        let expect_down = i.store == store && i.instance == instance;
        let want = if expect_down {
            Status::Down
        } else {
            Status::Up
        };
        assert_eq!(i.status, want, "{}.{}: {:?}", i.store, i.instance, i.error);
        if expect_down {
            assert!(i.error.is_some(), "a down instance says why");
        }
    }
}

#[tokio::test]
async fn connects_to_all_nine_default_instances() {
    let config = common::config(&[]);
    let hub = Hub::connect(&config).await.unwrap();
    let h = hub.health().await;
    assert_eq!(h.instances.len(), 9);
    assert_eq!(h.status, Status::Up);
    for i in &h.instances {
        assert_up(i);
        assert!(
            i.version.as_deref().is_some_and(|v| !v.is_empty()),
            "{}.{} version",
            i.store,
            i.instance
        );
        assert!(i.latency_ms > 0.0);
    }
    for (name, s) in &config.mysql {
        let p = h
            .get("mysql", name)
            .and_then(|i| i.pool)
            .expect("mysql pool figures");
        assert_eq!(p.max, s.pool.max);
        assert!(p.size >= 1 && p.size <= p.max, "{name}: {p:?}");
        assert_eq!(p.idle + p.in_use, p.size);
    }
    for (name, s) in &config.mongo {
        let p = h
            .get("mongo", name)
            .and_then(|i| i.pool)
            .expect("mongo pool figures");
        assert_eq!(p.max, s.pool.max);
        assert!(p.size >= 1, "{name}: {p:?}");
    }
    // The first instance of each kind is required; gtfs and uis are not.
    let required: Vec<String> = h
        .instances
        .iter()
        .filter(|i| i.required)
        .map(|i| format!("{}.{}", i.store, i.instance))
        .collect();
    assert_eq!(
        required,
        [
            "mysql.dataset",
            "mysql.incentive",
            "mysql.portal",
            "redis.cache",
            "mongo.cache",
            "mongo.dataset",
            "influx.primary"
        ]
    );
}

async fn closed_port_case(store: &str, instance: &str, key: &str) {
    let port = common::closed_port();
    let config = common::config(&[
        &format!("{key}={}", port_value(key, port)),
        "health.timeout=2s",
    ]);
    let hub = Hub::connect(&config).await.unwrap();
    let started = Instant::now();
    let h = hub.health().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "health took {took:?}");
    assert_only_down(&h, store, instance);
}

fn port_value(key: &str, port: u16) -> String {
    if key.ends_with(".url") {
        format!("http://127.0.0.1:{port}")
    } else {
        port.to_string()
    }
}

#[tokio::test]
async fn mysql_on_a_closed_port_is_the_only_instance_down() {
    closed_port_case("mysql", "gtfs", "mysql.gtfs.port").await;
}

#[tokio::test]
async fn redis_on_a_closed_port_is_the_only_instance_down() {
    closed_port_case("redis", "cache", "redis.cache.port").await;
}

#[tokio::test]
async fn mongo_on_a_closed_port_is_the_only_instance_down() {
    closed_port_case("mongo", "dataset", "mongo.dataset.port").await;
}

#[tokio::test]
async fn influx_on_a_closed_port_is_the_only_instance_down() {
    closed_port_case("influx", "uis", "influx.uis.url").await;
}

#[tokio::test]
async fn required_store_down_fails_require_and_optional_does_not() {
    let port = common::closed_port();
    let optional = common::config(&[&format!("mysql.gtfs.port={port}")]);
    let hub = Hub::connect(&optional).await.unwrap();
    let h = hub
        .require()
        .await
        .expect("an optional store does not block start-up");
    assert_eq!(h.status, Status::Up);

    let required = common::config(&[&format!("mysql.portal.port={port}")]);
    let hub = Hub::connect(&required).await.unwrap();
    let err = hub
        .require()
        .await
        .expect_err("a required store blocks start-up");
    let text = err.to_string();
    assert!(
        text.contains("required stores are down or degraded: mysql.portal"),
        "{text}"
    );
    assert!(!text.contains("tsp-local-dev"), "{text}");
}

#[tokio::test]
async fn a_stopped_store_turns_unhealthy_and_the_others_stay_up() {
    let mut scratch = tsp_testkit::ScratchRedis::start();
    let config = common::config(&[
        "redis.spare.host=127.0.0.1",
        &format!("redis.spare.port={}", scratch.port),
        "redis.spare.connect_timeout=1s",
        "health.timeout=2s",
    ]);
    let hub = Hub::connect(&config).await.unwrap();
    // The server needs a moment to listen: wait for it, bounded.
    let h = tsp_testkit::eventually("scratch redis up", Duration::from_secs(10), || async {
        let h = hub.health().await;
        let spare = h.get("redis", "spare").map(|i| i.status);
        if spare == Some(Status::Up) {
            Ok(h)
        } else {
            Err(spare)
        }
    })
    .await;
    assert_eq!(h.instances.len(), 10);
    scratch.kill();
    let started = Instant::now();
    let h = hub.health().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_only_down(&h, "redis", "spare");
    assert_eq!(h.status, Status::Up, "redis.spare is optional");
}

#[tokio::test]
async fn the_round_trip_reads_back_every_instance_and_names_the_one_that_fails() {
    let config = common::config(&[]);
    let hub = Hub::connect(&config).await.unwrap();
    let outcomes = hub.roundtrip(Duration::from_secs(15)).await;
    assert_eq!(outcomes.len(), 9);
    for o in &outcomes {
        assert!(o.ok, "{}.{}: {}", o.store, o.instance, o.detail);
    }

    let port = common::closed_port();
    let config = common::config(&[&format!("mysql.gtfs.port={port}")]);
    let hub = Hub::connect(&config).await.unwrap();
    let outcomes = hub.roundtrip(Duration::from_secs(5)).await;
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.ok).collect();
    assert_eq!(failed.len(), 1, "{outcomes:?}");
    assert_eq!(
        (failed[0].store, failed[0].instance.as_str()),
        ("mysql", "gtfs")
    );
    assert!(!failed[0].required);
}

/// A server that answers pings but not queries (seen with a wedged MongoDB-compatible server)
/// is degraded, not up: another session write-locks the table the MySQL read counts, so
/// `SELECT VERSION()` still answers and the read waits. Required, it fails `require` (and so
/// readiness); unlocked, it is up again.
#[tokio::test]
async fn a_store_that_answers_pings_but_not_reads_is_degraded_and_not_ready() {
    let admin = Hub::connect(&common::config(&[])).await.unwrap();
    let portal = admin.mysql("portal").unwrap();
    let db = format!("tsp_t_{}_wedged", common::unique(""));
    for sql in [
        format!("CREATE DATABASE `{db}`"),
        format!("CREATE TABLE `{db}`._sqlx_migrations (version BIGINT PRIMARY KEY)"),
    ] {
        sqlx::query(&sql).execute(portal.pool()).await.unwrap();
    }
    let config = common::config(&[
        &format!("mysql.gtfs.database={db}"),
        "stores.mysql.gtfs.required=true",
        "health.read_timeout=1s",
    ]);
    let hub = Hub::connect(&config).await.unwrap();
    assert_eq!(hub.health().await.status, Status::Up);

    let mut locker = portal.pool().acquire().await.unwrap();
    let lock = format!("LOCK TABLES `{db}`._sqlx_migrations WRITE");
    sqlx::query(&lock).execute(&mut *locker).await.unwrap();
    let started = Instant::now();
    let h = hub.health().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "health took {took:?}");
    let gtfs = h.get("mysql", "gtfs").unwrap();
    assert_eq!(gtfs.status, Status::Degraded, "{:?}", gtfs.error);
    let why = gtfs.error.as_deref().unwrap_or_default();
    assert!(
        why.contains("answers a ping") && why.contains("_sqlx_migrations") && why.contains("1s"),
        "{why}"
    );
    assert!(gtfs.version.is_some(), "the ping answered with the version");
    for i in h.instances.iter().filter(|i| i.instance != "gtfs") {
        assert_up(i);
    }
    assert_eq!(h.status, Status::Degraded);
    let err = hub.require().await.expect_err("a degraded required store");
    assert!(
        err.to_string().contains("mysql.gtfs (answers a ping"),
        "{err}"
    );

    sqlx::query("UNLOCK TABLES")
        .execute(&mut *locker)
        .await
        .unwrap();
    drop(locker);
    let h = hub.health().await;
    assert_eq!(h.status, Status::Up, "{:?}", h.get("mysql", "gtfs"));
    hub.shutdown(Duration::from_secs(1)).await;
    let drop_db = format!("DROP DATABASE `{db}`");
    sqlx::query(&drop_db).execute(portal.pool()).await.unwrap();
}
