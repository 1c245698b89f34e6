//! The HTTP server: health probes and Prometheus metrics.
//!
//! - `GET /health`: every instance; 200 when all required stores are up, else 503.
//! - `GET /health/live`: the process answers; never touches a store (a store outage must not
//!   get the process restarted).
//! - `GET /health/ready`: 200 when every required store is up, else 503, naming those down.
//! - `GET /metrics`: Prometheus text.

use std::future::Future;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::net::TcpListener;
use tsp_hub::{Hub, Status};

#[derive(Clone)]
pub struct AppState {
    pub hub: Hub,
    pub prometheus: Option<PrometheusHandle>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

fn code(status: Status) -> StatusCode {
    match status {
        Status::Up => StatusCode::OK,
        Status::Down => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn health(State(s): State<AppState>) -> Response {
    let h = s.hub.health().await;
    (code(h.status), Json(h)).into_response()
}

async fn live() -> Response {
    Json(json!({"status": "up"})).into_response()
}

async fn ready(State(s): State<AppState>) -> Response {
    let h = s.hub.health().await;
    let down: Vec<String> = h
        .instances
        .iter()
        .filter(|i| i.required && i.status == Status::Down)
        .map(|i| format!("{}.{}", i.store, i.instance))
        .collect();
    (
        code(h.status),
        Json(json!({"status": h.status, "down": down})),
    )
        .into_response()
}

async fn metrics(State(s): State<AppState>) -> Response {
    s.hub.refresh_gauges();
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

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
