//! The store instances of each kind, read into their settings, with the rules that span keys.

use std::collections::BTreeMap;

use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Builder;
use super::values::Values;
use crate::schema::Kind;
use crate::settings::{
    InfluxApi, InfluxSettings, MigrateAccount, MongoSettings, MysqlSettings, RedisSettings,
    TlsMode, TlsSettings,
};

/// Reads an instance's section, with its name and `required` flag.
fn instance(b: &mut Builder, kind: Kind, name: &str) -> Values {
    let required = b.required(kind, name);
    let mut v = b.section(&format!("{}.{name}", kind.name()), kind.fields(), name);
    v.set("name", Value::from(name));
    v.set("required", Value::Bool(required));
    v
}

fn check_pool(b: &mut Builder, prefix: &str, min: u32, max: u32) {
    let (kmin, kmax) = (format!("{prefix}.pool.min"), format!("{prefix}.pool.max"));
    if !b.is_bad(&kmin) && !b.is_bad(&kmax) && min > max {
        let at = if b.is_set(&kmin) { kmin } else { kmax };
        b.problem(
            &at,
            format!("pool.min ({min}) is greater than pool.max ({max})"),
        );
    }
}

fn check_host(b: &mut Builder, prefix: &str, required: bool, has_url: bool, host: &str) {
    let key = format!("{prefix}.host");
    if required && !has_url && host.is_empty() && !b.is_bad(&key) {
        b.problem(&key, "empty host for a required store");
    }
}

/// `has_key`: the kind takes a separate key file (Mongo's certificate file holds both).
fn check_tls(b: &mut Builder, prefix: &str, tls: &TlsSettings, has_key: bool) {
    if has_key && tls.cert.is_some() != tls.key.is_some() {
        let at = if tls.cert.is_some() { "key" } else { "cert" };
        b.problem(
            &format!("{prefix}.tls.{at}"),
            "tls.cert and tls.key must be set together",
        );
    }
    if tls.mode == TlsMode::Disabled && (tls.ca.is_some() || tls.cert.is_some()) {
        b.problem(
            &format!("{prefix}.tls.mode"),
            "TLS files are set but tls.mode is disabled",
        );
    }
}

/// A migrator password without a migrator user would be ignored without a word: say so.
fn check_migrate(b: &mut Builder, prefix: &str, m: &MigrateAccount) {
    if !m.is_set() && !m.password.expose_secret().is_empty() {
        b.problem(
            &format!("{prefix}.migrate.user"),
            "migrate.password is set but migrate.user is empty",
        );
    }
}

/// For a host that is not loopback, an unset `tls.mode` means `verify_identity`: encrypted and
/// checked, whatever the schema's default for local servers (docs/store-security.md#tls-modes).
fn verify_remote_by_default(b: &mut Builder, v: &mut Values) {
    let key = v.key("tls.mode");
    if b.is_set(&key) {
        return;
    }
    let host = v.text("host");
    if host.is_empty() || crate::settings::is_loopback_host(&host) {
        return;
    }
    v.set("tls.mode", Value::from("verify_identity"));
    b.shown.retain(|s| s.key != key);
    b.shown.push(crate::settings::ShownValue {
        key,
        display: "\"verify_identity\"".into(),
        json: "verify_identity".into(),
        origin: crate::origin::Origin::Default,
    });
}

/// Reads every instance of `kind` into its settings; `prepare` may adjust an instance's values
/// first, `check` applies the rules that span its keys (given the instance's key prefix).
fn instances<T: DeserializeOwned>(
    b: &mut Builder,
    kind: Kind,
    names: &[String],
    prepare: impl Fn(&mut Builder, &mut Values),
    check: impl Fn(&mut Builder, &str, &T),
) -> BTreeMap<String, T> {
    let mut out = BTreeMap::new();
    for name in names {
        let mut v = instance(b, kind, name);
        prepare(b, &mut v);
        let prefix = v.prefix.clone();
        if let Some(s) = b.typed::<T>(v) {
            check(b, &prefix, &s);
            out.insert(name.clone(), s);
        }
    }
    out
}

