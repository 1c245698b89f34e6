//! The `gtfs` subcommands (docs/gtfs.md).

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum GtfsCommand {
    /// Import a feed (a folder or a .zip) as a new version, made live once checked and synced.
    Import {
        /// The feed's folder or zip archive.
        path: std::path::PathBuf,
        /// The feed's name [default: gtfs.feed].
        #[arg(long)]
        feed: Option<String>,
        /// The report as JSON, no progress.
        #[arg(long)]
        json: bool,
    },
    /// Make the version before the live one live again.
    Rollback {
        /// The feed [default: gtfs.feed].
        feed: Option<String>,
    },
    /// A feed's versions, newest first.
    Versions {
        /// The feed [default: gtfs.feed].
        feed: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove versions beyond gtfs.keep_versions (imports do this too).
    Prune {
        /// The feed [default: gtfs.feed].
        feed: Option<String>,
    },
}
