//! `tsp-job migrate`: every store's schema, then what comes with it (indexes, default schedules).

use anyhow::Context;
use tsp_hub::Hub;

use crate::EXIT_FAILURE;
use crate::app::App;
use crate::cli::{MigrateAction, MigrateArgs};

/// `tsp-job migrate`: 1 on a refused or failed migration.
pub async fn migrate(hub: &Hub, args: &MigrateArgs) -> anyhow::Result<u8> {
    let dry = args.dry_run || args.action == MigrateAction::Status;
    let (reports, failure) = tsp_mobility::migrate_all(hub, dry).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for r in &reports {
            let verb = if dry { "pending" } else { "applied" };
            if r.applied.is_empty() {
                println!(
                    "{}.{}: up to date ({} applied)",
                    r.store,
                    r.instance,
                    r.already.len()
                );
            }
            for m in &r.applied {
                println!("{}.{}: {verb} {m}", r.store, r.instance);
            }
        }
    }
    if let Some(e) = failure {
        eprintln!("error: {e}");
        return Ok(EXIT_FAILURE);
    }
    if !dry {
        let app = App::build(hub).context("cannot start")?;
        if let Some(store) = &app.stores().activity.log {
            crate::http::ensure_activity_indexes(store, hub.config().activity.keep)
                .await
                .context("cannot create the request_activity indexes")?;
        }
        // The schedules the service ships with come with its schema (docs/analytics.md).
        app.ensure_default_schedules()
            .await
            .context("cannot add the default schedules")?;
    }
    Ok(0)
}
