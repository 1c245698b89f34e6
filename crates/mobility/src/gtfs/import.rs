//! An import from start to finish: lock the feed, hash it, load and check a new version, make
//! its copies, switch, prune (docs/gtfs.md#import).

use std::path::Path;
use std::time::{Duration, Instant};

use async_recursion::async_recursion as boxed;
use serde::Serialize;
use tsp_config::GtfsSettings;
use tsp_hub::{Cache, HubError, MongoStore, MysqlStore, NamedLock, RedisStore};

use crate::stores::GtfsStores;

use super::load::{self, FileReport};
use super::source::FeedSource;
use super::sync::{self, CopyCounts};
use super::versions::{self, Version};
use super::{GtfsError, ImportProgress};

/// How long an import waits for another import of the same feed.
const LOCK_WAIT: Duration = Duration::from_secs(5);
/// Warnings kept in a report (all are counted).
const MAX_WARNINGS: usize = 50;

/// What an import did.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A new version was loaded and made live.
    Imported,
    /// The live version has this content already: nothing was loaded.
    Unchanged,
    /// A version with this content was loaded before (an interrupted import, or one rolled
    /// back from): it was synced and made live without loading again.
    Resumed,
}

/// An import's report.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// The feed.
    pub feed: String,
    /// The version now live.
    pub version: u32,
    /// What happened.
    pub outcome: Outcome,
    /// The version live before, if another.
    pub previous: Option<u32>,
    /// SHA-256 of the feed's files.
    pub content_sha256: String,
    /// Per file: rows, rejected, warnings, seconds (empty unless loaded now).
    pub files: Vec<FileReport>,
    /// Rows loaded in all files.
    pub rows: u64,
    /// Warnings, at most 50 (all are counted in `warning_count`).
    pub warnings: Vec<String>,
    /// Every warning.
    pub warning_count: u64,
    /// Stops in each copy.
    pub copies: CopyCounts,
    /// Versions removed by the prune.
    pub pruned: Vec<u32>,
    /// Seconds per phase, and in total.
    pub seconds: Phases,
}

/// Seconds spent in each phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Phases {
    /// Hashing the feed.
    pub hash: f64,
    /// Parsing, checking and inserting every file.
    pub load: f64,
    /// Checks after the load (stop time order when the file was not in trip order).
    pub validate: f64,
    /// Making the MongoDB and Redis copies.
    pub sync: f64,
    /// The pointer update.
    pub switch: f64,
    /// Removing versions beyond `gtfs.keep_versions`.
    pub prune: f64,
    /// The whole import.
    pub total: f64,
}

/// The GTFS side of the service on one hub: imports, versions, queries.
#[derive(Clone)]
pub struct Gtfs {
    pub(crate) mysql: MysqlStore,
    pub(crate) mongo: MongoStore,
    pub(crate) redis: RedisStore,
    pub(crate) settings: GtfsSettings,
    pub(crate) cache: Option<Cache>,
}

impl Gtfs {
    /// The GTFS side on `stores`; queries read stop details through `cache` when given.
    pub fn new(stores: GtfsStores, settings: GtfsSettings, cache: Option<Cache>) -> Gtfs {
        Gtfs {
            mysql: stores.schedules,
            mongo: stores.documents,
            redis: stores.redis,
            settings,
            cache,
        }
    }

    /// The named lock of `feed`'s imports and rollbacks. Lock names are global to the MySQL
    /// server, so the database is part of the name: two deployments (or test sandboxes) on one
    /// server do not wait for each other.
    fn lock_name(&self, feed: &str) -> String {
        let scope = format!("{}\0{feed}", self.mysql.database_name());
        format!("tsp.gtfs.{:016x}", crate::fnv1a(scope.bytes()))
    }

    /// The feed queries use when none is named (`gtfs.feed`).
    pub fn default_feed(&self) -> &str {
        &self.settings.feed
    }

    /// Where uploaded feeds are kept (`gtfs.upload_dir`).
    pub fn upload_dir(&self) -> &Path {
        &self.settings.upload_dir
    }

    /// Every version of `feed`, newest first.
    #[boxed]
    pub async fn versions(&self, feed: &str) -> Result<Vec<Version>, GtfsError> {
        Ok(versions::list(&self.mysql, feed).await?)
    }

    /// Imports the feed at `path` as `feed` (docs/gtfs.md#import).
    #[boxed]
    pub async fn import(
        &self,
        path: &Path,
        feed: &str,
        progress: &dyn ImportProgress,
    ) -> Result<ImportReport, GtfsError> {
        check_feed_name(feed)?;
        let started = Instant::now();
        let source = FeedSource::open(path)?;
        let lock = NamedLock::acquire(
            &self.mysql,
            &self.lock_name(feed),
            LOCK_WAIT,
            "another import of this feed",
        )
        .await?;
        let r = self.import_locked(&source, feed, progress, started).await;
        lock.release().await;
        r
    }

