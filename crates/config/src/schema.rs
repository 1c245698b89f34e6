//! The schema: every key, its type, its default and its historical environment variable.
//!
//! This table is the single source of truth. Loading, validation, `config show`, and the
//! configuration reference in the README (`tsp-job config reference`) are all driven by it, so a
//! key cannot be documented with one default and built with another.

use crate::instances;
use crate::raw::RawValue;

/// The four kinds of store. Each has named instances (`mysql.portal`, `redis.cache`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// MySQL (or MariaDB).
    Mysql,
    /// Redis.
    Redis,
    /// MongoDB.
    Mongo,
    /// InfluxDB.
    Influx,
}

impl Kind {
    /// Every kind, in the order reports list them.
    pub const ALL: [Kind; 4] = [Kind::Mysql, Kind::Redis, Kind::Mongo, Kind::Influx];

    /// The key prefix (`mysql`, `redis`, `mongo`, `influx`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Mysql => "mysql",
            Kind::Redis => "redis",
            Kind::Mongo => "mongo",
            Kind::Influx => "influx",
        }
    }

    /// The kind whose key prefix is `name`.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Instances present out of the box, first one first.
    pub fn builtin_instances(self) -> &'static [&'static str] {
        match self {
            Kind::Mysql => &instances::MYSQL,
            Kind::Redis => &instances::REDIS,
            Kind::Mongo => &instances::MONGO,
            Kind::Influx => &instances::INFLUX,
        }
    }

    /// Whether an instance is required (start-up and readiness depend on it) unless configured.
    ///
    /// The first built-in instance of each kind is required. Of the others, the MySQL `dataset`
    /// and `incentive` and the Mongo `dataset` instances hold data that jobs write, so a service
    /// without them cannot do its work: they are required too. `gtfs` (read-only schedules),
    /// `influx.uis` (metrics) and instances added by users are optional.
    pub fn required_by_default(self, instance: &str) -> bool {
        matches!(
            (self, instance),
            (Kind::Mysql, "portal" | "dataset" | "incentive")
                | (Kind::Redis, "cache")
                | (Kind::Mongo, "cache" | "dataset")
                | (Kind::Influx, "primary")
        )
    }

    /// The keys that a user-added instance must set, one of them at least, so that a typo in an
    /// instance name (`mysql.portl.password`) is reported rather than silently creating a store.
    pub fn locator_keys(self) -> &'static [&'static str] {
        match self {
            Kind::Mysql | Kind::Redis => &["host", "url"],
            Kind::Mongo => &["host", "uri"],
            Kind::Influx => &["url"],
        }
    }

    /// The keys of one instance of this kind.
    pub fn fields(self) -> &'static [Field] {
        match self {
            Kind::Mysql => MYSQL_FIELDS,
            Kind::Redis => REDIS_FIELDS,
            Kind::Mongo => MONGO_FIELDS,
            Kind::Influx => INFLUX_FIELDS,
        }
    }
}

/// Names under `influx.` that are settings sections, not instances.
pub const INFLUX_RESERVED: [&str; 2] = ["service_monitor", "tags"];

/// The type of a key, which decides how its value is parsed and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Any string, possibly empty.
    Str,
    /// A host name or address; must not be empty for a required store.
    Host,
    /// 1–65535.
    Port,
    /// A password or token: never shown.
    Secret,
    /// A URL with one of these schemes that may embed credentials: shown with the password masked.
    SecretUrl(&'static [&'static str]),
    /// A URL with one of these schemes.
    Url(&'static [&'static str]),
    /// `500ms`, `30s`, `2m`, `1h`, or a bare integer of milliseconds; must be greater than zero.
    Duration,
    /// An integer within bounds.
    UInt {
        /// The least value allowed.
        min: u64,
        /// The greatest value allowed.
        max: u64,
    },
    /// One of these words.
    Enum(&'static [&'static str]),
    /// `true` or `false`.
    Bool,
    /// A path to a file that must exist (TLS material).
    File,
    /// A list of `host:port` (a TOML array, or a comma-separated string).
    HostPortList,
    /// `ip:port` to listen on.
    ListenAddr,
}

impl FieldType {
    /// Whether values of this type are masked wherever they are shown.
    pub fn is_secret(self) -> bool {
        matches!(self, FieldType::Secret | FieldType::SecretUrl(_))
    }

    /// A short human description, for the reference and for "expected …" messages.
    pub fn describe(self) -> String {
        match self {
            FieldType::Str => "string".into(),
            FieldType::Host => "host name or address".into(),
            FieldType::Port => "port (1-65535)".into(),
            FieldType::Secret => "secret".into(),
            FieldType::SecretUrl(s) | FieldType::Url(s) => format!("URL ({})", s.join(", ")),
            FieldType::Duration => "duration (e.g. 500ms, 30s, 2m; bare integer = ms)".into(),
            FieldType::UInt { min, max } => format!("integer {min}-{max}"),
            FieldType::Enum(v) => v.join(" | "),
            FieldType::Bool => "true | false".into(),
            FieldType::File => "path to an existing file".into(),
            FieldType::HostPortList => "list of host:port".into(),
            FieldType::ListenAddr => "ip:port".into(),
        }
    }
}

/// A default that may depend on the instance name (`gtfs` pools differ from `portal` pools).
pub type DefaultFn = fn(instance: &str) -> Option<RawValue>;

/// One key of a section, relative to it (`pool.max` under `mysql.portal`).
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The key, relative to its section.
    pub key: &'static str,
    /// The value's type.
    pub ty: FieldType,
    /// The default, per instance.
    pub default: DefaultFn,
    /// What it does: one sentence for the reference.
    pub doc: &'static str,
}

const fn field(key: &'static str, ty: FieldType, default: DefaultFn, doc: &'static str) -> Field {
    Field {
        key,
        ty,
        default,
        doc,
    }
}

fn none(_: &str) -> Option<RawValue> {
    None
}
fn s(v: &str) -> Option<RawValue> {
    Some(RawValue::Str(v.to_string()))
}
fn i(v: i64) -> Option<RawValue> {
    Some(RawValue::Int(v))
}
fn b(v: bool) -> Option<RawValue> {
    Some(RawValue::Bool(v))
}

const TLS_MODES: &[&str] = &[
    "disabled",
    "preferred",
    "required",
    "verify_ca",
    "verify_identity",
];

/// The MySQL pool sizes per instance: (min, max).
fn mysql_pool(instance: &str) -> (i64, i64) {
    match instance {
        "dataset" => (5, 20),
        "gtfs" => (3, 15),
        "incentive" => (2, 8),
        _ => (2, 10),
    }
}

/// Every store instance's migrator account (docs/store-security.md#least-privilege).
const MIGRATE_USER: Field = field(
    "migrate.user",
    FieldType::Str,
    |_| s(""),
    "migrator account (DDL, indexes, backup, restore; docs/store-security.md#least-privilege); empty: the app account",
);
const MIGRATE_PASSWORD: Field = field(
    "migrate.password",
    FieldType::Secret,
    |_| s(""),
    "the migrator account's password",
);

