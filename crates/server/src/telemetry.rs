//! Logging and the Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Logs go to stderr so stdout stays clean for JSON output. Level from `TSP_LOG` (e.g.
/// `info`, `tsp_hub=debug`), else `RUST_LOG`, default `info`; `TSP_LOG_FORMAT=json` for JSON lines. Colours only
/// on a terminal: a log file or collector gets plain text.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_env("TSP_LOG")
        .or_else(|_| EnvFilter::try_from_env("RUST_LOG"))
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,mongodb=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if std::env::var("TSP_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once; later calls return the same handle.
pub fn prometheus() -> Option<PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            // Store commands are sub-millisecond to seconds.
            let buckets = [
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0, 10.0,
            ];
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .and_then(|b| b.install_recorder())
                .map_err(|e| tracing::error!(error = %e, "cannot install the metrics recorder"))
                .ok();
            crate::build_info::record_build_info();
            handle
        })
        .clone()
}
