//! InfluxDB parts: `influxd backup -portable` of one database through the server's RPC port
//! (`backup.influx_rpc_port`), its files in one tar; restored with `influxd restore -portable
//! -newdb` (docs/backup.md#influxdb).

use std::collections::BTreeMap;
use std::path::Path;

use tokio::process::Command;
use tsp_config::{BackupSettings, InfluxApi};
use tsp_hub::InfluxStore;

use crate::error::BackupError;
use crate::manifest::Part;
use crate::part::{PartWriter, open_part};
use crate::seal::Key;
use crate::tools::{self, Who};

fn who(store: &InfluxStore) -> Who<'_> {
    Who {
        store: "influx",
        instance: store.name(),
    }
}

fn err(store: &InfluxStore, e: tsp_hub::HubError) -> BackupError {
    BackupError::store("influx", store.name(), e)
}

/// `host:port` of the instance's RPC (backup) port.
fn rpc_address(store: &InfluxStore, cfg: &BackupSettings) -> Result<String, BackupError> {
    let url = url::Url::parse(&store.settings().url)
        .map_err(|_| BackupError::Refused(format!("influx.{}.url: not a URL", store.name())))?;
    Ok(format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        cfg.influx_rpc_port
    ))
}

fn v1_only(store: &InfluxStore) -> Result<(), BackupError> {
    if store.settings().api == InfluxApi::V2 {
        return Err(who(store).failed(
            "influx backup",
            "api = v2: backups of InfluxDB 2 are not built yet (docs/backup.md#influxdb)",
        ));
    }
    Ok(())
}

/// What InfluxDB 1.x answers for a moment while it opens the shards a restore has imported.
fn opening(message: &str) -> bool {
    message.contains("engine is closed") || message.contains("shard is disabled")
}

/// A query, retried for up to ten seconds while shards are opening ([`opening`]).
async fn query(
    store: &InfluxStore,
    database: &str,
    q: &str,
) -> Result<serde_json::Value, BackupError> {
    let mut tries = 0;
    loop {
        match store.query_v1(database, q).await {
            Err(e) if tries < 40 && opening(&e.to_string()) => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            r => return r.map_err(|e| err(store, e)),
        }
    }
}