pub(super) fn mysql(b: &mut Builder, names: &[String]) -> BTreeMap<String, MysqlSettings> {
    instances(
        b,
        Kind::Mysql,
        names,
        verify_remote_by_default,
        |b, prefix, s: &MysqlSettings| {
            check_pool(b, prefix, s.pool.min, s.pool.max);
            check_host(b, prefix, s.required, s.url.is_some(), &s.host);
            check_migrate(b, prefix, &s.migrate);
            check_tls(b, prefix, &s.tls, true);
        },
    )
}

pub(super) fn redis(b: &mut Builder, names: &[String]) -> BTreeMap<String, RedisSettings> {
    instances(
        b,
        Kind::Redis,
        names,
        verify_remote_by_default,
        |b, prefix, s: &RedisSettings| {
            check_host(b, prefix, s.required, s.url.is_some(), &s.host);
            check_migrate(b, prefix, &s.migrate);
            check_tls(b, prefix, &s.tls, true);
            if !s.cluster_nodes.is_empty() && s.db != 0 {
                b.problem(&format!("{prefix}.db"), "Redis Cluster has only database 0");
            }
        },
    )
}

pub(super) fn mongo(b: &mut Builder, names: &[String]) -> BTreeMap<String, MongoSettings> {
    instances(
        b,
        Kind::Mongo,
        names,
        verify_remote_by_default,
        |b, prefix, s: &MongoSettings| {
            check_pool(b, prefix, s.pool.min, s.pool.max);
            check_host(b, prefix, s.required, s.uri.is_some(), &s.host);
            check_migrate(b, prefix, &s.migrate);
            check_tls(b, prefix, &s.tls, false);
            if !s.username.is_empty()
                && secrecy::ExposeSecret::expose_secret(&s.password).is_empty()
                && s.uri.is_none()
            {
                b.problem(
                    &format!("{prefix}.password"),
                    "username is set but password is empty",
                );
            }
        },
    )
}

/// An unset `api` is inferred: a token means the deployment speaks v2 (the original service's
/// `INFLUXDB_TOKEN`), otherwise v1. Shown in `config show` as a default.
fn infer_influx_api(b: &mut Builder, v: &mut Values) {
    if !v.get("api").is_null() {
        return;
    }
    let inferred = if v.text("token").is_empty() {
        "v1"
    } else {
        "v2"
    };
    b.shown.push(crate::settings::ShownValue {
        key: v.key("api"),
        display: format!("{inferred:?}"),
        json: inferred.into(),
        origin: crate::origin::Origin::Default,
    });
    v.set("api", Value::from(inferred));
}

pub(super) fn influx(b: &mut Builder, names: &[String]) -> BTreeMap<String, InfluxSettings> {
    instances(b, Kind::Influx, names, infer_influx_api, check_influx)
}

fn check_influx(b: &mut Builder, prefix: &str, s: &InfluxSettings) {
    let key = |k: &str| format!("{prefix}.{k}");
    check_migrate(b, prefix, &s.migrate);
    if s.tls.ca.is_some() && !s.url.starts_with("https://") {
        b.problem(&key("tls.ca"), "tls.ca is set but url is not https");
    }
    if s.api == InfluxApi::V2 && !b.is_bad(&key("api")) {
        let token = secrecy::ExposeSecret::expose_secret(&s.token);
        let missing: Vec<&str> = [("token", token), ("org", &s.org), ("bucket", &s.bucket)]
            .into_iter()
            .filter(|(_, v)| v.is_empty())
            .map(|(k, _)| k)
            .collect();
        if !missing.is_empty() {
            b.problem(
                &key("api"),
                format!(
                    "the v2 API needs token, org and bucket (missing: {})",
                    missing.join(", ")
                ),
            );
        }
    }
    if s.api == InfluxApi::V1 && s.database.is_empty() && s.bucket.is_empty() {
        b.problem(&key("database"), "the v1 API needs a database (or bucket)");
    }
    if s.batch.max_points > s.batch.max_buffer_points {
        b.problem(
            &key("batch.max_points"),
            format!(
                "batch.max_points ({}) is larger than batch.max_buffer_points ({})",
                s.batch.max_points, s.batch.max_buffer_points
            ),
        );
    }
    if s.required && s.url.is_empty() {
        b.problem(&key("url"), "empty url for a required store");
    }
}