static MYSQL_FIELDS: &[Field] = &[
    field(
        "url",
        FieldType::SecretUrl(&["mysql", "mariadb"]),
        none,
        "mysql://user:password@host:port/database; when set it replaces host, port, user, password and database",
    ),
    field("host", FieldType::Host, |_| s("127.0.0.1"), "server host"),
    field("port", FieldType::Port, |_| i(3306), "server port"),
    field("user", FieldType::Str, |_| s("tsp"), "user name"),
    field("password", FieldType::Secret, |_| s(""), "password"),
    MIGRATE_USER,
    MIGRATE_PASSWORD,
    field(
        "database",
        FieldType::Str,
        |inst| s(&format!("tsp_{inst}")),
        "database (schema) name; default tsp_<instance>",
    ),
    field(
        "charset",
        FieldType::Enum(&["utf8mb4", "utf8", "utf8mb3", "latin1", "ascii", "binary"]),
        |inst| {
            s(if inst == "incentive" {
                "utf8"
            } else {
                "utf8mb4"
            })
        },
        "connection character set; utf8 for incentive, utf8mb4 elsewhere",
    ),
    field(
        "pool.min",
        FieldType::UInt { min: 0, max: 1000 },
        |inst| i(mysql_pool(inst).0),
        "connections kept open; portal 2, dataset 5, gtfs 3, incentive 2",
    ),
    field(
        "pool.max",
        FieldType::UInt { min: 1, max: 1000 },
        |inst| i(mysql_pool(inst).1),
        "pool size limit; portal 10, dataset 20, gtfs 15, incentive 8",
    ),
    field(
        "pool.acquire_timeout",
        FieldType::Duration,
        |_| s("30s"),
        "longest wait for a free connection",
    ),
    field(
        "pool.idle_timeout",
        FieldType::Duration,
        |inst| s(if inst == "gtfs" { "60s" } else { "30s" }),
        "idle connections above min are closed after this; gtfs 60s",
    ),
    field(
        "pool.max_lifetime",
        FieldType::Duration,
        |_| s("30m"),
        "connections are recycled after this age",
    ),
    field(
        "tls.mode",
        FieldType::Enum(TLS_MODES),
        |_| s("preferred"),
        "TLS: disabled, preferred (use when offered), required, verify_ca, verify_identity; the default is verify_identity for a host that is not loopback",
    ),
    field(
        "tls.allow_insecure",
        FieldType::Bool,
        |_| b(false),
        "accept, in the production profile, a tls.mode that does not verify the server (disabled, preferred, required) for a host that is not loopback",
    ),
    field("tls.ca", FieldType::File, none, "CA certificate (PEM)"),
    field(
        "tls.cert",
        FieldType::File,
        none,
        "client certificate (PEM)",
    ),
    field("tls.key", FieldType::File, none, "client key (PEM)"),
];

static REDIS_FIELDS: &[Field] = &[
    field(
        "url",
        FieldType::SecretUrl(&["redis", "rediss"]),
        none,
        "redis[s]://[user:password@]host:port/db; when set it replaces host, port, username, password, db and tls",
    ),
    field("host", FieldType::Host, |_| s("127.0.0.1"), "server host"),
    field("port", FieldType::Port, |_| i(6379), "server port"),
    field(
        "username",
        FieldType::Str,
        |_| s(""),
        "ACL user name (empty: default user)",
    ),
    field("password", FieldType::Secret, |_| s(""), "password"),
    MIGRATE_USER,
    MIGRATE_PASSWORD,
    field(
        "db",
        FieldType::UInt { min: 0, max: 15 },
        |_| i(0),
        "database number (standalone only)",
    ),
    field(
        "key_prefix",
        FieldType::Str,
        |_| s("tsp:"),
        "prefix of every key the service writes",
    ),
    field(
        "connect_timeout",
        FieldType::Duration,
        |_| s("10s"),
        "bound on establishing a connection",
    ),
    field(
        "command_timeout",
        FieldType::Duration,
        |_| s("5s"),
        "bound on one command's reply",
    ),
    field(
        "max_retries",
        FieldType::UInt { min: 0, max: 100 },
        |_| i(3),
        "reconnect attempts before a command fails",
    ),
    field(
        "tls.mode",
        FieldType::Enum(&["disabled", "required", "verify_identity"]),
        |_| s("disabled"),
        "TLS: disabled, required (no certificate check), verify_identity; the default is verify_identity for a host that is not loopback",
    ),
    field(
        "tls.allow_insecure",
        FieldType::Bool,
        |_| b(false),
        "accept, in the production profile, a tls.mode that does not verify the server (disabled, preferred, required) for a host that is not loopback",
    ),
    field("tls.ca", FieldType::File, none, "CA certificate (PEM)"),
    field(
        "tls.cert",
        FieldType::File,
        none,
        "client certificate (PEM)",
    ),
    field("tls.key", FieldType::File, none, "client key (PEM)"),
    field(
        "cluster_nodes",
        FieldType::HostPortList,
        |_| Some(RawValue::List(Vec::new())),
        "Redis Cluster seed nodes; non-empty switches to cluster mode",
    ),
];

fn mongo_pool(instance: &str) -> (i64, i64, &'static str) {
    match instance {
        "dataset" => (5, 20, "60s"),
        _ => (2, 10, "30s"),
    }
}

static MONGO_FIELDS: &[Field] = &[
    field(
        "uri",
        FieldType::SecretUrl(&["mongodb", "mongodb+srv"]),
        none,
        "mongodb://… connection string; when set it replaces host, port, username, password, auth_source and replica_set",
    ),
    field("host", FieldType::Host, |_| s("127.0.0.1"), "server host"),
    field("port", FieldType::Port, |_| i(27017), "server port"),
    field(
        "username",
        FieldType::Str,
        |_| s(""),
        "user name (empty: no authentication)",
    ),
    field("password", FieldType::Secret, |_| s(""), "password"),
    MIGRATE_USER,
    MIGRATE_PASSWORD,
    field(
        "database",
        FieldType::Str,
        |inst| s(&format!("tsp_{inst}")),
        "database name; default tsp_<instance>",
    ),
    field(
        "auth_source",
        FieldType::Str,
        |_| s("admin"),
        "database holding the user",
    ),
    field(
        "replica_set",
        FieldType::Str,
        |_| s(""),
        "replica set name (empty: connect directly to the one host)",
    ),
    field(
        "pool.min",
        FieldType::UInt { min: 0, max: 1000 },
        |inst| i(mongo_pool(inst).0),
        "connections kept open; cache 2, dataset 5",
    ),
    field(
        "pool.max",
        FieldType::UInt { min: 1, max: 1000 },
        |inst| i(mongo_pool(inst).1),
        "pool size limit; cache 10, dataset 20",
    ),
    field(
        "pool.max_idle",
        FieldType::Duration,
        |inst| s(mongo_pool(inst).2),
        "idle connections are closed after this; cache 30s, dataset 60s",
    ),
    field(
        "server_selection_timeout",
        FieldType::Duration,
        |_| s("5s"),
        "bound on finding a usable server",
    ),
    field(
        "connect_timeout",
        FieldType::Duration,
        |_| s("10s"),
        "bound on opening a connection",
    ),
    field(
        "socket_timeout",
        FieldType::Duration,
        |_| s("30s"),
        "bound on one operation run through the hub",
    ),
    field(
        "tls.mode",
        FieldType::Enum(&["disabled", "required", "verify_identity"]),
        |_| s("disabled"),
        "TLS: disabled, required (no certificate check), verify_identity; the default is verify_identity for a host that is not loopback",
    ),
    field(
        "tls.allow_insecure",
        FieldType::Bool,
        |_| b(false),
        "accept, in the production profile, a tls.mode that does not verify the server (disabled, preferred, required) for a host that is not loopback",
    ),
    field("tls.ca", FieldType::File, none, "CA certificate (PEM)"),
    field(
        "tls.cert",
        FieldType::File,
        none,
        "client certificate and key (PEM, one file)",
    ),
];

