//! MySQL (and MariaDB) instances: one `sqlx` pool each.

use std::str::FromStr;
use std::time::Duration;

use async_recursion::async_recursion as boxed;
use secrecy::ExposeSecret;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlSslMode};
use tsp_config::{HealthSettings, MysqlSettings, TlsMode};

use crate::error::{Cause, HubError, Redactor};
use crate::health::{InstanceHealth, PoolStats};
use crate::metrics::StoreMetrics;
use crate::rotation::AuthAlarm;
use crate::shared::Shared;

const STORE: &str = "mysql";

/// One MySQL instance.
#[derive(Clone)]
pub struct MysqlStore {
    name: String,
    database: String,
    required: bool,
    max: u32,
    pool: MySqlPool,
    /// The settings with the credentials in use (replaced by [`MysqlStore::rotate`]).
    current: Shared<MysqlSettings>,
    alarm: AuthAlarm,
    metrics: StoreMetrics,
    redactor: Redactor,
}

/// Driver options from settings. The pool is lazy: building it never waits on the server.
pub fn mysql_connect_options(s: &MysqlSettings) -> Result<MySqlConnectOptions, HubError> {
    let mut opts = match &s.url {
        Some(url) => MySqlConnectOptions::from_str(url.expose_secret())
            // sqlx's message may quote the URL; keep only that it failed.
            .map_err(|_| HubError::Settings {
                store: STORE,
                instance: s.name.clone(),
                message: "url is not a valid MySQL URL".into(),
            })?,
        None => MySqlConnectOptions::new()
            .host(&s.host)
            .port(s.port)
            .username(&s.user)
            .password(s.password.expose_secret())
            .database(&s.database),
    };
    opts = opts.charset(&s.charset).ssl_mode(match s.tls.mode {
        TlsMode::Disabled => MySqlSslMode::Disabled,
        TlsMode::Preferred => MySqlSslMode::Preferred,
        TlsMode::Required => MySqlSslMode::Required,
        TlsMode::VerifyCa => MySqlSslMode::VerifyCa,
        TlsMode::VerifyIdentity => MySqlSslMode::VerifyIdentity,
    });
    if let Some(ca) = &s.tls.ca {
        opts = opts.ssl_ca(ca);
    }
    if let (Some(cert), Some(key)) = (&s.tls.cert, &s.tls.key) {
        opts = opts.ssl_client_cert(cert).ssl_client_key(key);
    }
    // Times are UTC in and out, whatever the server's zone.
    Ok(opts.timezone(Some("+00:00".to_string())))
}

impl MysqlStore {
    pub(crate) fn new(
        s: &MysqlSettings,
        redactor: Redactor,
        alarm: AuthAlarm,
    ) -> Result<Self, HubError> {
        let opts = mysql_connect_options(s)?;
        let pool = MySqlPoolOptions::new()
            .min_connections(s.pool.min)
            .max_connections(s.pool.max)
            .acquire_timeout(s.pool.acquire_timeout)
            .idle_timeout(Some(s.pool.idle_timeout))
            .max_lifetime(Some(s.pool.max_lifetime))
            .connect_lazy_with(opts);
        Ok(MysqlStore {
            name: s.name.clone(),
            database: s.database.clone(),
            required: s.required,
            max: s.pool.max,
            pool,
            current: Shared::new(s.clone()),
            alarm,
            metrics: StoreMetrics::new(STORE, &s.name),
            redactor,
        })
    }

    /// Replaces the credentials (user, password, url) with `new`'s once a connection with them
    /// opens within `timeout`; `Ok(false)` when they are the ones in use. New pool connections
    /// use them; open ones stay until `pool.max_lifetime` recycles them (a password change does
    /// not end a MySQL session).
    pub(crate) async fn rotate(
        &self,
        new: &MysqlSettings,
        timeout: std::time::Duration,
    ) -> Result<bool, HubError> {
        let old = self.current.get();
        let url = |s: &MysqlSettings| s.url.as_ref().map(|u| u.expose_secret().to_string());
        if old.user == new.user
            && old.password.expose_secret() == new.password.expose_secret()
            && url(&old) == url(new)
        {
            return Ok(false);
        }
        let mut next = (*old).clone();
        next.user = new.user.clone();
        next.password = new.password.clone();
        next.url = new.url.clone();
        let opts = mysql_connect_options(&next)?;
        let check = async {
            let conn = sqlx::ConnectOptions::connect(&opts)
                .await
                .map_err(|e| self.describe("connect", e))?;
            let _ = sqlx::Connection::close(conn).await;
            Ok(())
        };
        crate::rotation::tried(STORE, &self.name, timeout, check).await?;
        self.pool.set_connect_options(opts);
        self.current.set(next);
        Ok(true)
    }

