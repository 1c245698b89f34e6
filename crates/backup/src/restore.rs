//! `restore`: parts of a complete set back into the configured instances. Every selected part
//! is checked first and every target looked at before anything is written; a non-empty target
//! is refused unless forced (docs/backup.md#restore).

use async_recursion::async_recursion as boxed;
use serde::Serialize;

use crate::error::BackupError;
use crate::manifest::Part;
use crate::part::check_part;
use crate::set::{Backups, Progress, Stores};
use crate::{influx_part, mongo_part, mysql, redis_part, redis_restore};

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    /// The set.
    pub set: String,
    /// Parts restored, in order.
    pub parts: Vec<String>,
    /// Seconds it took.
    pub seconds: f64,
}

impl Backups {
    /// The Influx database a part restores into: the instance's own, or the service monitor's.
    fn influx_target(&self, part: &Part) -> Result<String, BackupError> {
        let config = self.hub.config();
        if part.details["role"].as_str() == Some("service_monitor") {
            return Ok(config.service_monitor.bucket.clone());
        }
        let store = self
            .hub
            .influx(&part.instance)
            .map_err(|e| BackupError::store("influx", &part.instance, e))?;
        Ok(store.settings().v1_database().to_string())
    }

    /// What restoring `parts` would overwrite: `store.instance: what`, one line each.
    async fn occupied(&self, parts: &[&Part]) -> Result<Vec<String>, BackupError> {
        let mut out = Vec::new();
        for p in parts {
            let at = format!("{}.{}", p.store, p.instance);
            let found = match p.store.as_str() {
                "mysql" => {
                    let s = self.mysql_store(p)?;
                    let t = mysql::occupied(s).await?;
                    (!t.is_empty()).then(|| format!("tables with rows: {}", t.join(", ")))
                }
                "redis" => {
                    let s = self
                        .hub
                        .redis(&p.instance)
                        .map_err(|e| BackupError::store("redis", &p.instance, e))?;
                    let n = redis_part::occupied(s).await?;
                    (n > 0).then(|| format!("{n} keys under {}", s.key_prefix()))
                }
                "mongo" => {
                    let s = self
                        .hub
                        .mongo(&p.instance)
                        .map_err(|e| BackupError::store("mongo", &p.instance, e))?;
                    let c = mongo_part::occupied(s, &[*p]).await?;
                    (!c.is_empty()).then(|| format!("collection {} has documents", c.join(", ")))
                }
                _ => {
                    let s = self
                        .hub
                        .influx(&p.instance)
                        .map_err(|e| BackupError::store("influx", &p.instance, e))?;
                    let db = self.influx_target(p)?;
                    // The migration record aside: `tsp-job migrate` writes it on an empty store.
                    let has = influx_part::exists(s, &db).await?
                        && influx_part::points(s, &db)
                            .await?
                            .keys()
                            .any(|m| m != "_tsp_migrations");
                    has.then(|| format!("database {db} has points"))
                }
            };
            if let Some(what) = found {
                out.push(format!("{at}: {what}"));
            }
        }
        Ok(out)
    }

    fn mysql_store(&self, p: &Part) -> Result<&tsp_hub::MysqlStore, BackupError> {
        self.hub
            .mysql(&p.instance)
            .map_err(|e| BackupError::store("mysql", &p.instance, e))
    }

    /// Restores the selected stores of set `id`. With `force`, non-empty targets are
    /// overwritten (MySQL tables replaced, Redis keys replaced, Mongo collections dropped
    /// first, Influx databases dropped first).
    #[boxed]
    pub async fn restore(
        &self,
        id: &str,
        stores: Stores,
        force: bool,
    ) -> Result<Restored, BackupError> {
        self.restore_until(id, stores, force, None).await
    }

    /// [`Backups::restore`], then, with `until`, replays each MySQL instance's binary log from
    /// its dump's position up to that moment (point-in-time recovery).
    #[boxed]
    pub async fn restore_until(
        &self,
        id: &str,
        stores: Stores,
        force: bool,
        until: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Restored, BackupError> {
        let started = std::time::Instant::now();
        let (dir, m) = self.complete_manifest(id)?;
        let parts: Vec<&Part> = m.parts.iter().filter(|p| stores.has(&p.store)).collect();
        if parts.is_empty() {
            return Err(BackupError::Refused(format!(
                "set {id} has no part of the selected stores"
            )));
        }
        for p in &parts {
            check_part(&dir, p, self.key.as_ref())?;
        }
        let occupied = self.occupied(&parts).await?;
        if !occupied.is_empty() && !force {
            return Err(BackupError::Refused(format!(
                "refusing to overwrite data (restore with --force to replace it):\n  {}",
                occupied.join("\n  ")
            )));
        }
        let mut done = Vec::new();
        for p in parts {
            (self.progress)(Progress::Started(p.file.clone()));
            if let Err(e) = self.restore_part(&dir, p, force, until).await {
                let left: Vec<&str> = m
                    .parts
                    .iter()
                    .filter(|q| stores.has(&q.store) && !done.contains(&q.file))
                    .map(|q| q.file.as_str())
                    .collect();
                return Err(BackupError::Refused(format!(
                    "restore stopped at {}: {e}\n  restored: {}\n  not restored (or partly): {}",
                    p.file,
                    if done.is_empty() {
                        "nothing".to_string()
                    } else {
                        done.join(", ")
                    },
                    left.join(", ")
                )));
            }
            (self.progress)(Progress::Finished(Box::new(p.clone())));
            done.push(p.file.clone());
        }
        Ok(Restored {
            set: m.id,
            parts: done,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    async fn restore_part(
        &self,
        dir: &std::path::Path,
        p: &Part,
        force: bool,
        until: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), BackupError> {
        let key = self.key.as_ref();
        match p.store.as_str() {
            "mysql" => {
                let store = self.mysql_store(p)?;
                let settings = &self.hub.config().mysql[store.name()];
                mysql::restore(store, settings, &self.cfg, dir, p, key).await?;
                match until {
                    Some(t) => mysql::replay(store, settings, &self.cfg, p, t).await,
                    None => Ok(()),
                }
            }
            "redis" => {
                let store = self
                    .hub
                    .redis(&p.instance)
                    .map_err(|e| BackupError::store("redis", &p.instance, e))?;
                redis_restore::restore(store, &self.cfg, dir, p, key, force)
                    .await
                    .map(|_| ())
            }
            "mongo" => {
                let store = self
                    .hub
                    .mongo(&p.instance)
                    .map_err(|e| BackupError::store("mongo", &p.instance, e))?;
                mongo_part::restore(store, dir, p, key, force)
                    .await
                    .map(|_| ())
            }
            "influx" => {
                let store = self
                    .hub
                    .influx(&p.instance)
                    .map_err(|e| BackupError::store("influx", &p.instance, e))?;
                let target = self.influx_target(p)?;
                influx_part::restore(store, &target, &self.cfg, dir, p, key).await
            }
            other => Err(BackupError::part(
                &p.file,
                format!("unknown store `{other}`"),
            )),
        }
    }
}
