//! How many trips hold their lock at once in this process, and the most so far: the figure the
//! `dataset` pool capped when each trip held a connection (docs/consistency.md#batches).

use std::sync::atomic::{AtomicUsize, Ordering};

/// Trips holding their lock now, and the peak.
#[derive(Default)]
pub(super) struct HeldLocks {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl HeldLocks {
    /// Counts `n` more trips as holding their lock until the guard is dropped.
    pub(super) fn hold(&self, n: usize) -> Held<'_> {
        let now = self.now.fetch_add(n, Ordering::AcqRel) + n;
        self.peak.fetch_max(now, Ordering::AcqRel);
        Held { locks: self, n }
    }

    /// The most trips that held their lock at once.
    pub(super) fn peak(&self) -> usize {
        self.peak.load(Ordering::Acquire)
    }
}

/// Trips counted as holding their lock; dropping it counts them out.
pub(super) struct Held<'a> {
    locks: &'a HeldLocks,
    n: usize,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.locks.now.fetch_sub(self.n, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_the_most_held_at_once_not_the_sum() {
        let locks = HeldLocks::default();
        let a = locks.hold(3);
        let b = locks.hold(2);
        drop(a);
        let c = locks.hold(1);
        assert_eq!(locks.peak(), 5);
        drop(b);
        drop(c);
        let _d = locks.hold(4);
        assert_eq!(locks.peak(), 5);
        assert_eq!(locks.now.load(Ordering::Acquire), 4);
    }
}
