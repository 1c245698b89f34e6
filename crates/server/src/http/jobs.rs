//! Job routes: enqueue (with the caller's rights and bounded options), read, retry, queues.

use std::time::Duration;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tsp_mobility::auth::{Principal, Scope};
use tsp_mobility::complete::{Claim, JOB_TYPE as TRIP_JOB};
use tsp_queue::{Cancelled, JobInfo, NewJob, Queue, QueueCounts, QueueError};
use utoipa::{IntoParams, ToSchema};

use super::caller::Caller;
use super::errors::{ApiError, ErrorBody, answer, bad_request, forbidden, queue_error};
use super::extract::{ApiJson, ApiQuery};
use super::state::AppState;

/// Priorities from here up are for operators: nobody else can jump every queue.
pub const OPERATOR_PRIORITY: u16 = 900;
/// The longest delay a job may ask for.
pub const MAX_DELAY: Duration = Duration::from_secs(30 * 24 * 3600);
/// The most attempts a job may ask for.
pub const MAX_ATTEMPTS: u32 = 25;
/// The longest attempt a job may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// A job to enqueue.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({
    "type": "trip.complete",
    "queue": "trips",
    "payload": {"tripId": "t-1", "userId": 1, "mode": "bus", "trajectory": [
        {"lat": -16.92, "lng": 145.77, "timestamp": 1_790_000_000_000_i64},
        {"lat": -16.91, "lng": 145.77, "timestamp": 1_790_000_300_000_i64}]}
}))]
#[serde(deny_unknown_fields)]
pub(super) struct PostJob {
    /// Its type: a registered handler (`trip.complete`, …).
    #[serde(rename = "type")]
    job_type: String,
    /// Its payload, as its type reads it (default `{}`).
    #[serde(default = "empty_object")]
    payload: serde_json::Value,
    /// The queue (default `default`): one that exists; only operators make new ones.
    #[serde(default = "default_queue")]
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    queue: String,
    /// Higher runs first; 900 and above are for operators.
    #[serde(default)]
    priority: u16,
    /// Run no sooner than this many milliseconds from now (at most 30 days).
    #[serde(default)]
    #[schema(maximum = 2_592_000_000_u64)]
    delay_ms: u64,
    /// While a job with this key is pending, enqueueing another answers the pending one's id.
    dedup_key: Option<String>,
    /// Attempts allowed in all (the queue's default when absent).
    #[schema(minimum = 1, maximum = 25)]
    max_attempts: Option<u32>,
    /// The bound on one attempt, milliseconds (at most one hour).
    #[schema(minimum = 1, maximum = 3_600_000_u64)]
    timeout_ms: Option<u64>,
}

/// `POST /jobs`: where the job went.
#[derive(Serialize, ToSchema)]
pub(super) struct Enqueued {
    /// The job's id (the pending job's, for a duplicate `dedup_key`).
    id: String,
    /// Its queue.
    queue: String,
}

/// `POST /jobs/{id}/retry`.
#[derive(Serialize, ToSchema)]
pub(super) struct Requeued {
    /// The job.
    id: String,
    /// Always true: it is waiting again.
    requeued: bool,
}

/// `POST /jobs/{id}/cancel`.
#[derive(Serialize, ToSchema)]
pub(super) struct JobCancelled {
    /// The job.
    id: String,
    /// Always true: it is removed.
    cancelled: bool,
}

/// `POST /queues/{name}/pause` and `resume`.
#[derive(Serialize, ToSchema)]
pub(super) struct QueuePaused {
    /// The queue.
    queue: String,
    /// Whether workers are now held from fetching.
    paused: bool,
}

fn empty_object() -> serde_json::Value {
    json!({})
}

fn default_queue() -> String {
    "default".into()
}

/// The job's queue.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct QueueParam {
    /// The queue the job is in (default `default`).
    #[serde(default = "default_queue")]
    #[param(default = "default", pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    queue: String,
}

