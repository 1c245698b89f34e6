//! The Prometheus recorder, and the catalogue of every metric the process records.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tsp_hub::{Metric, MetricKind::*};

/// Routed requests, by `route` (the template), `method` and `status`.
pub const HTTP_DURATION: &str = "tsp_http_request_duration_seconds";
/// Requests let through because the rate limiter's Redis failed.
pub const LIMIT_ERRORS: &str = "tsp_http_limit_errors_total";
/// Activity events stored in MongoDB.
pub const ACTIVITY_WRITTEN: &str = "tsp_activity_events_written_total";
/// Activity events dropped (buffer full, or MongoDB still down at shutdown).
pub const ACTIVITY_DROPPED: &str = "tsp_activity_events_dropped_total";
/// Health-check points for the service-monitor bucket dropped because the writer stayed full.
pub const VENDOR_LATENCY_DROPPED: &str = "tsp_vendor_latency_dropped_total";

/// The metrics `tsp-server` records itself.
const SERVER: &[Metric] = &[
    Metric::new(
        HTTP_DURATION,
        Histogram,
        &["route", "method", "status"],
        "Seconds to answer a routed request, by route template, method and status.",
    ),
    Metric::new(
        LIMIT_ERRORS,
        Counter,
        &[],
        "Requests let through because the rate limiter's Redis failed.",
    ),
    Metric::new(
        ACTIVITY_WRITTEN,
        Counter,
        &[],
        "Activity events stored in MongoDB.",
    ),
    Metric::new(
        ACTIVITY_DROPPED,
        Counter,
        &[],
        "Activity events dropped: buffer full, or MongoDB still down at shutdown.",
    ),
    Metric::new(
        VENDOR_LATENCY_DROPPED,
        Counter,
        &[],
        "Health-check points for the service-monitor bucket dropped: the writer stayed full.",
    ),
    Metric::new(
        crate::build_info::BUILD_INFO,
        Gauge,
        &["version", "revision", "rustc", "features"],
        "1, labelled with the version, revision, rustc and features of the running build.",
    ),
];

/// Every metric a tsp-job process can record: the hub's, the queue's, the trip job's and its
/// own (docs/metrics.md lists the same).
pub fn catalogue() -> impl Iterator<Item = &'static Metric> {
    LISTS.into_iter().flatten()
}

const LISTS: [&[Metric]; 4] = [
    tsp_hub::metric_names::ALL,
    tsp_queue::metrics::ALL,
    tsp_mobility::metrics::ALL,
    SERVER,
];

/// How often histogram samples are folded into their buckets when nothing scrapes (a scrape
/// does it too): without it a process that records but is never scraped keeps every sample.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

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
                .ok()?;
            for list in LISTS {
                tsp_hub::describe_metrics(list);
            }
            crate::build_info::record_build_info();
            start_upkeep(handle.clone());
            Some(handle)
        })
        .clone()
}

/// Folds histogram samples into buckets every [`UPKEEP_EVERY`], on a thread of its own, so it
/// runs whether or not an async runtime is alive and whether or not anything scrapes.
fn start_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the metrics upkeep thread: histograms grow until scraped");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::catalogue;

    /// The rows of docs/metrics.md's tables: name, type, labels.
    fn documented() -> BTreeSet<(String, String, String)> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/metrics.md");
        let text = std::fs::read_to_string(path).expect("docs/metrics.md");
        text.lines()
            .filter(|l| l.starts_with("| `tsp_"))
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
                let labels: Vec<&str> = cells[2].split(',').map(str::trim).collect();
                (
                    cells[0].trim_matches('`').to_string(),
                    cells[1].to_string(),
                    labels.join(","),
                )
            })
            .collect()
    }

    #[test]
    fn every_metric_is_documented_as_the_code_records_it() {
        let code: BTreeSet<(String, String, String)> = catalogue()
            .map(|m| {
                (
                    m.name.to_string(),
                    m.kind.prometheus_type().to_string(),
                    m.labels.join(","),
                )
            })
            .collect();
        let docs = documented();
        assert_eq!(
            code.difference(&docs).collect::<Vec<_>>(),
            Vec::<&(String, String, String)>::new(),
            "in the code, not (or not so) in docs/metrics.md"
        );
        assert_eq!(
            docs.difference(&code).collect::<Vec<_>>(),
            Vec::<&(String, String, String)>::new(),
            "in docs/metrics.md, not (or not so) in the code"
        );
    }

    #[test]
    fn names_are_unique_and_say_their_unit() {
        let mut names = BTreeSet::new();
        for m in catalogue() {
            assert!(names.insert(m.name), "{} listed twice", m.name);
            assert!(m.name.starts_with("tsp_"), "{}", m.name);
            assert!(!m.help.is_empty(), "{}: no help text", m.name);
            match m.kind {
                tsp_hub::MetricKind::Counter => assert!(m.name.ends_with("_total"), "{}", m.name),
                tsp_hub::MetricKind::Histogram => {
                    assert!(m.name.ends_with("_seconds"), "{}", m.name)
                }
                tsp_hub::MetricKind::Gauge => assert!(!m.name.ends_with("_total"), "{}", m.name),
            }
        }
    }
}