/// Points per measurement of `database` now (the largest field count of each).
pub(crate) async fn points(
    store: &InfluxStore,
    database: &str,
) -> Result<BTreeMap<String, u64>, BackupError> {
    let r = query(store, database, "SELECT COUNT(*) FROM /.*/").await?;
    let mut out = BTreeMap::new();
    for series in r
        .pointer("/results/0/series")
        .and_then(|s| s.as_array())
        .cloned()
        .unwrap_or_default()
    {
        let name = series["name"].as_str().unwrap_or_default().to_string();
        let most = series
            .pointer("/values/0")
            .and_then(|v| v.as_array())
            .map(|row| {
                row.iter()
                    .skip(1)
                    .filter_map(|c| c.as_u64())
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        out.insert(name, most);
    }
    Ok(out)
}

/// Whether `database` exists on the instance's server.
pub(crate) async fn exists(store: &InfluxStore, database: &str) -> Result<bool, BackupError> {
    let r = query(store, "", "SHOW DATABASES").await?;
    Ok(r.pointer("/results/0/series/0/values")
        .and_then(|v| v.as_array())
        .is_some_and(|rows| rows.iter().any(|row| row[0].as_str() == Some(database))))
}

/// The tool alone, for the benchmark: `influxd backup -portable` into `out`; the size written.
pub(crate) async fn native_backup(
    store: &InfluxStore,
    database: &str,
    cfg: &BackupSettings,
    out: &Path,
) -> Result<u64, BackupError> {
    v1_only(store)?;
    let mut cmd = Command::new(&cfg.influxd);
    cmd.args(["backup", "-portable", "-db", database, "-host"])
        .arg(rpc_address(store, cfg)?)
        .arg(out);
    tools::run(cmd, who(store), cfg.timeout).await?;
    let mut bytes = 0;
    for entry in std::fs::read_dir(out).map_err(|e| BackupError::io(out, "cannot list", e))? {
        bytes += entry
            .and_then(|e| e.metadata())
            .map(|m| m.len())
            .unwrap_or(0);
    }
    Ok(bytes)
}

/// Backs up `database` into `dir/file`.
pub(crate) async fn backup(
    store: &InfluxStore,
    database: &str,
    cfg: &BackupSettings,
    dir: &Path,
    key: Option<&Key>,
) -> Result<Part, BackupError> {
    v1_only(store)?;
    let server_version = store
        .ping()
        .await
        .map_err(|e| err(store, e))?
        .unwrap_or_default();
    // Counted first: the backup holds at least these (docs/backup.md#influxdb).
    let counts = points(store, database).await?;
    let taken_at = chrono::Utc::now().to_rfc3339();
    let tmp = tempfile::Builder::new()
        .prefix("tsp-influx-")
        .tempdir()
        .map_err(|e| BackupError::io(Path::new("(temporary folder)"), "cannot create", e))?;
    let mut cmd = Command::new(&cfg.influxd);
    cmd.args(["backup", "-portable", "-db", database, "-host"])
        .arg(rpc_address(store, cfg)?)
        .arg(tmp.path());
    tools::run(cmd, who(store), cfg.timeout).await?;
    let file = format!("influx-{}-{database}.tar.zst", store.name());
    let path = dir.join(&file);
    let mut writer = PartWriter::create(&path, key)?;
    {
        let mut tar = tar::Builder::new(&mut writer);
        tar.append_dir_all(".", tmp.path())
            .and_then(|_| tar.finish())
            .map_err(|e| BackupError::io(&path, "cannot write the part", e))?;
    }
    let raw_bytes = writer.raw_bytes;
    let written = writer.finish()?;
    Ok(Part {
        store: "influx".into(),
        instance: store.name().to_string(),
        file,
        object: database.to_string(),
        bytes: written.bytes,
        raw_bytes,
        sha256: written.sha256,
        server_version,
        taken_at,
        counts,
        details: serde_json::json!({"database": database}),
    })
}

/// Restores the part as database `target`, dropping an existing one first (the tool refuses
/// to restore over it); checks every measurement holds at least the points counted at backup.
pub(crate) async fn restore(
    store: &InfluxStore,
    target: &str,
    cfg: &BackupSettings,
    dir: &Path,
    part: &Part,
    key: Option<&Key>,
) -> Result<(), BackupError> {
    v1_only(store)?;
    let source = part.details["database"]
        .as_str()
        .unwrap_or(&part.object)
        .to_string();
    let tmp = tempfile::Builder::new()
        .prefix("tsp-influx-")
        .tempdir()
        .map_err(|e| BackupError::io(Path::new("(temporary folder)"), "cannot create", e))?;
    let input = open_part(&dir.join(&part.file), key)?;
    tar::Archive::new(input)
        .unpack(tmp.path())
        .map_err(|e| BackupError::part(&part.file, format!("not a readable tar: {e}")))?;
    if exists(store, target).await? {
        let drop = format!("DROP DATABASE \"{}\"", target.replace('"', "\\\""));
        query(store, "", &drop).await?;
    }
    let mut cmd = Command::new(&cfg.influxd);
    cmd.args([
        "restore",
        "-portable",
        "-db",
        &source,
        "-newdb",
        target,
        "-host",
    ])
    .arg(rpc_address(store, cfg)?)
    .arg(tmp.path());
    tools::run(cmd, who(store), cfg.timeout).await?;
    // Imported shards open in the background: until they have, a count can come back short.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let now = points(store, target).await?;
        let short = part
            .counts
            .iter()
            .find(|(m, want)| now.get(*m).copied().unwrap_or(0) < **want);
        match short {
            None => return Ok(()),
            Some((m, want)) if std::time::Instant::now() > deadline => {
                let got = now.get(m).copied().unwrap_or(0);
                return Err(BackupError::part(
                    &part.file,
                    format!(
                        "restored measurement `{m}` holds {got} points, the backup at least {want}"
                    ),
                ));
            }
            Some(_) => tokio::time::sleep(std::time::Duration::from_millis(250)).await,
        }
    }
}
