//! The OpenAPI document (docs/api.md#contract): each route's operation as its handler's
//! `#[utoipa::path]` describes it, with what its access rule adds (security requirements and
//! the refusals of the guard and the service-wide limits), built from the route table. Served
//! at `GET /openapi.json`; `tsp-job openapi` writes it, and a test holds `docs/openapi.json`
//! to it.

use std::sync::LazyLock;

use axum::http::header;
use utoipa::PartialSchema;
use utoipa::openapi::header::Header;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder, Paths,
    Ref, RefOr, Response as ApiResponse,
};

use super::errors::ErrorBody;
use super::routes::{self, Schemas};
use super::rules::{Access, RouteRule};

/// The security schemes, each with what it is: every credential is a bearer token; which kind
/// a route takes, and with which scopes, is its access rule.
const SESSION: (&str, &str) = (
    "session",
    "A session token from `POST /auth/login` (users and operators); it expires when idle and \
     ends on logout or revocation.",
);
const API_KEY: (&str, &str) = (
    "apiKey",
    "A service key (`tsp-job apikey create`), holding the scopes it was made with.",
);
const METRICS_TOKEN: (&str, &str) = (
    "metricsToken",
    "`server.metrics_token`: reads `/metrics` and nothing else.",
);

/// The groups operations are listed under, in order, with what each holds.
const TAGS: &[(&str, &str)] = &[
    (
        "service",
        "Probes, metrics, the contract and configuration reload.",
    ),
    ("sessions", "Logging in and out, and ending sessions."),
    ("jobs", "Enqueueing and reading jobs; queues."),
    ("schedules", "Repeatable jobs (operators)."),
    (
        "users",
        "A user's stats and points; trips and users near a point.",
    ),
    ("analytics", "Daily rollups and engagement."),
    (
        "transit",
        "Stops, departures and routes of the live GTFS version; feed uploads.",
    ),
];

/// The document, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    let mut doc = serde_json::to_value(document()).unwrap_or_default();
    open_flattened(&mut doc);
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
});

/// utoipa writes a `#[serde(flatten)]` field as an `allOf` member referring to the flattened
/// type; a type that refuses unknown fields (`deny_unknown_fields`, as a request body does)
/// says `additionalProperties: false`, which would refuse the outer type's own fields. Inside
/// `allOf`, such a member is the referred schema, inlined without that.
fn open_flattened(doc: &mut serde_json::Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    let closed: std::collections::BTreeMap<String, serde_json::Value> = schemas
        .iter()
        .filter(|(_, s)| s["additionalProperties"] == serde_json::Value::Bool(false))
        .map(|(name, s)| {
            let mut open = s.clone();
            if let Some(o) = open.as_object_mut() {
                o.remove("additionalProperties");
            }
            (format!("#/components/schemas/{name}"), open)
        })
        .collect();
    for schema in schemas.values_mut() {
        let Some(members) = schema.get_mut("allOf").and_then(|a| a.as_array_mut()) else {
            continue;
        };
        for member in members {
            let target = member["$ref"].as_str().and_then(|r| closed.get(r));
            if let Some(open) = target {
                *member = open.clone();
            }
        }
    }
}

/// The document as `docs/openapi.json` holds it: pretty JSON, one trailing newline.
pub fn document_text() -> &'static str {
    &DOCUMENT
}

/// The OpenAPI document of every route of the table, as utoipa builds it.
fn document() -> OpenApi {
    let mut paths = Paths::new();
    let mut schemas: Schemas = vec![("ErrorBody".into(), ErrorBody::schema())];
    for route in routes::table() {
        let mut operation = (route.operation)();
        operation.tags = Some((route.tags)().into_iter().map(String::from).collect());
        secure(&mut operation, &route.rule);
        refusals(&mut operation, &route.rule);
        paths.add_path_operation(&route.rule.path, vec![route.method], operation);
        (route.schemas)(&mut schemas);
    }
    links(&mut paths);
    schemas.sort_by(|a, b| a.0.cmp(&b.0));
    schemas.dedup_by(|a, b| a.0 == b.0);
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("tsp-job")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The TSP Job service: trips, points, transit queries and the job queue. \
                     Every error answer is `{\"error\": \"…\"}` naming the field at fault \
                     (docs/api.md).",
                ))
                .license(Some(
                    LicenseBuilder::new()
                        .name(env!("CARGO_PKG_LICENSE"))
                        .build(),
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components(schemas)))
        .tags(Some(TAGS.iter().map(|(name, about)| {
            TagBuilder::new()
                .name(*name)
                .description(Some(*about))
                .build()
        })))
        .build()
}