static INFLUX_FIELDS: &[Field] = &[
    field(
        "url",
        FieldType::Url(&["http", "https"]),
        |_| s("http://127.0.0.1:8086"),
        "server URL",
    ),
    field(
        "api",
        FieldType::Enum(&["v1", "v2"]),
        none,
        "HTTP API: v1 (/write, /query) or v2 (/api/v2/*); default v2 when a token is set, else v1",
    ),
    field("token", FieldType::Secret, |_| s(""), "v2 API token"),
    field("org", FieldType::Str, |_| s(""), "v2 organisation"),
    field(
        "bucket",
        FieldType::Str,
        |_| s(""),
        "v2 bucket; v1 falls back to it when database is empty",
    ),
    field(
        "database",
        FieldType::Str,
        |inst| s(if inst == "primary" { "tsp" } else { "tsp_uis" }),
        "v1 database; primary tsp, others tsp_uis",
    ),
    field(
        "retention_policy",
        FieldType::Str,
        |_| s(""),
        "v1 retention policy (empty: the database default)",
    ),
    field("username", FieldType::Str, |_| s(""), "v1 user name"),
    field("password", FieldType::Secret, |_| s(""), "v1 password"),
    MIGRATE_USER,
    MIGRATE_PASSWORD,
    field(
        "migrate.token",
        FieldType::Secret,
        |_| s(""),
        "v2 token of the migrator (bucket and retention changes); empty: token",
    ),
    field(
        "tls.ca",
        FieldType::File,
        none,
        "CA certificate (PEM) trusted for an https url, besides the system's",
    ),
    field(
        "timeout",
        FieldType::Duration,
        |_| s("10s"),
        "bound on one HTTP request",
    ),
    field(
        "batch.max_points",
        FieldType::UInt {
            min: 1,
            max: 1_000_000,
        },
        |_| i(5000),
        "points per write request; a full batch is sent at once",
    ),
    field(
        "batch.flush_interval",
        FieldType::Duration,
        |_| s("1s"),
        "a partial batch is sent after this",
    ),
    field(
        "batch.max_retries",
        FieldType::UInt { min: 0, max: 100 },
        |_| i(5),
        "retries of a batch on 429/5xx/network errors before it is dropped (counted)",
    ),
    field(
        "batch.retry_interval",
        FieldType::Duration,
        |_| s("500ms"),
        "first retry delay; doubles each retry unless the server sends Retry-After",
    ),
    field(
        "batch.max_retry_delay",
        FieldType::Duration,
        |_| s("30s"),
        "cap on one retry delay",
    ),
    field(
        "batch.max_buffer_points",
        FieldType::UInt {
            min: 1,
            max: 100_000_000,
        },
        |_| i(200_000),
        "points held while the server is slow or down; beyond it the oldest are dropped (counted)",
    ),
    field(
        "batch.jitter",
        FieldType::Duration,
        |_| s("200ms"),
        "random extra delay added to each retry",
    ),
    field(
        "batch.in_flight",
        FieldType::UInt { min: 1, max: 64 },
        |_| i(4),
        "write requests sent at once (docs/influx.md#batches-in-flight)",
    ),
];

/// `influx.service_monitor.*`: where vendor latency points go.
pub static SERVICE_MONITOR_FIELDS: &[Field] = &[
    field(
        "instance",
        FieldType::Str,
        |_| s("primary"),
        "influx instance that carries the points",
    ),
    field(
        "bucket",
        FieldType::Str,
        |_| s("service-monitoring"),
        "bucket (v2) or database (v1)",
    ),
    field(
        "measurement",
        FieldType::Str,
        |_| s("vendor_latency"),
        "measurement name",
    ),
    field(
        "timeout",
        FieldType::Duration,
        |_| s("2000ms"),
        "bound on one write",
    ),
];

/// `influx.tags.*`: tags added to every point.
pub static INFLUX_TAG_FIELDS: &[Field] = &[
    field(
        "datacenter",
        FieldType::Str,
        |_| s("local"),
        "datacenter tag",
    ),
    field("project", FieldType::Str, |_| s("tsp-job"), "project tag"),
    field("stage", FieldType::Str, |_| s("development"), "stage tag"),
];

/// `health.*`
pub static HEALTH_FIELDS: &[Field] = &[
    field(
        "timeout",
        FieldType::Duration,
        |_| s("2s"),
        "bound on each instance's health check",
    ),
    field(
        "interval",
        FieldType::Duration,
        |_| s("15s"),
        "how often `serve` re-checks every store (gauges, logs, vendor-latency points)",
    ),
];

/// `secrets.*`: credential reloads (docs/store-security.md#rotation).
pub static SECRETS_FIELDS: &[Field] = &[
    field(
        "poll_interval",
        FieldType::Duration,
        |_| s("10s"),
        "how often `serve` and `worker` look for changed secret files (also on SIGHUP, POST /admin/reload and a refused login)",
    ),
    field(
        "timeout",
        FieldType::Duration,
        |_| s("10s"),
        "bound on trying new credentials against their server before taking them",
    ),
];

/// `server.*`
pub static SERVER_FIELDS: &[Field] = &[
    field(
        "listen",
        FieldType::ListenAddr,
        |_| s("127.0.0.1:8080"),
        "HTTP address of `tsp-job serve`",
    ),
    field(
        "threads",
        FieldType::UInt { min: 0, max: 1024 },
        |_| i(0),
        "async runtime threads of a tsp-job process (0 = one per core); fewer leave cores to stores on the same machine",
    ),
    field(
        "max_body",
        FieldType::UInt {
            min: 1_024,
            max: 1 << 30,
        },
        |_| i(1 << 20),
        "largest request body, bytes; a larger one is refused with 413",
    ),
    field(
        "request_timeout",
        FieldType::Duration,
        |_| s("30s"),
        "a request still unanswered after this gets 503",
    ),
    field(
        "max_concurrent",
        FieldType::UInt {
            min: 1,
            max: 1_000_000,
        },
        |_| i(1_024),
        "requests handled at once by the whole process; more wait for a slot",
    ),
    field(
        "header_timeout",
        FieldType::Duration,
        |_| s("10s"),
        "a connection that has not sent a request's line and headers within this is closed",
    ),
    field(
        "body_timeout",
        FieldType::Duration,
        |_| s("10s"),
        "a request whose body sends nothing for this long is refused",
    ),
    field(
        "trusted_proxies",
        FieldType::Str,
        |_| s(""),
        "addresses or networks (`10.0.0.0/8`, `::1`), comma-separated, of the proxies in front: only from them does `X-Forwarded-For` name the client; empty: the socket's address is the client",
    ),
    field(
        "metrics_token",
        FieldType::Secret,
        none,
        "bearer token that a worker's `--listen` `/metrics` asks of scrapers not on loopback; unset: loopback only",
    ),
];

