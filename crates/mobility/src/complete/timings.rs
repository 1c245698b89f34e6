//! Time spent per step of the trip job in this process (the main job's summary).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::STEPS;

/// Total time and count of one step.
#[derive(Debug, Clone, Serialize)]
pub struct StepTiming {
    /// The step's name.
    pub step: String,
    /// How often it ran.
    pub count: u64,
    /// Its mean time.
    pub mean_ms: f64,
}

/// Per-step time sums (µs) and counts; "prepare" is validation, the user check and the lock.
#[derive(Default)]
pub(super) struct Timings {
    sums: [AtomicU64; STEPS.len() + 1],
    counts: [AtomicU64; STEPS.len() + 1],
}

impl Timings {
    fn index(step: &str) -> usize {
        STEPS
            .iter()
            .position(|s| *s == step)
            .map(|i| i + 1)
            .unwrap_or(0)
    }

    pub(super) fn record(&self, step: &str, d: Duration) {
        let i = Self::index(step);
        self.sums[i].fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> Vec<StepTiming> {
        std::iter::once("prepare")
            .chain(STEPS.iter().copied())
            .enumerate()
            .map(|(i, step)| {
                let count = self.counts[i].load(Ordering::Relaxed);
                let sum = self.sums[i].load(Ordering::Relaxed);
                StepTiming {
                    step: step.to_string(),
                    count,
                    mean_ms: if count == 0 {
                        0.0
                    } else {
                        sum as f64 / count as f64 / 1000.0
                    },
                }
            })
            .collect()
    }
}
