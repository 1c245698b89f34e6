//! The command line.

use std::path::PathBuf;

mod backup;
mod choices;
mod gtfs;
mod moment;

pub use backup::{BackupCommand, RestoreArgs, StoreSelection};
pub use choices::{JobStateArg, MigrateAction, MissedTicks, OperatorRole, StoreKind};
use clap::{Args, Parser, Subcommand};
pub use gtfs::GtfsCommand;
use moment::moment;

/// tsp-job: the TSP job service of the MaaS platform.
#[derive(Debug, Parser)]
#[command(
    name = "tsp-job",
    version,
    long_version = crate::build_info::LONG_VERSION,
    about = "The TSP job service of the MaaS platform: a Redis job queue, its workers, and the stores their jobs write"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Folder with default.toml, {TSP_ENV}.toml and local.toml [env: TSP_CONFIG_DIR; default: ./config if present, else /etc/tsp-job]
    #[arg(long, global = true, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// Override one configuration key (highest precedence); repeatable.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Shell completions for bash, zsh, fish, elvish or PowerShell, on stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The manual page (roff), on stdout: `tsp-job man > tsp-job.1`.
    Man,
    /// The HTTP API's OpenAPI document, on stdout: `tsp-job openapi > docs/openapi.json`.
    Openapi,
    /// What this binary is: version, git revision, source date, compiler.
    Version {
        /// JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// GET a probe of a running `serve` or `worker` (the image's health check); exit 0 on 2xx.
    Probe {
        /// The probe's URL.
        #[arg(
            long,
            env = "TSP_PROBE_URL",
            default_value = "http://127.0.0.1:8080/health/live"
        )]
        url: String,
        /// Give up after this long (e.g. 500ms, 3s).
        #[arg(long, default_value = "3s", value_parser = tsp_config::parse_duration_text)]
        timeout: std::time::Duration,
    },
    /// Check every store; exit 0 when all required stores are up, 1 otherwise.
    Health {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run the HTTP API (docs/api.md); credentials as in docs/security.md.
    Serve,
    /// Write and read back through every store instance, then print health.
    Roundtrip,
    /// Process jobs until SIGINT/SIGTERM.
    Worker(WorkerArgs),
    /// Put jobs on a queue.
    Enqueue(EnqueueArgs),
    /// Inspect and operate queues.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Apply schema migrations (every store), or show what is pending.
    Migrate(MigrateArgs),
    /// The main job: seed users, enqueue a batch of generated trips, work them all, summarize.
    Simulate(SimulateArgs),
    /// Ask what the API answers: user stats and points, trips and users near, engagement.
    #[command(subcommand)]
    Query(QueryCommand),
    /// Platform users: create, set a password (read from stdin), suspend, reactivate.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Operators of the service (`portal.admin_users`).
    #[command(subcommand)]
    Admins(AdminsCommand),
    /// API keys for machine clients.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Repeatable jobs: a job per tick of a cron expression or an interval (docs/queue.md).
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Backup sets of every store: create, list, verify, prune (docs/backup.md).
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Put a backup set back into the configured stores (docs/backup.md#restore).
    Restore(RestoreArgs),
    /// GTFS feeds: import, list versions, roll back, prune (docs/gtfs.md).
    #[command(subcommand)]
    Gtfs(GtfsCommand),
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Add a schedule (or replace the one of that name); prints it with its next run.
    Add(ScheduleArgs),
    /// Every schedule with its next and last run.
    List,
    /// One schedule.
    Show {
        /// Its name.
        name: String,
    },
    /// Remove a schedule: no worker enqueues a tick of it after this returns.
    Remove {
        /// Its name.
        name: String,
    },
    /// Hold a schedule's ticks.
    Pause {
        /// Its name.
        name: String,
    },
    /// Release a held schedule: it carries on from its next tick after now.
    Resume {
        /// Its name.
        name: String,
    },
}

#[derive(Debug, Args, Clone)]
pub struct ScheduleArgs {
    /// Its name.
    pub name: String,
    /// A cron expression: five fields, or six with seconds first (`*/10 * * * * *`).
    #[arg(long, conflicts_with = "every")]
    pub cron: Option<String>,
    /// The IANA time zone of `--cron` (default UTC).
    #[arg(long)]
    pub tz: Option<String>,
    /// A fixed interval instead (`30s`, `5m`, `1h`).
    #[arg(long)]
    pub every: Option<String>,
    /// The job type each tick enqueues.
    #[arg(long = "type")]
    pub job_type: String,
    /// Its payload (JSON).
    #[arg(long, default_value = "{}")]
    pub payload: String,
    /// The queue.
    #[arg(long, default_value = "default")]
    pub queue: String,
    /// The job's priority.
    #[arg(long, default_value_t = 0)]
    pub priority: u16,
    /// Missed ticks: `skip` (run only the latest) or `catch-up`.
    #[arg(long, value_enum, default_value_t = MissedTicks::Skip)]
    pub missed: MissedTicks,
    /// With `--missed catch-up`: the most missed ticks run.
    #[arg(long, default_value_t = 100)]
    pub catch_up_max: u32,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user (they cannot log in until a password is set); prints the id.
    Create {
        /// Their email (unique).
        #[arg(long)]
        email: String,
        /// Their display name.
        #[arg(long)]
        name: String,
    },
    /// Set a user's password, read from stdin (one line): never from an argument, which other
    /// users of the machine could read.
    SetPassword {
        /// The user's id.
        id: u64,
    },
    /// Suspend a user: their sessions stop working in every process before this returns.
    Suspend {
        /// The user's id.
        id: u64,
    },
    /// Make a suspended user active again (their older sessions stay ended).
    Activate {
        /// The user's id.
        id: u64,
    },
    /// End every session of a user, in every process before this returns.
    RevokeSessions {
        /// The user's id.
        id: u64,
    },
    /// Mark a user deleted: they can no longer log in, and their sessions end everywhere.
    Delete {
        /// The user's id.
        id: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminsCommand {
    /// Create an operator (or change an existing one's role and password); the password is
    /// read from stdin.
    Create {
        /// Their login name.
        username: String,
        /// What they may do.
        #[arg(long, value_enum, default_value_t = OperatorRole::Viewer)]
        role: OperatorRole,
    },
    /// End every session of an operator, in every process before this returns.
    RevokeSessions {
        /// Their login name.
        username: String,
    },
    /// Delete an operator; their sessions end everywhere before this returns.
    Delete {
        /// Their login name.
        username: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Make a key; prints it once (only its hash is stored).
    Create {
        /// What the key is for.
        #[arg(long)]
        name: String,
        /// A scope it grants (repeatable): jobs:write, jobs:read, trips:write, users:read,
        /// analytics:read, admin.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
    },
    /// Every key, without the keys.
    List,
    /// Revoke a key: no process accepts it after this returns.
    Revoke {
        /// The key's id.
        id: u64,
    },
}

#[derive(Debug, Args, Clone)]
pub struct SimulateArgs {
    /// Portal users to seed (ids 1..=N; existing ones are kept).
    #[arg(long, default_value_t = 300)]
    pub users: u64,
    /// Trips to generate and complete.
    #[arg(long, default_value_t = 10_000)]
    pub trips: usize,
    /// Generator seed: the same seed gives the same trips (and, rerun, the same trip ids).
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Trips end within this many days before now.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Trip jobs run at once [default: queue.concurrency in batches; one job at a time, the
    /// smaller of that and the dataset pool].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Complete trips one job at a time instead of in batches (`trips.batch=false`).
    #[arg(long)]
    pub per_job: bool,
    /// The summary as JSON, and no progress bar.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand, Clone)]
pub enum QueryCommand {
    /// Trip count, distance, average duration, cost over the last DAYS days.
    Stats {
        user: u64,
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// Points earned, redeemed, and the balance.
    Points { user: u64 },
    /// Trips that started within RADIUS_KM of a point.
    TripsNear(NearArgs),
    /// Recently active users within RADIUS_KM of a point.
    UsersNear(NearArgs),
    /// Per user trips, distance, duration and mode variety over DAYS days.
    Engagement {
        #[arg(long, default_value_t = 7)]
        days: u32,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Transit stops within RADIUS_KM of a point, nearest first (live GTFS version).
    StopsNear {
        #[command(flatten)]
        near: NearArgs,
        /// The feed [default: gtfs.feed].
        #[arg(long)]
        feed: Option<String>,
    },
    /// Departures from a stop on a date (default today, UTC) from a time (default 00:00).
    Departures {
        /// The stop's id.
        stop: String,
        /// YYYY-MM-DD.
        #[arg(long)]
        date: Option<String>,
        /// HH:MM or HH:MM:SS.
        #[arg(long)]
        from: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        feed: Option<String>,
    },
    /// Every route of the live GTFS version.
    Routes {
        #[arg(long)]
        feed: Option<String>,
    },
    /// One route with its agency and stops.
    Route {
        id: String,
        #[arg(long)]
        feed: Option<String>,
    },
}

#[derive(Debug, Args, Clone)]
pub struct NearArgs {
    #[arg(long, allow_hyphen_values = true)]
    pub lat: f64,
    #[arg(long, allow_hyphen_values = true)]
    pub lng: f64,
    #[arg(long)]
    pub radius_km: f64,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

#[derive(Debug, Args, Clone)]
pub struct MigrateArgs {
    /// `up` applies what is pending; `status` only reports.
    #[arg(value_enum, default_value_t = MigrateAction::Up)]
    pub action: MigrateAction,
    /// Report what `up` would apply, without applying.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct WorkerArgs {
    /// Queues to work (repeatable) [default: `default` and the trips queue].
    #[arg(long = "queue")]
    pub queues: Vec<String>,
    /// Jobs run at once per queue [default: queue.concurrency].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Serve /health/live, /health/ready and /metrics on this address (e.g. 0.0.0.0:9100).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args, Clone)]
pub struct EnqueueArgs {
    /// Job type, e.g. builtin.noop.
    pub job_type: String,
    /// JSON payload.
    #[arg(long, default_value = "{}")]
    pub payload: String,
    #[arg(long, default_value = "default")]
    pub queue: String,
    /// 0-1023, higher runs first.
    #[arg(long, default_value_t = 0)]
    pub priority: u16,
    /// Run no earlier than this from now (e.g. 500ms, 10s, 5m).
    #[arg(long)]
    pub delay: Option<String>,
    #[arg(long)]
    pub dedup_key: Option<String>,
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Enqueue this many copies (bulk).
    #[arg(long, default_value_t = 1)]
    pub count: usize,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Counts per state of every queue.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// One job in full.
    Show {
        id: String,
        #[arg(long, default_value = "default")]
        queue: String,
    },
    /// Jobs in a state: waiting, delayed, active, completed, dead (or failed).
    List {
        #[arg(long, value_enum)]
        state: JobStateArg,
        #[arg(long, default_value = "default")]
        queue: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Requeue a dead-lettered job, or all of them.
    Retry {
        id: Option<String>,
        #[arg(long)]
        all_failed: bool,
        #[arg(long, default_value = "default")]
        queue: String,
    },
    /// Check that every job is in exactly one state (and every held job has a lease that can
    /// lapse); with --repair, mend what is found. Exit 1 when something is wrong and not mended.
    Audit {
        /// One queue [default: every known queue].
        #[arg(long)]
        queue: Option<String>,
        #[arg(long)]
        repair: bool,
        #[arg(long)]
        json: bool,
    },
    /// Cancel waiting or delayed jobs: each is removed with everything stored for it; active,
    /// finished and dead ones are left alone (exit 1 if any was not cancelled).
    Cancel {
        #[arg(required = true)]
        ids: Vec<String>,
        #[arg(long, default_value = "default")]
        queue: String,
    },
    /// Run completed jobs again: those that finished at or after a moment go back to waiting.
    /// After a restore rolled other stores back to a backup set while the queue kept its state
    /// (docs/backup.md#redis-kept-by-its-append-only-file). Only jobs still kept as completed can.
    Rerun {
        /// RFC 3339, or `YYYY-MM-DD HH:MM:SS` in UTC.
        #[arg(long, value_parser = moment)]
        completed_since: chrono::DateTime<chrono::Utc>,
        #[arg(long, default_value = "default")]
        queue: String,
    },
    /// Stop workers taking jobs from a queue (producers can still enqueue).
    Pause { queue: String },
    /// Let workers take jobs from a paused queue again.
    Resume { queue: String },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration, secrets masked.
    Show {
        #[arg(long)]
        json: bool,
        /// Show where each value came from.
        #[arg(long)]
        origin: bool,
    },
    /// Validate; exit 0 when valid, 2 otherwise.
    Check,
    /// Print the reference of every key as a Markdown table.
    Reference,
    /// Try the configured credentials against every store; with --pid, then have that `serve`
    /// or `worker` process take them (SIGHUP). Exit 1, signalling nothing, when any is refused.
    Reload {
        /// The process to signal.
        #[arg(long)]
        pid: Option<i32>,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// `--help` (and the completions and man page made from it) says what each subcommand does.
    #[test]
    fn every_subcommand_says_what_it_does() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in cmd.get_subcommands() {
                let here = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(here.clone());
                }
                walk(sub, &here, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "tsp-job", &mut missing);
        assert!(missing.is_empty(), "no description: {missing:?}");
    }
}
