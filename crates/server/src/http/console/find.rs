//! The header's search box (`GET /console/find?q=`): a job id in any case, a dedup key as a
//! job page shows it, or a trip id, across every queue. One match opens the job; several are
//! listed; none is a 404 that keeps the navigation.

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use tsp_queue::{JobInfo, Queue, valid_job_id};

use super::error::ConsoleError;
use super::page::{self, fold, time};
use super::viewer::Viewer;
use crate::app::App;
use crate::http::state::AppState;

/// `?q=`.
#[derive(serde::Deserialize)]
pub(super) struct FindParams {
    #[serde(default)]
    q: String,
}

/// `GET /console/find?q=`.
pub(super) async fn show(
    State(s): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Query(p): Query<FindParams>,
) -> Response {
    let wanted = p.q.trim();
    if wanted.is_empty() {
        let body = html! {
            h1 { "Find" }
            p { "A job id (in any case), a dedup key as a job page shows it, or a trip id, in the box above." }
        };
        return page::answer(StatusCode::OK, page::frame("Find", Some(&viewer), body));
    }
    let found = match find(&s.app, wanted).await {
        Ok(found) => found,
        Err(e) => {
            let body = html! { h1 { "Find" } p.error { "The queues cannot be searched: " (e) } };
            return page::answer(
                StatusCode::SERVICE_UNAVAILABLE,
                page::frame("Find", Some(&viewer), body),
            );
        }
    };
    if let [job] = found.as_slice() {
        return Redirect::to(&job_link(job)).into_response();
    }
    let status = if found.is_empty() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    let body = html! {
        h1 { "Find" }
        @if found.is_empty() {
            p.error data-found="0" {
                "No job with id, dedup key or trip id `" (fold(wanted, 80)) "` in any queue."
            }
        } @else {
            p data-found=(found.len()) { (found.len()) " jobs match `" (fold(wanted, 80)) "`." }
            div.scroll { table.jobs {
                thead { tr { th scope="col" { "Job" } th scope="col" { "Queue" } th scope="col" { "State" } th scope="col" { "Type" } th scope="col" { "Created" } } }
                tbody {
                    @for j in &found {
                        tr {
                            td { a href=(job_link(j)) { (j.id) } }
                            td { (j.queue) }
                            td { (j.state) }
                            td { (j.job_type) }
                            td { (time(Some(j.created_at))) }
                        }
                    }
                }
            } }
        }
    };
    page::answer(status, page::frame("Find", Some(&viewer), body))
}

fn job_link(j: &JobInfo) -> String {
    format!("/console/queues/{}/jobs/{}", j.queue, j.id)
}

/// Every job `wanted` names, in every known queue: O(queues) round trips of a few commands.
async fn find(app: &App, wanted: &str) -> Result<Vec<JobInfo>, ConsoleError> {
    let types = app.registry().types();
    // Job ids are upper case (ULIDs); a pasted id may not be.
    let mut ids = vec![wanted.to_string(), wanted.to_ascii_uppercase()];
    ids.retain(|id| valid_job_id(id));
    ids.dedup();
    let mut keys = vec![wanted.to_string()];
    // A trip id: its job holds the trip job's key, which names the trip's user.
    if let Some(user) = app.trips().trip_holder(wanted).await? {
        keys.push(format!("trip:{user}:{wanted}"));
    }
    let mut found: Vec<JobInfo> = Vec::new();
    for name in Queue::known(&app.stores().queue).await? {
        let q = app.queue(&name)?;
        let mut candidates = ids.clone();
        for key in &keys {
            candidates.extend(q.by_dedup_key(&types, key).await?);
        }
        for id in candidates {
            if found.iter().any(|j| j.queue == name && j.id == id) {
                continue;
            }
            if let Some(job) = q.job(&id).await? {
                found.push(job);
            }
        }
    }
    Ok(found)
}
