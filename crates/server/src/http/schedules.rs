//! Schedules of repeatable jobs (operators only): list, add or replace, remove.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tsp_queue::{Schedule, ScheduleError, ScheduleState};
use utoipa::ToSchema;

use super::errors::{ApiError, ErrorBody, answer, bad_request};
use super::extract::ApiJson;
use super::state::AppState;

/// `DELETE /schedules/{name}`.
#[derive(Serialize, ToSchema)]
pub(super) struct Removed {
    /// The schedule removed.
    removed: String,
}

fn schedule_error(e: ScheduleError) -> ApiError {
    match e {
        ScheduleError::Invalid { .. } => bad_request(e.to_string()),
        ScheduleError::NotFound(_) => ApiError::Client(StatusCode::NOT_FOUND, e.to_string()),
        ScheduleError::Queue(q) => super::errors::queue_error(q),
    }
}

fn schedules(s: &AppState) -> Result<tsp_queue::Schedules, ApiError> {
    Ok(s.app.schedules())
}

/// Every schedule, with its next run.
#[utoipa::path(
    get,
    path = "/schedules",
    tag = "schedules",
    responses((status = 200, description = "The schedules.", body = Vec<ScheduleState>))
)]
pub(super) async fn list_schedules(State(s): State<AppState>) -> Response {
    answer(async { schedules(&s)?.list().await.map_err(schedule_error) }.await)
}

/// Add or replace a schedule.
#[utoipa::path(
    post,
    path = "/schedules",
    tag = "schedules",
    request_body = Schedule,
    responses(
        (status = 201, description = "The schedule and its next run.", body = ScheduleState),
        (status = 400, description = "A field is not valid; the error names it.", body = ErrorBody),
    )
)]
pub(super) async fn put_schedule(
    State(s): State<AppState>,
    ApiJson(schedule): ApiJson<Schedule>,
) -> Response {
    let result = async {
        if schedule.declared {
            // Only the configuration declares: a declared schedule is removed by the reconcile
            // once the configuration drops it (docs/queue.md#schedules).
            return Err(bad_request(
                "declared: only schedules.<name>.* in the configuration declare a schedule",
            ));
        }
        if !s.app.registry().types().contains(&schedule.job_type) {
            return Err(bad_request(format!(
                "job_type: no job type `{}`",
                schedule.job_type
            )));
        }
        schedules(&s)?.put(schedule).await.map_err(schedule_error)
    }
    .await;
    match result {
        Ok(state) => (StatusCode::CREATED, Json(state)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Remove a schedule.
#[utoipa::path(
    delete,
    path = "/schedules/{name}",
    tag = "schedules",
    params(("name" = String, Path, pattern = "^[A-Za-z0-9_.-]{1,64}$", description = "The schedule.")),
    responses(
        (status = 200, description = "Removed.", body = Removed),
        (status = 400, description = "Not a schedule name.", body = ErrorBody),
        (status = 404, description = "No such schedule.", body = ErrorBody),
    )
)]
pub(super) async fn remove_schedule(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Response {
    answer(
        async {
            schedules(&s)?.remove(&name).await.map_err(schedule_error)?;
            Ok(Removed { removed: name })
        }
        .await,
    )
}
