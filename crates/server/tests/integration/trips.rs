//! The trip flow through `tsp-job` processes, each test in a sandbox (fresh databases on every
//! store): the HTTP queries and their errors, and cache coherence across processes.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use crate::common;

use std::time::Duration;

use crate::common::Server;
use tsp_mobility::auth::Scope;
use tsp_mobility::complete::Trips;
use tsp_mobility::sandbox::Sandbox;
use tsp_mobility::trip::{TrackPoint, TripCompletion};

/// A bus trip due north, `steps` steps of 0.01° (1.112 km) a minute each, ending an hour ago.
fn trip(id: &str, user: u64, steps: usize) -> TripCompletion {
    let end = tsp_testkit::trip_end(3_600_000, steps as i64 * 60_000);
    TripCompletion {
        trip_id: id.into(),
        user_id: user,
        mode: "bus".into(),
        trajectory: (0..=steps)
            .map(|k| TrackPoint {
                lat: -16.9 + 0.01 * k as f64,
                lng: 145.75,
                timestamp: end - (steps - k) as i64 * 60_000,
                accuracy: None,
                speed: None,
            })
            .collect(),
        cost: Some(1.5),
    }
}

async fn get(server: &Server, path: &str) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new().get(format!("{}{path}", server.base));
    if let Some(c) = &server.credential {
        req = req.bearer_auth(c);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    match serde_json::from_str(&body) {
        Ok(v) => (status, v),
        Err(_) => panic!("{path}: {status} {body}"),
    }
}

