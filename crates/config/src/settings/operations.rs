//! The cache (`cache.*`), backups (`backup.*`) and GTFS imports (`gtfs.*`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tsp_config_derive::Settings;

use crate::field::FieldType;

/// The two-level query cache.
#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// redis instance of the shared (L2) cache and its invalidation channel
    #[setting(default = "cache")]
    pub redis: String,
    /// entries kept in each process (L1); 0 turns L1 off
    #[setting(ty = FieldType::UInt { min: 0, max: 10_000_000 }, default = 10_000)]
    pub l1_capacity: usize,
    /// how long a process keeps an entry (L1)
    #[setting(default = "30s")]
    pub l1_ttl: Duration,
    /// how long Redis keeps an entry (L2)
    #[setting(default = "5m")]
    pub l2_ttl: Duration,
    /// how long an invalidation waits for every subscribed process to drop its L1 copies
    #[setting(default = "500ms")]
    pub ack_timeout: Duration,
}

/// Backup sets and the tools that make and restore them (`backup.*`).
#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct BackupSettings {
    /// folder holding backup sets (one sub-folder each)
    #[setting(ty = FieldType::Str, default = "backups")]
    pub dir: PathBuf,
    /// file with a 32-byte key (64 hex digits): parts are encrypted with XChaCha20-Poly1305
    #[setting(ty = FieldType::File)]
    pub encryption_key_file: Option<PathBuf>,
    /// file with a 32-byte key (64 hex digits) that authenticates each set's manifest
    /// (HMAC-SHA256); unset: a key derived from `encryption_key_file`, or, without either, sets are
    /// not authenticated
    #[setting(ty = FieldType::File)]
    pub signing_key_file: Option<PathBuf>,
    /// `backup prune`: the newest complete set of each of this many days is kept
    #[setting(ty = FieldType::UInt { min: 1, max: 3650 }, default = 7)]
    pub keep_daily: u32,
    /// `backup prune`: and the newest complete set of each of this many ISO weeks
    #[setting(ty = FieldType::UInt { min: 0, max: 520 }, default = 4)]
    pub keep_weekly: u32,
    /// dump tool (`mysqldump` for MySQL 8)
    #[setting(default = "mariadb-dump")]
    pub mysql_dump: String,
    /// client that replays a dump (`mysql` for MySQL 8)
    #[setting(default = "mariadb")]
    pub mysql_client: String,
    /// binary-log reader for point-in-time recovery (`mysqlbinlog` for MySQL 8)
    #[setting(default = "mariadb-binlog")]
    pub mysql_binlog: String,
    /// InfluxDB 1.x server binary (`influxd backup -portable` / `restore -portable`)
    #[setting(default = "influxd")]
    pub influxd: String,
    /// InfluxDB 1.x backup/restore (RPC) port, on each instance's host
    #[setting(ty = FieldType::Port, default = 8088)]
    pub influx_rpc_port: u16,
    /// Redis server binary: reads a snapshot back for counting and restoring
    #[setting(default = "redis-server")]
    pub redis_server: String,
    /// the longest one part may take (dump, snapshot, export)
    #[setting(default = "30m")]
    pub timeout: Duration,
}

/// GTFS feed imports (`gtfs.*`).
#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct GtfsSettings {
    /// the feed the main job's trip generator and the stop queries use by default
    #[setting(default = "cairns")]
    pub feed: String,
    /// versions kept per feed (the live one, and earlier ones for `gtfs rollback`)
    #[setting(ty = FieldType::UInt { min: 2, max: 100 }, default = 3)]
    pub keep_versions: u32,
    /// rows per multi-row INSERT during an import
    #[setting(ty = FieldType::UInt { min: 100, max: 10_000 }, default = 2_000)]
    pub batch_rows: usize,
    /// folder of feeds uploaded through `POST /gtfs/uploads`, for `gtfs.import` jobs
    #[setting(ty = FieldType::Str, default = "gtfs-uploads")]
    pub upload_dir: PathBuf,
    /// largest feed `POST /gtfs/uploads` accepts, bytes
    #[setting(ty = FieldType::UInt { min: 1_024, max: 1 << 32 }, default = 200 << 20)]
    pub max_upload: u64,
}
