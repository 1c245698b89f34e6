//! The `gtfs.import` job type: a feed imported by a worker, with its progress on the job
//! (docs/gtfs.md#jobs). The feed is a path inside `gtfs.upload_dir` or an upload's id
//! (`POST /gtfs/uploads`): a job never reads a file an operator did not put there.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tsp_mobility::gtfs::{FileReport, Gtfs, GtfsError, ImportProgress, JOB_TYPE};
use tsp_queue::{JobContext, JobError, JobRules, PayloadError, Registry};

/// The payload: one of `path` or `upload`, and the feed's name (default `gtfs.feed`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    upload: Option<String>,
    #[serde(default)]
    feed: Option<String>,
}

fn payload_error(field: &str, message: impl Into<String>) -> PayloadError {
    PayloadError {
        field: field.into(),
        message: message.into(),
    }
}

impl Payload {
    fn check(&self) -> Result<(), PayloadError> {
        match (&self.path, &self.upload) {
            (Some(_), Some(_)) | (None, None) => {
                Err(payload_error("path", "give exactly one of path and upload"))
            }
            (_, Some(u)) if !(u.len() == 64 && u.bytes().all(|b| b.is_ascii_hexdigit())) => {
                Err(payload_error("upload", "not an upload id (64 hex digits)"))
            }
            _ => Ok(()),
        }
    }

    /// The feed's file: an upload's, or a path that resolves inside `dir`.
    fn resolve(&self, dir: &Path) -> Result<PathBuf, String> {
        let root = dir
            .canonicalize()
            .map_err(|e| format!("gtfs.upload_dir {}: {e}", dir.display()))?;
        let wanted = match (&self.upload, &self.path) {
            (Some(id), _) => dir.join(format!("{}.zip", id.to_ascii_lowercase())),
            (None, Some(p)) => PathBuf::from(p),
            (None, None) => return Err("path: give exactly one of path and upload".into()),
        };
        let real = wanted
            .canonicalize()
            .map_err(|e| format!("{}: {e}", wanted.display()))?;
        if !real.starts_with(&root) {
            return Err(format!(
                "path: {} is outside gtfs.upload_dir ({})",
                wanted.display(),
                root.display()
            ));
        }
        Ok(real)
    }
}

/// Stores an uploaded feed as `<sha256>.zip` in `dir` (written to a temporary name, then
/// renamed, so a job never reads half a file); returns the id.
pub async fn store_upload(dir: &Path, bytes: &[u8]) -> std::io::Result<String> {
    let id = hex::encode(Sha256::digest(bytes));
    tokio::fs::create_dir_all(dir).await?;
    let target = dir.join(format!("{id}.zip"));
    let partial = dir.join(format!(".{id}.{:08x}.partial", rand::random::<u32>()));
    tokio::fs::write(&partial, bytes).await?;
    tokio::fs::rename(&partial, &target).await?;
    Ok(id)
}

/// Sends each phase and file to the job's progress (latest value wins).
struct JobProgress(watch::Sender<serde_json::Value>);

impl ImportProgress for JobProgress {
    fn phase(&self, phase: &str) {
        self.0.send_modify(|v| v["phase"] = phase.into());
    }

    fn file_done(&self, r: &FileReport) {
        self.0.send_modify(|v| {
            if let Some(files) = v["files"].as_array_mut() {
                files.push(serde_json::json!({"file": r.file, "rows": r.rows}));
            } else {
                v["files"] = serde_json::json!([{"file": r.file, "rows": r.rows}]);
            }
        });
    }
}

/// Registers `gtfs.import` on `registry`.
pub fn register(gtfs: &Gtfs, registry: &mut Registry) {
    // Switches the live transit data: operators only.
    registry.require(JOB_TYPE, "admin");
    let gtfs = gtfs.clone();
    let rules = JobRules::new().check(Payload::check);
    registry.register_with(JOB_TYPE, rules, move |ctx: JobContext, p: Payload| {
        let gtfs = gtfs.clone();
        async move { run(&gtfs, &ctx, &p).await }
    });
}

async fn run(gtfs: &Gtfs, ctx: &JobContext, p: &Payload) -> Result<serde_json::Value, JobError> {
    let path = p.resolve(gtfs.upload_dir()).map_err(JobError::abort)?;
    let feed = p
        .feed
        .clone()
        .unwrap_or_else(|| gtfs.default_feed().to_string());
    let (tx, mut rx) = watch::channel(serde_json::json!({"phase": "start"}));
    let reporter = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let v = rx.borrow_and_update().clone();
                // Progress is informative: a failed write is not the import's failure.
                let _ = ctx.progress(v).await;
            }
        })
    };
    let r = gtfs.import(&path, &feed, &JobProgress(tx)).await;
    let _ = reporter.await;
    match r {
        Ok(report) => serde_json::to_value(&report).map_err(JobError::abort),
        Err(e) if e.is_transient() => Err(JobError::retry(e)),
        Err(e @ GtfsError::Invalid(_)) => Err(JobError::abort(e)),
        Err(e) => Err(JobError::abort(e)),
    }
}
