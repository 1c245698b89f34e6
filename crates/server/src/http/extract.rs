//! Typed query strings and JSON bodies: each route's parameters are a struct (its fields are
//! also its OpenAPI parameters, docs/api.md#contract), unknown fields are refused, and a value
//! that does not parse is a 400 in the common error body naming the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::errors::{ApiError, bad_request};

/// A query string parsed as `T` (a `#[serde(deny_unknown_fields)]` struct).
#[derive(Debug)]
pub(super) struct ApiQuery<T>(pub(super) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parse_query(parts.uri.query().unwrap_or("")).map(ApiQuery)
    }
}

/// `query` parsed as `T`, or a 400 naming the field.
pub(super) fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let pairs = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(pairs).map_err(|e| bad_request(named(e, "query")))
}

/// A JSON body parsed as `T`. The guard has checked the content type.
#[derive(Debug)]
pub(super) struct ApiJson<T>(pub(super) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // Too large is 413 (the body limit), anything else about reading it 400.
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::Client(e.status(), format!("body: {}", e.body_text())))?;
        parse_body(&body).map(ApiJson)
    }
}

/// `body` parsed as `T` (nothing may follow the value), or a 400 naming the field.
pub(super) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| named(e, "body"));
    value
        .and_then(|v| de.end().map(|()| v).map_err(|e| format!("body: {e}")))
        .map_err(bad_request)
}

/// `field: what went wrong`; the whole `what` when the fault is not in one field (an unknown
/// field's error names it).
fn named<E: std::fmt::Display>(e: serde_path_to_error::Error<E>, what: &str) -> String {
    let path = e.path().to_string();
    if path == "." {
        format!("{what}: {}", e.inner())
    } else {
        format!("{path}: {}", e.inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Near {
        lat: f64,
        limit: Option<u32>,
    }

    fn message(e: ApiError) -> String {
        match e {
            ApiError::Client(_, m) => m,
            ApiError::Store(m) => panic!("a store error: {m}"),
        }
    }

    #[test]
    fn a_query_names_the_field_that_fails() {
        let ok: Near = parse_query("lat=1.5&limit=3").expect("parses");
        assert_eq!((ok.lat, ok.limit), (1.5, Some(3)));
        let bad = message(parse_query::<Near>("lat=1&limit=x").expect_err("refused"));
        assert!(bad.starts_with("limit: "), "{bad}");
        let unknown = message(parse_query::<Near>("lat=1&radius=3").expect_err("refused"));
        assert!(unknown.contains("unknown field `radius`"), "{unknown}");
        let twice = message(parse_query::<Near>("lat=1&lat=2").expect_err("refused"));
        assert!(twice.contains("duplicate field `lat`"), "{twice}");
        let missing = message(parse_query::<Near>("").expect_err("refused"));
        assert!(missing.contains("missing field `lat`"), "{missing}");
    }

    #[test]
    fn a_body_names_the_field_that_fails_and_refuses_trailing_data() {
        let bad = message(parse_body::<Near>(br#"{"lat": "north"}"#).expect_err("refused"));
        assert!(bad.starts_with("lat: invalid type"), "{bad}");
        let trailing = message(parse_body::<Near>(br#"{"lat": 1} {}"#).expect_err("refused"));
        assert!(trailing.starts_with("body: trailing"), "{trailing}");
        let ok: Near = parse_body(br#"{"lat": 1}"#).expect("parses");
        assert_eq!(ok.lat, 1.0);
    }
}
