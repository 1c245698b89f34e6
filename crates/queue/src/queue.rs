//! One named queue in Redis: producing, inspecting, and the state transitions workers use.
//!
//! # Storage
//! Changed only by the Lua scripts in `lua/`, each one atomic. A job's id is in exactly one of:
//! - `wait:<p>`: a list per priority `p` (0–1023), FIFO; `prios` (sorted set) names the
//!   priorities that have waiting jobs, highest first. A job taken back from a worker (lease
//!   expired, shutdown) goes to the front of its list: it had reached the front already.
//! - `delayed`: sorted set, score = run-at time (delays and retry backoff); promoted by `fetch`
//!   to the back of its list when due;
//! - `active:<lease id>`: the set of jobs one worker holds. `workers` (sorted set) maps each
//!   lease id to its deadline, which the worker's heartbeat pushes forward; `recover` takes back
//!   the jobs of a lease whose deadline passed and evicts that lease id (`evicted`), so the
//!   worker's late outcomes are refused and it continues under a new lease id.
//! - `done`: a list of completed jobs in completion order, trimmed from its head by age and
//!   count; `dead`: sorted set, score = when the job died, trimmed the same way.
//!
//! Hashes keyed by job id hold the rest: `data` (the spec: type, payload, options), `lease` (the
//! attempt record: attempts, started, run-at, holder, and for a completed job its finish time),
//! `results`, `errors`, `progress`, `dedupof`. Also `stats` (lifetime counters), `dedup` (key →
//! id), `paused`, `wake` (a one-element list idle workers block on), and `deadhook`: dead jobs
//! whose dead-letter hook (see `Registry::on_dead`) has not run yet, score = when a worker may
//! claim it.
//!
//! Why this shape: on the hot path (enqueue → fetch → finish → retention) a job costs Redis two
//! list pushes and pops, a set add and remove, and in hashes of every job one spec written, read
//! and deleted and one lease record written and deleted. Measured here, a sorted set costs about
//! ten times what a list or set costs per element, and an element of a hash of 100 000 jobs
//! several times what one of a worker's small set costs. So:
//! - waiting jobs are in lists, leases are held per worker (`active:<lease id>`), not per job;
//! - a first attempt gets no lease record when it is fetched: the worker sends the whole record
//!   (attempts, started, run-at, holder, finish time) with the completion, and its heartbeat
//!   writes one for a job still running, so a long job shows its start and holder. Recovery,
//!   release, retries and death write one too, so a job without a record has never left its
//!   first holder (`finish` relies on that when an acknowledgement mixes held and stale jobs);
//! - completed jobs are a list, not a sorted set: found by id through the finish time in their
//!   record, trimmed by age with a binary search over the head of the list;
//! - every transition is one script call for a whole batch of jobs, with its arguments laid out
//!   so the script hands them to Redis without a per-job Lua loop.
//!
//! Queues written by builds that kept completed jobs in a sorted set `completed` are converted
//! by the Redis key-schema step 2 (`tsp-job migrate`, through `Queue::upgrade_all`) and, for a
//! worker upgraded before that ran, when it starts on them (`Queue::upgrade_storage`).
//!
//! Lists and sorted sets rather than Streams: Streams give consumer groups and pending lists,
//! but not priorities, delays or dead letters, which would need other structures beside them,
//! and the scripts would then keep two structures in step.
//!
//! Counts per state cost one command per priority in use and per worker holding jobs (see
//! `counts.lua`), never a scan of jobs or keys.
//!
//! Every key of a queue is `<key_prefix>q:{<name>}:…`: one Redis Cluster hash tag per queue, so
//! the scripts run on Cluster unchanged.
//!
//! Times are the callers' clocks in Unix milliseconds (workers on one host, or NTP-synced hosts).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::{Script, Value};
use tsp_config::QueueSettings;
use tsp_hub::{RedisConn, RedisStore};

use crate::error::QueueError;
use crate::job::{Backoff, JobInfo, JobState, NewJob, QueueCounts};

struct Scripts {
    enqueue: Script,
    fetch: Script,
    finish: Script,
    extend: Script,
    recover: Script,
    release: Script,
    requeue: Script,
    deadclaim: Script,
    counts: Script,
    job: Script,
    list: Script,
    upgrade: Script,
}

/// Each script is `common.lua` (shared helpers) followed by its own file.
macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/common.lua"),
            "\n",
            include_str!($file)
        ))
    };
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    enqueue: script!("lua/enqueue.lua"),
    fetch: script!("lua/fetch.lua"),
    finish: script!("lua/finish.lua"),
    extend: script!("lua/extend.lua"),
    recover: script!("lua/recover.lua"),
    release: script!("lua/release.lua"),
    requeue: script!("lua/requeue.lua"),
    deadclaim: script!("lua/deadclaim.lua"),
    counts: script!("lua/counts.lua"),
    job: script!("lua/job.lua"),
    list: script!("lua/list.lua"),
    upgrade: script!("lua/upgrade.lua"),
});

