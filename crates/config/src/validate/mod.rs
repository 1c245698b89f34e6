//! From merged layers to a typed [`Config`], collecting every problem instead of stopping at the
//! first. Each section is read through the schema ([`Builder::section`]), then deserialized into
//! its settings struct ([`values`]); cross-field rules run on the typed values.

mod parse;
mod sections;
mod stores;
mod values;

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;

use crate::error::Problem;
use crate::origin::Origin;
use crate::raw::MASK;
use crate::schema::{self, Field, FieldType, INFLUX_RESERVED, Kind, Resolved};
use crate::settings::{Config, ShownValue};
use crate::sources::{Entry, Layers};

pub use parse::parse_duration_text;
use parse::{Typed, display, display_json, parse};
use values::Values;

/// What validation has gathered so far: the merged entries, the problems, and what
/// `config show` prints.
struct Builder {
    entries: BTreeMap<String, Entry>,
    problems: Vec<Problem>,
    shown: Vec<ShownValue>,
    /// Keys whose value failed to parse: cross-field checks skip them.
    bad: BTreeSet<String>,
}

impl Builder {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        let (value, origin) = match self.entries.get(key) {
            Some(e) => (Some(e.value.render()), Some(e.origin.clone())),
            None => (None, Some(Origin::Default)),
        };
        let secret = matches!(schema::resolve(key), Ok(Resolved::Instance { field, .. }) if field.ty.is_secret());
        self.problems.push(Problem {
            key: key.to_string(),
            value: if secret {
                value.map(|_| MASK.to_string())
            } else {
                value
            },
            origin,
            message: message.into(),
        });
    }

    /// Parses one key (set or defaulted) and records it for `config show`.
    fn read(&mut self, key: &str, field: &Field, instance: &str) -> Typed {
        let (raw, origin) = match self.entries.get(key) {
            Some(e) => (Some(e.value.clone()), e.origin.clone()),
            None => ((field.default)(instance), Origin::Default),
        };
        let Some(raw) = raw else {
            return Typed::Absent;
        };
        match parse(&raw, field.ty) {
            Ok(typed) => {
                self.shown.push(ShownValue {
                    key: key.to_string(),
                    display: display(&raw, field.ty),
                    json: display_json(&raw, field.ty),
                    origin,
                });
                typed
            }
            Err(msg) => {
                self.bad.insert(key.to_string());
                let secret = field.ty.is_secret();
                self.problems.push(Problem {
                    key: key.to_string(),
                    value: Some(if secret {
                        MASK.to_string()
                    } else {
                        raw.render()
                    }),
                    origin: Some(origin),
                    message: msg,
                });
                // Fall back to the default so later checks can still run.
                (field.default)(instance)
                    .and_then(|d| parse(&d, field.ty).ok())
                    .unwrap_or(Typed::Absent)
            }
        }
    }

    fn is_set(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    fn is_bad(&self, key: &str) -> bool {
        self.bad.contains(key)
    }

    /// Reads every field of a section (an instance, or a fixed section such as `queue`).
    fn section(&mut self, prefix: &str, fields: &'static [Field], instance: &str) -> Values {
        let mut values = Values::new(prefix, fields);
        for field in fields {
            let key = format!("{prefix}.{}", field.key);
            let typed = self.read(&key, field, instance);
            values.set(field.key, typed.to_json());
        }
        values
    }

    /// The section as its settings struct. `None` when it cannot be built: because one of its
    /// values was refused (already reported), or because the code and the schema disagree
    /// (reported here, naming the section, so no test run can miss it).
    fn typed<T: DeserializeOwned>(&mut self, values: Values) -> Option<T> {
        let prefix = values.prefix.clone();
        match values.into_typed::<T>() {
            Ok(t) => Some(t),
            Err(_)
                if self
                    .bad
                    .iter()
                    .any(|k| k.starts_with(&format!("{prefix}."))) =>
            {
                None
            }
            Err(why) => {
                self.problem(&prefix, format!("internal error: {why}"));
                None
            }
        }
    }

    /// `stores.<kind>.<instance>.required`, recorded for `config show`.
    fn required(&mut self, kind: Kind, instance: &str) -> bool {
        let key = format!("stores.{}.{instance}.required", kind.name());
        let default = kind.required_by_default(instance);
        let Some(e) = self.entries.get(&key).cloned() else {
            self.show(&key, default, Origin::Default);
            return default;
        };
        match parse(&e.value, FieldType::Bool) {
            Ok(Typed::Bool(v)) => {
                self.show(&key, v, e.origin);
                v
            }
            Ok(_) => default,
            Err(msg) => {
                self.problem(&key, msg);
                default
            }
        }
    }

    fn show(&mut self, key: &str, value: bool, origin: Origin) {
        self.shown.push(ShownValue {
            key: key.to_string(),
            display: value.to_string(),
            json: value.into(),
            origin,
        });
    }

    /// Reports keys the schema does not know (the most common mistake, with a suggestion) and
    /// drops them.
    fn reject_unknown_keys(&mut self) {
        let keys: Vec<String> = self.entries.keys().cloned().collect();
        for key in &keys {
            if let Err(unknown) = schema::resolve(key) {
                let hint = unknown
                    .suggestion
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                self.problem(key, format!("unknown key{hint}"));
                self.entries.remove(key);
            }
        }
    }

    /// The instances of `kind`: the built-in ones, then those the configuration names. A new one
    /// must set a locator key (`host`, `url`…), so a typo in an instance name is reported rather
    /// than creating a store.
    fn instances(&mut self, kind: Kind) -> Vec<String> {
        let mut names = self.named_instances(kind);
        if kind == Kind::Influx {
            // `influx.tags.*` and `influx.service_monitor.*` are sections, not instances.
            names.retain(|n| !INFLUX_RESERVED.contains(&n.as_str()));
        }
        for name in &names {
            if !kind.builtin_instances().contains(&name.as_str()) {
                self.check_located(kind, name);
            }
        }
        names
    }

    fn named_instances(&self, kind: Kind) -> Vec<String> {
        let mut names: Vec<String> = kind
            .builtin_instances()
            .iter()
            .map(|s| s.to_string())
            .collect();
        for key in self.entries.keys() {
            let found = match schema::resolve(key) {
                Ok(Resolved::Instance {
                    kind: k, instance, ..
                })
                | Ok(Resolved::Required { kind: k, instance })
                    if k == kind =>
                {
                    Some(instance)
                }
                _ => None,
            };
            if let Some(inst) = found
                && !names.iter().any(|n| n == inst)
            {
                names.push(inst.to_string());
            }
        }
        names
    }

    fn check_located(&mut self, kind: Kind, name: &str) {
        let prefix = format!("{}.{name}", kind.name());
        let located = kind
            .locator_keys()
            .iter()
            .any(|k| self.is_set(&format!("{prefix}.{k}")));
        if located {
            return;
        }
        let near = schema::closest(name, kind.builtin_instances().iter().copied())
            .map(|c| format!("; did you mean `{}.{c}`?", kind.name()))
            .unwrap_or_default();
        let any_key = self
            .entries
            .keys()
            .find(|k| {
                k.starts_with(&format!("{prefix}.")) || k.starts_with(&format!("stores.{prefix}."))
            })
            .cloned()
            .unwrap_or(prefix.clone());
        self.problem(
            &any_key,
            format!(
                "`{prefix}` is not a built-in instance; a new instance must set {}{near}",
                kind.locator_keys().join(" or ")
            ),
        );
    }
}

