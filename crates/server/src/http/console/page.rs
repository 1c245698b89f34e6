//! The frame every console page shares, and small formatting helpers. Pages are `maud`
//! templates: every value interpolated into them is HTML-escaped, so job payloads and errors
//! (which callers control) show as text.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::viewer::Viewer;

/// The sections in the navigation bar: (path, label).
const SECTIONS: &[(&str, &str)] = &[
    ("/console", "Overview"),
    ("/console/schedules", "Schedules"),
    ("/console/trips", "Trips"),
];

/// A whole page: head, navigation (with the role and a logout form) and `body`.
pub(super) fn frame(title: &str, viewer: Option<&Viewer>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · tsp-job console" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                // For keyboard and screen-reader users: past the navigation in one step.
                a.skip href="#content" { "Skip to content" }
                header.top {
                    a.brand href="/console" { "tsp-job" }
                    @if let Some(v) = viewer {
                        nav {
                            @for (path, label) in SECTIONS {
                                a href=(path) { (label) }
                            }
                        }
                        form.search method="get" action="/console/find" role="search" {
                            input type="search" name="q" aria-label="Find a job" placeholder="job id, dedup key or trip id";
                            button type="submit" { "Find" }
                        }
                        span.who { "signed in as " (v.role()) }
                        form.inline method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(v.csrf);
                            button.link type="submit" { "Log out" }
                        }
                    }
                }
                main #content { (body) }
            }
        }
    }
}

/// An HTML answer with `status`.
pub(super) fn answer(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// A refusal or failure page (no session needed to see it).
pub(super) fn refusal(status: StatusCode, message: &str) -> Response {
    let body = html! {
        h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
        p.error { (message) }
        p { a href="/console" { "Back to the console" } }
    };
    let mut r = answer(status, frame("Refused", None, body));
    secure_headers(r.headers_mut());
    r
}

/// A hidden CSRF field and a button: every action is such a form.
pub(super) fn action(viewer: &Viewer, path: &str, label: &str, class: &str) -> Markup {
    html! {
        @if viewer.may_act() {
            form.inline method="post" action=(path) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                button class=(class) type="submit" { (label) }
            }
        }
    }
}

/// Headers on every console answer: no framing, no sniffing, scripts and styles from the
/// console itself only (an injected `<script>` would not run even if escaping failed).
pub(super) fn secure_headers(h: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
}

/// A Unix-ms time as UTC text, or a dash.
pub(super) fn time(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_else(|| "—".into())
}

/// A duration in ms as short text: `850 ms`, `12.4 s`, `3 min`, `2.5 h`.
pub(super) fn age(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..7_200_000 => format!("{} min", ms / 60_000),
        _ => format!("{:.1} h", ms as f64 / 3_600_000.0),
    }
}

/// Now, in Unix ms.
pub(super) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Text folded to `max` characters (a payload or an error shown in a list).
pub(super) fn fold(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut t: String = text.chars().take(max).collect();
        t.push('…');
        t
    }
}
