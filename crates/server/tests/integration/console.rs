//! The operator console in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, `common::browser`) against a `serve` process on a sandbox. Logging in, the
//! overview's counts against `jobs stats --json`, a dead job retried and seen completing live,
//! pause and resume, cancel, a store turning red, attacker-controlled text shown as text, a
//! viewer refused, and dead jobs that cannot be missed.
//! The pages' screenshots land in `target/screenshots/` (docs/console.md shows them). Plain HTTP
//! checks are in `console_http.rs`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use crate::common;

use std::time::Duration;

use crate::common::Site;
use crate::common::browser::Browser;
use serde_json::{Value, json};
use tsp_mobility::auth::Role;
use tsp_queue::{NewJob, Outcome, Queue};

/// `n` no-op jobs (payloads 0..n).
pub(crate) fn noops(n: u32) -> Vec<NewJob> {
    (0..n)
        .map(|i| NewJob::new("builtin.noop", &i).unwrap())
        .collect()
}

/// A no-op job (payload `n`) delayed by `secs`.
pub(crate) fn delayed(n: u32, secs: u64) -> NewJob {
    NewJob::new("builtin.noop", &n)
        .unwrap()
        .with_delay(Duration::from_secs(secs))
}

/// A dead job made by hand (no worker runs yet), its payload and error carrying markup.
pub(crate) async fn dead_job(q: &Queue) -> String {
    let payload = json!({"note": "<script>window.__xss = 1</script>", "trip": "t-1"});
    let id = q
        .enqueue(NewJob::new("builtin.noop", &payload).unwrap())
        .await
        .unwrap();
    let fetched = q.fetch(1, "console-test").await.unwrap();
    assert_eq!(fetched.jobs[0].id, id);
    let error = "<img src=x onerror=\"window.__xss = 2\"> upstream refused".to_string();
    q.finish(&[(&fetched.jobs[0], Outcome::Dead { error })], false)
        .await
        .unwrap();
    id
}

