//! MySQL/MariaDB parts: a logical dump (`mariadb-dump --single-transaction`) with the binary-log
//! position, replayed with the `mariadb` client (docs/backup.md#mysql for why not a physical
//! copy).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use secrecy::ExposeSecret;
use sqlx::Row;
use tokio::process::Command;
use tsp_config::{BackupSettings, MysqlSettings, TlsMode};
use tsp_hub::MysqlStore;

use crate::dump_counter::DumpCounter;
use crate::error::BackupError;
use crate::manifest::Part;
use crate::part::{PartWriter, open_part};
use crate::seal::Key;
use crate::tools::{self, Who};

/// Where to connect, as the client tools take it.
struct Target {
    host: String,
    port: u16,
    user: String,
    password: String,
}

fn target(s: &MysqlSettings) -> Result<Target, BackupError> {
    match &s.url {
        None => Ok(Target {
            host: s.host.clone(),
            port: s.port,
            user: s.user.clone(),
            password: s.password.expose_secret().to_string(),
        }),
        Some(url) => {
            let u = url::Url::parse(url.expose_secret())
                .map_err(|_| BackupError::Refused(format!("mysql.{}.url: not a URL", s.name)))?;
            let decode = |t: &str| {
                url::form_urlencoded::parse(format!("x={t}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            Ok(Target {
                host: u.host_str().unwrap_or("localhost").to_string(),
                port: u.port().unwrap_or(3306),
                user: decode(u.username()),
                password: decode(u.password().unwrap_or_default()),
            })
        }
    }
}

/// An option file (mode 0600, removed on drop) carrying the credentials, so they are never on a
/// command line or in the environment.
pub fn options_file(s: &MysqlSettings) -> Result<tempfile::NamedTempFile, BackupError> {
    let t = target(s)?;
    let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
    let mut text = format!(
        "[client]\nhost={}\nport={}\nuser={}\npassword={}\n",
        quote(&t.host),
        t.port,
        quote(&t.user),
        quote(&t.password)
    );
    match s.tls.mode {
        TlsMode::Disabled | TlsMode::Preferred => {}
        TlsMode::Required => text.push_str("ssl\n"),
        TlsMode::VerifyCa | TlsMode::VerifyIdentity => {
            text.push_str("ssl\nssl-verify-server-cert\n");
        }
    }
    for (key, path) in [
        ("ssl-ca", &s.tls.ca),
        ("ssl-cert", &s.tls.cert),
        ("ssl-key", &s.tls.key),
    ] {
        if let Some(p) = path {
            text.push_str(&format!("{key}={}\n", quote(&p.display().to_string())));
        }
    }
    let mut f = tempfile::Builder::new()
        .prefix("tsp-backup-")
        .tempfile()
        .map_err(|e| BackupError::io(Path::new("(temporary option file)"), "cannot create", e))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.flush())
        .map_err(|e| BackupError::io(f.path(), "cannot write", e))?;
    Ok(f)
}

fn who(store: &MysqlStore) -> Who<'_> {
    Who {
        store: "mysql",
        instance: store.name(),
    }
}

async fn server_facts(store: &MysqlStore) -> Result<(String, bool), BackupError> {
    let row = store
        .timed(
            "backup facts",
            sqlx::query("SELECT VERSION(), @@log_bin").fetch_one(store.pool()),
        )
        .await
        .map_err(|e| BackupError::store("mysql", store.name(), e))?;
    let version: String = row.try_get(0).unwrap_or_default();
    let log_bin: i64 = row.try_get(1).unwrap_or(0);
    Ok((version, log_bin == 1))
}

/// `mariadb-dump` of the instance's database to stdout, as a set takes it.
fn dump_command(
    store: &MysqlStore,
    tools_cfg: &BackupSettings,
    options: &Path,
    binlog_on: bool,
) -> Command {
    let mut cmd = Command::new(&tools_cfg.mysql_dump);
    cmd.arg(format!("--defaults-extra-file={}", options.display()))
        .args([
            "--single-transaction",
            "--quick",
            "--routines",
            "--triggers",
            "--hex-blob",
            "--no-tablespaces",
            "--default-character-set=utf8mb4",
        ]);
    if binlog_on {
        // Comment form (=2): the position is recorded, not executed on restore.
        cmd.arg("--master-data=2");
    }
    cmd.arg(store.database_name());
    cmd
}

/// The tool alone, for the benchmark: the same dump into a plain file; its size.
pub(crate) async fn native_dump(
    store: &MysqlStore,
    settings: &MysqlSettings,
    tools_cfg: &BackupSettings,
    out: &Path,
) -> Result<u64, BackupError> {
    let (_, binlog_on) = server_facts(store).await?;
    let options = options_file(settings)?;
    let cmd = dump_command(store, tools_cfg, options.path(), binlog_on);
    let mut file =
        std::fs::File::create(out).map_err(|e| BackupError::io(out, "cannot write", e))?;
    let mut bytes = 0u64;
    tools::stream_stdout(cmd, who(store), tools_cfg.timeout, |piece| {
        bytes += piece.len() as u64;
        file.write_all(piece)
            .map_err(|e| BackupError::io(out, "cannot write", e))
    })
    .await?;
    Ok(bytes)
}

