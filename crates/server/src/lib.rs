//! The `tsp-job` binary's library: CLI, commands and the HTTP server.
//!
//! `main.rs` only parses arguments and maps outcomes to exit codes: 0 success, 1 a store or
//! run failure, 2 invalid configuration or usage.

pub mod app;
pub mod cli;
pub mod commands;
pub mod http;
pub mod telemetry;

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
