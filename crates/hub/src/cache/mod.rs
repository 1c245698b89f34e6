//! A two-level cache for query results: in-process (L1) over Redis (L2) over the source
//! (overview: docs/cache.md).
//!
//! # Keys and versions
//! Every entry belongs to a **tag** (`user:42`): what a write invalidates. A tag has a version
//! in Redis (`<prefix>cache:{tag}:ver`, absent = 0); an entry's L2 key carries the version it was
//! loaded under (`<prefix>cache:{tag}:<version>:<key>`). Invalidating a tag increments its
//! version, so every older entry becomes unreachable at once, including one that a slow reader
//! writes back after the invalidation (it lands under the old version): no delete races.
//!
//! # L1 and other processes
//! Each process keeps up to `l1_capacity` entries for `l1_ttl`. An invalidation is published on
//! `<prefix>cache:invalidations`; every process drops that tag's L1 entries and acknowledges.
//! [`Cache::invalidate`] returns once every subscribed process has acknowledged (or after
//! `ack_timeout`, reported): after it returns, no process serves a stale L1 entry. A process
//! serves L1 only while its subscription is up; when it drops, L1 is cleared and bypassed until
//! the process has subscribed again. A load that overlaps an invalidation of its tag (or a
//! resubscription) is returned but not kept in L1.
//!
//! # Misses
//! Concurrent misses of one key in one process make one load (single flight): the others wait
//! for it and then read what it stored. Redis trouble never fails a read: the cache is bypassed
//! (counted as an L2 miss) and the source answers.
//!
//! Metrics: `tsp_cache_requests_total{level="l1"|"l2", result="hit"|"miss"}`,
//! `tsp_cache_loads_total`, `tsp_cache_invalidations_total`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_recursion::async_recursion as boxed;
use redis::Script;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tsp_config::CacheSettings;

use crate::error::HubError;
use crate::redis::RedisStore;

mod invalidation;
mod l1;

use invalidation::subscribe;
use l1::L1;

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The process's own map.
    L1,
    /// Redis, shared by every process.
    L2,
    /// The loader: a miss at both levels.
    Source,
}

/// Counts since the cache started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Answers found in the process's map.
    pub l1_hits: u64,
    /// Lookups the process's map could not answer.
    pub l1_misses: u64,
    /// Answers found in Redis.
    pub l2_hits: u64,
    /// Lookups Redis could not answer (or Redis was down).
    pub l2_misses: u64,
    /// Loads from the source.
    pub loads: u64,
    /// Invalidations this process published.
    pub invalidations: u64,
}

/// What an invalidation reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Invalidation {
    /// Processes subscribed when it was published (this one included).
    pub receivers: u64,
    /// Of those, how many dropped their L1 entries within `ack_timeout`.
    pub acknowledged: u64,
}

#[derive(Default)]
struct Counters {
    l1_hits: AtomicU64,
    l1_misses: AtomicU64,
    l2_hits: AtomicU64,
    l2_misses: AtomicU64,
    loads: AtomicU64,
    invalidations: AtomicU64,
}

/// State shared with the subscriber task.
struct Shared {
    l1: Mutex<L1>,
    /// L1 is served only while the invalidation subscription is up.
    subscribed: AtomicBool,
    /// Bumped on every subscribe and unsubscribe: a load spanning one is not kept in L1.
    generation: AtomicU64,
    counters: Counters,
}

impl Shared {
    fn l1(&self) -> MutexGuard<'_, L1> {
        match self.l1.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

struct Inner {
    store: RedisStore,
    settings: CacheSettings,
    shared: Arc<Shared>,
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    channel: String,
    subscriber: tokio::task::AbortHandle,
    /// On a Redis Cluster, the connection invalidations are published on: the node every
    /// process subscribes on, so `PUBLISH` counts every subscriber (it counts one node's).
    publisher: tokio::sync::OnceCell<redis::aio::MultiplexedConnection>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

/// The two-level cache. Cheap to clone; must be created inside a Tokio runtime.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

/// Reads an entry and its tag's version in one round trip. Both keys share the tag's hash slot.
static READ: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(
        r#"
local v = redis.call("GET", KEYS[1]) or "0"
return {v, redis.call("GET", ARGV[1] .. v .. ARGV[2])}
"#,
    )
});

/// Version keys outlive every entry by far (entries live `l2_ttl`, at most a day).
const VERSION_TTL_S: u64 = 7 * 24 * 3600;

