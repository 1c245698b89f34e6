//! Shared helpers for the hub's integration tests: configuration pointing at the local services
//! (`scripts/services.sh up`), unique names, free ports (see `tsp-testkit`).
#![allow(dead_code, unused_imports)]

pub use tsp_testkit::{closed_port, config};

/// A name no other test (or run) uses: `prefix_` and random hex digits.
pub fn unique(prefix: &str) -> String {
    tsp_testkit::unique(&format!("{prefix}_"))
}
