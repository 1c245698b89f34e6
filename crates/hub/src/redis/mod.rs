//! Redis instances: an auto-reconnecting multiplexed connection (standalone) or a cluster
//! connection, each wrapped so that every command is counted and timed.
//!
//! The connection is made on first use, not at start-up: a Redis that is down must not hold up
//! the other stores. A failed attempt leaves the slot empty, so the next use tries again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_recursion::async_recursion as boxed;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use secrecy::ExposeSecret;
use tokio::sync::OnceCell;
use tracing::Instrument;
use tsp_config::{HealthSettings, RedisSettings, TlsMode};

use crate::error::{Cause, HubError, Redactor};
use crate::health::{InstanceHealth, PoolStats};
use crate::metrics::{StoreMetrics, names};
use crate::rotation::AuthAlarm;
use crate::shared::Shared;

mod info;

use info::merge_info;

const STORE: &str = "redis";

#[derive(Clone)]
enum Inner {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A cheap-to-clone Redis connection that records every command in the hub metrics.
/// Use it like any `redis` async connection (`redis::cmd(..).query_async(&mut conn)`).
#[derive(Clone)]
pub struct RedisConn {
    inner: Inner,
    metrics: StoreMetrics,
}

fn command_name(cmd: &Cmd) -> String {
    match cmd.args_iter().next() {
        Some(redis::Arg::Simple(word)) if word.len() <= 24 => {
            String::from_utf8_lossy(word).to_ascii_lowercase()
        }
        _ => "other".to_string(),
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let started = Instant::now();
            let name = command_name(cmd);
            let span = self.metrics.span(&name);
            let out = match &mut self.inner {
                Inner::Single(c) => c.req_packed_command(cmd).instrument(span).await,
                Inner::Cluster(c) => c.req_packed_command(cmd).instrument(span).await,
            };
            self.metrics.record(&name, started, out.is_ok());
            out
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let started = Instant::now();
            let span = self.metrics.span("pipeline");
            let out = match &mut self.inner {
                Inner::Single(c) => {
                    let ask = c.req_packed_commands(pipeline, offset, count);
                    ask.instrument(span).await
                }
                Inner::Cluster(c) => {
                    let ask = c.req_packed_commands(pipeline, offset, count);
                    ask.instrument(span).await
                }
            };
            self.metrics.record("pipeline", started, out.is_ok());
            out
        })
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            Inner::Single(c) => c.get_db(),
            Inner::Cluster(c) => c.get_db(),
        }
    }
}

/// One Redis instance.
#[derive(Clone)]
pub struct RedisStore {
    settings: Arc<RedisSettings>,
    /// The settings with the credentials in use: the configured ones until a rotation
    /// ([`RedisStore::rotate`]) replaces them. New connections take theirs from here.
    current: Shared<RedisSettings>,
    /// The shared connection; a rotation starts a new cell so that the next caller opens one
    /// with the new credentials.
    conn: Shared<OnceCell<RedisConn>>,
    alarm: AuthAlarm,
    metrics: StoreMetrics,
    redactor: Redactor,
}

fn userinfo(s: &RedisSettings) -> String {
    let enc = tsp_config::encode_userinfo;
    let password = s.password.expose_secret();
    match (s.username.is_empty(), password.is_empty()) {
        (true, true) => String::new(),
        (true, false) => format!(":{}@", enc(password)),
        (false, true) => format!("{}@", enc(&s.username)),
        (false, false) => format!("{}:{}@", enc(&s.username), enc(password)),
    }
}

/// The connection URL for a standalone server (or one cluster seed node).
fn node_url(s: &RedisSettings, host_port: &str, db: bool) -> String {
    let scheme = if s.tls.mode == TlsMode::Disabled {
        "redis"
    } else {
        "rediss"
    };
    let db = if db {
        format!("/{}", s.db)
    } else {
        String::new()
    };
    // `#insecure` is the redis crate's switch for "encrypt, do not verify".
    let insecure = if s.tls.mode == TlsMode::Required {
        "#insecure"
    } else {
        ""
    };
    format!("{scheme}://{}{host_port}{db}{insecure}", userinfo(s))
}

