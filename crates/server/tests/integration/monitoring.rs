//! Prometheus for real: a Prometheus of the test's own scrapes `serve` and a worker with the
//! metrics token while they do real work (a trip, a job that dies, a required store that goes
//! away and comes back), evaluates deploy/prometheus/alerts.yml (`for:` cut to 2 s), and answers
//! every query of the Grafana dashboard (docs/metrics.md#prometheus).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::task::block_in_place;
use tsp_mobility::auth::Scope;

use crate::common::api::{call, get, token_of, trip};
use crate::common::prometheus::Prometheus;
use crate::common::{Site, worker_command};

const LIMIT: Duration = Duration::from_secs(60);

/// Waits (bounded by [`LIMIT`]) until `check` on Prometheus holds.
async fn until<T>(
    what: &str,
    p: &Prometheus,
    check: impl Fn(&Prometheus) -> Result<T, String>,
) -> T {
    tsp_testkit::eventually(what, LIMIT, || async { block_in_place(|| check(p)) }).await
}

/// Every PromQL query of the dashboard, with Grafana's variables given the values a viewer
/// would start from (every queue, a rate window of 30 s).
fn dashboard_queries() -> Vec<(String, String)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana/tsp-job.json"
    );
    let d: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap();
            let expr = expr
                .replace("$__rate_interval", "30s")
                .replace("$queue", ".*");
            out.push((p["title"].as_str().unwrap().to_string(), expr));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_service_an_alert_fires_and_resolves_and_every_panel_answers() {
    let mut spare = tsp_testkit::ScratchRedis::start();
    spare.wait_listening();
    let token = format!("scrape-{}", rand::random::<u64>());
    let site = Site::new(&[]).await;
    let email = site.user_with_password(1).await;
    let admin = site.key(&[Scope::Admin, Scope::JobsWrite]).await;
    let sets = [
        format!("server.metrics_token={token}"),
        "redis.spare.host=127.0.0.1".into(),
        format!("redis.spare.port={}", spare.port),
        "redis.spare.connect_timeout=500ms".into(),
        "stores.redis.spare.required=true".into(),
        "health.interval=250ms".into(),
    ];
    let refs: Vec<&str> = sets.iter().map(String::as_str).collect();
    let server = site.server(&refs);
    let worker_listen = format!("127.0.0.1:{}", tsp_testkit::closed_port());
    let mut overrides = site.sandbox.overrides.clone();
    overrides.push(format!("server.metrics_token={token}"));
    let mut worker = worker_command(&[("TSP_LOG", "warn")], &overrides, "trips", 2, "2s", &[])
        .args(["--listen", &worker_listen])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let serve_address = server.base.trim_start_matches("http://").to_string();
    let prometheus = block_in_place(|| {
        Prometheus::start(
            &[
                ("tsp-job-serve", &serve_address),
                ("tsp-job-worker", &worker_listen),
            ],
            &token,
        )
    });
    until("both targets scraped with the token", &prometheus, |p| {
        let targets = p.targets();
        match targets.iter().all(|(_, health, _)| health == "up") && targets.len() == 2 {
            true => Ok(()),
            false => Err(format!("{targets:?}")),
        }
    })
    .await;
    // Real work: a trip that completes, the user's figures read twice, a job that dies.
    let user = token_of(&server, &email).await;
    let job = json!({"type": "trip.complete", "queue": "trips", "payload": trip("m-1", 1, 2, 1)});
    let (code, _, v) = call(&server, Method::POST, "/jobs", Some(&user), Some(job)).await;
    assert_eq!(code, 201, "{v}");
    let queue = site.app.queue("trips").unwrap();
    let counts = async |completed, dead| {
        let what = format!("{completed} completed and {dead} dead");
        tsp_testkit::until(&what, LIMIT, || async {
            let c = queue.counts().await.unwrap();
            c.completed == completed && c.dead == dead
        })
        .await;
    };
    counts(1, 0).await;
    // The dead-letter gauge at 0 first, so that the alert sees it grow.
    until("the trips queue's dead letters at 0", &prometheus, |p| {
        let q = r#"tsp_queue_depth{job="tsp-job-serve",queue="trips",state="dead"} == 0"#;
        p.query(q)?
            .first()
            .cloned()
            .ok_or_else(|| "no sample yet".to_string())
    })
    .await;
    let dying = json!({"type": "builtin.sleep", "queue": "trips", "payload": {"ms": 2000},
        "timeout_ms": 50, "max_attempts": 1});
    let (code, _, v) = call(&server, Method::POST, "/jobs", Some(&admin), Some(dying)).await;
    assert_eq!(code, 201, "{v}");
    counts(1, 1).await;
    for _ in 0..2 {
        assert_eq!(get(&server, "/users/1/stats", &user).await.0, 200);
    }
    let dead = [("queue", "trips")];
    until("TspJobDeadJobsGrowing firing", &prometheus, |p| {
        match p.alert_state("TspJobDeadJobsGrowing", &dead).as_deref() {
            Some("firing") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // A required store goes away: pending, then firing; back: resolved.
    let spare_down = [("store", "redis"), ("store_instance", "spare")];
    spare.kill();
    let seen = std::sync::Mutex::new(Vec::new());
    until("TspJobRequiredStoreDown firing", &prometheus, |p| {
        let state = p.alert_state("TspJobRequiredStoreDown", &spare_down);
        let mut seen = seen.lock().unwrap();
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        match state.as_deref() {
            Some("firing") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // Pending lasts the rule's 2 s hold, many polls long.
    let seen = seen.into_inner().unwrap();
    assert!(seen.contains(&Some("pending".to_string())), "{seen:?}");
    spare.restart();
    until("TspJobRequiredStoreDown resolved", &prometheus, |p| match p
        .alert_state("TspJobRequiredStoreDown", &spare_down)
    {
        None => Ok(()),
        Some(state) => Err(state),
    })
    .await;
    let other = block_in_place(|| prometheus.alert_state("TspJobRequiredStoreDown", &[]));
    assert_eq!(other, None, "no other store was down");

    // Every panel of the dashboard: its queries parse and return series after this work.
    let queries = dashboard_queries();
    assert!(queries.len() >= 20, "{} queries", queries.len());
    until(
        "every dashboard query answers with series",
        &prometheus,
        |p| {
            let mut empty = Vec::new();
            for (panel, expr) in &queries {
                match p.query(expr) {
                    Err(e) => panic!("panel {panel:?}: Prometheus refuses {expr}: {e}"),
                    Ok(series) if series.is_empty() => empty.push(format!("{panel}: {expr}")),
                    Ok(_) => {}
                }
            }
            if empty.is_empty() {
                Ok(())
            } else {
                Err(empty.join("\n"))
            }
        },
    )
    .await;

    worker.kill().unwrap();
    worker.wait().unwrap();
    drop(server);
    site.done().await;
}
