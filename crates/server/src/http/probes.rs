//! Health probes and Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tsp_hub::Status;

use super::state::AppState;

fn code(status: Status) -> StatusCode {
    match status {
        Status::Up => StatusCode::OK,
        Status::Degraded | Status::Down => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// `GET /health`: this build (`service`), then every instance, with versions and pools
/// (operators only).
pub(super) async fn health(State(s): State<AppState>) -> Response {
    let h = s.app.hub().health().await;
    let status = code(h.status);
    let mut body = serde_json::to_value(&h).unwrap_or_else(|_| json!({}));
    if let Some(o) = body.as_object_mut() {
        let service = serde_json::to_value(crate::build_info::build_info()).unwrap_or_default();
        o.insert("service".into(), service);
    }
    (status, Json(body)).into_response()
}

/// `GET /health/live`: the process answers; never touches a store (a store outage must not get
/// the process restarted).
pub(super) async fn live() -> Response {
    Json(json!({"status": "up"})).into_response()
}

/// `GET /health/ready`: 200 when every required store is up, else 503 naming those down and
/// those degraded (answering pings, not reads).
pub(super) async fn ready(State(s): State<AppState>) -> Response {
    let h = s.app.hub().health().await;
    let required = |status: Status| -> Vec<String> {
        h.instances
            .iter()
            .filter(|i| i.required && i.status == status)
            .map(|i| format!("{}.{}", i.store, i.instance))
            .collect()
    };
    let body = json!({
        "status": h.status,
        "down": required(Status::Down),
        "degraded": required(Status::Degraded),
    });
    (code(h.status), Json(body)).into_response()
}

/// `POST /admin/reload`: loads the configuration again and takes every instance's new
/// credentials that work (docs/store-security.md#rotation). 200 with each instance's outcome;
/// 409 when some were refused (the old ones stay in use); 422 when the configuration does not
/// load.
pub(super) async fn reload(State(s): State<AppState>) -> Response {
    let Some(reloader) = &s.reloader else {
        let body = json!({"error": "this process does not reload credentials"});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    };
    match reloader.reload("POST /admin/reload").await {
        Ok(done) => {
            let refused = done
                .iter()
                .any(|r| r.outcome == tsp_hub::RotationOutcome::Refused);
            let status = if refused {
                StatusCode::CONFLICT
            } else {
                StatusCode::OK
            };
            (status, Json(json!({"instances": done}))).into_response()
        }
        Err(e) => {
            let body = json!({"error": crate::error_chain(&anyhow::Error::new(e))});
            (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
        }
    }
}

/// `GET /metrics`: Prometheus text.
pub(super) async fn metrics(State(s): State<AppState>) -> Response {
    s.app.hub().refresh_gauges();
    refresh_queue_gauges(&s.app).await;
    match &s.prometheus {
        Some(p) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            p.render(),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed\n",
        )
            .into_response(),
    }
}

/// Queue depth per state and the age of the oldest waiting job, for every known queue (O(1) per
/// state; the age is O(priorities in use + workers)).
async fn refresh_queue_gauges(app: &crate::app::App) {
    let store = &app.stores().queue;
    let wait = std::time::Duration::from_secs(1);
    let Ok(Ok(names)) = tokio::time::timeout(wait, tsp_queue::Queue::known(store)).await else {
        return;
    };
    for n in names {
        let Ok(q) = app.queue(&n) else {
            continue;
        };
        if let Ok(Ok(c)) = tokio::time::timeout(wait, q.counts()).await {
            for (state, v) in [
                ("waiting", c.waiting),
                ("delayed", c.delayed),
                ("active", c.active),
                ("completed", c.completed),
                ("dead", c.dead),
                ("dead_hook_pending", c.dead_unhandled),
            ] {
                metrics::gauge!(tsp_queue::metrics::DEPTH, "queue" => n.clone(), "state" => state)
                    .set(v as f64);
            }
        }
        if let Ok(Ok(g)) = tokio::time::timeout(wait, q.glance()).await {
            let now = chrono::Utc::now().timestamp_millis();
            let age = g.oldest_waiting_ms.map_or(0, |made| (now - made).max(0));
            metrics::gauge!(tsp_queue::metrics::OLDEST_WAITING, "queue" => n.clone())
                .set(age as f64 / 1000.0);
        }
    }
}
