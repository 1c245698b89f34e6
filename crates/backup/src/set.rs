//! Backup sets: one folder per set under `backup.dir`, named by its start time, holding its
//! parts and `manifest.json`. Making, listing, verifying and pruning them
//! (docs/backup.md).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_recursion::async_recursion as boxed;
use chrono::{Datelike, NaiveDateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tsp_config::BackupSettings;
use tsp_hub::Hub;

use crate::error::BackupError;
use crate::manifest::{FORMAT, Manifest, Part};
use crate::part::check_part;
use crate::seal::Key;
use crate::{influx_part, mongo_part, mysql, redis_part, tools};

/// Which stores a command covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stores {
    /// MySQL instances.
    pub mysql: bool,
    /// The Redis instances.
    pub redis: bool,
    /// MongoDB instances.
    pub mongo: bool,
    /// InfluxDB databases.
    pub influx: bool,
}

impl Stores {
    /// Every store.
    pub const ALL: Stores = Stores {
        mysql: true,
        redis: true,
        mongo: true,
        influx: true,
    };

    /// `mysql,redis,mongo,influx` (any subset).
    pub fn parse(text: &str) -> Result<Stores, BackupError> {
        let mut s = Stores {
            mysql: false,
            redis: false,
            mongo: false,
            influx: false,
        };
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "mysql" => s.mysql = true,
                "redis" => s.redis = true,
                "mongo" => s.mongo = true,
                "influx" => s.influx = true,
                other => {
                    return Err(BackupError::Refused(format!(
                        "--stores: unknown store `{other}` (mysql, redis, mongo, influx)"
                    )));
                }
            }
        }
        Ok(s)
    }

    /// Whether `store` (a part's store name) is selected.
    pub fn has(&self, store: &str) -> bool {
        match store {
            "mysql" => self.mysql,
            "redis" => self.redis,
            "mongo" => self.mongo,
            "influx" => self.influx,
            _ => false,
        }
    }
}

/// What a long step reports as it goes.
#[derive(Debug, Clone)]
pub enum Progress {
    /// A part is being made or restored.
    Started(String),
    /// A part is done.
    Finished(Box<Part>),
}

/// Receives [`Progress`].
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// One set in `backup list`.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// Its id.
    pub id: String,
    /// Every part written and checked.
    pub complete: bool,
    /// Parts.
    pub parts: usize,
    /// Bytes on disk.
    pub bytes: u64,
    /// When it started and finished.
    pub started_at: String,
    /// When it finished.
    pub finished_at: Option<String>,
    /// Encrypted.
    pub encrypted: bool,
    /// Why it is incomplete.
    pub error: Option<String>,
}

/// Backup sets of one deployment: its hub, `backup.*` and the key, if any.
pub struct Backups {
    pub(crate) hub: Hub,
    pub(crate) cfg: BackupSettings,
    pub(crate) root: PathBuf,
    pub(crate) key: Option<Key>,
    /// The key that signs manifests: `backup.signing_key_file`, else derived from `key`.
    pub(crate) signing: Option<Key>,
    pub(crate) progress: ProgressFn,
}

impl Backups {
    /// Sets under `root` (default `backup.dir`); reads `backup.encryption_key_file` if set.
    pub fn new(hub: &Hub, root: Option<PathBuf>) -> Result<Backups, BackupError> {
        let cfg = hub.config().backup.clone();
        let key = match &cfg.encryption_key_file {
            Some(p) => Some(Key::from_file(p).map_err(BackupError::Refused)?),
            None => None,
        };
        let signing = match &cfg.signing_key_file {
            Some(p) => Some(Key::from_file(p).map_err(BackupError::Refused)?),
            None => key.as_ref().map(|k| k.derive("tsp-job backup manifest")),
        };
        Ok(Backups {
            hub: hub.clone(),
            root: root.unwrap_or_else(|| cfg.dir.clone()),
            cfg,
            key,
            signing,
            progress: Arc::new(|_| {}),
        })
    }

    /// Reports progress to `f`.
    pub fn with_progress(mut self, f: ProgressFn) -> Backups {
        self.progress = f;
        self
    }

