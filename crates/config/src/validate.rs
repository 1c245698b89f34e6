//! From merged layers to a typed [`Config`], collecting every problem instead of stopping at the
//! first.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::error::Problem;
use crate::origin::Origin;
use crate::raw::{MASK, RawValue, mask_url};
use crate::schema::{self, Field, FieldType, INFLUX_RESERVED, Kind, Resolved};
use crate::settings::*;
use crate::sources::{Entry, Layers};

/// A parsed value of a key.
#[derive(Debug, Clone)]
enum Typed {
    Str(String),
    Int(u64),
    Dur(Duration),
    Bool(bool),
    List(Vec<String>),
    /// No value and no default.
    Absent,
}

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
}

fn display(raw: &RawValue, ty: FieldType) -> String {
    match (ty, raw) {
        (FieldType::Secret, RawValue::Str(s)) if s.is_empty() => "\"\"".into(),
        (FieldType::Secret, _) => MASK.into(),
        (FieldType::SecretUrl(_), RawValue::Str(s)) => format!("{:?}", mask_url(s)),
        _ => raw.render(),
    }
}

fn display_json(raw: &RawValue, ty: FieldType) -> serde_json::Value {
    match (ty, raw) {
        (FieldType::Secret, RawValue::Str(s)) if s.is_empty() => "".into(),
        (FieldType::Secret, _) => MASK.into(),
        (FieldType::SecretUrl(_), RawValue::Str(s)) => mask_url(s).into(),
        _ => raw.to_json(),
    }
}

fn as_text(raw: &RawValue) -> Result<String, String> {
    match raw {
        RawValue::Str(s) => Ok(s.clone()),
        RawValue::Int(i) => Ok(i.to_string()),
        RawValue::Float(f) => Ok(f.to_string()),
        RawValue::Bool(b) => Ok(b.to_string()),
        RawValue::List(_) => Err("expected a single value, found a list".into()),
    }
}

fn parse_uint(raw: &RawValue, min: u64, max: u64, what: &str) -> Result<u64, String> {
    let n: i128 = match raw {
        RawValue::Int(i) => i128::from(*i),
        RawValue::Str(s) => s
            .trim()
            .parse::<i128>()
            .map_err(|_| format!("not a number: expected {what}"))?,
        other => return Err(format!("expected {what}, found a {}", other.type_name())),
    };
    if n < i128::from(min) || n > i128::from(max) {
        return Err(format!("out of range: expected {what}"));
    }
    u64::try_from(n).map_err(|_| format!("out of range: expected {what}"))
}

/// A duration written as text (`500ms`, `30s`, `2m`, bare ms), as on the command line.
pub fn parse_duration_text(s: &str) -> Result<Duration, String> {
    parse_duration(&RawValue::Str(s.to_string()))
}

