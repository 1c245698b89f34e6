//! The overview: every store instance, every queue with its counts, throughput over the last
//! hour, oldest waiting job and worker leases, and the alerts an on-call operator acts on.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use tsp_hub::HubHealth;
use tsp_queue::QueueCounts;

use super::chart::{self, Series};
use super::error::ConsoleError;
use super::page::{self, age, now_ms};
use super::status::{QueueRow, alerts, plural, queue_rows};
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

fn alert_list(alerts: &[String]) -> Markup {
    html! {
        section.alerts data-alerts=(alerts.len()) {
            @if alerts.is_empty() {
                p.ok { "Nothing needs attention." }
            } @else {
                ul { @for a in alerts { li.alert { (a) } } }
            }
        }
    }
}

fn stores(health: &HubHealth) -> Markup {
    html! {
        h2 { "Stores" }
        table.stores {
            thead { tr { th { "Store" } th { "Status" } th { "Latency" } th { "Version" } th { "Pool (in use / max)" } th { "Detail" } } }
            tbody {
                @for i in &health.instances {
                    @let key = format!("{}.{}", i.store, i.instance);
                    @let status = i.status.as_str();
                    tr data-store=(key) data-status=(status) {
                        td { (key) @if !i.required { " " small { "(optional)" } } }
                        td.status { (status) }
                        td.latency { (format!("{:.1} ms", i.latency_ms)) }
                        td { (i.version.as_deref().unwrap_or("—")) }
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

fn queues(
    rows: &[QueueRow],
    rates: &Result<BTreeMap<String, Series>, ConsoleError>,
    now: i64,
) -> Markup {
    let empty = Series::default();
    html! {
        h2 { "Queues" }
        @if let Err(e) = rates { p.note { "No throughput chart: " (e) } }
        table.queues {
            thead { tr {
                th { "Queue" }
                @for st in STATES { th { (st) } }
                th { "Last hour (completed / dead per minute)" }
                th { "Oldest waiting" }
                th { "Workers" }
            } }
            tbody {
                @for r in rows {
                    @let c = &r.counts;
                    tr data-queue=(c.queue) {
                        td {
                            a href=(format!("/console/queues/{}", c.queue)) { (c.queue) }
                            @if c.paused { " " span.badge data-paused { "paused" } }
                        }
                        @for st in STATES {
                            td.num { a data-count=(format!("{}:{st}", c.queue)) href=(format!("/console/queues/{}?state={st}", c.queue)) { (count_of(c, st)) } }
                        }
                        td {
                            @let series = rates.as_ref().ok().and_then(|m| m.get(&c.queue)).unwrap_or(&empty);
                            (chart::bars(series, &[("completed", "ok"), ("dead", "bad")], 180.0, 28.0, "jobs per minute"))
                            " " small { (format!("{:.2}/s completed, {:.2}/s dead", series.total("completed") / 3600.0, series.total("dead") / 3600.0)) }
                        }
                        td { @match r.glance.oldest_waiting_ms { Some(t) => (age(now - t)), None => "—" } }
                        td { (plural(r.glance.leases.iter().map(|l| l.held).sum::<u64>(), "job", "jobs")) " under " (plural(r.glance.leases.len() as u64, "lease", "leases")) }
                    }
                }
            }
        }
    }
}
