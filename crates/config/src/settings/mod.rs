//! The typed configuration that the rest of the service reads. Built only by [`crate::load`],
//! after validation, so every value here is known to be well-formed.
//!
//! Each settings struct is also the declaration of its keys: `#[derive(Settings)]` makes the
//! schema's tables from its fields (name, doc comment, type, bounds, default), so a key is
//! written once. Each section is deserialized from its validated values, so the fields are the
//! keys (a dotted key is a nested struct: `pool.max` is `pool: PoolSettings`), and
//! `deny_unknown_fields` refuses anything else.

mod groups;
mod operations;
mod queue;
mod service;
mod stores;
mod trips;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::origin::Origin;

pub use groups::*;
pub use operations::*;
pub use queue::*;
pub use service::*;
pub use stores::*;
pub use trips::*;

/// TLS settings shared by the stores. Which modes a store accepts is in the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    Disabled,
    /// Use TLS when the server offers it (MySQL only).
    Preferred,
    /// Encrypt, do not verify the certificate.
    Required,
    /// Verify the certificate chain, not the host name (MySQL only).
    VerifyCa,
    /// Verify chain and host name.
    VerifyIdentity,
}

impl TlsMode {
    /// Whether the server's certificate is checked (`verify_ca`, `verify_identity`).
    pub fn verifies(self) -> bool {
        matches!(self, TlsMode::VerifyCa | TlsMode::VerifyIdentity)
    }

    /// The mode's configuration name.
    pub fn name(self) -> &'static str {
        match self {
            TlsMode::Disabled => "disabled",
            TlsMode::Preferred => "preferred",
            TlsMode::Required => "required",
            TlsMode::VerifyCa => "verify_ca",
            TlsMode::VerifyIdentity => "verify_identity",
        }
    }
}

/// Whether `host` names this machine: `localhost`, a loopback address, or a Unix socket path.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.starts_with('/')
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// One effective value for `config show`: masked when secret.
#[derive(Debug, Clone)]
pub struct ShownValue {
    pub key: String,
    /// TOML-like rendering, secrets masked.
    pub display: String,
    /// JSON rendering, secrets masked.
    pub json: serde_json::Value,
    pub origin: Origin,
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The environment name (`TSP_ENV`, default `development`).
    pub env: String,
    pub mysql: BTreeMap<String, MysqlSettings>,
    pub redis: BTreeMap<String, RedisSettings>,
    pub mongo: BTreeMap<String, MongoSettings>,
    pub influx: BTreeMap<String, InfluxSettings>,
    pub service_monitor: ServiceMonitorSettings,
    pub influx_tags: InfluxTags,
    pub health: HealthSettings,
    pub secrets: SecretsSettings,
    pub server: ServerSettings,
    pub queue: QueueSettings,
    pub trips: TripSettings,
    pub cache: CacheSettings,
    pub auth: AuthSettings,
    pub limits: LimitSettings,
    pub activity: ActivitySettings,
    /// `telemetry.otlp.*`
    pub otlp: OtlpSettings,
    pub backup: BackupSettings,
    pub gtfs: GtfsSettings,
    /// Batch settings by job type (`queue.batch.<type>.*`); see [`Config::job_batch`].
    pub batches: BTreeMap<String, JobBatchSettings>,
    /// Schedules declared here, by name.
    pub schedules: BTreeMap<String, ScheduleSettings>,
    /// Every effective value with its origin, in key order.
    pub shown: Vec<ShownValue>,
    /// The files that were read, lowest precedence first.
    pub files: Vec<PathBuf>,
    /// Things worth telling the operator that are not errors.
    pub warnings: Vec<String>,
}

impl Config {
    /// The batch settings of `job_type`: `queue.batch.<type>.*`, or the defaults.
    pub fn job_batch(&self, job_type: &str) -> JobBatchSettings {
        self.batches
            .get(job_type)
            .copied()
            .unwrap_or(JobBatchSettings {
                max_batch: BATCH_MAX_DEFAULT,
                // A constant the schema also renders; `defaults_of_an_unnamed_batch_type_parse`
                // checks it parses.
                max_wait: crate::parse_duration_text(BATCH_WAIT_DEFAULT).unwrap_or_default(),
            })
    }
}
