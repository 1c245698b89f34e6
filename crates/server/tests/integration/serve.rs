//! `tsp-job serve`: health probes and Prometheus metrics over HTTP, against the real services.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::{Duration, Instant};

use crate::common::{Server, api_key, assert_catalogued, closed_port, metric, run, text};

#[test]
fn health_probes_answer_and_metrics_move_after_real_commands() {
    let key = api_key(&[], &["admin"]);
    let measurement = format!("vendor_latency_{}", rand::random::<u32>());
    let sets = [
        "health.interval=200ms".to_string(),
        format!("influx.service_monitor.measurement={measurement}"),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let mut server = Server::start(&sets, &[]).with_credential(key);

    let (code, body) = server.get("/health/live");
    assert_eq!((code, body.as_str()), (200, r#"{"status":"up"}"#));
    let (code, body) = server.get("/health/ready");
    assert_eq!(code, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    let expected = serde_json::json!({"status": "up", "down": [], "degraded": []});
    assert_eq!(ready, expected);

    // The image's health check: the binary GETs a probe; 2xx is 0, anything else 1 with the cause.
    let probe = |url: &str| {
        let out = run(&["probe", "--url", url, "--timeout", "2s"], &[]);
        (out.status.code(), text(&out).1)
    };
    assert_eq!(
        probe(&format!("{}/health/live", server.base)),
        (Some(0), String::new())
    );
    let (code, err) = probe(&format!("{}/health/nowhere", server.base));
    assert_eq!(code, Some(1));
    assert!(err.contains("404"), "{err}");
    let (code, err) = probe(&format!("http://127.0.0.1:{}/health/live", closed_port()));
    assert_eq!(code, Some(1));
    assert!(err.starts_with("probe failed: http://127.0.0.1:"), "{err}");

    let (_, before) = server.get("/metrics");
    let ping = |t: &str| {
        metric(
            t,
            "tsp_store_commands_total",
            &[
                ("store", "redis"),
                ("store_instance", "cache"),
                ("op", "ping"),
            ],
        )
        .unwrap_or(0.0)
    };
    let mysql = |t: &str| {
        metric(
            t,
            "tsp_store_commands_total",
            &[
                ("store", "mysql"),
                ("store_instance", "portal"),
                ("op", "health"),
            ],
        )
        .unwrap_or(0.0)
    };
    let mongo = |t: &str| {
        metric(
            t,
            "tsp_store_commands_total",
            &[
                ("store", "mongo"),
                ("store_instance", "dataset"),
                ("op", "ping"),
            ],
        )
        .unwrap_or(0.0)
    };
    let influx = |t: &str| {
        metric(
            t,
            "tsp_store_commands_total",
            &[
                ("store", "influx"),
                ("store_instance", "uis"),
                ("op", "ping"),
            ],
        )
        .unwrap_or(0.0)
    };

    let (code, body) = server.get("/health");
    assert_eq!(code, 200, "{body}");
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["status"], "up");
    assert_eq!(h["instances"].as_array().unwrap().len(), 9);
    // What is running, beside the stores: the same facts as `tsp-job version --json`.
    let version = run(&["version", "--json"], &[]);
    let built: serde_json::Value = serde_json::from_str(&text(&version).0).unwrap();
    assert_eq!(h["service"], built);

    let (code, after) = server.get("/metrics");
    assert_eq!(code, 200);
    // Described, typed and labelled as the catalogue says (docs/metrics.md).
    let seen = assert_catalogued(&after);
    for family in ["tsp_store_commands_total", "tsp_store_up", "tsp_build_info"] {
        assert!(seen.iter().any(|s| s == family), "{family} in {seen:?}");
    }
    let revision = built["revision"].as_str().unwrap();
    assert_eq!(
        metric(&after, "tsp_build_info", &[("revision", revision)]),
        Some(1.0),
        "{after}"
    );
    for (name, f) in [
        ("redis ping", &ping as &dyn Fn(&str) -> f64),
        ("mysql health", &mysql),
        ("mongo ping", &mongo),
        ("influx ping", &influx),
    ] {
        assert!(
            f(&after) > f(&before),
            "{name}: {} → {}",
            f(&before),
            f(&after)
        );
    }
    // Latency histograms, pool gauges and store gauges are there.
    assert!(
        after.contains("tsp_store_command_duration_seconds_bucket{"),
        "histogram buckets"
    );
    assert!(
        metric(
            &after,
            "tsp_store_pool_connections",
            &[
                ("store", "mysql"),
                ("store_instance", "dataset"),
                ("state", "max")
            ]
        ) == Some(20.0)
    );
    assert!(
        metric(
            &after,
            "tsp_store_pool_connections",
            &[
                ("store", "mongo"),
                ("store_instance", "cache"),
                ("state", "max")
            ]
        ) == Some(10.0)
    );
    assert!(
        metric(
            &after,
            "tsp_redis_used_memory_bytes",
            &[("store_instance", "cache")]
        )
        .is_some_and(|v| v > 0.0)
    );
    assert!(
        metric(
            &after,
            "tsp_redis_keyspace_hit_ratio",
            &[("store_instance", "cache")]
        )
        .is_some()
    );
    assert_eq!(
        metric(
            &after,
            "tsp_mongo_connection_state",
            &[("store_instance", "dataset")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &after,
            "tsp_store_up",
            &[("store", "influx"), ("store_instance", "primary")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &after,
            "tsp_influx_points_dropped_total",
            &[("store_instance", "primary")]
        )
        .unwrap_or(0.0),
        0.0
    );

    // The health watcher writes a vendor-latency point per store every 200 ms, under the
    // configured measurement; the writer flushes each second.
    tsp_testkit::eventually_blocking("influx points written", Duration::from_secs(15), || {
        let (_, m) = server.get("/metrics");
        let written = metric(
            &m,
            "tsp_influx_points_written_total",
            &[("store_instance", "primary")],
        );
        if written.is_some_and(|v| v >= 9.0) {
            Ok(())
        } else {
            Err(m)
        }
    });
    let config = tsp_testkit::config(&[]);
    let influx = &config.influx[&config.service_monitor.instance];
    let q = format!(
        "SELECT count(latency_ms) FROM {measurement} WHERE store = 'mysql' AND instance = 'portal'"
    );
    let r: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{}/query", influx.url))
        .query(&[
            ("db", config.service_monitor.bucket.as_str()),
            ("q", q.as_str()),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    let n = r
        .pointer("/results/0/series/0/values/0/1")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    assert!(
        n >= 1,
        "vendor latency of mysql.portal under {measurement}: {r}"
    );

    assert_eq!(server.terminate(), Some(0), "SIGTERM ends serve cleanly");
}

#[test]
fn serve_fails_fast_when_a_required_store_is_down() {
    let port = closed_port();
    let started = Instant::now();
    let out = run(
        &[
            "serve",
            "--set",
            "server.listen=127.0.0.1:0",
            "--set",
            &format!("mongo.cache.port={port}"),
            "--set",
            "health.timeout=2s",
        ],
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("cannot start: required stores are down or degraded: mongo.cache"),
        "{stderr}"
    );
    assert!(!stdout.contains("listening"), "{stdout}");
}

#[test]
fn serve_starts_with_an_optional_store_down_and_reports_it() {
    let port = closed_port();
    let sets = [format!("influx.uis.url=http://127.0.0.1:{port}")];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    // The key lives in MySQL, which this server shares with the default configuration.
    let key = api_key(&[], &["admin"]);
    let server = Server::start(&sets, &[]).with_credential(key);
    let (code, body) = server.get("/health");
    assert_eq!(code, 200, "only optional stores are down: {body}");
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    let uis = h["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["instance"] == "uis")
        .unwrap();
    assert_eq!(uis["status"], "down");
    assert_eq!(server.get("/health/ready").0, 200);
    let (_, m) = server.get("/metrics");
    assert_eq!(
        metric(
            &m,
            "tsp_store_up",
            &[("store", "influx"), ("store_instance", "uis")]
        ),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_consoles_live_streams_and_serve_exits_at_once() {
    let site = crate::common::Site::new(&[]).await;
    // A grace far longer than `terminate` waits: only streams that end at once let it pass.
    let mut server = site.server(&["server.shutdown_grace=120s"]);
    let name = site.operator(tsp_mobility::auth::Role::Viewer).await;
    let body = serde_json::json!({"username": name, "password": crate::common::PASSWORD});
    let (code, v) = crate::common::api::login(&server, body).await;
    assert_eq!(code, 200, "{v}");
    let token = v["token"].as_str().unwrap();
    let stream = crate::common::api::console_stream(&server, token).await;
    // `terminate` waits at most 10 s for the exit code.
    let code = tokio::task::block_in_place(|| server.terminate());
    assert_eq!(code, Some(0), "{}", server.stderr_so_far());
    assert!(
        crate::common::api::ends_within(stream, Duration::from_secs(5)).await,
        "the stream outlived the process"
    );
    drop(server);
    site.done().await;
}

/// `server.metrics_token` reads `/metrics` (a scraper needs no operator key) and nothing else;
/// a wrong token is refused like any unknown credential.
#[test]
fn the_metrics_token_reads_metrics_and_nothing_else() {
    let token = format!("scrape-{}", rand::random::<u64>());
    let set = format!("server.metrics_token={token}");
    let server = Server::start(&[&set], &[]);
    let get = |path: &str, credential: &str| {
        server.send(reqwest::Method::GET, path, None, Some(credential))
    };
    let (code, body) = get("/metrics", &token);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("# HELP tsp_build_info"), "{body}");
    assert_eq!(get("/metrics", &format!("{token}x")).0, 401);
    assert_eq!(
        get("/health", &token).0,
        401,
        "the token is not an operator"
    );
    assert_eq!(get("/queues", &token).0, 401);
}