/// The named schemas and the security schemes.
fn components(schemas: Schemas) -> utoipa::openapi::Components {
    let mut components = ComponentsBuilder::new().schemas_from_iter(schemas);
    for (name, what) in [SESSION, API_KEY, METRICS_TOKEN] {
        components = components.security_scheme(name, bearer(what));
    }
    components.build()
}

fn bearer(description: &str) -> SecurityScheme {
    SecurityScheme::Http(
        HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(description))
            .build(),
    )
}

/// The credentials the route's access rule takes. OpenAPI 3.1 lets a non-OAuth scheme list
/// role names where OAuth lists scopes: `operator` is a session of an operator or admin.
fn secure(op: &mut Operation, rule: &RouteRule) {
    let either = |session: &[&str], key: &[&str]| {
        vec![
            SecurityRequirement::new(SESSION.0, session.iter().copied()),
            SecurityRequirement::new(API_KEY.0, key.iter().copied()),
        ]
    };
    let (requirements, who) = match rule.access {
        Access::Public => return,
        Access::Authenticated => (
            either(&[], &[]),
            "any session or key; the answer depends on whose (docs/security.md)".to_string(),
        ),
        Access::Scope(s) => (
            either(&[s.as_str()], &[s.as_str()]),
            format!("a credential holding `{}`", s.as_str()),
        ),
        Access::Operator => (
            either(&["operator"], &["admin"]),
            "an operator's session, or a key with `admin`".to_string(),
        ),
        Access::Scraper => {
            let mut r = either(&["operator"], &["admin"]);
            r.push(SecurityRequirement::new(METRICS_TOKEN.0, [""; 0]));
            (r, "an operator, or the metrics token".to_string())
        }
    };
    op.security = Some(requirements);
    let said = op.description.take().unwrap_or_default();
    op.description = Some(format!("{said}\n\nAccess: {who}.").trim_start().to_string());
}

