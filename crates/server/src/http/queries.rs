//! Read routes over the trip data: a user's stats and points (theirs only, unless the caller
//! reads users), nearby trips and users, engagement analytics.

use std::collections::HashMap;

use axum::extract::{Extension, Path, Query, State};
use axum::response::Response;
use serde_json::json;
use tsp_mobility::auth::Scope;
use tsp_mobility::cells::MIN_USERS;
use tsp_mobility::queries::{Around, MAX_LIMIT};

use super::caller::Caller;
use super::errors::{ApiError, answer, bad_request, forbidden, query_error};
use super::state::AppState;

pub(super) type Params = Query<HashMap<String, String>>;

/// Refuses parameters outside `known`, so a misspelt `radius` does not silently fall back to a
/// default.
pub(super) fn known_only(p: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match p.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(bad_request(format!(
            "{unknown}: unknown parameter (known: {})",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// A query parameter parsed as `T` (`None` when absent), or a 400 naming it.
pub(super) fn param<T: std::str::FromStr>(
    p: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    match p.get(name) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| bad_request(format!("{name}: `{v}` is not a valid value"))),
    }
}

fn user_id(id: &str) -> Result<u64, ApiError> {
    id.parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
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

/// `GET /users/{id}/stats?days=30`.
pub(super) async fn user_stats(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(p): Params,
) -> Response {
    answer(
        async {
            let id = readable_user(&caller, &id, Scope::UsersRead)?;
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

/// `GET /users/{id}/points`.
pub(super) async fn user_points(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(p): Params,
) -> Response {
    answer(
        async {
            let id = readable_user(&caller, &id, Scope::UsersRead)?;
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

/// `GET /trips/near`: with `users:read`, every trip starting near a point. Anyone else gets
/// their own trips there (a user) and counts per cell of at least a kilometre, shown only for
/// cells of at least five distinct users: nothing that pins another user's trip
/// (docs/security.md#whereabouts).
pub(super) async fn trips_near(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(p): Params,
) -> Response {
    answer(
        async {
            let who = caller.who()?;
            let (at, limit) = around(&p)?;
            let trips = s.app.trips();
            if who.has(Scope::UsersRead) {
                let all = trips.trips_near(at, limit).await.map_err(query_error)?;
                return Ok(serde_json::to_value(all).unwrap_or_default());
            }
            let own = match who.user_id() {
                Some(id) => trips
                    .own_trips_near(id, at, limit)
                    .await
                    .map_err(query_error)?,
                None => Vec::new(),
            };
            let cells = trips.trip_cells(at).await.map_err(query_error)?;
            Ok(json!({"own": own, "cells": cells, "minUsers": MIN_USERS}))
        }
        .await,
    )
}

/// `GET /users/near`: with `users:read`, users and distances. Anyone else gets their own
/// position there (a user) and counts of users per cell, as `/trips/near` does.
pub(super) async fn users_near(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(p): Params,
) -> Response {
    answer(
        async {
            let who = caller.who()?;
            let (at, limit) = around(&p)?;
            let trips = s.app.trips();
            if who.has(Scope::UsersRead) {
                let users = trips.users_near(at, limit).await.map_err(query_error)?;
                return Ok(serde_json::to_value(users).unwrap_or_default());
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
            Ok(json!({"own": me, "cells": cells, "minUsers": MIN_USERS}))
        }
        .await,
    )
}

/// `GET /analytics/engagement?days=7[&limit]`.
pub(super) async fn engagement(State(s): State<AppState>, Query(p): Params) -> Response {
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
