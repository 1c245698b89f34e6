//! InfluxDB line protocol: points and their exact escaping.
//!
//! `measurement,tag=value field=value timestamp`. Escaping follows the line protocol reference:
//! in measurements, `,` and space; in tag keys, tag values and field keys, `,`, `=` and space; in
//! string field values, `"` and `\`. String field values may hold newlines as they are.
//!
//! Two things the protocol cannot carry are refused with an error rather than silently altered:
//! a newline in a measurement, tag or field key, or tag value (it ends the line); and a backslash
//! at the end of such a name or directly before `,`, `=` or space (InfluxDB 1.x and 2.x read
//! that sequence differently, so no escaping round-trips on both).

use std::fmt::Write as _;

/// A field value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// A float (`1.5`).
    Float(f64),
    /// A signed integer (`15i`).
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A string, quoted and escaped on the wire.
    Str(String),
}

impl From<f64> for FieldValue {
    fn from(v: f64) -> Self {
        FieldValue::Float(v)
    }
}
impl From<i64> for FieldValue {
    fn from(v: i64) -> Self {
        FieldValue::Int(v)
    }
}
impl From<u32> for FieldValue {
    fn from(v: u32) -> Self {
        FieldValue::Int(i64::from(v))
    }
}
impl From<bool> for FieldValue {
    fn from(v: bool) -> Self {
        FieldValue::Bool(v)
    }
}
impl From<&str> for FieldValue {
    fn from(v: &str) -> Self {
        FieldValue::Str(v.to_string())
    }
}
impl From<String> for FieldValue {
    fn from(v: String) -> Self {
        FieldValue::Str(v)
    }
}

/// Why a point cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointError {
    #[error("point has an empty measurement")]
    /// The measurement name is empty.
    EmptyMeasurement,
    #[error("point `{0}` has no fields")]
    /// A point needs at least one field; the measurement is given.
    NoFields(String),
    #[error("{what} `{name}` is empty")]
    /// A tag key, tag value or field key is empty.
    Empty {
        /// `measurement`, `tag key`, `tag value` or `field key`.
        what: &'static str,
        /// The measurement or key concerned.
        name: String,
    },
    #[error("{what} of `{name}` contains a newline, which line protocol cannot carry there")]
    /// A name or value contains a newline.
    Newline {
        /// `measurement`, `tag key`, `tag value` or `field key`.
        what: &'static str,
        /// The measurement or key concerned.
        name: String,
    },
    #[error(
        "{what} of `{name}` has a backslash at its end or before `,`, `=` or space, which line protocol cannot carry unambiguously"
    )]
    /// A backslash that line protocol would read as an escape.
    AmbiguousBackslash {
        /// `measurement`, `tag key`, `tag value` or `field key`.
        what: &'static str,
        /// The measurement or key concerned.
        name: String,
    },
    #[error("field `{0}` is not a finite number")]
    /// A float field that is NaN or infinite; the field key is given.
    NonFinite(String),
}

/// One point. Tags are kept in insertion order here and sorted when written.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    measurement: String,
    tags: Vec<(String, String)>,
    fields: Vec<(String, FieldValue)>,
    time_ns: Option<i64>,
}

impl Point {
    /// A point of `measurement`, with no tags, fields or timestamp yet.
    pub fn new(measurement: impl Into<String>) -> Self {
        Point {
            measurement: measurement.into(),
            tags: Vec::new(),
            fields: Vec::new(),
            time_ns: None,
        }
    }

