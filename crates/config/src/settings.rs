//! The typed configuration that the rest of the service reads. Built only by [`crate::load`],
//! after validation, so every value here is known to be well-formed.
//!
//! Each section struct is deserialized from that section's validated values, so its fields are
//! the schema's keys (a dotted key is a nested struct: `pool.max` is `pool: PoolSettings`), and
//! `deny_unknown_fields` makes a schema key without a field fail every load.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::origin::Origin;

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub mode: TlsMode,
    /// Accept a mode that does not verify the server in the production profile.
    pub allow_insecure: bool,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The migrator account of an instance (`<store>.<instance>.migrate.*`): used by `migrate`,
/// `backup`, `restore` and sandboxes; empty `user` means the app account does both.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrateAccount {
    pub user: String,
    pub password: SecretString,
    /// Influx v2 only: the migrator's token.
    #[serde(default)]
    pub token: Option<SecretString>,
}

/// A CA to trust besides the system's (`influx.<instance>.tls.ca`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaSettings {
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSettings {
    pub min: u32,
    pub max: u32,
    pub acquire_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSettings {
    pub name: String,
    pub required: bool,
    /// When set, replaces host/port/user/password/database.
    pub url: Option<SecretString>,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: SecretString,
    pub migrate: MigrateAccount,
    pub database: String,
    pub charset: String,
    pub pool: PoolSettings,
    pub tls: TlsSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub name: String,
    pub required: bool,
    pub url: Option<SecretString>,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: SecretString,
    pub migrate: MigrateAccount,
    pub db: u32,
    pub key_prefix: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub max_retries: u32,
    pub tls: TlsSettings,
    /// Non-empty: Redis Cluster seed nodes (`host:port`).
    pub cluster_nodes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoPoolSettings {
    pub min: u32,
    pub max: u32,
    pub max_idle: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoSettings {
    pub name: String,
    pub required: bool,
    pub uri: Option<SecretString>,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: SecretString,
    pub migrate: MigrateAccount,
    pub database: String,
    pub auth_source: String,
    pub replica_set: String,
    pub pool: MongoPoolSettings,
    pub server_selection_timeout: Duration,
    pub connect_timeout: Duration,
    pub socket_timeout: Duration,
    pub tls: TlsSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InfluxApi {
    V1,
    V2,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSettings {
    pub max_points: usize,
    pub flush_interval: Duration,
    pub max_retries: u32,
    pub retry_interval: Duration,
    pub max_retry_delay: Duration,
    pub max_buffer_points: usize,
    pub jitter: Duration,
    pub in_flight: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxSettings {
    pub name: String,
    pub required: bool,
    pub url: String,
    pub api: InfluxApi,
    pub token: SecretString,
    pub org: String,
    pub bucket: String,
    pub database: String,
    pub retention_policy: String,
    pub username: String,
    pub password: SecretString,
    pub migrate: MigrateAccount,
    pub tls: CaSettings,
    pub timeout: Duration,
    pub batch: BatchSettings,
}

impl InfluxSettings {
    /// The v1 database, or the bucket when no database is set.
    pub fn v1_database(&self) -> &str {
        if self.database.is_empty() {
            &self.bucket
        } else {
            &self.database
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceMonitorSettings {
    pub instance: String,
    pub bucket: String,
    pub measurement: String,
    pub timeout: Duration,
}

/// Tags added to every Influx point.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxTags {
    pub datacenter: String,
    pub project: String,
    pub stage: String,
}

impl InfluxTags {
    /// As (key, value) pairs, skipping empty values (Influx rejects empty tag values).
    pub fn pairs(&self) -> Vec<(String, String)> {
        [
            ("datacenter", &self.datacenter),
            ("project", &self.project),
            ("stage", &self.stage),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSettings {
    pub timeout: Duration,
    pub interval: Duration,
}

/// Credential reloads (`secrets.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsSettings {
    pub poll_interval: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// Worker threads of the async runtime; 0 = one per core. On a machine that also runs the
    /// stores, fewer threads than cores leave them room (measured on the two-core development
    /// machine in docs/benchmarks.md: a small gain for the queue benchmark).
    pub threads: usize,
    pub max_body: usize,
    pub request_timeout: Duration,
    pub max_concurrent: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    /// Comma-separated addresses and networks (checked at load: [`crate::networks`]).
    pub trusted_proxies: String,
    pub metrics_token: Option<SecretString>,
}

/// The job queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    pub redis: String,
    pub lease: Duration,
    pub fetch_batch: usize,
    pub concurrency: usize,
    pub max_attempts: u32,
    pub backoff: Duration,
    pub timeout: Duration,
    pub keep_completed: u64,
    pub keep_completed_age: Duration,
    pub keep_dead: u64,
    pub keep_dead_age: Duration,
    pub shutdown_grace: Duration,
    /// Whether writes wait for replicas (`queue.durability`).
    pub durability: Durability,
    /// Replicas that must confirm each write with [`Durability::Wait`].
    pub durability_replicas: u32,
    /// How long a write waits for them.
    pub durability_timeout: Duration,
    /// Tries to store one batch of outcomes before giving it up (`queue.ack_attempts`).
    pub ack_attempts: u32,
    pub records: RecordSettings,
    /// Fault injection for drills (`queue.fault.*`).
    pub fault: QueueFault,
}

/// How durable an acknowledged queue write is (docs/queue.md#durability).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Acknowledged once the primary has it (and its AOF, as configured there).
    None,
    /// Acknowledged once `durability_replicas` replicas have it too (Redis `WAIT`).
    Wait,
}

/// Faults a drill injects into workers (`queue.fault.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueFault {
    /// This many acknowledgement calls fail before any is sent.
    pub ack_failures: u64,
}

/// Records of finished jobs (`queue.records.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSettings {
    /// Write each finished job's record to `mongo.cache` `job_queue`.
    pub mongo: bool,
    /// Write a `job_execution` point per finished job.
    pub influx: bool,
    /// Records per MongoDB insert.
    pub batch: usize,
    /// Records waiting for MongoDB; when full, workers wait.
    pub buffer: usize,
}

/// Where a drill injects faults into the `trip.complete` job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultMode {
    Off,
    /// The attempt fails with an error after the step (and is retried).
    Error,
    /// The process aborts after the step, as if killed.
    Abort,
}

/// The `trip.complete` job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TripSettings {
    pub queue: String,
    /// Complete trips in batches (a batch handler) rather than one job at a time.
    pub batch: bool,
    /// Points per km, by mode (every mode of the schema has an entry).
    pub points_per_km: BTreeMap<String, u32>,
    /// Fastest plausible speed by mode, km/h (every mode of the schema has an entry).
    pub max_speed_kmh: BTreeMap<String, u32>,
    /// Fastest plausible mean speed by mode, km/h (every mode has an entry).
    pub max_mean_kmh: BTreeMap<String, u32>,
    /// Longest plausible trip by mode, km (every mode has an entry).
    pub max_trip_km: BTreeMap<String, u32>,
    /// Longest plausible trip by mode (every mode has an entry).
    pub max_trip_duration: BTreeMap<String, Duration>,
    pub max_distance_km: u32,
    pub max_duration: Duration,
    pub max_accuracy_m: u32,
    pub max_fix_gap: Duration,
    pub max_points_per_day: u32,
    pub gps_tolerance_m: u32,
    pub active_window: Duration,
    pub fault: FaultSettings,
}

/// Fault injection into the trip job, for drills and tests (`trips.fault.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSettings {
    pub mode: FaultMode,
    /// Per mille, per step.
    pub rate: u32,
    /// `None`: any step.
    pub step: Option<String>,
}

/// The two-level query cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    pub redis: String,
    pub l1_capacity: usize,
    pub l1_ttl: Duration,
    pub l2_ttl: Duration,
    pub ack_timeout: Duration,
}

/// Credentials, sessions and login throttling (`auth.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub redis: String,
    pub session_ttl: Duration,
    pub session_max: Duration,
    pub argon2: Argon2Settings,
    pub login: LoginSettings,
}

/// The cost of new password hashes (`auth.argon2.*`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashes computed or checked at once per process.
    pub max_concurrent: u32,
}

