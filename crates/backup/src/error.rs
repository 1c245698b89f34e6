//! What can go wrong with a backup set, naming the store, instance, tool, part or file.

use std::path::{Path, PathBuf};

use tsp_hub::HubError;

/// A backup or restore failure.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// An external tool failed or is missing; `message` carries the end of its stderr.
    #[error("{store}.{instance}: {tool} failed: {message}")]
    Tool {
        /// `mysql`, `redis`, `mongo` or `influx`.
        store: &'static str,
        /// The configured instance.
        instance: String,
        /// The program.
        tool: String,
        /// What it said, or why it could not run.
        message: String,
    },
    /// A store refused or did not answer (the hub's error names the store and instance).
    #[error("{source}")]
    Store {
        /// The kind of store.
        store: &'static str,
        /// The instance.
        instance: String,
        /// The hub's error (secret-free), boxed: it is large.
        #[source]
        source: Box<HubError>,
    },
    /// A file of the set cannot be read or written.
    #[error("{}: {message}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What was being done.
        message: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A part does not match its manifest, or cannot be read back.
    #[error("part {part}: {message}")]
    Part {
        /// The part's file name.
        part: String,
        /// What is wrong.
        message: String,
    },
    /// The set, its manifest or the request is not acceptable (e.g. a target is not empty).
    #[error("{0}")]
    Refused(String),
}

impl BackupError {
    pub(crate) fn io(path: &Path, message: &str, source: std::io::Error) -> BackupError {
        BackupError::File {
            path: path.to_path_buf(),
            message: message.to_string(),
            source,
        }
    }

    pub(crate) fn store(store: &'static str, instance: &str, source: HubError) -> BackupError {
        BackupError::Store {
            store,
            instance: instance.to_string(),
            source: Box::new(source),
        }
    }

    pub(crate) fn part(part: &str, message: impl Into<String>) -> BackupError {
        BackupError::Part {
            part: part.to_string(),
            message: message.into(),
        }
    }
}