fn tls_certificates(s: &RedisSettings) -> Result<Option<redis::TlsCertificates>, String> {
    if s.tls.ca.is_none() && s.tls.cert.is_none() {
        return Ok(None);
    }
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let root_cert = s.tls.ca.as_deref().map(read).transpose()?;
    let client_tls = match (&s.tls.cert, &s.tls.key) {
        (Some(c), Some(k)) => Some(redis::ClientTlsConfig {
            client_cert: read(c)?,
            client_key: read(k)?,
        }),
        _ => None,
    };
    Ok(Some(redis::TlsCertificates {
        client_tls,
        root_cert,
    }))
}

/// A client for dedicated connections with `s`'s address, credentials and TLS.
fn client_for(s: &RedisSettings) -> Result<redis::Client, HubError> {
    let url = match (&s.url, s.cluster_nodes.first()) {
        (_, Some(seed)) => node_url(s, seed, true),
        (Some(u), None) => u.expose_secret().to_string(),
        (None, None) => node_url(s, &format!("{}:{}", s.host, s.port), true),
    };
    let settings_error = |message: String| HubError::Settings {
        store: STORE,
        instance: s.name.clone(),
        message,
    };
    // The redis crate may quote the URL in its message: report the kind only.
    let invalid = |e: redis::RedisError| {
        settings_error(format!("invalid connection settings ({:?})", e.kind()))
    };
    let info = redis::IntoConnectionInfo::into_connection_info(url.as_str())
        .map_err(invalid)?
        .set_tcp_settings(tcp_settings());
    let client = match tls_certificates(s).map_err(settings_error)? {
        Some(certs) => redis::Client::build_with_tls(info, certs),
        None => redis::Client::open(info),
    };
    client.map_err(invalid)
}

/// Socket options for every connection: `TCP_NODELAY`, as most Redis clients set it (the redis
/// crate leaves Nagle's algorithm on, which may hold a small command back until the previous one
/// is acknowledged).
fn tcp_settings() -> redis::io::tcp::TcpSettings {
    redis::io::tcp::TcpSettings::default().set_nodelay(true)
}

impl RedisStore {
    pub(crate) fn new(s: &RedisSettings, redactor: Redactor, alarm: AuthAlarm) -> Self {
        RedisStore {
            settings: Arc::new(s.clone()),
            current: Shared::new(s.clone()),
            conn: Shared::new(OnceCell::new()),
            alarm,
            metrics: StoreMetrics::new(STORE, &s.name),
            redactor,
        }
    }

    /// The instance's configured name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// Whether the service needs this instance to start.
    pub fn required(&self) -> bool {
        self.settings.required
    }

    /// The instance's settings.
    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// The configured key prefix; every key the service writes starts with it.
    pub fn key_prefix(&self) -> &str {
        &self.settings.key_prefix
    }

    /// The instance's command metrics.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    /// A refused login (`WRONGPASS`, `NOAUTH`) also raises the hub's credential alarm.
    fn error(&self, op: &str, e: &redis::RedisError) -> HubError {
        if e.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
        {
            self.alarm.raise();
        }
        self.describe(op, e)
    }

    fn describe(&self, op: &str, e: &redis::RedisError) -> HubError {
        // Some errors quote a whole reply; a health report needs the gist.
        let cause = Cause::new(e.clone(), &self.redactor);
        let mut message = cause.text().to_string();
        if message.len() > 400 {
            let cut = (0..=400)
                .rev()
                .find(|i| message.is_char_boundary(*i))
                .unwrap_or(0);
            message.truncate(cut);
            message.push('…');
        }
        HubError::Store {
            store: STORE,
            instance: self.settings.name.clone(),
            op: op.to_string(),
            message,
            cause: Some(cause),
        }
    }

    /// Wraps a Redis error from a command run on [`RedisStore::conn`].
    pub fn command_error(&self, op: &str, e: &redis::RedisError) -> HubError {
        self.error(op, e)
    }

    /// Runs the read `ask` on the shared connection, and once more when the first try met a
    /// connection the server had dropped (a restart, a failover, a killed client): the first
    /// command after such a drop fails even though the next one, on the replacement, would
    /// answer. Only for reads: a read changes nothing, so asking again is safe, where a write
    /// whose answer was lost may have run (docs/queue.md#reads).
    pub async fn read<T, F, Fut>(&self, op: &str, ask: F) -> Result<T, HubError>
    where
        F: Fn(RedisConn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let answer = match ask(self.conn().await?).await {
            Err(e) if e.is_connection_dropped() => {
                tracing::debug!(
                    instance = %self.settings.name,
                    op,
                    error = %self.error(op, &e),
                    "connection dropped; reading again"
                );
                ask(self.conn().await?).await
            }
            answer => answer,
        };
        answer.map_err(|e| self.error(op, &e))
    }

