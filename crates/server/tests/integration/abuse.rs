//! The service tried as an attacker would, with a user account, operator accounts and narrow
//! service keys against `serve` and `worker` processes on real stores, each test in a sandbox.
//! Every attack is refused, and no store holds anything it did not hold before. The threat model
//! these tests hold, line by line: docs/security.md#threat-model.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use crate::common;

use std::time::Duration;

use crate::common::api::{call, console_stream, ends_within, get, login, token_of, trip};
use crate::common::{PASSWORD, Server, Site, until_some};
use reqwest::Method;
use serde_json::{Value, json};
use tsp_mobility::auth::{Role, Scope};

async fn post(server: &Server, path: &str, credential: &str, body: Value) -> (u16, Value) {
    let (code, _, v) = call(server, Method::POST, path, Some(credential), Some(body)).await;
    (code, v)
}

async fn delete(server: &Server, path: &str, credential: &str) -> (u16, Value) {
    let (code, _, v) = call(server, Method::DELETE, path, Some(credential), None).await;
    (code, v)
}

async fn operator_token(server: &Server, name: &str) -> String {
    let (code, v) = login(server, json!({"username": name, "password": PASSWORD})).await;
    assert_eq!(code, 200, "{v}");
    v["token"].as_str().unwrap().to_string()
}

/// What every store holds of the trip flow (rows, documents, keys, points).
async fn footprint(site: &Site) -> Value {
    json!(
        tsp_mobility::batch::footprint(site.app.trips())
            .await
            .unwrap()
    )
}

fn enqueue(payload: Value) -> Value {
    json!({"type": "trip.complete", "queue": "trips", "payload": payload})
}

