//! The analytics routes over the daily rollups (docs/analytics.md).

use axum::extract::{Extension, Path, State};
use axum::response::Response;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tsp_hub::Level;
use tsp_mobility::analytics::{DayRange, ModeDay, ModeHour, ModeTotals, UserDay};
use tsp_mobility::auth::Scope;
use utoipa::{IntoParams, ToSchema};

use super::caller::Caller;
use super::errors::{ErrorBody, answer, query_error};
use super::extract::ApiQuery;
use super::queries::readable_user;
use super::state::AppState;

/// `?from=&to=&mode=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct DailyParams {
    /// The first day (UTC; default 29 days before `to`).
    from: Option<NaiveDate>,
    /// The last day (UTC; default today). At most 366 days after `from`.
    to: Option<NaiveDate>,
    /// One travel mode; all when absent.
    #[param(pattern = "^(walk|bike|ebike|scooter|bus|tram|metro|train|ferry|car|taxi|carpool)$")]
    mode: Option<String>,
}

/// `?day=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct HourlyParams {
    /// The day (UTC; default today).
    day: Option<NaiveDate>,
}

/// `?days=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ModesParams {
    /// The last days, today included (default 30).
    #[param(minimum = 1, maximum = 366)]
    days: Option<u32>,
}

/// `?from=&to=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct RangeParams {
    /// The first day (UTC; default 29 days before `to`).
    from: Option<NaiveDate>,
    /// The last day (UTC; default today). At most 366 days after `from`.
    to: Option<NaiveDate>,
}

/// `GET /analytics/daily`.
#[derive(Serialize, ToSchema)]
pub(super) struct Daily {
    /// Day × mode rows.
    days: Vec<ModeDay>,
    /// Where the answer came from.
    cache: Level,
}

/// `GET /analytics/hourly`.
#[derive(Serialize, ToSchema)]
pub(super) struct Hourly {
    /// Hour × mode rows.
    hours: Vec<ModeHour>,
    /// Where the answer came from.
    cache: Level,
}

/// `GET /analytics/modes`.
#[derive(Serialize, ToSchema)]
pub(super) struct Modes {
    /// The window, in days.
    days: u32,
    /// Totals per mode.
    modes: Vec<ModeTotals>,
    /// Where the answer came from.
    cache: Level,
}

/// `GET /analytics/users/{id}/daily`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct UserDaily {
    /// The user.
    user_id: u64,
    /// One row per day with trips.
    days: Vec<UserDay>,
    /// Where the answer came from.
    cache: Level,
}

/// Day × mode rollups.
#[utoipa::path(
    get,
    path = "/analytics/daily",
    tag = "analytics",
    params(DailyParams),
    responses(
        (status = 200, description = "Day × mode rows.", body = Daily),
        (status = 400, description = "A parameter is not valid; the error names it.", body = ErrorBody),
    )
)]
pub(super) async fn daily(
    State(s): State<AppState>,
    ApiQuery(p): ApiQuery<DailyParams>,
) -> Response {
    answer(
        async {
            let range = DayRange::new(p.from, p.to).map_err(query_error)?;
            let (days, cache) = s
                .app
                .trips()
                .daily(range, p.mode.as_deref())
                .await
                .map_err(query_error)?;
            Ok(Daily { days, cache })
        }
        .await,
    )
}

/// Hour × mode rollups of one day.
#[utoipa::path(
    get,
    path = "/analytics/hourly",
    tag = "analytics",
    params(HourlyParams),
    responses(
        (status = 200, description = "Hour × mode rows.", body = Hourly),
        (status = 400, description = "A parameter is not valid; the error names it.", body = ErrorBody),
    )
)]
pub(super) async fn hourly(
    State(s): State<AppState>,
    ApiQuery(p): ApiQuery<HourlyParams>,
) -> Response {
    answer(
        async {
            let day = DayRange::new(p.day, p.day).map_err(query_error)?.to;
            let (hours, cache) = s.app.trips().hourly(day).await.map_err(query_error)?;
            Ok(Hourly { hours, cache })
        }
        .await,
    )
}

/// Totals per mode over the last days.
#[utoipa::path(
    get,
    path = "/analytics/modes",
    tag = "analytics",
    params(ModesParams),
    responses(
        (status = 200, description = "Totals per mode.", body = Modes),
        (status = 400, description = "A parameter is not valid; the error names it.", body = ErrorBody),
    )
)]
pub(super) async fn modes(
    State(s): State<AppState>,
    ApiQuery(p): ApiQuery<ModesParams>,
) -> Response {
    answer(
        async {
            let days = p.days.unwrap_or(30);
            let (modes, cache) = s.app.trips().mode_totals(days).await.map_err(query_error)?;
            Ok(Modes { days, modes, cache })
        }
        .await,
    )
}

/// A user's days: the user themselves, or `analytics:read`.
#[utoipa::path(
    get,
    path = "/analytics/users/{id}/daily",
    tag = "analytics",
    params(("id" = u64, Path, minimum = 1, description = "The user."), RangeParams),
    responses(
        (status = 200, description = "One row per day with trips.", body = UserDaily),
        (status = 400, description = "A parameter is not valid; the error names it.", body = ErrorBody),
        (status = 403, description = "Another user's days.", body = ErrorBody),
    )
)]
pub(super) async fn user_daily(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<RangeParams>,
) -> Response {
    answer(
        async {
            let id = readable_user(&caller, &id, Scope::AnalyticsRead)?;
            let range = DayRange::new(p.from, p.to).map_err(query_error)?;
            let (days, cache) = s
                .app
                .trips()
                .user_daily(id, range)
                .await
                .map_err(query_error)?;
            Ok(UserDaily {
                user_id: id,
                days,
                cache,
            })
        }
        .await,
    )
}
