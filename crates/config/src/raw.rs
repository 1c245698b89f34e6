//! Untyped values as the sources deliver them, before the schema gives them a type.

use std::fmt;

/// A value from a TOML file, an environment variable or `--set`. Environment and command-line
/// values are always `Str`; the schema parses them into the key's type.
#[derive(Clone, PartialEq)]
pub enum RawValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    List(Vec<RawValue>),
}

impl RawValue {
    /// The value as it would be written in TOML, for `config show` and error messages.
    pub fn render(&self) -> String {
        match self {
            RawValue::Str(s) => format!("{s:?}"),
            RawValue::Int(i) => i.to_string(),
            RawValue::Float(x) => x.to_string(),
            RawValue::Bool(b) => b.to_string(),
            RawValue::List(items) => {
                let parts: Vec<String> = items.iter().map(RawValue::render).collect();
                format!("[{}]", parts.join(", "))
            }
        }
    }

    /// A JSON rendering for `config show --json`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            RawValue::Str(s) => serde_json::Value::String(s.clone()),
            RawValue::Int(i) => serde_json::Value::from(*i),
            RawValue::Float(x) => serde_json::Value::from(*x),
            RawValue::Bool(b) => serde_json::Value::Bool(*b),
            RawValue::List(items) => {
                serde_json::Value::Array(items.iter().map(RawValue::to_json).collect())
            }
        }
    }

    /// A short name of the value's type, for "expected a port, found a list" messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            RawValue::Str(_) => "string",
            RawValue::Int(_) => "integer",
            RawValue::Float(_) => "float",
            RawValue::Bool(_) => "boolean",
            RawValue::List(_) => "list",
        }
    }
}

// Debug never prints the content: a RawValue may hold a secret, and Debug output ends up in logs.
impl fmt::Debug for RawValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawValue({})", self.type_name())
    }
}

/// The text shown in place of a secret.
pub const MASK: &str = "****";

/// Renders a URL with its password (if any) masked. Works on URLs the `url` crate cannot parse
/// (MongoDB's multi-host form); a value that does not look like a URL at all is masked whole,
/// since we cannot tell which part is the secret.
pub fn mask_url(raw: &str) -> String {
    let Some(scheme_end) = raw.find("://") else {
        return MASK.to_string();
    };
    let rest = &raw[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let mut out = match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            let masked = if userinfo.contains(':') {
                format!("{user}:{MASK}")
            } else {
                user.to_string()
            };
            format!("{}{masked}{}", &raw[..scheme_end + 3], &rest[at..])
        }
        None => raw.to_string(),
    };
    // Query parameters may carry credentials too (`?password=…`, `?token=…`).
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let masked: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _))
                    if ["pass", "token", "secret"]
                        .iter()
                        .any(|s| k.to_ascii_lowercase().contains(s)) =>
                {
                    format!("{k}={MASK}")
                }
                _ => pair.to_string(),
            })
            .collect();
        out = format!("{head}{}", masked.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords_in_every_url_shape() {
        assert_eq!(mask_url("mysql://u:p@h:1/db"), "mysql://u:****@h:1/db");
        assert_eq!(
            mask_url("mongodb://u:p@a:1,b:2/?replicaSet=rs&authSource=admin"),
            "mongodb://u:****@a:1,b:2/?replicaSet=rs&authSource=admin"
        );
        assert_eq!(mask_url("redis://:p@h/0"), "redis://:****@h/0");
        assert_eq!(
            mask_url("http://h/?token=abc&x=1"),
            "http://h/?token=****&x=1"
        );
        assert_eq!(mask_url("redis://h:6379"), "redis://h:6379");
        assert_eq!(mask_url("not a url secret"), MASK);
    }
}
