//! The `tsp-job` binary's library: CLI, commands and the HTTP server.
//!
//! `main.rs` only parses arguments and maps outcomes to exit codes: 0 success, 1 a store or
//! run failure, 2 invalid configuration or usage.

pub mod app;
pub mod backup_job;
pub mod build_info;
pub mod cli;
pub mod commands;
pub mod dispatch;
pub mod gtfs_job;
pub mod http;
pub mod logs;
pub mod reload;
pub mod telemetry;
pub mod traces;

/// The exit code of a store or run failure.
pub const EXIT_FAILURE: u8 = 1;

/// The async runtime of a tsp-job process: `server.threads` worker threads (0: one per core).
pub fn runtime(config: &tsp_config::Config) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if config.server.threads > 0 {
        builder.worker_threads(config.server.threads);
    }
    builder.enable_all().build()
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// An error and its causes on one line, each cause once: a store error already quotes its
/// driver's (redacted) message, which is also its source.
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_chain_says_each_cause_once() {
        let driver = std::io::Error::other("connection refused");
        let e = anyhow::Error::new(driver)
            .context("mysql.portal: connect failed: connection refused")
            .context("cannot set up the stores");
        assert_eq!(
            super::error_chain(&e),
            "cannot set up the stores: mysql.portal: connect failed: connection refused"
        );
    }
}
