//! Backup sets against the real servers: a set of every store made in one sandbox and restored
//! into another, compared store by store; damaged sets, wrong keys, newer manifests and a held
//! lock refused, naming what is wrong.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use crate::common;

use std::path::Path;
use std::time::Duration;

use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use tsp_backup::{Backups, Key, Stores};
use tsp_hub::{Hub, Point};
use tsp_mobility::sandbox::Sandbox;
use tsp_queue::NewJob;
use tsp_server::app::App;

/// Options with an encryption key in `dir`.
fn options_with_key(dir: &Path, name: &str) -> tsp_config::LoadOptions {
    let key = dir.join(name);
    std::fs::write(&key, Key::generate_hex()).unwrap();
    let mut opts = common::load_options();
    opts.overrides
        .push(format!("backup.encryption_key_file={}", key.display()));
    opts
}

async fn count(hub: &Hub, instance: &str, sql: &str) -> i64 {
    let s = hub.mysql(instance).unwrap();
    sqlx::query_scalar(sql).fetch_one(s.pool()).await.unwrap()
}

/// Rows, queued jobs, a key with a time to live, GeoJSON documents and tagged points.
async fn fill(hub: &Hub) {
    common::seed_users(hub, 5).await;
    sqlx::query(
        "INSERT INTO trips (trip_id, user_id, mode, status, started_at, ended_at, distance_m, \
         duration_s, points) VALUES \
         ('t-1', 1, 'bus', 'completed', '2026-11-30 08:00:00', '2026-11-30 08:20:00', 5000, 1200, 50), \
         ('t''2 (x);', 2, 'walk', 'completed', '2026-11-30 09:00:00', '2026-11-30 09:10:00', 800, 600, 8), \
         ('t-3', 3, 'bike', 'active', '2026-11-30 10:00:00', NULL, 0, 0, NULL)",
    )
    .execute(hub.mysql("dataset").unwrap().pool())
    .await
    .unwrap();

    let app = App::build(hub).unwrap();
    let queue = app.queue("default").unwrap();
    for _ in 0..3 {
        let job = NewJob::new("builtin.noop", &serde_json::json!({})).unwrap();
        queue.enqueue(job).await.unwrap();
    }
    let mut later = NewJob::new("builtin.noop", &serde_json::json!({})).unwrap();
    later.delay = Duration::from_secs(3600);
    queue.enqueue(later).await.unwrap();
    let redis = hub.redis("cache").unwrap();
    let mut conn = redis.conn().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{}probe", redis.key_prefix()))
        .arg("kept")
        .arg("EX")
        .arg(3600)
        .query_async(&mut conn)
        .await
        .unwrap();

    let point = |lng: f64, lat: f64| doc! {"type": "Point", "coordinates": [lng, lat]};
    hub.mongo("dataset")
        .unwrap()
        .database()
        .collection::<Document>("trip_trajectories")
        .insert_many([
            doc! {"tripId": "t-1", "userId": 1, "startLocation": point(145.77, -16.92), "endLocation": point(145.78, -16.93)},
            doc! {"tripId": "t-2", "userId": 2, "startLocation": point(145.70, -16.80), "endLocation": point(145.71, -16.81)},
            doc! {"tripId": "t-3", "userId": 3, "startLocation": point(146.00, -17.00), "endLocation": point(146.01, -17.01)},
        ])
        .await
        .unwrap();

    let influx = hub.influx("primary").unwrap();
    let w = influx.writer();
    // Recent: the database's retention policy refuses points older than it keeps.
    let start = chrono::Utc::now().timestamp_nanos_opt().unwrap() - 60_000_000_000;
    for (i, site) in ["a", "a", "b", "a", "b"].iter().enumerate() {
        let p = Point::new("probe")
            .tag("site", *site)
            .field("v", i as i64)
            .timestamp_ns(start + i as i64 * 1_000_000_000);
        w.write_wait(&p).await.unwrap();
    }
    w.flush().await;
}

async fn probe_counts(hub: &Hub) -> serde_json::Value {
    let influx = hub.influx("primary").unwrap();
    let db = influx.settings().database.clone();
    influx
        .query_v1(&db, "SELECT COUNT(v) FROM probe GROUP BY site")
        .await
        .unwrap()
}

async fn index_names(hub: &Hub) -> Vec<String> {
    let coll = hub
        .mongo("dataset")
        .unwrap()
        .database()
        .collection::<Document>("trip_trajectories");
    let mut names = coll.list_index_names().await.unwrap();
    names.sort();
    names
}

