//! One configuration key's declaration: its type, default and description. The settings
//! structs declare them (`#[derive(Settings)]`, [`crate::declare`]); the schema collects them.

use crate::raw::RawValue;

/// The type of a key, which decides how its value is parsed and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Any string, possibly empty.
    Str,
    /// A host name or address; must not be empty for a required store.
    Host,
    /// 1–65535.
    Port,
    /// A password or token: never shown.
    Secret,
    /// A URL with one of these schemes that may embed credentials: shown with the password masked.
    SecretUrl(&'static [&'static str]),
    /// A URL with one of these schemes.
    Url(&'static [&'static str]),
    /// `500ms`, `30s`, `2m`, `1h`, or a bare integer of milliseconds; must be greater than zero.
    Duration,
    /// An integer within bounds.
    UInt {
        /// The least value allowed.
        min: u64,
        /// The greatest value allowed.
        max: u64,
    },
    /// One of these words.
    Enum(&'static [&'static str]),
    /// `true` or `false`.
    Bool,
    /// A path to a file that must exist (TLS material).
    File,
    /// A list of `host:port` (a TOML array, or a comma-separated string).
    HostPortList,
    /// `ip:port` to listen on.
    ListenAddr,
}

impl FieldType {
    /// Whether values of this type are masked wherever they are shown.
    pub fn is_secret(self) -> bool {
        matches!(self, FieldType::Secret | FieldType::SecretUrl(_))
    }

    /// A short human description, for the reference and for "expected …" messages.
    pub fn describe(self) -> String {
        match self {
            FieldType::Str => "string".into(),
            FieldType::Host => "host name or address".into(),
            FieldType::Port => "port (1-65535)".into(),
            FieldType::Secret => "secret".into(),
            FieldType::SecretUrl(s) | FieldType::Url(s) => format!("URL ({})", s.join(", ")),
            FieldType::Duration => "duration (e.g. 500ms, 30s, 2m; bare integer = ms)".into(),
            FieldType::UInt { min, max } => format!("integer {min}-{max}"),
            FieldType::Enum(v) => v.join(" | "),
            FieldType::Bool => "true | false".into(),
            FieldType::File => "path to an existing file".into(),
            FieldType::HostPortList => "list of host:port".into(),
            FieldType::ListenAddr => "ip:port".into(),
        }
    }
}

/// A default that may depend on the instance name (`gtfs` pools differ from `portal` pools).
pub type DefaultFn = fn(instance: &str) -> Option<RawValue>;

/// One key of a section, relative to it (`pool.max` under `mysql.portal`).
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The key, relative to its section.
    pub key: &'static str,
    /// The value's type.
    pub ty: FieldType,
    /// The default, per instance.
    pub default: DefaultFn,
    /// What it does: one sentence for the reference.
    pub doc: &'static str,
}
