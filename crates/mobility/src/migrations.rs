//! The schema of each store, as versioned migrations.
//!
//! MySQL: one migration set per instance, embedded at build time (build.rs) from
//! `migrations/mysql/<instance>/<version>_<name>.sql` and run by [`tsp_hub::migrate_mysql`].
//! Files are append-only: an applied migration must not be edited (its checksum is checked);
//! change a schema with a new file.

use std::borrow::Cow;

use async_recursion::async_recursion as boxed;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use tsp_hub::MigrationReport;
use tsp_hub::{Hub, HubError};

/// `(version, description, sql)` of each instance's files, in version order.
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

/// The migration set of a MySQL instance, if it has one (user-added instances have none).
///
/// Built as `sqlx::migrate!` builds it (the fields it fills are public for that macro, so they
/// hold within sqlx 0.8): the description is the file name's words, the checksum the SHA-384 of
/// the text, so sets applied by earlier builds still match.
pub fn mysql(instance: &str) -> Option<Migrator> {
    use tsp_config::instances as i;
    let files = match instance {
        i::PORTAL => embedded::PORTAL,
        i::DATASET => embedded::DATASET,
        i::GTFS => embedded::GTFS,
        i::INCENTIVE => embedded::INCENTIVE,
        _ => return None,
    };
    let migrations = files
        .iter()
        .map(|&(version, description, sql)| {
            let no_tx = sql.starts_with("-- no-transaction");
            let (description, sql) = (Cow::Borrowed(description), Cow::Borrowed(sql));
            Migration::new(version, description, MigrationType::Simple, sql, no_tx)
        })
        .collect();
    Some(Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    })
}

/// Migrates every MySQL instance that has a migration set, one after another. Stops at the
/// first instance that fails and returns the reports so far with the error.
#[boxed]
pub async fn run_mysql(
    hub: &Hub,
    dry_run: bool,
) -> Result<Vec<MigrationReport>, (Vec<MigrationReport>, HubError)> {
    let mut reports = Vec::new();
    for store in hub.mysql_instances() {
        let Some(m) = mysql(store.name()) else {
            continue;
        };
        match tsp_hub::migrate_mysql(store, &m, dry_run).await {
            Ok(r) => reports.push(r),
            Err(e) => return Err((reports, e)),
        }
    }
    Ok(reports)
}
