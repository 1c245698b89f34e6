//! The two background loops that keep leases honest: the heartbeat (this worker's leases) and
//! the recoverer (every dead worker's).

use std::time::Duration;

use super::held::{Held, held_snapshot, still_running};
use crate::queue::Queue;

/// Every third of the lease, extends the leases of every job this worker holds.
pub(super) async fn heartbeat(queue: Queue, held: Held) {
    let lease = queue.settings().lease;
    loop {
        tokio::time::sleep(lease / 3).await;
        let leases = held_snapshot(&held);
        match queue.extend(&leases).await {
            // A job acknowledged since the snapshot is no longer leased, but not lost.
            Ok(lost) if lost.iter().any(|id| still_running(&held, id)) => {
                tracing::warn!(
                    queue = queue.name(),
                    jobs = lost.iter().filter(|id| still_running(&held, id)).count(),
                    "leases lost: those jobs run elsewhere now"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(queue = queue.name(), error = %e, "heartbeat failed"),
        }
    }
}

/// Every half lease, sends the jobs of expired leases (dead or hung workers) back to the queue.
pub(super) async fn recover(queue: Queue) {
    let lease = queue.settings().lease;
    loop {
        match queue.recover_stalled().await {
            Ok((back, dead)) if back + dead > 0 => {
                tracing::warn!(
                    queue = queue.name(),
                    back,
                    dead,
                    "recovered jobs whose lease expired"
                );
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(queue = queue.name(), error = %e, "stalled-job check failed")
            }
        }
        tokio::time::sleep((lease / 2).max(Duration::from_millis(500))).await;
    }
}
