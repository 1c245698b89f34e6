//! The Influx client and batching writer against the real local InfluxDB: exact counts, exact
//! round trip of awkward characters, retries (with a fault-injecting proxy in front of the real
//! server), counted failures and drops, interval flushing and flush on shutdown.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tsp_hub::{Hub, InfluxStore, Point};

/// A hub plus a fresh database on the primary instance, dropped at the end.
struct Fixture {
    hub: Hub,
    db: String,
}

impl Fixture {
    async fn new(sets: &[&str]) -> Fixture {
        let hub = Hub::connect(&common::config(sets)).await.unwrap();
        let db = common::unique("tsp_t");
        // Created through the real server even when `primary` points at a proxy or a closed port.
        let direct = Hub::connect(&common::config(&[])).await.unwrap();
        direct
            .influx("primary")
            .unwrap()
            .query_v1(&db, &format!("CREATE DATABASE \"{db}\""))
            .await
            .unwrap();
        Fixture { hub, db }
    }

    fn influx(&self) -> &InfluxStore {
        self.hub.influx("primary").unwrap()
    }

    async fn count(&self, measurement: &str) -> i64 {
        let direct = Hub::connect(&common::config(&[])).await.unwrap();
        let body = direct
            .influx("primary")
            .unwrap()
            .query_v1(
                &self.db,
                &format!("SELECT count(seq) FROM \"{measurement}\""),
            )
            .await
            .unwrap();
        body.pointer("/results/0/series/0/values/0/1")
            .and_then(|v| v.as_i64())
            .unwrap_or(0)
    }

    async fn drop_db(self) {
        let _ = self
            .influx()
            .query_v1(&self.db, &format!("DROP DATABASE \"{}\"", self.db))
            .await;
    }
}

fn seq_point(m: &str, n: i64) -> Point {
    Point::new(m)
        .tag("shard", format!("s{}", n % 7))
        .field("seq", n)
        .field("v", n as f64 / 3.0)
        .timestamp_ns(1_700_000_000_000_000_000 + n)
}

#[tokio::test]
async fn one_hundred_thousand_points_arrive_exactly() {
    let f = Fixture::new(&[]).await;
    let w = f.influx().writer_for(&f.db);
    for n in 0..100_000 {
        w.write(&seq_point("bulk", n)).unwrap();
    }
    w.flush().await;
    let s = w.stats();
    assert_eq!(
        (s.accepted, s.written, s.failed, s.dropped),
        (100_000, 100_000, 0, 0)
    );
    assert_eq!(f.count("bulk").await, 100_000);
    f.drop_db().await;
}

