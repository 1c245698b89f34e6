//! The service's own sections: HTTP, credentials and limits, health, secrets, tags, activity.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use tsp_config_derive::Settings;

use crate::field::FieldType;

#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct ServiceMonitorSettings {
    /// influx instance that carries the points
    #[setting(default = "primary")]
    pub instance: String,
    /// bucket (v2) or database (v1)
    #[setting(default = "service-monitoring")]
    pub bucket: String,
    /// measurement name
    #[setting(default = "vendor_latency")]
    pub measurement: String,
    /// bound on one write
    #[setting(default = "2000ms")]
    pub timeout: Duration,
}

/// Tags added to every Influx point.
#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct InfluxTags {
    /// datacenter tag
    #[setting(default = "local")]
    pub datacenter: String,
    /// project tag
    #[setting(default = "tsp-job")]
    pub project: String,
    /// stage tag
    #[setting(default = "development")]
    pub stage: String,
}

#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct HealthSettings {
    /// bound on each instance's ping (no answer: down)
    #[setting(default = "2s")]
    pub timeout: Duration,
    /// bound on each instance's real read after its ping (no answer: degraded, a wedged server)
    #[setting(default = "2s")]
    pub read_timeout: Duration,
    /// how often `serve` re-checks every store (gauges, logs, vendor-latency points)
    #[setting(default = "15s")]
    pub interval: Duration,
}

/// Credential reloads (`secrets.*`).
#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct SecretsSettings {
    /// how often `serve` and `worker` look for changed secret files (also on SIGHUP, POST
    /// /admin/reload and a refused login)
    #[setting(default = "10s")]
    pub poll_interval: Duration,
    /// bound on trying new credentials against their server before taking them
    #[setting(default = "10s")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// HTTP address of `tsp-job serve`
    #[setting(default = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// async runtime threads of a tsp-job process (0 = one per core); fewer leave cores to stores
    /// on the same machine
    #[setting(ty = FieldType::UInt { min: 0, max: 1024 }, default = 0)]
    pub threads: usize,
    /// largest request body, bytes; a larger one is refused with 413
    #[setting(ty = FieldType::UInt { min: 1_024, max: 1 << 30 }, default = 1 << 20)]
    pub max_body: usize,
    /// a request still unanswered after this gets 503
    #[setting(default = "30s")]
    pub request_timeout: Duration,
    /// requests handled at once by the whole process; more wait for a slot
    #[setting(ty = FieldType::UInt { min: 1, max: 1_000_000 }, default = 1_024)]
    pub max_concurrent: usize,
    /// a connection that has not sent a request's line and headers within this is closed
    #[setting(default = "10s")]
    pub header_timeout: Duration,
    /// a request whose body sends nothing for this long is refused
    #[setting(default = "10s")]
    pub body_timeout: Duration,
    /// on SIGINT/SIGTERM, how long `serve` lets open requests finish before it cuts them; the
    /// console's live streams end at once
    #[setting(default = "30s")]
    pub shutdown_grace: Duration,
    /// addresses or networks (`10.0.0.0/8`, `::1`), comma-separated, of the proxies in front: only
    /// from them does `X-Forwarded-For` name the client; empty: the socket's address is the client
    #[setting(default = "")]
    pub trusted_proxies: String,
    /// bearer token that reads `/metrics` and nothing else: on `serve` (besides operators) and
    /// on a worker's `--listen` (besides loopback); unset: operators and loopback only
    pub metrics_token: Option<SecretString>,
}

/// Credentials, sessions and login throttling (`auth.*`).
#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// redis instance holding sessions, login throttles and rate limits
    #[setting(default = "cache")]
    pub redis: String,
    /// a session unused this long expires; each use renews it
    #[setting(default = "24h")]
    pub session_ttl: Duration,
    /// a session expires this long after login however often it is used
    #[setting(default = "30d")]
    pub session_max: Duration,
    #[setting(nested)]
    pub argon2: Argon2Settings,
    #[setting(nested)]
    pub login: LoginSettings,
}

