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

/// Renders a URL with its password (if any) masked. A URL that does not parse is masked whole,
/// since we cannot tell which part is the secret.
pub fn mask_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() && u.set_password(Some(MASK)).is_err() {
                return MASK.to_string();
            }
            // Query parameters may carry credentials too (e.g. `?password=` or `authSource` pairs).
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    if lower.contains("pass") || lower.contains("token") || lower.contains("secret")
                    {
                        (k.into_owned(), MASK.to_string())
                    } else {
                        (k.into_owned(), v.into_owned())
                    }
                })
                .collect();
            if !pairs.is_empty() {
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => MASK.to_string(),
    }
}
