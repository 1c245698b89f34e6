//! Parsing one raw value by its schema type, and rendering it for `config show` (secrets masked).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::raw::{MASK, RawValue, mask_url};
use crate::schema::{self, FieldType};

/// A parsed value of a key.
#[derive(Debug, Clone)]
pub(super) enum Typed {
    Str(String),
    Int(u64),
    Dur(Duration),
    Bool(bool),
    List(Vec<String>),
    /// No value and no default.
    Absent,
}

impl Typed {
    /// As JSON, for deserializing a section into its settings struct: a duration as serde's
    /// `{secs, nanos}`, no value as `null` (an `Option` field's `None`).
    pub(super) fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Typed::Str(s) => Value::String(s.clone()),
            Typed::Int(n) => Value::from(*n),
            Typed::Dur(d) => serde_json::json!({"secs": d.as_secs(), "nanos": d.subsec_nanos()}),
            Typed::Bool(b) => Value::Bool(*b),
            Typed::List(l) => Value::from(l.clone()),
            Typed::Absent => Value::Null,
        }
    }
}

pub(super) fn display(raw: &RawValue, ty: FieldType) -> String {
    match (ty, raw) {
        (FieldType::Secret, RawValue::Str(s)) if s.is_empty() => "\"\"".into(),
        (FieldType::Secret, _) => MASK.into(),
        (FieldType::SecretUrl(_), RawValue::Str(s)) => format!("{:?}", mask_url(s)),
        _ => raw.render(),
    }
}

pub(super) fn display_json(raw: &RawValue, ty: FieldType) -> serde_json::Value {
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
fn parse_duration(raw: &RawValue) -> Result<Duration, String> {
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
/// A URL with one of `schemes` and a host; `no_credentials`: refuse a user or password in it.
fn parse_url(s: &str, schemes: &[&str], no_credentials: bool) -> Result<String, String> {
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
    if no_credentials && (u.password().is_some() || !u.username().is_empty()) {
        return Err(
            "credentials do not belong in this URL: use the username/password or token keys".into(),
        );
    }
    Ok(s.trim().to_string())
}

pub(super) fn parse(raw: &RawValue, ty: FieldType) -> Result<Typed, String> {
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
            parse_url(&as_text(raw)?, schemes, matches!(ty, FieldType::Url(_))).map(Typed::Str)
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
                RawValue::Str(s) if s.trim_start().starts_with('[') => toml_list(s)?,
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

/// A TOML array of strings given as text (`--set 'k=["a:1","b:2"]'` or a variable): the same
/// list a TOML file would give.
fn toml_list(text: &str) -> Result<Vec<String>, String> {
    let value: toml_edit::Value = text
        .trim()
        .parse()
        .map_err(|_| "not a TOML array of strings (e.g. [\"127.0.0.1:7001\"])".to_string())?;
    let Some(items) = value.as_array() else {
        return Err("not a TOML array of strings".into());
    };
    items
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("list items must be strings, found {}", v.type_name()))
        })
        .collect()
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
        // The same list written as TOML, as `--set` and variables may give it.
        let toml = parse(
            &RawValue::Str(r#" ["a:7000", 'b:7001'] "#.into()),
            FieldType::HostPortList,
        );
        assert!(matches!(toml, Ok(Typed::List(l)) if l == vec!["a:7000", "b:7001"]));
        let refused = |text: &str| parse(&RawValue::Str(text.into()), FieldType::HostPortList);
        assert_eq!(
            refused("[7000, 7001]").err().as_deref(),
            Some("list items must be strings, found integer")
        );
        assert!(refused(r#"["a:7000""#).unwrap_err().contains("TOML array"));
        assert!(refused(r#"["a:70000"]"#).is_err());
        assert!(parse(&RawValue::Str("a:70000".into()), FieldType::HostPortList).is_err());
        assert!(parse(&RawValue::Str("nohost".into()), FieldType::HostPortList).is_err());
    }
}
