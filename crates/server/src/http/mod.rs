//! The HTTP API: what each route does is in docs/api.md, who may call it in
//! docs/security.md. The route table (`routes`) is the one list of routes: the router is built
//! from it, and every route's access rule sits beside its handler, so a route cannot exist
//! without a rule.
//!
//! Every request passes, outermost first: a request id (`x-request-id`: a client's own when
//! short and plain, else a fresh one), the
//! body limit (413), the concurrency limit, the timeout (503), then, once the route is known,
//! the guard (`guard`): content type, rate limits, authentication, the route's access rule, and
//! the activity event and request metrics (`activity`). The operator console (`console`) has
//! routes of its own under `/console`, behind its own guard (sessions in cookies, CSRF tokens).

mod activity;
mod analytics;
mod caller;
pub mod console;
mod contract;
mod errors;
mod extract;
mod guard;
mod jobs;
mod listener;
mod probes;
mod queries;
mod routes;
mod rules;
mod schedules;
mod scrape_token;
mod sessions;
mod state;
mod transit;
mod worker_probes;

pub use activity::ensure_indexes as ensure_activity_indexes;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::{BoxError, Router, middleware};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};

pub use activity::Activity;
pub use contract::document_text as openapi_document;
pub use routes::rules;
pub use rules::{Access, RouteRule, body_type};
pub use state::AppState;
pub use worker_probes::worker_router;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Random request ids: 16 hex digits.
#[derive(Clone, Copy)]
struct RandomId;

impl MakeRequestId for RandomId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let id = format!("{:016x}", rand::random::<u64>());
        axum::http::HeaderValue::from_str(&id)
            .ok()
            .map(RequestId::new)
    }
}

/// The longest `x-request-id` taken from a client.
pub const MAX_REQUEST_ID: usize = 64;

/// Whether a client's request id may travel into logs, MongoDB and InfluxDB: short, and only
/// letters, digits and `-_.:` (no spaces, quotes or control characters to forge log lines or
/// tags with).
fn fit_request_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Removes a client's `x-request-id` that is not fit ([`fit_request_id`]), so that a fresh one
/// replaces it.
async fn drop_unfit_request_id(mut req: axum::extract::Request) -> axum::extract::Request {
    if req
        .headers()
        .get_all(&REQUEST_ID)
        .iter()
        .enumerate()
        .any(|(i, v)| i > 0 || !fit_request_id(v.as_bytes()))
    {
        req.headers_mut().remove(&REQUEST_ID);
    }
    req
}

/// The routes of the table with (`large`) or without a large body, without layers.
fn routes_only(large: bool) -> Router<AppState> {
    let mut by_path: BTreeMap<String, MethodRouter<AppState>> = BTreeMap::new();
    for route in routes::table()
        .into_iter()
        .filter(|r| rules::LARGE_BODIES.contains(&r.rule.path.as_str()) == large)
    {
        let merged = match by_path.remove(&route.rule.path) {
            Some(existing) => existing.merge(route.handler),
            None => route.handler,
        };
        by_path.insert(route.rule.path, merged);
    }
    let mut router = Router::new();
    for (path, handler) in by_path {
        router = router.route(&path, handler);
    }
    router
}

/// The same router with the credential checks and rate limits switched off: every request
/// acts as `principal`; everything else (layers, metrics, activity) is as in [`router`]. Only
/// `tsp-bench http` builds it, to measure what authentication and limits cost; nothing
/// serves it.
pub fn router_without_auth(
    mut state: AppState,
    principal: tsp_mobility::auth::Principal,
) -> Router {
    state.assume = Some(Arc::new(caller::Caller {
        principal: Some(principal),
        credential: None,
        address: std::net::IpAddr::from([127, 0, 0, 1]),
    }));
    router(state)
}

/// The router: every route of the table behind the guard, and the service-wide limits.
pub fn router(mut state: AppState) -> Router {
    state.access = Arc::new(rules::access_map(routes::rules()));
    state.openapi = contract::document_text();
    let server = state.app.hub().config().server.clone();
    let max_upload = state.app.hub().config().gtfs.max_upload as usize;
    let guard = || middleware::from_fn_with_state(state.clone(), guard::guard);
    let limited = |large: bool, limit: usize| {
        routes_only(large)
            .route_layer(guard())
            .layer(tower_http::limit::RequestBodyLimitLayer::new(limit))
            .layer(middleware::map_response(errors::json_refusals))
    };
    limited(false, server.max_body)
        .merge(limited(true, max_upload))
        .merge(
            console::router(state.clone()).layer(tower_http::limit::RequestBodyLimitLayer::new(
                server.max_body,
            )),
        )
        .fallback(errors::not_found)
        .layer(
            ServiceBuilder::new()
                .layer(middleware::map_request(drop_unfit_request_id))
                .layer(SetRequestIdLayer::new(REQUEST_ID, RandomId))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(DefaultBodyLimit::disable())
                .layer(HandleErrorLayer::new(overloaded))
                // One limit for the whole process: `Router::layer` wraps each route on its own,
                // and a per-route limit let slow requests to one route (logins) fill it alone.
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                    server.max_concurrent,
                ))
                .layer(tower::timeout::TimeoutLayer::new(server.request_timeout))
                // A body that stops arriving fails its request (400) instead of holding a slot
                // until the request timeout.
                .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
                    server.body_timeout,
                )),
        )
        .with_state(state)
}

/// A request the timeout cut short (or another layer failure): 503, JSON like every error.
async fn overloaded(e: BoxError) -> Response {
    if e.is::<tower::timeout::error::Elapsed>() {
        errors::error(StatusCode::SERVICE_UNAVAILABLE, "the request timed out").into_response()
    } else {
        errors::error(StatusCode::SERVICE_UNAVAILABLE, "the service is overloaded").into_response()
    }
}

/// Serves until `shutdown` completes, lets open requests finish and flushes the activity log
/// (each bounded by `grace`).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let activity = state.activity.clone();
    let header_timeout = state.app.hub().config().server.header_timeout;
    // Live streams end first, so the drain waits only for requests that end on their own.
    let closing = state.closing.clone();
    let shutdown = async move {
        shutdown.await;
        closing.send_replace(true);
    };
    listener::serve_connections(listener, router(state), header_timeout, shutdown, grace).await;
    activity.close(grace).await;
    Ok(())
}
