//! The database hub: one place that owns every store's connections, health and metrics.
//!
//! # Layout
//! - `mysql`, `redis`, `mongo`, `influx` ([`MysqlStore`], …): one module per store; each
//!   builds its client from settings, checks its health under a timeout, and records every
//!   command it runs.
//!   [`InsertBatcher`] groups concurrent inserts into one `insert_many`.
//! - `cache` ([`Cache`]): the two-level (process, Redis) query cache with cross-process
//!   invalidation.
//! - `health` ([`HubHealth`]): the health report types. `metrics`: metric names
//!   ([`metric_names`]) and per-operation handles ([`StoreMetrics`]).
//! - [`Hub`]: built from a [`tsp_config::Config`]; a cheap-to-clone handle on all instances.
//!
//! Building a hub never waits on the network: pools and clients connect lazily, so a store that
//! is down cannot hold up the others. [`Hub::health`] checks every instance concurrently, each
//! bounded by `health.timeout`; [`Hub::require`] turns that into a start-up gate on the
//! required stores only.

#![warn(missing_docs, unreachable_pub)]

mod cache;
mod error;
mod health;
mod influx;
mod metrics;
mod migrate;
mod mongo;
mod mysql;
mod redis;
mod resolver;
mod rotation;
mod roundtrip;
mod shared;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_recursion::async_recursion as boxed;
use secrecy::ExposeSecret;
use tsp_config::Config;

pub use cache::{Cache, CacheStats, Invalidation, Level};
pub use error::{Cause, ErrorKind, HubError, Redactor};
pub use health::{HubHealth, InstanceHealth, PoolStats, Status};
pub use influx::{FieldValue, InfluxStore, Point, PointError, PointWriter, WriterStats};
pub use metrics::{Metric, MetricKind, StoreMetrics, describe_metrics, names as metric_names};
pub use migrate::{MigrationReport, migrate_mysql};
pub use mongo::{InsertBatcher, Inserted, MIGRATIONS_COLLECTION, MongoStore};
pub use mysql::MysqlStore;
pub use mysql::{NamedLock, NamedLocks, mysql_connect_options};
pub use redis::{RedisConn, RedisStore};
pub use resolver::Resolver;
pub use rotation::{Rotation, RotationOutcome};
pub use roundtrip::RoundtripOutcome;

struct Inner {
    config: Arc<Config>,
    /// The configuration with the credentials in use: `config` until a rotation.
    current: shared::Shared<Config>,
    alarm: rotation::AuthAlarm,
    mysql: BTreeMap<String, MysqlStore>,
    redis: BTreeMap<String, RedisStore>,
    mongo: BTreeMap<String, MongoStore>,
    influx: BTreeMap<String, InfluxStore>,
    redactor: Redactor,
}

/// Every configured store instance. Cloning is an `Arc` increment.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// Every secret in the configuration, for the [`Redactor`].
fn secrets_of(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut push_url = |u: &str| {
        out.push(u.to_string());
        if let Ok(parsed) = url::Url::parse(u)
            && let Some(p) = parsed.password()
        {
            out.push(p.to_string());
            if let Ok(decoded) = urlencoding_decode(p) {
                out.push(decoded);
            }
        }
    };
    for s in config.mysql.values() {
        if let Some(u) = &s.url {
            push_url(u.expose_secret());
        }
    }
    for s in config.redis.values() {
        if let Some(u) = &s.url {
            push_url(u.expose_secret());
        }
    }
    for s in config.mongo.values() {
        if let Some(u) = &s.uri {
            push_url(u.expose_secret());
        }
    }
    let accounts = config
        .mysql
        .values()
        .map(|s| (&s.password, &s.migrate))
        .chain(config.redis.values().map(|s| (&s.password, &s.migrate)))
        .chain(config.mongo.values().map(|s| (&s.password, &s.migrate)))
        .chain(config.influx.values().map(|s| (&s.password, &s.migrate)));
    for (password, migrate) in accounts {
        out.push(password.expose_secret().to_string());
        out.push(migrate.password.expose_secret().to_string());
        if let Some(t) = &migrate.token {
            out.push(t.expose_secret().to_string());
        }
    }
    for s in config.influx.values() {
        out.push(s.token.expose_secret().to_string());
    }
    out.retain(|s| !s.is_empty());
    out
}

fn urlencoding_decode(s: &str) -> Result<String, std::str::Utf8Error> {
    let bytes: Vec<u8> = url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .unwrap_or_default();
    std::str::from_utf8(&bytes).map(str::to_string)
}

