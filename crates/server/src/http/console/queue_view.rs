//! One queue: its jobs by state, a page at a time, newest first by default; a filter by job
//! type; a search by id or dedup key; pause, resume and retry-all-dead.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, post};
use axum::{Extension, Form};
use maud::{Markup, html};
use tsp_queue::{JobInfo, JobState, Order, Queue};

use super::error::ConsoleError;
use super::page::{self, action, fold, time};
use super::session::refuse_forged;
use super::viewer::Viewer;
use crate::http::state::AppState;

/// Jobs per page.
pub(super) const PAGE: usize = 50;
/// With a type filter, how many jobs one page may look through (in windows of [`WINDOW`]):
/// bounded work on any queue; the page says where it stopped.
pub(super) const FILTER_SCAN: usize = 5_000;
const WINDOW: usize = 250;

/// The query string of a queue page.
#[derive(Debug, serde::Deserialize)]
pub(super) struct ListParams {
    #[serde(default = "waiting")]
    state: String,
    #[serde(default = "newest")]
    order: Order,
    /// Position in the state's listing to start at.
    #[serde(default)]
    from: usize,
    /// Only jobs of this type.
    #[serde(default, rename = "type")]
    job_type: String,
    /// A job id or a dedup key.
    #[serde(default)]
    q: String,
}

fn waiting() -> String {
    "waiting".into()
}

fn newest() -> Order {
    Order::Newest
}

/// A form with only the CSRF token.
#[derive(serde::Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    pub(super) csrf: String,
}

/// One page of a listing: the jobs, and where the next page starts (if there may be one).
struct Listing {
    jobs: Vec<JobInfo>,
    next: Option<usize>,
    scanned: usize,
}

/// A page of `state`: plain, O(page); or filtered by type, looking through at most
/// [`FILTER_SCAN`] jobs.
async fn listing(q: &Queue, state: JobState, p: &ListParams) -> Result<Listing, ConsoleError> {
    if p.job_type.is_empty() {
        let jobs = q.page(state, p.from, PAGE + 1, p.order).await?;
        let more = jobs.len() > PAGE;
        let jobs: Vec<JobInfo> = jobs.into_iter().take(PAGE).collect();
        let scanned = jobs.len();
        return Ok(Listing {
            next: more.then_some(p.from + PAGE),
            jobs,
            scanned,
        });
    }
    let mut ids = Vec::new();
    let mut at = p.from;
    let mut exhausted = false;
    while ids.len() < PAGE && at - p.from < FILTER_SCAN {
        let window = q.page_ids(state, at, WINDOW, p.order).await?;
        let types = q.types_of(&window).await?;
        for (id, t) in window.iter().zip(types) {
            at += 1;
            if t.as_deref() == Some(p.job_type.as_str()) {
                ids.push(id.clone());
                if ids.len() == PAGE {
                    break;
                }
            }
        }
        if window.len() < WINDOW {
            exhausted = ids.len() < PAGE;
            break;
        }
    }
    let mut jobs = Vec::with_capacity(ids.len());
    for id in &ids {
        if let Some(j) = q.job(id).await? {
            jobs.push(j);
        }
    }
    Ok(Listing {
        jobs,
        next: (!exhausted).then_some(at),
        scanned: at - p.from,
    })
}

fn state_of(name: &str) -> Result<JobState, String> {
    JobState::parse(name).ok_or_else(|| {
        format!(
            "state: `{}` is not one of waiting, delayed, active, completed, dead",
            fold(name, 40)
        )
    })
}

