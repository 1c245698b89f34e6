//! Schedules: each one's queue, timing, next run, last run and its job's outcome; pause and
//! resume.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, post};
use axum::{Extension, Form};
use maud::html;

use super::page::{self, action};
use super::queue_view::CsrfForm;
use super::session::refuse_forged;
use super::viewer::Viewer;
use crate::http::state::AppState;

/// `GET /console/schedules`.
pub(super) async fn show(
    State(s): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Response {
    let list = s.app.schedules().list().await;
    let mut rows = Vec::new();
    if let Ok(list) = &list {
        for st in list {
            // The last tick's job, if it is still kept: its state is the outcome.
            let outcome = match (&st.last_job, s.app.queue(&st.schedule.queue)) {
                (Some(id), Ok(q)) => match q.job(id).await {
                    Ok(Some(j)) => Some((id.clone(), j.state)),
                    Ok(None) => Some((id.clone(), "removed by retention".to_string())),
                    Err(e) => Some((id.clone(), format!("unknown: {e}"))),
                },
                _ => None,
            };
            rows.push((st, outcome));
        }
    }
    let body = html! {
        h1 { "Schedules" }
        @if let Err(e) = &list { p.error { "Schedules cannot be read: " (e) } }
        table.schedules {
            thead { tr { th { "Name" } th { "Queue" } th { "Job type" } th { "Timing" } th { "Next run" } th { "Last run" } th { "Last outcome" } th {} } }
            tbody {
                @if rows.is_empty() { tr { td colspan="8" { "No schedules." } } }
                @for (st, outcome) in &rows {
                    @let sc = &st.schedule;
                    tr data-schedule=(sc.name) {
                        td { (sc.name) @if sc.declared { " " small { "(configured)" } } }
                        td { a href=(format!("/console/queues/{}", sc.queue)) { (sc.queue) } }
                        td { (sc.job_type) }
                        td { code { (timing(sc)) } }
                        td.next { @if st.paused { span.badge data-paused { "paused" } } @else { (st.next_run.as_deref().unwrap_or("—")) } }
                        td { (st.last_run.as_deref().unwrap_or("never")) }
                        td.outcome {
                            @match outcome {
                                Some((id, state)) => { a href=(format!("/console/queues/{}/jobs/{id}", sc.queue)) { (state) } }
                                None => "—",
                            }
                        }
                        td {
                            @if st.paused { (action(&viewer, &format!("/console/schedules/{}/resume", sc.name), "Resume", "")) }
                            @else { (action(&viewer, &format!("/console/schedules/{}/pause", sc.name), "Pause", "")) }
                        }
                    }
                }
            }
        }
    };
    page::answer(
        StatusCode::OK,
        page::frame("Schedules", Some(&viewer), body),
    )
}

/// A schedule's timing as text: its cron and zone, or its interval.
fn timing(sc: &tsp_queue::Schedule) -> String {
    match (&sc.cron, sc.every_ms) {
        (Some(c), _) => format!("{c} ({})", sc.tz.as_deref().unwrap_or("UTC")),
        (None, Some(ms)) => format!("every {}", page::age(ms as i64)),
        (None, None) => "—".into(),
    }
}

async fn set_paused(
    s: &AppState,
    viewer: &Viewer,
    name: &str,
    csrf: &str,
    paused: bool,
) -> Response {
    if let Some(refused) = refuse_forged(viewer, csrf) {
        return refused;
    }
    match s.app.schedules().set_paused(name, paused).await {
        Ok(()) => Redirect::to("/console/schedules").into_response(),
        Err(e) => page::refusal(StatusCode::CONFLICT, &e.to_string()),
    }
}

/// `POST /console/schedules/{name}/pause` (`paused`) or `…/resume`.
pub(super) fn route(paused: bool) -> MethodRouter<AppState> {
    post(
        move |State(s): State<AppState>,
              Extension(viewer): Extension<Viewer>,
              Path(name): Path<String>,
              Form(form): Form<CsrfForm>| async move {
            set_paused(&s, &viewer, &name, &form.csrf, paused).await
        },
    )
}