impl Hub {
    /// Builds a client or pool for every configured instance. Nothing here waits on a server;
    /// call [`Hub::health`] or [`Hub::require`] to find out what answers.
    ///
    /// # Errors
    /// Settings a driver refuses (e.g. an unreadable TLS file). Every such problem is reported.
    #[boxed]
    pub async fn connect(config: &Config) -> Result<Hub, HubError> {
        // rustls picks its crypto provider from crate features; when a build enables more than
        // one (a dependency of a test may), it picks none and TLS connections panic. Choose
        // ring, which every TLS driver here is built with; an earlier choice stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let redactor = Redactor::new(secrets_of(config));
        let alarm = rotation::AuthAlarm::default();
        let mut errors = Vec::new();
        let mut mysql = BTreeMap::new();
        for (name, s) in &config.mysql {
            match MysqlStore::new(s, redactor.clone(), alarm.clone()) {
                Ok(store) => {
                    mysql.insert(name.clone(), store);
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        let redis = config
            .redis
            .iter()
            .map(|(name, s)| {
                let store = RedisStore::new(s, redactor.clone(), alarm.clone());
                (name.clone(), store)
            })
            .collect();
        // Mongo option parsing may resolve DNS (mongodb+srv), so the instances go concurrently.
        let mongo_results = futures::future::join_all(config.mongo.iter().map(|(name, s)| {
            let redactor = redactor.clone();
            let alarm = alarm.clone();
            async move { (name.clone(), MongoStore::new(s, redactor, alarm).await) }
        }))
        .await;
        let mut mongo = BTreeMap::new();
        for (name, r) in mongo_results {
            match r {
                Ok(store) => {
                    mongo.insert(name, store);
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        let tags = config.influx_tags.pairs();
        let mut influx = BTreeMap::new();
        for (name, s) in &config.influx {
            match InfluxStore::new(s, tags.clone(), redactor.clone(), alarm.clone()) {
                Ok(store) => {
                    influx.insert(name.clone(), store);
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        if !errors.is_empty() {
            return Err(HubError::Settings {
                store: "hub",
                instance: "*".into(),
                message: errors.join("; "),
            });
        }
        Ok(Hub {
            inner: Arc::new(Inner {
                config: Arc::new(config.clone()),
                current: shared::Shared::new(config.clone()),
                alarm,
                mysql,
                redis,
                mongo,
                influx,
                redactor,
            }),
        })
    }

    /// The configuration the hub was built from.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Removes configured secrets from a message.
    pub fn redactor(&self) -> &Redactor {
        &self.inner.redactor
    }

    /// MySQL instance `name`, or [`HubError::UnknownInstance`].
    pub fn mysql(&self, name: &str) -> Result<&MysqlStore, HubError> {
        self.inner
            .mysql
            .get(name)
            .ok_or_else(|| unknown("mysql", name))
    }

    /// Redis instance `name`, or [`HubError::UnknownInstance`].
    pub fn redis(&self, name: &str) -> Result<&RedisStore, HubError> {
        self.inner
            .redis
            .get(name)
            .ok_or_else(|| unknown("redis", name))
    }

    /// MongoDB instance `name`, or [`HubError::UnknownInstance`].
    pub fn mongo(&self, name: &str) -> Result<&MongoStore, HubError> {
        self.inner
            .mongo
            .get(name)
            .ok_or_else(|| unknown("mongo", name))
    }

    /// InfluxDB instance `name`, or [`HubError::UnknownInstance`].
    pub fn influx(&self, name: &str) -> Result<&InfluxStore, HubError> {
        self.inner
            .influx
            .get(name)
            .ok_or_else(|| unknown("influx", name))
    }

    /// Every MySQL instance, by name.
    pub fn mysql_instances(&self) -> impl Iterator<Item = &MysqlStore> {
        self.inner.mysql.values()
    }
    /// Every Redis instance, by name.
    pub fn redis_instances(&self) -> impl Iterator<Item = &RedisStore> {
        self.inner.redis.values()
    }
    /// Every MongoDB instance, by name.
    pub fn mongo_instances(&self) -> impl Iterator<Item = &MongoStore> {
        self.inner.mongo.values()
    }
    /// Every InfluxDB instance, by name.
    pub fn influx_instances(&self) -> impl Iterator<Item = &InfluxStore> {
        self.inner.influx.values()
    }

    /// The writer for vendor-latency points (`influx.service_monitor`).
    pub fn service_monitor_writer(&self) -> Result<PointWriter, HubError> {
        let sm = &self.inner.config.service_monitor;
        Ok(self.influx(&sm.instance)?.writer_for(&sm.bucket))
    }

    /// Checks every instance concurrently: a ping bounded by `health.timeout`, then a real
    /// read bounded by `health.read_timeout`.
    #[boxed]
    pub async fn health(&self) -> HubHealth {
        use futures::FutureExt;
        let settings = &self.inner.config.health;
        let mut checks = Vec::new();
        for s in self.inner.mysql.values() {
            checks.push(s.health(settings).boxed());
        }
        for s in self.inner.redis.values() {
            checks.push(s.health(settings).boxed());
        }
        for s in self.inner.mongo.values() {
            checks.push(s.health(settings).boxed());
        }
        for s in self.inner.influx.values() {
            checks.push(s.health(settings).boxed());
        }
        let mut instances = futures::future::join_all(checks).await;
        for i in &mut instances {
            if let Some(e) = &i.error {
                i.error = Some(self.inner.redactor.clean(e.clone()));
            }
            let labels = [
                ("store", i.store.to_string()),
                ("store_instance", i.instance.clone()),
            ];
            let up = if i.status == Status::Up { 1.0 } else { 0.0 };
            let required = ("required", i.required.to_string());
            let up_labels = [labels[0].clone(), labels[1].clone(), required];
            ::metrics::gauge!(metrics::names::UP, &up_labels).set(up);
            ::metrics::gauge!(metrics::names::HEALTH_LATENCY, &labels).set(i.latency_ms / 1000.0);
        }
        let mut report = HubHealth::from_instances(instances);
        report.warnings = self.inner.config.warnings.clone();
        report
    }

    /// Checks health and fails when a required store is down or degraded, naming each one and
    /// why.
    #[boxed]
    pub async fn require(&self) -> Result<HubHealth, HubError> {
        let health = self.health().await;
        let failing = health.required_failing();
        if failing.is_empty() {
            Ok(health)
        } else {
            Err(HubError::RequiredDown(failing.join(", ")))
        }
    }

    /// Updates the gauges that are read, not counted: pool sizes and Influx buffers.
    pub fn refresh_gauges(&self) {
        let pool_gauges = |store: &'static str, instance: &str, p: PoolStats| {
            for (state, v) in [
                ("size", p.size),
                ("idle", p.idle),
                ("in_use", p.in_use),
                ("max", p.max),
            ] {
                ::metrics::gauge!(metrics::names::POOL, "store" => store, "store_instance" => instance.to_string(), "state" => state)
                    .set(f64::from(v));
            }
        };
        for s in self.inner.mysql.values() {
            pool_gauges("mysql", s.name(), s.pool_stats());
        }
        for s in self.inner.mongo.values() {
            pool_gauges("mongo", s.name(), s.pool_stats());
        }
        for s in self.inner.influx.values() {
            let buffered: u64 = s.writers().iter().map(|w| w.stats().buffered).sum();
            ::metrics::gauge!(metrics::names::INFLUX_BUFFERED, "store_instance" => s.name().to_string())
                .set(buffered as f64);
        }
    }

    /// Flushes every Influx writer (within `grace`) and closes the MySQL pools.
    #[boxed]
    pub async fn shutdown(&self, grace: Duration) -> Vec<ClosedWriter> {
        let writers: Vec<(String, PointWriter)> = self
            .inner
            .influx
            .values()
            .flat_map(|s| s.writers().into_iter().map(|w| (s.name().to_string(), w)))
            .collect();
        let closed = futures::future::join_all(writers.iter().map(|(instance, w)| async move {
            ClosedWriter {
                instance: instance.clone(),
                target: w.target().to_string(),
                stats: w.close(grace).await,
            }
        }))
        .await;
        futures::future::join_all(self.inner.mysql.values().map(|s| s.close())).await;
        closed
    }
}

/// One Influx point writer as [`Hub::shutdown`] left it: what it did not write is lost.
#[derive(Debug, Clone)]
pub struct ClosedWriter {
    /// The Influx instance.
    pub instance: String,
    /// Its database or bucket.
    pub target: String,
    /// Its counts after closing.
    pub stats: WriterStats,
}

fn unknown(store: &'static str, name: &str) -> HubError {
    HubError::UnknownInstance {
        store,
        instance: name.to_string(),
    }
}
