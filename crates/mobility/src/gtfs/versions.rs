//! Feed versions in MySQL: `feed_versions` (one row per import) and `feeds.live_version`, the
//! single pointer whose update makes a version live (docs/gtfs.md#versions).

use async_recursion::async_recursion as boxed;
use serde::Serialize;
use sqlx::Row;
use tsp_hub::{HubError, MysqlStore};

use super::spec::FILES;

/// A stored version.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Version {
    /// Its id (`version_id` in every table).
    pub version: u32,
    /// The feed's name.
    pub feed: String,
    /// SHA-256 of the feed's files.
    pub content_sha256: String,
    /// `loading`, `loaded`, `synced`, `live`, `retired` or `failed`.
    pub status: String,
    /// The path it was imported from.
    pub source: String,
    /// Rows loaded in every table.
    pub rows: u64,
    /// When the import began (UTC).
    pub created_at: String,
}

/// The live version of `feed`, if any.
#[boxed]
pub async fn live(store: &MysqlStore, feed: &str) -> Result<Option<u32>, HubError> {
    let v: Option<Option<u32>> = store
        .timed(
            "live version",
            sqlx::query_scalar("SELECT live_version FROM feeds WHERE feed = ?")
                .bind(feed)
                .fetch_optional(store.pool()),
        )
        .await?;
    Ok(v.flatten())
}

/// Every version of `feed`, newest first.
#[boxed]
pub async fn list(store: &MysqlStore, feed: &str) -> Result<Vec<Version>, HubError> {
    let rows = store
        .timed(
            "list versions",
            sqlx::query(
                "SELECT version_id, feed, content_sha256, CAST(status AS CHAR), source, \
                 rows_loaded, DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%sZ') \
                 FROM feed_versions WHERE feed = ? ORDER BY version_id DESC",
            )
            .bind(feed)
            .fetch_all(store.pool()),
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Version {
            version: r.get(0),
            feed: r.get(1),
            content_sha256: r.get(2),
            status: r.get(3),
            source: r.get(4),
            rows: r.get(5),
            created_at: r.get(6),
        })
        .collect())
}

/// The version of `feed` holding `sha`, newest first, if any.
pub(crate) async fn with_content(
    store: &MysqlStore,
    feed: &str,
    sha: &str,
) -> Result<Option<Version>, HubError> {
    Ok(list(store, feed)
        .await?
        .into_iter()
        .find(|v| v.content_sha256 == sha))
}

/// A new version row, status `loading`.
pub(crate) async fn create(
    store: &MysqlStore,
    feed: &str,
    sha: &str,
    source: &str,
) -> Result<u32, HubError> {
    let r = store
        .timed(
            "create version",
            sqlx::query(
                "INSERT INTO feed_versions (feed, content_sha256, status, source, created_at) \
                 VALUES (?, ?, 'loading', ?, UTC_TIMESTAMP(3))",
            )
            .bind(feed)
            .bind(sha)
            .bind(source)
            .execute(store.pool()),
        )
        .await?;
    Ok(r.last_insert_id() as u32)
}

/// Sets a version's status (and, when given, its row count, summary and error).
pub(crate) async fn set_status(
    store: &MysqlStore,
    version: u32,
    status: &str,
    rows: Option<u64>,
    summary: Option<&serde_json::Value>,
    error: Option<&str>,
) -> Result<(), HubError> {
    store
        .timed(
            "version status",
            sqlx::query(
                "UPDATE feed_versions SET status = ?, rows_loaded = COALESCE(?, rows_loaded), \
                 summary = COALESCE(?, summary), error = ?, \
                 loaded_at = IF(? = 'loaded', UTC_TIMESTAMP(3), loaded_at) \
                 WHERE version_id = ?",
            )
            .bind(status)
            .bind(rows)
            .bind(summary.map(|s| s.to_string()))
            .bind(error)
            .bind(status)
            .bind(version)
            .execute(store.pool()),
        )
        .await?;
    Ok(())
}

/// Makes `version` live in one transaction: the feed's pointer moves, the version it replaces
/// becomes `retired`. Returns the version that was live before.
pub(crate) async fn switch(
    store: &MysqlStore,
    feed: &str,
    version: u32,
) -> Result<Option<u32>, HubError> {
    let op = |e| store.error("switch version", e);
    let mut tx = store.pool().begin().await.map_err(op)?;
    sqlx::query("INSERT IGNORE INTO feeds (feed) VALUES (?)")
        .bind(feed)
        .execute(&mut *tx)
        .await
        .map_err(op)?;
    let before: Option<u32> =
        sqlx::query_scalar("SELECT live_version FROM feeds WHERE feed = ? FOR UPDATE")
            .bind(feed)
            .fetch_one(&mut *tx)
            .await
            .map_err(op)?;
    sqlx::query("UPDATE feed_versions SET status = 'retired' WHERE feed = ? AND status = 'live'")
        .bind(feed)
        .execute(&mut *tx)
        .await
        .map_err(op)?;
    sqlx::query("UPDATE feed_versions SET status = 'live' WHERE version_id = ?")
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(op)?;
    sqlx::query("UPDATE feeds SET live_version = ?, switched_at = UTC_TIMESTAMP(3) WHERE feed = ?")
        .bind(version)
        .bind(feed)
        .execute(&mut *tx)
        .await
        .map_err(op)?;
    tx.commit().await.map_err(op)?;
    Ok(before)
}

/// Deletes a version's rows from every table, then its `feed_versions` row.
pub(crate) async fn delete_rows(store: &MysqlStore, version: u32) -> Result<(), HubError> {
    delete_table_rows(store, version).await?;
    store
        .timed(
            "delete version",
            sqlx::query("DELETE FROM feed_versions WHERE version_id = ?")
                .bind(version)
                .execute(store.pool()),
        )
        .await?;
    Ok(())
}

/// Deletes a version's rows from every table, a bounded chunk per statement (no huge
/// transaction).
pub(crate) async fn delete_table_rows(store: &MysqlStore, version: u32) -> Result<(), HubError> {
    for spec in FILES.iter().rev() {
        loop {
            let sql = format!(
                "DELETE FROM {} WHERE version_id = ? LIMIT 20000",
                spec.table
            );
            let r = store
                .timed(
                    "delete version",
                    sqlx::query(&sql).bind(version).execute(store.pool()),
                )
                .await?;
            if r.rows_affected() == 0 {
                break;
            }
        }
    }
    Ok(())
}

/// Rows of `version` in each table, in load order.
#[boxed]
pub async fn counts(store: &MysqlStore, version: u32) -> Result<Vec<(String, u64)>, HubError> {
    let mut out = Vec::new();
    for spec in FILES {
        let sql = format!("SELECT COUNT(*) FROM {} WHERE version_id = ?", spec.table);
        let n: i64 = store
            .timed(
                "count version",
                sqlx::query_scalar(&sql)
                    .bind(version)
                    .fetch_one(store.pool()),
            )
            .await?;
        out.push((spec.table.to_string(), n as u64));
    }
    Ok(out)
}
