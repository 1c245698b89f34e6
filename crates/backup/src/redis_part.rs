//! The Redis part: a `BGSAVE` snapshot (RDB), read from the server's folder into the part once,
//! its keys counted on the way (`rdb_keys`). Restoring reads the snapshot back through a scratch
//! `redis-server` on a private Unix socket: the store's own code reads its own format, and the
//! service's keys (under its prefix) are copied with `DUMP`/`RESTORE`, so a restore needs no
//! access to the target's files and can go to another prefix (docs/backup.md#redis). The
//! scratch server is `redis_scratch`, the restore `redis_restore`.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;
use tsp_config::BackupSettings;
use tsp_hub::RedisStore;

use crate::error::BackupError;
use crate::manifest::Part;
use crate::part::PartWriter;
use crate::rdb_keys::{self, KeyCount, RdbError};
use crate::redis_scratch::Scratch;
use crate::seal::Key;
use crate::tools::Who;

const KEYS_PER_ROUND: usize = 500;
pub(crate) const PIPELINE_BYTES: usize = 4 * 1024 * 1024;

pub(crate) fn who(store: &RedisStore) -> Who<'_> {
    Who {
        store: "redis",
        instance: store.name(),
    }
}

pub(crate) fn store_err(store: &RedisStore, op: &str, e: &redis::RedisError) -> BackupError {
    BackupError::store("redis", store.name(), store.command_error(op, e))
}

/// A glob matching every key that starts with `prefix`.
pub(crate) fn prefix_pattern(prefix: &str) -> String {
    let mut p = String::new();
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('*');
    p
}

fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
}

async fn persistence(
    store: &RedisStore,
    conn: &mut impl ConnectionLike,
) -> Result<String, BackupError> {
    redis::cmd("INFO")
        .arg("persistence")
        .query_async(conn)
        .await
        .map_err(|e| store_err(store, "info", &e))
}