/// A job's immutable part, stored as one JSON array per job in the queue's `data` hash:
/// `[type, payload, priority, max_attempts, backoff, timeout_ms, dedup_key, created_ms]`.
/// (Lua reads position 3, priority, and 4, max_attempts.) The id is the hash field and `fetch`
/// answers with ids beside the specs; a delayed job's run-at is in its lease record. Specs
/// written by earlier builds have two more elements, run-at and the id again: they are read as
/// before, and new specs leave them out because each copy of a spec is written to the AOF.
#[derive(serde::Deserialize)]
struct Spec<'a>(
    String,
    #[serde(borrow)] &'a serde_json::value::RawValue,
    u16,
    u32,
    String,
    u64,
    String,
    i64,
    /// Run-at (earlier builds only).
    #[serde(default)]
    Option<i64>,
    /// The id again (earlier builds only).
    #[serde(default)]
    serde::de::IgnoredAny,
);

fn encode_spec(j: &NewJob, max: u32, backoff: Backoff, timeout_ms: u64, created: i64) -> String {
    // The payload was checked to be JSON; it is embedded as is, not re-encoded.
    format!(
        "[{},{},{},{},{},{},{},{}]",
        serde_json::Value::String(j.job_type.clone()),
        j.payload,
        j.priority,
        max,
        serde_json::Value::String(backoff.encode()),
        timeout_ms,
        serde_json::Value::String(j.dedup_key.clone().unwrap_or_default()),
        created,
    )
}

/// A stored spec, or why it cannot be read (with its start, to recognise it by).
fn read_spec(v: &Value) -> Result<Spec<'_>, String> {
    let Value::BulkString(b) = v else {
        return Err(format!("not a string: {v:?}"));
    };
    let text = std::str::from_utf8(b).map_err(|e| format!("not UTF-8: {e}"))?;
    serde_json::from_str(text).map_err(|e| format!("{e} in `{text:.120}`"))
}

/// The prefix of every key of queue `name`: one Redis Cluster hash tag per queue.
fn base_key(prefix: &str, name: &str) -> String {
    format!("{prefix}q:{{{name}}}:")
}

/// When the job with this id was enqueued: ids are ULIDs, which start with their creation time
/// (for a job whose spec, which holds it too, cannot be read).
fn created_from_id(id: &str) -> Option<i64> {
    let ms = ulid::Ulid::from_string(id).ok()?.timestamp_ms();
    i64::try_from(ms).ok()
}

/// Expired worker leases taken back per recover call (each holds up to its concurrency).
const RECOVER_WORKERS: usize = 20;

/// Jobs per finish script call (its arguments stay within Lua's `unpack` limit, 8 000).
const FINISH_CHUNK: usize = 1000;

/// Job ids per heartbeat or release call (same limit).
const IDS_PER_CALL: usize = 4000;

/// Indexes of `tokens` grouped by lease id, groups in order of first appearance.
fn by_holder<'a>(tokens: impl Iterator<Item = &'a str>) -> Vec<(&'a str, Vec<usize>)> {
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, t) in tokens.enumerate() {
        match groups.iter_mut().find(|(h, _)| *h == t) {
            Some((_, idx)) => idx.push(i),
            None => groups.push((t, vec![i])),
        }
    }
    groups
}

/// Jobs per enqueue script call: big enough to amortize the round trip, small enough that one
/// call does not hold Redis for long (about a millisecond).
const ENQUEUE_CHUNK: usize = 500;

