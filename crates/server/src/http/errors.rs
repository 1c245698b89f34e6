//! Error answers: JSON `{"error": "…"}`. A request's own mistakes are named (400 with the
//! field). A store's failure is 503; its detail (driver text, store and instance names) is kept
//! in the response's extensions, and the guard shows it to operators only and logs it with the
//! request id (docs/security.md).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tsp_mobility::auth::Throttled;
use tsp_mobility::queries::QueryError;
use tsp_queue::QueueError;

/// What a non-operator is told when a store fails.
pub(super) const UNAVAILABLE: &str = "a store is unavailable; retry later";

/// The detail of a store failure, for operators and the log.
#[derive(Debug, Clone)]
pub(super) struct StoreFailure(pub(super) String);

/// An error answer.
#[derive(Debug)]
pub(super) enum ApiError {
    /// The request is at fault (or not allowed); the message is for the caller.
    Client(StatusCode, String),
    /// A store failed; the detail is not the caller's business unless they operate the service.
    Store(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Client(status, message) => error(status, message),
            ApiError::Store(detail) => {
                let mut r = error(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE);
                r.extensions_mut().insert(StoreFailure(detail));
                r
            }
        }
    }
}

/// The body of every error answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct ErrorBody {
    /// What went wrong, naming the field at fault (`days: must be 1 to 366`).
    pub(super) error: String,
}

pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        error: message.into(),
    };
    (status, Json(body)).into_response()
}

pub(super) fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::Client(StatusCode::BAD_REQUEST, message.into())
}

pub(super) fn forbidden() -> ApiError {
    ApiError::Client(StatusCode::FORBIDDEN, "forbidden".into())
}

pub(super) fn queue_error(e: QueueError) -> ApiError {
    match e {
        QueueError::Invalid { field, message } => bad_request(format!("{field}: {message}")),
        QueueError::NotFound(id) => {
            ApiError::Client(StatusCode::NOT_FOUND, format!("job {id} not found"))
        }
        other => ApiError::Store(other.to_string()),
    }
}

pub(super) fn query_error(e: QueryError) -> ApiError {
    match e {
        QueryError::Invalid { .. } => bad_request(e.to_string()),
        QueryError::NotFound(m) => ApiError::Client(StatusCode::NOT_FOUND, m),
        QueryError::Store(e) => ApiError::Store(e.to_string()),
    }
}

/// A JSON answer, or the error's.
pub(super) fn answer<T: serde::Serialize>(r: Result<T, ApiError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// An error answered in plain text by a layer or extractor outside the handlers (tower-http's
/// body limit: `length limit exceeded`; axum's path and body rejections), in the common error
/// body with the same status and words.
pub(super) async fn json_refusals(r: Response) -> Response {
    let plain = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    if !(plain && (r.status().is_client_error() || r.status().is_server_error())) {
        return r;
    }
    let status = r.status();
    let text = axum::body::to_bytes(r.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => format!("body: larger than the limit ({text})"),
        _ if text.is_empty() => status.canonical_reason().unwrap_or("error").to_lowercase(),
        _ => text,
    };
    error(status, message)
}

/// No route here.
pub(super) async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such route")
}

/// 401, naming the scheme a client should answer with.
pub(super) fn unauthorized() -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, "unauthorized");
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// 429 with `Retry-After`: when the limit lets the caller in again.
pub(in crate::http) fn too_many(t: Throttled) -> Response {
    let secs = t.retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, "too many requests");
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}
