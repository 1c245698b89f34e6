//! The jobs a worker holds, by id: what the heartbeat extends, what shutdown returns.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A job this worker holds: its lease id, when it was leased, and whether its outcome is on its
/// way to Redis.
pub(super) struct HeldJob {
    pub(super) token: Arc<str>,
    pub(super) leased_at: i64,
    pub(super) acknowledging: bool,
}

/// Keyed by job id. Ids are made by this crate (ULIDs), not chosen by callers, so a fast hash
/// without flooding resistance is fine; the map sees two lookups per job.
pub(super) type Held = Arc<Mutex<HeldMap>>;
pub(super) type HeldMap = HashMap<String, HeldJob, rustc_hash::FxBuildHasher>;

pub(super) fn lock_held(held: &Held) -> std::sync::MutexGuard<'_, HeldMap> {
    match held.lock() {
        Ok(h) => h,
        Err(p) => p.into_inner(),
    }
}

pub(super) fn held_snapshot(held: &Held) -> Vec<(String, String, i64)> {
    lock_held(held)
        .iter()
        .map(|(k, v)| (k.clone(), v.token.to_string(), v.leased_at))
        .collect()
}

/// Whether the job still runs here: held, and its outcome not yet sent (an acknowledgement
/// that lands between a heartbeat's snapshot and its call is not a lost lease).
pub(super) fn still_running(held: &Held, id: &str) -> bool {
    lock_held(held).get(id).is_some_and(|j| !j.acknowledging)
}