#[tokio::test]
async fn awkward_characters_survive_the_round_trip() {
    let f = Fixture::new(&[]).await;
    let tags = [
        ("space", "a b  c"),
        ("comma", "a,b,"),
        ("equals", "a=b=="),
        ("quote", "say \"hi\""),
        ("backslash", "C:\\path\\x"),
        ("unicode", "Zürich – 東京 🚆"),
        ("tag key, = x", "v"),
    ];
    let fields = [
        ("s_space", "a b  c"),
        ("s_comma", "a,b,"),
        ("s_equals", "a=b=="),
        ("s_quote", "\"quoted\" and \\\"escaped\\\""),
        ("s_backslash", "back\\slash\\"),
        ("s_newline", "line1\nline2\r\nline3\n"),
        ("s_unicode", "Zürich – 東京 🚆"),
        ("field key, = x", "fk"),
    ];
    let mut p = Point::new("chars, m=")
        .field("seq", 1i64)
        .timestamp_ns(1_000_000_000);
    for (k, v) in tags {
        p = p.tag(k, v);
    }
    for (k, v) in fields {
        p = p.field(k, v);
    }
    let w = f.influx().writer_for(&f.db);
    w.write(&p).unwrap();
    w.flush().await;
    assert_eq!(w.stats().written, 1, "{:?}", w.stats());

    let body = f
        .influx()
        .query_v1(&f.db, "SELECT * FROM \"chars, m=\"")
        .await
        .unwrap();
    let series = body.pointer("/results/0/series/0").expect("one series");
    let columns: Vec<String> = series["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let values = series["values"][0].as_array().unwrap();
    let row: HashMap<&str, &serde_json::Value> = columns
        .iter()
        .map(String::as_str)
        .zip(values.iter())
        .collect();
    for (k, v) in tags.iter().chain(fields.iter()) {
        assert_eq!(row.get(k).and_then(|x| x.as_str()), Some(*v), "{k:?}");
    }
    // Default tags from influx.tags ride along.
    assert_eq!(row.get("project").and_then(|x| x.as_str()), Some("tsp-job"));
    f.drop_db().await;
}

#[tokio::test]
async fn points_the_protocol_cannot_carry_are_refused_and_nothing_is_queued() {
    let f = Fixture::new(&[]).await;
    let w = f.influx().writer_for(&f.db);
    let err = w
        .write(&Point::new("m").tag("t", "two\nlines").field("seq", 1i64))
        .unwrap_err();
    assert!(err.to_string().contains("contains a newline"), "{err}");
    assert_eq!(w.stats().accepted, 0);
    f.drop_db().await;
}

/// A fault injector in front of the real InfluxDB: the first answers are the given errors,
/// then requests are forwarded.
#[derive(Clone)]
struct Faults {
    seen: Arc<AtomicUsize>,
    plan: Arc<Vec<(StatusCode, Option<&'static str>)>>,
    upstream: String,
    http: reqwest::Client,
}

async fn faulty(State(f): State<Faults>, OriginalUri(uri): OriginalUri, body: Bytes) -> Response {
    let n = f.seen.fetch_add(1, Ordering::SeqCst);
    if let Some((status, retry_after)) = f.plan.get(n) {
        let mut resp = (*status, "injected fault").into_response();
        if let Some(ra) = retry_after {
            resp.headers_mut()
                .insert("Retry-After", ra.parse().unwrap());
        }
        return resp;
    }
    let url = format!(
        "{}{}",
        f.upstream,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    match f.http.post(url).body(body.to_vec()).send().await {
        Ok(r) => StatusCode::from_u16(r.status().as_u16())
            .unwrap()
            .into_response(),
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

async fn start_faults(plan: Vec<(StatusCode, Option<&'static str>)>) -> (String, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let state = Faults {
        seen: seen.clone(),
        plan: Arc::new(plan),
        upstream: common::config(&[]).influx["primary"].url.clone(),
        http: reqwest::Client::new(),
    };
    let app = axum::Router::new().fallback(faulty).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn retries_429_and_5xx_honouring_retry_after() {
    let (url, seen) = start_faults(vec![
        (StatusCode::TOO_MANY_REQUESTS, Some("1")),
        (StatusCode::SERVICE_UNAVAILABLE, None),
    ])
    .await;
    let f = Fixture::new(&[
        &format!("influx.primary.url={url}"),
        "influx.primary.batch.retry_interval=20ms",
        "influx.primary.batch.jitter=1ms",
    ])
    .await;
    let w = f.influx().writer_for(&f.db);
    let started = Instant::now();
    for n in 0..2_500 {
        w.write(&seq_point("retried", n)).unwrap();
    }
    w.flush().await;
    let took = started.elapsed();
    let s = w.stats();
    assert_eq!(
        (s.written, s.failed, s.dropped, s.retries),
        (2_500, 0, 0, 2),
        "{s:?}"
    );
    assert!(
        took >= Duration::from_secs(1),
        "Retry-After: 1 was honoured ({took:?})"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(
        seen.load(Ordering::SeqCst),
        3,
        "two faults, then one forwarded batch"
    );
    assert_eq!(f.count("retried").await, 2_500);
    f.drop_db().await;
}

#[tokio::test]
async fn a_bad_request_is_not_retried_and_is_counted_failed() {
    let (url, seen) = start_faults(vec![(StatusCode::BAD_REQUEST, None)]).await;
    let f = Fixture::new(&[&format!("influx.primary.url={url}")]).await;
    let w = f.influx().writer_for(&f.db);
    for n in 0..10 {
        w.write(&seq_point("rejected", n)).unwrap();
    }
    w.flush().await;
    let s = w.stats();
    assert_eq!((s.written, s.failed, s.retries), (0, 10, 0), "{s:?}");
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    f.drop_db().await;
}

#[tokio::test]
async fn a_down_server_costs_counted_failures_and_drops_never_unbounded_memory() {
    let port = common::closed_port();
    let f = Fixture::new(&[
        &format!("influx.primary.url=http://127.0.0.1:{port}"),
        "influx.primary.batch.max_points=100",
        "influx.primary.batch.max_buffer_points=1000",
        "influx.primary.batch.max_retries=2",
        "influx.primary.batch.retry_interval=10ms",
        "influx.primary.batch.max_retry_delay=20ms",
        "influx.primary.batch.jitter=1ms",
    ])
    .await;
    let w = f.influx().writer_for(&f.db);
    for n in 0..5_000 {
        w.write(&seq_point("lost", n)).unwrap();
        assert!(w.stats().buffered <= 1_000, "buffer stays bounded");
    }
    w.flush().await;
    let s = w.stats();
    assert_eq!(s.accepted, 5_000);
    assert_eq!(s.written, 0);
    assert_eq!(s.failed + s.dropped, 5_000, "{s:?}");
    assert!(s.dropped > 0 && s.failed > 0, "{s:?}");
    assert_eq!(
        s.retries,
        2 * s.failed / 100,
        "two retries per failed batch: {s:?}"
    );
    f.drop_db().await;
}

#[tokio::test]
async fn a_partial_batch_is_sent_after_the_flush_interval() {
    let f = Fixture::new(&["influx.primary.batch.flush_interval=200ms"]).await;
    let w = f.influx().writer_for(&f.db);
    // The sending task parks on an empty buffer first: the first point must wake it to learn
    // the deadline (a writer that only woke on full batches would never send these).
    let deadline = Instant::now() + Duration::from_secs(5);
    while w.stats().idle_waits == 0 {
        assert!(Instant::now() < deadline, "the sending task never parked");
        tokio::task::yield_now().await;
    }
    for n in 0..10 {
        w.write(&seq_point("interval", n)).unwrap();
    }
    // No flush(): the interval alone must send it. Poll the server, bounded.
    tsp_testkit::eventually("sent by the interval", Duration::from_secs(5), || async {
        match f.count("interval").await {
            10 => Ok(()),
            n => Err((n, w.stats())),
        }
    })
    .await;
    f.drop_db().await;
}

#[tokio::test]
async fn shutdown_flushes_what_is_buffered() {
    let f = Fixture::new(&["influx.primary.batch.flush_interval=1h"]).await;
    let w = f.influx().writer_for(&f.db);
    for n in 0..1_234 {
        w.write(&seq_point("at_shutdown", n)).unwrap();
    }
    assert_eq!(w.stats().written, 0, "nothing is due before shutdown");
    f.hub.shutdown(Duration::from_secs(10)).await;
    assert_eq!(w.stats().written, 1_234);
    assert_eq!(f.count("at_shutdown").await, 1_234);
    f.drop_db().await;
}

#[tokio::test]
async fn write_wait_slows_the_producer_instead_of_dropping() {
    let f = Fixture::new(&[
        "influx.primary.batch.max_points=100",
        "influx.primary.batch.max_buffer_points=1000",
    ])
    .await;
    let w = f.influx().writer_for(&f.db);
    for n in 0..20_000 {
        w.write_wait(&seq_point("paced", n)).await.unwrap();
        assert!(w.stats().buffered <= 1_000);
    }
    w.flush().await;
    let s = w.stats();
    assert_eq!((s.written, s.dropped, s.failed), (20_000, 0, 0), "{s:?}");
    assert_eq!(f.count("paced").await, 20_000);
    f.drop_db().await;
}