/// A new job id: a ULID, strictly increasing within this process, so that sorting ids restores
/// the order one producer enqueued them in (used when jobs taken back are put in line again).
fn new_id() -> String {
    static IDS: LazyLock<std::sync::Mutex<ulid::Generator>> =
        LazyLock::new(|| std::sync::Mutex::new(ulid::Generator::new()));
    let mut generator = match IDS.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    // The random part overflows only after 2^80 ids in one millisecond.
    generator
        .generate()
        .unwrap_or_else(|_| ulid::Ulid::new())
        .to_string()
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
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

/// A job leased to a worker.
#[derive(Debug, Clone)]
pub struct LeasedJob {
    pub id: String,
    pub job_type: String,
    pub payload: String,
    /// This attempt's number, from 1.
    pub attempts: u32,
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub timeout: Duration,
    /// The lease id it is held under: proves this worker holds the current attempt. (Shared:
    /// every job of a fetch has the same one.)
    pub token: Arc<str>,
    /// When the job became runnable (Unix ms): wait time is measured from here.
    pub runnable_at: i64,
    /// The run-at time a delay or a retry set for this attempt, if one did (Unix ms).
    pub run_at: Option<i64>,
    pub priority: u16,
    /// When it was enqueued (Unix ms).
    pub created_at: i64,
    /// When it was leased (Unix ms).
    pub leased_at: i64,
    /// Whether it has a dedup key (to release when it finishes).
    pub has_dedup: bool,
    /// Its spec could not be read (corrupted, or written by a newer build): why. The worker
    /// fails the attempt with this instead of running anything, so the job is retried (perhaps
    /// by a worker that reads it) and dead-lettered after the queue's `max_attempts`, while the
    /// rest of its batch runs. Its type is then [`UNREADABLE_TYPE`], its options the queue's.
    pub unreadable: Option<String>,
}

/// The parts of a lease record ("attempts|started|run_at|holder[|finished]", see `common.lua`)
/// that Rust reads; an empty or missing part is 0 attempts or `None`.
struct LeaseRecord {
    attempts: u32,
    started: Option<i64>,
    run_at: Option<i64>,
}

impl LeaseRecord {
    fn parse(record: &str) -> LeaseRecord {
        let mut fields = record.split('|');
        let mut next = || fields.next().and_then(|x| x.parse::<i64>().ok());
        LeaseRecord {
            attempts: next().and_then(|a| u32::try_from(a).ok()).unwrap_or(0),
            started: next(),
            run_at: next(),
        }
    }
}

/// The job type reported for a job whose spec could not be read.
pub const UNREADABLE_TYPE: &str = "(unreadable spec)";

impl LeasedJob {
    /// This attempt's lease record, "attempts|started|run_at|lease id" (see `common.lua`),
    /// followed by `|<finished>` when given: the worker builds it, as it knows every part.
    fn lease_record(&self, finished: Option<&str>) -> String {
        use std::fmt::Write;
        let mut r = String::with_capacity(64);
        let _ = write!(r, "{}|{}|", self.attempts, self.leased_at);
        if let Some(t) = self.run_at {
            let _ = write!(r, "{t}");
        }
        r.push('|');
        r.push_str(&self.token);
        if let Some(f) = finished {
            r.push('|');
            r.push_str(f);
        }
        r
    }
}

/// A dead job waiting for its dead-letter hook.
#[derive(Debug, Clone)]
pub struct DeadJob {
    pub id: String,
    pub job_type: String,
    pub payload: String,
}

/// What a requeue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Requeued {
    pub requeued: u64,
    /// Left dead because their dead-letter hook is running; try again shortly.
    pub hook_running: u64,
}

/// The result of one fetch.
#[derive(Debug, Default)]
pub struct Fetched {
    pub jobs: Vec<LeasedJob>,
    /// The earliest delayed job's run time, if any (Unix ms).
    pub next_delayed_at: Option<i64>,
    pub ready_left: u64,
    /// The lease id was evicted (its deadline passed and its jobs were taken back).
    pub evicted: bool,
}

/// How an attempt ended, as the worker reports it.
#[derive(Debug, Clone)]
pub enum Outcome {
    Completed { result: String },
    Retry { error: String, at: i64 },
    Dead { error: String },
}

/// What the queue made of a reported outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    Completed,
    Retrying,
    Dead,
    /// The lease was no longer this worker's (expired and recovered): nothing was changed.
    Stale,
}

struct Inner {
    name: String,
    base: String,
    events: String,
    registry: String,
    store: RedisStore,
    settings: QueueSettings,
    registered: AtomicBool,
}

