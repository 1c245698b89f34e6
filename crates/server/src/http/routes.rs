//! The route table: each route's method, path, access rule and handler, in one list. The
//! router is built from it, and the tests generate the 401/403 matrix from it.

use axum::routing::{MethodRouter, delete, get, post};
use tsp_mobility::auth::Scope as S;

use super::rules::{Access, RouteRule};
use super::state::AppState;
use super::{analytics, jobs, probes, queries, schedules, sessions, transit};

pub(super) struct Route {
    pub(super) rule: RouteRule,
    pub(super) handler: MethodRouter<AppState>,
}

fn route(
    method: &'static str,
    path: &'static str,
    access: Access,
    handler: MethodRouter<AppState>,
) -> Route {
    Route {
        rule: RouteRule {
            method,
            path,
            access,
        },
        handler,
    }
}

/// Every route.
pub(super) fn table() -> Vec<Route> {
    [service(), jobs(), data(), transit()]
        .into_iter()
        .flatten()
        .collect()
}

/// Transit queries on the live GTFS version, and feed uploads.
fn transit() -> Vec<Route> {
    use Access::*;
    vec![
        route(
            "GET",
            "/stops/near",
            Authenticated,
            get(transit::stops_near),
        ),
        route(
            "GET",
            "/stops/{id}/departures",
            Authenticated,
            get(transit::departures),
        ),
        route("GET", "/routes", Authenticated, get(transit::routes)),
        route("GET", "/routes/{id}", Authenticated, get(transit::route)),
        route("POST", "/gtfs/uploads", Operator, post(transit::upload)),
    ]
}

/// Probes, metrics and sessions.
fn service() -> Vec<Route> {
    use Access::*;
    vec![
        route("GET", "/health/live", Public, get(probes::live)),
        route("GET", "/health/ready", Public, get(probes::ready)),
        route("GET", "/health", Operator, get(probes::health)),
        route("GET", "/metrics", Scraper, get(probes::metrics)),
        route("POST", "/admin/reload", Operator, post(probes::reload)),
        route("POST", "/auth/login", Public, post(sessions::login)),
        route(
            "POST",
            "/auth/logout",
            Authenticated,
            post(sessions::logout),
        ),
        route(
            "DELETE",
            "/users/{id}/sessions",
            Authenticated,
            delete(sessions::revoke_all),
        ),
        route(
            "DELETE",
            "/operators/{name}/sessions",
            Authenticated,
            delete(sessions::revoke_operator),
        ),
    ]
}

/// Jobs, queues and schedules.
fn jobs() -> Vec<Route> {
    use Access::*;
    vec![
        route("POST", "/jobs", Authenticated, post(jobs::post_job)),
        route("GET", "/jobs/{id}", Authenticated, get(jobs::get_job)),
        route("POST", "/jobs/{id}/retry", Operator, post(jobs::retry_job)),
        route(
            "POST",
            "/jobs/{id}/cancel",
            Operator,
            post(jobs::cancel_job),
        ),
        route("GET", "/queues", Scope(S::JobsRead), get(jobs::queues)),
        route("POST", "/queues/{name}/pause", Operator, post(jobs::pause)),
        route(
            "POST",
            "/queues/{name}/resume",
            Operator,
            post(jobs::resume),
        ),
        route("GET", "/schedules", Operator, get(schedules::list)),
        route("POST", "/schedules", Operator, post(schedules::put)),
        route(
            "DELETE",
            "/schedules/{name}",
            Operator,
            delete(schedules::remove),
        ),
    ]
}

/// Users, trips and analytics.
fn data() -> Vec<Route> {
    use Access::*;
    let analytics_read = Scope(S::AnalyticsRead);
    vec![
        route(
            "GET",
            "/users/{id}/stats",
            Authenticated,
            get(queries::user_stats),
        ),
        route(
            "GET",
            "/users/{id}/points",
            Authenticated,
            get(queries::user_points),
        ),
        route(
            "GET",
            "/users/near",
            Authenticated,
            get(queries::users_near),
        ),
        route(
            "GET",
            "/trips/near",
            Authenticated,
            get(queries::trips_near),
        ),
        route(
            "GET",
            "/analytics/engagement",
            analytics_read,
            get(queries::engagement),
        ),
        route(
            "GET",
            "/analytics/daily",
            analytics_read,
            get(analytics::daily),
        ),
        route(
            "GET",
            "/analytics/modes",
            analytics_read,
            get(analytics::modes),
        ),
        route(
            "GET",
            "/analytics/hourly",
            analytics_read,
            get(analytics::hourly),
        ),
        route(
            "GET",
            "/analytics/users/{id}/daily",
            Authenticated,
            get(analytics::user_daily),
        ),
    ]
}

/// Every route's rule, in table order.
pub fn rules() -> Vec<RouteRule> {
    table().into_iter().map(|r| r.rule).collect()
}