fn valid_part(s: &str) -> bool {
    !s.is_empty() && s.len() <= 200 && !s.contains(['{', '}'])
}

fn elapsed_counter(level: &'static str, result: &'static str) {
    ::metrics::counter!(crate::metrics::names::CACHE_REQUESTS, "level" => level, "result" => result)
        .increment(1);
}

impl Cache {
    /// A cache on `store` (its key prefix is the cache's), subscribing to invalidations in the
    /// background. On Redis Cluster there is no subscription here, so L1 stays off.
    pub fn start(store: RedisStore, settings: &CacheSettings) -> Cache {
        let shared = Arc::new(Shared {
            l1: Mutex::new(L1::default()),
            subscribed: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            counters: Counters::default(),
        });
        let channel = format!("{}cache:invalidations", store.key_prefix());
        let task = tokio::spawn(subscribe(store.clone(), channel.clone(), shared.clone()));
        Cache {
            inner: Arc::new(Inner {
                store,
                settings: settings.clone(),
                shared,
                flights: Mutex::new(HashMap::new()),
                channel,
                publisher: tokio::sync::OnceCell::new(),
                subscriber: task.abort_handle(),
            }),
        }
    }

    /// Whether L1 is in use: enabled and subscribed to invalidations.
    pub fn l1_active(&self) -> bool {
        self.inner.settings.l1_capacity > 0 && self.inner.shared.subscribed.load(Ordering::Acquire)
    }

    /// Waits (at most `limit`) until L1 is in use; false if it is not by then.
    #[boxed]
    pub async fn wait_l1(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while !self.l1_active() {
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// The counts so far.
    pub fn stats(&self) -> CacheStats {
        let c = &self.inner.shared.counters;
        CacheStats {
            l1_hits: c.l1_hits.load(Ordering::Relaxed),
            l1_misses: c.l1_misses.load(Ordering::Relaxed),
            l2_hits: c.l2_hits.load(Ordering::Relaxed),
            l2_misses: c.l2_misses.load(Ordering::Relaxed),
            loads: c.loads.load(Ordering::Relaxed),
            invalidations: c.invalidations.load(Ordering::Relaxed),
        }
    }

    /// Drops every L1 entry of this process (benchmarks; operators never need it).
    pub fn clear_l1(&self) {
        self.inner.shared.l1().clear();
    }

    fn base(&self, tag: &str) -> String {
        format!("{}cache:{{{tag}}}:", self.inner.store.key_prefix())
    }

    /// The cached value of `key` under `tag`, or `load()`'s, which is then cached. A load error
    /// is returned as is and not cached.
    pub async fn get_or_load<T, E, F, Fut>(
        &self,
        tag: &str,
        key: &str,
        load: F,
    ) -> Result<(T, Level), E>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: From<HubError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.lookup(tag, key, true, load).await
    }

    /// Like [`Cache::get_or_load`] without the shared level: the process's own map, then the
    /// loader. For values whose source is Redis already (sessions), where L2 would only add a
    /// round trip; invalidation reaches these entries exactly as the others.
    pub async fn get_or_load_local<T, E, F, Fut>(
        &self,
        tag: &str,
        key: &str,
        load: F,
    ) -> Result<(T, Level), E>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: From<HubError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.lookup(tag, key, false, load).await
    }

