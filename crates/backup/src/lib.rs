//! Backup sets of every store the configuration wires (docs/backup.md): each store's own tool
//! where it has one (`mariadb-dump`, `BGSAVE`, `influxd backup`), the driver for MongoDB;
//! parts compressed with zstd, optionally encrypted, each with its SHA-256 and counts in the
//! set's manifest.
//!
//! - `set`: making, listing, verifying and pruning sets; `restore`: putting one back.
//! - `mysql`, `redis_part` (with `redis_scratch`, `redis_restore`), `mongo_part`, `influx_part`: one store each; `dump_counter` and
//!   `rdb_keys` count rows and keys as a dump or a snapshot streams into its part.
//! - `part`, `seal`: a part's file (compression, encryption, checksum); `manifest`: the index.

#![warn(missing_docs, unreachable_pub)]

mod dump_counter;
mod error;
mod influx_part;
mod manifest;
mod mongo_part;
mod mysql;
mod part;
mod rdb_keys;
mod redis_part;
mod redis_restore;
mod redis_scratch;
mod restore;
mod seal;
mod set;
mod tools;

pub use dump_counter::BinlogPosition;
pub use error::BackupError;
pub use manifest::{FORMAT, Manifest, Part};
pub use mysql::options_file as mysql_options_file;
pub use restore::Restored;
pub use seal::Key;
pub use set::{Backups, Listed, Progress, ProgressFn, Stores};
