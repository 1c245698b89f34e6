//! The API as a client sees it: requests with a bearer, logins, and trip payloads.

use reqwest::Method;
use serde_json::{Value, json};

use super::{PASSWORD, Server};

/// A request with an optional bearer: (status, headers, JSON body or Null).
pub async fn call(
    server: &Server,
    method: Method,
    path: &str,
    credential: Option<&str>,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", server.base));
    if let Some(c) = credential {
        req = req.bearer_auth(c);
    }
    if let Some(b) = body {
        req = match tsp_server::http::body_type(path) {
            "application/json" => req.json(&b),
            other => req.header("content-type", other).body(b.to_string()),
        };
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

pub async fn login(server: &Server, body: Value) -> (u16, Value) {
    let (code, _, v) = call(server, Method::POST, "/auth/login", None, Some(body)).await;
    (code, v)
}

pub async fn get(server: &Server, path: &str, credential: &str) -> (u16, Value) {
    let (code, _, v) = call(server, Method::GET, path, Some(credential), None).await;
    (code, v)
}

pub async fn token_of(server: &Server, email: &str) -> String {
    let (code, v) = login(server, json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(code, 200, "{v}");
    v["token"].as_str().unwrap().to_string()
}

/// A bus trip due north, `steps` steps of 0.01° a minute each, ending an hour ago.
pub fn trip(id: &str, user: u64, steps: usize, minutes_per_step: i64) -> Value {
    let end = tsp_testkit::trip_end(3_600_000, steps as i64 * minutes_per_step * 60_000);
    let points: Vec<Value> = (0..=steps)
        .map(|k| {
            json!({"lat": -16.9 + 0.01 * k as f64, "lng": 145.75,
                   "timestamp": end - (steps - k) as i64 * minutes_per_step * 60_000})
        })
        .collect();
    json!({"tripId": id, "userId": user, "mode": "bus", "trajectory": points})
}

/// `GET /console/events` with an operator's session, once its first event (the overview) came.
pub async fn console_stream(server: &Server, token: &str) -> reqwest::Response {
    let mut stream = reqwest::Client::new()
        .get(format!("{}/console/events", server.base))
        .header("cookie", format!("tsp_console={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), stream.chunk())
        .await
        .unwrap()
        .unwrap();
    assert!(first.is_some_and(|c| String::from_utf8_lossy(&c).contains("overview")));
    stream
}

/// Whether `stream` ends within `limit`.
pub async fn ends_within(mut stream: reqwest::Response, limit: std::time::Duration) -> bool {
    tokio::time::timeout(limit, async {
        while stream.chunk().await.unwrap_or(None).is_some() {}
    })
    .await
    .is_ok()
}
