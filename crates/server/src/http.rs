//! The HTTP server: health probes and Prometheus metrics.
//!
//! - `GET /health`: every instance; 200 when all required stores are up, else 503.
//! - `GET /health/live`: the process answers; never touches a store (a store outage must not
//!   get the process restarted).
//! - `GET /health/ready`: 200 when every required store is up, else 503, naming those down.
//! - `GET /metrics`: Prometheus text.
//! - Jobs: `POST /jobs`, `GET /jobs/{id}`, `POST /jobs/{id}/retry`, `GET /queues`.
//! - Trips: `GET /users/{id}/stats?days=30`, `GET /users/{id}/points`,
//!   `GET /trips/near?lat&lng&radius_km[&limit]`, `GET /users/near?lat&lng&radius_km[&limit]`,
//!   `GET /analytics/engagement?days=7[&limit]`.
//!
//! Errors are JSON `{"error": "..."}`: 400 naming the parameter, 404 for an unknown user or job,
//! 503 when a store cannot answer.

use std::future::Future;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use std::collections::HashMap;
use tokio::net::TcpListener;

use tsp_hub::{Hub, Status};

use crate::app::App;
use tsp_mobility::queries::{Around, QueryError};
use tsp_queue::{JobInfo, NewJob, Queue, QueueError};

/// What every handler shares: the service's components and the metrics exporter.
#[derive(Clone)]
pub struct AppState {
    pub app: App,
    pub prometheus: Option<PrometheusHandle>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/jobs", axum::routing::post(post_job))
        .route("/jobs/{id}", get(get_job))
        .route("/jobs/{id}/retry", axum::routing::post(retry_job))
        .route("/queues", get(queues))
        .route("/users/{id}/stats", get(user_stats))
        .route("/users/{id}/points", get(user_points))
        .route("/users/near", get(users_near))
        .route("/trips/near", get(trips_near))
        .route("/analytics/engagement", get(engagement))
        .with_state(state)
}

fn code(status: Status) -> StatusCode {
    match status {
        Status::Up => StatusCode::OK,
        Status::Down => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn health(State(s): State<AppState>) -> Response {
    let h = s.app.hub().health().await;
    (code(h.status), Json(h)).into_response()
}

async fn live() -> Response {
    Json(json!({"status": "up"})).into_response()
}

async fn ready(State(s): State<AppState>) -> Response {
    let h = s.app.hub().health().await;
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
    s.app.hub().refresh_gauges();
    refresh_queue_gauges(s.app.hub()).await;
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

/// An error answer: `{"error": "…"}` naming the field when the request is at fault.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    ApiError(status, message.into()).into_response()
}

fn api_error(e: QueueError) -> ApiError {
    match e {
        QueueError::Invalid { field, message } => {
            ApiError(StatusCode::BAD_REQUEST, format!("{field}: {message}"))
        }
        QueueError::NotFound(id) => ApiError(StatusCode::NOT_FOUND, format!("job {id} not found")),
        other => ApiError(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
    }
}

fn queue_error(e: QueueError) -> Response {
    api_error(e).into_response()
}

fn queue_of(hub: &Hub, name: &str) -> Result<Queue, ApiError> {
    crate::app::queue(hub, name).map_err(api_error)
}

/// `POST /jobs` body.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PostJob {
    #[serde(rename = "type")]
    job_type: String,
    #[serde(default = "empty_object")]
    payload: serde_json::Value,
    #[serde(default = "default_queue")]
    queue: String,
    #[serde(default)]
    priority: u16,
    #[serde(default)]
    delay_ms: u64,
    dedup_key: Option<String>,
    max_attempts: Option<u32>,
    timeout_ms: Option<u64>,
}

fn empty_object() -> serde_json::Value {
    json!({})
}

fn default_queue() -> String {
    "default".into()
}

#[derive(serde::Deserialize)]
struct QueueParam {
    #[serde(default = "default_queue")]
    queue: String,
}

async fn post_job(State(s): State<AppState>, body: axum::body::Bytes) -> Response {
    let req: PostJob = match serde_json::from_slice(&body) {
        Ok(r) => r,
        // serde names the field: "missing field `type`", "unknown field `x`", "invalid type … for `priority`".
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("body: {e}")),
    };
    let q = match queue_of(s.app.hub(), &req.queue) {
        Ok(q) => q,
        Err(r) => return r.into_response(),
    };
    let mut job = NewJob::raw(req.job_type, req.payload.to_string())
        .with_priority(req.priority)
        .with_delay(std::time::Duration::from_millis(req.delay_ms));
    if let Some(k) = req.dedup_key {
        job = job.with_dedup_key(k);
    }
    if let Some(n) = req.max_attempts {
        job = job.with_max_attempts(n);
    }
    if let Some(t) = req.timeout_ms {
        job = job.with_timeout(std::time::Duration::from_millis(t));
    }
    let job = match s.app.prepare(job) {
        Ok(j) => j,
        Err(e) => return queue_error(e),
    };
    match q.enqueue(job).await {
        Ok(id) => (
            StatusCode::CREATED,
            Json(json!({"id": id, "queue": q.name()})),
        )
            .into_response(),
        Err(e) => queue_error(e),
    }
}

/// The queue and the job `id` in it, or the answer to give (400 bad id, 404 unknown job).
async fn find_job(hub: &Hub, queue: &str, id: &str) -> Result<(Queue, JobInfo), ApiError> {
    let q = queue_of(hub, queue)?;
    match q.job(id).await {
        Ok(Some(job)) => Ok((q, job)),
        Ok(None) => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("job {id} not found in queue {queue}"),
        )),
        Err(e) => Err(api_error(e)),
    }
}

