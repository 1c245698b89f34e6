//! Restoring a Redis part: the snapshot loaded by a scratch server, the service's keys copied
//! into the instance with `DUMP`/`RESTORE` under its prefix (docs/backup.md#redis).

use std::path::Path;

use tsp_config::BackupSettings;
use tsp_hub::RedisStore;

use crate::error::BackupError;
use crate::manifest::Part;
use crate::part::open_part;
use crate::redis_part::{PIPELINE_BYTES, prefix_pattern, scan_round, store_err, who};
use crate::redis_scratch::Scratch;
use crate::seal::Key;

async fn send(
    store: &RedisStore,
    dst: &mut tsp_hub::RedisConn,
    pipe: &redis::Pipeline,
) -> Result<(), BackupError> {
    if pipe.is_empty() {
        return Ok(());
    }
    pipe.query_async::<()>(dst)
        .await
        .map_err(|e| store_err(store, "restore", &e))
}

/// Copies the snapshot's keys under the recorded prefix into the instance, renamed to its
/// prefix, with their remaining time to live; checks the count against the manifest.
pub(crate) async fn restore(
    store: &RedisStore,
    cfg: &BackupSettings,
    dir: &Path,
    part: &Part,
    key: Option<&Key>,
    replace: bool,
) -> Result<u64, BackupError> {
    let from_prefix = part
        .details
        .get("key_prefix")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let from_db = part.details.get("db").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
    let scratch_dir = Scratch::folder()?;
    let copy = scratch_dir.path().join("dump.rdb");
    {
        let mut input = open_part(&dir.join(&part.file), key)?;
        let mut out =
            std::fs::File::create(&copy).map_err(|e| BackupError::io(&copy, "cannot write", e))?;
        std::io::copy(&mut input, &mut out)
            .map_err(|e| BackupError::io(&dir.join(&part.file), "cannot read the part", e))?;
    }
    let scratch = Scratch::start(&cfg.redis_server, scratch_dir, who(store)).await?;
    let copied = copy_keys(store, &scratch, from_db, &from_prefix, replace).await;
    scratch.stop().await;
    let (persistent, expiring) = copied?;
    let want = part.counts.get("keys").copied().unwrap_or(0);
    if persistent != want {
        return Err(BackupError::part(
            &part.file,
            format!("restored {persistent} keys without a time to live, the snapshot had {want}"),
        ));
    }
    Ok(persistent + expiring)
}

/// Copies the keys: (without a time to live, with one) copied.
async fn copy_keys(
    store: &RedisStore,
    scratch: &Scratch,
    db: u32,
    from_prefix: &str,
    replace: bool,
) -> Result<(u64, u64), BackupError> {
    let scratch_err =
        |e: redis::RedisError| who(store).failed("redis-server (scratch)", e.to_string());
    let mut src = scratch.conn(db).await.map_err(scratch_err)?;
    let mut dst = store
        .conn()
        .await
        .map_err(|e| BackupError::store("redis", store.name(), e))?;
    let to_prefix = store.key_prefix().as_bytes().to_vec();
    let pattern = prefix_pattern(from_prefix);
    let (mut cursor, mut persistent, mut expiring) = (0u64, 0u64, 0u64);
    loop {
        let (next, keys) = scan_round(&mut src, cursor, &pattern)
            .await
            .map_err(scratch_err)?;
        if !keys.is_empty() {
            let mut read = redis::pipe();
            for k in &keys {
                read.cmd("PTTL").arg(k).cmd("DUMP").arg(k);
            }
            let values: Vec<(i64, Option<Vec<u8>>)> =
                read.query_async(&mut src).await.map_err(scratch_err)?;
            // Written in pipelines of at most a few megabytes, so each stays well inside the
            // instance's command timeout.
            let mut write = redis::pipe();
            let mut bytes = 0usize;
            for (k, (ttl, value)) in keys.iter().zip(values) {
                // Expired since the scan.
                let Some(value) = value else { continue };
                if ttl == -2 {
                    continue;
                }
                let mut name = to_prefix.clone();
                name.extend_from_slice(&k[from_prefix.len()..]);
                bytes += value.len() + name.len();
                // The key-schema record that `migrate` wrote on the empty target gives way to
                // the one that matches the restored keys.
                let schema = name.ends_with(b"schema") && k.len() == from_prefix.len() + 6;
                let c = write.cmd("RESTORE").arg(name).arg(ttl.max(0)).arg(value);
                if replace || schema {
                    c.arg("REPLACE");
                }
                if ttl == -1 {
                    persistent += 1;
                } else {
                    expiring += 1;
                }
                if bytes >= PIPELINE_BYTES {
                    send(store, &mut dst, &write).await?;
                    write = redis::pipe();
                    bytes = 0;
                }
            }
            send(store, &mut dst, &write).await?;
        }
        if next == 0 {
            return Ok((persistent, expiring));
        }
        cursor = next;
    }
}
