//! Health probes and Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tsp_hub::{HubHealth, Rotation, Status};
use utoipa::ToSchema;

use super::errors::{ErrorBody, error};
use super::state::AppState;
use crate::build_info::BuildInfo;

/// `GET /health`: every instance, and this build.
#[derive(Serialize, ToSchema)]
pub(super) struct HealthReport {
    #[serde(flatten)]
    hub: HubHealth,
    /// This build.
    service: BuildInfo,
}

/// `GET /health/live`.
#[derive(Serialize, ToSchema)]
pub(super) struct Live {
    /// Always `up`: the process answers.
    status: Status,
}

/// `GET /health/ready`.
#[derive(Serialize, ToSchema)]
pub(super) struct Ready {
    /// Up when every required store is.
    status: Status,
    /// Required stores that are down, as `store.instance`.
    down: Vec<String>,
    /// Required stores that answer pings but not reads.
    degraded: Vec<String>,
}

/// `POST /admin/reload`.
#[derive(Serialize, ToSchema)]
pub(super) struct Reloaded {
    /// What the reload did for each instance.
    instances: Vec<Rotation>,
}

fn code(status: Status) -> StatusCode {
    match status {
        Status::Up => StatusCode::OK,
        Status::Degraded | Status::Down => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Every store instance, with versions and pools, and this build.
#[utoipa::path(
    get,
    path = "/health",
    tag = "service",
    responses(
        (status = 200, description = "Every required instance is up.", body = HealthReport),
        (status = 503, description = "A required instance is down or degraded.", body = HealthReport),
    )
)]
pub(super) async fn health(State(s): State<AppState>) -> Response {
    let hub = s.app.hub().health().await;
    let status = code(hub.status);
    let service = crate::build_info::build_info();
    (status, Json(HealthReport { hub, service })).into_response()
}

/// Liveness: the process answers.
///
/// Never touches a store: a store outage must not get the process restarted.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "service",
    responses((status = 200, description = "The process answers.", body = Live))
)]
pub(super) async fn live() -> Response {
    Json(Live { status: Status::Up }).into_response()
}

/// Readiness: every required store is up.
///
/// 503 names the required stores down, and those degraded (answering pings, not reads).
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "service",
    responses(
        (status = 200, description = "Every required store is up.", body = Ready),
        (status = 503, description = "A required store is down or degraded.", body = Ready),
    )
)]
pub(super) async fn ready(State(s): State<AppState>) -> Response {
    let h = s.app.hub().health().await;
    let required = |status: Status| -> Vec<String> {
        h.instances
            .iter()
            .filter(|i| i.required && i.status == status)
            .map(|i| format!("{}.{}", i.store, i.instance))
            .collect()
    };
    let body = Ready {
        status: h.status,
        down: required(Status::Down),
        degraded: required(Status::Degraded),
    };
    (code(h.status), Json(body)).into_response()
}

/// Reload the configuration and take new store credentials that work.
///
/// Every instance's new credentials are tried on a fresh connection first
/// (docs/store-security.md#rotation); refused ones leave the old ones in use.
#[utoipa::path(
    post,
    path = "/admin/reload",
    tag = "service",
    responses(
        (status = 200, description = "Each instance's outcome.", body = Reloaded),
        (status = 409, description = "Some new credentials were refused; the old ones stay in use.", body = Reloaded),
        (status = 422, description = "The configuration does not load.", body = ErrorBody),
        (status = 503, description = "This process does not reload credentials, or a store is unavailable.", body = ErrorBody),
    )
)]
pub(super) async fn reload(State(s): State<AppState>) -> Response {
    let Some(reloader) = &s.reloader else {
        let why = "this process does not reload credentials";
        return error(StatusCode::SERVICE_UNAVAILABLE, why);
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
            (status, Json(Reloaded { instances: done })).into_response()
        }
        Err(e) => {
            let why = crate::error_chain(&anyhow::Error::new(e));
            error(StatusCode::UNPROCESSABLE_ENTITY, why)
        }
    }
}

/// Prometheus metrics (docs/metrics.md).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    responses(
        (status = 200, description = "The Prometheus text format.", content_type = "text/plain; version=0.0.4", body = String),
        (status = 503, description = "No metrics recorder in this process.", body = ErrorBody),
    )
)]
pub(super) async fn metrics(State(s): State<AppState>) -> Response {
    s.app.hub().refresh_gauges();
    refresh_queue_gauges(&s.app).await;
    match &s.prometheus {
        Some(p) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            p.render(),
        )
            .into_response(),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed",
        ),
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

/// The OpenAPI document of this API (docs/api.md#contract).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "service",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", content_type = "application/json", body = Object))
)]
pub(super) async fn openapi(State(s): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], s.openapi).into_response()
}
