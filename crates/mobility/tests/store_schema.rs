//! InfluxDB and Redis schema steps against the real servers, each test on its own database or
//! key prefix.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use tsp_hub::Hub;
use tsp_mobility::store_schema;

fn tag() -> String {
    tsp_testkit::unique("")
}

async fn hub(sets: &[String]) -> Hub {
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let config = tsp_testkit::config(&sets);
    Hub::connect(&config).await.unwrap()
}

#[tokio::test]
async fn influx_databases_get_their_retention_policy_once() {
    let db = format!("tsp_t_{}", tag());
    let hub = hub(&[format!("influx.uis.database={db}")]).await;
    let uis = hub.influx("uis").unwrap();
    let dry = store_schema::run_influx(&hub, uis, true).await.unwrap();
    assert_eq!(dry.applied.len(), 1);
    let dbs = uis
        .query_v1("", "SHOW DATABASES")
        .await
        .unwrap()
        .to_string();
    assert!(!dbs.contains(&db), "a dry run creates nothing");

    let first = store_schema::run_influx(&hub, uis, false).await.unwrap();
    assert_eq!(
        first.applied,
        [format!(
            "1 database {db} with default retention tsp_90d (90d)"
        )]
    );
    let rps = uis
        .query_v1(&db, &format!("SHOW RETENTION POLICIES ON \"{db}\""))
        .await
        .unwrap();
    let rows = rps
        .pointer("/results/0/series/0/values")
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    let default: Vec<&serde_json::Value> = rows.iter().filter(|r| r[4] == true).collect();
    assert_eq!(default.len(), 1);
    assert_eq!(default[0][0], "tsp_90d");
    assert_eq!(default[0][1], "2160h0m0s");

    let again = store_schema::run_influx(&hub, uis, false).await.unwrap();
    assert!(
        again.applied.is_empty() && again.already.len() == 1,
        "{again:?}"
    );

    // A recorded step whose definition no longer matches is refused.
    uis.write_body(
        &db,
        b"_tsp_migrations,version=1 checksum=\"0000\"\n"
            .to_vec()
            .into(),
    )
    .await
    .unwrap();
    let err = store_schema::run_influx(&hub, uis, false)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("was changed after it was applied"),
        "{err}"
    );
    let _ = uis.query_v1(&db, &format!("DROP DATABASE \"{db}\"")).await;
}