/// `auth.*`: credentials, sessions and login throttling (docs/security.md).
pub static AUTH_FIELDS: &[Field] = &[
    field(
        "redis",
        FieldType::Str,
        |_| s("cache"),
        "redis instance holding sessions, login throttles and rate limits",
    ),
    field(
        "session_ttl",
        FieldType::Duration,
        |_| s("24h"),
        "a session unused this long expires; each use renews it",
    ),
    field(
        "session_max",
        FieldType::Duration,
        |_| s("30d"),
        "a session expires this long after login however often it is used",
    ),
    field(
        "argon2.memory_kib",
        FieldType::UInt {
            min: 8,
            max: 4_194_304,
        },
        |_| i(19_456),
        "argon2id memory cost of a password hash, KiB (new hashes; old ones keep theirs)",
    ),
    field(
        "argon2.iterations",
        FieldType::UInt { min: 1, max: 100 },
        |_| i(2),
        "argon2id passes over the memory",
    ),
    field(
        "argon2.parallelism",
        FieldType::UInt { min: 1, max: 64 },
        |_| i(1),
        "argon2id lanes",
    ),
    field(
        "argon2.max_concurrent",
        FieldType::UInt { min: 1, max: 1_024 },
        |_| i(4),
        "password hashes computed or checked at once per process (each holds `argon2.memory_kib`); further logins wait their turn",
    ),
    field(
        "login.max_failures",
        FieldType::UInt {
            min: 1,
            max: 1_000_000,
        },
        |_| i(5),
        "failed logins of one account within `login.window` before its logins get 429",
    ),
    field(
        "login.max_failures_per_address",
        FieldType::UInt {
            min: 1,
            max: 1_000_000,
        },
        |_| i(50),
        "failed logins from one client address within `login.window` before its logins get 429",
    ),
    field(
        "login.window",
        FieldType::Duration,
        |_| s("15m"),
        "how long a failed login counts against an account and an address",
    ),
];

/// `limits.*`: request rate limits, shared by every process through Redis (docs/security.md).
pub static LIMIT_FIELDS: &[Field] = &[
    field(
        "read.per_second",
        FieldType::UInt {
            min: 1,
            max: 10_000_000,
        },
        |_| i(200),
        "sustained reads (GET) per second per credential",
    ),
    field(
        "read.burst",
        FieldType::UInt {
            min: 1,
            max: 10_000_000,
        },
        |_| i(400),
        "reads per credential allowed at once above the sustained rate",
    ),
    field(
        "write.per_second",
        FieldType::UInt {
            min: 1,
            max: 10_000_000,
        },
        |_| i(50),
        "sustained writes (POST, DELETE) per second per credential",
    ),
    field(
        "write.burst",
        FieldType::UInt {
            min: 1,
            max: 10_000_000,
        },
        |_| i(100),
        "writes per credential allowed at once above the sustained rate",
    ),
    field(
        "address.per_second",
        FieldType::UInt {
            min: 1,
            max: 10_000_000,
        },
        |_| i(1_000),
        "sustained requests per second per client address, logins and bad credentials included",
    ),
    field(
        "address.burst",
        FieldType::UInt {
            min: 1,
            max: 10_000_000,
        },
        |_| i(2_000),
        "requests per client address allowed at once above the sustained rate",
    ),
];

/// `activity.*`: the per-request activity log (MongoDB) and request points (InfluxDB `uis`).
pub static ACTIVITY_FIELDS: &[Field] = &[
    field(
        "mongo",
        FieldType::Bool,
        |_| b(true),
        "write an event per authenticated request to MongoDB `dataset.request_activity`",
    ),
    field(
        "influx",
        FieldType::Bool,
        |_| b(true),
        "write an `http_request` point per request to InfluxDB `uis`",
    ),
    field(
        "buffer",
        FieldType::UInt {
            min: 1,
            max: 10_000_000,
        },
        |_| i(20_000),
        "activity events waiting for MongoDB; beyond it they are dropped and counted, never waited for",
    ),
    field(
        "batch",
        FieldType::UInt {
            min: 1,
            max: 100_000,
        },
        |_| i(500),
        "activity events per MongoDB insert",
    ),
    field(
        "keep",
        FieldType::Duration,
        |_| s("30d"),
        "how long MongoDB keeps an activity event (TTL index)",
    ),
];

/// `queue.*`: the job queue and its workers.
pub static QUEUE_FIELDS: &[Field] = &[
    field(
        "redis",
        FieldType::Str,
        |_| s("cache"),
        "redis instance holding the queues",
    ),
    field(
        "lease",
        FieldType::Duration,
        |_| s("30s"),
        "how long a fetched job stays leased without a heartbeat; an expired lease sends the job back",
    ),
    field(
        "fetch_batch",
        FieldType::UInt {
            min: 1,
            max: 10_000,
        },
        |_| i(256),
        "jobs fetched per round trip",
    ),
    field(
        "concurrency",
        FieldType::UInt {
            min: 1,
            max: 100_000,
        },
        |_| i(64),
        "jobs run at once per queue in one worker process",
    ),
    field(
        "max_attempts",
        FieldType::UInt { min: 1, max: 1000 },
        |_| i(3),
        "attempts of a job unless it says otherwise",
    ),
    field(
        "backoff",
        FieldType::Duration,
        |_| s("1s"),
        "first retry delay (exponential with jitter) unless a job says otherwise",
    ),
    field(
        "timeout",
        FieldType::Duration,
        |_| s("5m"),
        "a job's run time limit unless it says otherwise",
    ),
    field(
        "keep_completed",
        FieldType::UInt {
            min: 0,
            max: 100_000_000,
        },
        |_| i(100_000),
        "completed jobs kept per queue (newest)",
    ),
    field(
        "keep_completed_age",
        FieldType::Duration,
        |_| s("24h"),
        "completed jobs older than this are removed",
    ),
    field(
        "keep_dead",
        FieldType::UInt {
            min: 0,
            max: 100_000_000,
        },
        |_| i(1_000_000),
        "dead-lettered jobs kept per queue (newest)",
    ),
    field(
        "keep_dead_age",
        FieldType::Duration,
        |_| s("7d"),
        "dead-lettered jobs older than this are removed",
    ),
    field(
        "shutdown_grace",
        FieldType::Duration,
        |_| s("30s"),
        "on SIGINT/SIGTERM, how long in-flight jobs may finish before their leases are returned",
    ),
    field(
        "durability",
        FieldType::Enum(&["none", "wait"]),
        |_| s("none"),
        "`wait`: enqueues and acknowledgements wait until `durability_replicas` replicas have the write (Redis WAIT); an enqueue they do not confirm within `durability_timeout` fails",
    ),
    field(
        "durability_replicas",
        FieldType::UInt { min: 1, max: 16 },
        |_| i(1),
        "with durability = wait: replicas that must confirm each write",
    ),
    field(
        "durability_timeout",
        FieldType::Duration,
        |_| s("1s"),
        "with durability = wait: how long to wait for the replicas",
    ),
    field(
        "ack_attempts",
        FieldType::UInt { min: 1, max: 1000 },
        |_| i(10),
        "tries to store one batch of outcomes before the worker gives it up: its jobs' leases lapse and they run elsewhere, and the worker reports itself unhealthy",
    ),
    field(
        "fault.ack_failures",
        FieldType::UInt {
            min: 0,
            max: 1_000_000,
        },
        |_| i(0),
        "fault injection for drills and tests: this many acknowledgement calls fail before any is sent",
    ),
    field(
        "records.mongo",
        FieldType::Bool,
        |_| b(true),
        "write each finished job's record to mongo.cache job_queue",
    ),
    field(
        "records.influx",
        FieldType::Bool,
        |_| b(true),
        "write a job_execution point per finished job",
    ),
    field(
        "records.batch",
        FieldType::UInt {
            min: 1,
            max: 100_000,
        },
        |_| i(1000),
        "records per MongoDB insert",
    ),
    field(
        "records.buffer",
        FieldType::UInt {
            min: 1,
            max: 10_000_000,
        },
        |_| i(50_000),
        "records waiting for MongoDB; when full, workers wait (backpressure)",
    ),
];