/// Whether `who` may enqueue this job: the scope its type declares (`Registry::require`:
/// `trips:write` for `trip.complete`, `admin` for backups, imports and rollups, `jobs:write`
/// for the built-ins), or, for `trip.complete`, being the trip's own user. A type that
/// declares nothing is refused to everyone (fail closed).
fn may_enqueue(s: &AppState, who: &Principal, req: &PostJob) -> Result<(), ApiError> {
    if req.job_type == TRIP_JOB
        && who.user_id().is_some()
        && req.payload.get("userId").and_then(|v| v.as_u64()) == who.user_id()
    {
        return Ok(());
    }
    let needed = s
        .app
        .registry()
        .permission(&req.job_type)
        .and_then(Scope::parse);
    match needed {
        Some(scope) if who.has(scope) => Ok(()),
        _ => Err(forbidden()),
    }
}

/// The options a caller may set, within bounds; the top priorities are for operators.
fn bounded(who: &Principal, req: &PostJob) -> Result<(), ApiError> {
    if req.priority >= OPERATOR_PRIORITY && !who.is_operator() {
        return Err(bad_request(format!(
            "priority: {OPERATOR_PRIORITY} and above are reserved for operators"
        )));
    }
    if Duration::from_millis(req.delay_ms) > MAX_DELAY {
        return Err(bad_request("delay_ms: at most 30 days"));
    }
    if req
        .max_attempts
        .is_some_and(|n| !(1..=MAX_ATTEMPTS).contains(&n))
    {
        return Err(bad_request(format!("max_attempts: 1 to {MAX_ATTEMPTS}")));
    }
    if req
        .timeout_ms
        .is_some_and(|t| t == 0 || Duration::from_millis(t) > MAX_TIMEOUT)
    {
        return Err(bad_request("timeout_ms: above 0 and at most one hour"));
    }
    Ok(())
}

/// The queue a job may go to: one that exists (or the configured ones); only operators make
/// new queues, so a request cannot mint queues, metric labels or Influx tags.
async fn target_queue(s: &AppState, who: &Principal, name: &str) -> Result<Queue, ApiError> {
    let config = s.app.hub().config();
    let q = s.app.queue(name).map_err(queue_error)?;
    if name == "default" || name == config.trips.queue || who.is_operator() {
        return Ok(q);
    }
    let known = Queue::known(q.store()).await.map_err(queue_error)?;
    if known.iter().any(|k| k == name) {
        Ok(q)
    } else {
        Err(bad_request(format!("queue: no queue named `{name}`")))
    }
}

/// Claims the payload's trip id for its user: 409 when another user holds it, naming no one. A
/// payload without the fields is left to the job's own rules, which name them.
async fn claim_trip(s: &AppState, payload: &serde_json::Value) -> Result<(), ApiError> {
    let (Some(trip_id), Some(user)) = (
        payload.get("tripId").and_then(|v| v.as_str()),
        payload.get("userId").and_then(|v| v.as_u64()),
    ) else {
        return Ok(());
    };
    match s.app.trips().claim(trip_id, user).await {
        Ok(Claim::Granted) => Ok(()),
        Ok(Claim::Taken) => Err(ApiError::Client(
            StatusCode::CONFLICT,
            format!("tripId: `{trip_id}` is taken"),
        )),
        Err(e) => Err(ApiError::Store(e.to_string())),
    }
}