    async fn import_locked(
        &self,
        source: &FeedSource,
        feed: &str,
        progress: &dyn ImportProgress,
        started: Instant,
    ) -> Result<ImportReport, GtfsError> {
        let mut phases = Phases::default();
        progress.phase("hash");
        let clock = Instant::now();
        let src = source.clone();
        let sha = tokio::task::spawn_blocking(move || src.content_hash())
            .await
            .map_err(|e| GtfsError::Internal(e.to_string()))??;
        phases.hash = clock.elapsed().as_secs_f64();
        let mut report = ImportReport {
            feed: feed.to_string(),
            version: 0,
            outcome: Outcome::Imported,
            previous: versions::live(&self.mysql, feed).await?,
            content_sha256: sha.clone(),
            files: Vec::new(),
            rows: 0,
            warnings: Vec::new(),
            warning_count: 0,
            copies: CopyCounts {
                mysql: 0,
                mongo: 0,
                redis: 0,
            },
            pruned: Vec::new(),
            seconds: phases,
        };
        let existing = versions::with_content(&self.mysql, feed, &sha).await?;
        let version = match existing {
            Some(v) if v.status == "live" => {
                report.version = v.version;
                report.outcome = Outcome::Unchanged;
                report.previous = None;
                report.rows = v.rows;
                // The copies may have been lost (a flushed Redis): remade if incomplete.
                report.copies = self.ensure_copies(feed, v.version).await?;
                sync::set_live(&self.redis, feed, v.version).await?;
                report.seconds.total = started.elapsed().as_secs_f64();
                return Ok(report);
            }
            Some(v) if matches!(v.status.as_str(), "loaded" | "synced" | "retired") => {
                report.outcome = Outcome::Resumed;
                report.rows = v.rows;
                v.version
            }
            stale => {
                if let Some(v) = stale {
                    versions::delete_rows(&self.mysql, v.version).await?;
                }
                self.load_new(source, feed, &sha, progress, &mut report)
                    .await?
            }
        };
        report.version = version;
        progress.phase("sync");
        let clock = Instant::now();
        report.copies = self.ensure_copies(feed, version).await?;
        versions::set_status(&self.mysql, version, "synced", None, None, None).await?;
        report.seconds.sync = clock.elapsed().as_secs_f64();
        progress.phase("switch");
        let clock = Instant::now();
        let before = versions::switch(&self.mysql, feed, version).await?;
        report.previous = before.filter(|b| *b != version);
        sync::set_live(&self.redis, feed, version).await?;
        report.seconds.switch = clock.elapsed().as_secs_f64();
        progress.phase("prune");
        let clock = Instant::now();
        report.pruned = self.prune(feed).await?;
        report.seconds.prune = clock.elapsed().as_secs_f64();
        report.seconds.total = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Loads and checks a new version; on failure its rows are removed and the version row
    /// records the error (status `failed`).
    async fn load_new(
        &self,
        source: &FeedSource,
        feed: &str,
        sha: &str,
        progress: &dyn ImportProgress,
        report: &mut ImportReport,
    ) -> Result<u32, GtfsError> {
        let origin = source.path().display().to_string();
        let version = versions::create(&self.mysql, feed, sha, &origin).await?;
        progress.phase("load");
        let clock = Instant::now();
        // The stop copies are made while the later files load (stops.txt comes before trips and
        // stop_times); a failed copy is made again before the switch.
        let (stops_loaded, wait_stops) = tokio::sync::oneshot::channel();
        let copy = async {
            if wait_stops.await.is_ok() {
                let _ = sync::make(&self.mysql, &self.mongo, &self.redis, feed, version).await;
            }
        };
        let (loaded, ()) = tokio::join!(
            load::load(
                &self.mysql,
                source,
                version,
                self.settings.batch_rows,
                progress,
                stops_loaded,
            ),
            copy
        );
        report.seconds.load = clock.elapsed().as_secs_f64();
        let clock = Instant::now();
        let checked = match loaded {
            Ok(l) if l.unordered => {
                progress.phase("validate");
                load::check_time_order(&self.mysql, version)
                    .await
                    .map(|()| l)
            }
            other => other,
        };
        report.seconds.validate = clock.elapsed().as_secs_f64();
        let loaded = match checked {
            Ok(l) => l,
            Err(e) => {
                // Best effort: the version is not live either way, and the next import of this
                // content or the next prune removes what is left.
                let _ = versions::delete_table_rows(&self.mysql, version).await;
                let _ = sync::remove(&self.mongo, &self.redis, feed, version).await;
                let text = e.to_string();
                let _ = versions::set_status(
                    &self.mysql,
                    version,
                    "failed",
                    Some(0),
                    None,
                    Some(&text),
                )
                .await;
                return Err(e);
            }
        };
        report.rows = loaded.files.iter().map(|f| f.rows).sum();
        report.warning_count = loaded.warning_count;
        report.warnings = loaded.warnings.into_iter().take(MAX_WARNINGS).collect();
        report.files = loaded.files;
        let summary = serde_json::to_value(&report.files).unwrap_or_default();
        versions::set_status(
            &self.mysql,
            version,
            "loaded",
            Some(report.rows),
            Some(&summary),
            None,
        )
        .await?;
        Ok(version)
    }

    /// The copies of `version`, made when either is incomplete.
    async fn ensure_copies(&self, feed: &str, version: u32) -> Result<CopyCounts, GtfsError> {
        let not_synced = |e: HubError| GtfsError::NotSynced {
            feed: feed.to_string(),
            version,
            message: e.to_string(),
        };
        let counts = sync::counts(&self.mysql, &self.mongo, &self.redis, feed, version)
            .await
            .map_err(not_synced)?;
        if counts.complete() {
            return Ok(counts);
        }
        let made = sync::make(&self.mysql, &self.mongo, &self.redis, feed, version)
            .await
            .map_err(not_synced)?;
        if !made.complete() {
            return Err(GtfsError::NotSynced {
                feed: feed.to_string(),
                version,
                message: format!(
                    "{} stops in MySQL, {} in MongoDB, {} in Redis",
                    made.mysql, made.mongo, made.redis
                ),
            });
        }
        Ok(made)
    }

    /// Makes the version live before the current one live again (`gtfs rollback`). Returns
    /// (the version now live, the one it replaced).
    #[boxed]
    pub async fn rollback(&self, feed: &str) -> Result<(u32, u32), GtfsError> {
        let lock = NamedLock::acquire(
            &self.mysql,
            &self.lock_name(feed),
            LOCK_WAIT,
            "an import of this feed",
        )
        .await?;
        let r = self.rollback_locked(feed).await;
        lock.release().await;
        r
    }

    async fn rollback_locked(&self, feed: &str) -> Result<(u32, u32), GtfsError> {
        let live = versions::live(&self.mysql, feed)
            .await?
            .ok_or_else(|| GtfsError::NotFound(format!("feed {feed:?} has no live version")))?;
        let target = versions::list(&self.mysql, feed)
            .await?
            .into_iter()
            .find(|v| v.version < live && v.status == "retired")
            .ok_or_else(|| {
                GtfsError::NotFound(format!(
                    "feed {feed:?} has no earlier version to roll back to (live: {live})"
                ))
            })?;
        self.ensure_copies(feed, target.version).await?;
        versions::switch(&self.mysql, feed, target.version).await?;
        sync::set_live(&self.redis, feed, target.version).await?;
        Ok((target.version, live))
    }

    /// Removes versions beyond `gtfs.keep_versions` (the live one always stays) and failed ones;
    /// returns the versions removed.
    #[boxed]
    pub async fn prune(&self, feed: &str) -> Result<Vec<u32>, GtfsError> {
        let all = versions::list(&self.mysql, feed).await?;
        let keep = self.settings.keep_versions as usize;
        let mut kept = 0;
        let mut removed = Vec::new();
        for v in all {
            let keepable = matches!(v.status.as_str(), "live" | "retired" | "synced" | "loaded");
            if v.status == "live" || (keepable && kept + 1 < keep) {
                if v.status != "live" {
                    kept += 1;
                }
                continue;
            }
            if v.status == "loading" {
                // Possibly another process's import in progress (it holds the feed's lock,
                // and this one does too only during an import): left for the next import.
                continue;
            }
            sync::remove(&self.mongo, &self.redis, feed, v.version).await?;
            versions::delete_rows(&self.mysql, v.version).await?;
            removed.push(v.version);
        }
        Ok(removed)
    }
}

/// Feed names become key and lock names: letters, digits, `-` and `_`.
fn check_feed_name(feed: &str) -> Result<(), GtfsError> {
    let ok = !feed.is_empty()
        && feed.len() <= 64
        && feed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(GtfsError::BadRequest {
            field: "feed",
            message: format!("{feed:?} must be 1-64 letters, digits, '-' or '_'"),
        })
    }
}