/// The values of `trips.fault.step`: `any`, then the steps of the `trip.complete` job in order
/// (the job takes its step list from here, so the two cannot disagree).
pub const FAULT_STEPS: &[&str] = &[
    "any",
    "trip",
    "points",
    "trajectory",
    "activity",
    "metrics",
    "geo",
    "complete",
    "cache",
    "publish",
];

/// `trips.*`: the `trip.complete` job.
pub static TRIP_FIELDS: &[Field] = &[
    field(
        "queue",
        FieldType::Str,
        |_| s("trips"),
        "queue that trip.complete jobs go to",
    ),
    field(
        "batch",
        FieldType::Bool,
        |_| b(true),
        "workers complete trips in batches (one round trip per store and step for the batch; `queue.batch.trip.complete.*`); false: one job at a time",
    ),
    field(
        "points_per_km.walk",
        FieldType::UInt {
            min: 0,
            max: 10_000,
        },
        |_| i(20),
        "points awarded per km walked (each mode has a key: walk, bike, ebike, scooter, bus, tram, metro, train, ferry, car, taxi, carpool)",
    ),
    field(
        "points_per_km.bike",
        FieldType::UInt {
            min: 0,
            max: 10_000,
        },
        |_| i(15),
        "points per km by bike",
    ),
    field(
        "points_per_km.ebike",
        FieldType::UInt {
            min: 0,
            max: 10_000,
        },
        |_| i(10),
        "points per km by e-bike",
    ),
    field(
        "points_per_km.scooter",
        FieldType::UInt {
            min: 0,
            max: 10_000,
        },
        |_| i(8),
        "points per km by scooter",
    ),
    field(
        "points_per_km.bus",
        FieldType::UInt {
            min: 0,
            max: 10_000,
        },
        |_| i(10),
        "points per km by bus",
    ),
    field(
        "points_per_km.tram",
        FieldType::UInt {
            min: 0,
            max: 10_000,
        },
        |_| i(10),
        "points per km by tram",
    ),
    field(
        "points_per_km.metro",
        FieldType::UInt {
            min: 0,
            max: 10_000,
        },
        |_| i(10),
        "points per km by metro",
    ),
    field(
        "points_per_km.train",
        FieldType::UInt {
            min: 0,
            max: 10_000,
        },
        |_| i(8),
        "points per km by train",
    ),
    field(
        "points_per_km.ferry",
        FieldType::UInt {
            min: 0,
            max: 10_000,
        },
        |_| i(8),
        "points per km by ferry",
    ),
    field(
        "points_per_km.car",
        FieldType::UInt {
            min: 0,
            max: 10_000,
        },
        |_| i(0),
        "points per km by car",
    ),
    field(
        "points_per_km.taxi",
        FieldType::UInt {
            min: 0,
            max: 10_000,
        },
        |_| i(0),
        "points per km by taxi",
    ),
    field(
        "points_per_km.carpool",
        FieldType::UInt {
            min: 0,
            max: 10_000,
        },
        |_| i(5),
        "points per km in a carpool",
    ),
    field(
        "max_speed_kmh.walk",
        FieldType::UInt { min: 1, max: 2_000 },
        |_| i(15),
        "fastest plausible speed by walking, km/h, between two fixes and over the trip; each mode has a key (see points_per_km); a faster trip is refused before any write",
    ),
    field(
        "max_speed_kmh.bike",
        FieldType::UInt { min: 1, max: 2_000 },
        |_| i(60),
        "fastest plausible bike speed, km/h, between fixes and overall",
    ),
    field(
        "max_speed_kmh.ebike",
        FieldType::UInt { min: 1, max: 2_000 },
        |_| i(60),
        "fastest plausible ebike speed, km/h, between fixes and overall",
    ),
    field(
        "max_speed_kmh.scooter",
        FieldType::UInt { min: 1, max: 2_000 },
        |_| i(60),
        "fastest plausible scooter speed, km/h, between fixes and overall",
    ),
    field(
        "max_speed_kmh.bus",
        FieldType::UInt { min: 1, max: 2_000 },
        |_| i(120),
        "fastest plausible bus speed, km/h, between fixes and overall",
    ),
    field(
        "max_speed_kmh.tram",
        FieldType::UInt { min: 1, max: 2_000 },
        |_| i(100),
        "fastest plausible tram speed, km/h, between fixes and overall",
    ),
    field(
        "max_speed_kmh.metro",
        FieldType::UInt { min: 1, max: 2_000 },
        |_| i(120),
        "fastest plausible metro speed, km/h, between fixes and overall",
    ),
    field(
        "max_speed_kmh.train",
        FieldType::UInt { min: 1, max: 2_000 },
        |_| i(350),
        "fastest plausible train speed, km/h, between fixes and overall",
    ),
    field(
        "max_speed_kmh.ferry",
        FieldType::UInt { min: 1, max: 2_000 },
        |_| i(80),
        "fastest plausible ferry speed, km/h, between fixes and overall",
    ),
    field(
        "max_speed_kmh.car",
        FieldType::UInt { min: 1, max: 2_000 },
        |_| i(250),
        "fastest plausible car speed, km/h, between fixes and overall",
    ),
    field(
        "max_speed_kmh.taxi",
        FieldType::UInt { min: 1, max: 2_000 },
        |_| i(250),
        "fastest plausible taxi speed, km/h, between fixes and overall",
    ),
    field(
        "max_speed_kmh.carpool",
        FieldType::UInt { min: 1, max: 2_000 },
        |_| i(250),
        "fastest plausible carpool speed, km/h, between fixes and overall",
    ),
    field(
        "max_distance_km",
        FieldType::UInt {
            min: 1,
            max: 100_000,
        },
        |_| i(1_000),
        "longest plausible trip, km; a longer one is refused before any write",
    ),
    field(
        "max_duration",
        FieldType::Duration,
        |_| s("24h"),
        "longest plausible trip, first fix to last",
    ),
    field(
        "max_accuracy_m",
        FieldType::UInt {
            min: 1,
            max: 100_000,
        },
        |_| i(500),
        "a fix whose reported accuracy is worse than this, metres, is refused: a claimed error never widens the checks past it",
    ),
    field(
        "max_fix_gap",
        FieldType::Duration,
        |_| s("15m"),
        "the distance between two fixes further apart in time than this earns no points: the gap is no evidence of the way taken",
    ),
    field(
        "max_points_per_day",
        FieldType::UInt {
            min: 0,
            max: 100_000_000,
        },
        |_| i(2_000),
        "most points one user earns from trips ending on one UTC day; the excess is not awarded but recorded on the trip and counted (0: no cap)",
    ),
    field(
        "gps_tolerance_m",
        FieldType::UInt { min: 0, max: 1_000 },
        |_| i(100),
        "GPS error allowed per fix when a speed is checked (a fix's own accuracy counts when larger): jitter and a stray fix are not speed",
    ),
    field(
        "active_window",
        FieldType::Duration,
        |_| s("24h"),
        "a user counts as recently active (`/users/near`) this long after a completed trip",
    ),
    field(
        "fault.mode",
        FieldType::Enum(&["off", "error", "abort"]),
        |_| s("off"),
        "fault injection for drills and tests: after a step, fail the attempt (`error`) or abort the process (`abort`)",
    ),
    field(
        "fault.rate",
        FieldType::UInt { min: 0, max: 1000 },
        |_| i(0),
        "chance of a fault after each step, per mille",
    ),
    field(
        "fault.step",
        FieldType::Enum(FAULT_STEPS),
        |_| s("any"),
        "the step after which faults happen, or `any`",
    ),
];