/// `500ms`, `30s`, `2m`, `1h`, `1.5s`, or a bare integer of milliseconds.
pub(crate) fn parse_duration(raw: &RawValue) -> Result<Duration, String> {
    let text = match raw {
        RawValue::Int(i) => format!("{i}ms"),
        RawValue::Float(_) | RawValue::List(_) | RawValue::Bool(_) => {
            return Err(format!(
                "expected a duration such as 500ms or 30s, found a {}",
                raw.type_name()
            ));
        }
        RawValue::Str(s) => s.trim().to_string(),
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| "not a duration: expected e.g. 500ms, 30s, 2m".to_string())?;
    let scale = match unit.trim() {
        "" | "ms" => 0.001,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        other => {
            return Err(format!(
                "unknown duration unit `{other}`: use ms, s, m, h or d"
            ));
        }
    };
    if value.is_nan() || value <= 0.0 {
        return Err("must be greater than zero".into());
    }
    let secs = value * scale;
    if secs > 366.0 * 24.0 * 3600.0 {
        return Err("too long: at most 366 days".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_bool(raw: &RawValue) -> Result<bool, String> {
    match raw {
        RawValue::Bool(b) => Ok(*b),
        RawValue::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err("expected true or false".into()),
        },
        other => Err(format!(
            "expected true or false, found a {}",
            other.type_name()
        )),
    }
}

fn parse_host_port(item: &str) -> Result<String, String> {
    let item = item.trim();
    let (host, port) = item
        .rsplit_once(':')
        .ok_or_else(|| format!("`{item}` is not host:port"))?;
    if host.is_empty() {
        return Err(format!("`{item}` has no host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(item.to_string()),
        _ => Err(format!("`{item}` has no valid port (1-65535)")),
    }
}

/// MongoDB connection strings may list several hosts (`a:1,b:2`), which generic URL parsers
/// refuse; check the shape by hand.
fn parse_mongo_uri(s: &str, schemes: &[&str]) -> Result<String, String> {
    let s = s.trim();
    let (scheme, rest) = s
        .split_once("://")
        .ok_or_else(|| "malformed URL: expected mongodb://host[:port][,host…]/…".to_string())?;
    if !schemes.contains(&scheme) {
        return Err(format!(
            "malformed URL: scheme `{scheme}` is not one of {}",
            schemes.join(", ")
        ));
    }
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let hosts = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    if hosts.is_empty() {
        return Err("malformed URL: no host".into());
    }
    for host in hosts.split(',') {
        let (name, port) = match host.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        };
        if name.is_empty() {
            return Err("malformed URL: empty host".into());
        }
        if port.is_some_and(|p| !matches!(p.parse::<u16>(), Ok(n) if n > 0)) {
            return Err(format!("malformed URL: invalid port in `{host}`"));
        }
    }
    Ok(s.to_string())
}

fn parse(raw: &RawValue, ty: FieldType) -> Result<Typed, String> {
    match ty {
        FieldType::Str | FieldType::Secret => as_text(raw).map(Typed::Str),
        FieldType::Host => {
            let s = as_text(raw)?;
            let s = s.trim().to_string();
            if s.contains(char::is_whitespace) || s.contains('/') {
                return Err("not a host name or address".into());
            }
            Ok(Typed::Str(s))
        }
        FieldType::Port => parse_uint(raw, 1, 65535, "a port 1-65535").map(Typed::Int),
        FieldType::SecretUrl(schemes) if schemes.iter().any(|s| s.starts_with("mongodb")) => {
            parse_mongo_uri(&as_text(raw)?, schemes).map(Typed::Str)
        }
        FieldType::SecretUrl(schemes) | FieldType::Url(schemes) => {
            let s = as_text(raw)?;
            let u = url::Url::parse(s.trim()).map_err(|e| format!("malformed URL: {e}"))?;
            if !schemes.contains(&u.scheme()) {
                return Err(format!(
                    "malformed URL: scheme `{}` is not one of {}",
                    u.scheme(),
                    schemes.join(", ")
                ));
            }
            if u.host_str().is_none_or(str::is_empty) {
                return Err("malformed URL: no host".into());
            }
            if matches!(ty, FieldType::Url(_))
                && (u.password().is_some() || !u.username().is_empty())
            {
                return Err("credentials do not belong in this URL: use the username/password or token keys".into());
            }
            Ok(Typed::Str(s.trim().to_string()))
        }
        FieldType::Duration => parse_duration(raw).map(Typed::Dur),
        FieldType::UInt { min, max } => {
            parse_uint(raw, min, max, &format!("an integer {min}-{max}")).map(Typed::Int)
        }
        FieldType::Enum(values) => {
            let s = as_text(raw)?;
            let v = s.trim().to_ascii_lowercase();
            if values.contains(&v.as_str()) {
                Ok(Typed::Str(v))
            } else {
                let hint = schema::closest(&v, values.iter().copied())
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                Err(format!(
                    "unknown value `{s}`: expected one of {}{hint}",
                    values.join(", ")
                ))
            }
        }
        FieldType::Bool => parse_bool(raw).map(Typed::Bool),
        FieldType::File => {
            let s = as_text(raw)?;
            if s.trim().is_empty() {
                return Ok(Typed::Absent);
            }
            let path = PathBuf::from(s.trim());
            if path.is_file() {
                Ok(Typed::Str(s.trim().to_string()))
            } else {
                Err(format!("file not found: {}", path.display()))
            }
        }
        FieldType::HostPortList => {
            let items: Vec<String> = match raw {
                RawValue::List(items) => items.iter().map(as_text).collect::<Result<_, _>>()?,
                RawValue::Str(s) if s.trim().is_empty() => Vec::new(),
                RawValue::Str(s) => s.split(',').map(|x| x.trim().to_string()).collect(),
                other => {
                    return Err(format!(
                        "expected a list of host:port, found a {}",
                        other.type_name()
                    ));
                }
            };
            items
                .iter()
                .map(|i| parse_host_port(i))
                .collect::<Result<Vec<_>, _>>()
                .map(Typed::List)
        }
        FieldType::ListenAddr => {
            let s = as_text(raw)?;
            s.trim()
                .parse::<SocketAddr>()
                .map(|_| Typed::Str(s.trim().to_string()))
                .map_err(|_| "not an ip:port address (e.g. 127.0.0.1:8080)".into())
        }
    }
}

// Typed accessors: after `read`, a value has the type its schema promises, so these cannot miss
// except for `Absent` (no value, no default).
fn text(t: &Typed) -> String {
    match t {
        Typed::Str(s) => s.clone(),
        _ => String::new(),
    }
}
fn opt_text(t: &Typed) -> Option<String> {
    match t {
        Typed::Str(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}
fn int(t: &Typed) -> u64 {
    match t {
        Typed::Int(n) => *n,
        _ => 0,
    }
}
fn dur(t: &Typed) -> Duration {
    match t {
        Typed::Dur(d) => *d,
        _ => Duration::from_secs(1),
    }
}
fn list(t: &Typed) -> Vec<String> {
    match t {
        Typed::List(l) => l.clone(),
        _ => Vec::new(),
    }
}
fn flag(t: &Typed) -> bool {
    matches!(t, Typed::Bool(true))
}
fn usize_of(t: &Typed) -> usize {
    usize::try_from(int(t)).unwrap_or(usize::MAX)
}
fn u32_of(t: &Typed) -> u32 {
    u32::try_from(int(t)).unwrap_or(u32::MAX)
}

/// The values of one instance (or fixed section), read through the schema.
struct Section {
    prefix: String,
    values: BTreeMap<&'static str, Typed>,
}

impl Section {
    fn get(&self, key: &str) -> &Typed {
        self.values.get(key).unwrap_or(&Typed::Absent)
    }
    fn key(&self, field: &str) -> String {
        format!("{}.{field}", self.prefix)
    }
}

fn read_section(
    b: &mut Builder,
    prefix: &str,
    fields: &'static [Field],
    instance: &str,
) -> Section {
    let mut values = BTreeMap::new();
    for field in fields {
        let key = format!("{prefix}.{}", field.key);
        values.insert(field.key, b.read(&key, field, instance));
    }
    Section {
        prefix: prefix.to_string(),
        values,
    }
}

fn tls(s: &Section) -> TlsSettings {
    TlsSettings {
        mode: TlsMode::parse(&text(s.get("tls.mode"))).unwrap_or(TlsMode::Disabled),
        ca: opt_text(s.get("tls.ca")).map(PathBuf::from),
        cert: opt_text(s.get("tls.cert")).map(PathBuf::from),
        key: opt_text(s.get("tls.key")).map(PathBuf::from),
    }
}

fn secret(t: &Typed) -> SecretString {
    SecretString::from(text(t))
}

fn check_pool(b: &mut Builder, s: &Section) {
    let (kmin, kmax) = (s.key("pool.min"), s.key("pool.max"));
    if !b.bad.contains(&kmin)
        && !b.bad.contains(&kmax)
        && int(s.get("pool.min")) > int(s.get("pool.max"))
    {
        let msg = format!(
            "pool.min ({}) is greater than pool.max ({})",
            int(s.get("pool.min")),
            int(s.get("pool.max"))
        );
        let at = if b.is_set(&kmin) { kmin } else { kmax };
        b.problem(&at, msg);
    }
}

fn check_host(b: &mut Builder, s: &Section, required: bool, url_key: &str) {
    let host_key = s.key("host");
    if required
        && opt_text(s.get(url_key)).is_none()
        && text(s.get("host")).is_empty()
        && !b.bad.contains(&host_key)
    {
        b.problem(&host_key, "empty host for a required store");
    }
}

fn check_tls(b: &mut Builder, s: &Section) {
    let tls = tls(s);
    if tls.cert.is_some() != tls.key.is_some() && s.values.contains_key("tls.key") {
        let at = if tls.cert.is_some() {
            s.key("tls.key")
        } else {
            s.key("tls.cert")
        };
        b.problem(&at, "tls.cert and tls.key must be set together");
    }
    if tls.mode == TlsMode::Disabled && (tls.ca.is_some() || tls.cert.is_some()) {
        b.problem(
            &s.key("tls.mode"),
            "TLS files are set but tls.mode is disabled",
        );
    }
}

fn instance_names(b: &Builder, kind: Kind) -> Vec<String> {
    let mut names: Vec<String> = kind
        .builtin_instances()
        .iter()
        .map(|s| s.to_string())
        .collect();
    for key in b.entries.keys() {
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

fn required(b: &mut Builder, kind: Kind, instance: &str) -> bool {
    let key = format!("stores.{}.{instance}.required", kind.name());
    let default = kind.required_by_default(instance);
    match b.entries.get(&key).cloned() {
        Some(e) => match parse(&e.value, FieldType::Bool) {
            Ok(Typed::Bool(v)) => {
                b.shown.push(ShownValue {
                    key,
                    display: v.to_string(),
                    json: v.into(),
                    origin: e.origin,
                });
                v
            }
            Ok(_) => default,
            Err(msg) => {
                b.problem(&key, msg);
                default
            }
        },
        None => {
            b.shown.push(ShownValue {
                key,
                display: default.to_string(),
                json: default.into(),
                origin: Origin::Default,
            });
            default
        }
    }
}

/// Validates merged layers into a [`Config`], or returns every problem found.
pub fn build(layers: Layers, env: String) -> Result<Config, Vec<Problem>> {
    let mut b = Builder {
        entries: layers.entries,
        problems: layers.problems,
        shown: Vec::new(),
        bad: BTreeSet::new(),
    };

    // Unknown keys first: they are the most common mistake, and they get a suggestion.
    let keys: Vec<String> = b.entries.keys().cloned().collect();
    for key in &keys {
        if let Err(unknown) = schema::resolve(key) {
            let hint = unknown
                .suggestion
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            b.problem(key, format!("unknown key{hint}"));
            b.entries.remove(key);
        }
    }
    // `influx.tags.*` and `influx.service_monitor.*` must never be taken as instances.
    let mut config_instances: BTreeMap<Kind, Vec<String>> = BTreeMap::new();
    for kind in Kind::ALL {
        let mut names = instance_names(&b, kind);
        if kind == Kind::Influx {
            names.retain(|n| !INFLUX_RESERVED.contains(&n.as_str()));
        }
        for name in &names {
            if kind.builtin_instances().contains(&name.as_str()) {
                continue;
            }
            let prefix = format!("{}.{name}", kind.name());
            let located = kind
                .locator_keys()
                .iter()
                .any(|k| b.is_set(&format!("{prefix}.{k}")));
            if !located {
                let near = schema::closest(name, kind.builtin_instances().iter().copied())
                    .map(|c| format!("; did you mean `{}.{c}`?", kind.name()))
                    .unwrap_or_default();
                let any_key = b
                    .entries
                    .keys()
                    .find(|k| {
                        k.starts_with(&format!("{prefix}."))
                            || k.starts_with(&format!("stores.{prefix}."))
                    })
                    .cloned()
                    .unwrap_or(prefix.clone());
                b.problem(
                    &any_key,
                    format!(
                        "`{prefix}` is not a built-in instance; a new instance must set {}{near}",
                        kind.locator_keys().join(" or ")
                    ),
                );
            }
        }
        config_instances.insert(kind, names);
    }

    let mut mysql = BTreeMap::new();
    for name in config_instances
        .get(&Kind::Mysql)
        .cloned()
        .unwrap_or_default()
    {
        let req = required(&mut b, Kind::Mysql, &name);
        let s = read_section(
            &mut b,
            &format!("mysql.{name}"),
            Kind::Mysql.fields(),
            &name,
        );
        check_pool(&mut b, &s);
        check_host(&mut b, &s, req, "url");
        check_tls(&mut b, &s);
        mysql.insert(
            name.clone(),
            MysqlSettings {
                name: name.clone(),
                required: req,
                url: opt_text(s.get("url")).map(SecretString::from),
                host: text(s.get("host")),
                port: u16::try_from(int(s.get("port"))).unwrap_or(3306),
                user: text(s.get("user")),
                password: secret(s.get("password")),
                database: text(s.get("database")),
                charset: text(s.get("charset")),
                pool: PoolSettings {
                    min: u32_of(s.get("pool.min")),
                    max: u32_of(s.get("pool.max")),
                    acquire_timeout: dur(s.get("pool.acquire_timeout")),
                    idle_timeout: dur(s.get("pool.idle_timeout")),
                    max_lifetime: dur(s.get("pool.max_lifetime")),
                },
                tls: tls(&s),
            },
        );
    }

    let mut redis = BTreeMap::new();
    for name in config_instances
        .get(&Kind::Redis)
        .cloned()
        .unwrap_or_default()
    {
        let req = required(&mut b, Kind::Redis, &name);
        let s = read_section(
            &mut b,
            &format!("redis.{name}"),
            Kind::Redis.fields(),
            &name,
        );
        check_host(&mut b, &s, req, "url");
        check_tls(&mut b, &s);
        let cluster_nodes = list(s.get("cluster_nodes"));
        if !cluster_nodes.is_empty() && int(s.get("db")) != 0 {
            b.problem(&s.key("db"), "Redis Cluster has only database 0");
        }
        redis.insert(
            name.clone(),
            RedisSettings {
                name: name.clone(),
                required: req,
                url: opt_text(s.get("url")).map(SecretString::from),
                host: text(s.get("host")),
                port: u16::try_from(int(s.get("port"))).unwrap_or(6379),
                username: text(s.get("username")),
                password: secret(s.get("password")),
                db: u32_of(s.get("db")),
                key_prefix: text(s.get("key_prefix")),
                connect_timeout: dur(s.get("connect_timeout")),
                command_timeout: dur(s.get("command_timeout")),
                max_retries: u32_of(s.get("max_retries")),
                tls: tls(&s),
                cluster_nodes,
            },
        );
    }

    let mut mongo = BTreeMap::new();
    for name in config_instances
        .get(&Kind::Mongo)
        .cloned()
        .unwrap_or_default()
    {
        let req = required(&mut b, Kind::Mongo, &name);
        let s = read_section(
            &mut b,
            &format!("mongo.{name}"),
            Kind::Mongo.fields(),
            &name,
        );
        check_pool(&mut b, &s);
        check_host(&mut b, &s, req, "uri");
        check_tls(&mut b, &s);
        if !text(s.get("username")).is_empty()
            && text(s.get("password")).is_empty()
            && opt_text(s.get("uri")).is_none()
        {
            b.problem(&s.key("password"), "username is set but password is empty");
        }
        mongo.insert(
            name.clone(),
            MongoSettings {
                name: name.clone(),
                required: req,
                uri: opt_text(s.get("uri")).map(SecretString::from),
                host: text(s.get("host")),
                port: u16::try_from(int(s.get("port"))).unwrap_or(27017),
                username: text(s.get("username")),
                password: secret(s.get("password")),
                database: text(s.get("database")),
                auth_source: text(s.get("auth_source")),
                replica_set: text(s.get("replica_set")),
                pool: MongoPoolSettings {
                    min: u32_of(s.get("pool.min")),
                    max: u32_of(s.get("pool.max")),
                    max_idle: dur(s.get("pool.max_idle")),
                },
                server_selection_timeout: dur(s.get("server_selection_timeout")),
                connect_timeout: dur(s.get("connect_timeout")),
                socket_timeout: dur(s.get("socket_timeout")),
                tls: tls(&s),
            },
        );
    }

    let mut influx = BTreeMap::new();
    for name in config_instances
        .get(&Kind::Influx)
        .cloned()
        .unwrap_or_default()
    {
        let req = required(&mut b, Kind::Influx, &name);
        let prefix = format!("influx.{name}");
        let s = read_section(&mut b, &prefix, Kind::Influx.fields(), &name);
        let token = text(s.get("token"));
        let api = match s.get("api") {
            Typed::Str(a) if a == "v2" => InfluxApi::V2,
            Typed::Str(_) => InfluxApi::V1,
            // Not set: a token means the deployment speaks v2 (the original service's INFLUXDB_TOKEN).
            _ => {
                let inferred = if token.is_empty() { "v1" } else { "v2" };
                b.shown.push(ShownValue {
                    key: s.key("api"),
                    display: format!("{inferred:?}"),
                    json: inferred.into(),
                    origin: Origin::Default,
                });
                if token.is_empty() {
                    InfluxApi::V1
                } else {
                    InfluxApi::V2
                }
            }
        };
        if api == InfluxApi::V2 && !b.bad.contains(&s.key("api")) {
            let missing: Vec<&str> = [
                ("token", &token),
                ("org", &text(s.get("org"))),
                ("bucket", &text(s.get("bucket"))),
            ]
            .into_iter()
            .filter(|(_, v)| v.is_empty())
            .map(|(k, _)| k)
            .collect();
            if !missing.is_empty() {
                b.problem(
                    &s.key("api"),
                    format!(
                        "the v2 API needs {} (missing: {})",
                        "token, org and bucket",
                        missing.join(", ")
                    ),
                );
            }
        }
        if api == InfluxApi::V1
            && text(s.get("database")).is_empty()
            && text(s.get("bucket")).is_empty()
        {
            b.problem(
                &s.key("database"),
                "the v1 API needs a database (or bucket)",
            );
        }
        let batch = BatchSettings {
            max_points: usize::try_from(int(s.get("batch.max_points"))).unwrap_or(5000),
            flush_interval: dur(s.get("batch.flush_interval")),
            max_retries: u32_of(s.get("batch.max_retries")),
            retry_interval: dur(s.get("batch.retry_interval")),
            max_retry_delay: dur(s.get("batch.max_retry_delay")),
            max_buffer_points: usize::try_from(int(s.get("batch.max_buffer_points")))
                .unwrap_or(200_000),
            jitter: dur(s.get("batch.jitter")),
        };
        if batch.max_points > batch.max_buffer_points {
            b.problem(
                &s.key("batch.max_points"),
                format!(
                    "batch.max_points ({}) is larger than batch.max_buffer_points ({})",
                    batch.max_points, batch.max_buffer_points
                ),
            );
        }
        if req && text(s.get("url")).is_empty() {
            b.problem(&s.key("url"), "empty url for a required store");
        }
        influx.insert(
            name.clone(),
            InfluxSettings {
                name: name.clone(),
                required: req,
                url: text(s.get("url")),
                api,
                token: SecretString::from(token),
                org: text(s.get("org")),
                bucket: text(s.get("bucket")),
                database: text(s.get("database")),
                retention_policy: text(s.get("retention_policy")),
                username: text(s.get("username")),
                password: secret(s.get("password")),
                timeout: dur(s.get("timeout")),
                batch,
            },
        );
    }

    let sm = read_section(
        &mut b,
        "influx.service_monitor",
        schema::SERVICE_MONITOR_FIELDS,
        "",
    );
    let service_monitor = ServiceMonitorSettings {
        instance: text(sm.get("instance")),
        bucket: text(sm.get("bucket")),
        measurement: text(sm.get("measurement")),
        timeout: dur(sm.get("timeout")),
    };
    if !influx.contains_key(&service_monitor.instance) {
        b.problem(
            &sm.key("instance"),
            format!("no influx instance named `{}`", service_monitor.instance),
        );
    }
    if service_monitor.measurement.is_empty() {
        b.problem(&sm.key("measurement"), "must not be empty");
    }
    let tags = read_section(&mut b, "influx.tags", schema::INFLUX_TAG_FIELDS, "");
    let influx_tags = InfluxTags {
        datacenter: text(tags.get("datacenter")),
        project: text(tags.get("project")),
        stage: text(tags.get("stage")),
    };
    let health = read_section(&mut b, "health", schema::HEALTH_FIELDS, "");
    let server = read_section(&mut b, "server", schema::SERVER_FIELDS, "");
    let listen = text(server.get("listen"))
        .parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let threads = usize_of(server.get("threads"));

    let q = read_section(&mut b, "queue", schema::QUEUE_FIELDS, "");
    let queue = QueueSettings {
        redis: text(q.get("redis")),
        lease: dur(q.get("lease")),
        fetch_batch: usize_of(q.get("fetch_batch")),
        concurrency: usize_of(q.get("concurrency")),
        max_attempts: u32_of(q.get("max_attempts")),
        backoff: dur(q.get("backoff")),
        timeout: dur(q.get("timeout")),
        keep_completed: int(q.get("keep_completed")),
        keep_completed_age: dur(q.get("keep_completed_age")),
        keep_dead: int(q.get("keep_dead")),
        keep_dead_age: dur(q.get("keep_dead_age")),
        shutdown_grace: dur(q.get("shutdown_grace")),
        records_mongo: flag(q.get("records.mongo")),
        records_influx: flag(q.get("records.influx")),
        records_batch: usize_of(q.get("records.batch")),
        records_buffer: usize_of(q.get("records.buffer")),
    };
    if !redis.contains_key(&queue.redis) {
        b.problem(
            &q.key("redis"),
            format!("no redis instance named `{}`", queue.redis),
        );
    }
    if queue.lease < Duration::from_secs(1) {
        b.problem(
            &q.key("lease"),
            "at least 1s: heartbeats run every third of it",
        );
    }

    let t = read_section(&mut b, "trips", schema::TRIP_FIELDS, "");
    let points_per_km = schema::TRIP_FIELDS
        .iter()
        .filter_map(|f| f.key.strip_prefix("points_per_km."))
        .map(|mode| {
            (
                mode.to_string(),
                u32_of(t.get(&format!("points_per_km.{mode}"))),
            )
        })
        .collect();
    let trips = TripSettings {
        queue: text(t.get("queue")),
        points_per_km,
        active_window: dur(t.get("active_window")),
        fault_mode: match text(t.get("fault.mode")).as_str() {
            "error" => FaultMode::Error,
            "abort" => FaultMode::Abort,
            _ => FaultMode::Off,
        },
        fault_rate: u32_of(t.get("fault.rate")),
        fault_step: Some(text(t.get("fault.step"))).filter(|s| s != "any"),
    };
    if !queue_name_ok(&trips.queue) {
        b.problem(
            &t.key("queue"),
            "1-64 characters: letters, digits, `.`, `_`, `-`",
        );
    }
    let c = read_section(&mut b, "cache", schema::CACHE_FIELDS, "");
    let cache = CacheSettings {
        redis: text(c.get("redis")),
        l1_capacity: usize_of(c.get("l1_capacity")),
        l1_ttl: dur(c.get("l1_ttl")),
        l2_ttl: dur(c.get("l2_ttl")),
        ack_timeout: dur(c.get("ack_timeout")),
    };
    if !redis.contains_key(&cache.redis) {
        b.problem(
            &c.key("redis"),
            format!("no redis instance named `{}`", cache.redis),
        );
    }

    if !b.problems.is_empty() {
        return Err(b.problems);
    }
    let mut shown = b.shown;
    shown.sort_by(|x, y| x.key.cmp(&y.key));
    Ok(Config {
        env,
        mysql,
        redis,
        mongo,
        influx,
        service_monitor,
        influx_tags,
        health: HealthSettings {
            timeout: dur(health.get("timeout")),
            interval: dur(health.get("interval")),
        },
        server: ServerSettings { listen, threads },
        queue,
        trips,
        cache,
        shown,
        files: layers.files,
        warnings: Vec::new(),
    })
}

/// The queue's rule for names (`tsp_queue::valid_queue_name`), here too so a bad `trips.queue`
/// fails at load; the config crate sits below the queue crate.
fn queue_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s: &str| parse_duration(&RawValue::Str(s.into()));
        assert_eq!(d("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(d("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(d("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(d("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(d("2000"), Ok(Duration::from_secs(2)));
        assert_eq!(
            parse_duration(&RawValue::Int(250)),
            Ok(Duration::from_millis(250))
        );
        assert!(d("0s").is_err());
        assert!(d("-5s").is_err());
        assert!(d("5 parsecs").is_err());
        assert!(d("abc").is_err());
    }

    #[test]
    fn host_port_lists() {
        let ok = parse(
            &RawValue::Str("a:7000, b:7001".into()),
            FieldType::HostPortList,
        );
        assert!(matches!(ok, Ok(Typed::List(l)) if l == vec!["a:7000", "b:7001"]));
        assert!(parse(&RawValue::Str("a:70000".into()), FieldType::HostPortList).is_err());
        assert!(parse(&RawValue::Str("nohost".into()), FieldType::HostPortList).is_err());
    }
}
