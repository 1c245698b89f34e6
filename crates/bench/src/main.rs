//! `tsp-bench`: the benchmarks of tsp-job, each printing one JSON line (docs/benchmarks.md).
//!
//! A binary of its own so that nothing only benchmarks use ships in `tsp-job`; it reads the same
//! configuration (`--config-dir`, `--set`, `TSP_*`) and runs the service's own components.

mod analytics;
mod backup;
mod cache;
mod cli;
mod console;
mod gtfs;
mod http;
mod hub;
mod queue;
mod trips;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tsp_config::LoadOptions;
use tsp_hub::Hub;
use tsp_server::cli::GlobalArgs;

use cli::BenchCommand;

/// The same allocator as `tsp-job`, so the figures are the service's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// tsp-bench: benchmarks of tsp-job on the configured stores (build with --release).
#[derive(Debug, Parser)]
#[command(name = "tsp-bench", version, about)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: BenchCommand,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = LoadOptions::from_process(cli.global.config_dir.clone(), cli.global.sets.clone());
    let config = match tsp_config::load(&opts) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    let tracing = tsp_server::logs::init(&config.otlp);
    let code = run_bench(cli, config, opts);
    tracing.shutdown();
    code
}

fn run_bench(cli: Cli, config: tsp_config::Config, opts: LoadOptions) -> ExitCode {
    let runtime = match tsp_server::runtime(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli.command, config, opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", tsp_server::error_chain(&e));
            ExitCode::from(1)
        }
    }
}

async fn run(
    command: BenchCommand,
    config: tsp_config::Config,
    opts: LoadOptions,
) -> anyhow::Result<()> {
    let hub = Hub::connect(&config)
        .await
        .context("cannot set up the stores")?;
    let line = bench(&hub, &opts, command).await?;
    println!("{}", serde_json::to_string(&line)?);
    hub.shutdown(Duration::from_secs(10)).await;
    Ok(())
}

async fn bench(
    hub: &Hub,
    opts: &LoadOptions,
    cmd: BenchCommand,
) -> anyhow::Result<serde_json::Value> {
    Ok(match cmd {
        BenchCommand::Hub(args) => hub::run(hub, &args).await?,
        BenchCommand::Queue(args) => queue::run(hub, &args).await?,
        BenchCommand::Trips(args) => trips::bench_trips(opts, &args).await?,
        BenchCommand::Analytics(args) => analytics::bench_analytics(opts, &args).await?,
        BenchCommand::Backup(args) => backup::bench_backup(opts, &args).await?,
        BenchCommand::Gtfs(args) => gtfs::bench_gtfs(opts, &args).await?,
        BenchCommand::Console(args) => console::bench_console(opts, &args).await?,
        BenchCommand::Http(args) => http::bench_http(opts, &args).await?,
        BenchCommand::Cache(args) => cache::bench_cache(opts, &args).await?,
    })
}
