//! The project's binaries as tests run them.

use std::process::Command;

/// `bin` (a `CARGO_BIN_EXE_*` path) with a clean environment: only PATH, HOME, the project's
/// config folder and the test environment, plus `env`. On a Redis Cluster run
/// (docs/testing.md#cluster) the child uses the Cluster too.
pub fn command(bin: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("TSP_CONFIG_DIR", crate::config_dir())
        .env("TSP_ENV", crate::env_name());
    if let Ok(seeds) = std::env::var("TSP_TEST_REDIS_CLUSTER") {
        cmd.env("TSP__REDIS__CACHE__CLUSTER_NODES", seeds);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}