/// The queue's counts as `tsp-job jobs stats --json` prints them.
fn stats_of(site: &Site, queue: &str) -> Value {
    let out = site.cli_ok(&["jobs", "stats", "--json"]);
    let all: Vec<Value> = serde_json::from_str(&out).unwrap();
    all.into_iter().find(|q| q["queue"] == queue).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_watches_and_acts_and_a_viewer_only_watches() {
    let mut scratch = tsp_testkit::ScratchRedis::start();
    let spare = [
        "redis.spare.host=127.0.0.1".to_string(),
        format!("redis.spare.port={}", scratch.port),
        "redis.spare.connect_timeout=1s".to_string(),
        "health.timeout=1s".to_string(),
    ];
    let sets: Vec<&str> = spare.iter().map(String::as_str).collect();
    let site = Site::new(&sets).await;
    let operator = site.operator(Role::Operator).await;
    let viewer = site.operator(Role::Viewer).await;
    let q = site.app.queue("console").unwrap();
    let dead = dead_job(&q).await;
    let waiting = q.enqueue_many(noops(3)).await.unwrap();
    q.enqueue(delayed(9, 3600)).await.unwrap();
    // Some trips today, through the main job, for the trips page.
    site.cli_ok(&[
        "simulate", "--users", "20", "--trips", "40", "--days", "1", "--json",
    ]);
    // And one that ended a minute ago, by a user of its own, so today has trips at any hour.
    common::seed_users(&site.sandbox.hub, 21).await;
    let end = chrono::Utc::now().timestamp_millis() - 60_000;
    let recent = tsp_mobility::trip::TripCompletion {
        trip_id: "just-now".into(),
        user_id: 21,
        mode: "bus".into(),
        trajectory: (0..=5)
            .map(|k| tsp_mobility::trip::TrackPoint {
                lat: -16.92 + 0.005 * f64::from(k),
                lng: 145.77,
                timestamp: end - i64::from(5 - k) * 60_000,
                accuracy: Some(5.0),
                speed: None,
            })
            .collect(),
        cost: None,
    };
    site.app.trips().complete("j-now", &recent).await.unwrap();
    // And a live GTFS feed, whose stops the trips map draws.
    let cairns = common::shared_data("gtfs-cairns/cairns_gtfs.zip");
    site.cli_ok(&["gtfs", "import", cairns.to_str().unwrap()]);
    let server = site.server(&sets);
    let b = Browser::start(&server.base).await;

    // Logging in lands on the overview; its counts are the CLI's.
    b.login(&operator).await;
    b.wait_for(
        r#"tr[data-store="redis.spare"][data-status="up"]"#,
        Duration::from_secs(20),
    )
    .await;
    let stats = stats_of(&site, "console");
    for state in ["waiting", "delayed", "active", "completed", "dead"] {
        let shown = b.text(&format!(r#"[data-count="console:{state}"]"#)).await;
        assert_eq!(shown, stats[state].to_string(), "{state}");
    }
    assert_eq!(stats["dead"], 1);
    assert!(
        b.text("section.alerts")
            .await
            .contains("dead-letter hook pending for 1 dead job")
    );
    b.screenshot("overview").await;

    // The dead job: its markup is text, and nothing of it ran.
    b.goto("/console/queues/console?state=dead").await;
    b.screenshot("queue").await;
    b.click(&format!(r#"a[href$="/jobs/{dead}"]"#)).await;
    let page = b.text("main").await;
    assert!(page.contains("<script>window.__xss = 1</script>"), "{page}");
    assert!(
        page.contains("<img src=x onerror=\"window.__xss = 2\"> upstream refused"),
        "{page}"
    );
    assert_eq!(b.js("return typeof window.__xss").await, "undefined");
    assert_eq!(
        b.js("return document.querySelectorAll('main script, main img').length")
            .await,
        0
    );
    b.screenshot("job-dead").await;

    // Retried, then completed by a worker: the page changes without being reloaded.
    b.click(r#"form[action$="/retry"] button"#).await;
    b.wait_for(r#"[data-state="waiting"]"#, Duration::from_secs(10))
        .await;
    b.js("window.__sameDocument = 42").await;
    let schedules = site.app.schedules();
    let every_second = json!({"name": "console-tick", "every_ms": 1000, "job_type": "builtin.noop",
                              "payload": {"from": "schedule"}, "queue": "console"});
    schedules
        .put(serde_json::from_value(every_second).unwrap())
        .await
        .unwrap();
    let mut worker = common::worker_on(&site.sandbox.overrides, "console", 4, "5s", &[]);
    b.wait_for(r#"[data-state="completed"]"#, Duration::from_secs(60))
        .await;
    assert_eq!(
        b.js("return window.__sameDocument").await,
        42,
        "the page was reloaded"
    );
    b.screenshot("job-completed").await;

    // The schedule's last tick and its job's outcome; pausing it from the page.
    common::until_some(Duration::from_secs(30), || async {
        let st = schedules.find("console-tick").await.unwrap()?;
        let job = q.job(st.last_job.as_deref()?).await.unwrap()?;
        (job.state == "completed").then_some(())
    })
    .await;
    let _ = worker.kill();
    let _ = worker.wait();
    b.goto("/console/schedules").await;
    let row = r#"tr[data-schedule="console-tick"]"#;
    let outcome = b.text(&format!("{row} td.outcome")).await;
    assert!(
        ["completed", "waiting", "active"].contains(&outcome.as_str()),
        "{outcome}"
    );
    let link = b
        .wait_for(&format!("{row} td.outcome a"), Duration::from_secs(10))
        .await;
    assert!(
        link.attr("href")
            .await
            .unwrap()
            .unwrap()
            .contains("/console/queues/console/jobs/")
    );
    assert!(b.text(&format!("{row} td.next")).await.starts_with("20"));
    b.screenshot("schedules").await;
    b.click(&format!(r#"{row} form[action$="/pause"] button"#))
        .await;
    b.wait_for(&format!("{row} [data-paused]"), Duration::from_secs(10))
        .await;
    assert!(
        schedules
            .find("console-tick")
            .await
            .unwrap()
            .unwrap()
            .paused
    );

    // Pause and resume, seen by the queue itself.
    b.goto("/console/queues/console").await;
    b.click(r#"form[action$="/pause"] button"#).await;
    b.wait_for("[data-paused]", Duration::from_secs(10)).await;
    assert!(q.counts().await.unwrap().paused);
    b.click(r#"form[action$="/resume"] button"#).await;
    b.wait_for(r#"form[action$="/pause"]"#, Duration::from_secs(10))
        .await;
    assert!(!q.counts().await.unwrap().paused);

    // Cancel a delayed job from its page.
    let delayed = q.enqueue(delayed(10, 3600)).await.unwrap();
    b.goto(&format!("/console/queues/console/jobs/{delayed}"))
        .await;
    b.click(r#"form[action$="/cancel"] button"#).await;
    b.wait_for("table.jobs", Duration::from_secs(10)).await;
    assert!(q.job(&delayed).await.unwrap().is_none());

    // A store stopped turns red on an open overview, live.
    b.goto("/console").await;
    b.wait_for(
        r#"tr[data-store="redis.spare"][data-status="up"]"#,
        Duration::from_secs(10),
    )
    .await;
    b.js("window.__sameDocument = 7").await;
    scratch.kill();
    b.wait_for(
        r#"tr[data-store="redis.spare"][data-status="down"]"#,
        Duration::from_secs(30),
    )
    .await;
    // The alert comes with it, from the same sample; the row keeps no stale latency or version.
    let alerts = b.text("section.alerts").await;
    assert!(
        alerts.contains("Store redis.spare is down (optional)."),
        "{alerts}"
    );
    for cell in ["latency", "version"] {
        let shown = b
            .text(&format!(r#"tr[data-store="redis.spare"] td.{cell}"#))
            .await;
        assert_eq!(shown, "—", "{cell}");
    }
    assert_eq!(
        b.js("return window.__sameDocument").await,
        7,
        "the page was reloaded"
    );
    b.screenshot("overview-store-down").await;

    b.goto("/console/trips").await;
    let (today, points): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), CAST(COALESCE(SUM(points), 0) AS SIGNED) FROM trips \
         WHERE status = 'completed' AND ended_at >= UTC_DATE()",
    )
    .fetch_one(site.sandbox.hub.mysql("dataset").unwrap().pool())
    .await
    .unwrap();
    assert!(today > 0, "the simulation ended some trips today");
    assert_eq!(b.text(r#"[data-figure="trips"]"#).await, today.to_string());
    assert_eq!(
        b.text(r#"[data-figure="points"]"#).await,
        points.to_string()
    );
    let hourly: i64 = b
        .js("return [...document.querySelectorAll('table.hourly tr[data-hour] td:nth-child(2)')].reduce((a, td) => a + Number(td.textContent), 0)")
        .await
        .as_i64()
        .unwrap();
    assert_eq!(hourly, today, "the hours add up to the day");
    let drawn = b.wait_for("svg.map", Duration::from_secs(10)).await;
    assert_eq!(
        drawn.attr("data-trips").await.unwrap(),
        Some("41".to_string()),
        "the simulation's 40 and the one of a minute ago"
    );
    assert_eq!(
        drawn.attr("data-stops").await.unwrap(),
        Some("416".to_string())
    );
    b.screenshot("trips").await;
    b.js("document.querySelector('svg.map').scrollIntoView()")
        .await;
    b.screenshot("trips-map").await;

    // A viewer sees no actions, and an action sent anyway is refused.
    b.login(&viewer).await;
    b.goto("/console/queues/console").await;
    b.wait_for("table.jobs", Duration::from_secs(10)).await;
    assert_eq!(
        b.js("return document.querySelectorAll('main form[method=post]').length")
            .await,
        0
    );
    let status = b
        .client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               const csrf = document.querySelector('input[name=csrf]').value;
               fetch('/console/queues/console/pause', {method: 'POST',
                 headers: {'content-type': 'application/x-www-form-urlencoded'},
                 body: 'csrf=' + csrf}).then(r => done(r.status));"#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, 403);
    assert!(!q.counts().await.unwrap().paused);
    assert_eq!(waiting.len(), 3);

    b.close().await;
    drop(server);
    site.done().await;
}

/// What an on-call operator opens first cannot hide dead jobs: each queue holding some is an
/// alert linking to its dead tab, its dead count is marked, a totals row sums every queue, and
/// all of it follows a new death without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_jobs_cannot_be_missed_on_the_overview() {
    let site = Site::new(&[]).await;
    let server = site.server(&[]);
    let operator = site.operator(Role::Operator).await;
    let (default, nightly) = (
        site.app.queue("default").unwrap(),
        site.app.queue("nightly").unwrap(),
    );
    for q in [&default, &default, &nightly] {
        dead_job(q).await;
    }
    default.enqueue_many(noops(2)).await.unwrap();
    let b = Browser::start(&server.base).await;
    b.login(&operator).await;

    let alerts = b
        .js(
            "return [...document.querySelectorAll('section.alerts li.alert a')]\
             .map(a => a.textContent + ' -> ' + a.getAttribute('href'))",
        )
        .await;
    for expected in [
        "Queue default: 2 dead jobs; dead-letter hook pending for 2 dead jobs. -> /console/queues/default?state=dead",
        "Queue nightly: 1 dead job; dead-letter hook pending for 1 dead job. -> /console/queues/nightly?state=dead",
    ] {
        let listed = alerts.as_array().unwrap().iter().any(|a| a == expected);
        assert!(listed, "{expected} not in {alerts}");
    }
    assert_eq!(
        b.js("return document.querySelector('section.alerts').getAttribute('aria-live')")
            .await,
        "polite"
    );
    // Dead counts are marked red; a zero or a waiting count is not.
    let colour =
        |css: &str| format!("return getComputedStyle(document.querySelector('{css}')).color");
    let red = "rgb(207, 34, 46)";
    assert_eq!(b.js(&colour(r#"[data-count="default:dead"]"#)).await, red);
    assert_eq!(b.js(&colour(r#"[data-count="*:dead"]"#)).await, red);
    assert_ne!(
        b.js(&colour(r#"[data-count="default:waiting"]"#)).await,
        red
    );
    assert_eq!(b.text(r#"[data-count="*:dead"]"#).await, "3");
    assert_eq!(b.text(r#"[data-count="*:waiting"]"#).await, "2");
    b.screenshot("overview-dead").await;

    // One more death: the open page's totals and alert follow it.
    b.js("window.__sameDocument = 9").await;
    dead_job(&nightly).await;
    b.wait_for(
        r#"section.alerts a[href="/console/queues/nightly?state=dead"]"#,
        Duration::from_secs(10),
    )
    .await;
    tsp_testkit::eventually("the totals follow", Duration::from_secs(20), || async {
        match b.text(r#"[data-count="*:dead"]"#).await.as_str() {
            "4" => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;
    assert_eq!(b.js("return window.__sameDocument").await, 9, "reloaded");
    let alerts = b.text("section.alerts").await;
    assert!(alerts.contains("Queue nightly: 2 dead jobs;"), "{alerts}");

    // The alert is the way to the jobs.
    b.click(r#"section.alerts a[href="/console/queues/default?state=dead"]"#)
        .await;
    let tab = b
        .wait_for("nav.tabs a.current", Duration::from_secs(10))
        .await;
    let href = tab.attr("href").await.unwrap().unwrap_or_default();
    assert_eq!(href, "/console/queues/default?state=dead");
    assert_eq!(
        tab.attr("aria-current").await.unwrap().as_deref(),
        Some("page")
    );
    let skip = b.wait_for("a.skip", Duration::from_secs(5)).await;
    assert_eq!(
        skip.attr("href").await.unwrap().as_deref(),
        Some("#content")
    );
    assert_eq!(
        b.js("return document.querySelectorAll('table.jobs tbody tr').length")
            .await,
        2
    );
    b.close().await;
    drop(server);
    site.done().await;
}
