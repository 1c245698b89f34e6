//! The route table: each route's operation (its method, path, parameters and answers, from the
//! handler's `#[utoipa::path]`), access rule and handler, in one list. The router, the access
//! map and the OpenAPI document (`contract`) are built from it, and the tests generate the
//! 401/403 matrix from it: a route cannot exist without its rule and its place in the document.

use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter, on};
use tsp_mobility::auth::Scope as S;
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::{RefOr, schema::Schema};

use super::rules::{Access, RouteRule};
use super::state::AppState;
use super::{analytics, jobs, probes, queries, schedules, sessions, transit};

/// Named schemas an operation refers to.
pub(super) type Schemas = Vec<(String, RefOr<Schema>)>;

pub(super) struct Route {
    pub(super) rule: RouteRule,
    /// The rule's method, as the document names it.
    pub(super) method: HttpMethod,
    pub(super) handler: MethodRouter<AppState>,
    /// The operation as documented (before the access rule's security and answers are added).
    pub(super) operation: fn() -> Operation,
    /// The schemas it refers to.
    pub(super) schemas: fn(&mut Schemas),
    /// The groups it is listed under (`tag = …`).
    pub(super) tags: fn() -> Vec<&'static str>,
}

/// The route `P` documents (`__path_<handler>`, which `#[utoipa::path]` makes beside each
/// handler): its method and path come from the document, so they cannot disagree with it.
/// (`SchemaReferences` and `Tags` are what utoipa's own router reads from `P` too.)
fn entry<P, H, T>(_: P, access: Access, handler: H) -> Route
where
    P: utoipa::Path + utoipa::__dev::SchemaReferences + utoipa::__dev::Tags<'static>,
    H: Handler<T, AppState>,
    T: 'static,
{
    // The table's handlers are GET, POST or DELETE; anything else would be read as GET.
    let (method, name, filter) = match P::methods().first() {
        Some(HttpMethod::Post) => (HttpMethod::Post, "POST", MethodFilter::POST),
        Some(HttpMethod::Delete) => (HttpMethod::Delete, "DELETE", MethodFilter::DELETE),
        _ => (HttpMethod::Get, "GET", MethodFilter::GET),
    };
    Route {
        rule: RouteRule {
            method: name,
            path: P::path(),
            access,
        },
        method,
        handler: on(filter, handler),
        operation: P::operation,
        schemas: P::schemas,
        tags: P::tags,
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
    use transit::*;
    vec![
        entry(__path_stops_near, Authenticated, stops_near),
        entry(__path_departures, Authenticated, departures),
        entry(__path_routes, Authenticated, routes),
        entry(__path_route, Authenticated, route),
        entry(__path_upload, Operator, upload),
    ]
}

/// Probes, metrics, the contract and sessions.
fn service() -> Vec<Route> {
    use Access::*;
    use probes::*;
    use sessions::*;
    vec![
        entry(__path_live, Public, live),
        entry(__path_ready, Public, ready),
        entry(__path_health, Operator, health),
        entry(__path_metrics, Scraper, metrics),
        entry(__path_reload, Operator, reload),
        entry(__path_openapi, Public, openapi),
        entry(__path_login, Public, login),
        entry(__path_logout, Authenticated, logout),
        entry(__path_revoke_all, Authenticated, revoke_all),
        entry(__path_revoke_operator, Authenticated, revoke_operator),
    ]
}

/// Jobs, queues and schedules.
fn jobs() -> Vec<Route> {
    use Access::*;
    use jobs::*;
    use schedules::*;
    vec![
        entry(__path_post_job, Authenticated, post_job),
        entry(__path_get_job, Authenticated, get_job),
        entry(__path_retry_job, Operator, retry_job),
        entry(__path_cancel_job, Operator, cancel_job),
        entry(__path_queues, Scope(S::JobsRead), queues),
        entry(__path_pause, Operator, pause),
        entry(__path_resume, Operator, resume),
        entry(__path_list_schedules, Operator, list_schedules),
        entry(__path_put_schedule, Operator, put_schedule),
        entry(__path_remove_schedule, Operator, remove_schedule),
    ]
}

/// Users, trips and analytics.
fn data() -> Vec<Route> {
    use Access::*;
    use analytics::*;
    use queries::*;
    let analytics_read = Scope(S::AnalyticsRead);
    vec![
        entry(__path_user_stats, Authenticated, user_stats),
        entry(__path_user_points, Authenticated, user_points),
        entry(__path_users_near, Authenticated, users_near),
        entry(__path_trips_near, Authenticated, trips_near),
        entry(__path_engagement, analytics_read, engagement),
        entry(__path_daily, analytics_read, daily),
        entry(__path_modes, analytics_read, modes),
        entry(__path_hourly, analytics_read, hourly),
        entry(__path_user_daily, Authenticated, user_daily),
    ]
}

/// Every route's rule, in table order.
pub fn rules() -> Vec<RouteRule> {
    table().into_iter().map(|r| r.rule).collect()
}