/// `GET /console/queues/{name}`.
pub(super) async fn show(
    State(s): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path(name): Path<String>,
    Query(p): Query<ListParams>,
) -> Response {
    let q = match s.app.queue(&name) {
        Ok(q) => q,
        Err(e) => return page::refusal(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let state = match state_of(&p.state) {
        Ok(st) => st,
        Err(e) => return page::refusal(StatusCode::BAD_REQUEST, &e),
    };
    // Old links with a search: the one search box answers them, across queues.
    let wanted = p.q.trim();
    if !wanted.is_empty() {
        let q: String = form_urlencoded::byte_serialize(wanted.as_bytes()).collect();
        return Redirect::to(&format!("/console/find?q={q}")).into_response();
    }
    let (counts, list) = tokio::join!(q.counts(), listing(&q, state, &p));
    let body = html! {
        h1 { "Queue " (q.name()) }
        @match counts {
            Ok(c) => {
                p {
                    @if c.paused { span.badge data-paused { "paused" } " " (action(&viewer, &format!("/console/queues/{name}/resume"), "Resume", "")) }
                    @else { (action(&viewer, &format!("/console/queues/{name}/pause"), "Pause", "")) }
                    @if c.dead > 0 { " " (action(&viewer, &format!("/console/queues/{name}/retry-dead"), &format!("Retry all {} dead", c.dead), "danger")) }
                }
                nav.tabs {
                    @for (st, n) in [("waiting", c.waiting), ("delayed", c.delayed), ("active", c.active), ("completed", c.completed), ("dead", c.dead)] {
                        a class=(if st == p.state { "current" } else { "" }) aria-current=[(st == p.state).then_some("page")] href=(format!("/console/queues/{name}?state={st}")) {
                            (st) " " span data-count=(format!("{name}:{st}")) { (n) }
                        }
                    }
                }
            }
            Err(e) => { p.error { "Counts cannot be read: " (e) } }
        }
        (filters(&name, &p))
        @match list {
            Ok(l) => (jobs_table(&name, &p, &l)),
            Err(e) => p.error { "Jobs cannot be read: " (e) },
        }
    };
    page::answer(
        StatusCode::OK,
        page::frame(&format!("Queue {name}"), Some(&viewer), body),
    )
}

fn filters(name: &str, p: &ListParams) -> Markup {
    html! {
        form.filters method="get" action=(format!("/console/queues/{name}")) {
            input type="hidden" name="state" value=(p.state);
            label { "Type " input type="text" name="type" value=(p.job_type) placeholder="any type"; }
            label { "Order "
                select name="order" {
                    option value="newest" selected[p.order == Order::Newest] { "newest first" }
                    option value="oldest" selected[p.order == Order::Oldest] { "oldest first" }
                }
            }
            button type="submit" { "Filter" }
        }
    }
}

fn jobs_table(name: &str, p: &ListParams, l: &Listing) -> Markup {
    let link = |from: usize| {
        format!(
            "/console/queues/{name}?state={}&order={}&type={}&from={from}",
            p.state,
            match p.order {
                Order::Newest => "newest",
                Order::Oldest => "oldest",
            },
            url_encode(&p.job_type)
        )
    };
    html! {
        @if !p.job_type.is_empty() {
            p.note { "Looked through " (l.scanned) " jobs from position " (p.from) " for type " code { (p.job_type) } "." }
        }
        table.jobs data-list-queue=(name) {
            thead { tr { th { "Id" } th { "Type" } th { "Created" } th { "Attempts" } th { "Payload" } th { "Last error" } } }
            tbody {
                @if l.jobs.is_empty() { tr { td colspan="6" { "No jobs here." } } }
                @for j in &l.jobs {
                    tr data-job-row=(j.id) {
                        td { a href=(format!("/console/queues/{name}/jobs/{}", j.id)) { code { (j.id) } } }
                        td { (j.job_type) }
                        td { (time(Some(j.created_at))) }
                        td.num { (j.attempts) " / " (j.max_attempts) }
                        td { code { (fold(&j.payload.to_string(), 80)) } }
                        td.error { (fold(j.last_error.as_deref().unwrap_or(""), 80)) }
                    }
                }
            }
        }
        p.paging {
            @if p.from > 0 && p.job_type.is_empty() { a href=(link(p.from.saturating_sub(PAGE))) { "← previous" } " " }
            @if let Some(n) = l.next { a rel="next" href=(link(n)) { "next →" } }
        }
    }
}

/// Percent-encodes a query value (job types are short; anything else is encoded).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What a queue form asks for.
#[derive(Debug, Clone, Copy)]
pub(super) enum QueueAct {
    /// Hold workers from fetching.
    Pause,
    /// Let them fetch again.
    Resume,
    /// Every dead job runs again (those whose hook is running stay dead).
    RetryDead,
}

impl QueueAct {
    async fn run(self, q: &Queue) -> Result<(), tsp_queue::QueueError> {
        match self {
            QueueAct::Pause => q.pause().await,
            QueueAct::Resume => q.resume().await,
            QueueAct::RetryDead => q.requeue(None).await.map(|_| ()),
        }
    }
}

/// `POST /console/queues/{name}/pause|resume|retry-dead`: checks the CSRF token, does `act`,
/// goes back to the queue page.
pub(super) fn route(act: QueueAct) -> MethodRouter<AppState> {
    post(
        move |State(s): State<AppState>,
              Extension(viewer): Extension<Viewer>,
              Path(name): Path<String>,
              Form(form): Form<CsrfForm>| async move {
            if let Some(refused) = refuse_forged(&viewer, &form.csrf) {
                return refused;
            }
            let q = match s.app.queue(&name) {
                Ok(q) => q,
                Err(e) => return page::refusal(StatusCode::BAD_REQUEST, &e.to_string()),
            };
            match act.run(&q).await {
                Ok(()) => Redirect::to(&format!("/console/queues/{name}")).into_response(),
                Err(e) => page::refusal(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
            }
        },
    )
}
