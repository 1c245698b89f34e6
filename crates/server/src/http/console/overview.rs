//! The overview: every store instance, every queue with its counts, throughput over the last
//! hour, oldest waiting job and worker leases, and the alerts an on-call operator acts on.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use tsp_hub::{HubHealth, Status};
use tsp_queue::QueueCounts;

use super::chart::{self, Series};
use super::error::ConsoleError;
use super::page::{self, age, now_ms};
use super::status::{Alert, QueueRow, alerts, plural, queue_rows};
use super::viewer::Viewer;
use crate::http::state::AppState;

/// `GET /console`.
pub(super) async fn show(
    State(s): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Response {
    let (health, rows, rates) = tokio::join!(
        s.console.health(),
        queue_rows(&s.app),
        chart::throughput(&s.app)
    );
    let now = now_ms();
    let body = html! {
        h1 { "Overview" }
        @match &rows {
            Ok(rows) => {
                (alert_list(&alerts(&health, rows, now)))
                (stores(&health))
                (queues(rows, &rates, now))
            }
            Err(e) => {
                (alert_list(&alerts(&health, &[], now)))
                (stores(&health))
                p.error { "Queues cannot be read: " (e) }
            }
        }
    };
    let status = if rows.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    page::answer(status, page::frame("Overview", Some(&viewer), body))
}

/// The alerts, each a link to where it is dealt with; announced to screen readers as they
/// change (the live feed replaces the list).
fn alert_list(alerts: &[Alert]) -> Markup {
    html! {
        section.alerts data-alerts=(alerts.len()) aria-live="polite" aria-label="Alerts" {
            @if alerts.is_empty() {
                p.ok { "Nothing needs attention." }
            } @else {
                ul { @for a in alerts { li.alert { a href=(a.href) { (a.text) } } } }
            }
        }
    }
}

fn stores(health: &HubHealth) -> Markup {
    html! {
        h2 #stores { "Stores" }
        table.stores {
            thead { tr { th { "Store" } th { "Status" } th { "Latency" } th { "Version" } th { "Pool (in use / max)" } th { "Detail" } } }
            tbody {
                @for i in &health.instances {
                    @let key = format!("{}.{}", i.store, i.instance);
                    @let status = i.status.as_str();
                    // A store that did not answer has no latency or version to show: the last
                    // ones would read as if it were fine.
                    @let answered = i.status != Status::Down;
                    tr data-store=(key) data-status=(status) {
                        td { (key) @if !i.required { " " small { "(optional)" } } }
                        td.status { (status) }
                        td.latency { @if answered { (format!("{:.1} ms", i.latency_ms)) } @else { "—" } }
                        td.version { @if answered { (i.version.as_deref().unwrap_or("—")) } @else { "—" } }
                        td { @match &i.pool { Some(p) => { (p.in_use) " / " (p.max) }, None => "—" } }
                        td.detail { (i.error.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

const STATES: [&str; 5] = ["waiting", "delayed", "active", "completed", "dead"];

fn count_of(c: &QueueCounts, state: &str) -> u64 {
    match state {
        "waiting" => c.waiting,
        "delayed" => c.delayed,
        "active" => c.active,
        "completed" => c.completed,
        _ => c.dead,
    }
}

/// A count cell linking to its tab; a non-zero dead count is marked (red), and the live feed
/// keeps both the number and the mark current.
fn count_cell(queue: &str, state: &str, n: u64) -> Markup {
    let alarming = state == "dead" && n > 0;
    html! {
        td.num {
            a data-count=(format!("{queue}:{state}")) data-nonzero[alarming]
                href=(format!("/console/queues/{queue}?state={state}")) { (n) }
        }
    }
}

/// The last hour per minute: completed jobs, and dead ones on a scale of their own (a few dead
/// among thousands completed would not show on a shared one).
fn throughput(series: &Series) -> Markup {
    let (done, dead) = (series.total("completed"), series.total("dead"));
    html! {
        (chart::bars(series, &[("completed", "ok")], 150.0, 24.0, "completed jobs per minute"))
        " "
        (chart::bars(series, &[("dead", "bad")], 60.0, 24.0, "dead jobs per minute"))
        br;
        small { (format!("{done:.0} completed, {dead:.0} dead")) }
    }
}

fn queues(
    rows: &[QueueRow],
    rates: &Result<BTreeMap<String, Series>, ConsoleError>,
    now: i64,
) -> Markup {
    let empty = Series::default();
    html! {
        h2 { "Queues" }
        @if let Err(e) = rates { p.note { "No throughput chart: " (e) } }
        div.scroll {
        table.queues {
            thead { tr {
                th scope="col" { "Queue" }
                @for st in STATES { th.num scope="col" { (st) } }
                th scope="col" { "Last hour, per minute: completed, dead" }
                th scope="col" { "Oldest waiting" }
                th scope="col" { "Workers" }
            } }
            tbody {
                @for r in rows {
                    @let c = &r.counts;
                    tr data-queue=(c.queue) {
                        th scope="row" {
                            a href=(format!("/console/queues/{}", c.queue)) { (c.queue) }
                            @if c.paused { " " span.badge data-paused { "paused" } }
                        }
                        @for st in STATES { (count_cell(&c.queue, st, count_of(c, st))) }
                        td {
                            @let series = rates.as_ref().ok().and_then(|m| m.get(&c.queue)).unwrap_or(&empty);
                            (throughput(series))
                        }
                        td { @match r.glance.oldest_waiting_ms { Some(t) => (age(now - t)), None => "—" } }
                        td { (plural(r.glance.leases.iter().map(|l| l.held).sum::<u64>(), "job", "jobs")) " under " (plural(r.glance.leases.len() as u64, "lease", "leases")) }
                    }
                }
            }
            tfoot { tr data-queue="*" {
                th scope="row" { "All queues" }
                @for st in STATES {
                    @let n: u64 = rows.iter().map(|r| count_of(&r.counts, st)).sum();
                    td.num { span data-count=(format!("*:{st}")) data-nonzero[st == "dead" && n > 0] { (n) } }
                }
                td colspan="3" {}
            } }
        }
        }
    }
}
