//! Read routes over the trip data: a user's stats and points (theirs only, unless the caller
//! reads users), nearby trips and users, engagement analytics.

use axum::extract::{Extension, Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tsp_mobility::analytics::EngagementReport;
use tsp_mobility::auth::Scope;
use tsp_mobility::cells::{Cell, MIN_USERS};
use tsp_mobility::queries::{Around, Cached, MAX_LIMIT, NearTrip, NearUser, UserPoints, UserStats};
use utoipa::{IntoParams, ToSchema};

use super::caller::Caller;
use super::errors::{ApiError, ErrorBody, answer, bad_request, forbidden, query_error};
use super::extract::ApiQuery;
use super::state::AppState;

/// A route that takes no query parameters: any is refused, so a misspelt one does not go
/// unnoticed.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct NoParams {}

/// `?days=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct StatsParams {
    /// The window, in days back from now (default 30).
    #[param(minimum = 1, maximum = 366)]
    days: Option<u32>,
}

/// A point and a radius.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct NearParams {
    /// Latitude, degrees (the range Redis GEO indexes).
    #[param(minimum = -85.05112878, maximum = 85.05112878)]
    lat: f64,
    /// Longitude, degrees.
    #[param(minimum = -180.0, maximum = 180.0)]
    lng: f64,
    /// Radius, kilometres.
    #[param(exclusive_minimum = 0.0, maximum = 100.0)]
    radius_km: f64,
    /// The most answered (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// `?days=&limit=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct EngagementParams {
    /// The window, in days back from now (default 7).
    #[param(minimum = 1, maximum = 366)]
    days: Option<u32>,
    /// The most users answered (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// `GET /trips/near`: every trip (with `users:read`), or the caller's own and counts per cell.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(super) enum TripsNear {
    /// With `users:read`: every trip starting near the point.
    All(Vec<NearTrip>),
    /// Anyone else: their own trips, and counts per cell.
    Cells(TripCells),
}

/// The caller's own trips near a point, and counts of everyone's per cell.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct TripCells {
    /// The caller's own trips there (none for a key).
    own: Vec<NearTrip>,
    /// Cells of at least `minUsers` distinct users.
    cells: Vec<Cell>,
    /// The fewest distinct users a cell must hold to be shown.
    min_users: usize,
}

/// `GET /users/near`: every user (with `users:read`), or the caller's own position and counts.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(super) enum UsersNear {
    /// With `users:read`: users and distances.
    All(Vec<NearUser>),
    /// Anyone else: their own position there, and counts per cell.
    Cells(UserCells),
}

/// The caller's own position near a point, and counts of users per cell.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct UserCells {
    /// The caller, when near the point.
    own: Option<NearUser>,
    /// Cells of at least `minUsers` distinct users.
    cells: Vec<Cell>,
    /// The fewest distinct users a cell must hold to be shown.
    min_users: usize,
}

/// A user id: 1 to 2^63 - 1 (the document's int64).
fn user_id(id: &str) -> Result<u64, ApiError> {
    id.parse::<u64>()
        .ok()
        .filter(|&n| n > 0 && i64::try_from(n).is_ok())
        .ok_or_else(|| bad_request(format!("id: `{id}` is not a user id")))
}

/// The user `id` names, if the caller may read their data: the user themselves, or a caller
/// holding `scope` (operators hold their role's scopes).
pub(super) fn readable_user(caller: &Caller, id: &str, scope: Scope) -> Result<u64, ApiError> {
    let id = user_id(id)?;
    let who = caller.who()?;
    if who.user_id() == Some(id) || who.has(scope) {
        Ok(id)
    } else {
        Err(forbidden())
    }
}

/// A user's completed trips over the last days: the user themselves, or `users:read`.
#[utoipa::path(
    get,
    path = "/users/{id}/stats",
    tag = "users",
    params(("id" = u64, Path, minimum = 1, description = "The user."), StatsParams),
    responses(
        (status = 200, description = "Their stats.", body = Cached<UserStats>),
        (status = 400, description = "A parameter is not valid; the error names it.", body = ErrorBody),
        (status = 403, description = "Another user's stats.", body = ErrorBody),
        (status = 404, description = "No such user.", body = ErrorBody),
    )
)]
pub(super) async fn user_stats(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<StatsParams>,
) -> Response {
    answer(
        async {
            let id = readable_user(&caller, &id, Scope::UsersRead)?;
            let days = p.days.unwrap_or(30);
            s.app
                .trips()
                .user_stats(id, days)
                .await
                .map_err(query_error)
        }
        .await,
    )
}