/// One key per travel mode, under a section of its own (`trips.max_mean_kmh.walk`, …): the
/// modes, their defaults and one description, written once.
macro_rules! per_mode {
    ($ty:expr, $doc:literal, { $($mode:literal: $default:expr),+ $(,)? }) => {
        &[$(field($mode, $ty, |_| $default, concat!($doc, " (", $mode, ")"))),+]
    };
}

const KMH: FieldType = FieldType::UInt { min: 1, max: 2_000 };
const KM: FieldType = FieldType::UInt {
    min: 1,
    max: 100_000,
};

/// `trips.max_mean_kmh.<mode>`: over a whole trip, slower than the fastest moment.
pub static TRIP_MEAN_FIELDS: &[Field] = per_mode!(
    KMH,
    "fastest plausible mean speed over a whole trip, first fix to last, km/h",
    { "walk": i(10), "bike": i(35), "ebike": i(35), "scooter": i(30), "bus": i(80),
      "tram": i(60), "metro": i(80), "train": i(300), "ferry": i(60), "car": i(150),
      "taxi": i(150), "carpool": i(150) }
);

/// `trips.max_trip_km.<mode>`: within `trips.max_distance_km` for every mode.
pub static TRIP_KM_FIELDS: &[Field] = per_mode!(
    KM,
    "longest plausible trip of the mode, km (`trips.max_distance_km` bounds every mode)",
    { "walk": i(60), "bike": i(300), "ebike": i(200), "scooter": i(80), "bus": i(400),
      "tram": i(100), "metro": i(100), "train": i(1_000), "ferry": i(500), "car": i(1_000),
      "taxi": i(500), "carpool": i(1_000) }
);

/// `trips.max_trip_duration.<mode>`: within `trips.max_duration` for every mode.
pub static TRIP_DURATION_FIELDS: &[Field] = per_mode!(
    FieldType::Duration,
    "longest plausible trip of the mode, first fix to last (`trips.max_duration` bounds every mode)",
    { "walk": s("16h"), "bike": s("16h"), "ebike": s("12h"), "scooter": s("6h"),
      "bus": s("12h"), "tram": s("6h"), "metro": s("6h"), "train": s("24h"),
      "ferry": s("24h"), "car": s("16h"), "taxi": s("12h"), "carpool": s("16h") }
);

/// `cache.*`: the two-level query cache.
pub static CACHE_FIELDS: &[Field] = &[
    field(
        "redis",
        FieldType::Str,
        |_| s("cache"),
        "redis instance of the shared (L2) cache and its invalidation channel",
    ),
    field(
        "l1_capacity",
        FieldType::UInt {
            min: 0,
            max: 10_000_000,
        },
        |_| i(10_000),
        "entries kept in each process (L1); 0 turns L1 off",
    ),
    field(
        "l1_ttl",
        FieldType::Duration,
        |_| s("30s"),
        "how long a process keeps an entry (L1)",
    ),
    field(
        "l2_ttl",
        FieldType::Duration,
        |_| s("5m"),
        "how long Redis keeps an entry (L2)",
    ),
    field(
        "ack_timeout",
        FieldType::Duration,
        |_| s("500ms"),
        "how long an invalidation waits for every subscribed process to drop its L1 copies",
    ),
];

/// `queue.batch.<type>.max_batch` when the type has no section (see `Config::job_batch`).
pub const BATCH_MAX_DEFAULT: usize = 128;
/// `queue.batch.<type>.max_wait` when the type has no section.
pub const BATCH_WAIT_DEFAULT: &str = "5ms";

/// `queue.batch.<type>.*`: how a job type with a batch handler collects its batches
/// (docs/queue.md#batch-handlers). The type may contain dots (`queue.batch.trip.complete.max_batch`).
pub static BATCH_FIELDS: &[Field] = &[
    field(
        "max_batch",
        FieldType::UInt {
            min: 1,
            max: 10_000,
        },
        |_| i(BATCH_MAX_DEFAULT as i64),
        "most jobs of the type handed to its batch handler at once (also bounded by the queue's concurrency)",
    ),
    field(
        "max_wait",
        FieldType::Duration,
        |_| s(BATCH_WAIT_DEFAULT),
        "how long a batch that is not full waits for more jobs of the type before it runs",
    ),
];

/// `schedules.<name>.*`: repeatable jobs declared in the configuration, reconciled by every
/// worker at start-up (docs/queue.md#schedules).
pub static SCHEDULE_FIELDS: &[Field] = &[
    field(
        "cron",
        FieldType::Str,
        none,
        "cron expression (five fields, or six with seconds first); or set `every`",
    ),
    field(
        "tz",
        FieldType::Str,
        |_| s("UTC"),
        "IANA time zone of `cron`",
    ),
    field(
        "every",
        FieldType::Str,
        none,
        "fixed interval instead of `cron` (e.g. 30s, 5m, 1h)",
    ),
    field("type", FieldType::Str, none, "job type each tick enqueues"),
    field("payload", FieldType::Str, |_| s("{}"), "its payload, JSON"),
    field(
        "queue",
        FieldType::Str,
        |_| s("default"),
        "the queue it goes to",
    ),
    field(
        "priority",
        FieldType::UInt { min: 0, max: 1023 },
        |_| i(0),
        "the job's priority",
    ),
    field(
        "missed",
        FieldType::Enum(&["skip", "catch_up"]),
        |_| s("skip"),
        "ticks missed while no worker ran: run the latest only, or every one (at most `catch_up_max`)",
    ),
    field(
        "catch_up_max",
        FieldType::UInt {
            min: 1,
            max: 10_000,
        },
        |_| i(100),
        "with `missed = catch_up`: the most missed ticks run",
    ),
];

