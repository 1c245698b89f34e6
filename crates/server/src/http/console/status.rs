//! What the overview and the live feed both show: every queue's counts and glance, and what
//! needs a person.

use serde::Serialize;
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

/// Something that needs a person, and the page where it is dealt with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct Alert {
    /// What is wrong, in a sentence.
    pub(super) text: String,
    /// Where to look: the store table, or the queue's tab that holds the jobs.
    pub(super) href: String,
}

fn alert(text: String, href: String) -> Alert {
    Alert { text, href }
}

/// What needs a person, worst first: stores not up, then per queue dead jobs (and their
/// dead-letter hooks pending), backlogs, and a paused queue with work waiting.
pub(super) fn alerts(health: &HubHealth, rows: &[QueueRow], now: i64) -> Vec<Alert> {
    let mut out = Vec::new();
    for i in health.instances.iter().filter(|i| i.status != Status::Up) {
        let need = if i.required { "required" } else { "optional" };
        let (store, instance, status) = (i.store, &i.instance, i.status.as_str());
        let text = format!("Store {store}.{instance} is {status} ({need}).");
        out.push(alert(text, "/console#stores".into()));
    }
    for r in rows {
        let c = &r.counts;
        let tab = |state: &str| format!("/console/queues/{}?state={state}", c.queue);
        // One alert per queue with dead jobs, saying whether compensation is still to run (the
        // dead-letter hook: the trip job's reversal).
        if c.dead > 0 {
            let dead = plural(c.dead, "dead job", "dead jobs");
            let hook = match c.dead_unhandled {
                0 => String::new(),
                n => format!(
                    "; dead-letter hook pending for {}",
                    plural(n, "dead job", "dead jobs")
                ),
            };
            out.push(alert(
                format!("Queue {}: {dead}{hook}.", c.queue),
                tab("dead"),
            ));
        }
        if let Some(t) = r.glance.oldest_waiting_ms
            && now - t > BACKLOG_AGE_MS
        {
            let held = if r.glance.leases.is_empty() {
                "; no worker holds jobs of it"
            } else {
                ""
            };
            let text = format!(
                "Queue {}: {} waiting, the oldest for {}{held}.",
                c.queue,
                c.waiting,
                age(now - t)
            );
            out.push(alert(text, tab("waiting")));
        }
        if c.paused && c.waiting > 0 {
            let text = format!("Queue {} is paused with {} waiting.", c.queue, c.waiting);
            out.push(alert(text, format!("/console/queues/{}", c.queue)));
        }
    }
    out
}

/// `n` and the word for it: "1 job", "2 jobs".
pub(super) fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
