//! `manifest.json`: what a set holds, written when the set starts (incomplete) and again after
//! each part, so a set that stopped half-way says so (docs/backup.md#manifest).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::BackupError;
use crate::seal::Key;

/// Whether `name` can only name a file directly inside the set's folder: letters, digits, `.`,
/// `_`, `-`, not starting with a dot (so no `..`, no `/`, no hidden files).
pub(crate) fn plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The manifest format this build writes and reads; a newer one is refused.
pub const FORMAT: u32 = 1;
/// The manifest's file name inside a set.
pub(crate) const FILE: &str = "manifest.json";

/// A set's manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Format version.
    pub format: u32,
    /// The set's id (its folder name): start time, UTC, `YYYYMMDDTHHMMSSZ`.
    pub id: String,
    /// When it started and finished (RFC 3339, UTC).
    pub started_at: String,
    /// When the last part was written; absent while running or after a failure.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Every part written and checked; false while running or after a failure.
    pub complete: bool,
    /// Why it is incomplete, when it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Parts are encrypted (`backup.encryption_key_file`).
    pub encrypted: bool,
    /// SHA-256 of the effective configuration with secrets masked: tells which deployment a
    /// set came from, revealing nothing.
    pub config_fingerprint: String,
    /// `tsp-job` version and each external tool's `--version`.
    pub tools: BTreeMap<String, String>,
    /// The parts, in the order they were written.
    pub parts: Vec<Part>,
    /// HMAC-SHA256 (hex) of the manifest without this field, under the signing key
    /// (`backup.signing_key_file`, or one derived from the encryption key); absent when the
    /// deployment has neither key (docs/backup.md#authentication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// One file of a set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Part {
    /// `mysql`, `redis`, `mongo` or `influx`.
    pub store: String,
    /// The configured instance.
    pub instance: String,
    /// File name inside the set.
    pub file: String,
    /// What it holds (a database, a collection, …).
    pub object: String,
    /// Size on disk.
    pub bytes: u64,
    /// Size before compression.
    pub raw_bytes: u64,
    /// SHA-256 of the file on disk (hex).
    pub sha256: String,
    /// The store's server version.
    pub server_version: String,
    /// When this part's snapshot was taken (RFC 3339).
    pub taken_at: String,
    /// Counts by name: rows per table, documents, keys, points.
    pub counts: BTreeMap<String, u64>,
    /// Store-specific facts (binary-log position, index definitions, key prefix).
    #[serde(default)]
    pub details: serde_json::Value,
}

impl Manifest {
    /// Reads `dir/manifest.json`; refuses a newer format or a manifest that does not parse.
    pub fn read(dir: &Path) -> Result<Manifest, BackupError> {
        let path = dir.join(FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| BackupError::io(&path, "cannot read the manifest", e))?;
        let head: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            BackupError::Refused(format!("{}: not a manifest: {e}", path.display()))
        })?;
        let format = head.get("format").and_then(|f| f.as_u64()).unwrap_or(0);
        if format > u64::from(FORMAT) {
            return Err(BackupError::Refused(format!(
                "{}: manifest format {format} is newer than this build reads ({FORMAT}); \
                 restore with a newer tsp-job",
                path.display()
            )));
        }
        serde_json::from_value(head)
            .map_err(|e| BackupError::Refused(format!("{}: not a manifest: {e}", path.display())))
    }

    /// The bytes the MAC covers: the manifest as JSON, without its MAC.
    fn signed_bytes(&self) -> Vec<u8> {
        let unsigned = Manifest {
            mac: None,
            ..self.clone()
        };
        serde_json::to_vec(&unsigned).unwrap_or_default()
    }

    /// Sets the MAC under `key` (none: no MAC).
    pub(crate) fn sign(&mut self, key: Option<&Key>) {
        self.mac = None;
        self.mac = key.map(|k| k.mac_hex(&self.signed_bytes()));
    }

    /// Checks the manifest was written by a holder of `key` and not changed since, and that
    /// every part's file name stays inside the set. The error names the set and what is wrong.
    pub(crate) fn check(&self, key: Option<&Key>) -> Result<(), BackupError> {
        let refused = |why: String| Err(BackupError::Refused(format!("set {}: {why}", self.id)));
        match (key, &self.mac) {
            (Some(k), Some(mac)) if k.mac_matches(&self.signed_bytes(), mac) => {}
            (Some(_), Some(_)) => {
                return refused(
                    "the manifest was changed since it was written, or signed with another key (backup.signing_key_file)".into(),
                );
            }
            (Some(_), None) => {
                return refused(
                    "the manifest is not signed, and this deployment signs its sets: it was not written by this deployment, or its signature was removed".into(),
                );
            }
            (None, Some(_)) => {
                return refused(
                    "the manifest is signed: set backup.signing_key_file (or the encryption key it was made with) to check it".into(),
                );
            }
            (None, None) => {
                tracing::warn!(set = %self.id, "the set is not authenticated: set backup.signing_key_file");
            }
        }
        for part in &self.parts {
            if !plain_file_name(&part.file) {
                return refused(format!(
                    "part `{}`: not a plain file name inside the set",
                    part.file
                ));
            }
        }
        Ok(())
    }

    /// Writes it atomically (temporary file, then rename).
    pub fn write(&self, dir: &Path) -> Result<(), BackupError> {
        let path = dir.join(FILE);
        let tmp = dir.join(".manifest.json.tmp");
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| BackupError::Refused(format!("manifest cannot be written: {e}")))?;
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| BackupError::io(&path, "cannot write the manifest", e))
    }
}