/// A user's points: earned, redeemed, balance. The user themselves, or `users:read`.
#[utoipa::path(
    get,
    path = "/users/{id}/points",
    tag = "users",
    params(("id" = u64, Path, minimum = 1, description = "The user."), NoParams),
    responses(
        (status = 200, description = "Their points.", body = Cached<UserPoints>),
        (status = 400, description = "Not a user id, or a parameter this route does not take.", body = ErrorBody),
        (status = 403, description = "Another user's points.", body = ErrorBody),
        (status = 404, description = "No such user.", body = ErrorBody),
    )
)]
pub(super) async fn user_points(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiQuery(NoParams {}): ApiQuery<NoParams>,
) -> Response {
    answer(
        async {
            let id = readable_user(&caller, &id, Scope::UsersRead)?;
            s.app.trips().user_points(id).await.map_err(query_error)
        }
        .await,
    )
}

fn around(p: &NearParams) -> Result<(Around, u32), ApiError> {
    let at = Around::new(Some(p.lat), Some(p.lng), Some(p.radius_km)).map_err(query_error)?;
    Ok((at, p.limit.unwrap_or(50)))
}

/// Trips starting near a point.
///
/// With `users:read`, every trip. Anyone else gets their own trips there (a user) and counts
/// per cell of at least a kilometre, shown only for cells of at least five distinct users:
/// nothing that pins another user's trip (docs/security.md#whereabouts).
#[utoipa::path(
    get,
    path = "/trips/near",
    tag = "users",
    params(NearParams),
    responses(
        (status = 200, description = "Trips, or counts per cell.", body = TripsNear),
        (status = 400, description = "A parameter is not valid; the error names it.", body = ErrorBody),
    )
)]
pub(super) async fn trips_near(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(p): ApiQuery<NearParams>,
) -> Response {
    answer(
        async {
            let who = caller.who()?;
            let (at, limit) = around(&p)?;
            let trips = s.app.trips();
            if who.has(Scope::UsersRead) {
                let all = trips.trips_near(at, limit).await.map_err(query_error)?;
                return Ok(TripsNear::All(all));
            }
            let own = match who.user_id() {
                Some(id) => trips
                    .own_trips_near(id, at, limit)
                    .await
                    .map_err(query_error)?,
                None => Vec::new(),
            };
            let cells = trips.trip_cells(at).await.map_err(query_error)?;
            Ok(TripsNear::Cells(TripCells {
                own,
                cells,
                min_users: MIN_USERS,
            }))
        }
        .await,
    )
}

/// Users near a point.
///
/// With `users:read`, users and distances. Anyone else gets their own position there (a user)
/// and counts of users per cell, as `/trips/near` does.
#[utoipa::path(
    get,
    path = "/users/near",
    tag = "users",
    params(NearParams),
    responses(
        (status = 200, description = "Users, or counts per cell.", body = UsersNear),
        (status = 400, description = "A parameter is not valid; the error names it.", body = ErrorBody),
    )
)]
pub(super) async fn users_near(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(p): ApiQuery<NearParams>,
) -> Response {
    answer(
        async {
            let who = caller.who()?;
            let (at, limit) = around(&p)?;
            let trips = s.app.trips();
            if who.has(Scope::UsersRead) {
                let users = trips.users_near(at, limit).await.map_err(query_error)?;
                return Ok(UsersNear::All(users));
            }
            let me = match who.user_id() {
                Some(id) => trips
                    .users_near(at, MAX_LIMIT)
                    .await
                    .map_err(query_error)?
                    .into_iter()
                    .find(|u| u.user_id == id),
                None => None,
            };
            let cells = trips.user_cells(at).await.map_err(query_error)?;
            Ok(UsersNear::Cells(UserCells {
                own: me,
                cells,
                min_users: MIN_USERS,
            }))
        }
        .await,
    )
}

/// Per user over the last days: trips, distance, duration, modes; most trips first.
#[utoipa::path(
    get,
    path = "/analytics/engagement",
    tag = "analytics",
    params(EngagementParams),
    responses(
        (status = 200, description = "One row per user.", body = Cached<EngagementReport>),
        (status = 400, description = "A parameter is not valid; the error names it.", body = ErrorBody),
    )
)]
pub(super) async fn engagement(
    State(s): State<AppState>,
    ApiQuery(p): ApiQuery<EngagementParams>,
) -> Response {
    answer(
        async {
            let days = p.days.unwrap_or(7);
            let limit = p.limit.unwrap_or(100);
            s.app
                .trips()
                .engagement(days, limit)
                .await
                .map_err(query_error)
        }
        .await,
    )
}
