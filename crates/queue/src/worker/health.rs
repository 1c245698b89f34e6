//! Whether a worker can store its jobs' outcomes. An acknowledgement that keeps failing is given
//! up after `queue.ack_attempts` tries (its jobs' leases are left to lapse, so they run
//! elsewhere) and the worker says it is unhealthy, with the cause, until an acknowledgement
//! goes through again (docs/queue.md#acknowledgements).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Inner {
    unhealthy: AtomicBool,
    /// Batches given up since the worker started.
    given_up: AtomicU64,
    /// The cause of the last one (kept once healthy again).
    reason: Mutex<Option<String>>,
}

/// A worker's health, read by its process's `/health/ready`. Cheap to clone.
#[derive(Clone, Default)]
pub struct WorkerHealth {
    inner: Arc<Inner>,
}

impl WorkerHealth {
    /// Whether its outcomes are being stored.
    pub fn healthy(&self) -> bool {
        !self.inner.unhealthy.load(Ordering::Relaxed)
    }

    /// Why it is unhealthy, if it is.
    pub fn reason(&self) -> Option<String> {
        if self.healthy() {
            return None;
        }
        self.last_failure()
    }

    /// How many batches of outcomes it has given up since it started.
    pub fn given_up(&self) -> u64 {
        self.inner.given_up.load(Ordering::Relaxed)
    }

    /// The cause of the last batch given up, healthy again since or not.
    pub fn last_failure(&self) -> Option<String> {
        match self.inner.reason.lock() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub(super) fn fail(&self, queue: &str, why: String) {
        match self.inner.reason.lock() {
            Ok(mut r) => *r = Some(why),
            Err(p) => *p.into_inner() = Some(why),
        }
        self.inner.unhealthy.store(true, Ordering::Relaxed);
        self.inner.given_up.fetch_add(1, Ordering::Relaxed);
        ::metrics::gauge!(crate::metrics::HEALTHY, "queue" => queue.to_string()).set(0.0);
    }

    pub(super) fn recover(&self, queue: &str) {
        if self.inner.unhealthy.swap(false, Ordering::Relaxed) {
            tracing::info!(queue, "outcomes are stored again: the worker is healthy");
            ::metrics::gauge!(crate::metrics::HEALTHY, "queue" => queue.to_string()).set(1.0);
        }
    }
}

/// Acknowledgement calls a drill makes fail before any is sent (`queue.fault.ack_failures`).
pub(super) struct AckFaults(AtomicU64);

impl AckFaults {
    pub(super) fn new(n: u64) -> AckFaults {
        AckFaults(AtomicU64::new(n))
    }

    /// Whether this call is one to fail.
    pub(super) fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }
}