async fn get_job(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(p): Query<QueueParam>,
) -> Response {
    match find_job(s.app.hub(), &p.queue, &id).await {
        Ok((_, job)) => Json(job).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn retry_job(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(p): Query<QueueParam>,
) -> Response {
    let q = match find_job(s.app.hub(), &p.queue, &id).await {
        Ok((q, _)) => q,
        Err(e) => return e.into_response(),
    };
    match q.requeue(Some(std::slice::from_ref(&id))).await {
        Ok(r) if r.requeued == 1 => Json(json!({"id": id, "requeued": true})).into_response(),
        Ok(r) if r.hook_running == 1 => error(
            StatusCode::CONFLICT,
            format!("job {id}: its dead-letter hook is running; try again shortly"),
        ),
        Ok(_) => error(
            StatusCode::CONFLICT,
            format!("job {id} is not dead-lettered"),
        ),
        Err(e) => queue_error(e),
    }
}

async fn queues(State(s): State<AppState>) -> Response {
    let store = match s.app.hub().redis(&s.app.hub().config().queue.redis) {
        Ok(st) => st.clone(),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let names = match Queue::known(&store).await {
        Ok(n) => n,
        Err(e) => return queue_error(e),
    };
    let mut out = Vec::new();
    for n in names {
        match queue_of(s.app.hub(), &n) {
            Ok(q) => match q.counts().await {
                Ok(c) => out.push(c),
                Err(e) => return queue_error(e),
            },
            Err(r) => return r.into_response(),
        }
    }
    Json(out).into_response()
}

/// Queue depth per state, for every known queue (O(1) per state).
async fn refresh_queue_gauges(hub: &Hub) {
    let Ok(store) = hub.redis(&hub.config().queue.redis) else {
        return;
    };
    let Ok(Ok(names)) =
        tokio::time::timeout(std::time::Duration::from_secs(1), Queue::known(store)).await
    else {
        return;
    };
    for n in names {
        let Ok(q) = queue_of(hub, &n) else { continue };
        if let Ok(Ok(c)) = tokio::time::timeout(std::time::Duration::from_secs(1), q.counts()).await
        {
            for (state, v) in [
                ("waiting", c.waiting),
                ("delayed", c.delayed),
                ("active", c.active),
                ("completed", c.completed),
                ("dead", c.dead),
            ] {
                metrics::gauge!(tsp_queue::metrics::DEPTH, "queue" => n.clone(), "state" => state)
                    .set(v as f64);
            }
        }
    }
}

type Params = Query<HashMap<String, String>>;

/// Refuses parameters outside `known`, so a misspelt `radius` does not silently fall back to a
/// default.
fn known_only(p: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match p.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("{unknown}: unknown parameter (known: {})", known.join(", ")),
        )),
        None => Ok(()),
    }
}

/// A query parameter parsed as `T` (`None` when absent), or a 400 naming it.
fn param<T: std::str::FromStr>(
    p: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    match p.get(name) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("{name}: `{v}` is not a valid value"),
            )
        }),
    }
}

fn user_id(id: &str) -> Result<u64, ApiError> {
    id.parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(|| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("id: `{id}` is not a user id"),
        )
    })
}

fn query_error(e: QueryError) -> ApiError {
    match e {
        QueryError::Invalid { .. } => ApiError(StatusCode::BAD_REQUEST, e.to_string()),
        QueryError::NotFound(m) => ApiError(StatusCode::NOT_FOUND, m),
        QueryError::Store(e) => ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

fn answer<T: serde::Serialize>(r: Result<T, ApiError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn user_stats(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(p): Params,
) -> Response {
    answer(
        async {
            let id = user_id(&id)?;
            known_only(&p, &["days"])?;
            let days = param::<u32>(&p, "days")?.unwrap_or(30);
            s.app
                .trips()
                .user_stats(id, days)
                .await
                .map_err(query_error)
        }
        .await,
    )
}

async fn user_points(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(p): Params,
) -> Response {
    answer(
        async {
            let id = user_id(&id)?;
            known_only(&p, &[])?;
            s.app.trips().user_points(id).await.map_err(query_error)
        }
        .await,
    )
}

const NEAR: &[&str] = &["lat", "lng", "radius_km", "limit"];

fn around(p: &HashMap<String, String>) -> Result<(Around, u32), ApiError> {
    known_only(p, NEAR)?;
    let at = Around::new(param(p, "lat")?, param(p, "lng")?, param(p, "radius_km")?)
        .map_err(query_error)?;
    Ok((at, param(p, "limit")?.unwrap_or(50)))
}

async fn trips_near(State(s): State<AppState>, Query(p): Params) -> Response {
    answer(
        async {
            let (at, limit) = around(&p)?;
            s.app
                .trips()
                .trips_near(at, limit)
                .await
                .map_err(query_error)
        }
        .await,
    )
}

async fn users_near(State(s): State<AppState>, Query(p): Params) -> Response {
    answer(
        async {
            let (at, limit) = around(&p)?;
            s.app
                .trips()
                .users_near(at, limit)
                .await
                .map_err(query_error)
        }
        .await,
    )
}

async fn engagement(State(s): State<AppState>, Query(p): Params) -> Response {
    answer(
        async {
            known_only(&p, &["days", "limit"])?;
            let days = param::<u32>(&p, "days")?.unwrap_or(7);
            let limit = param::<u32>(&p, "limit")?.unwrap_or(100);
            s.app
                .trips()
                .engagement(days, limit)
                .await
                .map_err(query_error)
        }
        .await,
    )
}