/// A handle on one queue. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
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
            }),
        })
    }

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

    pub fn settings(&self) -> &QueueSettings {
        &self.inner.settings
    }

    pub fn store(&self) -> &RedisStore {
        &self.inner.store
    }

    pub(crate) async fn conn(&self) -> Result<RedisConn, QueueError> {
        Ok(self.inner.store.conn().await?)
    }

    fn err(&self, op: &str, e: &redis::RedisError) -> QueueError {
        QueueError::Hub(self.inner.store.command_error(op, e))
    }

    /// Deletes every key of this queue and forgets its name: for throwaway queues such as a
    /// benchmark's. Not for a queue that workers still use (their next call recreates keys).
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
    async fn set_registered(&self, conn: &mut RedisConn, known: bool) -> Result<(), QueueError> {
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
    pub async fn upgrade_storage(&self) -> Result<u64, QueueError> {
        upgrade_queue(&self.inner.store, &self.inner.base).await
    }

    /// [`Queue::upgrade_storage`] for every queue known under the store's prefix.
    pub async fn upgrade_all(store: &RedisStore) -> Result<u64, QueueError> {
        let mut converted = 0;
        for name in Queue::known(store).await? {
            let base = base_key(store.key_prefix(), &name);
            converted += upgrade_queue(store, &base).await?;
        }
        Ok(converted)
    }

    /// Enqueues one job; returns its id (or, for a duplicate dedup key, the pending job's id).
    pub async fn enqueue(&self, job: NewJob) -> Result<String, QueueError> {
        let ids = self.enqueue_many(vec![job]).await?;
        ids.into_iter()
            .next()
            .ok_or_else(|| QueueError::Protocol("enqueue returned no id".into()))
    }

    /// Enqueues many jobs in as few round trips as possible; ids in order.
    ///
    /// Jobs are sent in chunks, a few at a time over the multiplexed connection, which
    /// pipelines them. If an error is returned, chunks before it may have been stored.
    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<String>, QueueError> {
        for (n, j) in jobs.iter().enumerate() {
            j.validate().map_err(|e| match e {
                QueueError::Invalid { field, message } if jobs.len() > 1 => QueueError::Invalid {
                    field: format!("jobs[{n}].{field}"),
                    message,
                },
                other => other,
            })?;
        }
        let conn = self.conn().await?;
        if !self.inner.registered.load(Ordering::Relaxed) {
            self.set_registered(&mut conn.clone(), true).await?;
        }
        let s = &self.inner.settings;
        let now = now_ms();
        let default_backoff = self.default_backoff();
        // Runs of plain jobs (no delay, no dedup key) and of the others, in order: a plain chunk
        // is stored by a few variadic commands (its ids are the ones made here), the others one
        // by one (a dedup key may answer with an existing id). Splitting at every change of kind
        // keeps FIFO across the runs.
        let plain = |j: &NewJob| j.dedup_key.is_none() && j.delay.is_zero();
        let mut chunks: Vec<(bool, &[NewJob])> = Vec::new();
        let mut rest: &[NewJob] = &jobs;
        while let Some(first) = rest.first() {
            let kind = plain(first);
            let len = rest
                .iter()
                .take(ENQUEUE_CHUNK)
                .take_while(|j| plain(j) == kind)
                .count();
            let (chunk, tail) = rest.split_at(len);
            chunks.push((kind, chunk));
            rest = tail;
        }
        let spec = |j: &NewJob| {
            let timeout_ms =
                u64::try_from(j.timeout.unwrap_or(s.timeout).as_millis()).unwrap_or(u64::MAX);
            encode_spec(
                j,
                j.max_attempts.unwrap_or(s.max_attempts),
                j.backoff.unwrap_or(default_backoff),
                timeout_ms,
                now,
            )
        };
        let invocations: Vec<(Option<Vec<String>>, redis::ScriptInvocation<'static>)> = chunks
            .into_iter()
            .map(|(is_plain, chunk)| {
                let mut inv = SCRIPTS.enqueue.key(&self.inner.base);
                inv.arg(now);
                if is_plain {
                    let ids: Vec<String> = chunk.iter().map(|_| new_id()).collect();
                    inv.arg(chunk.len());
                    for (id, j) in ids.iter().zip(chunk) {
                        inv.arg(id).arg(spec(j));
                    }
                    let mut prios: Vec<u16> = chunk.iter().map(|j| j.priority).collect();
                    prios.sort_unstable();
                    prios.dedup();
                    inv.arg(prios.len());
                    for p in prios {
                        let members: Vec<&String> = ids
                            .iter()
                            .zip(chunk)
                            .filter(|(_, j)| j.priority == p)
                            .map(|(id, _)| id)
                            .collect();
                        inv.arg(p).arg(members.len()).arg(members);
                    }
                    inv.arg(0);
                    (Some(ids), inv)
                } else {
                    inv.arg(0).arg(0).arg(chunk.len());
                    for j in chunk {
                        let id = new_id();
                        inv.arg(&id)
                            .arg(spec(j))
                            .arg(j.priority)
                            .arg(j.dedup_key.as_deref().unwrap_or(""))
                            .arg(u64::try_from(j.delay.as_millis()).unwrap_or(u64::MAX));
                    }
                    (None, inv)
                }
            })
            .collect();
        // A few calls in flight keep the connection busy without queueing seconds of work
        // behind one another (each call must answer within the command timeout).
        let mut ids = Vec::with_capacity(jobs.len());
        for group in invocations.chunks(4) {
            let calls = group.iter().map(|(_, inv)| {
                let mut conn = conn.clone();
                async move { inv.invoke_async::<Vec<String>>(&mut conn).await }
            });
            let results = futures::future::join_all(calls).await;
            for ((made, _), r) in group.iter().zip(results) {
                let returned = r.map_err(|e| self.err("enqueue", &e))?;
                match made {
                    Some(made) => ids.extend(made.iter().cloned()),
                    None => ids.extend(returned),
                }
            }
        }
        metrics::counter!(crate::metrics::ENQUEUED, "queue" => self.inner.name.clone())
            .increment(ids.len() as u64);
        Ok(ids)
    }

    /// Leases up to `n` jobs under lease id `holder` (promoting due delayed jobs first).
    /// `Fetched::evicted`: that lease id expired and its jobs were taken back; fetch again under
    /// a new one.
    pub async fn fetch(&self, n: usize, holder: &str) -> Result<Fetched, QueueError> {
        let mut conn = self.conn().await?;
        let lease = i64::try_from(self.inner.settings.lease.as_millis()).unwrap_or(30_000);
        let now = now_ms();
        let reply: Vec<Value> = SCRIPTS
            .fetch
            .key(&self.inner.base)
            .arg(now)
            .arg(n)
            .arg(now + lease)
            .arg(holder)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err("fetch", &e))?;
        if reply.len() == 1 {
            return Ok(Fetched {
                evicted: true,
                ..Fetched::default()
            });
        }
        let (specs, before, ids) = match reply.as_slice() {
            [_, _, Value::Array(s), Value::Array(b), Value::Array(i)] if i.len() == s.len() => {
                (s, b, i)
            }
            _ => {
                return Err(QueueError::Protocol(format!(
                    "fetch returned {} values",
                    reply.len()
                )));
            }
        };
        let next = int(&reply[0]).filter(|t| *t >= 0);
        let ready_left = int(&reply[1])
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0);
        // Lease records before this attempt, for the jobs that had one: "attempts|started|
        // run_at|holder". The others are first attempts.
        let mut records: HashMap<usize, String> = HashMap::new();
        for pair in before.chunks_exact(2) {
            if let Some(i) = int(&pair[0]).and_then(|i| usize::try_from(i).ok()) {
                records.insert(i, text(&pair[1]));
            }
        }
        let token: Arc<str> = Arc::from(holder);
        let mut jobs = Vec::with_capacity(specs.len());
        for (i, (spec, id)) in specs.iter().zip(ids).enumerate() {
            let (attempts, run_at) = match records.get(&i) {
                None => (1, None),
                Some(r) => {
                    let before = LeaseRecord::parse(r);
                    (before.attempts + 1, before.run_at)
                }
            };
            let id = text(id);
            let spec = match read_spec(spec) {
                Ok(spec) => spec,
                Err(why) => {
                    jobs.push(self.unreadable_job(id, why, attempts, run_at, &token, now));
                    continue;
                }
            };
            jobs.push(LeasedJob {
                job_type: spec.0,
                payload: spec.1.get().to_string(),
                priority: spec.2,
                max_attempts: spec.3,
                backoff: Backoff::decode(&spec.4),
                timeout: Duration::from_millis(spec.5),
                created_at: spec.7,
                runnable_at: run_at.or(spec.8).unwrap_or(spec.7),
                run_at,
                attempts,
                token: token.clone(),
                leased_at: now,
                has_dedup: !spec.6.is_empty(),
                id,
                unreadable: None,
            });
        }
        Ok(Fetched {
            jobs,
            next_delayed_at: next,
            ready_left,
            evicted: false,
        })
    }

    /// The backoff of jobs that set none: exponential from `queue.backoff`.
    fn default_backoff(&self) -> Backoff {
        Backoff::Exponential(u64::try_from(self.inner.settings.backoff.as_millis()).unwrap_or(1000))
    }

    /// A fetched job whose spec could not be read, with the queue's options (see
    /// `LeasedJob::unreadable`).
    fn unreadable_job(
        &self,
        id: String,
        why: String,
        attempts: u32,
        run_at: Option<i64>,
        token: &Arc<str>,
        now: i64,
    ) -> LeasedJob {
        let s = &self.inner.settings;
        tracing::warn!(queue = %self.inner.name, job = %id, error = %why, "unreadable job spec; the attempt fails");
        let created_at = created_from_id(&id).unwrap_or(now);
        LeasedJob {
            id,
            job_type: UNREADABLE_TYPE.to_string(),
            payload: "null".to_string(),
            attempts,
            max_attempts: s.max_attempts,
            backoff: self.default_backoff(),
            timeout: s.timeout,
            token: token.clone(),
            runnable_at: run_at.unwrap_or(now),
            run_at,
            priority: 0,
            created_at,
            leased_at: now,
            has_dedup: false,
            unreadable: Some(why),
        }
    }

    /// Returns to the front of their line the jobs held under lease id `holder` that `known`
    /// does not claim: jobs a `fetch` leased whose answer never reached the worker (the
    /// connection dropped after the script ran). Without this they would stay leased for as
    /// long as the worker's heartbeat keeps `holder` alive. The attempt is not counted. Call it
    /// only while no fetch under `holder` is in flight.
    pub async fn release_unknown(
        &self,
        holder: &str,
        known: impl Fn(&str) -> bool,
    ) -> Result<u64, QueueError> {
        let mut conn = self.conn().await?;
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{}active:{holder}", self.inner.base))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.err("release_unknown", &e))?;
        let unknown: Vec<(String, String)> = members
            .into_iter()
            .filter(|id| !known(id))
            .map(|id| (id, holder.to_string()))
            .collect();
        if unknown.is_empty() {
            return Ok(0);
        }
        self.release(&unknown).await
    }

    /// Reports finished attempts: one round trip per lease id among them (usually one).
    /// `any_dedup`: some of these jobs have a dedup key to release (skips that work for the
    /// common batch without any). Outcomes in the order of `acks`.
    pub async fn finish(
        &self,
        acks: &[(&LeasedJob, Outcome)],
        any_dedup: bool,
    ) -> Result<Vec<Finished>, QueueError> {
        let mut out = vec![Finished::Stale; acks.len()];
        for (holder, idx) in by_holder(acks.iter().map(|(j, _)| &*j.token)) {
            for part in idx.chunks(FINISH_CHUNK) {
                let got = self.finish_held(holder, acks, part, any_dedup).await?;
                for (i, f) in got {
                    out[i] = f;
                }
            }
        }
        Ok(out)
    }

    /// One finish call for jobs held under `holder`: `part` indexes `acks`.
    async fn finish_held(
        &self,
        holder: &str,
        acks: &[(&LeasedJob, Outcome)],
        part: &[usize],
        any_dedup: bool,
    ) -> Result<Vec<(usize, Finished)>, QueueError> {
        let s = &self.inner.settings;
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let now = now_ms().to_string();
        let (plain, other): (Vec<usize>, Vec<usize>) = part.iter().partition(
            |&&i| matches!(&acks[i].1, Outcome::Completed { result } if result == "null"),
        );
        let mut inv = SCRIPTS.finish.key(&self.inner.base);
        inv.arg(&now)
            .arg(s.keep_completed)
            .arg(ms(s.keep_completed_age))
            .arg(s.keep_dead)
            .arg(ms(s.keep_dead_age))
            .arg(&self.inner.events)
            .arg(if any_dedup { "1" } else { "0" })
            .arg(holder)
            .arg(plain.len());
        for &i in &plain {
            let job = acks[i].0;
            inv.arg(&job.id).arg(job.lease_record(Some(&now)));
        }
        inv.arg(other.len());
        for &i in &other {
            let job = acks[i].0;
            inv.arg(&job.id);
            match &acks[i].1 {
                Outcome::Completed { result } => inv.arg("ok").arg(result).arg(0),
                Outcome::Retry { error, at } => inv.arg("retry").arg(error).arg(*at),
                Outcome::Dead { error } => inv.arg("dead").arg(error).arg(0),
            };
            inv.arg(job.lease_record(None));
        }
        let mut conn = self.conn().await?;
        let reply: Vec<Value> = inv
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err("finish", &e))?;
        // {L, statuses...}: the first L jobs completed, then one status per remaining job.
        let lead = reply
            .first()
            .and_then(int)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(usize::MAX);
        let answered = lead.saturating_add(reply.len().saturating_sub(1));
        if answered != part.len() {
            return Err(QueueError::Protocol(format!(
                "finish answered {answered} of {} jobs",
                part.len()
            )));
        }
        let statuses = reply[1..].iter().map(|r| match r {
            Value::BulkString(b) => match b.as_slice() {
                b"completed" => Ok(Finished::Completed),
                b"retrying" => Ok(Finished::Retrying),
                b"dead" => Ok(Finished::Dead),
                b"stale" => Ok(Finished::Stale),
                other => Err(QueueError::Protocol(format!(
                    "finish: {}",
                    String::from_utf8_lossy(other)
                ))),
            },
            other => Err(QueueError::Protocol(format!("finish: {other:?}"))),
        });
        plain
            .iter()
            .chain(&other)
            .zip(std::iter::repeat_n(Ok(Finished::Completed), lead).chain(statuses))
            .map(|(&i, f)| f.map(|f| (i, f)))
            .collect()
    }

    /// Heartbeat: extends the leases of these (id, lease id, leased at) triples; returns the
    /// ids whose lease this worker no longer holds. Jobs on their first attempt get the lease
    /// record their fetch left out (see `common.lua`), so their start shows while they run.
    pub async fn extend(
        &self,
        leases: &[(String, String, i64)],
    ) -> Result<Vec<String>, QueueError> {
        let deadline =
            now_ms() + i64::try_from(self.inner.settings.lease.as_millis()).unwrap_or(30_000);
        let mut lost = Vec::new();
        for (holder, idx) in by_holder(leases.iter().map(|(_, t, _)| t.as_str())) {
            for part in idx.chunks(IDS_PER_CALL / 2) {
                let mut inv = SCRIPTS.extend.key(&self.inner.base);
                inv.arg(deadline).arg(holder);
                for &i in part {
                    inv.arg(&leases[i].0).arg(leases[i].2);
                }
                let mut conn = self.conn().await?;
                let l: Vec<String> = inv
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| self.err("extend", &e))?;
                lost.extend(l);
            }
        }
        Ok(lost)
    }

    /// Takes back jobs whose lease expired; returns (sent back, dead-lettered).
    pub async fn recover_stalled(&self) -> Result<(u64, u64), QueueError> {
        let mut conn = self.conn().await?;
        let (back, dead): (u64, u64) = SCRIPTS
            .recover
            .key(&self.inner.base)
            .arg(now_ms())
            .arg(RECOVER_WORKERS)
            .arg(&self.inner.events)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err("recover", &e))?;
        if back + dead > 0 {
            metrics::counter!(crate::metrics::STALLED, "queue" => self.inner.name.clone())
                .increment(back + dead);
            if dead > 0 {
                metrics::counter!(crate::metrics::DEAD, "queue" => self.inner.name.clone())
                    .increment(dead);
            }
        }
        Ok((back, dead))
    }

    /// Returns leases of (id, lease id) pairs without counting the attempt (graceful
    /// shutdown); returns how many were still held.
    pub async fn release(&self, leases: &[(String, String)]) -> Result<u64, QueueError> {
        let mut returned = 0;
        for (holder, idx) in by_holder(leases.iter().map(|(_, t)| t.as_str())) {
            for part in idx.chunks(IDS_PER_CALL) {
                let mut inv = SCRIPTS.release.key(&self.inner.base);
                inv.arg(holder);
                for &i in part {
                    inv.arg(&leases[i].0);
                }
                let mut conn = self.conn().await?;
                let n: u64 = inv
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| self.err("release", &e))?;
                returned += n;
            }
        }
        Ok(returned)
    }

    /// Moves dead-lettered jobs back to waiting, attempts reset. `None`: all of them. Jobs whose
    /// dead-letter hook is running stay dead (counted in `hook_running`).
    pub async fn requeue(&self, ids: Option<&[String]>) -> Result<Requeued, QueueError> {
        let mut inv = SCRIPTS.requeue.key(&self.inner.base);
        inv.arg(now_ms());
        match ids {
            None => {
                inv.arg("all");
            }
            Some(ids) => {
                inv.arg("ids");
                for id in ids {
                    inv.arg(id);
                }
            }
        }
        let mut conn = self.conn().await?;
        let (requeued, hook_running): (u64, u64) = inv
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err("requeue", &e))?;
        Ok(Requeued {
            requeued,
            hook_running,
        })
    }

    /// Claims up to `limit` dead jobs whose dead-letter hook has not run, for `claim` (after
    /// which another worker may claim them again).
    pub async fn claim_dead(
        &self,
        claim: Duration,
        limit: usize,
    ) -> Result<Vec<DeadJob>, QueueError> {
        let mut conn = self.conn().await?;
        let flat: Vec<String> = SCRIPTS
            .deadclaim
            .key(&self.inner.base)
            .arg(now_ms())
            .arg(u64::try_from(claim.as_millis()).unwrap_or(u64::MAX))
            .arg(limit)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err("deadclaim", &e))?;
        let mut out = Vec::with_capacity(flat.len() / 2);
        for pair in flat.chunks_exact(2) {
            // A spec that cannot be read has no hook to run; it must not stop the others'.
            let (job_type, payload) = match serde_json::from_str::<Spec<'_>>(&pair[1]) {
                Ok(spec) => (spec.0, spec.1.get().to_string()),
                Err(_) => (UNREADABLE_TYPE.to_string(), "null".to_string()),
            };
            out.push(DeadJob {
                id: pair[0].clone(),
                job_type,
                payload,
            });
        }
        Ok(out)
    }

    /// Marks dead jobs as handled: their hook ran (or they need none).
    pub async fn dead_handled(&self, ids: &[String]) -> Result<(), QueueError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        redis::cmd("ZREM")
            .arg(format!("{}deadhook", self.inner.base))
            .arg(ids)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.err("zrem", &e))
    }

    /// Lets the hooks of these claimed dead jobs run again at `at` (Unix ms) after a failure.
    pub async fn dead_retry_at(&self, ids: &[String], at: i64) -> Result<(), QueueError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(format!("{}deadhook", self.inner.base)).arg("XX");
        for id in ids {
            cmd.arg(at).arg(id);
        }
        let mut conn = self.conn().await?;
        cmd.query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.err("zadd", &e))
    }

    pub async fn pause(&self) -> Result<(), QueueError> {
        let mut conn = self.conn().await?;
        redis::cmd("SET")
            .arg(format!("{}paused", self.inner.base))
            .arg(1)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.err("pause", &e))
    }

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

    /// Records progress (any JSON) of a job this worker holds.
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

    /// Per-state sizes and lifetime counters: one script call, O(priorities + workers).
    pub async fn counts(&self) -> Result<QueueCounts, QueueError> {
        let mut conn = self.conn().await?;
        #[allow(clippy::type_complexity)]
        let (waiting, delayed, active, completed, dead, dead_unhandled, paused, totals): (
            u64,
            u64,
            u64,
            u64,
            u64,
            u64,
            bool,
            HashMap<String, u64>,
        ) = SCRIPTS
            .counts
            .key(&self.inner.base)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err("counts", &e))?;
        Ok(QueueCounts {
            queue: self.inner.name.clone(),
            paused,
            waiting,
            delayed,
            active,
            completed,
            dead,
            dead_unhandled,
            totals,
        })
    }

    /// One job, if it exists (completed and dead jobs exist until retention removes them).
    pub async fn job(&self, id: &str) -> Result<Option<JobInfo>, QueueError> {
        if id.is_empty() || id.len() > 64 || id.contains(['{', '}', ':']) {
            return Err(QueueError::Invalid {
                field: "id".into(),
                message: "not a job id".into(),
            });
        }
        let mut conn = self.conn().await?;
        let v: Vec<Option<String>> = SCRIPTS
            .job
            .key(&self.inner.base)
            .arg(id)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err("job", &e))?;
        let [spec_text, record, result, errors, progress, state, finished] = v.as_slice() else {
            return Err(QueueError::Protocol(format!(
                "job returned {} values",
                v.len()
            )));
        };
        let Some(spec_text) = spec_text.as_deref() else {
            return Ok(None);
        };
        let spec = serde_json::from_str::<Spec<'_>>(spec_text).ok();
        let record = LeaseRecord::parse(record.as_deref().unwrap_or(""));
        let state = state.as_deref().and_then(JobState::parse);
        let json = |t: &Option<String>| {
            t.as_deref().map(|x| {
                serde_json::from_str(x).unwrap_or(serde_json::Value::String(x.to_string()))
            })
        };
        let errors: Vec<crate::job::AttemptError> = errors
            .as_deref()
            .and_then(|e| serde_json::from_str(e).ok())
            .unwrap_or_default();
        // A spec that cannot be read is shown as such with the options a worker applies to it
        // (see `LeasedJob::unreadable`), so one bad job does not hide the others of a listing.
        let s = &self.inner.settings;
        let (job_type, payload, priority, max_attempts, backoff, timeout_ms, dedup_key, created) =
            match spec {
                Some(spec) => (
                    spec.0,
                    serde_json::from_str(spec.1.get()).unwrap_or(serde_json::Value::Null),
                    spec.2,
                    spec.3,
                    Backoff::decode(&spec.4),
                    spec.5,
                    Some(spec.6).filter(|d| !d.is_empty()),
                    (spec.7, spec.8),
                ),
                None => (
                    UNREADABLE_TYPE.to_string(),
                    serde_json::Value::Null,
                    0,
                    s.max_attempts,
                    self.default_backoff(),
                    u64::try_from(s.timeout.as_millis()).unwrap_or(u64::MAX),
                    None,
                    (created_from_id(id).unwrap_or(0), None),
                ),
            };
        Ok(Some(JobInfo {
            id: id.to_string(),
            queue: self.inner.name.clone(),
            job_type,
            payload,
            state: state.map(JobState::as_str).unwrap_or("unknown").to_string(),
            priority,
            attempts: record.attempts,
            max_attempts,
            backoff,
            timeout_ms,
            dedup_key,
            created_at: created.0,
            run_at: record.run_at.or(created.1).unwrap_or(created.0),
            started_at: record.started,
            finished_at: finished
                .as_deref()
                .and_then(|x| x.parse::<f64>().ok())
                .map(|x| x as i64),
            progress: json(progress),
            result: json(result).or(if state == Some(JobState::Completed) {
                Some(serde_json::Value::Null)
            } else {
                None
            }),
            last_error: errors.last().map(|e| e.error.clone()),
            errors,
        }))
    }

    /// Up to `limit` jobs in `state`: waiting ones in the order they will run, the others
    /// oldest first (active ones by worker).
    pub async fn list(&self, state: JobState, limit: usize) -> Result<Vec<JobInfo>, QueueError> {
        let mut conn = self.conn().await?;
        let ids: Vec<String> = SCRIPTS
            .list
            .key(&self.inner.base)
            .arg(state.as_str())
            .arg(limit)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err("list", &e))?;
        let infos = futures::future::join_all(ids.iter().map(|id| self.job(id))).await;
        let mut out = Vec::with_capacity(ids.len());
        for info in infos {
            if let Some(j) = info? {
                out.push(j);
            }
        }
        Ok(out)
    }

    /// The key of the list idle workers block on.
    pub(crate) fn wake_key(&self) -> String {
        format!("{}wake", self.inner.base)
    }
}