    /// Adds tag `key=value` (tags are indexed; keep their values few).
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push((key.into(), value.into()));
        self
    }

    /// Adds field `key=value`.
    pub fn field(mut self, key: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        self.fields.push((key.into(), value.into()));
        self
    }

    /// Nanoseconds since the Unix epoch. Without it the server stamps the point on arrival.
    pub fn timestamp_ns(mut self, ns: i64) -> Self {
        self.time_ns = Some(ns);
        self
    }

    /// The measurement name.
    pub fn measurement(&self) -> &str {
        &self.measurement
    }

    /// Appends this point as one line (with `\n`) to `out`, with `default_tags` added unless the
    /// point sets the same key. On error `out` is left as it was.
    pub fn write_line(
        &self,
        default_tags: &[(String, String)],
        out: &mut String,
    ) -> Result<(), PointError> {
        let before = out.len();
        let written = self.write_checked(default_tags, out);
        if written.is_err() {
            out.truncate(before);
        }
        written
    }

    /// Checks and writes in one pass (the writer's hot path); the caller undoes a partial line.
    fn write_checked(
        &self,
        default_tags: &[(String, String)],
        out: &mut String,
    ) -> Result<(), PointError> {
        if self.measurement.is_empty() {
            return Err(PointError::EmptyMeasurement);
        }
        if self.fields.is_empty() {
            return Err(PointError::NoFields(self.measurement.clone()));
        }
        let m = &self.measurement;
        put_name(out, "measurement", m, m, b", ")?;
        let empty = |what| PointError::Empty {
            what,
            name: self.measurement.clone(),
        };
        for (k, v) in self.tags_with(default_tags) {
            if k.is_empty() {
                return Err(empty("tag key"));
            }
            // Influx rejects empty tag values; an empty tag is the same as no tag.
            if v.is_empty() {
                check_name("tag key", k, k)?;
                continue;
            }
            out.push(',');
            put_name(out, "tag key", k, k, b",= ")?;
            out.push('=');
            put_name(out, "tag value", v, k, b",= ")?;
        }
        for (n, (k, v)) in self.fields.iter().enumerate() {
            if k.is_empty() {
                return Err(empty("field key"));
            }
            out.push(if n == 0 { ' ' } else { ',' });
            put_name(out, "field key", k, k, b",= ")?;
            if let FieldValue::Float(x) = v
                && !x.is_finite()
            {
                return Err(PointError::NonFinite(k.clone()));
            }
            out.push('=');
            write_value(out, v);
        }
        if let Some(t) = self.time_ns {
            out.push(' ');
            out.push_str(itoa::Buffer::new().format(t));
        }
        out.push('\n');
        Ok(())
    }

    /// The point's tags plus the defaults it does not override, sorted by key (what the server
    /// stores; sending them sorted saves it the work).
    fn tags_with<'a>(&'a self, default_tags: &'a [(String, String)]) -> Vec<(&'a str, &'a str)> {
        let mut tags: Vec<(&str, &str)> = Vec::with_capacity(self.tags.len() + default_tags.len());
        tags.extend(self.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        for (k, v) in default_tags {
            if !tags.iter().any(|(tk, _)| tk == k) {
                tags.push((k, v));
            }
        }
        tags.sort_unstable_by(|a, b| a.0.cmp(b.0));
        tags
    }
}