/// Enqueue a job.
///
/// The caller needs the scope its type declares, or, for `trip.complete`, to be the trip's own
/// user. The job keeps the request's id (and, on its enqueue, its trace).
#[utoipa::path(
    post,
    path = "/jobs",
    tag = "jobs",
    request_body = PostJob,
    responses(
        (status = 201, description = "Enqueued (or the pending job of its dedup key).", body = Enqueued),
        (status = 400, description = "A field is not valid; the error names it.", body = ErrorBody),
        (status = 403, description = "The caller may not enqueue this job.", body = ErrorBody),
        (status = 409, description = "The trip's id is another user's.", body = ErrorBody),
    )
)]
pub(super) async fn post_job(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: axum::http::HeaderMap,
    ApiJson(req): ApiJson<PostJob>,
) -> Response {
    let result = async {
        let who = caller.who()?;
        if !s.app.registry().types().contains(&req.job_type) {
            return Err(bad_request(format!("type: no job type `{}`", req.job_type)));
        }
        may_enqueue(&s, who, &req)?;
        bounded(who, &req)?;
        let q = target_queue(&s, who, &req.queue).await?;
        let is_trip = req.job_type == TRIP_JOB;
        let payload = req.payload.clone();
        let mut job = NewJob::raw(req.job_type, req.payload.to_string())
            .with_priority(req.priority)
            .with_delay(Duration::from_millis(req.delay_ms));
        if let Some(k) = req.dedup_key {
            job = job.with_dedup_key(k);
        }
        // Set by the outermost layer: the client's own when fit, else a fresh one.
        if let Some(id) = headers.get(super::REQUEST_ID).and_then(|v| v.to_str().ok()) {
            job = job.with_request_id(id);
        }
        if let Some(n) = req.max_attempts {
            job = job.with_max_attempts(n);
        }
        if let Some(t) = req.timeout_ms {
            job = job.with_timeout(Duration::from_millis(t));
        }
        let job = s.app.prepare(job).map_err(queue_error)?;
        if is_trip {
            claim_trip(&s, &payload).await?;
        }
        let id = q.enqueue(job).await.map_err(queue_error)?;
        Ok((id, q.name().to_string()))
    }
    .await;
    match result {
        Ok((id, queue)) => (StatusCode::CREATED, Json(Enqueued { id, queue })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The queue and the job `id` in it, or the answer to give (400 bad id, 404 unknown job).
async fn find_job(s: &AppState, queue: &str, id: &str) -> Result<(Queue, JobInfo), ApiError> {
    let q = s.app.queue(queue).map_err(queue_error)?;
    match q.job(id).await {
        Ok(Some(job)) => Ok((q, job)),
        Ok(None) => Err(ApiError::Client(
            StatusCode::NOT_FOUND,
            format!("job {id} not found in queue {queue}"),
        )),
        Err(e) => Err(queue_error(e)),
    }
}

/// A job: its state, attempts, errors and result.
///
/// With `jobs:read`, any job; a user, only a job whose payload is theirs (any other id is 403,
/// whether it exists or not).
#[utoipa::path(
    get,
    path = "/jobs/{id}",
    tag = "jobs",
    params(("id" = String, Path, pattern = "^[!-9;-z|~]{1,64}$", description = "The job's id."), QueueParam),
    responses(
        (status = 200, description = "The job.", body = JobInfo),
        (status = 400, description = "A parameter is not valid; the error names it.", body = ErrorBody),
        (status = 403, description = "Not the caller's job.", body = ErrorBody),
        (status = 404, description = "No such job in the queue.", body = ErrorBody),
    )
)]
pub(super) async fn get_job(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<QueueParam>,
) -> Response {
    answer(
        async {
            let who = caller.who()?;
            if who.has(Scope::JobsRead) {
                return find_job(&s, &p.queue, &id).await.map(|(_, j)| j);
            }
            let Some(user) = who.user_id() else {
                return Err(forbidden());
            };
            match find_job(&s, &p.queue, &id).await {
                Ok((_, job))
                    if job.payload.get("userId").and_then(|v| v.as_u64()) == Some(user) =>
                {
                    Ok(job)
                }
                Ok(_) | Err(ApiError::Client(StatusCode::NOT_FOUND, _)) => Err(forbidden()),
                Err(e) => Err(e),
            }
        }
        .await,
    )
}

/// Run a dead job again.
#[utoipa::path(
    post,
    path = "/jobs/{id}/retry",
    tag = "jobs",
    params(("id" = String, Path, pattern = "^[!-9;-z|~]{1,64}$", description = "The job's id."), QueueParam),
    responses(
        (status = 200, description = "It is waiting again.", body = Requeued),
        (status = 400, description = "A parameter is not valid; the error names it.", body = ErrorBody),
        (status = 404, description = "No such job in the queue.", body = ErrorBody),
        (status = 409, description = "The job is not dead, or its dead-letter hook is running.", body = ErrorBody),
    )
)]
pub(super) async fn retry_job(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<QueueParam>,
) -> Response {
    let result = async {
        let (q, _) = find_job(&s, &p.queue, &id).await?;
        let r = q
            .requeue(Some(std::slice::from_ref(&id)))
            .await
            .map_err(queue_error)?;
        if r.requeued == 1 {
            return Ok(Requeued { id, requeued: true });
        }
        let why = if r.hook_running == 1 {
            format!("job {id}: its dead-letter hook is running; try again shortly")
        } else {
            format!("job {id} is not dead-lettered")
        };
        Err(ApiError::Client(StatusCode::CONFLICT, why))
    }
    .await;
    answer(result)
}