#[tokio::test]
async fn the_redis_key_schema_version_advances_once() {
    let prefix = format!("t{}:", tag());
    let hub = hub(&[format!("redis.cache.key_prefix={prefix}")]).await;
    let store = hub.redis("cache").unwrap();
    let mut conn = store.conn().await.unwrap();
    // A queue as the layout of step 1 stored a completed job: in the sorted set `completed`,
    // finish time 7, the lease record without it. Step 2 converts it.
    let q = format!("{prefix}q:{{jobs}}:");
    let _: () = redis::pipe()
        .cmd("SADD")
        .arg(format!("{prefix}queues"))
        .arg("jobs")
        .cmd("HSET")
        .arg(format!("{q}data"))
        .arg("J1")
        .arg("[]")
        .cmd("HSET")
        .arg(format!("{q}lease"))
        .arg("J1")
        .arg("1|5||w")
        .cmd("ZADD")
        .arg(format!("{q}completed"))
        .arg(7)
        .arg("J1")
        .query_async(&mut conn)
        .await
        .unwrap();
    let dry = store_schema::run_redis(store, true).await.unwrap();
    assert_eq!(dry.applied.len(), 2);
    let exists: bool = redis::cmd("EXISTS")
        .arg(format!("{prefix}schema"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!exists, "a dry run writes nothing");

    let (a, b) = tokio::join!(
        store_schema::run_redis(store, false),
        store_schema::run_redis(store, false)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.applied.len() + b.applied.len(), 2, "{a:?} {b:?}");
    let again = store_schema::run_redis(store, false).await.unwrap();
    assert!(again.applied.is_empty());
    let (done, record, old): (Vec<String>, String, bool) = redis::pipe()
        .cmd("LRANGE")
        .arg(format!("{q}done"))
        .arg(0)
        .arg(-1)
        .cmd("HGET")
        .arg(format!("{q}lease"))
        .arg("J1")
        .cmd("EXISTS")
        .arg(format!("{q}completed"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        (done, record.as_str(), old),
        (vec!["J1".to_string()], "1|5||w|7", false)
    );

    let _: i64 = redis::cmd("HSET")
        .arg(format!("{prefix}schema"))
        .arg(1)
        .arg("0000")
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = store_schema::run_redis(store, false).await.unwrap_err();
    assert!(
        err.to_string().contains("was changed after it was applied"),
        "{err}"
    );
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{prefix}schema"))
        .arg(format!("{prefix}queues"))
        .arg(format!("{q}data"))
        .arg(format!("{q}lease"))
        .arg(format!("{q}done"))
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// The v2 bucket path against a server without the v2 API (InfluxDB 1.6 here): a clear error
/// naming the instance and the call, not a silent skip. (No InfluxDB 2 server runs here.)
#[tokio::test]
async fn a_v2_instance_on_a_server_without_the_v2_api_is_a_clear_error() {
    let hub = hub(&[
        "influx.uis.api=v2".into(),
        "influx.uis.token=t0k3n-never-shown".into(),
        "influx.uis.org=tsp".into(),
        "influx.uis.bucket=tsp_uis".into(),
    ])
    .await;
    let uis = hub.influx("uis").unwrap();
    let err = store_schema::run_influx_v2(&hub, uis, true)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("influx.uis"), "{err}");
    assert!(err.contains("GET /api/v2/orgs"), "{err}");
    assert!(err.contains("HTTP 404"), "{err}");
    assert!(!err.contains("t0k3n-never-shown"), "{err}");
}

#[tokio::test]
async fn raw_points_are_downsampled_into_the_long_retention_policy() {
    let db = format!("tsp_t_{}", tag());
    let sm = format!("{db}_sm");
    let hub = hub(&[
        format!("influx.primary.database={db}"),
        format!("influx.service_monitor.bucket={sm}"),
    ])
    .await;
    let primary = hub.influx("primary").unwrap();
    let first = store_schema::run_influx(&hub, primary, false)
        .await
        .unwrap();
    assert_eq!(first.applied.len(), 4, "{first:?}");
    let cqs = primary
        .query_v1("", "SHOW CONTINUOUS QUERIES")
        .await
        .unwrap()
        .to_string();
    for name in [
        "cq_trip_bookings_1h",
        "cq_trip_bookings_1d",
        "cq_job_execution_1h",
    ] {
        assert!(cqs.contains(name), "{name} in {cqs}");
    }
    assert!(cqs.contains("cq_vendor_latency_1d"), "{cqs}");

    // Five bookings over two whole hours that ended before the last full hour.
    let hour = 3_600_000_i64;
    let start = (chrono::Utc::now().timestamp_millis() / hour - 3) * hour;
    let lines: String = [
        (0, 1000.0, 10),
        (10, 2000.0, 20),
        (50, 500.0, 5),
        (61, 1500.0, 15),
        (119, 100.0, 1),
    ]
    .iter()
    .map(|(minute, metres, points)| {
        format!(
            "trip_bookings,mode=bus count=1i,distance_m={metres},points={points}i {}\n",
            (start + minute * 60_000) * 1_000_000
        )
    })
    .collect();
    primary
        .write_body(&db, lines.into_bytes().into())
        .await
        .unwrap();
    // Continuous queries run at the end of each interval for that interval only; the past hours
    // here are filled the way an operator backfills: the same SELECT … INTO, with a time range.
    let series = store_schema::downsampled(&hub, primary, &db);
    let bookings = series
        .iter()
        .find(|s| s.measurement == "trip_bookings")
        .unwrap();
    primary
        .query_v1(
            &db,
            &bookings.select_into(&db, "1h", Some((start, start + 2 * hour))),
        )
        .await
        .unwrap();
    let r = primary
        .query_v1(
            &db,
            &format!(
                "SELECT trips, distance_m, points FROM \"{db}\".\"{}\".\"trip_bookings_1h\" WHERE mode = 'bus'",
                store_schema::LONG_RETENTION
            ),
        )
        .await
        .unwrap();
    let values = r.pointer("/results/0/series/0/values").unwrap();
    let rows: Vec<(f64, f64, f64)> = values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v[1].as_f64().unwrap(),
                v[2].as_f64().unwrap(),
                v[3].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, vec![(3.0, 3500.0, 35.0), (2.0, 1600.0, 16.0)]);

    let again = store_schema::run_influx(&hub, primary, false)
        .await
        .unwrap();
    assert!(
        again.applied.is_empty() && again.already.len() == 4,
        "{again:?}"
    );
    for d in [&db, &sm] {
        let _ = primary.query_v1(d, &format!("DROP DATABASE \"{d}\"")).await;
    }
}
