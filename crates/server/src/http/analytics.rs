//! The analytics routes over the daily rollups (docs/analytics.md).

use std::collections::HashMap;

use axum::extract::{Extension, Path, Query, State};
use axum::response::Response;
use serde_json::json;
use tsp_mobility::analytics::DayRange;
use tsp_mobility::auth::Scope;

use super::caller::Caller;
use super::errors::{ApiError, answer, bad_request, query_error};
use super::queries::{Params, known_only, readable_user};
use super::state::AppState;

fn range(p: &HashMap<String, String>) -> Result<DayRange, ApiError> {
    DayRange::parse(
        p.get("from").map(String::as_str),
        p.get("to").map(String::as_str),
    )
    .map_err(query_error)
}

/// `GET /analytics/daily?from=&to=&mode=`: day × mode rollups.
pub(super) async fn daily(State(s): State<AppState>, Query(p): Params) -> Response {
    answer(
        async {
            known_only(&p, &["from", "to", "mode"])?;
            let (rows, cache) = s
                .app
                .trips()
                .daily(range(&p)?, p.get("mode").map(String::as_str))
                .await
                .map_err(query_error)?;
            Ok(json!({"days": rows, "cache": cache}))
        }
        .await,
    )
}

/// `GET /analytics/hourly?day=YYYY-MM-DD` (default today): hour × mode rollups.
pub(super) async fn hourly(State(s): State<AppState>, Query(p): Params) -> Response {
    answer(
        async {
            known_only(&p, &["day"])?;
            let day = DayRange::parse(
                p.get("day").map(String::as_str),
                p.get("day").map(String::as_str),
            )
            .map_err(query_error)?
            .to;
            let (rows, cache) = s.app.trips().hourly(day).await.map_err(query_error)?;
            Ok(json!({"hours": rows, "cache": cache}))
        }
        .await,
    )
}

/// `GET /analytics/modes?days=30`: totals per mode.
pub(super) async fn modes(State(s): State<AppState>, Query(p): Params) -> Response {
    answer(
        async {
            known_only(&p, &["days"])?;
            let days = match p.get("days") {
                Some(d) => d
                    .parse::<u32>()
                    .map_err(|_| bad_request(format!("days: `{d}` is not a number")))?,
                None => 30,
            };
            let (modes, cache) = s.app.trips().mode_totals(days).await.map_err(query_error)?;
            Ok(json!({"days": days, "modes": modes, "cache": cache}))
        }
        .await,
    )
}

/// `GET /analytics/users/{id}/daily?from=&to=`: the user themselves, or `analytics:read`.
pub(super) async fn user_daily(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(p): Params,
) -> Response {
    answer(
        async {
            let id = readable_user(&caller, &id, Scope::AnalyticsRead)?;
            known_only(&p, &["from", "to"])?;
            let (rows, cache) = s
                .app
                .trips()
                .user_daily(id, range(&p)?)
                .await
                .map_err(query_error)?;
            Ok(json!({"userId": id, "days": rows, "cache": cache}))
        }
        .await,
    )
}
