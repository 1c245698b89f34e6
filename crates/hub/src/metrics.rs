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

/// Metric names, in one place so dashboards and tests agree.
pub mod names {
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
            ("instance", self.instance.to_string()),
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

    /// Runs `fut` as operation `op`, recording count, error and latency.
    pub async fn timed<T, E, F>(&self, op: &str, fut: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        let started = Instant::now();
        let out = fut.await;
        self.record(op, started, out.is_ok());
        out
    }
}
