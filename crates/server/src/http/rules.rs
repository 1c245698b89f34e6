//! Who may call each route, and which routes take large bodies: the rules the guard applies,
//! apart from the handlers (`routes` pairs each rule with its handler).

use std::collections::HashMap;

use axum::http::Method;
use tsp_mobility::auth::Scope as S;

/// Who may call a route, before its handler looks at the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: probes and login.
    Public,
    /// Any valid credential; the handler decides per request (ownership, payload).
    Authenticated,
    /// A credential holding this scope (operators hold their role's scopes).
    Scope(S),
    /// An operator or admin, or a key with `admin`.
    Operator,
    /// An operator, or a scraper presenting `server.metrics_token` (`/metrics` only).
    Scraper,
}

/// One route's rule, without its handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    /// The HTTP method.
    pub method: &'static str,
    /// The path template (`/jobs/{id}`).
    pub path: String,
    /// Who may call it.
    pub access: Access,
}

/// The routes whose bodies may be larger than `server.max_body` (`gtfs.max_upload` instead).
pub(super) const LARGE_BODIES: &[&str] = &["/gtfs/uploads"];

/// The content type a POST to `template` must declare: JSON, or a zip for uploads. A type a
/// plain HTML form cannot send keeps cross-site form posts out.
pub fn body_type(template: &str) -> &'static str {
    if LARGE_BODIES.contains(&template) {
        "application/zip"
    } else {
        "application/json"
    }
}

/// Rules by path template and method, for the guard.
pub(super) type AccessMap = HashMap<String, HashMap<Method, Access>>;

pub(super) fn access_map(rules: Vec<RouteRule>) -> AccessMap {
    let mut map = AccessMap::new();
    for r in rules {
        if let Ok(method) = Method::from_bytes(r.method.as_bytes()) {
            map.entry(r.path).or_default().insert(method, r.access);
        }
    }
    map
}
