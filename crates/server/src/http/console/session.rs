//! The console's sessions: the operator logs in with a form, the session token (the same kind
//! `/auth/login` returns) travels in an `HttpOnly`, `SameSite=Strict` cookie scoped to
//! `/console`, and every action carries a CSRF token derived from the session. The guard checks
//! them, the caller's role and the rate limits, and records the activity event as the API's
//! guard does. Why each rule: docs/console.md#security.

use std::net::IpAddr;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use tsp_mobility::auth::{Admission, Principal, RateClass};

use super::page;
use super::viewer::{Address, Viewer, csrf_of};
use crate::http::activity::Event;
use crate::http::state::AppState;

/// The session cookie's name.
pub(super) const COOKIE: &str = "tsp_console";

/// The session cookie's value, if the request carries one.
pub(super) fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for a new session (`Secure` when the console is served over TLS), or one that
/// clears it.
pub(super) fn cookie(token: Option<&str>, secure: bool, max_age_s: u64) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = match token {
        Some(t) => format!(
            "{COOKIE}={t}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
        ),
        None => format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether a POST's `Origin`, when the browser sends one, is this host: a second line of defence
/// beside the CSRF token and `SameSite`.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

/// Which console routes need what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// The login page, its form and the static assets.
    Nobody,
    /// Any operator, viewers included: reading.
    Reader,
    /// An operator or admin: actions.
    Actor,
}

/// The rule of a console route, by its method and template.
pub(super) fn need(method: &Method, template: &str) -> Need {
    match (method.as_str(), template) {
        (_, "/console/login") | ("GET", "/console/assets/{file}") => Need::Nobody,
        ("GET", _) | ("POST", "/console/logout") => Need::Reader,
        _ => Need::Actor,
    }
}

/// Who the session stands for, or the answer to give instead.
async fn admit(
    s: &AppState,
    (method, uri): (&Method, &Uri),
    need: Need,
    headers: &HeaderMap,
    address: IpAddr,
) -> Result<Option<Viewer>, Response> {
    let auth = s.app.auth();
    if method == Method::POST && !same_origin(headers) {
        return Err(page::refusal(
            StatusCode::FORBIDDEN,
            "This form was sent from another site.",
        ));
    }
    if need == Need::Nobody {
        return match auth.admit_address(&address.to_string()).await {
            Ok(Some(t)) => Err(crate::http::errors::too_many(t)),
            _ => Ok(None),
        };
    }
    let Some(token) = session_token(headers) else {
        return Err(to_login(method, uri));
    };
    let class = if *method == Method::GET {
        RateClass::Read
    } else {
        RateClass::Write
    };
    let principal = match auth.admit(&token, &address.to_string(), class).await {
        Ok(Admission::Admitted(p)) => p,
        Ok(Admission::Unknown) => return Err(to_login(method, uri)),
        Ok(Admission::Limited(t)) => return Err(crate::http::errors::too_many(t)),
        Err(e) => {
            tracing::warn!(error = %e, "console session not checked: its store failed");
            return Err(page::refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "The session store is unavailable; try again shortly.",
            ));
        }
    };
    // The console is for operators (any role); users and keys use the API.
    if !matches!(principal, Principal::Operator { .. }) {
        return Err(page::refusal(
            StatusCode::FORBIDDEN,
            "The console is for operators.",
        ));
    }
    let viewer = Viewer {
        csrf: csrf_of(&token),
        principal,
        token,
    };
    if need == Need::Actor && !viewer.may_act() {
        return Err(page::refusal(
            StatusCode::FORBIDDEN,
            "Your role may look, not act: ask an operator.",
        ));
    }
    Ok(Some(viewer))
}

/// A GET without a session goes to the login page, which comes back to it after (`next`);
/// anything else is 401.
fn to_login(method: &Method, uri: &Uri) -> Response {
    if *method == Method::GET {
        let here = uri.path_and_query().map_or("/console", |p| p.as_str());
        let next: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
        Redirect::to(&format!("/console/login?next={next}")).into_response()
    } else {
        page::refusal(
            StatusCode::UNAUTHORIZED,
            "Your session has ended: log in again.",
        )
    }
}

/// Where a login goes on to: `next` when it is a console page of this site, else the overview
/// (a link to the login page cannot send a browser elsewhere).
pub(super) fn safe_next(next: &str) -> &str {
    let inside = next
        .strip_prefix("/console")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']));
    let plain = !next.contains("//") && !next.contains('\\') && !next.chars().any(char::is_control);
    if inside && plain { next } else { "/console" }
}

/// Checks a form's CSRF token against the session's (constant time).
pub(super) fn csrf_ok(viewer: &Viewer, sent: &str) -> bool {
    let want = viewer.csrf.as_bytes();
    let got = sent.as_bytes();
    want.len() == got.len() && want.iter().zip(got).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// The answer to a form whose CSRF token is not the session's, if it is not.
pub(super) fn refuse_forged(viewer: &Viewer, sent: &str) -> Option<axum::response::Response> {
    (!csrf_ok(viewer, sent)).then(|| {
        page::refusal(
            StatusCode::FORBIDDEN,
            "This form has expired: reload the page.",
        )
    })
}

/// The middleware on every console route.
pub(super) async fn guard(
    State(s): State<AppState>,
    matched: MatchedPath,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let template = matched.as_str().to_string();
    let (address, request_id) = crate::http::guard::origin(&req, &s.trusted);
    req.extensions_mut().insert(Address(address));
    let need = need(&method, &template);
    let uri = req.uri().clone();
    let admitted = admit(&s, (&method, &uri), need, req.headers(), address).await;
    let (principal, mut response) = match admitted {
        Ok(viewer) => {
            let principal = viewer.as_ref().map(|v| v.principal.clone());
            if let Some(v) = viewer {
                req.extensions_mut().insert(v);
            }
            (principal, next.run(req).await)
        }
        Err(refused) => (None, refused),
    };
    page::secure_headers(response.headers_mut());
    let status = response.status();
    let origin = (address, request_id);
    s.activity.record(Event::answered(
        principal, &method, template, status, origin, started,
    ));
    response
}
