//! `tsp-job backup …` and `tsp-job restore`: their arguments (docs/backup.md).

use clap::{Args, Subcommand};

use super::choices::StoreKind;
use super::moment::moment;

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Make a set of every configured instance (or the stores named).
    Create {
        /// Folder of the sets (default `backup.dir`).
        #[arg(long)]
        to: Option<std::path::PathBuf>,
        #[command(flatten)]
        stores: StoreSelection,
        /// The manifest as JSON, no progress.
        #[arg(long)]
        json: bool,
    },
    /// Every set, newest first; incomplete ones say so.
    List {
        /// Folder of the sets (default `backup.dir`).
        #[arg(long)]
        from: Option<std::path::PathBuf>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check a set: every part's checksum, then read it through; with --restore-check, also
    /// restore it into a sandbox and compare counts with the manifest.
    Verify {
        /// The set's id.
        set: String,
        /// Folder of the sets (default `backup.dir`).
        #[arg(long)]
        from: Option<std::path::PathBuf>,
        #[command(flatten)]
        stores: StoreSelection,
        /// Restore into a fresh sandbox (removed afterwards) and compare counts.
        #[arg(long)]
        restore_check: bool,
    },
    /// Remove sets outside `backup.keep_daily` / `backup.keep_weekly`.
    Prune {
        /// Folder of the sets (default `backup.dir`).
        #[arg(long)]
        from: Option<std::path::PathBuf>,
        /// Say what would go, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print a new random key for `backup.encryption_key_file` (keep it apart from the sets).
    Keygen,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The set's id (see `tsp-job backup list`).
    pub set: String,
    /// Folder of the sets (default `backup.dir`).
    #[arg(long)]
    pub from: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub stores: StoreSelection,
    /// Overwrite targets that hold data.
    #[arg(long)]
    pub force: bool,
    /// Point-in-time recovery: then replay each MySQL instance's binary log up to this moment
    /// (RFC 3339, or `YYYY-MM-DD HH:MM:SS` in UTC; events at or after it are not replayed).
    #[arg(long, value_parser = moment)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Restore into a new sandbox (`tsp_sb_<tag>_*` databases, `sb:<tag>:` keys) instead of
    /// the configured stores, and keep it for inspection.
    #[arg(long)]
    pub into_sandbox: bool,
}

/// `--stores`: which kinds of store a backup command works on.
#[derive(Debug, Args, Clone)]
pub struct StoreSelection {
    /// Stores to work on, comma-separated.
    #[arg(
        long = "stores",
        value_delimiter = ',',
        default_value = "mysql,redis,mongo,influx"
    )]
    pub kinds: Vec<StoreKind>,
}

impl StoreSelection {
    /// The selection as the backup crate takes it.
    pub fn stores(&self) -> tsp_backup::Stores {
        let has = |kind| self.kinds.contains(&kind);
        tsp_backup::Stores {
            mysql: has(StoreKind::Mysql),
            redis: has(StoreKind::Redis),
            mongo: has(StoreKind::Mongo),
            influx: has(StoreKind::Influx),
        }
    }
}