/// An error answer: the common body, and what it means here.
fn error(description: &str) -> ApiResponse {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

fn header(description: &str, schema: RefOr<utoipa::openapi::schema::Schema>) -> Header {
    let mut h = Header::new(schema);
    h.description = Some(description.into());
    h
}

/// The answers every route of its kind may give before or beside its handler: the guard's
/// (401, 403, 415, 429), the body limit's (413) and the service's (503: a store or the request
/// timed out), unless the handler documents its own.
fn refusals(op: &mut Operation, rule: &RouteRule) {
    let mut add = |status: &str, response: ApiResponse| {
        op.responses
            .responses
            .entry(status.into())
            .or_insert(RefOr::T(response));
    };
    if rule.access != Access::Public {
        let mut r = error("No credential, or one unknown, expired or revoked.");
        r.headers.insert(
            header::WWW_AUTHENTICATE.to_string(),
            RefOr::T(header("`Bearer`.", String::schema())),
        );
        add("401", r);
    }
    if !matches!(rule.access, Access::Public | Access::Authenticated) {
        add("403", error("The credential does not grant this route."));
    }
    if rule.method == "POST" {
        let wanted = super::rules::body_type(&rule.path);
        add("413", error("The body is larger than the limit."));
        add(
            "415",
            error(&format!("A body whose content type is not `{wanted}`.")),
        );
    }
    let mut limited = error("Too many requests from this address or credential.");
    limited.headers.insert(
        header::RETRY_AFTER.to_string(),
        RefOr::T(header(
            "Seconds until a request may succeed.",
            u64::schema(),
        )),
    );
    add("429", limited);
    add(
        "503",
        error("A store is unavailable, or the request timed out; retry later."),
    );
}

/// Links from an answer to the operations that use it, for clients and stateful fuzzing: a
/// job's id and queue to reading, retrying and cancelling it; a schedule's name to removing it.
fn links(paths: &mut Paths) {
    let job = |operation: &str| {
        LinkBuilder::new()
            .operation_id(operation)
            .parameter("id", "$response.body#/id")
            .parameter("queue", "$response.body#/queue")
            .build()
    };
    if let Some(created) = answer(paths, "/jobs", HttpMethod::Post, "201") {
        for (name, op) in [
            ("GetJob", "get_job"),
            ("RetryJob", "retry_job"),
            ("CancelJob", "cancel_job"),
        ] {
            created.links.insert(name.into(), RefOr::T(job(op)));
        }
    }
    if let Some(put) = answer(paths, "/schedules", HttpMethod::Post, "201") {
        let remove = LinkBuilder::new()
            .operation_id("remove_schedule")
            .parameter("name", "$response.body#/name")
            .build();
        put.links.insert("RemoveSchedule".into(), RefOr::T(remove));
    }
}

fn answer<'a>(
    paths: &'a mut Paths,
    path: &str,
    method: HttpMethod,
    status: &str,
) -> Option<&'a mut ApiResponse> {
    let item = paths.paths.get_mut(path)?;
    let op = match method {
        HttpMethod::Post => item.post.as_mut()?,
        HttpMethod::Delete => item.delete.as_mut()?,
        _ => item.get.as_mut()?,
    };
    match op.responses.responses.get_mut(status)? {
        RefOr::T(r) => Some(r),
        RefOr::Ref(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn doc() -> Value {
        serde_json::from_str(document_text()).expect("the document is JSON")
    }

    #[test]
    fn the_committed_copy_is_what_the_code_produces() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == document_text(),
            "docs/openapi.json differs from the code's document: \
             run `cargo run -p tsp-server -- openapi > docs/openapi.json` and commit it"
        );
    }

    #[test]
    fn every_route_is_one_operation_with_its_access_as_security() {
        let doc = doc();
        let rules = routes::rules();
        let mut operations = 0;
        for rule in &rules {
            let op = &doc["paths"][&rule.path][rule.method.to_lowercase()];
            assert!(
                op.is_object(),
                "{} {} is not in the document",
                rule.method,
                rule.path
            );
            let security = op["security"].as_array().map(Vec::len).unwrap_or(0);
            match rule.access {
                Access::Public => assert_eq!(security, 0, "{} is public", rule.path),
                _ => assert!(security >= 2, "{} takes credentials", rule.path),
            }
            if let Access::Scope(s) = rule.access {
                assert_eq!(op["security"][0]["session"][0], s.as_str(), "{}", rule.path);
            }
            assert!(op["responses"]["503"].is_object(), "{}", rule.path);
        }
        for item in doc["paths"].as_object().expect("paths").values() {
            operations += item.as_object().expect("a path item").len();
        }
        assert_eq!(operations, rules.len(), "operations without a route");
    }

    /// Every `$ref` names a schema the document holds.
    #[test]
    fn every_reference_resolves() {
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        out.push(r.clone());
                    }
                    m.values().for_each(|v| refs(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let doc = doc();
        let state = &doc["components"]["schemas"]["ScheduleState"]["allOf"][0];
        assert_eq!(state["additionalProperties"], Value::Null, "{state}");
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 50, "{} references", found.len());
        for r in found {
            let name = r
                .strip_prefix("#/components/schemas/")
                .expect("a schema reference");
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{r} is missing"
            );
        }
    }

    /// Error statuses whose answer is a report rather than an error: health that is not up, and
    /// a reload that kept some old credentials.
    const REPORTS: &[(&str, &str)] = &[
        ("/health", "503"),
        ("/health/ready", "503"),
        ("/admin/reload", "409"),
    ];

    #[test]
    fn every_error_answer_is_the_common_body() {
        let doc = doc();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("a path item") {
                let answers = op["responses"].as_object().expect("responses");
                assert!(
                    answers.keys().any(|s| s.starts_with('2')),
                    "{method} {path}"
                );
                for (status, answer) in answers.iter().filter(|(s, _)| s.as_str() >= "400") {
                    let schema = &answer["content"]["application/json"]["schema"]["$ref"];
                    let report = REPORTS.contains(&(path.as_str(), status.as_str()));
                    assert!(
                        schema == "#/components/schemas/ErrorBody" || report,
                        "{method} {path} {status}: {schema}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_mode_parameter_lists_the_travel_modes() {
        let doc = doc();
        let params = doc["paths"]["/analytics/daily"]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .clone();
        let mode = params.iter().find(|p| p["name"] == "mode").expect("mode");
        let listed = format!("^({})$", tsp_mobility::trip::MODES.join("|"));
        assert_eq!(mode["schema"]["pattern"], listed.as_str());
    }
}