/// Cancel a waiting or delayed job: it is removed.
#[utoipa::path(
    post,
    path = "/jobs/{id}/cancel",
    tag = "jobs",
    params(("id" = String, Path, pattern = "^[!-9;-z|~]{1,64}$", description = "The job's id."), QueueParam),
    responses(
        (status = 200, description = "It is removed.", body = JobCancelled),
        (status = 400, description = "A parameter is not valid; the error names it.", body = ErrorBody),
        (status = 404, description = "No such job in the queue.", body = ErrorBody),
        (status = 409, description = "The job is active, finished or dead.", body = ErrorBody),
    )
)]
pub(super) async fn cancel_job(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<QueueParam>,
) -> Response {
    let result = async {
        let q = s.app.queue(&p.queue).map_err(queue_error)?;
        let answer = q
            .cancel(std::slice::from_ref(&id))
            .await
            .map_err(queue_error)?;
        match answer.first() {
            Some(Cancelled::Cancelled) => Ok(JobCancelled {
                id: id.clone(),
                cancelled: true,
            }),
            Some(Cancelled::Missing) | None => Err(ApiError::Client(
                StatusCode::NOT_FOUND,
                format!("job {id} not found in queue {}", p.queue),
            )),
            Some(other) => Err(ApiError::Client(
                StatusCode::CONFLICT,
                format!(
                    "job {id} is {}: only waiting and delayed jobs can be cancelled",
                    json!(other).as_str().unwrap_or("")
                ),
            )),
        }
    }
    .await;
    answer(result)
}

/// Every known queue's counts.
#[utoipa::path(
    get,
    path = "/queues",
    tag = "jobs",
    responses((status = 200, description = "One entry per queue.", body = Vec<QueueCounts>))
)]
pub(super) async fn queues(State(s): State<AppState>) -> Response {
    let result = async {
        let q = s.app.queue("default").map_err(queue_error)?;
        let names = Queue::known(q.store()).await.map_err(queue_error)?;
        let mut out = Vec::new();
        for n in names {
            let q = s.app.queue(&n).map_err(queue_error)?;
            out.push(q.counts().await.map_err(queue_error)?);
        }
        Ok::<_, ApiError>(out)
    }
    .await;
    answer(result)
}

async fn set_paused(s: &AppState, name: &str, paused: bool) -> Result<QueuePaused, ApiError> {
    let q = s.app.queue(name).map_err(queue_error)?;
    let done: Result<(), QueueError> = if paused {
        q.pause().await
    } else {
        q.resume().await
    };
    done.map_err(queue_error)?;
    Ok(QueuePaused {
        queue: name.to_string(),
        paused,
    })
}

/// Pause a queue: workers stop fetching from it.
#[utoipa::path(
    post,
    path = "/queues/{name}/pause",
    tag = "jobs",
    params(("name" = String, Path, pattern = "^[A-Za-z0-9_.-]{1,64}$", description = "The queue.")),
    responses(
        (status = 200, description = "Paused.", body = QueuePaused),
        (status = 400, description = "Not a queue name.", body = ErrorBody),
    )
)]
pub(super) async fn pause(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    answer(set_paused(&s, &name, true).await)
}

/// Resume a paused queue.
#[utoipa::path(
    post,
    path = "/queues/{name}/resume",
    tag = "jobs",
    params(("name" = String, Path, pattern = "^[A-Za-z0-9_.-]{1,64}$", description = "The queue.")),
    responses(
        (status = 200, description = "Resumed.", body = QueuePaused),
        (status = 400, description = "Not a queue name.", body = ErrorBody),
    )
)]
pub(super) async fn resume(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    answer(set_paused(&s, &name, false).await)
}
