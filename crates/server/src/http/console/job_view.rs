//! One job: spec, payload (pretty, large ones folded), attempts and their errors, progress,
//! result, timeline and lease holder; retry (dead jobs) and cancel (waiting and delayed ones).
//! The detail block reloads itself when the job's events arrive (`console.js`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{Markup, html};
use tsp_queue::{Cancelled, JobInfo, Queue};

use super::page::{self, action, time};
use super::queue_view::CsrfForm;
use super::session::refuse_forged;
use super::viewer::Viewer;
use crate::http::state::AppState;

/// Payloads and results longer than this (pretty-printed) are folded behind a `<details>`.
const FOLD_AT: usize = 2_000;

async fn find(s: &AppState, name: &str, id: &str) -> Result<(Queue, JobInfo), Response> {
    let q = s
        .app
        .queue(name)
        .map_err(|e| page::refusal(StatusCode::BAD_REQUEST, &e.to_string()))?;
    match q.job(id).await {
        Ok(Some(j)) => Ok((q, j)),
        Ok(None) => Err(page::refusal(
            StatusCode::NOT_FOUND,
            &format!("No job {id} in queue {name} (finished jobs leave with retention)."),
        )),
        Err(tsp_queue::QueueError::Invalid { message, .. }) => {
            Err(page::refusal(StatusCode::BAD_REQUEST, &message))
        }
        Err(e) => Err(page::refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            &e.to_string(),
        )),
    }
}

/// `GET /console/queues/{name}/jobs/{id}`.
pub(super) async fn show(
    State(s): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let (_, job) = match find(&s, &name, &id).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let body = html! {
        p { a href=(format!("/console/queues/{name}")) { "← queue " (name) } }
        h1 { "Job " code { (job.id) } }
        div data-job=(job.id) data-queue=(name) data-src=(format!("/console/queues/{name}/jobs/{}/detail", job.id)) {
            (detail(&viewer, &job))
        }
    };
    page::answer(
        StatusCode::OK,
        page::frame(&format!("Job {id}"), Some(&viewer), body),
    )
}

/// `GET /console/queues/{name}/jobs/{id}/detail`: the detail block alone, for live updates.
pub(super) async fn fragment(
    State(s): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    match find(&s, &name, &id).await {
        Ok((_, job)) => page::answer(StatusCode::OK, detail(&viewer, &job)),
        Err(r) => r,
    }
}

fn backoff(b: &tsp_queue::Backoff) -> String {
    match b {
        tsp_queue::Backoff::Exponential(ms) => format!("exponential from {ms} ms, with jitter"),
        tsp_queue::Backoff::Fixed(ms) => format!("fixed {ms} ms"),
    }
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn folded(label: &str, v: &serde_json::Value) -> Markup {
    let text = pretty(v);
    html! {
        @if text.len() > FOLD_AT {
            details { summary { (label) " (" (text.len()) " bytes)" } pre.json { (text) } }
        } @else {
            h3 { (label) }
            pre.json { (text) }
        }
    }
}

fn detail(viewer: &Viewer, j: &JobInfo) -> Markup {
    let base = format!("/console/queues/{}/jobs/{}", j.queue, j.id);
    html! {
        p {
            "State " strong.state data-state=(j.state) { (j.state) }
            @if j.state == "dead" { " " (action(viewer, &format!("{base}/retry"), "Retry", "")) }
            @if j.state == "waiting" || j.state == "delayed" { " " (action(viewer, &format!("{base}/cancel"), "Cancel", "danger")) }
        }
        table.facts {
            tr { th { "Type" } td { (j.job_type) } }
            tr { th { "Priority" } td { (j.priority) } }
            tr { th { "Attempts" } td { (j.attempts) " of " (j.max_attempts) } }
            tr { th { "Backoff" } td { (backoff(&j.backoff)) } }
            tr { th { "Timeout" } td { (j.timeout_ms) " ms" } }
            tr { th { "Dedup key" } td { (j.dedup_key.as_deref().unwrap_or("—")) } }
            tr { th { "Lease holder" } td { code { (j.holder.as_deref().unwrap_or("—")) } } }
        }
        h3 { "Timeline" }
        ol.timeline {
            li { "created " (time(Some(j.created_at))) }
            @if j.run_at != j.created_at { li { "runnable from " (time(Some(j.run_at))) } }
            @for e in &j.errors { li.error { "attempt " (e.attempt) " failed " (time(Some(e.at))) } }
            @if let Some(t) = j.started_at { li { "last attempt started " (time(Some(t))) } }
            @if let Some(t) = j.finished_at { li { (j.state) " " (time(Some(t))) } }
        }
        (folded("Payload", &j.payload))
        @if let Some(p) = &j.progress { (folded("Progress", p)) }
        @if let Some(r) = &j.result { (folded("Result", r)) }
        @if !j.errors.is_empty() {
            h3 { "Errors" }
            table.errors {
                thead { tr { th { "Attempt" } th { "At" } th { "Error" } } }
                tbody {
                    @for e in j.errors.iter().rev() {
                        tr { td.num { (e.attempt) } td { (time(Some(e.at))) } td { pre.error { (e.error) } } }
                    }
                }
            }
        }
    }
}

/// `POST /console/queues/{name}/jobs/{id}/retry`.
pub(super) async fn retry(
    State(s): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path((name, id)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = refuse_forged(&viewer, &form.csrf) {
        return refused;
    }
    let (q, _) = match find(&s, &name, &id).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    match q.requeue(Some(std::slice::from_ref(&id))).await {
        Ok(r) if r.requeued == 1 => back(&name, &id),
        Ok(r) if r.hook_running == 1 => page::refusal(
            StatusCode::CONFLICT,
            "Its dead-letter hook is running; try again shortly.",
        ),
        Ok(_) => page::refusal(StatusCode::CONFLICT, "This job is not dead-lettered."),
        Err(e) => page::refusal(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// `POST /console/queues/{name}/jobs/{id}/cancel`.
pub(super) async fn cancel(
    State(s): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path((name, id)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = refuse_forged(&viewer, &form.csrf) {
        return refused;
    }
    let q = match s.app.queue(&name) {
        Ok(q) => q,
        Err(e) => return page::refusal(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match q
        .cancel(std::slice::from_ref(&id))
        .await
        .map(|r| r.first().copied())
    {
        Ok(Some(Cancelled::Cancelled)) => {
            Redirect::to(&format!("/console/queues/{name}")).into_response()
        }
        Ok(Some(Cancelled::Missing)) | Ok(None) => page::refusal(
            StatusCode::NOT_FOUND,
            &format!("No job {id} in queue {name}."),
        ),
        Ok(Some(other)) => {
            let state = match other {
                Cancelled::Active => "active",
                Cancelled::Completed => "completed",
                _ => "dead",
            };
            page::refusal(
                StatusCode::CONFLICT,
                &format!("Only waiting and delayed jobs can be cancelled; this one is {state}."),
            )
        }
        Err(e) => page::refusal(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

fn back(name: &str, id: &str) -> Response {
    Redirect::to(&format!("/console/queues/{name}/jobs/{id}")).into_response()
}
