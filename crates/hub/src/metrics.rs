//! Command metrics per store, instance and operation.
//!
//! The hub records through the `metrics` facade; the binary installs the Prometheus recorder.
//! Handles are cached per operation so a hot path (the job queue issues several Redis commands
//! per job) pays a read-locked map lookup, not a registry lookup with label allocation.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use metrics::{Counter, Histogram, counter, histogram};

/// What a metric measures: the `# HELP` line of `/metrics` and its documented labels
/// (docs/metrics.md). Every crate that records metrics lists its own; the binary describes them
/// all when it installs the recorder, and a test holds `/metrics` and the docs to the lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// The name, `tsp_…`.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Its label keys; each takes a bounded set of values (never an id or user input).
    pub labels: &'static [&'static str],
    /// One sentence: what is counted or measured.
    pub help: &'static str,
}

impl Metric {
    /// A metric of the catalogue.
    pub const fn new(
        name: &'static str,
        kind: MetricKind,
        labels: &'static [&'static str],
        help: &'static str,
    ) -> Metric {
        Metric {
            name,
            kind,
            labels,
            help,
        }
    }
}

/// The Prometheus type of a [`Metric`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Observations in buckets (`_seconds` ones share the store latency buckets).
    Histogram,
}

impl MetricKind {
    /// The word of Prometheus's `# TYPE` line.
    pub fn prometheus_type(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// Gives the installed recorder each metric's help text (a no-op without a recorder).
pub fn describe_metrics(list: &[Metric]) {
    for m in list {
        match m.kind {
            MetricKind::Counter => ::metrics::describe_counter!(m.name, m.help),
            MetricKind::Gauge => ::metrics::describe_gauge!(m.name, m.help),
            MetricKind::Histogram => ::metrics::describe_histogram!(m.name, m.help),
        }
    }
}

/// Metric names, in one place so dashboards and tests agree.
pub mod names {
    use super::{Metric, MetricKind::*};

    /// Credential reloads, by store, instance and outcome (`unchanged`, `replaced`,
    /// `refused`).
    pub const ROTATIONS: &str = "tsp_credential_rotations_total";
    /// Commands run, by store, instance and operation.
    pub const COMMANDS: &str = "tsp_store_commands_total";
    /// Commands that failed, by store, instance and operation.
    pub const ERRORS: &str = "tsp_store_command_errors_total";
    /// How long commands took.
    pub const DURATION: &str = "tsp_store_command_duration_seconds";
    /// 1 when the instance's last health check passed, else 0.
    pub const UP: &str = "tsp_store_up";
    /// How long the last health check took.
    pub const HEALTH_LATENCY: &str = "tsp_store_health_latency_seconds";
    /// Pool connections, by state (`size`, `idle`, `in_use`, `max`).
    pub const POOL: &str = "tsp_store_pool_connections";
    /// Redis `used_memory`, from `INFO`.
    pub const REDIS_USED_MEMORY: &str = "tsp_redis_used_memory_bytes";
    /// Redis keyspace hits over hits plus misses, from `INFO`.
    pub const REDIS_HIT_RATIO: &str = "tsp_redis_keyspace_hit_ratio";
    /// 1 when the MongoDB instance passed its last health check, else 0.
    pub const MONGO_CONNECTED: &str = "tsp_mongo_connection_state";
    /// Points InfluxDB accepted.
    pub const INFLUX_WRITTEN: &str = "tsp_influx_points_written_total";
    /// Points InfluxDB refused for good.
    pub const INFLUX_FAILED: &str = "tsp_influx_points_failed_total";
    /// Points dropped because the writer's buffer was full.
    pub const INFLUX_DROPPED: &str = "tsp_influx_points_dropped_total";
    /// Points waiting in the writer's buffer.
    pub const INFLUX_BUFFERED: &str = "tsp_influx_points_buffered";
    /// Cache lookups, by level (`l1`, `l2`) and result (`hit`, `miss`).
    pub const CACHE_REQUESTS: &str = "tsp_cache_requests_total";
    /// Values loaded from their source after a miss at both levels.
    pub const CACHE_LOADS: &str = "tsp_cache_loads_total";
    /// Invalidations received from other processes (Redis pub/sub).
    pub const CACHE_INVALIDATIONS: &str = "tsp_cache_invalidations_total";

    const STORE: &[&str] = &["store", "store_instance"];
    const OP: &[&str] = &["store", "store_instance", "op"];
    const INSTANCE: &[&str] = &["store_instance"];

    /// Every metric the hub records.
    pub const ALL: &[Metric] = &[
        Metric::new(
            ROTATIONS,
            Counter,
            &["store", "store_instance", "outcome"],
            "Credential reloads, by outcome (unchanged, replaced, refused).",
        ),
        Metric::new(COMMANDS, Counter, OP, "Store commands run."),
        Metric::new(ERRORS, Counter, OP, "Store commands that failed."),
        Metric::new(
            DURATION,
            Histogram,
            OP,
            "How long store commands took, in seconds.",
        ),
        Metric::new(
            UP,
            Gauge,
            &["store", "store_instance", "required"],
            "1 when the instance passed its last health check (ping and read), else 0 (down or degraded).",
        ),
        Metric::new(
            HEALTH_LATENCY,
            Gauge,
            STORE,
            "How long the instance's last health check took, in seconds.",
        ),
        Metric::new(
            POOL,
            Gauge,
            &["store", "store_instance", "state"],
            "Pool connections, by state (size, idle, in_use, max).",
        ),
        Metric::new(
            REDIS_USED_MEMORY,
            Gauge,
            INSTANCE,
            "Redis used_memory, from INFO, in bytes.",
        ),
        Metric::new(
            REDIS_HIT_RATIO,
            Gauge,
            INSTANCE,
            "Redis keyspace hits over hits plus misses, from INFO.",
        ),
        Metric::new(
            MONGO_CONNECTED,
            Gauge,
            INSTANCE,
            "1 when the MongoDB instance passed its last health check, else 0.",
        ),
        Metric::new(
            INFLUX_WRITTEN,
            Counter,
            INSTANCE,
            "Points InfluxDB accepted.",
        ),
        Metric::new(
            INFLUX_FAILED,
            Counter,
            INSTANCE,
            "Points InfluxDB refused for good.",
        ),
        Metric::new(
            INFLUX_DROPPED,
            Counter,
            INSTANCE,
            "Points dropped because the writer's buffer was full.",
        ),
        Metric::new(
            INFLUX_BUFFERED,
            Gauge,
            INSTANCE,
            "Points waiting in the writer's buffer.",
        ),
        Metric::new(
            CACHE_REQUESTS,
            Counter,
            &["level", "result"],
            "Cache lookups, by level (l1, l2) and result (hit, miss).",
        ),
        Metric::new(
            CACHE_LOADS,
            Counter,
            &[],
            "Values loaded from their source after a miss at both cache levels.",
        ),
        Metric::new(
            CACHE_INVALIDATIONS,
            Counter,
            &[],
            "Cache invalidations received from other processes.",
        ),
    ];
}

struct OpHandles {
    count: Counter,
    errors: Counter,
    latency: Histogram,
}

/// The metrics of one store instance.
#[derive(Clone)]
pub struct StoreMetrics {
    store: &'static str,
    instance: Arc<str>,
    ops: Arc<RwLock<HashMap<String, Arc<OpHandles>>>>,
}

impl StoreMetrics {
    /// Handles for instance `instance` of `store`.
    pub fn new(store: &'static str, instance: &str) -> Self {
        StoreMetrics {
            store,
            instance: Arc::from(instance),
            ops: Arc::default(),
        }
    }

    /// `mysql`, `redis`, `mongo` or `influx`.
    pub fn store(&self) -> &'static str {
        self.store
    }

    /// The instance's configured name.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    fn handles(&self, op: &str) -> Arc<OpHandles> {
        if let Ok(map) = self.ops.read()
            && let Some(h) = map.get(op)
        {
            return h.clone();
        }
        let labels = [
            ("store", self.store.to_string()),
            ("store_instance", self.instance.to_string()),
            ("op", op.to_string()),
        ];
        let h = Arc::new(OpHandles {
            count: counter!(names::COMMANDS, &labels),
            errors: counter!(names::ERRORS, &labels),
            latency: histogram!(names::DURATION, &labels),
        });
        if let Ok(mut map) = self.ops.write() {
            // Operation names come from code or the Redis command word: a small, bounded set.
            map.entry(op.to_string()).or_insert_with(|| h.clone());
        }
        h
    }

    /// Records one finished command.
    pub fn record(&self, op: &str, started: Instant, ok: bool) {
        self.record_elapsed(op, started.elapsed(), ok);
    }

    /// Records one finished command whose duration the driver measured.
    pub fn record_elapsed(&self, op: &str, elapsed: std::time::Duration, ok: bool) {
        let h = self.handles(op);
        h.count.increment(1);
        if !ok {
            h.errors.increment(1);
        }
        h.latency.record(elapsed.as_secs_f64());
    }

    /// A span for one command `op` (docs/metrics.md#traces). At debug level: created only while
    /// spans are exported, so a store call costs nothing more otherwise.
    pub fn span(&self, op: &str) -> tracing::Span {
        tracing::debug_span!(
            "store",
            otel.name = %format_args!("{} {op}", self.store),
            db.system.name = self.store,
            store_instance = %self.instance,
            db.operation.name = op,
        )
    }

    /// Runs `fut` as operation `op`, recording count, error and latency, in a [`Self::span`].
    pub async fn timed<T, E, F>(&self, op: &str, fut: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        use tracing::Instrument;
        let started = Instant::now();
        let out = fut.instrument(self.span(op)).await;
        self.record(op, started, out.is_ok());
        out
    }
}
