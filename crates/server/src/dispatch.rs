//! Runs a command that needs the stores, on the async runtime.
//!
//! [`run`] is a plain function in the library rather than a `block_on` in `main.rs`: an `async
//! fn`'s body is compiled again in every crate that awaits it, so awaiting here in the binary
//! would compile the service's whole async call tree a second time (docs/benchmarks.md#build).

use std::time::Duration;

use anyhow::Context;
use tokio::runtime::Runtime;
use tsp_config::{Config, LoadOptions};
use tsp_hub::Hub;

use crate::app::App;
use crate::cli::{Command, ConfigCommand};
use crate::{commands, shutdown_signal, telemetry};

/// Connects the stores `command` needs and runs it to the end on `runtime`; the exit code.
pub fn run(
    runtime: &Runtime,
    command: Command,
    config: Config,
    opts: LoadOptions,
) -> anyhow::Result<u8> {
    runtime.block_on(on_hub(command, config, opts))
}

async fn on_hub(command: Command, config: Config, opts: LoadOptions) -> anyhow::Result<u8> {
    let prometheus = telemetry::prometheus();
    // Schema changes, backups and restores run as each store's migrator account; everything
    // else as the app account (docs/store-security.md#least-privilege).
    let config = match command {
        Command::Migrate(_) | Command::Backup(_) | Command::Restore(_) => config.as_migrator(),
        _ => config,
    };
    let hub = Hub::connect(&config)
        .await
        .context("cannot set up the stores")?;
    // Long-running processes take rotated credentials without a restart.
    let reloader = crate::reload::Reloader::new(&hub, &opts);
    let watch =
        matches!(command, Command::Serve | Command::Worker(_)).then(|| reloader.clone().spawn());
    let code = match command {
        Command::Health { json } => commands::health::health(&hub, json).await?,
        Command::Serve => commands::serve::serve(&hub, prometheus, reloader).await?,
        Command::Roundtrip => commands::roundtrip::roundtrip(&hub).await,
        Command::Worker(args) => print_json(
            &commands::jobs::worker(&app(&hub)?, &args, prometheus, shutdown_signal()).await?,
        )?,
        Command::Enqueue(args) => {
            let ids = commands::jobs::enqueue(&app(&hub)?, &args).await?;
            print_ids(&ids);
            0
        }
        Command::Jobs(cmd) => {
            println!("{}", commands::jobs::jobs(&app(&hub)?, &cmd).await?);
            0
        }
        Command::Migrate(args) => commands::migrate::migrate(&hub, &args).await?,
        Command::Simulate(args) => commands::trips::simulate(&app(&hub)?, &args).await?,
        Command::Query(cmd) => {
            println!("{}", commands::trips::query(&app(&hub)?, &cmd).await?);
            0
        }
        Command::Users(cmd) => commands::accounts::users(&app(&hub)?, &cmd).await?,
        Command::Admins(cmd) => commands::accounts::admins(&app(&hub)?, &cmd).await?,
        Command::Apikey(cmd) => commands::accounts::apikey(&app(&hub)?, &cmd).await?,
        Command::Schedule(cmd) => {
            println!("{}", commands::schedules::run(&app(&hub)?, &cmd).await?);
            0
        }
        Command::Backup(cmd) => commands::backup::backup(&hub, &opts, &cmd).await?,
        Command::Restore(args) => commands::backup::restore(&hub, &opts, &args).await?,
        Command::Gtfs(cmd) => commands::gtfs::gtfs(app(&hub)?.gtfs(), &cmd).await?,
        Command::Config(ConfigCommand::Reload { pid }) => {
            commands::config::reload(&hub, pid).await?
        }
        Command::Config(_)
        | Command::Version { .. }
        | Command::Completions { .. }
        | Command::Probe { .. }
        | Command::Man
        | Command::Openapi => 0,
    };
    if let Some(w) = watch {
        w.abort();
    }
    let closed = hub.shutdown(Duration::from_secs(10)).await;
    commands::jobs::record_lost_points(&hub, &closed).await;
    report_unwritten(closed);
    Ok(code)
}

/// The service's components on `hub` (the composition root, [`App::build`]).
fn app(hub: &Hub) -> anyhow::Result<App> {
    App::build(hub).context("cannot start")
}

/// The exit report: points accepted and never written are lost, and said so (stderr and log).
fn report_unwritten(closed: Vec<tsp_hub::ClosedWriter>) {
    for w in closed {
        let lost = w.stats.unwritten();
        if lost > 0 {
            tracing::error!(
                instance = %w.instance,
                target = %w.target,
                lost,
                refused = w.stats.failed,
                dropped = w.stats.dropped,
                unsent = lost.saturating_sub(w.stats.failed + w.stats.dropped),
                "InfluxDB points accepted and not written"
            );
            eprintln!(
                "influx.{} {}: {lost} points accepted and not written ({} refused, {} dropped for a full buffer, {} unsent at exit)",
                w.instance,
                w.target,
                w.stats.failed,
                w.stats.dropped,
                lost.saturating_sub(w.stats.failed + w.stats.dropped)
            );
        }
    }
}

/// Prints one JSON line (what the benchmarks and `worker` report); exit code 0.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<u8> {
    println!("{}", serde_json::to_string(value)?);
    Ok(0)
}

/// Prints enqueued ids, or a summary when there are many.
fn print_ids(ids: &[String]) {
    match ids {
        [first, .., last] if ids.len() > 20 => {
            println!("enqueued {} jobs ({first} … {last})", ids.len())
        }
        _ => ids.iter().for_each(|id| println!("{id}")),
    }
}