    /// The folder holding the sets.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of set `id`.
    pub fn set_dir(&self, id: &str) -> Result<PathBuf, BackupError> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(BackupError::Refused(format!(
                "`{id}` is not a set id (see `tsp-job backup list`)"
            )));
        }
        let dir = self.root.join(id);
        if !dir.join(crate::manifest::FILE).exists() {
            return Err(BackupError::Refused(format!(
                "no set `{id}` in {} (see `tsp-job backup list`)",
                self.root.display()
            )));
        }
        Ok(dir)
    }

    /// Takes the lock of `backup.dir`: one backup at a time, in any process on this host.
    fn lock(&self) -> Result<File, BackupError> {
        std::fs::create_dir_all(&self.root)
            .map_err(|e| BackupError::io(&self.root, "cannot create the backup folder", e))?;
        let path = self.root.join(".lock");
        let f =
            File::create(&path).map_err(|e| BackupError::io(&path, "cannot open the lock", e))?;
        match f.try_lock() {
            Ok(()) => Ok(f),
            Err(std::fs::TryLockError::WouldBlock) => Err(BackupError::Refused(format!(
                "another backup is running (it holds {}); try again when it has finished",
                path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(BackupError::io(&path, "cannot lock", e)),
        }
    }

    fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for v in &self.hub.config().shown {
            // `display` masks secrets.
            h.update(format!("{}={}\n", v.key, v.display));
        }
        hex::encode(h.finalize())
    }

    async fn tool_versions(&self, stores: Stores) -> std::collections::BTreeMap<String, String> {
        let mut t = std::collections::BTreeMap::new();
        t.insert("tsp-job".into(), env!("CARGO_PKG_VERSION").to_string());
        if stores.mysql {
            t.insert(
                self.cfg.mysql_dump.clone(),
                tools::version(&self.cfg.mysql_dump, "--version").await,
            );
        }
        if stores.redis {
            t.insert(
                self.cfg.redis_server.clone(),
                tools::version(&self.cfg.redis_server, "--version").await,
            );
        }
        if stores.influx {
            t.insert(
                self.cfg.influxd.clone(),
                tools::version(&self.cfg.influxd, "version").await,
            );
        }
        t
    }

    /// Makes a set of the selected stores. The manifest is written first (incomplete) and
    /// after each part; a failure leaves the set marked incomplete with the error.
    #[boxed]
    pub async fn create(&self, stores: Stores) -> Result<Manifest, BackupError> {
        let _lock = self.lock()?;
        let started = Utc::now();
        let mut id = started.format("%Y%m%dT%H%M%SZ").to_string();
        // Two sets in one second (tests, retries) get a suffix.
        let mut k = 1;
        while self.root.join(&id).exists() {
            k += 1;
            id = format!("{}-{k}", started.format("%Y%m%dT%H%M%SZ"));
        }
        let dir = self.root.join(&id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| BackupError::io(&dir, "cannot create the set", e))?;
        let mut m = Manifest {
            format: FORMAT,
            id,
            started_at: started.to_rfc3339(),
            finished_at: None,
            complete: false,
            error: None,
            encrypted: self.key.is_some(),
            config_fingerprint: self.fingerprint(),
            tools: self.tool_versions(stores).await,
            parts: Vec::new(),
            mac: None,
        };
        self.write_manifest(&dir, &mut m)?;
        match self.write_parts(stores, &dir, &mut m).await {
            Ok(()) => {
                m.complete = true;
                m.finished_at = Some(Utc::now().to_rfc3339());
                self.write_manifest(&dir, &mut m)?;
                Ok(m)
            }
            Err(e) => {
                m.error = Some(e.to_string());
                self.write_manifest(&dir, &mut m)?;
                Err(e)
            }
        }
    }

    /// Signs and writes the manifest.
    fn write_manifest(&self, dir: &Path, m: &mut Manifest) -> Result<(), BackupError> {
        m.sign(self.signing.as_ref());
        m.write(dir)
    }

    fn done(&self, dir: &Path, m: &mut Manifest, part: Part) -> Result<(), BackupError> {
        (self.progress)(Progress::Finished(Box::new(part.clone())));
        m.parts.push(part);
        self.write_manifest(dir, m)
    }

    async fn write_parts(
        &self,
        stores: Stores,
        dir: &Path,
        m: &mut Manifest,
    ) -> Result<(), BackupError> {
        let key = self.key.as_ref();
        let config = self.hub.config();
        if stores.mysql {
            for store in self.hub.mysql_instances() {
                (self.progress)(Progress::Started(format!("mysql.{}", store.name())));
                let settings = &config.mysql[store.name()];
                let part = mysql::dump(store, settings, &self.cfg, dir, key).await?;
                self.done(dir, m, part)?;
            }
        }
        if stores.redis {
            for store in self.hub.redis_instances() {
                (self.progress)(Progress::Started(format!("redis.{}", store.name())));
                let part = redis_part::snapshot(store, &self.cfg, dir, key).await?;
                self.done(dir, m, part)?;
            }
        }
        if stores.mongo {
            for store in self.hub.mongo_instances() {
                (self.progress)(Progress::Started(format!("mongo.{}", store.name())));
                for part in mongo_part::export(store, dir, key).await? {
                    self.done(dir, m, part)?;
                }
            }
        }
        if stores.influx {
            for (store, database, role) in self.influx_databases()? {
                (self.progress)(Progress::Started(format!(
                    "influx.{} {database}",
                    store.name()
                )));
                let mut part = influx_part::backup(store, &database, &self.cfg, dir, key).await?;
                part.details["role"] = role.into();
                self.done(dir, m, part)?;
            }
        }
        Ok(())
    }

    /// Every Influx database the configuration writes to: each instance's, and the service
    /// monitor's. (instance, database, role).
    pub(crate) fn influx_databases(
        &self,
    ) -> Result<Vec<(&tsp_hub::InfluxStore, String, &'static str)>, BackupError> {
        let config = self.hub.config();
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for store in self.hub.influx_instances() {
            let db = store.settings().v1_database().to_string();
            if seen.insert((store.name().to_string(), db.clone())) {
                out.push((store, db, "instance"));
            }
        }
        let sm = &config.service_monitor;
        let store = self
            .hub
            .influx(&sm.instance)
            .map_err(|e| BackupError::store("influx", &sm.instance, e))?;
        if seen.insert((sm.instance.clone(), sm.bucket.clone())) {
            out.push((store, sm.bucket.clone(), "service_monitor"));
        }
        Ok(out)
    }

    /// The stores' own tools alone, as a set would run them, writing plain files under `dir`:
    /// seconds and bytes per store (`mysql`, `redis`, `influx`), for `tsp-bench backup`.
    #[boxed]
    pub async fn native_baseline(
        &self,
        dir: &Path,
    ) -> Result<BTreeMap<&'static str, (f64, u64)>, BackupError> {
        let config = self.hub.config();
        let mut out = BTreeMap::new();
        let started = std::time::Instant::now();
        let mut bytes = 0;
        for store in self.hub.mysql_instances() {
            let file = dir.join(format!("native-{}.sql", store.name()));
            let settings = &config.mysql[store.name()];
            bytes += mysql::native_dump(store, settings, &self.cfg, &file).await?;
        }
        out.insert("mysql", (started.elapsed().as_secs_f64(), bytes));
        let started = std::time::Instant::now();
        let mut bytes = 0;
        for store in self.hub.redis_instances() {
            let file = dir.join(format!("native-{}.rdb", store.name()));
            bytes += redis_part::native_snapshot(store, &self.cfg, &file).await?;
        }
        out.insert("redis", (started.elapsed().as_secs_f64(), bytes));
        let started = std::time::Instant::now();
        let mut bytes = 0;
        for (store, database, _) in self.influx_databases()? {
            let folder = dir.join(format!("native-influx-{database}"));
            bytes += influx_part::native_backup(store, &database, &self.cfg, &folder).await?;
        }
        out.insert("influx", (started.elapsed().as_secs_f64(), bytes));
        Ok(out)
    }

    /// Every set, newest first.
    pub fn list(&self) -> Result<Vec<Listed>, BackupError> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(BackupError::io(&self.root, "cannot list", e)),
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            if !dir.join(crate::manifest::FILE).exists() {
                continue;
            }
            let listed = match Manifest::read(&dir) {
                Ok(m) => Listed {
                    id: m.id,
                    complete: m.complete,
                    parts: m.parts.len(),
                    bytes: m.parts.iter().map(|p| p.bytes).sum(),
                    started_at: m.started_at,
                    finished_at: m.finished_at,
                    encrypted: m.encrypted,
                    error: m.error,
                },
                Err(e) => Listed {
                    id: entry.file_name().to_string_lossy().into_owned(),
                    complete: false,
                    parts: 0,
                    bytes: 0,
                    started_at: String::new(),
                    finished_at: None,
                    encrypted: false,
                    error: Some(e.to_string()),
                },
            };
            out.push(listed);
        }
        out.sort_by(|a, b| b.id.cmp(&a.id));
        Ok(out)
    }

    /// The set's manifest, refusing one that is not authentic (signed by this deployment's key,
    /// unchanged, part names inside the set) or that is incomplete.
    pub fn complete_manifest(&self, id: &str) -> Result<(PathBuf, Manifest), BackupError> {
        let dir = self.set_dir(id)?;
        let m = Manifest::read(&dir)?;
        m.check(self.signing.as_ref())?;
        if m.id != id {
            return Err(BackupError::Refused(format!(
                "set {id}: its manifest is set {}'s",
                m.id
            )));
        }
        if !m.complete {
            return Err(BackupError::Refused(format!(
                "set {id} is incomplete ({}): it cannot be verified or restored as a whole",
                m.error.as_deref().unwrap_or("it did not finish")
            )));
        }
        if m.encrypted && self.key.is_none() {
            return Err(BackupError::Refused(format!(
                "set {id} is encrypted: set backup.encryption_key_file to its key"
            )));
        }
        Ok((dir, m))
    }

    /// Checks every selected part: its SHA-256 and size against the manifest, then reads it
    /// through (decrypting and decompressing). Returns the parts checked.
    pub fn verify(&self, id: &str, stores: Stores) -> Result<Vec<Part>, BackupError> {
        let (dir, m) = self.complete_manifest(id)?;
        let mut checked = Vec::new();
        for part in m.parts.iter().filter(|p| stores.has(&p.store)) {
            check_part(&dir, part, self.key.as_ref())?;
            checked.push(part.clone());
        }
        Ok(checked)
    }

    /// Removes complete sets outside the policy (`backup.keep_daily`, `keep_weekly`; the newest
    /// complete set is always kept) and incomplete sets older than the newest complete one.
    /// Returns the ids removed (or that would be, with `dry_run`).
    pub fn prune(&self, dry_run: bool) -> Result<Vec<String>, BackupError> {
        let sets = self.list()?;
        let keep = kept(
            &sets,
            self.cfg.keep_daily as usize,
            self.cfg.keep_weekly as usize,
        );
        let newest_complete = sets.iter().find(|s| s.complete).map(|s| s.id.clone());
        let mut removed = Vec::new();
        for s in &sets {
            let old_incomplete = !s.complete && newest_complete.as_ref().is_some_and(|n| s.id < *n);
            if (s.complete && !keep.contains(&s.id)) || old_incomplete {
                if !dry_run {
                    let dir = self.root.join(&s.id);
                    std::fs::remove_dir_all(&dir)
                        .map_err(|e| BackupError::io(&dir, "cannot remove", e))?;
                }
                removed.push(s.id.clone());
            }
        }
        Ok(removed)
    }
}

