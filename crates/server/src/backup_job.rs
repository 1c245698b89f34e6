//! The `backup.create` job type: a backup set made by a worker, so the scheduler (or anything
//! that enqueues) runs backups (docs/backup.md#scheduled-backups). The set's folder lock keeps
//! two from running at once on one host; a job that finds it held retries later.

use serde::Deserialize;
use tsp_backup::{BackupError, Backups, Stores};
use tsp_hub::Hub;
use tsp_queue::{JobContext, JobError, Registry};

/// The job type.
pub const JOB_TYPE: &str = "backup.create";

/// The payload: which stores (default all).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    #[serde(default)]
    stores: Option<String>,
}

/// Registers `backup.create` on `registry`.
pub fn register(hub: &Hub, registry: &mut Registry) {
    // A full dump of every store, made as the migrator account: operators only.
    registry.require(JOB_TYPE, "admin");
    let hub = hub.clone();
    registry.register(JOB_TYPE, move |_: JobContext, p: Payload| {
        let hub = hub.clone();
        async move {
            let stores = match &p.stores {
                Some(s) => Stores::parse(s).map_err(JobError::abort)?,
                None => Stores::ALL,
            };
            // A backup reads and locks as the migrator account, not the worker's app account.
            let migrator = Hub::connect(&hub.current_config().as_migrator())
                .await
                .map_err(JobError::retry)?;
            let made = create(&migrator, stores).await;
            migrator.shutdown(std::time::Duration::from_secs(10)).await;
            made
        }
    });
}

async fn create(hub: &Hub, stores: Stores) -> Result<serde_json::Value, JobError> {
    let backups = Backups::new(hub, None).map_err(JobError::abort)?;
    match backups.create(stores).await {
        Ok(m) => Ok(serde_json::json!({
            "set": m.id,
            "parts": m.parts.len(),
            "bytes": m.parts.iter().map(|p| p.bytes).sum::<u64>(),
        })),
        // Held by another backup, or a store or tool failing: worth another attempt.
        Err(
            e @ (BackupError::Refused(_) | BackupError::Store { .. } | BackupError::Tool { .. }),
        ) => Err(JobError::retry(e)),
        Err(e) => Err(JobError::abort(e)),
    }
}
