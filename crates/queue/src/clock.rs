//! The time a queue stamps its transitions with: every script takes `now` as an argument, so
//! the queue reads it from one place. The system clock in service; a manual clock in tests,
//! so leases lapse, backoffs end and ticks fall due when the test says, without waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Where a queue reads the time (milliseconds since the Unix epoch).
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A clock that moves only when told ([`Clock::advance`]), shared by its clones.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A manual clock showing the system's time now.
    pub fn manual() -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(system_ms())))
    }

    /// The time, milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => system_ms(),
            Clock::Manual(at) => at.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock on by `by` (the system clock moves by itself: nothing happens).
    pub fn advance(&self, by: Duration) {
        if let Clock::Manual(at) = self {
            at.fetch_add(
                i64::try_from(by.as_millis()).unwrap_or(i64::MAX),
                Ordering::SeqCst,
            );
        }
    }
}

fn system_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
