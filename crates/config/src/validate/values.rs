//! One section's validated values, on their way into a typed settings struct.
//!
//! Sections are deserialized (serde) from their values, so the struct and the schema must agree
//! key for key: a schema key the struct lacks is refused (`deny_unknown_fields`), and a struct
//! field the schema does not give is a missing field. Either mismatch fails every load, naming
//! the key, so it cannot survive a test run; nothing falls back to a default. Adding a key
//! touches the schema and the struct, nothing else (see docs/contributing.md).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::schema::Field;

/// The values of one section (`mysql.portal`, `queue`, …), nested by the dots in their keys.
pub(super) struct Values {
    pub(super) prefix: String,
    fields: &'static [Field],
    map: Map<String, Value>,
    /// Keys the code asked for that the schema does not declare.
    misses: Vec<String>,
}

impl Values {
    pub(super) fn new(prefix: &str, fields: &'static [Field]) -> Values {
        Values {
            prefix: prefix.to_string(),
            fields,
            map: Map::new(),
            misses: Vec::new(),
        }
    }

    /// The full key of `field` in this section (`mysql.portal.pool.max`).
    pub(super) fn key(&self, field: &str) -> String {
        format!("{}.{field}", self.prefix)
    }

    /// Sets `key` (dotted, relative to the section) to `value`.
    pub(super) fn set(&mut self, key: &str, value: Value) {
        let mut parts = key.split('.').peekable();
        let mut map = &mut self.map;
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                map.insert(part.to_string(), value);
                return;
            }
            let entry = map
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            let Value::Object(inner) = entry else { return };
            map = inner;
        }
    }

    /// The value of a schema key; a key the schema does not declare is recorded and fails the
    /// load (see [`Values::into_typed`]) instead of reading as absent.
    pub(super) fn get(&mut self, key: &str) -> &Value {
        if !self.fields.iter().any(|f| f.key == key) {
            self.misses.push(self.key(key));
            return &Value::Null;
        }
        let mut cur: Option<&Value> = None;
        for part in key.split('.') {
            cur = match cur {
                None => self.map.get(part),
                Some(v) => v.get(part),
            };
        }
        cur.unwrap_or(&Value::Null)
    }

    /// A schema key's value as text ("" when absent).
    pub(super) fn text(&mut self, key: &str) -> String {
        self.get(key).as_str().unwrap_or_default().to_string()
    }

    /// Deserializes the section into `T`. `Err` names the section and says what did not match:
    /// a key the code reads that the schema lacks, or a struct that disagrees with the schema.
    pub(super) fn into_typed<T: DeserializeOwned>(self) -> Result<T, String> {
        if !self.misses.is_empty() {
            return Err(format!(
                "the code reads {}, which the schema does not declare",
                self.misses.join(", ")
            ));
        }
        serde_json::from_value(Value::Object(self.map))
            .map_err(|e| format!("`{}` does not match its settings type: {e}", self.prefix))
    }
}
