//! A job's stored spec: its immutable part, one JSON array per job in the queue's `data` hash.

use redis::Value;

use crate::job::{Backoff, NewJob, Origin};

/// A job's immutable part, stored as one JSON array per job in the queue's `data` hash:
/// `[type, payload, priority, max_attempts, backoff, timeout_ms, dedup_key, created_ms]`, and a
/// ninth element, `{"traceparent", "request_id"}`, when the enqueue had either.
/// (Lua reads position 3, priority, and 4, max_attempts.) The id is the hash field and `fetch`
/// answers with ids beside the specs; a delayed job's run-at is in its lease record. Specs
/// written by earlier builds have two more elements, run-at and the id again: they are read as
/// before, and new specs leave them out because each copy of a spec is written to the AOF.
pub(super) struct Spec<'a> {
    pub(super) job_type: String,
    pub(super) payload: &'a serde_json::value::RawValue,
    pub(super) priority: u16,
    pub(super) max_attempts: u32,
    /// [`Backoff::encode`]d.
    pub(super) backoff: String,
    pub(super) timeout_ms: u64,
    /// Empty: none.
    pub(super) dedup_key: String,
    pub(super) created_ms: i64,
    /// Run-at (earlier builds only).
    pub(super) legacy_run_at: Option<i64>,
    /// Where the job came from: its enqueue's trace and request.
    pub(super) origin: Origin,
}

/// The ninth element: a number is an earlier build's run-at, an object the job's origin.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Ninth {
    RunAt(i64),
    Origin(Origin),
}

/// The stored shape: an array, positions as [`Spec`]'s fields (only an array is a spec).
#[derive(serde::Deserialize)]
struct Stored<'a>(
    String,
    #[serde(borrow)] &'a serde_json::value::RawValue,
    u16,
    u32,
    String,
    u64,
    String,
    i64,
    #[serde(default)] Option<Ninth>,
    /// The id again (earlier builds only).
    #[serde(default)]
    serde::de::IgnoredAny,
);

impl<'a> Spec<'a> {
    /// Reads a stored spec.
    pub(super) fn parse(text: &'a str) -> Result<Spec<'a>, serde_json::Error> {
        let s: Stored<'a> = serde_json::from_str(text)?;
        Ok(Spec {
            job_type: s.0,
            payload: s.1,
            priority: s.2,
            max_attempts: s.3,
            backoff: s.4,
            timeout_ms: s.5,
            dedup_key: s.6,
            created_ms: s.7,
            legacy_run_at: match s.8 {
                Some(Ninth::RunAt(t)) => Some(t),
                _ => None,
            },
            origin: match s.8 {
                Some(Ninth::Origin(o)) => o,
                _ => Origin::default(),
            },
        })
    }
}

impl Spec<'_> {
    /// The stored backoff (an unknown encoding reads as the default backoff).
    pub(super) fn backoff(&self) -> Backoff {
        Backoff::decode(&self.backoff)
    }

    /// The dedup key, if it has one.
    pub(super) fn dedup_key(&self) -> Option<&str> {
        Some(self.dedup_key.as_str()).filter(|k| !k.is_empty())
    }
}

/// Encodes a new job's spec. The field order is the order [`Spec`] reads, and what `common.lua`
/// indexes (position 3, priority; 4, max_attempts).
pub(super) fn encode_spec(
    j: &NewJob,
    max: u32,
    backoff: Backoff,
    timeout_ms: u64,
    created: i64,
) -> String {
    // The payload was checked to be JSON; it is embedded as is, not re-encoded.
    let origin = match &j.origin {
        o if o.is_unknown() => String::new(),
        o => serde_json::to_string(o).map_or(String::new(), |o| format!(",{o}")),
    };
    format!(
        "[{},{},{},{},{},{},{},{}{origin}]",
        serde_json::Value::String(j.job_type.clone()),
        j.payload,
        j.priority,
        max,
        serde_json::Value::String(backoff.encode()),
        timeout_ms,
        serde_json::Value::String(j.dedup_key.clone().unwrap_or_default()),
        created,
    )
}

/// A stored spec, or why it cannot be read (with its start, to recognise it by).
pub(super) fn read_spec(v: &Value) -> Result<Spec<'_>, String> {
    let Value::BulkString(b) = v else {
        return Err(format!("not a string: {v:?}"));
    };
    let text = std::str::from_utf8(b).map_err(|e| format!("not UTF-8: {e}"))?;
    Spec::parse(text).map_err(|e| format!("{e} in `{text:.120}`"))
}

/// When the job with this id was enqueued: ids are ULIDs, which start with their creation time
/// (for a job whose spec, which holds it too, cannot be read).
pub(super) fn created_from_id(id: &str) -> Option<i64> {
    let ms = ulid::Ulid::from_string(id).ok()?.timestamp_ms();
    i64::try_from(ms).ok()
}

/// The job type reported for a job whose spec could not be read.
pub const UNREADABLE_TYPE: &str = "(unreadable spec)";
