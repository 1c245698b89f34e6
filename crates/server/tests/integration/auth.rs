//! The API's security against real stores, through `tsp-job serve` processes, each test in a
//! sandbox: logins and their throttle, sessions seen by a second process at once, the access
//! rule of every route (generated from the route table), ownership, abuse limits and request
//! hygiene, implausible trips, and the activity and request points each request leaves.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use crate::common;

use std::time::{Duration, Instant};

use crate::common::api::{call, get, login, token_of, trip};
use crate::common::{PASSWORD, Site};
use reqwest::Method;
use serde_json::{Value, json};
use tsp_mobility::auth::{NewUser, Scope};
use tsp_server::http::{Access, rules};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_answers_the_same_for_every_refusal_and_throttles_guessing() {
    let site = Site::new(&[]).await;
    let email = site.user_with_password(1).await;
    let server = site.server(&[]);

    let (code, v) = login(&server, json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(code, 200, "{v}");
    assert!(
        v["token"].as_str().unwrap().len() >= 43,
        "256-bit token: {v}"
    );
    assert!(v["expires_at"].as_i64().unwrap() > chrono::Utc::now().timestamp_millis());

    let wrong = json!({"email": email, "password": "not the password"});
    let unknown = json!({"email": "nobody@example.test", "password": PASSWORD});
    let without = NewUser {
        email: "nopassword@example.test".into(),
        name: "No Password".into(),
    };
    site.app.auth().create_user(&without).await.unwrap();
    let no_password = json!({"email": without.email, "password": PASSWORD});
    let (a, b, c) = (
        login(&server, wrong.clone()).await,
        login(&server, unknown.clone()).await,
        login(&server, no_password).await,
    );
    assert_eq!(a, (401, json!({"error": "invalid credentials"})));
    assert_eq!(b, a, "an unknown user gets the same answer");
    assert_eq!(c, a, "a user without a password gets the same answer");

    // The same work: an unknown name checks a decoy hash (argon2id at the configured cost).
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let email2 = site.user_with_password(2).await;
    let (mut known, mut unknown_t) = (Vec::new(), Vec::new());
    for i in 0..3 {
        let t = Instant::now();
        let nobody = json!({"email": format!("nobody{i}@example.test"), "password": "x"});
        assert_eq!(login(&server, nobody).await.0, 401);
        unknown_t.push(t.elapsed());
        let t = Instant::now();
        assert_eq!(
            login(&server, json!({"email": email2, "password": "x"}))
                .await
                .0,
            401
        );
        known.push(t.elapsed());
    }
    let (u, k) = (median(unknown_t), median(known));
    assert!(
        u * 2 > k && k * 2 > u,
        "unknown name {u:?}, wrong password {k:?}"
    );

    // Five failures for the account (the wrong one above counts): the next try is throttled,
    // even with the right password, and says when to come back.
    for _ in 0..4 {
        assert_eq!(login(&server, wrong.clone()).await.0, 401);
    }
    let (code, headers, _) = call(
        &server,
        Method::POST,
        "/auth/login",
        None,
        Some(json!({"email": email, "password": PASSWORD})),
    )
    .await;
    assert_eq!(code, 429);
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // Another account is not held back by this one's failures.
    token_of(&server, &email2).await;
    drop(server);
    site.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revoke_and_suspension_reach_a_second_process_at_once() {
    let site = Site::new(&[]).await;
    let email = site.user_with_password(1).await;
    let (a, b) = (site.server(&[]), site.server(&[]));

    let first = token_of(&a, &email).await;
    let second = token_of(&a, &email).await;
    // Both processes now hold both sessions in their caches.
    for server in [&a, &b] {
        for token in [&first, &second] {
            assert_eq!(get(server, "/users/1/points", token).await.0, 200);
        }
    }
    let (code, _, _) = call(
        &b,
        Method::POST,
        "/auth/logout",
        Some(&first),
        Some(json!({})),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(get(&a, "/users/1/points", &first).await.0, 401);
    assert_eq!(get(&a, "/users/1/points", &second).await.0, 200);

    // The user ends all their sessions; every process refuses them from then on.
    let (code, _, v) = call(&a, Method::DELETE, "/users/1/sessions", Some(&second), None).await;
    assert_eq!((code, &v["ended"]), (200, &json!(1)), "{v}");
    assert_eq!(get(&b, "/users/1/points", &second).await.0, 401);

    // Another user may not end them; an operator may.
    let email2 = site.user_with_password(2).await;
    let other = token_of(&a, &email2).await;
    let (code, _, _) = call(&a, Method::DELETE, "/users/1/sessions", Some(&other), None).await;
    assert_eq!(code, 403);

    // A suspended user's sessions stop at once in both processes, and logins are refused.
    let third = token_of(&b, &email).await;
    assert_eq!(get(&a, "/users/1/stats", &third).await.0, 200);
    assert_eq!(get(&b, "/users/1/stats", &third).await.0, 200);
    site.app.auth().set_user_status(1, false).await.unwrap();
    assert_eq!(get(&a, "/users/1/stats", &third).await.0, 401);
    assert_eq!(get(&b, "/users/1/stats", &third).await.0, 401);
    let (code, _) = login(&a, json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(code, 401);
    // A suspension made in MySQL directly (not through the command) is seen once the cached
    // status is invalidated, which is what the command does.
    site.app.auth().set_user_status(1, true).await.unwrap();
    let fourth = token_of(&a, &email).await;
    assert_eq!(get(&b, "/users/1/stats", &fourth).await.0, 200);
    drop((a, b));
    site.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_slide_up_to_their_cap_and_expire_when_idle() {
    let sets = ["auth.session_ttl=1500ms", "auth.session_max=4s"];
    let site = Site::new(&sets).await;
    let email = site.user_with_password(1).await;
    let server = site.server(&sets);

    // Left alone, a session is gone after its TTL. Watched in Redis (a request would renew it).
    let idle = token_of(&server, &email).await;
    let born = Instant::now();
    let redis = site.sandbox.hub.redis("cache").unwrap();
    let key = {
        use sha2::Digest;
        let hash = hex::encode(sha2::Sha256::digest(idle.as_bytes()));
        format!("{}{{auth}}:s:{hash}", redis.key_prefix())
    };
    let conn = redis.conn().await.unwrap();
    tsp_testkit::eventually("the idle session gone", Duration::from_secs(4), || {
        let (mut conn, key) = (conn.clone(), key.clone());
        async move {
            let exists: u32 = redis::cmd("EXISTS")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            if exists == 0 {
                Ok(())
            } else {
                Err(born.elapsed())
            }
        }
    })
    .await;
    let gone = born.elapsed();
    assert!(
        gone >= Duration::from_millis(1400),
        "expired after {gone:?}, TTL 1.5 s"
    );
    assert_eq!(get(&server, "/users/1/points", &idle).await.0, 401);

    // Used every 400 ms it lives past the TTL, but not past the cap.
    let busy = token_of(&server, &email).await;
    let born = Instant::now();
    let mut last_ok = Duration::ZERO;
    while born.elapsed() < Duration::from_secs(6) {
        if get(&server, "/users/1/points", &busy).await.0 != 200 {
            break;
        }
        last_ok = born.elapsed();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(
        last_ok > Duration::from_millis(2500),
        "renewed past the TTL: {last_ok:?}"
    );
    assert!(
        last_ok < Duration::from_millis(4100),
        "never past the cap: {last_ok:?}"
    );
    drop(server);
    site.done().await;
}

/// A concrete path for a route template.
fn concrete(path: &str) -> String {
    path.replace("{id}", "1").replace("{name}", "default")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_missing_credentials_and_lacking_rights() {
    let site = Site::new(&[]).await;
    let email = site.user_with_password(1).await;
    let server = site.server(&[]);
    let reader = site.key(&[Scope::UsersRead]).await;
    let viewer_name = site.operator(tsp_mobility::auth::Role::Viewer).await;

    let table = rules();
    assert!(table.len() >= 18, "{table:?}");
    for rule in &table {
        let method = Method::from_bytes(rule.method.as_bytes()).unwrap();
        let path = concrete(&rule.path);
        let body = (method == Method::POST).then(|| json!({}));
        let (anon, _, v) = call(&server, method.clone(), &path, None, body.clone()).await;
        let (forged, _, _) = call(
            &server,
            method.clone(),
            &path,
            Some("tspk_forged"),
            body.clone(),
        )
        .await;
        if rule.access == Access::Public {
            // Login answers 401 for the empty body it was given: wrong credentials, not none.
            if rule.path != "/auth/login" {
                assert_ne!(anon, 401, "{rule:?} is public: {v}");
            }
            continue;
        }
        assert_eq!(anon, 401, "{rule:?} without a credential: {v}");
        assert_eq!(forged, 401, "{rule:?} with a forged key");
        // Fresh sessions each time: logout and revoke-all end the ones they are given.
        let user = token_of(&server, &email).await;
        let viewer = login(
            &server,
            json!({"username": viewer_name, "password": PASSWORD}),
        )
        .await;
        let viewer = viewer.1["token"].as_str().unwrap().to_string();
        let (as_user, _, v) = call(&server, method.clone(), &path, Some(&user), body.clone()).await;
        let (as_reader, _, _) =
            call(&server, method.clone(), &path, Some(&reader), body.clone()).await;
        let (as_viewer, _, _) = call(&server, method, &path, Some(&viewer), body).await;
        match rule.access {
            Access::Operator | Access::Scraper => {
                assert_eq!(as_user, 403, "{rule:?} as a user: {v}");
                assert_eq!(as_reader, 403, "{rule:?} with users:read");
                assert_eq!(as_viewer, 403, "{rule:?} as a viewer");
            }
            Access::Scope(scope) => {
                assert_eq!(as_user, 403, "{rule:?} as a user: {v}");
                assert_eq!(as_reader == 403, scope != Scope::UsersRead, "{rule:?}");
                assert_ne!(as_viewer, 403, "{rule:?}: a viewer reads");
            }
            Access::Authenticated => {
                assert_ne!(as_user, 401, "{rule:?} as a user");
                assert_ne!(as_viewer, 401, "{rule:?} as a viewer");
            }
            Access::Public => unreachable!(),
        }
    }
    drop(server);
    site.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_act_on_their_own_data_only() {
    let site = Site::new(&[]).await;
    let email = site.user_with_password(1).await;
    let server = site.server(&[]);
    let user = token_of(&server, &email).await;
    let reader = site.key(&[Scope::UsersRead]).await;
    let trips_key = site.key(&[Scope::TripsWrite]).await;
    let jobs_key = site.key(&[Scope::JobsWrite]).await;

    assert_eq!(get(&server, "/users/1/stats", &user).await.0, 200);
    assert_eq!(get(&server, "/users/2/stats", &user).await.0, 403);
    assert_eq!(get(&server, "/users/2/points", &user).await.0, 403);
    assert_eq!(get(&server, "/users/2/points", &reader).await.0, 200);

    let post = |credential: String, body: Value| {
        let server = &server;
        async move {
            let (code, _, v) =
                call(server, Method::POST, "/jobs", Some(&credential), Some(body)).await;
            (code, v)
        }
    };
    let own = json!({"type": "trip.complete", "queue": "trips", "payload": trip("own", 1, 2, 1)});
    let (code, v) = post(user.clone(), own).await;
    assert_eq!(code, 201, "{v}");
    let job = v["id"].as_str().unwrap().to_string();
    let other = json!({"type": "trip.complete", "queue": "trips", "payload": trip("x", 2, 2, 1)});
    assert_eq!(post(user.clone(), other.clone()).await.0, 403);
    assert_eq!(
        post(jobs_key.clone(), other.clone()).await.0,
        403,
        "jobs:write is not trips:write"
    );
    assert_eq!(post(trips_key.clone(), other).await.0, 201);
    let noop = json!({"type": "builtin.noop"});
    assert_eq!(post(user.clone(), noop.clone()).await.0, 403);
    assert_eq!(post(jobs_key.clone(), noop).await.0, 201);

    // A caller cannot pick a trip's dedup key, nor reach the top priorities or new queues.
    let (code, v) = post(
        trips_key.clone(),
        json!({"type": "trip.complete", "queue": "trips", "dedup_key": "mine",
               "payload": trip("d", 1, 2, 1)}),
    )
    .await;
    assert_eq!(code, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().starts_with("dedup_key:"),
        "{v}"
    );
    let (code, v) = post(
        jobs_key.clone(),
        json!({"type": "builtin.noop", "priority": 950}),
    )
    .await;
    assert_eq!(code, 400, "{v}");
    let (code, v) = post(
        jobs_key.clone(),
        json!({"type": "builtin.noop", "queue": "fresh-q"}),
    )
    .await;
    assert_eq!(
        (code, v["error"].as_str().unwrap()),
        (400, "queue: no queue named `fresh-q`")
    );

    // A user reads their own job, not another's (existing or not: the same 403).
    let (code, v) = get(&server, &format!("/jobs/{job}?queue=trips"), &user).await;
    assert_eq!((code, &v["payload"]["userId"]), (200, &json!(1)), "{v}");
    let email2 = site.user_with_password(2).await;
    let user2 = token_of(&server, &email2).await;
    assert_eq!(
        get(&server, &format!("/jobs/{job}?queue=trips"), &user2)
            .await
            .0,
        403
    );
    assert_eq!(
        get(
            &server,
            "/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV?queue=trips",
            &user2
        )
        .await
        .0,
        403
    );

    // Near: a user gets cells (docs/security.md#whereabouts; tests/abuse.rs tries them as an
    // attacker would), a reader of users the users.
    let (code, v) = get(
        &server,
        "/users/near?lat=-16.9&lng=145.75&radius_km=5",
        &user,
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert!(
        v["cells"].is_array() && v.to_string().find("userId").is_none(),
        "{v}"
    );
    let (code, v) = get(
        &server,
        "/users/near?lat=-16.9&lng=145.75&radius_km=5",
        &reader,
    )
    .await;
    assert!(code == 200 && v.is_array(), "{v}");
    drop(server);
    site.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implausible_trips_are_refused_before_any_write() {
    let site = Site::new(&[]).await;
    let server = site.server(&[]);
    let key = site.key(&[Scope::TripsWrite]).await;
    let before = tsp_mobility::batch::footprint(site.app.trips())
        .await
        .unwrap();

    let end = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let teleport = json!({"tripId": "tp", "userId": 1, "mode": "car", "trajectory": [
        {"lat": -16.9, "lng": 145.75, "timestamp": end - 60_000},
        {"lat": 40.0, "lng": -3.7, "timestamp": end}]});
    // 1.1 km a minute on foot: 67 km/h.
    let fast_walk = json!({"tripId": "fw", "userId": 1, "mode": "walk", "trajectory": [
        {"lat": -16.9, "lng": 145.75, "timestamp": end - 60_000},
        {"lat": -16.89, "lng": 145.75, "timestamp": end}]});
    for (body, says) in [
        (teleport, "trajectory[1]: "),
        (fast_walk, "exceeds walk's 15 km/h"),
    ] {
        let job = json!({"type": "trip.complete", "queue": "trips", "payload": body});
        let (code, _, v) = call(&server, Method::POST, "/jobs", Some(&key), Some(job)).await;
        assert_eq!(code, 400, "{v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{v}");
    }
    let queue = site.app.queue("trips").unwrap();
    assert_eq!(queue.counts().await.unwrap().waiting, 0, "nothing queued");
    let after = tsp_mobility::batch::footprint(site.app.trips())
        .await
        .unwrap();
    assert_eq!(before, after, "no store holds anything more");
    drop(server);
    site.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_across_two_processes_and_bad_requests_are_refused() {
    let sets = [
        "limits.read.per_second=1",
        "limits.read.burst=4",
        "server.max_body=2048",
    ];
    let site = Site::new(&sets).await;
    let (a, b) = (site.server(&sets), site.server(&sets));
    let fresh = site.server(&sets);
    // A login that hashes for far longer than this server waits.
    let slow = site.server(&[
        "auth.argon2.memory_kib=65536",
        "auth.argon2.iterations=20",
        "server.request_timeout=100ms",
    ]);
    let key = site.key(&[Scope::UsersRead]).await;

    // A burst of 4 (and about one more per second) for one key, whichever process it asks.
    let mut passed = 0;
    let mut refused = None;
    let started = Instant::now();
    for i in 0..10 {
        let server = if i % 2 == 0 { &a } else { &b };
        let (code, headers, _) =
            call(server, Method::GET, "/users/1/points", Some(&key), None).await;
        match code {
            200 => passed += 1,
            429 => refused = Some(headers["retry-after"].to_str().unwrap().to_string()),
            other => panic!("{other}"),
        }
    }
    let allowed = 4 + started.elapsed().as_secs() as usize + 1;
    assert!(
        (4..=allowed).contains(&passed),
        "{passed} passed, at most {allowed}"
    );
    assert_eq!(refused.as_deref(), Some("1"));
    // The limit lives in Redis, not in a process: a third server, which has served nothing,
    // refuses the key too (as a restarted one would).
    let (code, headers, _) = call(&fresh, Method::GET, "/users/1/points", Some(&key), None).await;
    assert_eq!(code, 429, "a new process still sees the spent burst");
    assert!(headers.contains_key("retry-after"));
    drop(fresh);

    // Too large: 413. Not JSON: 415. Too slow (a deliberately costly password hash): 503.
    let admin = site.key(&[Scope::Admin, Scope::JobsWrite]).await;
    let big = json!({"type": "builtin.noop", "payload": {"pad": "x".repeat(4096)}});
    let (code, _, _) = call(&a, Method::POST, "/jobs", Some(&admin), Some(big)).await;
    assert_eq!(code, 413);
    let r = reqwest::Client::new()
        .post(format!("{}/jobs", a.base))
        .bearer_auth(&admin)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("type=builtin.noop")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let (code, _, v) = call(
        &slow,
        Method::POST,
        "/auth/login",
        None,
        Some(json!({"email": "user1@x.test", "password": "x"})),
    )
    .await;
    assert_eq!(
        (code, v["error"].as_str()),
        (503, Some("the request timed out"))
    );
    drop((a, b, slow));
    site.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_leaves_one_activity_event_and_one_point_and_no_secret_in_the_log() {
    let site = Site::new(&[]).await;
    let email = site.user_with_password(1).await;
    let mut server = site.server(&[]);
    let token = token_of(&server, &email).await;
    let key = site.key(&[Scope::UsersRead]).await;

    let mut ids = Vec::new();
    for (i, credential) in [&token, &key, &token].iter().enumerate() {
        let id = format!("req-{}-{i}", rand::random::<u32>());
        let r = reqwest::Client::new()
            .get(format!("{}/users/1/points", server.base))
            .bearer_auth(credential)
            .header("x-request-id", &id)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(
            r.headers()["x-request-id"],
            id.as_str(),
            "the id comes back"
        );
        ids.push(id);
    }
    // Written off the request path: wait (bounded) until they are there, then count them.
    let coll = site
        .sandbox
        .hub
        .mongo("dataset")
        .unwrap()
        .database()
        .collection::<mongodb::bson::Document>("request_activity");
    let influx = site.sandbox.hub.influx("uis").unwrap();
    let db = influx.settings().database.clone();
    // One event and one point per request, never more.
    let counts = || async {
        let mut events = Vec::new();
        let mut points = Vec::new();
        for id in &ids {
            events.push(
                coll.count_documents(mongodb::bson::doc! {"requestId": id})
                    .await
                    .unwrap(),
            );
            let q =
                format!("SELECT count(duration_ms) FROM http_request WHERE request_id = '{id}'");
            let r = influx.query_v1(&db, &q).await.unwrap();
            points.push(
                r.pointer("/results/0/series/0/values/0/1")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
            );
        }
        assert!(
            events.iter().chain(&points).all(|n| *n <= 1),
            "events {events:?}, points {points:?}"
        );
        if events.iter().all(|n| *n == 1) && points.iter().all(|n| *n == 1) {
            Ok(())
        } else {
            Err((events, points))
        }
    };
    tsp_testkit::eventually(
        "an event and a point per request",
        Duration::from_secs(15),
        counts,
    )
    .await;
    let e = coll
        .find_one(mongodb::bson::doc! {"requestId": &ids[1]})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.get_str("route").unwrap(), "/users/{id}/points");
    assert!(e.get_str("subject").unwrap().starts_with("key:"));
    server.terminate();
    let log = server.stderr_so_far();
    assert!(
        log.contains("DEBUG") || log.contains("debug"),
        "the log ran at debug: {log}"
    );
    for id in &ids {
        assert!(log.contains(id.as_str()), "request id {id} in the log");
    }
    for secret in [PASSWORD, token.as_str(), key.as_str()] {
        assert!(!log.contains(secret), "a secret in the log");
    }
    site.done().await;
}

/// Waits (bounded: 30 s) until the queue's counts satisfy `holds`.
async fn until(what: &str, queue: &tsp_queue::Queue, holds: fn(&tsp_queue::QueueCounts) -> bool) {
    tsp_testkit::eventually(what, Duration::from_secs(30), || async {
        let c = queue.counts().await.unwrap();
        if holds(&c) { Ok(()) } else { Err(c) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_a_compensated_trip_over_the_api_awards_it_once() {
    let site = Site::new(&[]).await;
    let email = site.user_with_password(1).await;
    let server = site.server(&[]);
    let user = token_of(&server, &email).await;
    let admin = site.key(&[Scope::Admin]).await;
    let queue = site.app.queue("trips").unwrap();

    // Every attempt fails after the points step: one attempt, then dead and compensated.
    let mut failing = common::trip_worker(
        &site.sandbox.overrides,
        2,
        "2s",
        &[
            "queue.max_attempts=1",
            "trips.fault.mode=error",
            "trips.fault.rate=1000",
            "trips.fault.step=points",
        ],
    );
    let job = json!({"type": "trip.complete", "queue": "trips", "payload": trip("r-1", 1, 2, 1)});
    let (code, _, v) = call(
        &server,
        Method::POST,
        "/jobs",
        Some(&user),
        Some(job.clone()),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    until("the job dead and compensated", &queue, |c| {
        c.dead == 1 && c.dead_unhandled == 0
    })
    .await;
    failing.kill().unwrap();
    failing.wait().unwrap();
    let points = async || get(&server, "/users/1/points", &user).await.1["earned"].as_i64();
    assert_eq!(
        points().await,
        Some(0),
        "the compensation took the points back"
    );

    // A user may not retry; an operator may, and the trip is awarded once.
    let retry = format!("/jobs/{id}/retry?queue=trips");
    let (code, _, _) = call(&server, Method::POST, &retry, Some(&user), Some(json!({}))).await;
    assert_eq!(code, 403);
    let (code, _, v) = call(&server, Method::POST, &retry, Some(&admin), Some(json!({}))).await;
    assert_eq!(code, 200, "{v}");
    let mut working = common::trip_worker(&site.sandbox.overrides, 2, "2s", &[]);
    until("the retried job completed", &queue, |c| c.completed == 1).await;
    // bus, 10 points per km: 2.224 km → 22.
    assert_eq!(points().await, Some(22));
    // Neither a second retry nor the same trip posted again awards it twice.
    let (code, _, _) = call(&server, Method::POST, &retry, Some(&admin), Some(json!({}))).await;
    assert_eq!(code, 409, "a completed job is not dead-lettered");
    let (code, _, _) = call(&server, Method::POST, "/jobs", Some(&user), Some(job)).await;
    assert_eq!(code, 201);
    until("the resubmitted job completed", &queue, |c| {
        c.completed == 2
    })
    .await;
    assert_eq!(points().await, Some(22));
    working.kill().unwrap();
    working.wait().unwrap();
    drop(server);
    site.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_shows_its_detail_to_operators_only() {
    let site = Site::new(&[]).await;
    let email = site.user_with_password(1).await;
    let port = common::closed_port();
    let down = format!("mongo.dataset.port={port}");
    let server = site.server(&[&down, "stores.mongo.dataset.required=false"]);
    let user = token_of(&server, &email).await;
    let admin = site.key(&[Scope::Admin]).await;
    let near = "/trips/near?lat=-16.9&lng=145.75&radius_km=5";
    let (code, v) = get(&server, near, &user).await;
    assert_eq!(
        (code, v),
        (503, json!({"error": "a store is unavailable; retry later"}))
    );
    let (code, v) = get(&server, near, &admin).await;
    let detail = v["error"].as_str().unwrap();
    assert_eq!(code, 503);
    assert!(detail.starts_with("mongo.dataset: "), "{detail}");
    drop(server);
    site.done().await;
}
