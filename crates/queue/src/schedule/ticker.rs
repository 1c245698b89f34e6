//! The loop a worker runs per queue: claims the queue's due ticks and enqueues their jobs.
//! Every worker runs it; the claim script lets exactly one of them have each tick.

use std::time::Duration;

use super::{Schedule, plan};
use crate::queue::Queue;

/// The longest the loop sleeps: a schedule added or resumed meanwhile is seen this late at most.
const IDLE: Duration = Duration::from_millis(500);

/// Runs until the task is aborted.
pub(crate) async fn tick_loop(queue: Queue) {
    loop {
        let wait = match claim_due(&queue).await {
            Ok(Some(next)) => {
                let until = u64::try_from(next - queue.now_ms()).unwrap_or(0);
                Duration::from_millis(until).clamp(Duration::from_millis(5), IDLE)
            }
            Ok(None) => IDLE,
            Err(e) => {
                tracing::warn!(queue = queue.name(), error = %e, "schedules not checked");
                IDLE
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// Claims every due tick; returns the earliest tick still to come.
async fn claim_due(queue: &Queue) -> Result<Option<i64>, crate::QueueError> {
    loop {
        let now = queue.now_ms();
        let (due, upcoming) = queue.due_ticks(now).await?;
        if due.is_empty() {
            return Ok(upcoming);
        }
        for (name, tick, json) in due {
            let schedule: Schedule = match serde_json::from_str(&json) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(schedule = %name, error = %e, "unreadable schedule skipped");
                    continue;
                }
            };
            let timing = match schedule.timing() {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(schedule = %name, error = %e, "invalid schedule skipped");
                    continue;
                }
            };
            let (run, next) = plan(&timing, schedule.missed, tick, now);
            // Another worker may claim it first: then this one just moves on.
            if let Some(id) = queue
                .claim_tick(&name, tick, run, next, schedule.job())
                .await?
            {
                tracing::debug!(schedule = %name, tick = run, job = %id, "tick enqueued");
            }
        }
    }
}
