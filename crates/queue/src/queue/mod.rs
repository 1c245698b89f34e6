//! One named queue in Redis: the handle producers, workers and operators share.
//!
//! Its storage is changed only by the Lua scripts in `../lua/`, each atomic and taking a whole
//! batch of jobs; what each key holds and why this shape is in docs/queue.md. The handle's
//! operations are split by what they serve: [`spec`] (the stored form of a job), `produce`
//! (enqueue), `lease` (fetch, heartbeat, recovery, release), `finish` (outcomes), `dead`
//! (dead letters and their hooks), `rerun` (completed jobs run again) and `inspect` (counts,
//! one job, listings).
//!
//! Every key of a queue is `<key_prefix>q:{<name>}:…`: one Redis Cluster hash tag per queue, so
//! the scripts run on Cluster unchanged. Times are the callers' clocks in Unix milliseconds.

mod audit;
mod cancel;
mod dead;
mod finish;
mod inspect;
mod lease;
mod produce;
mod rerun;
mod scripts;
mod spec;
mod timetable;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_recursion::async_recursion as boxed;
use redis::Value;
use tsp_config::QueueSettings;
use tsp_hub::{RedisConn, RedisStore};

use crate::clock::Clock;
use crate::error::QueueError;
use crate::job::Backoff;
use scripts::SCRIPTS;

pub use audit::{AuditReport, Finding};
pub use cancel::Cancelled;
pub use dead::{DeadJob, Requeued};
pub use finish::{Finished, Outcome};
pub use inspect::{Glance, Lease, Order};
pub use lease::{Fetched, LeasedJob};
pub use rerun::Rerun;
pub use spec::UNREADABLE_TYPE;
pub use timetable::StoredSchedule;

/// The prefix of every key of queue `name`: one Redis Cluster hash tag per queue.
fn base_key(prefix: &str, name: &str) -> String {
    format!("{prefix}q:{{{name}}}:")
}

async fn upgrade_queue(store: &RedisStore, base: &str) -> Result<u64, QueueError> {
    let mut conn = store.conn().await?;
    let mut converted = 0;
    loop {
        let (n, left): (u64, u64) = SCRIPTS
            .upgrade
            .key(base)
            .arg(1000)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| QueueError::Hub(store.command_error("upgrade", &e)))?;
        converted += n;
        if left == 0 {
            return Ok(converted);
        }
    }
}

struct Inner {
    name: String,
    base: String,
    events: String,
    registry: String,
    store: RedisStore,
    settings: QueueSettings,
    registered: AtomicBool,
    clock: Clock,
}

/// A handle on one queue. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

/// Job ids as a caller may name them: 1-64 printable ASCII characters other than `{`, `}` and
/// `:` (ids the queue makes are digits; dedup keys and the key layout use the others).
pub fn valid_job_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'{' | b'}' | b':'))
}

/// Queue names: letters, digits, `_`, `-`, `.`; up to 64.
pub fn valid_queue_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        _ => String::new(),
    }
}

impl Queue {
    /// A handle on queue `name` in `store` (no round trip).
    pub fn new(
        store: RedisStore,
        name: &str,
        settings: &QueueSettings,
    ) -> Result<Queue, QueueError> {
        if !valid_queue_name(name) {
            return Err(QueueError::Invalid {
                field: "queue".into(),
                message: format!("`{name}`: use 1-64 letters, digits, `_`, `-` or `.`"),
            });
        }
        let prefix = store.key_prefix().to_string();
        Ok(Queue {
            inner: Arc::new(Inner {
                name: name.to_string(),
                base: base_key(&prefix, name),
                events: format!("{prefix}events:{name}"),
                registry: format!("{prefix}queues"),
                store,
                settings: settings.clone(),
                registered: AtomicBool::new(false),
                clock: Clock::System,
            }),
        })
    }

    /// The same queue, its transitions stamped by `clock` (tests: [`Clock::manual`]).
    pub fn with_clock(self, clock: Clock) -> Queue {
        let i = &self.inner;
        Queue {
            inner: Arc::new(Inner {
                name: i.name.clone(),
                base: i.base.clone(),
                events: i.events.clone(),
                registry: i.registry.clone(),
                store: i.store.clone(),
                settings: i.settings.clone(),
                registered: AtomicBool::new(i.registered.load(Ordering::SeqCst)),
                clock,
            }),
        }
    }

    /// The queue's time now, milliseconds since the Unix epoch ([`Clock`]).
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The key prefix of every key of this queue.
    pub fn base_key(&self) -> &str {
        &self.inner.base
    }

    /// The pub/sub channel of completed/failed events: JSON `{"event": "completed"|"failed",
    /// "ids": [...]}`, one message per acknowledged batch.
    pub fn events_channel(&self) -> &str {
        &self.inner.events
    }

    /// The queue's settings.
    pub fn settings(&self) -> &QueueSettings {
        &self.inner.settings
    }

    /// The Redis store holding it.
    pub fn store(&self) -> &RedisStore {
        &self.inner.store
    }

    pub(crate) async fn conn(&self) -> Result<RedisConn, QueueError> {
        Ok(self.inner.store.conn().await?)
    }

    /// Runs the read `ask` with the store's one retry after a dropped connection
    /// ([`RedisStore::read`], docs/queue.md#reads).
    pub(crate) async fn read<T, F, Fut>(&self, op: &str, ask: F) -> Result<T, QueueError>
    where
        F: Fn(RedisConn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        Ok(self.inner.store.read(op, ask).await?)
    }