/// Validates merged layers into a [`Config`], or returns every problem found.
pub(crate) fn build(layers: Layers, env: String) -> Result<Config, Vec<Problem>> {
    let mut b = Builder {
        entries: layers.entries,
        problems: layers.problems,
        shown: Vec::new(),
        bad: BTreeSet::new(),
    };
    b.reject_unknown_keys();
    let names = |b: &mut Builder, kind| b.instances(kind);
    let (mysql_names, redis_names) = (names(&mut b, Kind::Mysql), names(&mut b, Kind::Redis));
    let (mongo_names, influx_names) = (names(&mut b, Kind::Mongo), names(&mut b, Kind::Influx));
    let mysql = stores::mysql(&mut b, &mysql_names);
    let redis = stores::redis(&mut b, &redis_names);
    let mongo = stores::mongo(&mut b, &mongo_names);
    let influx = stores::influx(&mut b, &influx_names);
    let service_monitor = sections::service_monitor(&mut b, &influx);
    let influx_tags = sections::plain(&mut b, "influx.tags", &schema::INFLUX_TAG_FIELDS);
    let health = sections::plain(&mut b, "health", &schema::HEALTH_FIELDS);
    let secrets = sections::plain(&mut b, "secrets", &schema::SECRETS_FIELDS);
    let server = sections::server(&mut b);
    let queue = sections::queue(&mut b, &redis);
    let trips = sections::trips(&mut b);
    let cache = sections::cache(&mut b, &redis);
    let auth = sections::auth(&mut b, &redis);
    let limits = sections::plain(&mut b, "limits", &schema::LIMIT_FIELDS);
    let activity = sections::plain(&mut b, "activity", &schema::ACTIVITY_FIELDS);
    let otlp = sections::plain(&mut b, "telemetry.otlp", &schema::OTLP_FIELDS);
    let backup = sections::plain(&mut b, "backup", &schema::BACKUP_FIELDS);
    let gtfs = sections::plain(&mut b, "gtfs", &schema::GTFS_FIELDS);
    let batches = sections::batches(&mut b);
    let schedules = sections::schedules(&mut b);
    let mut shown = std::mem::take(&mut b.shown);
    shown.sort_by(|x, y| x.key.cmp(&y.key));
    // Every section that failed has said why in `b.problems`; `None` here only stops the build.
    let config = (|| {
        Some(Config {
            env,
            mysql,
            redis,
            mongo,
            influx,
            service_monitor: service_monitor?,
            influx_tags: influx_tags?,
            health: health?,
            secrets: secrets?,
            server: server?,
            queue: queue?,
            trips: trips?,
            cache: cache?,
            auth: auth?,
            limits: limits?,
            activity: activity?,
            otlp: otlp?,
            backup: backup?,
            gtfs: gtfs?,
            batches,
            schedules,
            shown,
            files: layers.files,
            warnings: Vec::new(),
        })
    })();
    match config {
        Some(c) if b.problems.is_empty() => Ok(c),
        _ => Err(b.problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::HealthSettings;

    fn builder() -> Builder {
        Builder {
            entries: BTreeMap::new(),
            problems: Vec::new(),
            shown: Vec::new(),
            bad: BTreeSet::new(),
        }
    }

    #[test]
    fn reading_a_key_the_schema_does_not_declare_fails_the_load() {
        let mut b = builder();
        let mut values = b.section("health", &schema::HEALTH_FIELDS, "");
        assert!(values.get("timeout").is_object());
        // A typo in the code: `timout`.
        assert!(values.get("timout").is_null());
        assert!(b.typed::<HealthSettings>(values).is_none());
        assert_eq!(b.problems.len(), 1);
        assert_eq!(b.problems[0].key, "health");
        assert!(
            b.problems[0].message.contains("health.timout")
                && b.problems[0].message.contains("does not declare"),
            "{}",
            b.problems[0].message
        );
    }

    /// Reading the `health` section into `T` is refused, naming `key`.
    fn assert_refused<T: DeserializeOwned>(key: &str) {
        let mut b = builder();
        let values = b.section("health", &schema::HEALTH_FIELDS, "");
        assert!(b.typed::<T>(values).is_none());
        let message = &b.problems[0].message;
        assert!(message.contains(key), "{message}");
    }

    #[test]
    fn a_struct_that_disagrees_with_its_schema_fails_the_load() {
        // The health section read into a struct that lacks `interval`: refused, not ignored.
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct HealthWithoutInterval {
            timeout: std::time::Duration,
            read_timeout: std::time::Duration,
        }
        assert_refused::<HealthWithoutInterval>("interval");
        // And a struct field the schema does not give is missing, not defaulted.
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct HealthWithExtra {
            timeout: std::time::Duration,
            read_timeout: std::time::Duration,
            interval: std::time::Duration,
            grace: std::time::Duration,
        }
        assert_refused::<HealthWithExtra>("grace");
    }
}
