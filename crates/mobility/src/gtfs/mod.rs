//! GTFS static feeds: the import into the `gtfs` MySQL instance as versions switched
//! atomically, the stop copies in MongoDB and Redis, and the queries on the live version.
//!
//! An import reads the feed file by file ([`source`]), checks each record (`files`) and
//! streams batches into multi-row INSERTs (`load`); a version that passes is copied
//! ([`sync`]) and made live by one pointer update ([`versions`]). Design and choices:
//! docs/gtfs.md.

pub mod fields;
mod files;
mod import;
mod load;
mod query;
mod row;
pub mod source;
mod spec;
pub mod sync;
pub mod versions;

use std::path::PathBuf;

pub use import::{Gtfs, ImportReport, Outcome};
pub use load::FileReport;
pub use query::{
    Departure, Departures, NearStop, NearStops, RouteDetail, RouteInfo, StopInfo, departure_window,
};
pub use spec::{FILES, FileSpec};

use tsp_hub::HubError;

/// The job type that imports a feed in a worker.
pub const JOB_TYPE: &str = "gtfs.import";

/// Why an import, a rollback or a query failed.
#[derive(Debug, thiserror::Error)]
pub enum GtfsError {
    /// A file or folder could not be read.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The zip archive is damaged or not a zip.
    #[error("{}: {message}", path.display())]
    Archive {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A file's bytes could not be read as CSV (truncated or damaged data).
    #[error("{file}: cannot be read: {message}")]
    Read {
        /// The file, and the line when known (`stop_times.txt:812`).
        file: String,
        /// What is wrong.
        message: String,
    },
    /// The feed breaks the rules: each problem names file, line and column. Nothing live
    /// changed.
    #[error("the feed is refused ({} problem{}): {}", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.join("; "))]
    Invalid(Vec<String>),
    /// The version loaded but its stop copies are incomplete; the previous version stays live.
    #[error("version {version} of feed {feed} loaded but not synced: {message}")]
    NotSynced {
        /// The feed.
        feed: String,
        /// The version that stays not live.
        version: u32,
        /// What is missing or failed.
        message: String,
    },
    /// Nothing to answer: no such feed, version, stop or route.
    #[error("{0}")]
    NotFound(String),
    /// A request's parameter is wrong.
    #[error("{field}: {message}")]
    BadRequest {
        /// The parameter.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A store failed.
    #[error(transparent)]
    Store(#[from] HubError),
    /// A task of the import panicked or was cancelled.
    #[error("import task failed: {0}")]
    Internal(String),
}

impl GtfsError {
    fn io(path: &std::path::Path, action: &'static str, source: std::io::Error) -> GtfsError {
        GtfsError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    /// Worth trying again later (a store down, copies not made): a job retries these; a bad
    /// feed it does not.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GtfsError::Store(_) | GtfsError::NotSynced { .. } | GtfsError::Internal(_)
        )
    }
}

/// What an import reports as it goes (a progress bar, a job's progress).
pub trait ImportProgress: Send + Sync {
    /// A phase began: `hash`, `load`, `validate`, `sync`, `switch`, `prune`.
    fn phase(&self, _phase: &str) {}
    /// `rows` rows of `file` were sent to MySQL so far.
    fn rows(&self, _file: &str, _rows: u64) {}
    /// A file is loaded.
    fn file_done(&self, _report: &FileReport) {}
}

/// Reports nothing.
pub struct NoProgress;

impl ImportProgress for NoProgress {}
