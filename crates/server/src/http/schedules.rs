//! Schedules of repeatable jobs (operators only): list, add or replace, remove.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tsp_queue::{Schedule, ScheduleError};

use super::errors::{ApiError, answer, bad_request};
use super::state::AppState;

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

/// `GET /schedules`.
pub(super) async fn list(State(s): State<AppState>) -> Response {
    answer(async { schedules(&s)?.list().await.map_err(schedule_error) }.await)
}

/// `POST /schedules` with a schedule → 201 with it and its next run.
pub(super) async fn put(State(s): State<AppState>, body: Bytes) -> Response {
    let result = async {
        let schedule: Schedule =
            serde_json::from_slice(&body).map_err(|e| bad_request(format!("body: {e}")))?;
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

/// `DELETE /schedules/{name}`.
pub(super) async fn remove(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    answer(
        async {
            schedules(&s)?.remove(&name).await.map_err(schedule_error)?;
            Ok(json!({"removed": name}))
        }
        .await,
    )
}