// ---- Privileges end when they are revoked ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_operator_cannot_act_with_the_session_they_had() {
    let site = Site::new(&[]).await;
    let (a, b) = (site.server(&[]), site.server(&[]));
    let name = site.operator(Role::Operator).await;
    let token = operator_token(&a, &name).await;
    let queue = site.app.queue("default").unwrap();
    assert_eq!(
        post(&b, "/queues/default/pause", &token, json!({})).await.0,
        200
    );
    assert_eq!(
        post(&a, "/queues/default/resume", &token, json!({}))
            .await
            .0,
        200
    );

    let out = site.cli_stdin(&["admins", "create", &name, "--role", "viewer"], PASSWORD);
    assert!(out.status.success(), "{}", common::text(&out).1);
    // From the moment the command returned, neither process takes the old session.
    for server in [&a, &b] {
        let (code, v) = post(server, "/queues/default/pause", &token, json!({})).await;
        assert_eq!(code, 401, "{v}");
    }
    assert!(
        !queue.counts().await.unwrap().paused,
        "the queue was never paused"
    );
    // Logged in again, the viewer reads and cannot act.
    let viewer = operator_token(&a, &name).await;
    assert_eq!(get(&b, "/queues", &viewer).await.0, 200);
    assert_eq!(
        post(&b, "/queues/default/pause", &viewer, json!({}))
            .await
            .0,
        403
    );
    drop((a, b));
    site.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_password_ends_the_sessions_begun_with_the_old_one() {
    let site = Site::new(&[]).await;
    let email = site.user_with_password(1).await;
    let (a, b) = (site.server(&[]), site.server(&[]));
    let on_a = token_of(&a, &email).await;
    let on_b = token_of(&b, &email).await;
    assert_eq!(get(&b, "/users/1/points", &on_a).await.0, 200);

    let new = "a different long passphrase";
    let out = site.cli_stdin(&["users", "set-password", "1"], new);
    assert!(out.status.success(), "{}", common::text(&out).1);
    for (server, token) in [(&a, &on_a), (&b, &on_a), (&a, &on_b), (&b, &on_b)] {
        assert_eq!(get(server, "/users/1/points", token).await.0, 401);
    }
    let (code, _) = login(&a, json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(code, 401, "the old password");
    let (code, v) = login(&b, json!({"email": email, "password": new})).await;
    assert_eq!(code, 200, "{v}");
    drop((a, b));
    site.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_can_be_ended_for_users_and_operators_by_command_and_over_http() {
    let site = Site::new(&[]).await;
    let email = site.user_with_password(1).await;
    let (a, b) = (site.server(&[]), site.server(&[]));
    let user = token_of(&a, &email).await;
    site.cli_ok(&["users", "revoke-sessions", "1"]);
    assert_eq!(get(&b, "/users/1/points", &user).await.0, 401);
    // Suspended and made active again: the sessions of before stay ended. Deleted: no login.
    let user = token_of(&a, &email).await;
    site.cli_ok(&["users", "suspend", "1"]);
    site.cli_ok(&["users", "activate", "1"]);
    assert_eq!(get(&b, "/users/1/points", &user).await.0, 401);
    let user = token_of(&b, &email).await;
    site.cli_ok(&["users", "delete", "1"]);
    assert_eq!(get(&a, "/users/1/points", &user).await.0, 401);
    let (code, _) = login(&a, json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(code, 401, "a deleted user cannot log in");

    let (alice, bob, root) = (
        site.operator(Role::Operator).await,
        site.operator(Role::Operator).await,
        site.operator(Role::Admin).await,
    );
    let alice_token = operator_token(&a, &alice).await;
    site.cli_ok(&["admins", "revoke-sessions", &alice]);
    assert_eq!(get(&b, "/queues", &alice_token).await.0, 401);

    // Over HTTP: an operator may end their own sessions, not another's; an admin anyone's.
    let (alice_token, bob_token, root_token) = (
        operator_token(&a, &alice).await,
        operator_token(&a, &bob).await,
        operator_token(&a, &root).await,
    );
    let path = format!("/operators/{alice}/sessions");
    assert_eq!(delete(&b, &path, &bob_token).await.0, 403);
    assert_eq!(get(&a, "/queues", &alice_token).await.0, 200);
    let (code, v) = delete(&b, &path, &alice_token).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(get(&a, "/queues", &alice_token).await.0, 401);
    let (code, v) = delete(&a, &format!("/operators/{bob}/sessions"), &root_token).await;
    assert_eq!((code, v["ended"].as_u64()), (200, Some(1)), "{v}");
    assert_eq!(get(&b, "/queues", &bob_token).await.0, 401);
    // A deleted operator's sessions end with them.
    site.cli_ok(&["admins", "delete", &root]);
    assert_eq!(get(&b, "/queues", &root_token).await.0, 401);
    drop((a, b));
    site.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consoles_live_stream_closes_when_its_session_ends() {
    let site = Site::new(&[]).await;
    let server = site.server(&[]);
    let name = site.operator(Role::Viewer).await;
    let token = operator_token(&server, &name).await;
    let stream = console_stream(&server, &token).await;
    let (code, _) = post(&server, "/auth/logout", &token, json!({})).await;
    assert_eq!(code, 200);
    // The stream ends within its recheck interval (3 s), not at the page's leisure.
    assert!(
        ends_within(stream, Duration::from_secs(10)).await,
        "the stream outlived its session"
    );
    drop(server);
    site.done().await;
}

// ---- Points only for trips that could have happened ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trips_that_could_not_have_happened_earn_nothing_and_change_nothing() {
    let site = Site::new(&[]).await;
    let email = site.user_with_password(1).await;
    let server = site.server(&[]);
    let user = token_of(&server, &email).await;
    let before = footprint(&site).await;
    let end = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let fix = |lat: f64, ago_min: i64, accuracy: Option<f64>| json!({"lat": lat, "lng": 10.0, "timestamp": end - ago_min * 60_000, "accuracy": accuracy});
    let bike = |id: &str, fixes: Vec<Value>| json!({"tripId": id, "userId": 1, "mode": "bike", "trajectory": fixes});
    let walk_fixes: Vec<Value> = (0..20)
        .map(|k| fix(40.0 + 0.1 * f64::from(k), 20 - i64::from(k), Some(1e9)))
        .collect();
    for (payload, says) in [
        // 1 000 km in 20 h: 50 km/h, under a bike's top speed, not a bike trip.
        (
            bike("b1", vec![fix(40.0, 1200, None), fix(49.0, 0, None)]),
            "longest plausible bike trip",
        ),
        // 222 km in 5 h: within the distance, not the mean speed.
        (
            bike("b2", vec![fix(40.0, 300, None), fix(42.0, 0, None)]),
            "bike's mean of 35 km/h",
        ),
        // A walk at 655 km/h whose every fix claims 1e9 m of error.
        (
            json!({"tripId": "w1", "userId": 1, "mode": "walk", "trajectory": walk_fixes}),
            "trajectory[0].accuracy",
        ),
    ] {
        let (code, v) = post(&server, "/jobs", &user, enqueue(payload)).await;
        assert_eq!(code, 400, "{v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{v}");
    }
    let counts = site.app.queue("trips").unwrap().counts().await.unwrap();
    assert_eq!((counts.waiting, counts.delayed), (0, 0), "{counts:?}");
    assert_eq!(footprint(&site).await, before);
    drop(server);
    site.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_trips_are_refused_and_a_day_earns_at_most_its_cap() {
    let sets = ["trips.max_points_per_day=30"];
    let site = Site::new(&sets).await;
    let email = site.user_with_password(1).await;
    let server = site.server(&sets);
    let user = token_of(&server, &email).await;
    let queue = site.app.queue("trips").unwrap();
    let mut worker = common::trip_worker(&site.sandbox.overrides, 2, "2s", &sets);
    let done = async |n: u64| {
        until_some(Duration::from_secs(60), || {
            let queue = queue.clone();
            async move {
                let c = queue.counts().await.unwrap();
                (c.completed + c.dead == n).then_some(c)
            }
        })
        .await
    };

    // Two 22-point bus trips of the same day, one after the other: the second earns 8.
    let first = trip("first", 1, 2, 1);
    let (code, v) = post(&server, "/jobs", &user, enqueue(first.clone())).await;
    assert_eq!(code, 201, "{v}");
    done(1).await;
    let (code, v) = post(&server, "/jobs", &user, enqueue(trip("second", 1, 2, 1))).await;
    assert_eq!(code, 201, "{v}");
    let second = v["id"].as_str().unwrap().to_string();
    done(2).await;
    let (_, job) = get(&server, &format!("/jobs/{second}?queue=trips"), &user).await;
    assert_eq!(
        (&job["result"]["points"], &job["result"]["pointsCapped"]),
        (&json!(8), &json!(14)),
        "{job}"
    );
    let (_, points) = get(&server, "/users/1/points", &user).await;
    assert_eq!(points["earned"], 30, "{points}");

    // A trip inside the first one's time: dead, naming the rule and the other trip; nothing
    // of it is written.
    let before = footprint(&site).await;
    let mut overlapping = first.clone();
    overlapping["tripId"] = json!("inside");
    let (code, v) = post(&server, "/jobs", &user, enqueue(overlapping)).await;
    assert_eq!(code, 201, "{v}");
    let inside = v["id"].as_str().unwrap().to_string();
    let c = done(3).await;
    assert_eq!(c.dead, 1, "{c:?}");
    let (_, job) = get(&server, &format!("/jobs/{inside}?queue=trips"), &user).await;
    let error = job["last_error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("overlap:") && error.contains("trip first"),
        "{job}"
    );
    assert_eq!(footprint(&site).await, before);
    worker.kill().unwrap();
    worker.wait().unwrap();
    drop(server);
    site.done().await;
}

// ---- A trip id belongs to its first claimant ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_can_squat_another_users_trip_id() {
    let site = Site::new(&[]).await;
    let (e1, e2) = (
        site.user_with_password(1).await,
        site.user_with_password(2).await,
    );
    let server = site.server(&[]);
    let (owner, squatter) = (token_of(&server, &e1).await, token_of(&server, &e2).await);
    let trips_key = site.key(&[Scope::TripsWrite]).await;

    // The squatter queues a delayed job under the trip id the owner is about to use.
    let mut squat = enqueue(trip("t-42", 2, 2, 1));
    squat["delay_ms"] = json!(3_600_000);
    let (code, v) = post(&server, "/jobs", &squatter, squat).await;
    assert_eq!(code, 201, "{v}");
    let squat_id = v["id"].clone();
    // The owner is refused without being told who holds it, and is not folded into the
    // squatter's job; a service key acting for the owner is refused the same way.
    for credential in [&owner, &trips_key] {
        let (code, v) = post(&server, "/jobs", credential, enqueue(trip("t-42", 1, 2, 1))).await;
        assert_eq!(code, 409, "{v}");
        assert_eq!(v["error"], "tripId: `t-42` is taken", "{v}");
        assert_ne!(v["id"], squat_id);
    }
    // The other way round: a trip the owner claimed first stays theirs, whatever becomes of
    // their job (here: still waiting; the claim also covers done and dead jobs).
    let (code, _) = post(&server, "/jobs", &owner, enqueue(trip("mine", 1, 2, 1))).await;
    assert_eq!(code, 201);
    let (code, _) = post(&server, "/jobs", &squatter, enqueue(trip("mine", 2, 2, 1))).await;
    assert_eq!(code, 409);
    // The owner resubmitting their own trip is the same job (deduplicated, not refused).
    let (code, _) = post(&server, "/jobs", &owner, enqueue(trip("mine", 1, 2, 1))).await;
    assert_eq!(code, 201);
    let counts = site.app.queue("trips").unwrap().counts().await.unwrap();
    assert_eq!((counts.waiting, counts.delayed), (1, 1), "{counts:?}");
    drop(server);
    site.done().await;
}

// ---- No user sees another user's whereabouts ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_queries_show_a_user_their_own_trips_and_others_only_as_crowds() {
    let site = Site::new(&[]).await;
    common::seed_users(&site.sandbox.hub, 8).await;
    let email = site.user_with_password(1).await;
    let server = site.server(&[]);
    let user = token_of(&server, &email).await;
    let trips = site.app.trips();
    // User 2 alone starts a trip at one corner; users 3-7 (five) at another, 3 km away.
    let lone = trip_at("lone", 2, -16.9300, 145.7700);
    trips.complete("j-lone", &lone).await.unwrap();
    for u in 3..=7 {
        let t = trip_at(&format!("crowd-{u}"), u, -16.9000, 145.7500);
        trips.complete(&format!("j-{u}"), &t).await.unwrap();
    }
    let own = trip_at("own", 1, -16.9301, 145.7701);
    trips.complete("j-own", &own).await.unwrap();

    // Three queries round the lone trip's start, the way one pins a point: no id, no time,
    // no distance of it; the user's own trip is there.
    for (lat, lng, r) in [
        (-16.93, 145.77, 0.2),
        (-16.931, 145.771, 0.3),
        (-16.929, 145.769, 0.25),
    ] {
        let path = format!("/trips/near?lat={lat}&lng={lng}&radius_km={r}");
        let (code, v) = get(&server, &path, &user).await;
        assert_eq!(code, 200, "{v}");
        assert!(!v.to_string().contains("lone"), "{v}");
        assert_eq!(v["own"].as_array().unwrap().len(), 1, "{v}");
        assert!(
            v["cells"].as_array().unwrap().is_empty(),
            "one user is no crowd: {v}"
        );
    }
    // The crowd shows as one cell counting five users, and nothing finer.
    let (_, v) = get(
        &server,
        "/trips/near?lat=-16.9&lng=145.75&radius_km=2",
        &user,
    )
    .await;
    let cells = v["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 1, "{v}");
    assert_eq!(
        (&cells[0]["count"], &cells[0]["users"]),
        (&json!(5), &json!(5))
    );
    assert!(!v.to_string().contains("crowd-"), "{v}");
    // Users near: the user's own position, and crowds only.
    let (_, v) = get(
        &server,
        "/users/near?lat=-16.93&lng=145.77&radius_km=1",
        &user,
    )
    .await;
    assert_eq!(v["own"]["userId"], 1, "{v}");
    assert!(v["cells"].as_array().unwrap().is_empty(), "{v}");
    let (_, v) = get(
        &server,
        "/users/near?lat=-16.9&lng=145.75&radius_km=1",
        &user,
    )
    .await;
    assert_eq!(v["cells"][0]["users"], 5, "{v}");
    // Whoever reads users sees them.
    let reader = site.key(&[Scope::UsersRead]).await;
    let (_, v) = get(
        &server,
        "/trips/near?lat=-16.93&lng=145.77&radius_km=0.2",
        &reader,
    )
    .await;
    assert!(v.to_string().contains("lone"), "{v}");
    drop(server);
    site.done().await;
}

/// A bike trip of user `user` starting at (`lat`, `lng`): ten minutes north.
fn trip_at(id: &str, user: u64, lat: f64, lng: f64) -> tsp_mobility::trip::TripCompletion {
    let end = tsp_testkit::trip_end(3_600_000, 600_000);
    tsp_mobility::trip::TripCompletion {
        trip_id: id.into(),
        user_id: user,
        mode: "bike".into(),
        trajectory: (0..=10)
            .map(|k| tsp_mobility::trip::TrackPoint {
                lat: lat + 0.0003 * f64::from(k),
                lng,
                timestamp: end - i64::from(10 - k) * 60_000,
                accuracy: Some(5.0),
                speed: None,
            })
            .collect(),
        cost: None,
    }
}

// ---- Throttles that hold under concurrency ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_check_at_most_the_limit_whatever_the_spelling() {
    let site = Site::new(&[]).await;
    let email = site.user_with_password(1).await;
    let server = site.server(&[]);
    // Spellings the database takes for the same account.
    let upper = email.to_uppercase();
    let spaced = format!("{email}  ");
    let guesses = (0..40).map(|i| {
        let server = &server;
        let address = [&email, &upper, &spaced][i % 3].clone();
        async move {
            login(
                server,
                json!({"email": address, "password": format!("wrong guess {i:04}")}),
            )
            .await
            .0
        }
    });
    let codes = futures::future::join_all(guesses).await;
    let checked = codes.iter().filter(|c| **c == 401).count();
    let throttled = codes.iter().filter(|c| **c == 429).count();
    assert_eq!((checked, throttled), (5, 35), "{codes:?}");
    // The right password is throttled too until the window passes.
    let (code, _) = login(&server, json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(code, 429);
    drop(server);
    site.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_login_brings_no_fresh_request_budget() {
    let sets = ["limits.read.per_second=1", "limits.read.burst=3"];
    let site = Site::new(&sets).await;
    let email = site.user_with_password(1).await;
    let server = site.server(&sets);
    // Three sessions of one user (logins are counted per address, not in this limit), then
    // each spent twice at once: one budget between them, not three.
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(token_of(&server, &email).await);
    }
    let spends = tokens.iter().flat_map(|t| [t, t]).map(|t| {
        let server = &server;
        async move { get(server, "/users/1/points", t).await.0 }
    });
    let codes = futures::future::join_all(spends).await;
    let ok = codes.iter().filter(|c| **c == 200).count();
    assert!(
        ok <= 4,
        "three of burst and at most one more in a second: {codes:?}"
    );
    assert!(codes.contains(&429), "{codes:?}");
    drop(server);
    site.done().await;
}

// ---- Scopes cover job types; request hygiene ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_write_key_cannot_queue_what_only_operators_may() {
    let site = Site::new(&[]).await;
    let server = site.server(&[]);
    let jobs_key = site.key(&[Scope::JobsWrite]).await;
    let admin = site.key(&[Scope::Admin]).await;
    let queue = site.app.queue("default").unwrap();
    let mut accepted = 0;
    for (job_type, payload) in [
        ("backup.create", json!({})),
        ("gtfs.import", json!({"feed": "main"})),
        ("analytics.rollup", json!({})),
    ] {
        let body = json!({"type": job_type, "payload": payload});
        let (code, v) = post(&server, "/jobs", &jobs_key, body.clone()).await;
        assert_eq!(code, 403, "{job_type}: {v}");
        assert_eq!(
            queue.counts().await.unwrap().waiting,
            accepted,
            "{job_type}"
        );
        let (code, v) = post(&server, "/jobs", &admin, body).await;
        assert_ne!(code, 403, "{job_type}: {v}");
        accepted += u64::from(code == 201);
    }
    drop(server);
    site.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_type_declares_the_scope_its_enqueue_needs() {
    let site = Site::new(&[]).await;
    let registry = site.app.registry();
    for job_type in registry.types() {
        let scope = registry.permission(&job_type).and_then(Scope::parse);
        assert!(
            scope.is_some(),
            "{job_type} declares no scope (Registry::require)"
        );
    }
    site.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_request_id_is_replaced_before_it_reaches_a_log_or_a_store() {
    let site = Site::new(&[]).await;
    let server = site.server(&[]);
    let forged = format!("x\" level=error msg=forged {}", "A".repeat(300));
    for id in [forged.as_str(), "tab\there", "ok-id"] {
        let r = reqwest::Client::new()
            .get(format!("{}/health/live", server.base))
            .header("x-request-id", id)
            .send()
            .await
            .unwrap();
        let echoed = r.headers()["x-request-id"].to_str().unwrap().to_string();
        if id == "ok-id" {
            assert_eq!(echoed, id);
        } else {
            assert_ne!(echoed, id);
            assert!(echoed.len() <= tsp_server::http::MAX_REQUEST_ID, "{echoed}");
        }
    }
    let log = server.stderr_so_far();
    assert!(!log.contains("forged"), "{log}");
    drop(server);
    site.done().await;
}
