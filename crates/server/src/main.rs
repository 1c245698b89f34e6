//! `tsp-job`: see `tsp-job --help`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tsp_config::{Config, LoadOptions};
use tsp_hub::{Hub, Status};
use tsp_server::app::App;
use tsp_server::cli::{Cli, Command, ConfigCommand, MigrateArgs};
use tsp_server::{commands, http, shutdown_signal, telemetry};

/// Exit codes: 0 ok, 1 failure, 2 invalid configuration.
const EXIT_FAILURE: u8 = 1;
const EXIT_CONFIG: u8 = 2;

/// glibc's allocator spent about a third of the worker's CPU in `malloc`/`free` under a full
/// queue (many small short-lived strings per job, freed on other threads); mimalloc's
/// thread-local free lists handle that pattern far better.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_logging();
    let mut sets = cli.global.sets.clone();
    if let Command::Simulate(args) = &cli.command
        && args.per_job
    {
        sets.push("trips.batch=false".into());
    }
    let opts = LoadOptions::from_process(cli.global.config_dir.clone(), sets);
    if let Command::Config(ConfigCommand::Reference) = cli.command {
        print!("{}", commands::config::reference());
        return ExitCode::SUCCESS;
    }
    match cli.command {
        Command::Version { json } => return version(json),
        Command::Completions { shell } => return completions(shell),
        Command::Man => return man(),
        Command::Probe { url, timeout } => return probe(&url, timeout),
        _ => {}
    }
    let config = match tsp_config::load(&opts) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    match cli.command {
        Command::Config(ConfigCommand::Show { json, origin }) => {
            let (dir, chosen_by) = tsp_config::find_config_dir(cli.global.config_dir.clone());
            let folder = format!("{} ({chosen_by})", dir.display());
            println!("{}", commands::config::show(&config, json, origin, &folder));
            return ExitCode::SUCCESS;
        }
        Command::Config(ConfigCommand::Check) => {
            println!("configuration is valid ({} values)", config.shown.len());
            for w in &config.warnings {
                println!("warning: {w}");
            }
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let runtime = match tsp_server::runtime(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(run(cli.command, config, opts)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", tsp_server::error_chain(&e));
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

async fn run(command: Command, config: Config, opts: LoadOptions) -> anyhow::Result<u8> {
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
    let reloader = tsp_server::reload::Reloader::new(&hub, &opts);
    let watch =
        matches!(command, Command::Serve | Command::Worker(_)).then(|| reloader.clone().spawn());
    let code = match command {
        Command::Health { json } => health(&hub, json).await?,
        Command::Serve => serve(&hub, prometheus, reloader).await?,
        Command::Roundtrip => roundtrip(&hub).await,
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
        Command::Migrate(args) => migrate(&hub, &args).await?,
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
        | Command::Man => 0,
    };
    if let Some(w) = watch {
        w.abort();
    }
    let closed = hub.shutdown(Duration::from_secs(10)).await;
    commands::jobs::record_lost_points(&hub, &closed).await;
    report_unwritten(closed);
    Ok(code)
}

/// `tsp-job completions SHELL`: generated from the command line's own description.
fn completions(shell: clap_complete::Shell) -> ExitCode {
    use clap::CommandFactory;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "tsp-job", &mut script);
    write_out(&script)
}

/// `tsp-job man`: the manual page, generated from the command line's own description.
fn man() -> ExitCode {
    use clap::CommandFactory;
    let mut page = Vec::new();
    match clap_mangen::Man::new(Cli::command()).render(&mut page) {
        Ok(()) => write_out(&page),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// `tsp-job probe`: no configuration, no stores; one GET on a small runtime.
fn probe(url: &str, timeout: Duration) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(commands::probe::probe(url, timeout)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("probe failed: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Writes `bytes` to stdout; a reader that went away (`| head`) is not an error.
fn write_out(bytes: &[u8]) -> ExitCode {
    use std::io::Write;
    match std::io::stdout().write_all(bytes) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// `tsp-job version [--json]`: needs no configuration.
fn version(json: bool) -> ExitCode {
    let info = tsp_server::build_info::build_info();
    if json {
        match serde_json::to_string(&info) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        }
    } else {
        println!("tsp-job {}", tsp_server::build_info::LONG_VERSION);
    }
    ExitCode::SUCCESS
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

/// `tsp-job health`: 0 when every required store is up.
async fn health(hub: &Hub, json: bool) -> anyhow::Result<u8> {
    let h = hub.health().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&h)?);
    } else {
        print!("{}", commands::health::table(&h));
    }
    Ok(if h.status == Status::Up {
        0
    } else {
        EXIT_FAILURE
    })
}

/// `tsp-job serve`: fails fast when a required store is down, then serves until a signal.
async fn serve(
    hub: &Hub,
    prometheus: Option<metrics_exporter_prometheus::PrometheusHandle>,
    reloader: tsp_server::reload::Reloader,
) -> anyhow::Result<u8> {
    let health = hub.require().await.context("cannot start")?;
    for i in health.instances.iter().filter(|i| i.status == Status::Down) {
        tracing::warn!(store = i.store, instance = %i.instance, error = i.error.as_deref().unwrap_or(""), "optional store is down; it will be retried");
    }
    let app = App::build(hub).context("cannot start")?;
    let listen = hub.config().server.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    tracing::info!(%addr, "serving /health, /health/live, /health/ready, /metrics");
    let watcher = tokio::spawn(watch_health(hub.clone()));
    let activity = http::Activity::start(&app.stores().activity, &hub.config().activity).await;
    let grace = hub.config().queue.shutdown_grace;
    http::serve(
        listener,
        http::AppState::new(app, prometheus, activity).with_reloader(reloader),
        shutdown_signal(),
        grace,
    )
    .await?;
    watcher.abort();
    tracing::info!("shutting down");
    Ok(0)
}

/// One point of `influx.service_monitor.measurement` (`vendor_latency`): the round trip of a
/// health check to one store (the service's vendors), tagged with the store and instance.
/// Waiting for room in the writer's buffer is bounded by `influx.service_monitor.timeout`;
/// past it the point is dropped and counted, so a slow InfluxDB never holds up health checks.
async fn record_vendor_latency(hub: &Hub, w: &tsp_hub::PointWriter, i: &tsp_hub::InstanceHealth) {
    let sm = &hub.config().service_monitor;
    let mut point = tsp_hub::Point::new(sm.measurement.as_str())
        .tag("store", i.store)
        .tag("instance", i.instance.as_str())
        .field("up", i.status == Status::Up)
        .field("latency_ms", i.latency_ms);
    for (k, v) in hub.config().influx_tags.pairs() {
        point = point.tag(k, v);
    }
    match tokio::time::timeout(sm.timeout, w.write_wait(&point)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot record vendor latency"),
        Err(_) => {
            metrics::counter!("tsp_vendor_latency_dropped_total").increment(1);
            tracing::debug!("vendor latency point dropped: the writer stayed full");
        }
    }
}

/// `tsp-job roundtrip`: 1 when a required store failed its round trip or is down.
async fn roundtrip(hub: &Hub) -> u8 {
    let outcomes = commands::roundtrip::run(hub, Duration::from_secs(15)).await;
    let mut failed_required = false;
    for o in &outcomes {
        println!(
            "{} {:<7} {:<11} {:>8.1}ms  {}",
            if o.ok { "ok  " } else { "FAIL" },
            o.store,
            o.instance,
            o.ms,
            o.detail
        );
        failed_required |= !o.ok && o.required;
    }
    let h = hub.health().await;
    println!();
    print!("{}", commands::health::table(&h));
    if failed_required || h.status != Status::Up {
        EXIT_FAILURE
    } else {
        0
    }
}

/// `tsp-job migrate`: 1 on a refused or failed migration.
async fn migrate(hub: &Hub, args: &MigrateArgs) -> anyhow::Result<u8> {
    let dry = args.dry_run || args.action == tsp_server::cli::MigrateAction::Status;
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
        let app = app(hub)?;
        if let Some(store) = &app.stores().activity.log {
            tsp_server::http::ensure_activity_indexes(store, hub.config().activity.keep)
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

/// Re-checks health every `health.interval`: keeps the `tsp_store_up` gauges current, retries
/// optional stores that were down, logs each change of state, and records each check in the
/// service-monitor bucket (docs/metrics.md#points-in-influxdb).
async fn watch_health(hub: Hub) {
    let mut last: std::collections::HashMap<String, Status> = Default::default();
    let monitor = hub.service_monitor_writer().ok();
    let interval = hub.config().health.interval;
    loop {
        let h = hub.health().await;
        let first_round = last.is_empty();
        for i in &h.instances {
            if let Some(w) = &monitor {
                record_vendor_latency(&hub, w, i).await;
            }
            let key = format!("{}.{}", i.store, i.instance);
            if last.insert(key.clone(), i.status) != Some(i.status) && !first_round {
                match i.status {
                    Status::Up => tracing::info!(store = %key, "store is up"),
                    Status::Down => {
                        tracing::warn!(store = %key, error = i.error.as_deref().unwrap_or(""), "store is down")
                    }
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}
