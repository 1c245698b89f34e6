//! Versioned, checksummed schema migrations for MySQL instances.
//!
//! The migration files belong to the domain (crate `tsp-mobility` embeds them with
//! `sqlx::migrate!`); running them is generic and lives here. State is sqlx's
//! `_sqlx_migrations` table in each database: version, description, checksum, success.
//!
//! - **Checksummed**: an applied migration whose file changed since is an error naming it;
//!   nothing runs.
//! - **Safe when two processes run at once**: the run holds a MySQL named lock (`GET_LOCK`) for
//!   the database, computes what is pending under it, applies, releases. The second process waits
//!   (at most [`LOCK_WAIT`]) and then finds nothing pending. The lock is taken here rather than by
//!   sqlx, whose `GET_LOCK(…, -1)` means "wait forever" on MySQL but returns at once, unlocked,
//!   on MariaDB.
//! - **Idempotent**: what is applied is skipped.
//! - A migration that failed half way (MySQL DDL is not transactional) leaves the version marked
//!   dirty: the next run refuses until an operator repairs it.

use async_recursion::async_recursion as boxed;
use serde::Serialize;
use sqlx::migrate::{Migrate, MigrateError, Migrator};

use std::time::Duration;

use crate::error::{Cause, HubError};

/// The longest a run waits for another process's migration of the same database.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(300);
use crate::mysql::{MysqlStore, NamedLock};

/// What a migration run did (or, dry, would do) on one instance.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationReport {
    /// `mysql`, `redis`, `mongo` or `influx`.
    pub store: &'static str,
    /// The instance's configured name.
    pub instance: String,
    /// Already applied before this run (`version description`).
    pub already: Vec<String>,
    /// Applied by this run; with `dry_run`, what would be.
    pub applied: Vec<String>,
    /// Whether this run only reported what it would apply.
    pub dry_run: bool,
}

impl MigrationReport {
    /// An empty report for one instance.
    pub fn new(store: &'static str, instance: &str, dry_run: bool) -> Self {
        MigrationReport {
            store,
            instance: instance.to_string(),
            already: Vec::new(),
            applied: Vec::new(),
            dry_run,
        }
    }
}

fn name(m: &sqlx::migrate::Migration) -> String {
    format!("{} {}", m.version, m.description)
}

fn migrate_error(store: &MysqlStore, e: MigrateError) -> HubError {
    let message = match &e {
        MigrateError::VersionMismatch(v) => format!(
            "migration {v} was changed after it was applied (checksum differs): restore the file, or add a new migration instead"
        ),
        MigrateError::Dirty(v) => {
            format!("migration {v} failed part way earlier and is marked dirty: repair it by hand")
        }
        MigrateError::VersionMissing(v) => {
            format!("migration {v} is applied in the database but missing from this build")
        }
        other => other.to_string(),
    };
    HubError::Store {
        store: "mysql",
        instance: store.name().to_string(),
        op: "migrate".into(),
        message,
        cause: Some(Cause::new(e, store.redactor())),
    }
}

/// Applies the pending migrations of `migrator` to `store` (or, with `dry_run`, only reports
/// them), under the database's migration lock.
#[boxed]
pub async fn migrate_mysql(
    store: &MysqlStore,
    migrator: &Migrator,
    dry_run: bool,
) -> Result<MigrationReport, HubError> {
    let err = |e| migrate_error(store, e);
    let mut lock = NamedLock::acquire(
        store,
        &format!("tsp_migrate:{}", store.database_name()),
        LOCK_WAIT,
        "another migration of this database",
    )
    .await?;
    let conn = lock.conn();
    let result = async {
        conn.ensure_migrations_table().await.map_err(err)?;
        if let Some(v) = conn.dirty_version().await.map_err(err)? {
            return Err(err(MigrateError::Dirty(v)));
        }
        let applied = conn.list_applied_migrations().await.map_err(err)?;
        for a in &applied {
            match migrator.iter().find(|m| m.version == a.version) {
                Some(m) if m.checksum != a.checksum => {
                    return Err(err(MigrateError::VersionMismatch(a.version)));
                }
                None if !migrator.ignore_missing => {
                    return Err(err(MigrateError::VersionMissing(a.version)));
                }
                _ => {}
            }
        }
        let mut report = MigrationReport::new("mysql", store.name(), dry_run);
        for m in migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
        {
            if applied.iter().any(|a| a.version == m.version) {
                report.already.push(name(m));
                continue;
            }
            if !dry_run {
                conn.apply(m).await.map_err(err)?;
            }
            report.applied.push(name(m));
        }
        Ok(report)
    }
    .await;
    lock.release().await;
    result
}