/// Everything `fill` wrote is in `hub`, as it was written.
async fn check_restored(hub: &Hub, source_indexes: &[String], source_points: &serde_json::Value) {
    assert_eq!(count(hub, "portal", "SELECT COUNT(*) FROM users").await, 5);
    let mut ids: Vec<String> = sqlx::query_scalar("SELECT trip_id FROM trips")
        .fetch_all(hub.mysql("dataset").unwrap().pool())
        .await
        .unwrap();
    ids.sort();
    assert_eq!(ids, ["t'2 (x);", "t-1", "t-3"]);

    let app = App::build(hub).unwrap();
    let c = app.queue("default").unwrap().counts().await.unwrap();
    assert_eq!((c.waiting, c.delayed, c.dead), (3, 1, 0), "{c:?}");
    let redis = hub.redis("cache").unwrap();
    let mut conn = redis.conn().await.unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("{}probe", redis.key_prefix()))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 3000, "the key keeps its time to live: {ttl}");

    assert_eq!(index_names(hub).await, source_indexes);
    let trips = hub
        .mongo("dataset")
        .unwrap()
        .database()
        .collection::<Document>("trip_trajectories");
    let near: Vec<Document> = trips
        .aggregate([doc! {"$geoNear": {
        "near": {"type": "Point", "coordinates": [145.771, -16.921]},
        "distanceField": "d", "key": "startLocation", "spherical": true}}])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let order: Vec<&str> = near.iter().map(|d| d.get_str("tripId").unwrap()).collect();
    assert_eq!(order, ["t-1", "t-2", "t-3"], "the 2dsphere index answers");

    assert_eq!(&probe_counts(hub).await, source_points);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_of_every_store_restores_exactly_into_another_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options_with_key(dir.path(), "key");
    let sets = dir.path().join("sets");
    let a = Sandbox::create(&opts).await.unwrap();
    fill(&a.hub).await;
    let source_indexes = index_names(&a.hub).await;
    let source_points = probe_counts(&a.hub).await;
    assert!(
        source_points.to_string().contains("\"b\""),
        "{source_points}"
    );

    let m = Backups::new(&a.hub, Some(sets.clone()))
        .unwrap()
        .create(Stores::ALL)
        .await
        .unwrap();
    assert!(m.complete && m.encrypted);
    let part = |file: &str| m.parts.iter().find(|p| p.file == file).unwrap();
    assert_eq!(part("mysql-dataset.sql.zst").counts["trips"], 3);
    assert_eq!(part("mysql-portal.sql.zst").counts["users"], 5);
    assert!(
        part("mysql-dataset.sql.zst").details["binlog"]["position"]
            .as_u64()
            .is_some()
    );
    let redis = part("redis-cache.rdb.zst");
    assert_eq!(redis.counts["keys_expiring"], 1, "the probe key");
    assert!(redis.counts["keys"] >= 4, "queue keys: {:?}", redis.counts);
    let trajectories = m
        .parts
        .iter()
        .find(|p| p.object.ends_with(".trip_trajectories"))
        .unwrap();
    assert_eq!(trajectories.counts["documents"], 3);
    let secret = std::fs::read(sets.join(&m.id).join("mysql-dataset.sql.zst")).unwrap();
    assert!(
        !secret.windows(5).any(|w| w == b"t-1',"),
        "an encrypted part does not show its rows"
    );

    let b = Sandbox::create(&opts).await.unwrap();
    let into_b = Backups::new(&b.hub, Some(sets.clone())).unwrap();
    let restored = into_b.restore(&m.id, Stores::ALL, false).await.unwrap();
    assert_eq!(restored.parts.len(), m.parts.len());
    check_restored(&b.hub, &source_indexes, &source_points).await;

    // A second restore would overwrite data: refused, naming every store, unless forced.
    let refused = into_b
        .restore(&m.id, Stores::ALL, false)
        .await
        .unwrap_err()
        .to_string();
    for what in [
        "mysql.dataset: tables with rows: ",
        "trips",
        "redis.cache",
        "trip_trajectories",
        "influx.primary",
    ] {
        assert!(refused.contains(what), "{what} in {refused}");
    }
    into_b.restore(&m.id, Stores::ALL, true).await.unwrap();
    check_restored(&b.hub, &source_indexes, &source_points).await;

    // The restored queue runs: a worker on the second sandbox completes the waiting jobs.
    let mut w = common::worker_on(&b.overrides, "default", 2, "2s", &[]);
    let queue = App::build(&b.hub).unwrap().queue("default").unwrap();
    tsp_testkit::eventually("the restored jobs ran", Duration::from_secs(30), || async {
        let c = queue.counts().await.unwrap();
        if c.completed >= 3 { Ok(()) } else { Err(c) }
    })
    .await;
    w.kill().unwrap();
    w.wait().unwrap();
    let _ = a.remove().await;
    let _ = b.remove().await;
}

