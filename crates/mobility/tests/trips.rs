//! The trip.complete job and the queries against the real servers, each test in a sandbox of
//! its own (fresh databases on every store).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use futures::StreamExt;
use mongodb::bson::{Document, doc};
use tsp_config::LoadOptions;
use tsp_hub::Level;
use tsp_mobility::analytics::DayRange;
use tsp_mobility::complete::{ACTIVITY_LOG, Compensation, TRAJECTORIES, Trips};
use tsp_mobility::queries::{Around, QueryError};
use tsp_mobility::sandbox::Sandbox;
use tsp_mobility::trip::{TrackPoint, TripCompletion};
use tsp_queue::JobError;

fn options(sets: &[&str]) -> LoadOptions {
    tsp_testkit::load_options(sets)
}

struct Env {
    sandbox: Sandbox,
    trips: Trips,
}

impl Env {
    async fn new(sets: &[&str]) -> Env {
        let sandbox = Sandbox::create(&options(sets)).await.unwrap();
        let hub = &sandbox.hub;
        tsp_mobility::seed::seed_users(&common::portal(hub), 5)
            .await
            .unwrap();
        let cache = common::cache(hub);
        assert!(cache.wait_l1(Duration::from_secs(5)).await);
        let trips = common::trips(hub, cache);
        Env { sandbox, trips }
    }

    async fn count(&self, instance: &str, sql: &str) -> i64 {
        let store = self.sandbox.hub.mysql(instance).unwrap();
        sqlx::query_scalar(sql)
            .fetch_one(store.pool())
            .await
            .unwrap()
    }

    async fn docs(&self, coll: &str, filter: Document) -> u64 {
        let db = self.sandbox.hub.mongo("dataset").unwrap().database();
        db.collection::<Document>(coll)
            .count_documents(filter)
            .await
            .unwrap()
    }

    /// Rows, earn transactions and trajectories of one trip.
    async fn footprint(&self, trip_id: &str) -> (i64, i64, u64, u64) {
        (
            self.count(
                "dataset",
                &format!("SELECT COUNT(*) FROM trips WHERE trip_id = '{trip_id}'"),
            )
            .await,
            self.count(
                "incentive",
                &format!(
                    "SELECT COUNT(*) FROM points_transactions WHERE reference_id = '{trip_id}' \
                     AND transaction_type = 'earn'"
                ),
            )
            .await,
            self.docs(TRAJECTORIES, doc! {"tripId": trip_id}).await,
            self.docs(ACTIVITY_LOG, doc! {"tripId": trip_id}).await,
        )
    }