    /// The instance's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the service needs this instance to start.
    pub fn required(&self) -> bool {
        self.required
    }

    /// The configured database (with a `url`, the URL's database is what connections use).
    pub fn database_name(&self) -> &str {
        &self.database
    }

    /// The pool, for queries. Run them through [`MysqlStore::timed`] to have them counted.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// The instance's command metrics.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    /// Runs a query future as operation `op`: counted, timed, and its error made secret-free.
    pub async fn timed<T, F>(&self, op: &str, fut: F) -> Result<T, HubError>
    where
        F: Future<Output = Result<T, sqlx::Error>>,
    {
        self.metrics
            .timed(op, fut)
            .await
            .map_err(|e| self.error(op, e))
    }

    /// Wraps a driver error from operation `op`, kept as the (redacted) cause.
    /// A refused login (SQLSTATE 28000) also raises the hub's credential alarm.
    pub fn error(&self, op: &str, e: sqlx::Error) -> HubError {
        if matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("28000")) {
            self.alarm.raise();
        }
        self.describe(op, e)
    }

    fn describe(&self, op: &str, e: sqlx::Error) -> HubError {
        let cause = Cause::new(e, &self.redactor);
        HubError::Store {
            store: STORE,
            instance: self.name.clone(),
            op: op.to_string(),
            message: cause.text().to_string(),
            cause: Some(cause),
        }
    }

    pub(crate) fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The pool's connections now.
    pub fn pool_stats(&self) -> PoolStats {
        let size = self.pool.size();
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        PoolStats {
            size,
            idle,
            in_use: size.saturating_sub(idle),
            max: self.max,
        }
    }

    /// `SELECT VERSION()`, then a count of the migrations table, each bounded
    /// (`health.timeout`, `health.read_timeout`). The count waits on a table lock where a ping
    /// does not, so a wedged server shows as degraded. A database not migrated yet answers
    /// "no such table" at once: an answer, so up.
    #[boxed]
    pub async fn health(&self, settings: &HealthSettings) -> InstanceHealth {
        let ping = async {
            let version = self
                .timed(
                    "health",
                    sqlx::query_scalar::<_, String>("SELECT VERSION()").fetch_one(&self.pool),
                )
                .await?;
            Ok(Some(version))
        };
        let read = async {
            let count = sqlx::query("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(&self.pool);
            match self.metrics.timed("health", count).await {
                Ok(_) => Ok(None),
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42S02") => Ok(None),
                Err(e) => Err(self.error("health", e)),
            }
        };
        let who = (STORE, self.name.as_str(), self.required);
        let mut h = crate::health::check(who, settings, ping, ("_sqlx_migrations", read)).await;
        h.pool = Some(self.pool_stats());
        h
    }

    /// Closes the pool, waiting for lent connections to come back.
    #[boxed]
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A pooled connection holding a MySQL named lock (`GET_LOCK`), for work that must not overlap
/// across processes. The lock belongs to the connection's session, so:
/// - a process that dies loses its connection and, with it, the lock;
/// - dropped without [`NamedLock::release`] (a cancelled future), the connection is closed
///   rather than returned to the pool: a pooled connection must never carry a lock to its next
///   user, who would then hold it without knowing.
///
/// Do the locked work on [`NamedLock::conn`] when it must be on the locking session.
pub struct NamedLock {
    conn: Option<sqlx::pool::PoolConnection<sqlx::MySql>>,
    name: String,
    /// Locks taken later on the same session ([`NamedLock::also`]), released with it.
    more: Vec<String>,
}

impl NamedLock {
    /// Takes lock `name` (at most 64 characters), waiting at most `wait`; `busy` says, in the
    /// error, what holding it means (e.g. "another migration of this database").
    #[boxed]
    pub async fn acquire(
        store: &MysqlStore,
        name: &str,
        wait: Duration,
        busy: &str,
    ) -> Result<NamedLock, HubError> {
        let mut conn = store.timed("acquire", store.pool().acquire()).await?;
        let got: Option<i64> = store
            .timed(
                "get_lock",
                sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
                    .bind(name)
                    .bind(wait.as_secs())
                    .fetch_one(&mut *conn),
            )
            .await?;
        if got != Some(1) {
            return Err(HubError::store(
                STORE,
                store.name(),
                "get_lock",
                format!("{busy} held lock `{name}` for {wait:?}"),
            ));
        }
        Ok(NamedLock {
            conn: Some(conn),
            name: name.to_string(),
            more: Vec::new(),
        })
    }

    /// Also takes `names` on this session, waiting at most `wait` for each (in sorted order);
    /// whether every one was taken (when not, none is held).
    #[boxed]
    pub async fn also(
        &mut self,
        store: &MysqlStore,
        names: &[String],
        wait: Duration,
    ) -> Result<bool, HubError> {
        let got = match take_more(store, self.conn(), names, wait).await {
            Ok(got) => got,
            Err(e) => {
                // Some may be held: release them all with the lock (an unheld name is a no-op).
                self.more.extend(names.iter().cloned());
                return Err(e);
            }
        };
        let taken: Vec<String> = held_of(names, &got);
        if taken.len() == names.len() {
            self.more.extend(taken);
            return Ok(true);
        }
        self.more.extend(taken.iter().cloned());
        self.release_also(&taken).await;
        Ok(false)
    }

    /// Releases `names` taken with [`NamedLock::also`] (the rest stay held). A failed release
    /// leaves them to [`NamedLock::release`], which closes the connection if it fails too.
    #[boxed]
    pub async fn release_also(&mut self, names: &[String]) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if free(conn, names).await {
            self.more.retain(|n| !names.contains(n));
        }
    }

    /// The locking session's connection.
    pub fn conn(&mut self) -> &mut sqlx::MySqlConnection {
        match self.conn.as_mut() {
            Some(c) => c,
            // `release` consumes the lock, so a live NamedLock always has its connection.
            None => unreachable!("NamedLock used after release"),
        }
    }

    /// Releases the lock and returns the connection to the pool (or closes it if the release
    /// fails, which frees the lock too).
    #[boxed]
    pub async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let mut names = std::mem::take(&mut self.more);
            names.push(std::mem::take(&mut self.name));
            if !free(&mut conn, &names).await {
                drop(conn.detach());
            }
        }
    }
}

