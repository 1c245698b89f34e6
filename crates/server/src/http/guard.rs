//! The guard every routed request passes: content type, rate limits, authentication, the
//! route's access rule; afterwards, store-failure detail for operators only, the activity event
//! and the request metrics. Rules and their reasons: docs/security.md.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::Instrument;
use tsp_config::Network;
use tsp_mobility::auth::{Admission, Principal, RateClass};

use super::activity::Event;
use super::caller::Caller;
use super::errors::{StoreFailure, error, too_many, unauthorized};
use super::rules::{Access, AccessMap, body_type};
use super::state::AppState;

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_string())
}

fn has_type(headers: &HeaderMap, wanted: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(wanted))
}

/// Whether the request carries a body, or says it does: a POST without one (`/auth/logout`,
/// `/queues/{name}/pause`) need not name a content type.
fn declares_body(headers: &HeaderMap) -> bool {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    headers.contains_key(header::CONTENT_TYPE)
        || headers.contains_key(header::TRANSFER_ENCODING)
        || length != Some(0) && headers.contains_key(header::CONTENT_LENGTH)
}

/// What the guard decided before the handler: the caller, or the answer to give instead.
///
/// One Redis round trip either way: the address's limit alone on a public route; the address's
/// limit, the credential and its limit together otherwise (`Auth::admit`). When Redis cannot
/// answer, a public route is served (refusing logins and probes because a limiter is away would
/// turn a degraded store into an outage; counted in `tsp_http_limit_errors_total`), while an
/// authenticated route is 503: a session cannot be checked without its store.
async fn admit(
    s: &AppState,
    method: &Method,
    access: Access,
    headers: &HeaderMap,
    address: IpAddr,
    template: &str,
) -> Result<Caller, Response> {
    let wanted = body_type(template);
    // A type a plain HTML form cannot send keeps cross-site form posts out.
    if *method == Method::POST && declares_body(headers) && !has_type(headers, wanted) {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content-type must be {wanted}"),
        ));
    }
    let auth = s.app.auth();
    let mut caller = Caller {
        principal: None,
        credential: None,
        address,
    };
    let scraper =
        access == Access::Scraper && s.scrape_token.is_some_and(|t| t.presented_in(headers));
    if access == Access::Public || scraper {
        return match auth.admit_address(&address.to_string()).await {
            Ok(None) => Ok(caller),
            Ok(Some(t)) => Err(too_many(t)),
            Err(e) => {
                metrics::counter!(crate::telemetry::LIMIT_ERRORS).increment(1);
                tracing::warn!(error = %e, "rate limit not checked: its store failed");
                Ok(caller)
            }
        };
    }
    let credential = bearer(headers).ok_or_else(unauthorized)?;
    let class = if *method == Method::GET {
        RateClass::Read
    } else {
        RateClass::Write
    };
    let principal = match auth.admit(&credential, &address.to_string(), class).await {
        Ok(Admission::Admitted(p)) => p,
        Ok(Admission::Unknown) => return Err(unauthorized()),
        Ok(Admission::Limited(t)) => return Err(too_many(t)),
        Err(e) => {
            tracing::warn!(error = %e, "credential not checked: its store failed");
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                super::errors::UNAVAILABLE,
            ));
        }
    };
    let allowed = match access {
        Access::Public | Access::Authenticated => true,
        Access::Scope(scope) => principal.has(scope),
        Access::Operator | Access::Scraper => principal.is_operator(),
    };
    if !allowed {
        return Err(error(StatusCode::FORBIDDEN, "forbidden"));
    }
    caller.principal = Some(principal);
    caller.credential = Some(credential);
    Ok(caller)
}

/// The client's address and the request's id (`x-request-id`, set by the outer layer).
///
/// The address is the socket's (loopback when the server was not given connection info),
/// unless the socket is one of `server.trusted_proxies`: then `X-Forwarded-For` is read from
/// the right, past every trusted proxy, and the first address that is not one is the client.
/// A client cannot choose its address by sending the header itself (docs/security.md#limits).
pub(super) fn origin(req: &Request, trusted: &[Network]) -> (IpAddr, String) {
    let socket = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (client_address(socket, req.headers(), trusted), request_id)
}