/// `BGSAVE SCHEDULE`, then waits (polling `INFO persistence`: Redis has no notification) until
/// a save that started after the request has finished, and checks it succeeded.
async fn bgsave(store: &RedisStore, timeout: Duration) -> Result<(), BackupError> {
    let mut conn = store
        .conn()
        .await
        .map_err(|e| BackupError::store("redis", store.name(), e))?;
    let saves = |info: &str| info_field(info, "rdb_saves").and_then(|v| v.parse::<u64>().ok());
    let deadline = Instant::now() + timeout;
    // `BGSAVE SCHEDULE` is refused while another save runs (another backup, or Redis's own):
    // then wait for that one to end and ask again, so the snapshot is one taken after this
    // request.
    let wanted = loop {
        let info = persistence(store, &mut conn).await?;
        let before = saves(&info).ok_or_else(|| {
            who(store).failed(
                "BGSAVE",
                "INFO persistence has no rdb_saves (Redis 7.0 or newer needed)",
            )
        })?;
        // A save already running started before this request: the one scheduled after it counts.
        let wanted = before
            + if info_field(&info, "rdb_bgsave_in_progress").as_deref() == Some("1") {
                2
            } else {
                1
            };
        let asked: Result<String, redis::RedisError> = redis::cmd("BGSAVE")
            .arg("SCHEDULE")
            .query_async(&mut conn)
            .await;
        match asked {
            Ok(_) => break wanted,
            Err(e)
                if e.to_string().contains("already in progress") && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(store_err(store, "bgsave", &e)),
        }
    };
    loop {
        let info = persistence(store, &mut conn).await?;
        if saves(&info).unwrap_or(0) >= wanted
            && info_field(&info, "rdb_bgsave_in_progress").as_deref() == Some("0")
        {
            return match info_field(&info, "rdb_last_bgsave_status").as_deref() {
                Some("ok") => Ok(()),
                other => Err(who(store).failed(
                    "BGSAVE",
                    format!(
                        "the snapshot failed (rdb_last_bgsave_status {other:?}); see the Redis log"
                    ),
                )),
            };
        }
        if Instant::now() > deadline {
            return Err(who(store).failed(
                "BGSAVE",
                format!("not finished within {timeout:?} (backup.timeout)"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn snapshot_path(store: &RedisStore) -> Result<PathBuf, BackupError> {
    let mut conn = store
        .conn()
        .await
        .map_err(|e| BackupError::store("redis", store.name(), e))?;
    let mut parts = Vec::new();
    for name in ["dir", "dbfilename"] {
        let v: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(name)
            .query_async(&mut conn)
            .await
            .map_err(|e| store_err(store, "config get", &e))?;
        parts.push(v.get(1).cloned().unwrap_or_default());
    }
    Ok(Path::new(&parts[0]).join(&parts[1]))
}

/// Keys matching `pattern`, a round at a time.
pub(crate) async fn scan_round(
    conn: &mut impl ConnectionLike,
    cursor: u64,
    pattern: &str,
) -> Result<(u64, Vec<Vec<u8>>), redis::RedisError> {
    redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(KEYS_PER_ROUND)
        .query_async(conn)
        .await
}

/// Keys matching `pattern`: (without a time to live, with one).
pub(crate) async fn count_keys(
    conn: &mut impl ConnectionLike,
    pattern: &str,
) -> Result<(u64, u64), redis::RedisError> {
    let (mut cursor, mut persistent, mut expiring) = (0u64, 0u64, 0u64);
    loop {
        let (next, keys) = scan_round(conn, cursor, pattern).await?;
        if !keys.is_empty() {
            let mut p = redis::pipe();
            for k in &keys {
                p.cmd("PTTL").arg(k);
            }
            let ttls: Vec<i64> = p.query_async(conn).await?;
            persistent += ttls.iter().filter(|t| **t == -1).count() as u64;
            expiring += ttls.iter().filter(|t| **t >= 0).count() as u64;
        }
        if next == 0 {
            return Ok((persistent, expiring));
        }
        cursor = next;
    }
}

/// Passes what is read on to the part being written; a write failure is kept to be told apart
/// from a read failure.
struct Tee<'a, R> {
    inner: R,
    out: &'a mut PartWriter,
    failed: Option<std::io::Error>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = Write::write_all(self.out, &buf[..n]) {
            self.failed = Some(e);
            return Err(std::io::Error::other("the part could not be written"));
        }
        Ok(n)
    }
}

/// What one pass over a snapshot gave.
struct Streamed {
    raw_bytes: u64,
    written: crate::part::Written,
    /// `Err`: the reader does not know this file's format; the file, to count another way.
    counted: Result<KeyCount, (String, File)>,
}

/// Compresses (and seals) the snapshot `from` into the part `to`, counting the keys of `db`
/// under `prefix` as it goes: one read of the file.
fn stream_snapshot(
    from: File,
    source: &Path,
    to: &Path,
    key: Option<&Key>,
    db: u32,
    prefix: &[u8],
) -> Result<Streamed, BackupError> {
    let mut writer = PartWriter::create_for_compressed(to, key)?;
    // The buffer outside the tee: the file is read, and the part written, a megabyte at a time,
    // however small the reader's own reads.
    let mut tee = BufReader::with_capacity(
        1 << 20,
        Tee {
            inner: from,
            out: &mut writer,
            failed: None,
        },
    );
    let now = chrono::Utc::now().timestamp_millis();
    let counted = rdb_keys::count_keys(&mut tee, db, prefix, now);
    // The rest: the checksum, or all that follows what the reader does not know.
    let rest = std::io::copy(&mut tee, &mut std::io::sink());
    let Tee {
        inner: file,
        failed,
        ..
    } = tee.into_inner();
    if let Some(e) = failed {
        return Err(BackupError::io(to, "cannot write", e));
    }
    rest.map_err(|e| BackupError::io(source, "cannot read the snapshot", e))?;
    let counted = match counted {
        Ok(c) => Ok(c),
        Err(RdbError::Unsupported(why)) => Err((why, file)),
        Err(RdbError::Io(e)) => return Err(BackupError::io(source, "cannot read the snapshot", e)),
        Err(e @ RdbError::Invalid { .. }) => {
            let part = to
                .file_name()
                .map(|f| f.to_string_lossy())
                .unwrap_or_default();
            return Err(BackupError::part(
                &part,
                format!("{}: {e}", source.display()),
            ));
        }
    };
    let raw_bytes = writer.raw_bytes;
    Ok(Streamed {
        raw_bytes,
        written: writer.finish()?,
        counted,
    })
}

/// Counts the keys of a snapshot the reader does not know by loading it into a scratch server.
async fn count_in_scratch(
    store: &RedisStore,
    cfg: &BackupSettings,
    mut file: File,
) -> Result<KeyCount, BackupError> {
    let s = store.settings();
    let scratch_dir = Scratch::folder()?;
    let copy = scratch_dir.path().join("dump.rdb");
    let copied = tokio::task::spawn_blocking(move || {
        file.seek(SeekFrom::Start(0))?;
        std::io::copy(&mut file, &mut File::create(&copy)?)
    })
    .await
    .map_err(|e| who(store).failed("redis-server (scratch)", e.to_string()))?;
    copied.map_err(|e| BackupError::io(&scratch_dir.path().join("dump.rdb"), "cannot write", e))?;
    let scratch = Scratch::start(&cfg.redis_server, scratch_dir, who(store)).await?;
    let counted = async {
        let mut c = scratch.conn(s.db).await?;
        count_keys(&mut c, &prefix_pattern(&s.key_prefix)).await
    }
    .await;
    scratch.stop().await;
    let (persistent, expiring) = counted.map_err(|e| {
        who(store).failed(
            &cfg.redis_server,
            format!("counting the snapshot's keys: {e}"),
        )
    })?;
    Ok(KeyCount {
        persistent,
        expiring,
    })
}

/// The tool alone, for the benchmark: `BGSAVE`, waited for, and the RDB copied; its size.
pub(crate) async fn native_snapshot(
    store: &RedisStore,
    cfg: &BackupSettings,
    out: &Path,
) -> Result<u64, BackupError> {
    bgsave(store, cfg.timeout).await?;
    let source = snapshot_path(store).await?;
    std::fs::copy(&source, out).map_err(|e| BackupError::io(&source, "cannot copy the snapshot", e))
}

/// Snapshots the instance into `dir/file`; counts the service's keys in the snapshot.
pub(crate) async fn snapshot(
    store: &RedisStore,
    cfg: &BackupSettings,
    dir: &Path,
    key: Option<&Key>,
) -> Result<Part, BackupError> {
    let taken_at = chrono::Utc::now().to_rfc3339();
    let mut conn = store
        .conn()
        .await
        .map_err(|e| BackupError::store("redis", store.name(), e))?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .map_err(|e| store_err(store, "info", &e))?;
    let server_version = info_field(&info, "redis_version").unwrap_or_default();
    bgsave(store, cfg.timeout).await?;
    let source = snapshot_path(store).await?;
    let file = format!("redis-{}.rdb.zst", store.name());
    // An open file keeps its content even if a later save renames a new one over it.
    let rdb = File::open(&source).map_err(|e| {
        who(store).failed(
            "BGSAVE",
            format!(
                "the snapshot {} is not readable here ({e}): run the backup on the Redis host",
                source.display()
            ),
        )
    })?;
    let s = store.settings();
    let (to, key, db, prefix) = (
        dir.join(&file),
        key.cloned(),
        s.db,
        s.key_prefix.clone().into_bytes(),
    );
    let streamed = tokio::task::spawn_blocking(move || {
        stream_snapshot(rdb, &source, &to, key.as_ref(), db, &prefix)
    })
    .await
    .map_err(|e| who(store).failed("zstd", format!("the compressing task failed: {e}")))??;
    let counted = match streamed.counted {
        Ok(c) => c,
        Err((why, rdb)) => {
            tracing::info!(instance = store.name(), %why, "counting the snapshot through a scratch server");
            count_in_scratch(store, cfg, rdb).await?
        }
    };
    let (raw_bytes, written) = (streamed.raw_bytes, streamed.written);
    let (keys, expiring) = (counted.persistent, counted.expiring);
    Ok(Part {
        store: "redis".into(),
        instance: store.name().to_string(),
        file,
        object: format!("db {} keys {}*", s.db, s.key_prefix),
        bytes: written.bytes,
        raw_bytes,
        sha256: written.sha256,
        server_version,
        taken_at,
        // Keys with a time to live (sessions, cache entries) may expire before a restore: only
        // the others must all come back.
        counts: [
            ("keys".to_string(), keys),
            ("keys_expiring".to_string(), expiring),
        ]
        .into_iter()
        .collect(),
        details: serde_json::json!({"key_prefix": s.key_prefix, "db": s.db}),
    })
}

/// Keys under the instance's prefix now, the key-schema record aside (`tsp-job migrate` writes
/// it on an empty store): what a restore would overwrite.
pub(crate) async fn occupied(store: &RedisStore) -> Result<u64, BackupError> {
    let mut conn = store
        .conn()
        .await
        .map_err(|e| BackupError::store("redis", store.name(), e))?;
    let schema = [
        format!("{}schema", store.key_prefix()).into_bytes(),
        format!("{}schema:lock", store.key_prefix()).into_bytes(),
    ];
    let pattern = prefix_pattern(store.key_prefix());
    let (mut cursor, mut n) = (0u64, 0u64);
    loop {
        let (next, keys) = scan_round(&mut conn, cursor, &pattern)
            .await
            .map_err(|e| store_err(store, "scan", &e))?;
        n += keys.iter().filter(|k| !schema.contains(k)).count() as u64;
        if next == 0 {
            return Ok(n);
        }
        cursor = next;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design

    use super::*;

    /// Every kind of value Redis 7 writes, in two databases, under a prefix and not, with and
    /// without a time to live, long keys (LZF) and integer keys, a function library: the
    /// reader's counts equal what the server itself lists.
    #[tokio::test]
    async fn the_rdb_reader_counts_what_the_server_holds() {
        let who = Who {
            store: "redis",
            instance: "test",
        };
        let scratch = Scratch::start("redis-server", Scratch::folder().unwrap(), who)
            .await
            .unwrap();
        let mut c0 = scratch.conn(0).await.unwrap();
        let mut c3 = scratch.conn(3).await.unwrap();
        let mut p = redis::pipe();
        let long = "x".repeat(120);
        p.cmd("SET").arg("p:s").arg("small");
        p.cmd("SET").arg("p:lzf").arg("a".repeat(5_000));
        p.cmd("SET")
            .arg(format!("p:{long}"))
            .arg("long key, compressed");
        p.cmd("SET").arg("p:int").arg(123_456);
        p.cmd("SET").arg("12345").arg("an integer key");
        p.cmd("SET").arg("-7").arg("a negative one");
        p.cmd("SET").arg("p:ttl").arg(1).arg("EX").arg(3_600);
        p.cmd("SET")
            .arg("p:pttl")
            .arg(1)
            .arg("PX")
            .arg(86_400_000u64);
        p.cmd("RPUSH").arg("p:list").arg(&["a", "b", "c"]);
        for i in 0..2_000 {
            p.cmd("RPUSH").arg("p:biglist").arg(format!("{i:0>100}"));
        }
        p.cmd("RPUSH").arg("p:plain").arg("z".repeat(20_000));
        p.cmd("SADD").arg("p:ints").arg(&[1, 2, 3]);
        for i in 0..300 {
            p.cmd("SADD").arg("p:set").arg(format!("member-{i}"));
            p.cmd("ZADD").arg("p:bigz").arg(i).arg(format!("m{i}"));
            p.cmd("HSET")
                .arg("p:bighash")
                .arg(format!("f{i}"))
                .arg("v".repeat(80));
        }
        p.cmd("ZADD")
            .arg("p:z")
            .arg(1.5)
            .arg("a")
            .arg("inf")
            .arg("b");
        p.cmd("HSET").arg("p:h").arg("f").arg("v");
        for i in 0..20 {
            p.cmd("XADD").arg("p:stream").arg("*").arg("n").arg(i);
        }
        p.cmd("XGROUP")
            .arg("CREATE")
            .arg("p:stream")
            .arg("g")
            .arg("0");
        p.cmd("XREADGROUP").arg(&[
            "GROUP", "g", "alice", "COUNT", "5", "STREAMS", "p:stream", ">",
        ]);
        p.cmd("XGROUP")
            .arg("CREATECONSUMER")
            .arg("p:stream")
            .arg("g")
            .arg("bob");
        p.cmd("SET").arg("other:1").arg("not under the prefix");
        p.cmd("FUNCTION")
            .arg("LOAD")
            .arg("#!lua name=lib\nredis.register_function('one', function() return 1 end)");
        let _: redis::Value = p.query_async(&mut c0).await.unwrap();
        let mut p = redis::pipe();
        p.cmd("SET").arg("p:in-db-3").arg(1);
        p.cmd("SET").arg("p:also").arg(2).arg("EX").arg(60);
        let _: redis::Value = p.query_async(&mut c3).await.unwrap();
        let _: String = redis::cmd("SAVE").query_async(&mut c0).await.unwrap();

        let dump = scratch.socket.with_file_name("dump.rdb");
        let now = chrono::Utc::now().timestamp_millis();
        for (db, prefix) in [(0u32, "p:"), (0, ""), (3, "p:"), (5, "")] {
            let mut conn = scratch.conn(db).await.unwrap();
            let (persistent, expiring) = count_keys(&mut conn, &prefix_pattern(prefix))
                .await
                .unwrap();
            let file = File::open(&dump).unwrap();
            let read = rdb_keys::count_keys(BufReader::new(file), db, prefix.as_bytes(), now);
            assert_eq!(
                read.unwrap(),
                KeyCount {
                    persistent,
                    expiring
                },
                "db {db}, prefix {prefix:?}"
            );
        }
        // The counts are not empty: db 0 holds 16 keys under the prefix, 2 of them expiring.
        let file = File::open(&dump).unwrap();
        let read = rdb_keys::count_keys(BufReader::new(file), 0, b"p:", now).unwrap();
        assert_eq!((read.persistent, read.expiring), (14, 2));
        scratch.stop().await;
    }
}
