//! The dead-letter sweeper: runs the hooks of dead jobs (`Registry::on_dead`).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use super::execute::panic_message;
use super::retry::persist;
use crate::handler::Registry;
use crate::metrics;
use crate::queue::Queue;

/// How long a claimed dead-letter hook may run before another worker may claim it again.
const HOOK_CLAIM: Duration = Duration::from_secs(60);

/// Runs the dead-letter hooks of dead jobs, forever (aborted at shutdown).
pub(super) async fn sweep_dead(queue: Queue, registry: Arc<Registry>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let claimed = match queue.claim_dead(HOOK_CLAIM, 64).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(queue = queue.name(), error = %e, "claiming dead jobs failed");
                Vec::new()
            }
        };
        if claimed.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let runs = claimed.iter().map(|d| {
            let fut = registry.dead_hook(&d.id, &d.job_type, &d.payload);
            async move {
                let r = match fut {
                    None => Ok(()),
                    Some(f) => match tokio::time::timeout(
                        HOOK_CLAIM / 2,
                        AssertUnwindSafe(f).catch_unwind(),
                    )
                    .await
                    {
                        Ok(Ok(r)) => r,
                        Ok(Err(p)) => Err(format!("hook panicked: {}", panic_message(&p)).into()),
                        Err(_) => Err(format!("hook timed out after {:?}", HOOK_CLAIM / 2).into()),
                    },
                };
                (d.id.clone(), r)
            }
        });
        let results = futures::future::join_all(runs).await;
        let mut ok = Vec::new();
        let mut again = Vec::new();
        for (id, r) in results {
            match r {
                Ok(()) => ok.push(id),
                Err(e) => {
                    tracing::warn!(queue = queue.name(), job = %id, error = %e, "dead-letter hook failed; it runs again later");
                    again.push(id);
                }
            }
        }
        ::metrics::counter!(metrics::DEAD_HOOKS, "queue" => queue.name().to_string())
            .increment(ok.len() as u64);
        persist("marking dead jobs handled", || queue.dead_handled(&ok)).await;
        if again.is_empty() {
            backoff = Duration::from_secs(1);
        } else {
            let at = queue.now_ms() + i64::try_from(backoff.as_millis()).unwrap_or(1000);
            persist("rescheduling dead-letter hooks", || {
                queue.dead_retry_at(&again, at)
            })
            .await;
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }
}