/// `backup.*`: backup sets and their tools (docs/backup.md).
pub static BACKUP_FIELDS: &[Field] = &[
    field(
        "dir",
        FieldType::Str,
        |_| s("backups"),
        "folder holding backup sets (one sub-folder each)",
    ),
    field(
        "encryption_key_file",
        FieldType::File,
        none,
        "file with a 32-byte key (64 hex digits): parts are encrypted with XChaCha20-Poly1305",
    ),
    field(
        "signing_key_file",
        FieldType::File,
        none,
        "file with a 32-byte key (64 hex digits) that authenticates each set's manifest (HMAC-SHA256); unset: a key derived from `encryption_key_file`, or, without either, sets are not authenticated",
    ),
    field(
        "keep_daily",
        FieldType::UInt { min: 1, max: 3650 },
        |_| i(7),
        "`backup prune`: the newest complete set of each of this many days is kept",
    ),
    field(
        "keep_weekly",
        FieldType::UInt { min: 0, max: 520 },
        |_| i(4),
        "`backup prune`: and the newest complete set of each of this many ISO weeks",
    ),
    field(
        "mysql_dump",
        FieldType::Str,
        |_| s("mariadb-dump"),
        "dump tool (`mysqldump` for MySQL 8)",
    ),
    field(
        "mysql_client",
        FieldType::Str,
        |_| s("mariadb"),
        "client that replays a dump (`mysql` for MySQL 8)",
    ),
    field(
        "mysql_binlog",
        FieldType::Str,
        |_| s("mariadb-binlog"),
        "binary-log reader for point-in-time recovery (`mysqlbinlog` for MySQL 8)",
    ),
    field(
        "influxd",
        FieldType::Str,
        |_| s("influxd"),
        "InfluxDB 1.x server binary (`influxd backup -portable` / `restore -portable`)",
    ),
    field(
        "influx_rpc_port",
        FieldType::Port,
        |_| i(8088),
        "InfluxDB 1.x backup/restore (RPC) port, on each instance's host",
    ),
    field(
        "redis_server",
        FieldType::Str,
        |_| s("redis-server"),
        "Redis server binary: reads a snapshot back for counting and restoring",
    ),
    field(
        "timeout",
        FieldType::Duration,
        |_| s("30m"),
        "the longest one part may take (dump, snapshot, export)",
    ),
];

/// `gtfs.*`: GTFS feed imports into the `gtfs` instance (docs/gtfs.md).
pub static GTFS_FIELDS: &[Field] = &[
    field(
        "feed",
        FieldType::Str,
        |_| s("cairns"),
        "the feed the main job's trip generator and the stop queries use by default",
    ),
    field(
        "keep_versions",
        FieldType::UInt { min: 2, max: 100 },
        |_| i(3),
        "versions kept per feed (the live one, and earlier ones for `gtfs rollback`)",
    ),
    field(
        "batch_rows",
        FieldType::UInt {
            min: 100,
            max: 10_000,
        },
        |_| i(2_000),
        "rows per multi-row INSERT during an import",
    ),
    field(
        "upload_dir",
        FieldType::Str,
        |_| s("gtfs-uploads"),
        "folder of feeds uploaded through `POST /gtfs/uploads`, for `gtfs.import` jobs",
    ),
    field(
        "max_upload",
        FieldType::UInt {
            min: 1_024,
            max: 1 << 32,
        },
        |_| i(200 << 20),
        "largest feed `POST /gtfs/uploads` accepts, bytes",
    ),
];

/// A fixed section (not instance-named) and its fields.
pub static FIXED_SECTIONS: &[(&str, &[Field])] = &[
    ("influx.service_monitor", SERVICE_MONITOR_FIELDS),
    ("influx.tags", INFLUX_TAG_FIELDS),
    ("health", HEALTH_FIELDS),
    ("secrets", SECRETS_FIELDS),
    ("server", SERVER_FIELDS),
    ("queue", QUEUE_FIELDS),
    ("trips.max_mean_kmh", TRIP_MEAN_FIELDS),
    ("trips.max_trip_km", TRIP_KM_FIELDS),
    ("trips.max_trip_duration", TRIP_DURATION_FIELDS),
    ("trips", TRIP_FIELDS),
    ("cache", CACHE_FIELDS),
    ("auth", AUTH_FIELDS),
    ("limits", LIMIT_FIELDS),
    ("activity", ACTIVITY_FIELDS),
    ("backup", BACKUP_FIELDS),
    ("gtfs", GTFS_FIELDS),
];

/// The field of `stores.<kind>.<instance>.required`.
pub static REQUIRED_FIELD: Field = field(
    "required",
    FieldType::Bool,
    |_| b(false),
    "start-up and readiness depend on this store",
);

/// Top-level names, for "did you mean" on an unknown section.
pub const TOP_LEVEL: &[&str] = &[
    "mysql",
    "redis",
    "mongo",
    "influx",
    "stores",
    "health",
    "secrets",
    "server",
    "queue",
    "trips",
    "cache",
    "auth",
    "limits",
    "activity",
    "backup",
    "gtfs",
    "schedules",
];

/// The original service's environment variables and the keys they set.
pub fn historical_env() -> Vec<(String, String)> {
    let mut map = Vec::new();
    for inst in ["portal", "dataset", "gtfs", "incentive"] {
        let up = inst.to_ascii_uppercase();
        for (suffix, key) in [
            ("HOST", "host"),
            ("PORT", "port"),
            ("USER", "user"),
            ("PASSWORD", "password"),
            ("DB", "database"),
        ] {
            map.push((
                format!("MYSQL_{up}_{suffix}"),
                format!("mysql.{inst}.{key}"),
            ));
        }
    }
    for (suffix, key) in [("HOST", "host"), ("PORT", "port"), ("PASSWORD", "password")] {
        map.push((
            format!("REDIS_CACHE_{suffix}"),
            format!("redis.cache.{key}"),
        ));
    }
    for inst in ["cache", "dataset"] {
        let up = inst.to_ascii_uppercase();
        for (suffix, key) in [
            ("HOST", "host"),
            ("PORT", "port"),
            ("USER", "username"),
            ("PASSWORD", "password"),
            ("DB", "database"),
        ] {
            map.push((
                format!("MONGO_{up}_{suffix}"),
                format!("mongo.{inst}.{key}"),
            ));
        }
    }
    for (var, key) in [
        ("INFLUXDB_URL", "influx.primary.url"),
        ("INFLUXDB_TOKEN", "influx.primary.token"),
        ("INFLUXDB_ORG", "influx.primary.org"),
        ("INFLUXDB_BUCKET", "influx.primary.bucket"),
        ("INFLUX_URL", "influx.uis.url"),
        ("INFLUX_TOKEN", "influx.uis.token"),
        ("INFLUX_ORG", "influx.uis.org"),
        ("INFLUX_BUCKET_UIS", "influx.uis.bucket"),
        (
            "INFLUXDB_SERVICE_MONITOR_BUCKET",
            "influx.service_monitor.bucket",
        ),
        (
            "INFLUXDB_SERVICE_MONITOR_MEASUREMENT",
            "influx.service_monitor.measurement",
        ),
        (
            "INFLUXDB_SERVICE_MONITOR_TIMEOUT",
            "influx.service_monitor.timeout",
        ),
        ("CLUSTER_DATACENTER", "influx.tags.datacenter"),
        ("PROJECT_NAME", "influx.tags.project"),
        ("PROJECT_STAGE", "influx.tags.stage"),
    ] {
        map.push((var.to_string(), key.to_string()));
    }
    map
}

