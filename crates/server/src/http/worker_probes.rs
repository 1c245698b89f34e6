//! The probes of a `tsp-job worker` process (`--listen`): live, ready (503 with the cause once
//! the worker gave outcomes up, docs/queue.md#acknowledgements) and Prometheus metrics. A worker
//! serves nothing else.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tsp_queue::WorkerHealth;

#[derive(Clone)]
struct Probes {
    health: WorkerHealth,
    prometheus: Option<PrometheusHandle>,
}

/// The worker's probe routes.
pub fn worker_router(health: WorkerHealth, prometheus: Option<PrometheusHandle>) -> Router {
    Router::new()
        .route(
            "/health/live",
            get(|| async { Json(json!({"status": "up"})) }),
        )
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(Probes { health, prometheus })
}

async fn ready(State(p): State<Probes>) -> Response {
    match p.health.reason() {
        None => Json(json!({"status": "up"})).into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "down", "reason": reason})),
        )
            .into_response(),
    }
}

async fn metrics(State(p): State<Probes>) -> Response {
    match &p.prometheus {
        Some(h) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed\n",
        )
            .into_response(),
    }
}