    fn err(&self, op: &str, e: &redis::RedisError) -> QueueError {
        QueueError::Hub(self.inner.store.command_error(op, e))
    }

    /// Deletes every key of this queue and forgets its name: for throwaway queues such as a
    /// benchmark's. Not for a queue that workers still use (their next call recreates keys).
    #[boxed]
    pub async fn delete(&self) -> Result<u64, QueueError> {
        let deleted = self
            .inner
            .store
            .delete_matching(&format!("{}*", self.inner.base))
            .await?;
        self.set_registered(&mut self.conn().await?, false).await?;
        Ok(deleted)
    }

    /// Adds this queue's name to (or removes it from) the set of known queues.
    pub(super) async fn set_registered(
        &self,
        conn: &mut RedisConn,
        known: bool,
    ) -> Result<(), QueueError> {
        let cmd = if known { "SADD" } else { "SREM" };
        let _: i64 = redis::cmd(cmd)
            .arg(&self.inner.registry)
            .arg(&self.inner.name)
            .query_async(conn)
            .await
            .map_err(|e| self.err(&cmd.to_lowercase(), &e))?;
        self.inner.registered.store(known, Ordering::Relaxed);
        Ok(())
    }

    /// Every queue that has had a job enqueued under this prefix.
    #[boxed]
    pub async fn known(store: &RedisStore) -> Result<Vec<String>, QueueError> {
        let mut conn = store.conn().await?;
        let mut names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{}queues", store.key_prefix()))
            .query_async(&mut conn)
            .await
            .map_err(|e| QueueError::Hub(store.command_error("smembers", &e)))?;
        names.sort();
        Ok(names)
    }

    /// Converts completed jobs stored by earlier builds (a sorted set `completed`) to the
    /// current layout (see `upgrade.lua`); returns how many it converted. Workers run it when
    /// they start on a queue (one command when there is nothing to convert); the Redis
    /// key-schema step that introduced the layout runs it for every known queue.
    #[boxed]
    pub async fn upgrade_storage(&self) -> Result<u64, QueueError> {
        upgrade_queue(&self.inner.store, &self.inner.base).await
    }

    /// [`Queue::upgrade_storage`] for every queue known under the store's prefix.
    #[boxed]
    pub async fn upgrade_all(store: &RedisStore) -> Result<u64, QueueError> {
        let mut converted = 0;
        for name in Queue::known(store).await? {
            let base = base_key(store.key_prefix(), &name);
            converted += upgrade_queue(store, &base).await?;
        }
        Ok(converted)
    }

    /// The backoff of jobs that set none: exponential from `queue.backoff`.
    fn default_backoff(&self) -> Backoff {
        Backoff::Exponential(u64::try_from(self.inner.settings.backoff.as_millis()).unwrap_or(1000))
    }

    /// Holds workers from fetching (jobs already leased run on).
    #[boxed]
    pub async fn pause(&self) -> Result<(), QueueError> {
        let mut conn = self.conn().await?;
        redis::cmd("SET")
            .arg(format!("{}paused", self.inner.base))
            .arg(1)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.err("pause", &e))
    }

    /// Lets workers fetch again.
    #[boxed]
    pub async fn resume(&self) -> Result<(), QueueError> {
        let mut conn = self.conn().await?;
        let _: i64 = redis::pipe()
            .cmd("DEL")
            .arg(format!("{}paused", self.inner.base))
            .ignore()
            .cmd("LPUSH")
            .arg(format!("{}wake", self.inner.base))
            .arg(1)
            .query_async::<(i64,)>(&mut conn)
            .await
            .map_err(|e| self.err("resume", &e))?
            .0;
        Ok(())
    }

    /// With `queue.durability = wait`, waits until the replicas asked for have every write this
    /// connection made so far (Redis `WAIT`; the queue's connection is one multiplexed
    /// connection, so that covers the calls just made); how many confirmed, or `None` when
    /// durability is `none`.
    pub(crate) async fn wait_replicas(&self) -> Result<Option<(u32, u32)>, QueueError> {
        let s = &self.inner.settings;
        if s.durability != tsp_config::Durability::Wait {
            return Ok(None);
        }
        let mut conn = self.conn().await?;
        let timeout = u64::try_from(s.durability_timeout.as_millis()).unwrap_or(u64::MAX);
        let confirmed: i64 = redis::cmd("WAIT")
            .arg(s.durability_replicas)
            .arg(timeout.max(1))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.err("wait", &e))?;
        let confirmed = u32::try_from(confirmed).unwrap_or(0);
        if confirmed < s.durability_replicas {
            metrics::counter!(crate::metrics::UNREPLICATED, "queue" => self.inner.name.clone())
                .increment(1);
        }
        Ok(Some((confirmed, s.durability_replicas)))
    }

    /// Records progress (any JSON) of a job this worker holds.
    #[boxed]
    pub async fn set_progress(
        &self,
        id: &str,
        progress: &serde_json::Value,
    ) -> Result<(), QueueError> {
        let mut conn = self.conn().await?;
        let value = progress.to_string();
        redis::pipe()
            .cmd("HSET")
            .arg(format!("{}progress", self.inner.base))
            .arg(id)
            .arg(&value)
            .ignore()
            .cmd("PUBLISH")
            .arg(&self.inner.events)
            .arg(
                serde_json::json!({"event": "progress", "ids": [id], "progress": progress})
                    .to_string(),
            )
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.err("progress", &e))
    }

    /// The key of the list idle workers block on.
    pub(crate) fn wake_key(&self) -> String {
        format!("{}wake", self.inner.base)
    }
}