    /// Every key matching `pattern`, read with SCAN a page at a time (never KEYS); on a
    /// Cluster, from every primary, since SCAN walks one node.
    #[boxed]
    pub async fn keys_matching(&self, pattern: &str) -> Result<Vec<String>, HubError> {
        if !self.is_cluster() {
            let mut conn = self.conn().await?;
            return self.scan_node(&mut conn, pattern).await;
        }
        let mut all = Vec::new();
        for node in self.primaries().await? {
            let client = redis::Client::open(node_url(&self.current(), &node, false).as_str())
                .map_err(|e| self.error("scan connect", &e))?;
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| self.error("scan connect", &e))?;
            all.extend(self.scan_node(&mut conn, pattern).await?);
        }
        Ok(all)
    }

    async fn scan_node<C: redis::aio::ConnectionLike>(
        &self,
        conn: &mut C,
        pattern: &str,
    ) -> Result<Vec<String>, HubError> {
        let mut cursor: u64 = 0;
        let mut all = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(conn)
                .await
                .map_err(|e| self.error("scan", &e))?;
            all.extend(keys);
            if next == 0 {
                return Ok(all);
            }
            cursor = next;
        }
    }

    /// The Cluster's primaries that serve slots (`host:port`), as `CLUSTER NODES` lists them.
    async fn primaries(&self) -> Result<Vec<String>, HubError> {
        let mut conn = self.conn().await?;
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error("cluster nodes", &e))?;
        Ok(nodes
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let serving = f.len() > 8 && f[2].contains("master") && !f[2].contains("fail");
                serving.then(|| f[1].split('@').next().unwrap_or(f[1]).to_string())
            })
            .collect())
    }

    /// Deletes every key matching `pattern` (found with [`RedisStore::keys_matching`]); how
    /// many were deleted. One key per `UNLINK`, so that on a Cluster each goes to its own slot.
    #[boxed]
    pub async fn delete_matching(&self, pattern: &str) -> Result<u64, HubError> {
        let keys = self.keys_matching(pattern).await?;
        let conn = self.conn().await?;
        let mut deleted = 0;
        for chunk in keys.chunks(256) {
            let unlinks = chunk.iter().map(|k| {
                let mut conn = conn.clone();
                async move {
                    redis::cmd("UNLINK")
                        .arg(k)
                        .query_async::<u64>(&mut conn)
                        .await
                }
            });
            for r in futures::future::join_all(unlinks).await {
                deleted += r.map_err(|e| self.error("unlink", &e))?;
            }
        }
        Ok(deleted)
    }

    /// Whether it is a Redis Cluster (`cluster_nodes` set).
    pub fn is_cluster(&self) -> bool {
        !self.settings.cluster_nodes.is_empty()
    }

    /// A client for dedicated connections: pub/sub, and blocking commands on a standalone
    /// server. On a Cluster it reaches the first seed node, which serves classic pub/sub (Redis
    /// Cluster delivers every `PUBLISH` to every node's subscribers) but not keyed blocking
    /// commands, whose key may live elsewhere: callers poll there instead.
    pub fn client(&self) -> Result<redis::Client, HubError> {
        client_for(&self.current())
    }

    /// The settings with the credentials in use now.
    fn current(&self) -> Arc<RedisSettings> {
        self.current.get()
    }

    /// Replaces the credentials (username, password, url) with `new`'s once a connection with
    /// them answers `PING` within `timeout`; `Ok(false)` when they are the ones in use. The
    /// shared connection is opened again with them; connections already open stay as they are
    /// (Redis keeps a connection authenticated when its user's password changes).
    pub(crate) async fn rotate(
        &self,
        new: &RedisSettings,
        timeout: Duration,
    ) -> Result<bool, HubError> {
        let old = self.current();
        if old.username == new.username
            && old.password.expose_secret() == new.password.expose_secret()
            && old.url.as_ref().map(|u| u.expose_secret().to_string())
                == new.url.as_ref().map(|u| u.expose_secret().to_string())
        {
            return Ok(false);
        }
        let mut next = (*old).clone();
        next.username = new.username.clone();
        next.password = new.password.clone();
        next.url = new.url.clone();
        let client = client_for(&next)?;
        let check = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        let check = async { check.await.map_err(|e| self.describe("connect", &e)) };
        crate::rotation::tried(STORE, &self.settings.name, timeout, check).await?;
        self.current.set(next);
        self.conn.set(OnceCell::new());
        Ok(true)
    }

    async fn open(&self) -> Result<RedisConn, HubError> {
        let s = &self.current();
        let inner = if s.cluster_nodes.is_empty() {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(s.connect_timeout))
                .set_response_timeout(Some(s.command_timeout))
                .set_number_of_retries(s.max_retries as usize)
                .set_max_delay(Duration::from_secs(2));
            let client = self.client()?;
            let manager = ConnectionManager::new_with_config(client, config)
                .await
                .map_err(|e| self.error("connect", &e))?;
            Inner::Single(manager)
        } else {
            let nodes: Vec<String> = s
                .cluster_nodes
                .iter()
                .map(|n| node_url(s, n, false))
                .collect();
            let mut builder = redis::cluster::ClusterClientBuilder::new(nodes)
                .connection_timeout(s.connect_timeout)
                .response_timeout(s.command_timeout)
                .retries(s.max_retries)
                .tcp_settings(tcp_settings());
            if let Some(certs) = tls_certificates(s).map_err(|message| HubError::Settings {
                store: STORE,
                instance: s.name.clone(),
                message,
            })? {
                builder = builder.certs(certs);
            }
            let client = builder.build().map_err(|e| self.error("connect", &e))?;
            Inner::Cluster(
                client
                    .get_async_connection()
                    .await
                    .map_err(|e| self.error("connect", &e))?,
            )
        };
        Ok(RedisConn {
            inner,
            metrics: self.metrics.clone(),
        })
    }

    /// The shared connection, opened on first use within `connect_timeout`.
    #[boxed]
    pub async fn conn(&self) -> Result<RedisConn, HubError> {
        let timeout = self.settings.connect_timeout;
        let cell = self.conn.get();
        let conn = cell
            .get_or_try_init(|| async {
                match tokio::time::timeout(timeout, self.open()).await {
                    Ok(r) => r,
                    Err(_) => Err(HubError::Timeout {
                        store: STORE,
                        instance: self.settings.name.clone(),
                        op: "connect".into(),
                        after: timeout,
                    }),
                }
            })
            .await?;
        Ok(conn.clone())
    }

    /// `PING`, then `INFO` as the read (it also updates the memory and hit-rate gauges and
    /// gives the version), each bounded (`health.timeout`, `health.read_timeout`). Redis runs
    /// one command at a time, so a server that answers `PING` answers reads too, unless a
    /// script holds it (`BUSY`), which fails both.
    #[boxed]
    pub async fn health(&self, settings: &HealthSettings) -> InstanceHealth {
        let ping = async {
            let mut conn = self.conn().await?;
            let _: String = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .map_err(|e| self.error("ping", &e))?;
            Ok::<_, HubError>(None)
        };
        let read = async {
            let mut conn = self.conn().await?;
            // A cluster answers with one INFO text per node.
            let info: Value = redis::cmd("INFO")
                .query_async(&mut conn)
                .await
                .map_err(|e| self.error("info", &e))?;
            let info = merge_info(&info);
            self.update_gauges(&info);
            Ok::<_, HubError>(info.get("redis_version").cloned())
        };
        let who = (STORE, self.settings.name.as_str(), self.settings.required);
        let mut h = crate::health::check(who, settings, ping, ("INFO", read)).await;
        // One multiplexed connection carries every command.
        let connected = u32::from(self.conn.get().initialized());
        h.pool = Some(PoolStats {
            size: connected,
            idle: 0,
            in_use: connected,
            max: 1,
        });
        h
    }

    fn update_gauges(&self, info: &HashMap<String, String>) {
        let labels = [("store_instance", self.settings.name.clone())];
        let num = |k: &str| info.get(k).and_then(|v| v.parse::<f64>().ok());
        if let Some(used) = num("used_memory") {
            metrics::gauge!(names::REDIS_USED_MEMORY, &labels).set(used);
        }
        if let (Some(h), Some(m)) = (num("keyspace_hits"), num("keyspace_misses")) {
            let ratio = if h + m > 0.0 { h / (h + m) } else { 0.0 };
            metrics::gauge!(names::REDIS_HIT_RATIO, &labels).set(ratio);
        }
    }
}