/// A server on the sandbox, presenting a key that holds every scope.
async fn start(sandbox: &Sandbox) -> Server {
    let app = tsp_server::app::App::build(&sandbox.hub).unwrap();
    let key = app
        .auth()
        .create_key("test", &Scope::ALL)
        .await
        .unwrap()
        .key;
    let sets: Vec<&str> = sandbox.overrides.iter().map(String::as_str).collect();
    // `Server::start` waits on a thread for the process's first line.
    tokio::task::block_in_place(|| Server::start(&sets, &[])).with_credential(key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_answer_queries_and_never_serve_an_invalidated_entry() {
    let sandbox = Sandbox::create(&common::load_options()).await.unwrap();
    let hub = sandbox.hub.clone();
    common::seed_users(&hub, 3).await;
    let trips = common::trips(&hub);
    assert!(trips.cache().wait_l1(Duration::from_secs(5)).await);
    trips.complete("j-0", &trip("c-0", 1, 2)).await.unwrap();

    let a = start(&sandbox).await;
    let b = start(&sandbox).await;
    // Both processes subscribe to invalidations shortly after start: wait until an
    // invalidation reaches three processes (this one, A and B).
    let what = "three receivers of an invalidation";
    let receivers = tsp_testkit::eventually(what, Duration::from_secs(5), || async {
        let inv = trips.cache().invalidate(&[Trips::user_tag(1)]).await;
        match inv.unwrap().receivers {
            3 => Ok(3),
            n => Err(n),
        }
    })
    .await;
    assert_eq!(receivers, 3);

    // bus, 10 points per km: 2.224 km → 22 points; every further 1-step trip adds 11.
    let mut balance = 22;
    for round in 1..=15 {
        for server in [&a, &b] {
            let (status, first) = get(server, "/users/1/points").await;
            assert_eq!(status, 200, "{first}");
            assert_eq!(first["balance"], balance, "round {round}: {first}");
            let (_, second) = get(server, "/users/1/points").await;
            assert_eq!(
                (second["balance"].clone(), second["cache"].as_str()),
                (balance.into(), Some("l1"))
            );
        }
        // This process completes a trip: when `complete` returns, A and B have dropped their
        // L1 copies, so their next answers include it.
        trips
            .complete(&format!("j-{round}"), &trip(&format!("c-{round}"), 1, 1))
            .await
            .unwrap();
        balance += 11;
    }
    let (_, stats) = get(&a, "/users/1/stats?days=30").await;
    assert_eq!(stats["trips"], 16);
    assert_eq!(stats["totalCost"], 24.0);

    // Errors name what is wrong.
    for (path, status, starts) in [
        ("/users/abc/stats", 400, "id: `abc` is not a user id"),
        ("/users/99/points", 404, "no user 99"),
        ("/users/99/stats", 404, "no user 99"),
        ("/users/1/stats?days=0", 400, "days: 0: must be 1 to 366"),
        (
            "/users/1/stats?days=x",
            400,
            "days: invalid digit found in string",
        ),
        (
            "/users/1/stats?day=3",
            400,
            "day: unknown field `day`, expected `days`",
        ),
        (
            "/users/1/stats?days=1&days=2",
            400,
            "query: duplicate field `days`",
        ),
        (
            "/users/1/points?days=1",
            400,
            "days: unknown field `days`, there are no fields",
        ),
        (
            "/trips/near?lat=1&lng=2",
            400,
            "query: missing field `radius_km`",
        ),
        (
            "/trips/near?lat=100&lng=2&radius_km=1",
            400,
            "lat: 100 is not a latitude",
        ),
        // Redis GEO holds latitudes within ±85.05112878 only: beyond is the caller's error, not
        // a store's (it was a 503).
        (
            "/users/near?lat=-90&lng=-180&radius_km=1",
            400,
            "lat: -90 is not a latitude (-85.05112878 to 85.05112878)",
        ),
        // The document's user ids are int64 (it was a 404 for 2^63).
        (
            "/users/9223372036854775808/stats",
            400,
            "id: `9223372036854775808` is not a user id",
        ),
        (
            "/users/near?lat=1&lng=200&radius_km=1",
            400,
            "lng: 200 is not a longitude",
        ),
        (
            "/users/near?lat=1&lng=2&radius_km=1000",
            400,
            "radius_km: 1000: must be above 0",
        ),
        (
            "/trips/near?lat=1&lng=2&radius_km=1&limit=0",
            400,
            "limit: 0: must be 1 to 1000",
        ),
        (
            "/analytics/engagement?days=400",
            400,
            "days: 400: must be 1 to 366",
        ),
    ] {
        let (got, body) = get(&a, path).await;
        let error = body["error"].as_str().unwrap_or_default();
        assert_eq!(got, status, "{path}: {body}");
        assert!(error.starts_with(starts), "{path}: {error}");
    }

    // The geospatial and analytics routes answer with the data.
    let (_, near) = get(&b, "/trips/near?lat=-16.9&lng=145.75&radius_km=0.5").await;
    assert_eq!(near.as_array().unwrap().len(), 16, "{near}");
    let (_, users) = get(&b, "/users/near?lat=-16.89&lng=145.75&radius_km=2").await;
    assert_eq!(users[0]["userId"], 1, "{users}");
    // Engagement reads the daily rollups: roll up the days these trips started on.
    let today = chrono::Utc::now().date_naive();
    for d in [today - chrono::Duration::days(1), today] {
        trips.rollup_day(d).await.unwrap();
    }
    let (_, engagement) = get(&b, "/analytics/engagement?days=7").await;
    assert_eq!(engagement["cache"], "source", "{engagement}");
    assert_eq!(engagement["users"][0]["userId"], 1, "{engagement}");
    assert_eq!(engagement["users"][0]["trips"], 16, "{engagement}");
    drop((a, b));
    assert!(sandbox.remove().await.is_empty());
}

fn tsp_job_in(sandbox: &Sandbox, args: &[&str]) -> (i32, String, String) {
    let mut cmd = common::tsp_job(&[("TSP_LOG", "warn")]);
    cmd.args(args);
    for s in &sandbox.overrides {
        cmd.args(["--set", s]);
    }
    let out = tokio::task::block_in_place(|| cmd.output().unwrap());
    let (stdout, stderr) = common::text(&out);
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_main_job_and_the_query_commands_run_in_a_sandbox() {
    let sandbox = Sandbox::create(&common::load_options()).await.unwrap();
    let (code, out, err) = tsp_job_in(
        &sandbox,
        &[
            "simulate", "--users", "5", "--trips", "60", "--seed", "3", "--json",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let s = &v["summary"];
    assert_eq!(
        (
            s["trips"].as_u64(),
            s["completed"].as_u64(),
            s["failed"].as_u64()
        ),
        (Some(60), Some(60), Some(0)),
        "{s}"
    );
    let stores = &s["stores"];
    for key in [
        "trips_completed",
        "earn_transactions",
        "trajectories",
        "activities",
        "booking_points",
    ] {
        assert_eq!(stores[key], 60, "{key}: {stores}");
    }
    assert_eq!(stores["users"], 5);
    assert_eq!(v["health"]["status"], "up");
    // The same plan again changes nothing: every trip is found complete.
    let (code, out, _) = tsp_job_in(
        &sandbox,
        &[
            "simulate", "--users", "5", "--trips", "60", "--seed", "3", "--json",
        ],
    );
    assert_eq!(code, 0);
    let again: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(again["summary"]["stores"]["trips_completed"], 60);
    assert_eq!(
        again["summary"]["stores"]["points_awarded"],
        stores["points_awarded"]
    );

    // The query commands answer from the same data, and name bad input.
    let (code, out, _) = tsp_job_in(&sandbox, &["query", "points", "1"]);
    assert_eq!(code, 0);
    let p: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(p["userId"], 1);
    assert_eq!(p["balance"], p["earned"]);
    let (code, out, _) = tsp_job_in(&sandbox, &["query", "engagement", "--days", "30"]);
    assert_eq!(code, 0);
    let e: serde_json::Value = serde_json::from_str(&out).unwrap();
    let total: u64 = e["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["trips"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 60);
    let (code, _, err) = tsp_job_in(&sandbox, &["query", "stats", "99"]);
    assert_eq!(code, 1);
    assert!(err.contains("no user 99"), "{err}");
    let (code, _, err) = tsp_job_in(
        &sandbox,
        &[
            "query",
            "trips-near",
            "--lat",
            "-100",
            "--lng",
            "145",
            "--radius-km",
            "1",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("lat: -100 is not a latitude"), "{err}");
    assert!(sandbox.remove().await.is_empty());
}
