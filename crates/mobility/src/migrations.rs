//! The schema of each store, as versioned migrations.
//!
//! MySQL: one migration set per instance, embedded at build time from
//! `migrations/mysql/<instance>/<version>_<name>.sql` and run by [`tsp_hub::migrate_mysql`].
//! Files are append-only: an applied migration must not be edited (its checksum is checked);
//! change a schema with a new file.

use sqlx::migrate::Migrator;
use tsp_hub::MigrationReport;
use tsp_hub::{Hub, HubError};

static PORTAL: Migrator = sqlx::migrate!("migrations/mysql/portal");
static DATASET: Migrator = sqlx::migrate!("migrations/mysql/dataset");
static GTFS: Migrator = sqlx::migrate!("migrations/mysql/gtfs");
static INCENTIVE: Migrator = sqlx::migrate!("migrations/mysql/incentive");

/// The migration set of a MySQL instance, if it has one (user-added instances have none).
pub fn mysql(instance: &str) -> Option<&'static Migrator> {
    use tsp_config::instances as i;
    match instance {
        i::PORTAL => Some(&PORTAL),
        i::DATASET => Some(&DATASET),
        i::GTFS => Some(&GTFS),
        i::INCENTIVE => Some(&INCENTIVE),
        _ => None,
    }
}

/// Migrates every MySQL instance that has a migration set, one after another. Stops at the
/// first instance that fails and returns the reports so far with the error.
pub async fn run_mysql(
    hub: &Hub,
    dry_run: bool,
) -> Result<Vec<MigrationReport>, (Vec<MigrationReport>, HubError)> {
    let mut reports = Vec::new();
    for store in hub.mysql_instances() {
        let Some(m) = mysql(store.name()) else {
            continue;
        };
        match tsp_hub::migrate_mysql(store, m, dry_run).await {
            Ok(r) => reports.push(r),
            Err(e) => return Err((reports, e)),
        }
    }
    Ok(reports)
}