    async fn lookup<T, E, F, Fut>(
        &self,
        tag: &str,
        key: &str,
        shared_level: bool,
        load: F,
    ) -> Result<(T, Level), E>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: From<HubError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if !valid_part(tag) || !valid_part(key) {
            return Err(E::from(HubError::Settings {
                store: "cache",
                instance: self.inner.store.name().to_string(),
                message: format!(
                    "cache tag and key must be 1-200 characters without braces: `{tag}`, `{key}`"
                ),
            }));
        }
        if let Some(v) = self.l1_get::<T>(tag, key) {
            return Ok((v, Level::L1));
        }
        // Single flight: the first miss of a key loads it; the others wait, then read.
        let full = format!("{tag}\u{0}{key}");
        let lock = { self.flights().entry(full.clone()).or_default().clone() };
        let (guard, waited) = match lock.clone().try_lock_owned() {
            Ok(g) => (g, false),
            Err(_) => (lock.clone().lock_owned().await, true),
        };
        if waited && let Some(v) = self.l1_get::<T>(tag, key) {
            drop(guard);
            self.forget_flight(&full, lock);
            return Ok((v, Level::L1));
        }
        let result = self.l2_then_load(tag, key, shared_level, load).await;
        drop(guard);
        self.forget_flight(&full, lock);
        result
    }

    fn flights(&self) -> MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        match self.inner.flights.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn forget_flight(&self, full: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut f = self.flights();
        // The map's reference and ours: nobody else waits.
        if Arc::strong_count(&lock) == 2 {
            f.remove(full);
        }
    }

    fn l1_get<T: Clone + 'static>(&self, tag: &str, key: &str) -> Option<T> {
        if !self.l1_active() {
            return None;
        }
        let c = &self.inner.shared.counters;
        let hit = self.inner.shared.l1().get(tag, key, Instant::now());
        match hit.as_deref().and_then(|v| v.downcast_ref::<T>()) {
            Some(v) => {
                c.l1_hits.fetch_add(1, Ordering::Relaxed);
                elapsed_counter("l1", "hit");
                Some(v.clone())
            }
            None => {
                c.l1_misses.fetch_add(1, Ordering::Relaxed);
                elapsed_counter("l1", "miss");
                None
            }
        }
    }

    async fn l2_then_load<T, E, F, Fut>(
        &self,
        tag: &str,
        key: &str,
        shared_level: bool,
        load: F,
    ) -> Result<(T, Level), E>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let shared = &self.inner.shared;
        let c = &shared.counters;
        let generation = shared.generation.load(Ordering::Acquire);
        shared
            .l1()
            .loading
            .entry(tag.to_string())
            .or_insert((0, false))
            .0 += 1;
        let base = self.base(tag);
        let suffix = format!(":{key}");
        let read = if shared_level {
            self.l2_read(&base, &suffix).await
        } else {
            Ok((String::new(), None))
        };
        let (version, from_l2) = match read {
            Ok((v, Some(bytes))) => match serde_json::from_slice::<T>(&bytes) {
                Ok(value) => (Some(v), Some(value)),
                // An entry of another shape (an older release): load and overwrite.
                Err(_) => (Some(v), None),
            },
            Ok((v, None)) => (Some(v), None),
            Err(e) => {
                tracing::debug!(error = %e, "cache L2 read failed; asking the source");
                (None, None)
            }
        };
        let (result, level) = match from_l2 {
            Some(v) => {
                c.l2_hits.fetch_add(1, Ordering::Relaxed);
                elapsed_counter("l2", "hit");
                (Ok(v), Level::L2)
            }
            None => {
                if shared_level {
                    c.l2_misses.fetch_add(1, Ordering::Relaxed);
                    elapsed_counter("l2", "miss");
                }
                c.loads.fetch_add(1, Ordering::Relaxed);
                ::metrics::counter!(crate::metrics::names::CACHE_LOADS).increment(1);
                let loaded = load().await;
                if let (Ok(v), Some(version), true) = (&loaded, &version, shared_level) {
                    self.l2_write(&format!("{base}{version}{suffix}"), v).await;
                }
                (loaded, Level::Source)
            }
        };
        let mut l1 = shared.l1();
        let clean = match l1.loading.get_mut(tag) {
            Some(l) => {
                l.0 -= 1;
                let clean = !l.1;
                if l.0 == 0 {
                    l1.loading.remove(tag);
                }
                clean
            }
            None => false,
        };
        let value = result?;
        if clean && self.l1_active() && shared.generation.load(Ordering::Acquire) == generation {
            let ttl = self.inner.settings.l1_ttl;
            let cap = self.inner.settings.l1_capacity;
            l1.insert(tag, key, Arc::new(value.clone()), ttl, cap);
        }
        Ok((value, level))
    }

    async fn l2_read(
        &self,
        base: &str,
        suffix: &str,
    ) -> Result<(String, Option<Vec<u8>>), HubError> {
        let store = &self.inner.store;
        let mut conn = store.conn().await?;
        READ.key(format!("{base}ver"))
            .arg(base)
            .arg(suffix)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| store.command_error("cache read", &e))
    }

    async fn l2_write<T: Serialize>(&self, key: &str, value: &T) {
        let store = &self.inner.store;
        let Ok(bytes) = serde_json::to_vec(value) else {
            return;
        };
        let ttl = self.inner.settings.l2_ttl.as_millis().max(1) as u64;
        let r = async {
            let mut conn = store.conn().await?;
            redis::cmd("SET")
                .arg(key)
                .arg(bytes)
                .arg("PX")
                .arg(ttl)
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| store.command_error("cache write", &e))
        }
        .await;
        if let Err(e) = r {
            tracing::debug!(error = %e, "cache L2 write failed");
        }
    }
}