/// The prefix of generic variables: `TSP__MYSQL__PORTAL__POOL__MAX` sets `mysql.portal.pool.max`.
pub const ENV_PREFIX: &str = "TSP__";

/// The generic variable for a key.
pub fn generic_env_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

/// What a dotted key refers to in the schema.
#[derive(Debug, Clone, Copy)]
pub enum Resolved<'a> {
    /// `kind.instance.field`
    Instance {
        /// The store kind.
        kind: Kind,
        /// The instance's name.
        instance: &'a str,
        /// The field.
        field: &'static Field,
    },
    /// `stores.kind.instance.required`
    Required {
        /// The store kind.
        kind: Kind,
        /// The instance's name.
        instance: &'a str,
    },
    /// `queue.batch.<type>.<field>`.
    Batch {
        /// The job type.
        job_type: &'a str,
        /// The field.
        field: &'static Field,
    },
    /// `schedules.<name>.<field>`.
    Schedule {
        /// The schedule's name.
        name: &'a str,
        /// The field.
        field: &'static Field,
    },
    /// A fixed section's field (`health.timeout`).
    Fixed {
        /// The field.
        field: &'static Field,
    },
}

/// Why a key is not in the schema, with the closest known key when one is near.
#[derive(Debug, Clone)]
pub struct UnknownKey {
    /// The closest known key, when one is near.
    pub suggestion: Option<String>,
}

/// Resolves a dotted key against the schema.
pub fn resolve(key: &str) -> Result<Resolved<'_>, UnknownKey> {
    let (top, rest) = key.split_once('.').unwrap_or((key, ""));
    if let Some(sub) = key.strip_prefix("queue.batch.") {
        let (job_type, name) = sub.rsplit_once('.').unwrap_or(("", sub));
        return match BATCH_FIELDS.iter().find(|f| f.key == name) {
            Some(field) if !job_type.is_empty() => Ok(Resolved::Batch { job_type, field }),
            _ => Err(UnknownKey {
                suggestion: Some("queue.batch.<type>.max_batch or .max_wait".into()),
            }),
        };
    }
    for (section, fields) in FIXED_SECTIONS {
        if let Some(sub) = key.strip_prefix(section).and_then(|r| r.strip_prefix('.')) {
            return match fields.iter().find(|f| f.key == sub) {
                Some(field) => Ok(Resolved::Fixed { field }),
                None => Err(UnknownKey {
                    suggestion: closest(sub, fields.iter().map(|f| f.key))
                        .map(|s| format!("{section}.{s}")),
                }),
            };
        }
    }
    if let Some(kind) = Kind::from_name(top) {
        let (instance, sub) = rest.split_once('.').unwrap_or((rest, ""));
        if instance.is_empty() || sub.is_empty() || !valid_instance_name(instance) {
            return Err(UnknownKey {
                suggestion: closest(rest, kind.fields().iter().map(|f| f.key))
                    .map(|s| format!("{top}.{}.{s}", kind.builtin_instances()[0])),
            });
        }
        return match kind.fields().iter().find(|f| f.key == sub) {
            Some(field) => Ok(Resolved::Instance {
                kind,
                instance,
                field,
            }),
            None => Err(UnknownKey {
                suggestion: closest(sub, kind.fields().iter().map(|f| f.key))
                    .map(|s| format!("{top}.{instance}.{s}")),
            }),
        };
    }
    if top == "schedules" {
        let (name, sub) = rest.split_once('.').unwrap_or((rest, ""));
        if !valid_instance_name(name) {
            return Err(UnknownKey {
                suggestion: Some("schedules.<name>.<field>, name lowercase".into()),
            });
        }
        return match SCHEDULE_FIELDS.iter().find(|f| f.key == sub) {
            Some(field) => Ok(Resolved::Schedule { name, field }),
            None => Err(UnknownKey {
                suggestion: closest(sub, SCHEDULE_FIELDS.iter().map(|f| f.key))
                    .map(|s| format!("schedules.{name}.{s}")),
            }),
        };
    }
    if top == "stores" {
        let parts: Vec<&str> = rest.split('.').collect();
        if let [kind, instance, "required"] = parts.as_slice()
            && let Some(kind) = Kind::from_name(kind)
            && valid_instance_name(instance)
        {
            return Ok(Resolved::Required { kind, instance });
        }
        return Err(UnknownKey {
            suggestion: Some("stores.<mysql|redis|mongo|influx>.<instance>.required".into()),
        });
    }
    Err(UnknownKey {
        suggestion: closest(top, TOP_LEVEL.iter().copied()).map(|s| {
            if rest.is_empty() {
                s.to_string()
            } else {
                format!("{s}.{rest}")
            }
        }),
    })
}

/// Instance names are lowercase words: they become part of environment variables and metrics.
pub fn valid_instance_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.starts_with(|c: char| c.is_ascii_lowercase())
}

/// The candidate nearest to `word` when it is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.len() / 3).clamp(1, 3);
    candidates
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_of_an_unnamed_batch_type_parse() {
        assert_eq!(
            crate::parse_duration_text(BATCH_WAIT_DEFAULT),
            Ok(std::time::Duration::from_millis(5))
        );
    }

    #[test]
    fn resolves_instance_fixed_and_store_keys() {
        assert!(matches!(
            resolve("mysql.portal.pool.max"),
            Ok(Resolved::Instance { kind: Kind::Mysql, instance: "portal", field }) if field.key == "pool.max"
        ));
        assert!(matches!(
            resolve("influx.tags.stage"),
            Ok(Resolved::Fixed { .. })
        ));
        assert!(matches!(
            resolve("stores.redis.cache.required"),
            Ok(Resolved::Required { .. })
        ));
    }

    #[test]
    fn suggests_close_keys() {
        let err = resolve("mysql.portal.pool.mx").unwrap_err();
        assert_eq!(err.suggestion.as_deref(), Some("mysql.portal.pool.max"));
        let err = resolve("mysqll.portal.host").unwrap_err();
        assert_eq!(err.suggestion.as_deref(), Some("mysql.portal.host"));
        let err = resolve("health.timout").unwrap_err();
        assert_eq!(err.suggestion.as_deref(), Some("health.timeout"));
    }

    #[test]
    fn generic_env_names() {
        assert_eq!(
            generic_env_name("mysql.portal.pool.max"),
            "TSP__MYSQL__PORTAL__POOL__MAX"
        );
    }
}