/// A field value in line protocol: floats as written, integers with `i`, strings quoted with `"`
/// and `\` escaped.
fn write_value(out: &mut String, v: &FieldValue) {
    match v {
        FieldValue::Float(x) => {
            let _ = write!(out, "{x}");
        }
        FieldValue::Int(i) => {
            out.push_str(itoa::Buffer::new().format(*i));
            out.push('i');
        }
        FieldValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        FieldValue::Str(s) => {
            out.push('"');
            for c in s.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
    }
}

fn check_name(what: &'static str, s: &str, name: &str) -> Result<(), PointError> {
    // Every character this looks for is ASCII, and in UTF-8 an ASCII byte is always that
    // character: a byte scan is exact, and it is the writer's hot path.
    let bytes = s.as_bytes();
    if !bytes.iter().any(|b| matches!(b, b'\n' | b'\r' | b'\\')) {
        return Ok(());
    }
    if bytes.iter().any(|b| matches!(b, b'\n' | b'\r')) {
        return Err(PointError::Newline {
            what,
            name: name.to_string(),
        });
    }
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\\' {
            match bytes.get(i + 1) {
                None | Some(b',') | Some(b'=') | Some(b' ') => {
                    return Err(PointError::AmbiguousBackslash {
                        what,
                        name: name.to_string(),
                    });
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Appends name or tag value `s` escaped, or refuses what line protocol cannot carry in it
/// (`what` and `name` for the error). One scan when nothing needs attention, as is usual.
fn put_name(
    out: &mut String,
    what: &'static str,
    s: &str,
    name: &str,
    special: &[u8],
) -> Result<(), PointError> {
    if !s
        .bytes()
        .any(|b| matches!(b, b'\n' | b'\r' | b'\\') || special.contains(&b))
    {
        out.push_str(s);
        return Ok(());
    }
    check_name(what, s, name)?;
    escape_into(out, s, special);
    Ok(())
}

/// Appends `s`, a backslash before each of the `special` (ASCII) characters.
fn escape_into(out: &mut String, s: &str, special: &[u8]) {
    // Most names and values need no escape: copy them whole (a byte scan, as in `check_name`).
    if !s.bytes().any(|b| special.contains(&b)) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        if c.is_ascii() && special.contains(&(c as u8)) {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(p: &Point) -> String {
        let mut s = String::new();
        p.write_line(&[], &mut s).unwrap();
        s
    }

    #[test]
    fn escapes_each_element_per_spec() {
        let p = Point::new("my meas,x")
            .tag("t k", "a b,c=d")
            .field("f=1", "say \"hi\"\\\nnext")
            .field("n", 3i64)
            .field("x", 1.5)
            .field("ok", true)
            .timestamp_ns(42);
        assert_eq!(
            line(&p),
            "my\\ meas\\,x,t\\ k=a\\ b\\,c\\=d f\\=1=\"say \\\"hi\\\"\\\\\nnext\",n=3i,x=1.5,ok=true 42\n"
        );
    }

    #[test]
    fn sorts_tags_and_adds_defaults_without_overriding() {
        let p = Point::new("m")
            .tag("z", "1")
            .tag("stage", "mine")
            .field("v", 1i64);
        let mut s = String::new();
        p.write_line(
            &[("stage".into(), "dev".into()), ("dc".into(), "eu".into())],
            &mut s,
        )
        .unwrap();
        assert_eq!(s, "m,dc=eu,stage=mine,z=1 v=1i\n");
    }

    #[test]
    fn refuses_what_the_protocol_cannot_carry() {
        let mut s = String::new();
        assert!(matches!(
            Point::new("m")
                .tag("t", "a\nb")
                .field("v", 1i64)
                .write_line(&[], &mut s),
            Err(PointError::Newline { .. })
        ));
        assert!(matches!(
            Point::new("m")
                .tag("t", "ends\\")
                .field("v", 1i64)
                .write_line(&[], &mut s),
            Err(PointError::AmbiguousBackslash { .. })
        ));
        assert!(matches!(
            Point::new("m").field("v", f64::NAN).write_line(&[], &mut s),
            Err(PointError::NonFinite(_))
        ));
        assert!(matches!(
            Point::new("m").write_line(&[], &mut s),
            Err(PointError::NoFields(_))
        ));
        assert!(s.is_empty());
        // Refused late in the line, after a point already written: that one stays, whole.
        Point::new("m")
            .field("v", 1i64)
            .write_line(&[], &mut s)
            .unwrap();
        let late = [
            Point::new("m")
                .tag("t", "ok")
                .field("a", 1i64)
                .field("b", f64::INFINITY),
            Point::new("m")
                .tag("t", "ok")
                .field("a", 1i64)
                .field("", 2i64),
            Point::new("m").tag("", "x").field("a", 1i64),
            Point::new("m").tag("k\r", "").field("a", 1i64),
            Point::new("m\r").field("a", 1i64),
            Point::new("m").tag("t", "ok").field("b\\", 1i64),
        ];
        for p in late {
            assert!(p.write_line(&[], &mut s).is_err(), "{p:?}");
            assert_eq!(s, "m v=1i\n", "{p:?}");
        }
        // A backslash before anything else is carried as it is.
        assert_eq!(line(&Point::new("a\\b").field("v", 1i64)), "a\\b v=1i\n");
    }
}
