//! The overview: every store instance, every queue with its counts, throughput over the last
//! hour, oldest waiting job and worker leases, and the alerts an on-call operator acts on.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use tsp_hub::{HubHealth, Status};
use tsp_queue::{Glance, Queue, QueueCounts};

use super::chart::{self, Series};
use super::page::{self, age, now_ms};
use super::session::Viewer;
use crate::app::App;
use crate::http::AppState;

/// A waiting job older than this raises the backlog alert.
pub(super) const BACKLOG_AGE_MS: i64 = 60_000;

/// One queue's row.
pub(super) struct QueueRow {
    pub(super) counts: QueueCounts,
    pub(super) glance: Glance,
}

/// Every known queue's counts and glance: O(queues × (priorities + workers)) Redis work.
pub(super) async fn queue_rows(app: &App) -> Result<Vec<QueueRow>, String> {
    let q = app.queue("default").map_err(|e| e.to_string())?;
    let names = Queue::known(q.store()).await.map_err(|e| e.to_string())?;
    let mut rows = Vec::with_capacity(names.len());
    for name in names {
        let q = app.queue(&name).map_err(|e| e.to_string())?;
        let (counts, glance) =
            tokio::try_join!(q.counts(), q.glance()).map_err(|e| e.to_string())?;
        rows.push(QueueRow { counts, glance });
    }
    Ok(rows)
}

/// What needs a person, worst first.
pub(super) fn alerts(health: &HubHealth, rows: &[QueueRow], now: i64) -> Vec<String> {
    let mut out = Vec::new();
    for i in health.instances.iter().filter(|i| i.status == Status::Down) {
        let need = if i.required { "required" } else { "optional" };
        out.push(format!(
            "Store {}.{} is down ({need}).",
            i.store, i.instance
        ));
    }
    for r in rows {
        let c = &r.counts;
        if let Some(t) = r.glance.oldest_waiting_ms
            && now - t > BACKLOG_AGE_MS
        {
            let held = if r.glance.leases.is_empty() {
                "; no worker holds jobs of it"
            } else {
                ""
            };
            out.push(format!(
                "Queue {}: {} waiting, the oldest for {}{held}.",
                c.queue,
                c.waiting,
                age(now - t)
            ));
        }
        if c.dead_unhandled > 0 {
            out.push(format!(
                "Queue {}: dead-letter hook pending for {}.",
                c.queue,
                plural(c.dead_unhandled, "dead job", "dead jobs")
            ));
        }
        if c.paused && c.waiting > 0 {
            out.push(format!(
                "Queue {} is paused with {} waiting.",
                c.queue, c.waiting
            ));
        }
    }
    out
}

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
                    @let status = if i.status == Status::Up { "up" } else { "down" };
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

/// `1 job`, `2 jobs`.
fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
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

fn queues(rows: &[QueueRow], rates: &Result<BTreeMap<String, Series>, String>, now: i64) -> Markup {
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