/// Takes `names` on `conn`, in sorted order so that two sessions taking overlapping sets never
/// wait on each other in a cycle, each waiting at most `wait` (whole seconds, at least one);
/// per name (in the order given), whether it was taken. One statement per 200 names: the
/// server evaluates `SELECT GET_LOCK(a, w), GET_LOCK(b, w), …` left to right.
async fn take_more(
    store: &MysqlStore,
    conn: &mut sqlx::MySqlConnection,
    names: &[String],
    wait: Duration,
) -> Result<Vec<bool>, HubError> {
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by(|&a, &b| names[a].cmp(&names[b]));
    let mut got = vec![false; names.len()];
    for chunk in order.chunks(200) {
        let sql = format!("SELECT {}", vec!["GET_LOCK(?, ?)"; chunk.len()].join(", "));
        let mut q = sqlx::query(&sql);
        for &i in chunk {
            q = q.bind(&names[i]).bind(wait.as_secs().max(1));
        }
        let row = store.timed("get_lock", q.fetch_one(&mut *conn)).await?;
        for (col, &i) in chunk.iter().enumerate() {
            let v: Option<i64> = sqlx::Row::try_get(&row, col).unwrap_or(None);
            got[i] = v == Some(1);
        }
    }
    Ok(got)
}

/// The names whose lock was `got`.
fn held_of(names: &[String], got: &[bool]) -> Vec<String> {
    names
        .iter()
        .zip(got)
        .filter(|(_, g)| **g)
        .map(|(n, _)| n.clone())
        .collect()
}

