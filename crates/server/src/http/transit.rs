//! Transit routes over the live GTFS version (docs/gtfs.md#queries), and feed uploads for
//! `gtfs.import` jobs.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tsp_mobility::gtfs::{
    Departures, GtfsError, NearStops, RouteDetail, RouteInfo, departure_window,
};
use utoipa::{IntoParams, ToSchema};

use super::errors::{ApiError, ErrorBody, answer, bad_request};
use super::extract::ApiQuery;
use super::state::AppState;

/// A point and a radius, in one feed.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct StopsNearParams {
    /// Latitude, degrees (the range Redis GEO indexes).
    #[param(minimum = -85.05112878, maximum = 85.05112878)]
    lat: f64,
    /// Longitude, degrees.
    #[param(minimum = -180.0, maximum = 180.0)]
    lng: f64,
    /// Radius, kilometres.
    #[param(exclusive_minimum = 0.0, maximum = 100.0)]
    radius_km: f64,
    /// The most stops answered (default 20).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The feed (default `gtfs.feed`).
    feed: Option<String>,
}

/// A day, a time of day, and a feed.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct DeparturesParams {
    /// The day (default today, UTC).
    date: Option<NaiveDate>,
    /// From this time of day, `HH:MM` or `HH:MM:SS` (default midnight).
    #[param(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$")]
    from: Option<String>,
    /// The most departures answered (default 20).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The feed (default `gtfs.feed`).
    feed: Option<String>,
}

/// A feed.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct FeedParams {
    /// The feed (default `gtfs.feed`).
    feed: Option<String>,
}

/// `GET /routes`.
#[derive(Serialize, ToSchema)]
pub(super) struct Routes {
    /// The feed.
    feed: String,
    /// The version answered from.
    version: u32,
    /// Every route, by short name.
    routes: Vec<RouteInfo>,
}

/// `POST /gtfs/uploads`.
#[derive(Serialize, ToSchema)]
pub(super) struct Uploaded {
    /// The upload's id (its SHA-256), for a `gtfs.import` job.
    upload: String,
    /// Its size.
    bytes: usize,
}

pub(super) fn gtfs_error(e: GtfsError) -> ApiError {
    match e {
        GtfsError::BadRequest { .. } | GtfsError::Invalid(_) => bad_request(e.to_string()),
        GtfsError::NotFound(m) => ApiError::Client(StatusCode::NOT_FOUND, m),
        other => ApiError::Store(other.to_string()),
    }
}

/// Stops near a point, nearest first.
#[utoipa::path(
    get,
    path = "/stops/near",
    tag = "transit",
    params(StopsNearParams),
    responses(
        (status = 200, description = "The stops, of one version.", body = NearStops),
        (status = 400, description = "A parameter is not valid; the error names it.", body = ErrorBody),
        (status = 404, description = "The feed has no live version.", body = ErrorBody),
    )
)]
pub(super) async fn stops_near(
    State(s): State<AppState>,
    ApiQuery(p): ApiQuery<StopsNearParams>,
) -> Response {
    answer(
        async {
            let limit = p.limit.unwrap_or(20);
            s.app
                .gtfs()
                .stops_near(p.feed.as_deref(), p.lat, p.lng, p.radius_km, limit)
                .await
                .map_err(gtfs_error)
        }
        .await,
    )
}

/// Departures from a stop on a day, from a time of day, in time order.
#[utoipa::path(
    get,
    path = "/stops/{id}/departures",
    tag = "transit",
    params(("id" = String, Path, description = "The stop's `stop_id`."), DeparturesParams),
    responses(
        (status = 200, description = "The departures.", body = Departures),
        (status = 400, description = "A parameter is not valid; the error names it.", body = ErrorBody),
        (status = 404, description = "No such stop, or the feed has no live version.", body = ErrorBody),
    )
)]
pub(super) async fn departures(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<DeparturesParams>,
) -> Response {
    answer(
        async {
            let today = chrono::Utc::now().date_naive();
            let (date, from) = departure_window(None, p.from.as_deref(), p.date.unwrap_or(today))
                .map_err(gtfs_error)?;
            let limit = p.limit.unwrap_or(20);
            s.app
                .gtfs()
                .departures(p.feed.as_deref(), &id, date, from, limit)
                .await
                .map_err(gtfs_error)
        }
        .await,
    )
}

/// Every route of the live version, by short name.
#[utoipa::path(
    get,
    path = "/routes",
    tag = "transit",
    params(FeedParams),
    responses(
        (status = 200, description = "The routes.", body = Routes),
        (status = 400, description = "A parameter this route does not take.", body = ErrorBody),
        (status = 404, description = "The feed has no live version.", body = ErrorBody),
    )
)]
pub(super) async fn routes(
    State(s): State<AppState>,
    ApiQuery(p): ApiQuery<FeedParams>,
) -> Response {
    answer(
        async {
            let (feed, version, routes) = s
                .app
                .gtfs()
                .routes(p.feed.as_deref())
                .await
                .map_err(gtfs_error)?;
            Ok(Routes {
                feed,
                version,
                routes,
            })
        }
        .await,
    )
}

/// A route, its agency, and the stops of its longest trip in order.
#[utoipa::path(
    get,
    path = "/routes/{id}",
    tag = "transit",
    params(("id" = String, Path, description = "The route's `route_id`."), FeedParams),
    responses(
        (status = 200, description = "The route.", body = RouteDetail),
        (status = 400, description = "A parameter this route does not take.", body = ErrorBody),
        (status = 404, description = "No such route, or the feed has no live version.", body = ErrorBody),
    )
)]
pub(super) async fn route(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<FeedParams>,
) -> Response {
    answer(
        async {
            s.app
                .gtfs()
                .route(p.feed.as_deref(), &id)
                .await
                .map_err(gtfs_error)
        }
        .await,
    )
}

/// Upload a GTFS feed's zip for a `gtfs.import` job.
///
/// At most `gtfs.max_upload` bytes; stored in `gtfs.upload_dir` under its SHA-256.
#[utoipa::path(
    post,
    path = "/gtfs/uploads",
    tag = "transit",
    request_body(content = String, content_type = "application/zip", description = "The feed's zip archive (bytes)."),
    responses(
        (status = 200, description = "Stored.", body = Uploaded),
        (status = 400, description = "Not a zip archive.", body = ErrorBody),
    )
)]
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
            Ok(Uploaded {
                upload: id,
                bytes: body.len(),
            })
        }
        .await,
    )
}
