//! The sources of configuration, read into flat `key → (value, origin)` layers.
//!
//! Lowest precedence first: built-in defaults (applied later, from the schema) < `default.toml` <
//! `{TSP_ENV}.toml` < `local.toml` < environment (historical names, then `TSP__…`, which wins) <
//! `--set key=value`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml_edit::{ImDocument, Item, Table, Value};

use crate::error::Problem;
use crate::origin::Origin;
use crate::raw::RawValue;
use crate::schema::{self, ENV_PREFIX};

/// One set value and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub value: RawValue,
    pub origin: Origin,
}

/// The merged, not yet validated, values: later layers replace earlier ones key by key.
#[derive(Debug, Default)]
pub(crate) struct Layers {
    pub entries: BTreeMap<String, Entry>,
    pub problems: Vec<Problem>,
    /// Files that were read, in order, for `config show`.
    pub files: Vec<PathBuf>,
}

impl Layers {
    fn set(&mut self, key: String, value: RawValue, origin: Origin) {
        self.entries.insert(key, Entry { value, origin });
    }

    /// Reads one TOML file if it exists.
    pub(crate) fn add_file(&mut self, path: &Path) {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                self.problems.push(Problem {
                    key: path.display().to_string(),
                    value: None,
                    origin: None,
                    message: format!("cannot read configuration file: {e}"),
                });
                return;
            }
        };
        self.files.push(path.to_path_buf());
        let lines = LineIndex::new(&text);
        match ImDocument::parse(text.as_str()) {
            Ok(doc) => {
                let mut out = Vec::new();
                flatten_table(
                    doc.as_table(),
                    "",
                    path,
                    &lines,
                    &mut out,
                    &mut self.problems,
                );
                let base = path.parent().unwrap_or(Path::new("."));
                for (key, value, origin) in out {
                    if let Some((key, value, origin)) = self.file_value(base, key, value, origin) {
                        self.set(key, value, origin);
                    }
                }
            }
            Err(e) => {
                // The message only, never the parser's snippet of the line: it may hold a secret.
                let line = e.span().map(|s| lines.line_of(s.start)).unwrap_or(1);
                self.problems.push(Problem {
                    key: path.display().to_string(),
                    value: None,
                    origin: Some(Origin::File {
                        path: path.to_path_buf(),
                        line,
                    }),
                    message: format!("TOML syntax error: {}", e.message().trim()),
                });
            }
        }
    }

    /// Reads the environment: historical names first, then `TSP__…`, so the generic form wins
    /// when both name the same key. `…_FILE` variants read secrets from files.
    pub(crate) fn add_env(&mut self, env: &[(String, String)]) {
        let historical: BTreeMap<String, String> = schema::historical_env().into_iter().collect();
        let vars: BTreeMap<&str, &str> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut historical_sets = Vec::new();
        let mut generic_sets = Vec::new();
        for (&var, &value) in &vars {
            let (base, from_file) = match var.strip_suffix("_FILE") {
                Some(base) => (base, true),
                None => (var, false),
            };
            let Some(key) = env_key(base, &historical) else {
                continue;
            };
            let set = if from_file {
                self.secret_file(var, value, &key, vars.contains_key(base))
            } else {
                let origin = Origin::Env {
                    var: var.to_string(),
                };
                Some((RawValue::Str(value.to_string()), origin))
            };
            let Some((raw, origin)) = set else {
                continue;
            };
            let target = if historical.contains_key(base) {
                &mut historical_sets
            } else {
                &mut generic_sets
            };
            target.push((key, raw, origin));
        }
        for (key, value, origin) in historical_sets.into_iter().chain(generic_sets) {
            self.set(key, value, origin);
        }
    }

    /// The secret that `var` (a `…_FILE` variable) names the file of, or `None` after
    /// recording why it cannot be used: the plain form is set too, the key is no secret, or
    /// the file cannot be read.
    fn secret_file(
        &mut self,
        var: &str,
        path: &str,
        key: &str,
        plain_set: bool,
    ) -> Option<(RawValue, Origin)> {
        let base = var.strip_suffix("_FILE").unwrap_or(var);
        let problem = |value: Option<String>, message: String| Problem {
            key: key.to_string(),
            value,
            origin: Some(Origin::Env {
                var: var.to_string(),
            }),
            message,
        };
        let secret = matches!(
            schema::resolve(key),
            Ok(schema::Resolved::Instance { field, .. }) if field.ty.is_secret()
        );
        if plain_set {
            let message = format!("both {base} and {var} are set; set only one");
            self.problems.push(problem(None, message));
            return None;
        }
        if !secret {
            let message =
                format!("{var}: the _FILE form is only accepted for passwords, tokens and URLs");
            self.problems.push(problem(None, message));
            return None;
        }
        let path = PathBuf::from(path);
        match std::fs::read_to_string(&path) {
            Ok(content) => {
                // Secret files conventionally end with a newline that is not part of the secret.
                let secret = content.trim_end_matches(['\n', '\r']).to_string();
                let origin = Origin::EnvFile {
                    var: var.to_string(),
                    path,
                };
                Some((RawValue::Str(secret), origin))
            }
            Err(e) => {
                let value = Some(path.display().to_string());
                let message = format!("cannot read the secret file: {e}");
                self.problems.push(problem(value, message));
                None
            }
        }
    }

    /// One value read from a TOML file in `base` (its folder): a relative path of a file key
    /// (`tls.ca`, …) is taken from that folder, and `<secret>_file = "path"` reads the secret
    /// from that file (relative to the folder too), so a configuration can name secret files
    /// the way `…_FILE` variables do (docs/configuration.md).
    fn file_value(
        &mut self,
        base: &Path,
        key: String,
        value: RawValue,
        origin: Origin,
    ) -> Option<(String, RawValue, Origin)> {
        let relative = |v: &str| {
            let p = Path::new(v);
            if p.is_absolute() || v.trim().is_empty() {
                PathBuf::from(v)
            } else {
                base.join(p)
            }
        };
        let field_of = |k: &str| match schema::resolve(k) {
            Ok(schema::Resolved::Instance { field, .. } | schema::Resolved::Fixed { field }) => {
                Some(field)
            }
            _ => None,
        };
        if let Some(field) = field_of(&key)
            && field.ty == schema::FieldType::File
            && let RawValue::Str(v) = &value
        {
            let joined = relative(v).display().to_string();
            return Some((key, RawValue::Str(joined), origin));
        }
        let Some(secret_key) = key.strip_suffix("_file") else {
            return Some((key, value, origin));
        };
        if !field_of(secret_key).is_some_and(|f| f.ty.is_secret()) {
            return Some((key, value, origin));
        }
        let problem = |value: Option<String>, message: String| Problem {
            key: key.clone(),
            value,
            origin: Some(origin.clone()),
            message,
        };
        let RawValue::Str(v) = &value else {
            self.problems
                .push(problem(None, "expected the path of a secret file".into()));
            return None;
        };
        let path = relative(v);
        match std::fs::read_to_string(&path) {
            Ok(content) => {
                let secret = content.trim_end_matches(['\n', '\r']).to_string();
                let Origin::File { path: config, line } = origin.clone() else {
                    return None;
                };
                let origin = Origin::SecretFile { path, config, line };
                Some((secret_key.to_string(), RawValue::Str(secret), origin))
            }
            Err(e) => {
                let shown = Some(path.display().to_string());
                let message = format!("cannot read the secret file: {e}");
                self.problems.push(problem(shown, message));
                None
            }
        }
    }

    /// Applies `--set key=value` arguments, in order.
    pub(crate) fn add_overrides(&mut self, sets: &[String]) {
        for (n, arg) in sets.iter().enumerate() {
            let origin = Origin::Cli { arg: n + 1 };
            match arg.split_once('=') {
                Some((key, value)) if !key.trim().is_empty() => {
                    self.set(
                        key.trim().to_string(),
                        RawValue::Str(value.to_string()),
                        origin,
                    );
                }
                _ => {
                    // Only the part before '=' is shown: the value may be a secret.
                    let shown = arg.split('=').next().unwrap_or_default();
                    self.problems.push(Problem {
                        key: shown.to_string(),
                        value: None,
                        origin: Some(origin),
                        message: "--set expects key=value".into(),
                    });
                }
            }
        }
    }
}