/// Releases `names` on `conn`; whether every release statement ran.
async fn free(conn: &mut sqlx::MySqlConnection, names: &[String]) -> bool {
    for chunk in names.chunks(200) {
        let sql = format!("SELECT {}", vec!["RELEASE_LOCK(?)"; chunk.len()].join(", "));
        let mut q = sqlx::query(&sql);
        for n in chunk {
            q = q.bind(n);
        }
        if q.fetch_one(&mut *conn).await.is_err() {
            return false;
        }
    }
    true
}

impl Drop for NamedLock {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}

/// Several named locks taken at once on one pooled connection, without waiting: for a batch of
/// work items each of which must not overlap with other work on the same item. One statement
/// takes them all (`SELECT GET_LOCK(a, 0), GET_LOCK(b, 0), …`; MariaDB ≥ 10.0.2 and MySQL ≥ 5.7
/// hold several locks per session), so a batch costs one connection and one round trip, however
/// many items it has. The same rules as [`NamedLock`] hold: the locks belong to the session;
/// dropped without [`NamedLocks::release`], the connection is closed, never pooled.
pub struct NamedLocks {
    conn: Option<sqlx::pool::PoolConnection<sqlx::MySql>>,
    held: Vec<String>,
}

impl NamedLocks {
    /// Tries every name (at most 64 characters each) once; returns the locks and, per name,
    /// whether it was taken (`false`: someone else holds it).
    #[boxed]
    pub async fn try_acquire(
        store: &MysqlStore,
        names: &[String],
    ) -> Result<(NamedLocks, Vec<bool>), HubError> {
        let mut conn = store.timed("acquire", store.pool().acquire()).await?;
        let mut got = Vec::with_capacity(names.len());
        // A few hundred locks per statement keeps each statement small.
        for chunk in names.chunks(200) {
            let sql = format!("SELECT {}", vec!["GET_LOCK(?, 0)"; chunk.len()].join(", "));
            let mut q = sqlx::query(&sql);
            for n in chunk {
                q = q.bind(n);
            }
            let row = store.timed("get_lock", q.fetch_one(&mut *conn)).await;
            let row = match row {
                Ok(r) => r,
                Err(e) => {
                    // Some locks of earlier chunks may be held: never pool this connection.
                    drop(conn.detach());
                    return Err(e);
                }
            };
            for i in 0..chunk.len() {
                let v: Option<i64> = sqlx::Row::try_get(&row, i).unwrap_or(None);
                got.push(v == Some(1));
            }
        }
        let held = held_of(names, &got);
        Ok((
            NamedLocks {
                conn: Some(conn),
                held,
            },
            got,
        ))
    }

    /// The locking session's connection.
    pub fn conn(&mut self) -> &mut sqlx::MySqlConnection {
        match self.conn.as_mut() {
            Some(c) => c,
            None => unreachable!("NamedLocks used after release"),
        }
    }

    /// Releases every lock and returns the connection to the pool (or closes it if the release
    /// fails, which frees the locks too).
    #[boxed]
    pub async fn release(mut self) {
        if let Some(mut conn) = self.conn.take()
            && !free(&mut conn, &self.held).await
        {
            drop(conn.detach());
        }
    }

    /// Also takes `names` on this session, waiting at most `wait` for each (in sorted order:
    /// sessions taking overlapping sets never wait on each other in a cycle); per name, whether
    /// it was taken. Held until [`NamedLocks::release_some`] or [`NamedLocks::release`].
    #[boxed]
    pub async fn also(
        &mut self,
        store: &MysqlStore,
        names: &[String],
        wait: Duration,
    ) -> Result<Vec<bool>, HubError> {
        match take_more(store, self.conn(), names, wait).await {
            Ok(got) => {
                self.held.extend(held_of(names, &got));
                Ok(got)
            }
            Err(e) => {
                // Some may be held: release them all with the rest (an unheld name is a no-op).
                self.held.extend(names.iter().cloned());
                Err(e)
            }
        }
    }

    /// Releases those of `names` this session holds (the rest stay held). A failed release
    /// leaves them to [`NamedLocks::release`], which closes the connection if it fails too.
    #[boxed]
    pub async fn release_some(&mut self, names: &[String]) {
        let mine: Vec<String> = names
            .iter()
            .filter(|n| self.held.contains(n))
            .cloned()
            .collect();
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if free(conn, &mine).await {
            self.held.retain(|n| !mine.contains(n));
        }
    }
}

impl Drop for NamedLocks {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}
