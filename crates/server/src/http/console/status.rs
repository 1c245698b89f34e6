//! What the overview and the live feed both show: every queue's counts and glance, and what
//! needs a person.

use tsp_hub::{HubHealth, Status};
use tsp_queue::{Glance, Queue, QueueCounts};

use super::error::ConsoleError;
use super::page::age;
use crate::app::App;

/// A waiting job older than this raises the backlog alert.
pub(super) const BACKLOG_AGE_MS: i64 = 60_000;

/// One queue's row.
pub(super) struct QueueRow {
    pub(super) counts: QueueCounts,
    pub(super) glance: Glance,
}

/// Every known queue's counts and glance: O(queues × (priorities + workers)) Redis work.
pub(super) async fn queue_rows(app: &App) -> Result<Vec<QueueRow>, ConsoleError> {
    let names = Queue::known(&app.stores().queue).await?;
    let mut rows = Vec::with_capacity(names.len());
    for name in names {
        let q = app.queue(&name)?;
        let (counts, glance) = tokio::try_join!(q.counts(), q.glance())?;
        rows.push(QueueRow { counts, glance });
    }
    Ok(rows)
}

/// What needs a person, worst first.
pub(super) fn alerts(health: &HubHealth, rows: &[QueueRow], now: i64) -> Vec<String> {
    let mut out = Vec::new();
    for i in health.instances.iter().filter(|i| i.status != Status::Up) {
        let need = if i.required { "required" } else { "optional" };
        let (store, instance, status) = (i.store, &i.instance, i.status.as_str());
        out.push(format!("Store {store}.{instance} is {status} ({need})."));
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

/// `n` and the word for it: "1 job", "2 jobs".
pub(super) fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
