//! `tsp-job`: see `tsp-job --help`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tsp_config::LoadOptions;
use tsp_server::cli::{Cli, Command, ConfigCommand};
use tsp_server::commands;

/// Exit codes: 0 ok, 1 failure ([`tsp_server::EXIT_FAILURE`]), 2 invalid configuration.
const EXIT_CONFIG: u8 = 2;

/// glibc's allocator spent about a third of the worker's CPU in `malloc`/`free` under a full
/// queue (many small short-lived strings per job, freed on other threads); mimalloc's
/// thread-local free lists handle that pattern far better.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Command::Openapi => return write_out(tsp_server::http::openapi_document().as_bytes()),
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
    let tracing = tsp_server::logs::init(&config.otlp);
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let code = run(cli, config, opts);
    tracing.shutdown();
    code
}

/// Runs a command that needs the configuration.
fn run(cli: Cli, config: tsp_config::Config, opts: LoadOptions) -> ExitCode {
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
            return ExitCode::from(tsp_server::EXIT_FAILURE);
        }
    };
    match tsp_server::dispatch::run(&runtime, cli.command, config, opts) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", tsp_server::error_chain(&e));
            ExitCode::from(tsp_server::EXIT_FAILURE)
        }
    }
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
            ExitCode::from(tsp_server::EXIT_FAILURE)
        }
    }
}

/// `tsp-job probe`: no configuration, no stores.
fn probe(url: &str, timeout: Duration) -> ExitCode {
    match commands::probe::run(url, timeout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("probe failed: {e:#}");
            ExitCode::from(tsp_server::EXIT_FAILURE)
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
            ExitCode::from(tsp_server::EXIT_FAILURE)
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
                return ExitCode::from(tsp_server::EXIT_FAILURE);
            }
        }
    } else {
        println!("tsp-job {}", tsp_server::build_info::LONG_VERSION);
    }
    ExitCode::SUCCESS
}