/// Failed-login throttles (`auth.login.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginSettings {
    pub max_failures: u32,
    pub max_failures_per_address: u32,
    pub window: Duration,
}

/// Request rate limits (`limits.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    pub read: RateSettings,
    pub write: RateSettings,
    pub address: RateSettings,
}

/// A sustained rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateSettings {
    pub per_second: u32,
    pub burst: u32,
}

/// The request activity log and request points (`activity.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivitySettings {
    pub mongo: bool,
    pub influx: bool,
    pub buffer: usize,
    pub batch: usize,
    pub keep: Duration,
}

/// Backup sets and the tools that make and restore them (`backup.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSettings {
    pub dir: PathBuf,
    pub encryption_key_file: Option<PathBuf>,
    pub signing_key_file: Option<PathBuf>,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub mysql_dump: String,
    pub mysql_client: String,
    pub mysql_binlog: String,
    pub influxd: String,
    pub influx_rpc_port: u16,
    pub redis_server: String,
    pub timeout: Duration,
}

/// GTFS feed imports (`gtfs.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GtfsSettings {
    pub feed: String,
    pub keep_versions: u32,
    pub batch_rows: usize,
    pub upload_dir: PathBuf,
    pub max_upload: u64,
}

/// How a job type's batches are collected (`queue.batch.<type>.*`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobBatchSettings {
    pub max_batch: usize,
    pub max_wait: Duration,
}

/// A repeatable job declared in the configuration (`schedules.<name>.*`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSettings {
    pub cron: Option<String>,
    pub tz: String,
    pub every: Option<String>,
    #[serde(rename = "type")]
    pub job_type: Option<String>,
    pub payload: String,
    pub queue: String,
    pub priority: u16,
    pub missed: String,
    pub catch_up_max: u32,
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
                max_batch: crate::schema::BATCH_MAX_DEFAULT,
                // A constant the schema also renders; `defaults_of_an_unnamed_batch_type_parse`
                // checks it parses.
                max_wait: crate::parse_duration_text(crate::schema::BATCH_WAIT_DEFAULT)
                    .unwrap_or_default(),
            })
    }
}
