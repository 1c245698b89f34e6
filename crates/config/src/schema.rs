//! The schema: every key, its type, its default and its historical environment variable.
//!
//! The keys are declared once, by the settings structs (`settings`,
//! `#[derive(Settings)]`); the tables here are what they declare. Loading, validation, `config
//! show`, and the configuration reference (`tsp-job config reference`) are all driven by them,
//! so a key cannot be documented with one default and built with another.

use std::sync::LazyLock;

use crate::declare::fields_of;
pub use crate::field::{DefaultFn, Field, FieldType};
use crate::instances;
use crate::raw::RawValue;
use crate::settings::{
    ActivitySettings, AuthSettings, BackupSettings, CacheSettings, GtfsSettings, HealthSettings,
    InfluxSettings, InfluxTags, JobBatchSettings, LimitSettings, MongoSettings, MysqlSettings,
    OtlpSettings, QueueSettings, RedisSettings, ScheduleSettings, SecretsSettings, ServerSettings,
    ServiceMonitorSettings, TripSettings,
};
pub use crate::settings::{BATCH_MAX_DEFAULT, BATCH_WAIT_DEFAULT, FAULT_STEPS};

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
            Kind::Mysql => &MYSQL_FIELDS,
            Kind::Redis => &REDIS_FIELDS,
            Kind::Mongo => &MONGO_FIELDS,
            Kind::Influx => &INFLUX_FIELDS,
        }
    }
}

/// Names under `influx.` that are settings sections, not instances.
pub const INFLUX_RESERVED: [&str; 2] = ["service_monitor", "tags"];

/// A table of keys: what a settings struct declares, as `variant`.
type Table = LazyLock<Vec<Field>>;

static MYSQL_FIELDS: Table = LazyLock::new(|| fields_of::<MysqlSettings>("mysql"));
static REDIS_FIELDS: Table = LazyLock::new(|| fields_of::<RedisSettings>("redis"));
static MONGO_FIELDS: Table = LazyLock::new(|| fields_of::<MongoSettings>("mongo"));
static INFLUX_FIELDS: Table = LazyLock::new(|| fields_of::<InfluxSettings>("influx"));

/// `influx.service_monitor.*`: where vendor latency points go.
pub static SERVICE_MONITOR_FIELDS: Table =
    LazyLock::new(|| fields_of::<ServiceMonitorSettings>(""));
/// `influx.tags.*`: tags added to every point.
pub static INFLUX_TAG_FIELDS: Table = LazyLock::new(|| fields_of::<InfluxTags>(""));
/// `health.*`
pub static HEALTH_FIELDS: Table = LazyLock::new(|| fields_of::<HealthSettings>(""));
/// `secrets.*`: credential reloads (docs/store-security.md#rotation).
pub static SECRETS_FIELDS: Table = LazyLock::new(|| fields_of::<SecretsSettings>(""));
/// `server.*`
pub static SERVER_FIELDS: Table = LazyLock::new(|| fields_of::<ServerSettings>(""));
/// `auth.*`
pub static AUTH_FIELDS: Table = LazyLock::new(|| fields_of::<AuthSettings>(""));
/// `limits.*`
pub static LIMIT_FIELDS: Table = LazyLock::new(|| fields_of::<LimitSettings>(""));
/// `activity.*`
pub static ACTIVITY_FIELDS: Table = LazyLock::new(|| fields_of::<ActivitySettings>(""));
/// `queue.*`
pub static QUEUE_FIELDS: Table = LazyLock::new(|| fields_of::<QueueSettings>(""));
/// `trips.*`: the `trip.complete` job.
pub static TRIP_FIELDS: Table = LazyLock::new(|| fields_of::<TripSettings>(""));
/// `cache.*`: the two-level query cache.
pub static CACHE_FIELDS: Table = LazyLock::new(|| fields_of::<CacheSettings>(""));
/// `telemetry.otlp.*`: trace export (docs/metrics.md#traces).
pub static OTLP_FIELDS: Table = LazyLock::new(|| fields_of::<OtlpSettings>(""));
/// `backup.*`
pub static BACKUP_FIELDS: Table = LazyLock::new(|| fields_of::<BackupSettings>(""));
/// `gtfs.*`
pub static GTFS_FIELDS: Table = LazyLock::new(|| fields_of::<GtfsSettings>(""));
/// `queue.batch.<type>.*`: how a job type with a batch handler collects its batches
/// (docs/queue.md#batch-handlers). The type may contain dots (`queue.batch.trip.complete.max_batch`).
pub static BATCH_FIELDS: Table = LazyLock::new(|| fields_of::<JobBatchSettings>(""));
/// `schedules.<name>.*`: repeatable jobs declared in the configuration, reconciled by every
/// worker at start-up (docs/queue.md#schedules).
pub static SCHEDULE_FIELDS: Table = LazyLock::new(|| fields_of::<ScheduleSettings>(""));

/// The fixed sections (not instance-named) and their keys, in reference order.
pub static FIXED_SECTIONS: LazyLock<Vec<(&'static str, &'static [Field])>> = LazyLock::new(|| {
    vec![
        ("influx.service_monitor", &SERVICE_MONITOR_FIELDS[..]),
        ("influx.tags", &INFLUX_TAG_FIELDS[..]),
        ("health", &HEALTH_FIELDS[..]),
        ("secrets", &SECRETS_FIELDS[..]),
        ("server", &SERVER_FIELDS[..]),
        ("queue", &QUEUE_FIELDS[..]),
        ("trips", &TRIP_FIELDS[..]),
        ("cache", &CACHE_FIELDS[..]),
        ("auth", &AUTH_FIELDS[..]),
        ("limits", &LIMIT_FIELDS[..]),
        ("activity", &ACTIVITY_FIELDS[..]),
        ("telemetry.otlp", &OTLP_FIELDS[..]),
        ("backup", &BACKUP_FIELDS[..]),
        ("gtfs", &GTFS_FIELDS[..]),
    ]
});

/// The field of `stores.<kind>.<instance>.required`.
pub static REQUIRED_FIELD: Field = Field {
    key: "required",
    ty: FieldType::Bool,
    default: |_| Some(RawValue::Bool(false)),
    doc: "start-up and readiness depend on this store",
};

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
    "telemetry",
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
    for (section, fields) in FIXED_SECTIONS.iter() {
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