/// Flips one byte in the middle of `path`.
fn flip(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_sets_wrong_keys_newer_manifests_and_a_held_lock_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options_with_key(dir.path(), "key");
    let sets = dir.path().join("sets");
    let a = Sandbox::create(&opts).await.unwrap();
    common::seed_users(&a.hub, 50).await;
    let backups = Backups::new(&a.hub, Some(sets.clone())).unwrap();
    let mysql = Stores::parse("mysql").unwrap();
    let m = backups.create(mysql).await.unwrap();
    let set = sets.join(&m.id);
    backups.verify(&m.id, mysql).unwrap();
    let part = set.join("mysql-portal.sql.zst");
    let good = std::fs::read(&part).unwrap();

    let refused = |what: &str| {
        let e = backups.verify(&m.id, mysql).unwrap_err().to_string();
        assert!(e.contains("mysql-portal.sql.zst"), "{what}: {e}");
        e
    };
    flip(&part);
    assert!(refused("a changed byte").contains("changed since it was written"));
    std::fs::write(&part, &good[..good.len() - 10]).unwrap();
    refused("a truncated part");
    std::fs::remove_file(&part).unwrap();
    assert!(refused("a missing part").contains("missing"));
    std::fs::write(&part, &good).unwrap();
    // A restore checks before it writes: nothing of the damaged set reaches the stores.
    flip(&part);
    let e = backups
        .restore(&m.id, mysql, true)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("mysql-portal.sql.zst"), "{e}");
    std::fs::write(&part, &good).unwrap();

    // Another key reads nothing.
    let mut other = options_with_key(dir.path(), "other-key");
    other.overrides.extend(a.overrides.iter().cloned());
    let hub = Hub::connect(&tsp_config::load(&other).unwrap())
        .await
        .unwrap();
    let e = Backups::new(&hub, Some(sets.clone()))
        .unwrap()
        .verify(&m.id, mysql)
        .unwrap_err()
        .to_string();
    // Its manifest key (derived from the encryption key) is another too: refused before
    // anything is decrypted.
    assert!(e.contains("signed with another key"), "{e}");
    hub.shutdown(Duration::from_secs(2)).await;

    // A manifest from a newer build.
    let manifest = set.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("\"format\": 1", "\"format\": 99")).unwrap();
    let e = backups.verify(&m.id, mysql).unwrap_err().to_string();
    assert!(e.contains("format 99 is newer"), "{e}");
    std::fs::write(&manifest, text).unwrap();

    // One backup at a time: while another process holds the lock, create refuses.
    let lock = std::fs::File::open(sets.join(".lock")).unwrap();
    lock.lock().unwrap();
    let e = backups.create(mysql).await.unwrap_err().to_string();
    assert!(e.contains("another backup is running"), "{e}");
    lock.unlock().unwrap();
    backups.create(mysql).await.unwrap();

    // As a job: a worker makes the set (the scheduler or anyone may enqueue it).
    let app = App::build(&a.hub).unwrap();
    let queue = app.queue("default").unwrap();
    let job = NewJob::new("backup.create", &serde_json::json!({"stores": "mysql"})).unwrap();
    let id = queue.enqueue(job).await.unwrap();
    let key = opts
        .overrides
        .iter()
        .find(|o| o.starts_with("backup.encryption_key_file="))
        .unwrap()
        .clone();
    let dir_set = format!("backup.dir={}", sets.display());
    let mut w = common::worker_on(&a.overrides, "default", 1, "5s", &[&key, &dir_set]);
    let done = tsp_testkit::eventually("the backup job finished", Duration::from_secs(30), || {
        let queue = queue.clone();
        let id = id.clone();
        async move {
            let info = queue.job(&id).await.unwrap().unwrap();
            if info.state == "completed" {
                Ok(info)
            } else {
                Err(info)
            }
        }
    });
    let info = done.await;
    w.kill().unwrap();
    w.wait().unwrap();
    let made = info.result.unwrap()["set"].as_str().unwrap().to_string();
    let listed = backups.list().unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed.iter().any(|s| s.id == made && s.complete));
    let _ = a.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_manifest_or_a_part_name_leaving_the_set_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let signing = dir.path().join("signing-key");
    std::fs::write(&signing, Key::generate_hex()).unwrap();
    let mut opts = common::load_options();
    opts.overrides
        .push(format!("backup.signing_key_file={}", signing.display()));
    let sets = dir.path().join("sets");
    let a = Sandbox::create(&opts).await.unwrap();
    common::seed_users(&a.hub, 5).await;
    let backups = Backups::new(&a.hub, Some(sets.clone())).unwrap();
    let mysql = Stores::parse("mysql").unwrap();
    let m = backups.create(mysql).await.unwrap();
    assert!(m.mac.is_some());
    backups.verify(&m.id, mysql).unwrap();
    let manifest = sets.join(&m.id).join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let refused = |json: &serde_json::Value| {
        std::fs::write(&manifest, serde_json::to_vec_pretty(json).unwrap()).unwrap();
        backups.verify(&m.id, mysql).unwrap_err().to_string()
    };

    // A count changed, a part renamed to reach outside, the signature removed.
    json["parts"][0]["counts"]["users"] = serde_json::json!(999);
    let e = refused(&json);
    assert!(
        e.contains(&m.id) && e.contains("manifest was changed"),
        "{e}"
    );
    let mut outside: serde_json::Value = serde_json::from_str(&text).unwrap();
    outside["parts"][0]["file"] = serde_json::json!("../../portal.sql.zst");
    assert!(refused(&outside).contains("manifest was changed"));
    let mut unsigned: serde_json::Value = serde_json::from_str(&text).unwrap();
    unsigned.as_object_mut().unwrap().remove("mac");
    assert!(refused(&unsigned).contains("not signed"));
    // Another set's manifest, signed with the same key, in this set's folder.
    let other = backups.create(mysql).await.unwrap();
    let other_text = std::fs::read_to_string(sets.join(&other.id).join("manifest.json")).unwrap();
    std::fs::write(&manifest, &other_text).unwrap();
    let e = backups.verify(&m.id, mysql).unwrap_err().to_string();
    assert!(
        e.contains(&format!("its manifest is set {}'s", other.id)),
        "{e}"
    );
    std::fs::write(&manifest, &text).unwrap();
    backups.verify(&m.id, mysql).unwrap();

    // Without any key the manifest cannot be authenticated; part names are still checked.
    let hub = {
        let mut o = common::load_options();
        o.overrides.extend(a.overrides.iter().cloned());
        Hub::connect(&tsp_config::load(&o).unwrap()).await.unwrap()
    };
    let unkeyed = Backups::new(&hub, Some(dir.path().join("plain"))).unwrap();
    let u = unkeyed.create(mysql).await.unwrap();
    assert!(u.mac.is_none());
    let path = dir.path().join("plain").join(&u.id).join("manifest.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json["parts"][0]["file"] = serde_json::json!("../../../etc/hostname");
    std::fs::write(&path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    let e = unkeyed.verify(&u.id, mysql).unwrap_err().to_string();
    assert!(
        e.contains("../../../etc/hostname") && e.contains("not a plain file name"),
        "{e}"
    );
    hub.shutdown(Duration::from_secs(2)).await;
    let _ = a.remove().await;
}

async fn insert_trips(hub: &Hub, ids: &[&str]) {
    for id in ids {
        sqlx::query(
            "INSERT INTO trips (trip_id, user_id, mode, status, started_at, ended_at, \
             distance_m, duration_s, points) \
             VALUES (?, 1, 'bus', 'completed', NOW(), NOW(), 100, 60, 1)",
        )
        .bind(id)
        .execute(hub.mysql("dataset").unwrap().pool())
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_in_time_recovery_replays_the_binary_log_up_to_the_moment_given() {
    let dir = tempfile::tempdir().unwrap();
    let opts = common::load_options();
    let sets = dir.path().join("sets");
    let a = Sandbox::create(&opts).await.unwrap();
    common::seed_users(&a.hub, 3).await;
    insert_trips(&a.hub, &["before-1"]).await;
    let mysql = Stores::parse("mysql").unwrap();
    let m = Backups::new(&a.hub, Some(sets.clone()))
        .unwrap()
        .create(mysql)
        .await
        .unwrap();
    insert_trips(&a.hub, &["after-1", "after-2"]).await;
    // The binary log stamps events to the second: the moment to recover to is the next whole
    // second, and the writes that must not come back happen at or after it.
    let first = chrono::Utc::now();
    let until = first
        .with_timezone(&chrono::Utc)
        .checked_add_signed(chrono::Duration::milliseconds(
            1000 - i64::from(first.timestamp_subsec_millis()),
        ))
        .unwrap();
    while chrono::Utc::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    insert_trips(&a.hub, &["late-1"]).await;

    let b = Sandbox::create(&opts).await.unwrap();
    let into_b = Backups::new(&b.hub, Some(sets)).unwrap();
    into_b
        .restore_until(&m.id, mysql, false, Some(until))
        .await
        .unwrap();
    let mut ids: Vec<String> = sqlx::query_scalar("SELECT trip_id FROM trips")
        .fetch_all(b.hub.mysql("dataset").unwrap().pool())
        .await
        .unwrap();
    ids.sort();
    assert_eq!(
        ids,
        ["after-1", "after-2", "before-1"],
        "up to the moment, no later"
    );

    // A moment before the set was taken cannot be reached from it.
    let early = chrono::Utc::now() - chrono::Duration::hours(1);
    let e = into_b
        .restore_until(&m.id, mysql, true, Some(early))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("is before"), "{e}");
    let _ = a.remove().await;
    let _ = b.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_or_a_missing_tool_leaves_the_set_marked_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let sets = dir.path().join("sets");
    let port = tsp_testkit::closed_port();
    let mut opts = common::load_options();
    opts.overrides.push(format!("mysql.gtfs.port={port}"));
    opts.overrides
        .push("mysql.gtfs.pool.acquire_timeout=2s".into());
    let hub = Hub::connect(&tsp_config::load(&opts).unwrap())
        .await
        .unwrap();
    let backups = Backups::new(&hub, Some(sets.clone())).unwrap();
    let e = backups
        .create(Stores::parse("mysql").unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("mysql.gtfs"),
        "the error names the instance: {e}"
    );
    let listed = backups.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].complete, "{listed:?}");
    assert!(listed[0].error.as_deref().unwrap().contains("mysql.gtfs"));
    let refused = backups
        .verify(&listed[0].id, Stores::ALL)
        .unwrap_err()
        .to_string();
    assert!(refused.contains("incomplete"), "{refused}");
    hub.shutdown(Duration::from_secs(2)).await;

    // A tool that is not installed is named as such.
    let mut opts = common::load_options();
    opts.overrides
        .push("backup.mysql_dump=tsp-no-such-mariadb-dump".into());
    let hub = Hub::connect(&tsp_config::load(&opts).unwrap())
        .await
        .unwrap();
    let e = Backups::new(&hub, Some(sets))
        .unwrap()
        .create(Stores::parse("mysql").unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tsp-no-such-mariadb-dump") && e.contains("mysql."),
        "{e}"
    );
    hub.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_refuses_writes_leaves_the_set_incomplete_and_names_the_part() {
    // No room to write: the process may write files of at most 16 KiB (`ulimit -f`, with
    // SIGXFSZ ignored, so a write past it fails as a full disk's would, with an error).
    let dir = tempfile::tempdir().unwrap();
    let sets = dir.path().join("sets");
    let a = Sandbox::create(&common::load_options()).await.unwrap();
    common::seed_users(&a.hub, 20_000).await;
    let mut args = vec![
        "backup".to_string(),
        "create".into(),
        "--stores".into(),
        "mysql".into(),
    ];
    args.extend(["--to".into(), sets.display().to_string()]);
    for o in &a.overrides {
        args.extend(["--set".to_string(), o.clone()]);
    }
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "ulimit -f 16; trap '' XFSZ; exec {} \"$@\"",
                env!("CARGO_BIN_EXE_tsp-job")
            ))
            .arg("tsp-job")
            .args(&args)
            .env("TSP_CONFIG_DIR", tsp_testkit::config_dir())
            .output()
            .unwrap()
    });
    let (_, stderr) = common::text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("part") && stderr.contains(".sql.zst") && stderr.contains("File too large"),
        "the error names the part and the cause: {stderr}"
    );
    let listed = Backups::new(&a.hub, Some(sets)).unwrap().list().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].complete, "{listed:?}");
    let _ = a.remove().await;
}