/// Dumps the instance's database into `dir/file`.
pub(crate) async fn dump(
    store: &MysqlStore,
    settings: &MysqlSettings,
    tools_cfg: &BackupSettings,
    dir: &Path,
    key: Option<&Key>,
) -> Result<Part, BackupError> {
    let (server_version, binlog_on) = server_facts(store).await?;
    let options = options_file(settings)?;
    let file = format!("mysql-{}.sql.zst", store.name());
    let taken_at = chrono::Utc::now().to_rfc3339();
    let cmd = dump_command(store, tools_cfg, options.path(), binlog_on);
    let mut writer = PartWriter::create(&dir.join(&file), key)?;
    let mut counter = DumpCounter::new();
    tools::stream_stdout(cmd, who(store), tools_cfg.timeout, |piece| {
        counter.feed(piece);
        writer.write_all(piece)
    })
    .await?;
    let raw_bytes = writer.raw_bytes;
    let written = writer.finish()?;
    let details = serde_json::json!({
        "database": store.database_name(),
        "binlog": counter.binlog,
        "binlog_enabled": binlog_on,
    });
    Ok(Part {
        store: "mysql".into(),
        instance: store.name().to_string(),
        file,
        object: store.database_name().to_string(),
        bytes: written.bytes,
        raw_bytes,
        sha256: written.sha256,
        server_version,
        taken_at,
        counts: counter.rows,
        details,
    })
}

/// Rows of each base table of the instance's database.
pub(crate) async fn table_rows(store: &MysqlStore) -> Result<BTreeMap<String, u64>, BackupError> {
    let err = |e| BackupError::store("mysql", store.name(), e);
    let tables: Vec<String> = store
        .timed(
            "backup tables",
            sqlx::query_scalar(
                "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'",
            )
            .fetch_all(store.pool()),
        )
        .await
        .map_err(err)?;
    let mut out = BTreeMap::new();
    for t in tables {
        let n: i64 = store
            .timed(
                "backup count",
                sqlx::query_scalar(&format!("SELECT COUNT(*) FROM `{}`", t.replace('`', "``")))
                    .fetch_one(store.pool()),
            )
            .await
            .map_err(err)?;
        out.insert(t, n.max(0) as u64);
    }
    Ok(out)
}

/// Tables holding rows, other than the migration record: what a restore would overwrite.
pub(crate) async fn occupied(store: &MysqlStore) -> Result<Vec<String>, BackupError> {
    Ok(table_rows(store)
        .await?
        .into_iter()
        .filter(|(t, n)| *n > 0 && t != "_sqlx_migrations")
        .map(|(t, _)| t)
        .collect())
}

/// Replays the part into the instance's database, then checks each table's rows against the
/// manifest.
pub(crate) async fn restore(
    store: &MysqlStore,
    settings: &MysqlSettings,
    tools_cfg: &BackupSettings,
    dir: &Path,
    part: &Part,
    key: Option<&Key>,
) -> Result<(), BackupError> {
    let options = options_file(settings)?;
    let mut cmd = Command::new(&tools_cfg.mysql_client);
    cmd.arg(format!(
        "--defaults-extra-file={}",
        options.path().display()
    ))
    .arg("--default-character-set=utf8mb4")
    .arg(store.database_name());
    let input = open_part(&dir.join(&part.file), key)?;
    tools::feed_stdin(cmd, who(store), tools_cfg.timeout, input).await?;
    let now = table_rows(store).await?;
    for (table, want) in &part.counts {
        let got = now.get(table).copied().unwrap_or(0);
        if got != *want {
            return Err(BackupError::part(
                &part.file,
                format!("restored table `{table}` holds {got} rows, the dump had {want}"),
            ));
        }
    }
    Ok(())
}

/// Point-in-time recovery: replays the binary log from the dump's position up to (not
/// including) `until`, only the events of the dumped database, renamed to the instance's
/// database when they differ (docs/backup.md#point-in-time-recovery).
pub(crate) async fn replay(
    store: &MysqlStore,
    settings: &MysqlSettings,
    tools_cfg: &BackupSettings,
    part: &Part,
    until: chrono::DateTime<chrono::Utc>,
) -> Result<(), BackupError> {
    let position: Option<crate::dump_counter::BinlogPosition> = part
        .details
        .get("binlog")
        .cloned()
        .and_then(|b| serde_json::from_value(b).ok());
    let Some(position) = position else {
        return Err(BackupError::Refused(format!(
            "{}: no binary-log position (the server's binary log was off when the set was made): \
             point-in-time recovery is not possible",
            part.file
        )));
    };
    let taken = chrono::DateTime::parse_from_rfc3339(&part.taken_at)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| BackupError::part(&part.file, "taken_at is not a time"))?;
    if until < taken {
        return Err(BackupError::Refused(format!(
            "--until {until} is before {} was taken ({taken}): restore an older set",
            part.file
        )));
    }
    let source = part.details["database"]
        .as_str()
        .unwrap_or(&part.object)
        .to_string();
    let target = store.database_name();
    let options = options_file(settings)?;
    let mut reader = Command::new(&tools_cfg.mysql_binlog);
    reader
        .arg(format!(
            "--defaults-extra-file={}",
            options.path().display()
        ))
        .args(["--read-from-remote-server", "--to-last-log"])
        .arg(format!("--start-position={}", position.position))
        // The tool reads --stop-datetime in its own time zone.
        .arg(format!(
            "--stop-datetime={}",
            until.format("%Y-%m-%d %H:%M:%S")
        ))
        .env("TZ", "UTC")
        .arg(format!("--database={source}"));
    if source != target {
        reader.arg(format!("--rewrite-db={source}->{target}"));
    }
    reader.arg(&position.file);
    let mut client = Command::new(&tools_cfg.mysql_client);
    client
        .arg(format!(
            "--defaults-extra-file={}",
            options.path().display()
        ))
        .arg("--default-character-set=utf8mb4")
        .arg(target);
    tools::pipe(reader, client, who(store), tools_cfg.timeout).await
}