/// Byte offset → 1-based line number.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    fn line_of(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

type Flat = Vec<(String, RawValue, Origin)>;

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn flatten_table(
    table: &Table,
    prefix: &str,
    path: &Path,
    lines: &LineIndex,
    out: &mut Flat,
    problems: &mut Vec<Problem>,
) {
    for (key, item) in table.iter() {
        let full = join(prefix, key);
        let origin = |span: Option<std::ops::Range<usize>>| Origin::File {
            path: path.to_path_buf(),
            line: span.map(|s| lines.line_of(s.start)).unwrap_or(1),
        };
        match item {
            Item::None => {}
            Item::Table(t) => flatten_table(t, &full, path, lines, out, problems),
            Item::Value(v) => flatten_value(v, &full, path, lines, out, problems),
            Item::ArrayOfTables(a) => problems.push(Problem {
                key: full,
                value: None,
                origin: Some(origin(a.span())),
                message: "arrays of tables ([[…]]) are not used by this configuration".into(),
            }),
        }
    }
}

fn flatten_value(
    value: &Value,
    key: &str,
    path: &Path,
    lines: &LineIndex,
    out: &mut Flat,
    problems: &mut Vec<Problem>,
) {
    let origin = Origin::File {
        path: path.to_path_buf(),
        line: value.span().map(|s| lines.line_of(s.start)).unwrap_or(1),
    };
    let raw = match value {
        Value::InlineTable(t) => {
            for (k, v) in t.iter() {
                flatten_value(v, &join(key, k), path, lines, out, problems);
            }
            return;
        }
        Value::Array(items) => {
            let mut list = Vec::new();
            for item in items.iter() {
                match scalar(item) {
                    Some(v) => list.push(v),
                    None => {
                        problems.push(Problem {
                            key: key.to_string(),
                            value: None,
                            origin: Some(origin.clone()),
                            message: "lists may only hold plain values".into(),
                        });
                        return;
                    }
                }
            }
            RawValue::List(list)
        }
        other => match scalar(other) {
            Some(v) => v,
            None => return,
        },
    };
    out.push((key.to_string(), raw, origin));
}

fn scalar(value: &Value) -> Option<RawValue> {
    Some(match value {
        Value::String(s) => RawValue::Str(s.value().clone()),
        Value::Integer(i) => RawValue::Int(*i.value()),
        Value::Float(f) => RawValue::Float(*f.value()),
        Value::Boolean(b) => RawValue::Bool(*b.value()),
        Value::Datetime(d) => RawValue::Str(d.value().to_string()),
        Value::Array(_) | Value::InlineTable(_) => return None,
    })
}

/// The key a variable sets: a historical name's, or `TSP__A__B` as `a.b`; `None` for any other
/// variable.
fn env_key(base: &str, historical: &BTreeMap<String, String>) -> Option<String> {
    if let Some(key) = historical.get(base) {
        return Some(key.clone());
    }
    let rest = base.strip_prefix(ENV_PREFIX)?;
    Some(
        rest.split("__")
            .map(|s| s.to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join("."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_counts_from_one() {
        let idx = LineIndex::new("a\nbb\nccc");
        assert_eq!(idx.line_of(0), 1);
        assert_eq!(idx.line_of(2), 2);
        assert_eq!(idx.line_of(3), 2);
        assert_eq!(idx.line_of(5), 3);
    }
}