/// The cost of new password hashes (`auth.argon2.*`).
#[derive(Debug, Clone, Copy, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct Argon2Settings {
    /// argon2id memory cost of a password hash, KiB (new hashes; old ones keep theirs)
    #[setting(ty = FieldType::UInt { min: 8, max: 4_194_304 }, default = 19_456)]
    pub memory_kib: u32,
    /// argon2id passes over the memory
    #[setting(ty = FieldType::UInt { min: 1, max: 100 }, default = 2)]
    pub iterations: u32,
    /// argon2id lanes
    #[setting(ty = FieldType::UInt { min: 1, max: 64 }, default = 1)]
    pub parallelism: u32,
    /// password hashes computed or checked at once per process (each holds `argon2.memory_kib`);
    /// further logins wait their turn
    #[setting(ty = FieldType::UInt { min: 1, max: 1_024 }, default = 4)]
    pub max_concurrent: u32,
}

/// Failed-login throttles (`auth.login.*`).
#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct LoginSettings {
    /// failed logins of one account within `login.window` before its logins get 429
    #[setting(ty = FieldType::UInt { min: 1, max: 1_000_000 }, default = 5)]
    pub max_failures: u32,
    /// failed logins from one client address within `login.window` before its logins get 429
    #[setting(ty = FieldType::UInt { min: 1, max: 1_000_000 }, default = 50)]
    pub max_failures_per_address: u32,
    /// how long a failed login counts against an account and an address
    #[setting(default = "15m")]
    pub window: Duration,
}

/// Request rate limits (`limits.*`).
#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    #[setting(nested = "read")]
    pub read: RateSettings,
    #[setting(nested = "write")]
    pub write: RateSettings,
    #[setting(nested = "address")]
    pub address: RateSettings,
}

/// A sustained rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct RateSettings {
    /// sustained reads (GET) per second per credential
    #[setting(ty = FieldType::UInt { min: 1, max: 10_000_000 }, default = 200)]
    #[setting(
        variant = "write",
        default = 50,
        doc = "sustained writes (POST, DELETE) per second per credential"
    )]
    #[setting(
        variant = "address",
        default = 1_000,
        doc = "sustained requests per second per client address, logins and bad credentials included"
    )]
    pub per_second: u32,
    /// reads per credential allowed at once above the sustained rate
    #[setting(ty = FieldType::UInt { min: 1, max: 10_000_000 }, default = 400)]
    #[setting(
        variant = "write",
        default = 100,
        doc = "writes per credential allowed at once above the sustained rate"
    )]
    #[setting(
        variant = "address",
        default = 2_000,
        doc = "requests per client address allowed at once above the sustained rate"
    )]
    pub burst: u32,
}

/// The request activity log and request points (`activity.*`).
#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct ActivitySettings {
    /// write an event per authenticated request to MongoDB `dataset.request_activity`
    #[setting(default = true)]
    pub mongo: bool,
    /// write an `http_request` point per request to InfluxDB `uis`
    #[setting(default = true)]
    pub influx: bool,
    /// activity events waiting for MongoDB; beyond it they are dropped and counted, never waited
    /// for
    #[setting(ty = FieldType::UInt { min: 1, max: 10_000_000 }, default = 20_000)]
    pub buffer: usize,
    /// activity events per MongoDB insert
    #[setting(ty = FieldType::UInt { min: 1, max: 100_000 }, default = 500)]
    pub batch: usize,
    /// how long MongoDB keeps an activity event (TTL index)
    #[setting(default = "30d")]
    pub keep: Duration,
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

/// Trace export over OpenTelemetry (`telemetry.otlp.*`, docs/metrics.md#traces). Off while
/// `endpoint` is unset; trace context is carried from requests into jobs either way.
#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct OtlpSettings {
    /// OTLP/HTTP traces endpoint of a collector (e.g. `http://collector:4318/v1/traces`); unset:
    /// no export
    #[setting(ty = FieldType::Url(&["http", "https"]))]
    pub endpoint: Option<String>,
    /// body encoding of the export
    #[setting(ty = FieldType::Enum(&["http/protobuf", "http/json"]), default = "http/protobuf")]
    pub protocol: String,
    /// bound on one export
    #[setting(default = "10s")]
    pub timeout: Duration,
    /// percent of the traces that start here to export; a caller's `traceparent` decides for
    /// the traces it starts
    #[setting(ty = FieldType::UInt { min: 0, max: 100 }, default = 100)]
    pub sample_percent: u32,
    /// `service.name` of the exported spans
    #[setting(default = "tsp-job")]
    pub service_name: String,
}
