//! Transit routes over the live GTFS version (docs/gtfs.md#queries), and feed uploads for
//! `gtfs.import` jobs.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use tsp_mobility::gtfs::{GtfsError, departure_window};

use super::errors::{ApiError, answer, bad_request};
use super::queries::{Params, known_only, param};
use super::state::AppState;

pub(super) fn gtfs_error(e: GtfsError) -> ApiError {
    match e {
        GtfsError::BadRequest { .. } | GtfsError::Invalid(_) => bad_request(e.to_string()),
        GtfsError::NotFound(m) => ApiError::Client(StatusCode::NOT_FOUND, m),
        other => ApiError::Store(other.to_string()),
    }
}

/// `GET /stops/near?lat=&lng=&radius_km=&limit=&feed=`.
pub(super) async fn stops_near(State(s): State<AppState>, p: Params) -> Response {
    answer(
        async {
            known_only(&p, &["lat", "lng", "radius_km", "limit", "feed"])?;
            let need = |name: &str| -> Result<f64, ApiError> {
                param(&p, name)?.ok_or_else(|| bad_request(format!("{name}: required")))
            };
            let (lat, lng, radius) = (need("lat")?, need("lng")?, need("radius_km")?);
            let limit = param(&p, "limit")?.unwrap_or(20);
            s.app
                .gtfs()
                .stops_near(p.get("feed").map(String::as_str), lat, lng, radius, limit)
                .await
                .map_err(gtfs_error)
        }
        .await,
    )
}

/// `GET /stops/{id}/departures?date=YYYY-MM-DD&from=HH:MM&limit=&feed=`.
pub(super) async fn departures(
    State(s): State<AppState>,
    Path(id): Path<String>,
    p: Params,
) -> Response {
    answer(
        async {
            known_only(&p, &["date", "from", "limit", "feed"])?;
            let today = chrono::Utc::now().date_naive();
            let (date, from) = departure_window(
                p.get("date").map(String::as_str),
                p.get("from").map(String::as_str),
                today,
            )
            .map_err(gtfs_error)?;
            let limit = param(&p, "limit")?.unwrap_or(20);
            s.app
                .gtfs()
                .departures(p.get("feed").map(String::as_str), &id, date, from, limit)
                .await
                .map_err(gtfs_error)
        }
        .await,
    )
}

/// `GET /routes?feed=`.
pub(super) async fn routes(State(s): State<AppState>, p: Params) -> Response {
    answer(
        async {
            known_only(&p, &["feed"])?;
            let (feed, version, routes) = s
                .app
                .gtfs()
                .routes(p.get("feed").map(String::as_str))
                .await
                .map_err(gtfs_error)?;
            Ok(json!({"feed": feed, "version": version, "routes": routes}))
        }
        .await,
    )
}

/// `GET /routes/{id}?feed=`.
pub(super) async fn route(
    State(s): State<AppState>,
    Path(id): Path<String>,
    p: Params,
) -> Response {
    answer(
        async {
            known_only(&p, &["feed"])?;
            s.app
                .gtfs()
                .route(p.get("feed").map(String::as_str), &id)
                .await
                .map_err(gtfs_error)
        }
        .await,
    )
}

/// `POST /gtfs/uploads`: the body is a feed's zip (at most `gtfs.max_upload` bytes), stored in
/// `gtfs.upload_dir` under its SHA-256. Answers `{"upload": sha}` for a `gtfs.import` job.
pub(super) async fn upload(State(s): State<AppState>, body: Bytes) -> Response {
    answer(
        async {
            if !body.starts_with(b"PK") {
                return Err(bad_request("body: not a zip archive"));
            }
            let dir = s.app.hub().config().gtfs.upload_dir.clone();
            let id = crate::gtfs_job::store_upload(&dir, &body)
                .await
                .map_err(|e| ApiError::Store(format!("gtfs upload: {e}")))?;
            Ok(json!({"upload": id, "bytes": body.len()}))
        }
        .await,
    )
}