/// The ids a prune keeps: of the complete sets (newest first), the newest of each of the
/// `daily` most recent days with a set, of each of the `weekly` most recent ISO weeks, and the
/// newest of all.
fn kept(sets: &[Listed], daily: usize, weekly: usize) -> BTreeSet<String> {
    let complete: Vec<(&Listed, NaiveDateTime)> = sets
        .iter()
        .filter(|s| s.complete)
        .filter_map(|s| {
            let stamp = s.id.get(..16)?;
            NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
                .ok()
                .map(|t| (s, t))
        })
        .collect();
    let mut keep = BTreeSet::new();
    let (mut days, mut weeks) = (BTreeSet::new(), BTreeSet::new());
    for (s, t) in &complete {
        let day = t.date();
        if days.len() < daily && days.insert(day) {
            keep.insert(s.id.clone());
        }
        let week = (t.iso_week().year(), t.iso_week().week());
        if weeks.len() < weekly && weeks.insert(week) {
            keep.insert(s.id.clone());
        }
    }
    if let Some((s, _)) = complete.first() {
        keep.insert(s.id.clone());
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(id: &str, complete: bool) -> Listed {
        Listed {
            id: id.into(),
            complete,
            parts: 1,
            bytes: 1,
            started_at: String::new(),
            finished_at: None,
            encrypted: false,
            error: None,
        }
    }

    #[test]
    fn prune_keeps_the_newest_of_each_recent_day_and_week() {
        // Newest first, as `list` gives them. 2026-11-30 is a Monday (ISO week 49).
        let sets = vec![
            set("20261202T030000Z", true),
            set("20261202T010000Z", true),
            set("20261201T030000Z", false),
            set("20261201T020000Z", true),
            set("20261130T020000Z", true),
            set("20261129T020000Z", true), // Sunday, week 48
            set("20261122T020000Z", true), // week 47
            set("20261115T020000Z", true), // week 46
        ];
        let keep = kept(&sets, 2, 3);
        let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
        assert_eq!(
            keep,
            [
                "20261122T020000Z",
                "20261129T020000Z",
                "20261201T020000Z",
                "20261202T030000Z"
            ]
        );
        assert_eq!(kept(&sets, 1, 0).len(), 1, "the newest alone");
    }
}