fn client_address(socket: IpAddr, headers: &HeaderMap, trusted: &[Network]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(socket) {
        return socket;
    }
    let mut client = socket;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            // Garbage from a client: the last trusted hop is all that is known.
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// The span of one request: `METHOD route`, a child of the caller's `traceparent` when it sent
/// a valid one (docs/metrics.md#traces).
fn request_span(method: &Method, template: &str, id: &str, headers: &HeaderMap) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{method} {template}"),
        id = %id,
        route = %template,
        http.request.method = %method,
        http.response.status_code = tracing::field::Empty,
    );
    let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok());
    crate::traces::continue_trace(&span, traceparent);
    span
}

/// The rule for `method` on `template`, or the methods it has (HEAD is GET's) when it has
/// not this one. A route missing from the map is refused as if operator-only (fail closed).
fn access_of(map: &AccessMap, template: &str, method: &Method) -> Result<Access, String> {
    let Some(by_method) = map.get(template) else {
        return Ok(Access::Operator);
    };
    let wanted = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    if let Some(access) = by_method.get(wanted) {
        return Ok(*access);
    }
    let mut allowed: Vec<&str> = by_method.keys().map(Method::as_str).collect();
    if by_method.contains_key(&Method::GET) {
        allowed.push("HEAD");
    }
    allowed.sort_unstable();
    Err(allowed.join(", "))
}

/// 405, naming the methods the route has in `Allow`.
fn method_not_allowed(method: &Method, template: &str, allowed: &str) -> Response {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not a method of {template}"),
    );
    if let Ok(v) = HeaderValue::from_str(allowed) {
        r.headers_mut().insert(header::ALLOW, v);
    }
    r
}

/// The middleware on every route.
pub(super) async fn guard(
    State(s): State<AppState>,
    matched: MatchedPath,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let template = matched.as_str().to_string();
    let (address, request_id) = origin(&req, &s.trusted);
    let access = match access_of(&s.access, matched.as_str(), &method) {
        Ok(access) => access,
        Err(allowed) => return method_not_allowed(&method, matched.as_str(), &allowed),
    };
    // Every log line of the request carries its id and route, and its spans the caller's trace.
    let span = request_span(&method, &template, &request_id, req.headers());
    let admitted = match &s.assume {
        Some(caller) => Ok(Caller::clone(caller)),
        None => {
            let admitting = admit(&s, &method, access, req.headers(), address, &template);
            admitting.instrument(span.clone()).await
        }
    };
    let (caller, mut response) = match admitted {
        Ok(caller) => {
            req.extensions_mut().insert(caller.clone());
            (Some(caller), next.run(req).instrument(span.clone()).await)
        }
        Err(refused) => (None, refused),
    };
    let principal = caller.as_ref().and_then(|c| c.principal.clone());
    if let Some(StoreFailure(detail)) = response.extensions().get::<StoreFailure>().cloned() {
        tracing::warn!(%request_id, route = %template, %detail, "store failure answered 503");
        if principal.as_ref().is_some_and(Principal::is_operator) {
            let status = response.status();
            response = (status, Json(json!({"error": detail}))).into_response();
        }
    }
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if let Some(v) = crate::traces::traceparent_of(&span).and_then(|t| t.parse().ok()) {
        response.headers_mut().insert("traceparent", v);
    }
    let origin = (address, request_id);
    s.activity.record(Event::answered(
        principal, &method, template, status, origin, started,
    ));
    response
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let trusted = tsp_config::networks("10.0.0.0/8").unwrap_or_default();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.9, 10.1.1.1"),
        );
        // From a trusted proxy: the rightmost address that is not a proxy.
        assert_eq!(
            client_address(ip("10.0.0.2"), &h, &trusted),
            ip("203.0.113.9")
        );
        // From anyone else: the socket, whatever the header says.
        assert_eq!(
            client_address(ip("198.51.100.4"), &h, &trusted),
            ip("198.51.100.4")
        );
        // Nothing trusted: the socket.
        assert_eq!(client_address(ip("10.0.0.2"), &h, &[]), ip("10.0.0.2"));
        h.insert("x-forwarded-for", HeaderValue::from_static("not-an-ip"));
        assert_eq!(client_address(ip("10.0.0.2"), &h, &trusted), ip("10.0.0.2"));
    }
}