    async fn done(self) {
        let failed = self.sandbox.remove().await;
        assert!(failed.is_empty(), "{failed:?}");
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// 0.01° of latitude on the mean sphere.
const HUNDREDTH_DEG_M: f64 = 1_111.950_802_335_329_4;

/// A trip due north from (lat, lng) in `steps` steps of 0.01° (1.1 km), one minute each (two
/// by bike, ten on foot: every trip is plausible), ending `ago_ms` before now.
fn north(
    id: &str,
    user: u64,
    mode: &str,
    lat: f64,
    lng: f64,
    steps: usize,
    ago_ms: i64,
) -> TripCompletion {
    let step_ms = match mode {
        "walk" => 600_000,
        "bike" => 120_000,
        _ => 60_000,
    };
    let end = tsp_testkit::trip_end(ago_ms, steps as i64 * step_ms);
    let start = end - steps as i64 * step_ms;
    TripCompletion {
        trip_id: id.into(),
        user_id: user,
        mode: mode.into(),
        trajectory: (0..=steps)
            .map(|k| TrackPoint {
                lat: lat + 0.01 * k as f64,
                lng,
                timestamp: start + k as i64 * step_ms,
                accuracy: Some(5.0),
                speed: None,
            })
            .collect(),
        cost: Some(2.5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trip_lands_in_every_store_once_however_often_it_runs() {
    let env = Env::new(&[]).await;
    let hub = env.sandbox.hub.clone();
    let mut events = {
        let client = hub.redis("cache").unwrap().client().unwrap();
        let mut ps = client.get_async_pubsub().await.unwrap();
        ps.subscribe(env.trips.events_channel()).await.unwrap();
        ps.into_on_message()
    };
    let trip = north("t-1", 1, "bike", -16.92, 145.77, 3, 3_600_000);
    let first = env.trips.complete("job-a", &trip).await.unwrap();
    assert!((first.distance_m - 3.0 * HUNDREDTH_DEG_M).abs() < 1e-6);
    assert_eq!(first.duration_s, 360.0);
    // bike: 15 points per km, rounded down: 3.336 km → 50.
    assert_eq!((first.points, first.already_completed), (50, false));
    let again = env.trips.complete("job-b", &trip).await.unwrap();
    assert!(again.already_completed);
    assert_eq!(env.footprint("t-1").await, (1, 1, 1, 1));

    let row: (String, String, String, f64) = sqlx::query_as(
        "SELECT CAST(status AS CHAR), job_id, mode, CAST(distance_m AS DOUBLE) FROM trips WHERE trip_id = 't-1'",
    )
    .fetch_one(hub.mysql("dataset").unwrap().pool())
    .await
    .unwrap();
    assert_eq!(
        (row.0.as_str(), row.1.as_str(), row.2.as_str()),
        ("completed", "job-a", "bike")
    );
    assert!((row.3 - 3335.85).abs() < 0.006);
    let points: i64 =
        sqlx::query_scalar("SELECT points FROM points_transactions WHERE reference_id = 't-1'")
            .fetch_one(hub.mysql("incentive").unwrap().pool())
            .await
            .unwrap();
    assert_eq!(points, 50);
    let traj = hub
        .mongo("dataset")
        .unwrap()
        .database()
        .collection::<Document>(TRAJECTORIES)
        .find_one(doc! {"tripId": "t-1"})
        .await
        .unwrap()
        .unwrap();
    let start = traj.get_document("startLocation").unwrap();
    assert_eq!(start.get_str("type").unwrap(), "Point");
    let coords: Vec<f64> = start
        .get_array("coordinates")
        .unwrap()
        .iter()
        .map(|c| c.as_f64().unwrap())
        .collect();
    assert_eq!(coords, vec![145.77, -16.92]);
    assert_eq!(traj.get_array("points").unwrap().len(), 4);

    // Both runs published trip.completed.
    for _ in 0..2 {
        let msg = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(msg.get_payload_bytes()).unwrap();
        assert_eq!(
            (v["event"].as_str(), v["tripId"].as_str()),
            (Some("trip.completed"), Some("t-1"))
        );
    }

    // The trip_bookings point, once (a rewrite replaces it).
    let writer = hub.influx("primary").unwrap().writer();
    writer.flush().await;
    let influx = hub.influx("primary").unwrap();
    let db = influx.settings().database.clone();
    let r = influx
        .query_v1(&db, "SELECT count(\"distance_m\") FROM trip_bookings")
        .await
        .unwrap();
    assert_eq!(
        r.pointer("/results/0/series/0/values/0/1"),
        Some(&serde_json::json!(1)),
        "{r}"
    );

    // Near: the user is at the trip's end.
    let near = env
        .trips
        .users_near(
            Around::new(Some(-16.89), Some(145.77), Some(1.0)).unwrap(),
            10,
        )
        .await
        .unwrap();
    assert_eq!(near.len(), 1);
    assert_eq!(near[0].user_id, 1);
    assert!(near[0].distance_m < 5.0, "{near:?}");
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_payload_writes_nothing() {
    let env = Env::new(&[]).await;
    let cases = [
        (
            north("t-2", 999, "bus", -16.9, 145.7, 2, 0),
            "userId: no user 999 in portal",
        ),
        (
            {
                let mut t = north("t-3", 1, "bus", -16.9, 145.7, 2, 0);
                t.trajectory[2].timestamp = t.trajectory[1].timestamp;
                t
            },
            "trajectory[2].timestamp: timestamps must strictly increase",
        ),
        (
            north("t-4", 1, "hovercraft", -16.9, 145.7, 2, 0),
            "mode: unknown mode `hovercraft`",
        ),
        (
            north("t-5", 1, "bus", 95.0, 145.7, 2, 0),
            "trajectory[0].lat: 95 is not a latitude",
        ),
        (
            north("t-6", 1, "bus", -16.9, 145.7, 0, 0),
            "trajectory: needs at least two points",
        ),
    ];
    for (trip, message) in cases {
        match env.trips.complete("job", &trip).await {
            Err(JobError::Abort(m)) => assert!(m.starts_with(message), "{m}"),
            other => panic!("{}: {other:?}", trip.trip_id),
        }
        assert_eq!(env.footprint(&trip.trip_id).await, (0, 0, 0, 0));
    }
    // A trip id that belongs to another user is refused too.
    env.trips
        .complete("job", &north("t-7", 1, "bus", -16.9, 145.7, 2, 0))
        .await
        .unwrap();
    match env
        .trips
        .complete("job", &north("t-7", 2, "bus", -16.9, 145.7, 2, 0))
        .await
    {
        Err(JobError::Abort(m)) => assert_eq!(m, "tripId: trip t-7 belongs to another user"),
        other => panic!("{other:?}"),
    }
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_after_each_step_leaves_a_state_that_a_retry_or_the_compensation_resolves() {
    for (i, step) in tsp_mobility::complete::STEPS.iter().enumerate() {
        let set = format!("trips.fault.step={step}");
        let env = Env::new(&["trips.fault.mode=error", "trips.fault.rate=1000", &set]).await;
        let id = format!("t-{i}");
        let trip = north(&id, 1, "bus", -16.9, 145.7, 2, 0);
        match env.trips.complete("job-1", &trip).await {
            Err(JobError::Retry(m)) => assert_eq!(m, format!("injected fault after step `{step}`")),
            other => panic!("{step}: {other:?}"),
        }
        let partial = env.footprint(&id).await;
        assert_eq!(partial.0, 1, "{step}: the trip row is the first step");
        // Compensation removes whatever the failed attempt wrote, and is idempotent.
        assert_eq!(
            env.trips.compensate("job-1", &trip).await.unwrap(),
            Compensation::Undone
        );
        assert_eq!(env.footprint(&id).await, (0, 0, 0, 0), "{step}");
        assert_eq!(
            env.trips.compensate("job-1", &trip).await.unwrap(),
            Compensation::NothingWritten
        );
        assert_eq!(env.footprint(&id).await, (0, 0, 0, 0), "{step}");
        // The same trip, retried on a healthy worker after a partial attempt, completes once.
        let healthy_hub = tsp_hub::Hub::connect(
            &tsp_config::load(&options(
                &env.sandbox
                    .overrides
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            ))
            .unwrap(),
        )
        .await
        .unwrap();
        let healthy_trips = common::trips(&healthy_hub, env.trips.cache().clone());
        let _ = env.trips.complete("job-2", &trip).await;
        let r = healthy_trips.complete("job-2", &trip).await.unwrap();
        assert_eq!(r.points, 22, "{step}");
        assert_eq!(env.footprint(&id).await, (1, 1, 1, 1), "{step}");
        // A completed trip is not undone by another dead job's compensation …
        assert_eq!(
            env.trips.compensate("job-3", &trip).await.unwrap(),
            Compensation::CompletedElsewhere
        );
        assert_eq!(env.footprint(&id).await, (1, 1, 1, 1), "{step}");
        // … but is by its own (the job died after completing, e.g. at publish).
        assert_eq!(
            env.trips.compensate("job-2", &trip).await.unwrap(),
            Compensation::Undone
        );
        assert_eq!(env.footprint(&id).await, (0, 0, 0, 0), "{step}");
        env.done().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_answer_with_exact_figures() {
    let env = Env::new(&[]).await;
    let t = &env.trips;
    let day = 86_400_000;
    // User 1: two bus trips (2 and 4 steps) in the last week, one walk 40 days ago.
    // User 2: one bike trip of 1 step an hour ago (active: the window is 24 h). User 3: none.
    let plan = [
        north("q-1", 1, "bus", -16.90, 145.70, 2, day),
        north("q-2", 1, "bus", -16.80, 145.80, 4, 2 * day),
        north("q-3", 1, "walk", -16.90, 145.70, 1, 40 * day),
        north("q-4", 2, "bike", -16.905, 145.70, 1, 3_600_000),
    ];
    for trip in &plan {
        t.complete(&format!("job-{}", trip.trip_id), trip)
            .await
            .unwrap();
    }
    let s = t.user_stats(1, 30).await.unwrap();
    assert_eq!(s.value.trips, 2);
    assert!(
        (s.value.total_distance_m - 6.0 * HUNDREDTH_DEG_M).abs() < 0.02,
        "{s:?}"
    );
    assert_eq!(s.value.average_duration_s, Some(180.0));
    assert_eq!(s.value.total_cost, 5.0);
    assert_eq!(s.cache, Level::Source);
    assert_eq!(t.user_stats(1, 30).await.unwrap().cache, Level::L1);
    let s = t.user_stats(1, 60).await.unwrap().value;
    assert_eq!((s.trips, s.average_duration_s), (3, Some(320.0)));
    let s = t.user_stats(3, 30).await.unwrap().value;
    assert_eq!(
        (
            s.trips,
            s.total_distance_m,
            s.average_duration_s,
            s.total_cost
        ),
        (0, 0.0, None, 0.0)
    );

    // Points: bus 10/km: 2.22 km → 22, 4.45 km → 44; walk 20/km: 1.11 km → 22.
    let p = t.user_points(1).await.unwrap();
    assert_eq!(
        (p.value.earned, p.value.redeemed, p.value.balance),
        (88, 0, 88)
    );
    sqlx::query(
        "INSERT INTO points_transactions (user_id, transaction_type, points, reference_type, reference_id) \
         VALUES (1, 'redeem', -30, 'reward', 'r-1')",
    )
    .execute(env.sandbox.hub.mysql("incentive").unwrap().pool())
    .await
    .unwrap();
    // Cached until invalidated: a write outside the job must invalidate too.
    assert_eq!(t.user_points(1).await.unwrap().value.balance, 88);
    t.cache().invalidate(&[Trips::user_tag(1)]).await.unwrap();
    let p = t.user_points(1).await.unwrap();
    assert_eq!(
        (p.value.earned, p.value.redeemed, p.value.balance, p.cache),
        (88, 30, 58, Level::Source)
    );

    // A completed trip invalidates the user's stats in every process.
    t.complete("job-q5", &north("q-5", 1, "bus", -16.70, 145.70, 1, day))
        .await
        .unwrap();
    assert_eq!(t.user_stats(1, 30).await.unwrap().value.trips, 3);

    // Unknown users: not found. Bad parameters: named.
    assert!(matches!(
        t.user_stats(99, 30).await,
        Err(QueryError::NotFound(_))
    ));
    assert!(matches!(
        t.user_points(99).await,
        Err(QueryError::NotFound(_))
    ));
    match t.user_stats(1, 0).await {
        Err(QueryError::Invalid { field, .. }) => assert_eq!(field, "days"),
        other => panic!("{other:?}"),
    }
    for (lat, lng, r, field) in [
        (None, Some(1.0), Some(1.0), "lat"),
        (Some(91.0), Some(1.0), Some(1.0), "lat"),
        (Some(1.0), Some(181.0), Some(1.0), "lng"),
        (Some(1.0), Some(1.0), Some(0.0), "radius_km"),
        (Some(1.0), Some(1.0), Some(500.0), "radius_km"),
    ] {
        match Around::new(lat, lng, r) {
            Err(QueryError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{other:?}"),
        }
    }

    // Trips starting within 1 km of (-16.90, 145.70): q-1 and q-3 (0 m), q-4 (556 m), nearest
    // first; q-2 starts 15 km away.
    let near = t
        .trips_near(
            Around::new(Some(-16.90), Some(145.70), Some(1.0)).unwrap(),
            50,
        )
        .await
        .unwrap();
    let ids: Vec<&str> = near.iter().map(|n| n.trip_id.as_str()).collect();
    assert_eq!(ids.len(), 3, "{near:?}");
    assert_eq!(ids[2], "q-4");
    assert!((near[2].distance_from_m - HUNDREDTH_DEG_M / 2.0).abs() < 0.01);
    let near = t
        .trips_near(
            Around::new(Some(-16.90), Some(145.70), Some(0.5)).unwrap(),
            50,
        )
        .await
        .unwrap();
    assert_eq!(near.len(), 2);

    // Users near the end of user 2's trip (-16.895, 145.70): user 2 (0 m); user 1 ended at
    // -16.69 (q-5, the latest), 22 km away.
    let users = t
        .users_near(
            Around::new(Some(-16.895), Some(145.70), Some(5.0)).unwrap(),
            10,
        )
        .await
        .unwrap();
    assert_eq!(users.iter().map(|u| u.user_id).collect::<Vec<_>>(), vec![2]);

    // Engagement comes from the daily rollups (q-5 started the day q-1 did).
    let mut days: Vec<chrono::NaiveDate> = plan.iter().map(start_day).collect();
    days.dedup();
    for d in days {
        t.rollup_day(d).await.unwrap();
    }
    // Engagement over 7 days: user 1 has q-1, q-2, q-5 (bus only); user 2 has q-4.
    let e = t.engagement(7, 100).await.unwrap();
    assert_eq!(e.cache, Level::Source);
    let rows: Vec<(u64, u64, u32)> = e
        .value
        .users
        .iter()
        .map(|r| (r.user_id, r.trips, r.mode_variety))
        .collect();
    assert_eq!(rows, vec![(1, 3, 1), (2, 1, 1)]);
    // MySQL keeps distances to the centimetre.
    assert!((e.value.users[0].distance_m - 7.0 * HUNDREDTH_DEG_M).abs() < 0.02);
    assert_eq!(e.value.users[0].duration_s, 420.0);
    let e = t.engagement(60, 100).await.unwrap();
    assert_eq!(
        (e.value.users[0].trips, e.value.users[0].mode_variety),
        (4, 2)
    );
    assert_eq!(t.engagement(60, 100).await.unwrap().cache, Level::L1);
    env.done().await;
}

/// The UTC day a trip started.
fn start_day(t: &TripCompletion) -> chrono::NaiveDate {
    chrono::DateTime::from_timestamp_millis(t.trajectory[0].timestamp)
        .unwrap()
        .date_naive()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_equal_the_source_and_a_rerun_replaces_them_exactly() {
    let env = Env::new(&[]).await;
    let t = &env.trips;
    // Trips ending at noon (UTC) `days` ago, less `minutes`: whole days apart, whatever the hour.
    let noon = |days: i64, minutes: i64| {
        let today = chrono::Utc::now().date_naive();
        let at = (today - chrono::Duration::days(days))
            .and_hms_opt(12, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        now_ms() - at + minutes * 60_000
    };
    let plan = [
        north("r-1", 1, "bus", -16.90, 145.70, 2, noon(2, 0)),
        north("r-2", 2, "bus", -16.80, 145.70, 3, noon(2, 60)),
        north("r-3", 1, "bike", -16.90, 145.70, 1, noon(2, 120)),
        north("r-4", 3, "walk", -16.90, 145.70, 1, noon(3, 0)),
        north("r-5", 2, "bus", -16.70, 145.70, 1, noon(2, 30)),
        // A user in another bucket of `analytics_user_daily` (USERS_PER_BUCKET).
        north("r-6", 2001, "bike", -16.90, 145.70, 2, noon(2, 90)),
    ];
    sqlx::query(
        "INSERT INTO users (id, email, display_name, status) \
         VALUES (2001, 'rider2001@example.test', 'Rider 2001', 'active')",
    )
    .execute(env.sandbox.hub.mysql("portal").unwrap().pool())
    .await
    .unwrap();
    for trip in &plan {
        t.complete(&format!("job-{}", trip.trip_id), trip)
            .await
            .unwrap();
    }
    // r-5 is undone: neither its trip nor its points may count.
    t.compensate("job-r-5", &plan[4]).await.unwrap();
    // r-2 looks like a row from before trips carried their points: the rollup fills it from
    // the ledger.
    sqlx::query("UPDATE trips SET points = NULL WHERE trip_id = 'r-2'")
        .execute(env.sandbox.hub.mysql("dataset").unwrap().pool())
        .await
        .unwrap();
    let mut days: Vec<chrono::NaiveDate> = plan.iter().map(start_day).collect();
    days.sort();
    days.dedup();

    for d in &days {
        let report = t.rollup_day(*d).await.unwrap();
        let range = DayRange { from: *d, to: *d };
        let (rows, _) = t.daily(range, None).await.unwrap();
        // The same figures straight from MySQL.
        let from = d.and_hms_opt(0, 0, 0).unwrap();
        let to = from + chrono::Duration::days(1);
        let dataset = env.sandbox.hub.mysql("dataset").unwrap();
        let expected: Vec<(String, i64, f64, i64, i64)> = sqlx::query_as(
            "SELECT mode, COUNT(*), CAST(SUM(distance_m) AS DOUBLE), CAST(SUM(duration_s) AS SIGNED), \
             COUNT(DISTINCT user_id) FROM trips WHERE status = 'completed' \
             AND started_at >= ? AND started_at < ? GROUP BY mode ORDER BY mode",
        )
        .bind(from)
        .bind(to)
        .fetch_all(dataset.pool())
        .await
        .unwrap();
        let got: Vec<(String, i64, f64, i64, i64)> = rows
            .iter()
            .map(|r| {
                (
                    r.mode.clone(),
                    r.trips as i64,
                    r.distance_m,
                    r.duration_s,
                    r.active_users as i64,
                )
            })
            .collect();
        assert_eq!(got, expected, "{d}");
        assert_eq!(
            report.trips,
            expected.iter().map(|e| e.1 as u64).sum::<u64>()
        );
        // Points: what incentive holds for the day's completed trips of each mode.
        for r in &rows {
            let ids: Vec<&str> = plan
                .iter()
                .filter(|p| start_day(p) == *d && p.mode == r.mode && p.trip_id != "r-5")
                .map(|p| p.trip_id.as_str())
                .collect();
            let list = ids
                .iter()
                .map(|i| format!("'{i}'"))
                .collect::<Vec<_>>()
                .join(",");
            let points = env
                .count(
                    "incentive",
                    &format!(
                        "SELECT CAST(COALESCE(SUM(points), 0) AS SIGNED) FROM points_transactions \
                         WHERE reference_type = 'trip' AND reference_id IN ({list})"
                    ),
                )
                .await;
            assert_eq!(r.points, points, "{d} {}", r.mode);
            assert!(points > 0 || r.mode == "walk");
        }
        // The hours of the day add up to it.
        let (hours, _) = t.hourly(*d).await.unwrap();
        assert_eq!(hours.iter().map(|h| h.trips).sum::<u64>(), report.trips);
        assert_eq!(
            hours.iter().map(|h| h.points).sum::<i64>(),
            rows.iter().map(|r| r.points).sum::<i64>()
        );
        // A re-run replaces the day with the same documents, no more.
        t.rollup_day(*d).await.unwrap();
        assert_eq!(t.daily(range, None).await.unwrap().0, rows);
    }

    // The day with r-1..r-3 (and the compensated r-5): per user, and the points in InfluxDB.
    let busy = start_day(&plan[0]);
    let busy_day = DayRange {
        from: busy,
        to: busy,
    };
    let (user1, _) = t.user_daily(1, busy_day).await.unwrap();
    assert_eq!(
        user1.iter().map(|u| (u.trips, u.modes)).collect::<Vec<_>>(),
        [(2, 2)]
    );
    let (user2, _) = t.user_daily(2, busy_day).await.unwrap();
    assert_eq!(user2[0].trips, 1, "r-5 was compensated");
    // Every user's day equals MySQL's, whichever bucket holds it.
    let from = busy.and_hms_opt(0, 0, 0).unwrap();
    let per_user: Vec<(u64, i64, f64, i64)> = sqlx::query_as(
        "SELECT user_id, COUNT(*), CAST(SUM(distance_m) AS DOUBLE), COUNT(DISTINCT mode) \
         FROM trips WHERE status = 'completed' AND started_at >= ? AND started_at < ? \
         GROUP BY user_id ORDER BY user_id",
    )
    .bind(from)
    .bind(from + chrono::Duration::days(1))
    .fetch_all(env.sandbox.hub.mysql("dataset").unwrap().pool())
    .await
    .unwrap();
    assert_eq!(
        per_user.iter().map(|u| u.0).collect::<Vec<_>>(),
        [1, 2, 2001]
    );
    for (user, trips, distance, modes) in per_user {
        let (days, _) = t.user_daily(user, busy_day).await.unwrap();
        assert_eq!(days.len(), 1, "user {user}");
        let d = &days[0];
        assert_eq!(
            (d.user_id, d.trips as i64, d.modes as i64),
            (user, trips, modes)
        );
        assert!((d.distance_m - distance).abs() < 1e-6, "user {user}");
    }
    let (nobody, _) = t.user_daily(4, busy_day).await.unwrap();
    assert!(nobody.is_empty(), "user 4 has no trips that day");
    let influx = env.sandbox.hub.influx("primary").unwrap();
    influx.writer().flush().await;
    let midnight = busy.and_hms_opt(0, 0, 0).unwrap().and_utc().to_rfc3339();
    let r = influx
        .query_v1(
            &influx.settings().database,
            &format!("SELECT trips FROM mobility_daily WHERE mode = 'bus' AND time = '{midnight}'"),
        )
        .await
        .unwrap();
    assert_eq!(
        r.pointer("/results/0/series/0/values/0/1"),
        Some(&serde_json::json!(2)),
        "{r}"
    );
    let (totals, _) = t.mode_totals(7).await.unwrap();
    let bus = totals.iter().find(|m| m.mode == "bus").unwrap();
    assert_eq!(bus.trips, 2);
    env.done().await;
}

#[tokio::test]
async fn a_batch_completes_each_trip_as_one_job_would_and_fails_only_its_bad_trips() {
    let env = Env::new(&[]).await;
    let hub = env.sandbox.hub.clone();
    // A trip completed on its own first: the batch finds it done and writes nothing twice.
    let done_before = north("b-0", 1, "bike", -16.92, 145.77, 3, 7_200_000);
    env.trips.complete("job-0", &done_before).await.unwrap();
    let mut refused = north("b-bad", 2, "walk", -16.92, 145.77, 2, 3_600_000);
    refused.trajectory.truncate(1);
    let jobs: Vec<(String, TripCompletion)> = vec![
        (
            "job-1".into(),
            north("b-1", 1, "bike", -16.93, 145.77, 3, 3_600_000),
        ),
        (
            "job-2".into(),
            north("b-2", 2, "bus", -16.94, 145.77, 4, 3_000_000),
        ),
        ("job-3".into(), done_before.clone()),
        ("job-4".into(), refused),
        (
            "job-5".into(),
            north("b-5", 999, "walk", -16.92, 145.77, 1, 3_600_000),
        ),
        // b-1 again under another user: someone else's trip id.
        (
            "job-6".into(),
            north("b-1", 3, "bike", -16.93, 145.77, 3, 3_600_000),
        ),
    ];
    let out = env.trips.complete_batch(&jobs).await;
    assert_eq!(out.len(), 6);
    let one = out[0].as_ref().unwrap();
    assert_eq!((one.points, one.already_completed), (50, false));
    assert!(!out[1].as_ref().unwrap().already_completed);
    assert!(out[2].as_ref().unwrap().already_completed);
    let refusal = |i: usize| match &out[i] {
        Err(JobError::Abort(m)) => m.clone(),
        other => panic!("job {i}: {other:?}"),
    };
    assert_eq!(refusal(3), "trajectory: needs at least two points");
    assert_eq!(refusal(4), "userId: no user 999 in portal");
    // The same trip twice in one batch: the second is another user's and is refused; or, when
    // its lock is taken by the first in the same batch, retried — never written twice.
    match &out[5] {
        Err(JobError::Abort(m)) => assert!(m.contains("belongs to another user"), "{m}"),
        Err(JobError::Retry(m)) => assert!(m.contains("another attempt"), "{m}"),
        other => panic!("{other:?}"),
    }
    for id in ["b-0", "b-1", "b-2"] {
        assert_eq!(env.footprint(id).await, (1, 1, 1, 1), "{id}");
    }
    assert_eq!(env.footprint("b-bad").await, (0, 0, 0, 0));
    assert_eq!(env.footprint("b-5").await, (0, 0, 0, 0));
    let owner: u64 = sqlx::query_scalar("SELECT user_id FROM trips WHERE trip_id = 'b-1'")
        .fetch_one(hub.mysql("dataset").unwrap().pool())
        .await
        .unwrap();
    assert_eq!(owner, 1);
    let job_ids: Vec<(String, String)> = sqlx::query_as(
        "SELECT trip_id, job_id FROM trips WHERE trip_id IN ('b-0', 'b-1', 'b-2') ORDER BY trip_id",
    )
    .fetch_all(hub.mysql("dataset").unwrap().pool())
    .await
    .unwrap();
    assert_eq!(
        job_ids,
        vec![
            ("b-0".into(), "job-0".into()),
            ("b-1".into(), "job-1".into()),
            ("b-2".into(), "job-2".into())
        ],
        "the first completion's job id stays"
    );
    // Running the batch again changes nothing.
    let again = env.trips.complete_batch(&jobs[..3]).await;
    assert!(again.iter().all(|r| r.as_ref().unwrap().already_completed));
    for id in ["b-0", "b-1", "b-2"] {
        assert_eq!(env.footprint(id).await, (1, 1, 1, 1), "{id}");
    }
    env.done().await;
}
