//! The operator console: server-rendered pages under `/console` for people who run the service.
//! What each page shows and why it is built this way: docs/console.md.
//!
//! Pages are `maud` templates (escaped by construction) with one small vendored script,
//! compiled into the binary, for live updates over Server-Sent Events (`live`); without
//! JavaScript every page still reads and every action still works (plain links and forms). Each
//! route's rule (anyone, any operator, operators who may act) is in `session::need`, checked by
//! the console's guard (`session`).

mod chart;
mod error;
mod find;
mod job_view;
pub(in crate::http) mod live;
mod map;
mod overview;
mod page;
mod queue_view;
mod schedules_view;
mod session;
mod status;
mod stream;
mod trips_view;
mod viewer;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router, middleware};
use maud::html;
use tsp_mobility::auth::{Login, LoginError};

pub use live::Live;

use crate::http::state::AppState;
use queue_view::QueueAct;
use session::{cookie, refuse_forged};
use viewer::Viewer;

/// Every console route: (method, path). Each one's rule: [`access`].
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/console"),
    ("GET", "/console/login"),
    ("POST", "/console/login"),
    ("POST", "/console/logout"),
    ("GET", "/console/events"),
    ("GET", "/console/assets/{file}"),
    ("GET", "/console/queues/{name}"),
    ("POST", "/console/queues/{name}/pause"),
    ("POST", "/console/queues/{name}/resume"),
    ("POST", "/console/queues/{name}/retry-dead"),
    ("GET", "/console/queues/{name}/jobs/{id}"),
    ("GET", "/console/queues/{name}/jobs/{id}/detail"),
    ("POST", "/console/queues/{name}/jobs/{id}/retry"),
    ("POST", "/console/queues/{name}/jobs/{id}/cancel"),
    ("GET", "/console/schedules"),
    ("POST", "/console/schedules/{name}/pause"),
    ("POST", "/console/schedules/{name}/resume"),
    ("GET", "/console/trips"),
    ("GET", "/console/find"),
];

/// Whether a console route may be called by anyone, any operator, or operators who may act.
pub fn access(method: &str, path: &str) -> &'static str {
    let method = axum::http::Method::from_bytes(method.as_bytes()).unwrap_or_default();
    match session::need(&method, path) {
        session::Need::Nobody => "anyone",
        session::Need::Reader => "any operator",
        session::Need::Actor => "operator or admin",
    }
}

/// The CSRF token forms of the session `token` carry (docs/console.md#security).
pub fn csrf_token(token: &str) -> String {
    viewer::csrf_of(token)
}

/// The console's routes behind its guard.
pub(super) fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/console", get(overview::show))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/events", get(stream::events))
        .route("/console/assets/{file}", get(asset))
        .route("/console/queues/{name}", get(queue_view::show))
        .route(
            "/console/queues/{name}/pause",
            queue_view::route(QueueAct::Pause),
        )
        .route(
            "/console/queues/{name}/resume",
            queue_view::route(QueueAct::Resume),
        )
        .route(
            "/console/queues/{name}/retry-dead",
            queue_view::route(QueueAct::RetryDead),
        )
        .route("/console/queues/{name}/jobs/{id}", get(job_view::show))
        .route(
            "/console/queues/{name}/jobs/{id}/detail",
            get(job_view::fragment),
        )
        .route(
            "/console/queues/{name}/jobs/{id}/retry",
            post(job_view::retry),
        )
        .route(
            "/console/queues/{name}/jobs/{id}/cancel",
            post(job_view::cancel),
        )
        .route("/console/schedules", get(schedules_view::show))
        .route(
            "/console/schedules/{name}/pause",
            schedules_view::route(true),
        )
        .route(
            "/console/schedules/{name}/resume",
            schedules_view::route(false),
        )
        .route("/console/trips", get(trips_view::show))
        .route("/console/find", get(find::show))
        .route_layer(middleware::from_fn_with_state(state, session::guard))
}

/// The vendored assets, compiled in: (name, content type, bytes).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    ),
];

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, body)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "public, max-age=300"),
            ],
            *body,
        )
            .into_response(),
        None => page::refusal(StatusCode::NOT_FOUND, "No such asset."),
    }
}

fn login_form(message: Option<&str>, next: &str) -> maud::Markup {
    html! {
        h1 { "Log in" }
        @if let Some(m) = message { p.error { (m) } }
        form.login method="post" action="/console/login" {
            input type="hidden" name="next" value=(session::safe_next(next));
            label { "Username " input type="text" name="username" autocomplete="username" required; }
            label { "Password " input type="password" name="password" autocomplete="current-password" required; }
            button type="submit" { "Log in" }
        }
        p.note { "For operators (portal.admin_users). Users and services use the API." }
    }
}

/// `?next=`: the page the login page was sent from.
#[derive(serde::Deserialize)]
struct NextParam {
    #[serde(default)]
    next: String,
}

async fn login_page(Query(p): Query<NextParam>) -> Response {
    page::answer(
        StatusCode::OK,
        page::frame("Log in", None, login_form(None, &p.next)),
    )
}

#[derive(serde::Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    /// Where to go once logged in (a console page only: `session::safe_next`).
    #[serde(default)]
    next: String,
}

/// `POST /console/login`: an operator's name and password → a session cookie. Every refusal
/// reads the same, after the same work (`Auth::login`); repeated failures are throttled.
async fn login(
    State(s): State<AppState>,
    Extension(address): Extension<viewer::Address>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let login = Login {
        email: None,
        username: Some(form.username),
        password: form.password,
    };
    match s.app.auth().login(login, &address.0.to_string()).await {
        Ok(session) => {
            let max_age = s.app.hub().config().auth.session_max.as_secs();
            let mut r = Redirect::to(session::safe_next(&form.next)).into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                cookie(Some(&session.token), over_tls(&headers), max_age),
            );
            r
        }
        Err(LoginError::Refused) => page::answer(
            StatusCode::UNAUTHORIZED,
            page::frame(
                "Log in",
                None,
                login_form(Some("Wrong username or password."), &form.next),
            ),
        ),
        Err(LoginError::Throttled(t)) => crate::http::errors::too_many(t),
        Err(LoginError::Store(e)) => {
            tracing::warn!(error = %e, "console login: a store failed");
            page::refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "The session store is unavailable.",
            )
        }
    }
}

/// Whether the browser reached us over TLS (a terminating proxy says so): the cookie is then
/// `Secure`.
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// `POST /console/logout`: ends the session and clears the cookie.
async fn logout(
    State(s): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    Form(form): Form<queue_view::CsrfForm>,
) -> Response {
    if let Some(refused) = refuse_forged(&viewer, &form.csrf) {
        return refused;
    }
    if let Err(e) = s.app.auth().end_session(&viewer.token).await {
        tracing::warn!(error = %e, "console logout: the session store failed");
        return page::refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "The session store is unavailable.",
        );
    }
    let mut r = Redirect::to("/console/login").into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, cookie(None, over_tls(&headers), 0));
    r
}
