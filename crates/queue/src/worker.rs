//! The worker runtime: fetch in batches, run handlers concurrently, acknowledge in batches,
//! keep leases alive, recover stalled jobs, and shut down without losing anything.
//!
//! Per queue, one process runs:
//! - a **fetch loop**: waits until about half the concurrency is free, leases that many jobs in
//!   one script call, and runs them in tasks of `JOBS_PER_TASK` jobs each; when the queue is
//!   empty it blocks on the queue's wake list (on its own connection) until a producer pushes,
//!   the next delayed job is due, or one second passes;
//! - **job tasks**: the handler under the job's timeout, with panics caught;
//! - an **acknowledger**: gathers finished attempts and reports them in one script call per batch,
//!   retrying until Redis takes them (a job stays leased, so safe, until its outcome is stored);
//! - a **heartbeat**: every third of the lease, extends the leases of every job held;
//! - a **recoverer**: every half lease, sends expired leases (dead workers) back to the queue;
//! - a **dead-letter sweeper**: claims dead jobs whose hook has not run, runs their hooks
//!   (`Registry::on_dead`), and marks them handled; a failed hook runs again later.
//!
//! Shutdown: stop fetching; let running jobs finish within `shutdown_grace`; acknowledge what
//! finished; return the leases of what did not (the attempt is not counted), so nothing is
//! left active.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::error::{JobError, QueueError};
use crate::handler::{JobContext, Registry};
use crate::metrics;
use crate::queue::{Finished, LeasedJob, Outcome, Queue, now_ms};
use crate::records::{JobRecord, RecordSink};

/// Totals of one worker run.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct WorkerReport {
    pub completed: u64,
    pub retried: u64,
    pub dead: u64,
    /// Outcomes refused because the lease had already expired and been taken back.
    pub stale: u64,
    /// Leases returned at shutdown.
    pub released: u64,
}

#[derive(Default)]
struct Counters {
    completed: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    stale: AtomicU64,
    released: AtomicU64,
}

/// A finished attempt on its way to Redis.
struct Done {
    job: LeasedJob,
    result: Result<serde_json::Value, JobError>,
    run: Duration,
    finished_at: i64,
}

/// Runs handlers for one or more queues.
pub struct Worker {
    queues: Vec<Queue>,
    registry: Arc<Registry>,
    concurrency: usize,
    fetch_batch: usize,
    id: String,
    records: RecordSink,
}

impl Worker {
    /// A worker for `queues`, with each queue's concurrency and batch from its settings.
    pub fn new(queues: Vec<Queue>, registry: Registry) -> Worker {
        let (concurrency, fetch_batch) = queues
            .first()
            .map(|q| (q.settings().concurrency, q.settings().fetch_batch))
            .unwrap_or((1, 1));
        let id = format!(
            "{}-{}-{:08x}",
            hostname(),
            std::process::id(),
            rand::random::<u32>()
        );
        Worker {
            queues,
            registry: Arc::new(registry),
            concurrency,
            fetch_batch,
            id,
            records: RecordSink::none(),
        }
    }

    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    pub fn with_records(mut self, sink: RecordSink) -> Self {
        self.records = sink;
        self
    }

    /// This worker's id (its lease id, or the prefix of later ones).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs until `shutdown` resolves, then shuts down gracefully.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> WorkerReport {
        let (stop_tx, stop_rx) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let mut loops = JoinSet::new();
        for q in &self.queues {
            loops.spawn(run_queue(
                q.clone(),
                self.registry.clone(),
                self.concurrency,
                self.fetch_batch,
                self.id.clone(),
                self.records.clone(),
                counters.clone(),
                stop_rx.clone(),
            ));
        }
        drop(self.records);
        shutdown.await;
        tracing::info!(worker = %self.id, "shutting down: no new jobs; waiting for running ones");
        let _ = stop_tx.send(true);
        while loops.join_next().await.is_some() {}
        WorkerReport {
            completed: counters.completed.load(Ordering::Relaxed),
            retried: counters.retried.load(Ordering::Relaxed),
            dead: counters.dead.load(Ordering::Relaxed),
            stale: counters.stale.load(Ordering::Relaxed),
            released: counters.released.load(Ordering::Relaxed),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into())
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".into()
    }
}

/// Retries a queue operation until it succeeds (Redis down or reconnecting), with backoff.
async fn persist<T, F, Fut>(what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, QueueError>>,
{
    let mut delay = Duration::from_millis(50);
    loop {
        match op().await {
            Ok(v) => return v,
            Err(e) => {
                tracing::warn!(error = %e, "{what} failed; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Waits `delay` after a failed Redis call (less if the worker is stopping), then doubles it,
/// up to 2 s.
async fn back_off(delay: &mut Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(*delay) => {}
        _ = stop.changed() => {}
    }
    *delay = (*delay * 2).min(Duration::from_secs(2));
}

/// A job this worker holds: its lease id, when it was leased, and whether its outcome is on its
/// way to Redis.
struct HeldJob {
    token: Arc<str>,
    leased_at: i64,
    acknowledging: bool,
}

/// Keyed by job id. Ids are made by this crate (ULIDs), not chosen by callers, so a fast hash
/// without flooding resistance is fine; the map sees two lookups per job.
type Held = Arc<Mutex<HeldMap>>;
type HeldMap = HashMap<String, HeldJob, rustc_hash::FxBuildHasher>;

fn lock_held(held: &Held) -> std::sync::MutexGuard<'_, HeldMap> {
    match held.lock() {
        Ok(h) => h,
        Err(p) => p.into_inner(),
    }
}

fn held_snapshot(held: &Held) -> Vec<(String, String, i64)> {
    lock_held(held)
        .iter()
        .map(|(k, v)| (k.clone(), v.token.to_string(), v.leased_at))
        .collect()
}

/// Whether the job still runs here: held, and its outcome not yet sent (an acknowledgement
/// that lands between a heartbeat's snapshot and its call is not a lost lease).
fn still_running(held: &Held, id: &str) -> bool {
    lock_held(held).get(id).is_some_and(|j| !j.acknowledging)
}

#[allow(clippy::too_many_arguments)]
async fn run_queue(
    queue: Queue,
    registry: Arc<Registry>,
    concurrency: usize,
    fetch_batch: usize,
    worker_id: String,
    records: RecordSink,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    match queue.upgrade_storage().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            queue = queue.name(),
            jobs = n,
            "converted completed jobs stored by an earlier build"
        ),
        // Not fatal: jobs finish in the current layout either way; the next start tries again.
        Err(e) => tracing::warn!(
            queue = queue.name(),
            error = %e,
            "could not convert completed jobs stored by an earlier build"
        ),
    }
    let held: Held = Arc::default();
    let (done_tx, done_rx) = mpsc::channel::<Done>(concurrency.max(1));
    let acker = tokio::spawn(acknowledge(
        queue.clone(),
        done_rx,
        held.clone(),
        records,
        counters.clone(),
    ));
    let lease = queue.settings().lease;
    let heartbeat = tokio::spawn({
        let (queue, held) = (queue.clone(), held.clone());
        async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let leases = held_snapshot(&held);
                match queue.extend(&leases).await {
                    // A job acknowledged since the snapshot is no longer leased, but not lost.
                    Ok(lost) if lost.iter().any(|id| still_running(&held, id)) => {
                        tracing::warn!(
                            queue = queue.name(),
                            jobs = lost.iter().filter(|id| still_running(&held, id)).count(),
                            "leases lost: those jobs run elsewhere now"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(queue = queue.name(), error = %e, "heartbeat failed"),
                }
            }
        }
    });
    let recoverer = tokio::spawn({
        let queue = queue.clone();
        async move {
            loop {
                match queue.recover_stalled().await {
                    Ok((back, dead)) if back + dead > 0 => {
                        tracing::warn!(
                            queue = queue.name(),
                            back,
                            dead,
                            "recovered jobs whose lease expired"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(queue = queue.name(), error = %e, "stalled-job check failed")
                    }
                }
                tokio::time::sleep((lease / 2).max(Duration::from_millis(500))).await;
            }
        }
    });

    let sweeper = tokio::spawn(sweep_dead(queue.clone(), registry.clone()));

    // Blocking waits need a connection of their own (standalone Redis); on Cluster, poll.
    let mut waiter = match queue.store().client() {
        Ok(c) => c.get_multiplexed_async_connection().await.ok(),
        Err(_) => None,
    };
    let sem = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    let want = (concurrency / 2).clamp(1, fetch_batch);
    // The lease id jobs are held under: this worker's id, then a new one after an eviction.
    let mut holder = worker_id.clone();
    let mut generation = 0u32;
    let mut fetch_delay = Duration::from_millis(50);
    // A fetch that failed may have leased jobs whose answer was lost: take those back before
    // fetching again (see `Queue::release_unknown`).
    let mut unsure = false;
    'fetching: loop {
        if *stop.borrow() {
            break;
        }
        if unsure {
            match queue
                .release_unknown(&holder, |id| lock_held(&held).contains_key(id))
                .await
            {
                Ok(n) => {
                    if n > 0 {
                        tracing::warn!(
                            queue = queue.name(),
                            jobs = n,
                            "took back jobs leased by a fetch whose answer was lost"
                        );
                        counters.released.fetch_add(n, Ordering::Relaxed);
                    }
                    unsure = false;
                }
                Err(e) => {
                    tracing::warn!(queue = queue.name(), error = %e, "checking this worker's leases failed; retrying");
                    back_off(&mut fetch_delay, &mut stop).await;
                    continue;
                }
            }
        }
        let permit = tokio::select! {
            p = sem.clone().acquire_many_owned(u32::try_from(want).unwrap_or(1)) => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => break,
        };
        let mut permit = permit;
        let extra = sem.available_permits().min(fetch_batch - want);
        if extra > 0
            && let Ok(more) = sem
                .clone()
                .try_acquire_many_owned(u32::try_from(extra).unwrap_or(0))
        {
            permit.merge(more);
        }
        while tasks.try_join_next().is_some() {}
        let n = permit.num_permits();
        let fetched = match queue.fetch(n, &holder).await {
            Ok(f) => {
                fetch_delay = Duration::from_millis(50);
                f
            }
            Err(e) => {
                tracing::warn!(queue = queue.name(), error = %e, "fetch failed; retrying");
                unsure = true;
                drop(permit);
                back_off(&mut fetch_delay, &mut stop).await;
                continue;
            }
        };
        if fetched.evicted {
            // This worker missed its heartbeats for a whole lease (paused, partitioned): its
            // jobs run elsewhere now and their outcomes here will be refused as stale.
            generation += 1;
            let next = format!("{worker_id}.{generation}");
            tracing::warn!(queue = queue.name(), lease = %holder, next = %next, "lease expired and taken back; continuing under a new lease id");
            holder = next;
            drop(permit);
            continue;
        }
        if fetched.jobs.is_empty() {
            drop(permit);
            let wait = match fetched.next_delayed_at {
                Some(at) => Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0))
                    .clamp(Duration::from_millis(5), Duration::from_secs(1)),
                None => Duration::from_secs(1),
            };
            let blocked = async {
                match waiter.as_mut() {
                    Some(conn) => {
                        let r: redis::RedisResult<Option<(String, String)>> = redis::cmd("BLPOP")
                            .arg(queue.wake_key())
                            .arg(wait.as_secs_f64())
                            .query_async(conn)
                            .await;
                        if r.is_err() {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                    None => tokio::time::sleep(wait.min(Duration::from_millis(100))).await,
                }
            };
            tokio::select! {
                _ = blocked => {}
                _ = stop.changed() => break 'fetching,
            }
            continue;
        }
        {
            let mut h = lock_held(&held);
            for j in &fetched.jobs {
                h.insert(
                    j.id.clone(),
                    HeldJob {
                        token: j.token.clone(),
                        leased_at: j.leased_at,
                        acknowledging: false,
                    },
                );
            }
        }
        let mut permits = permit;
        let mut jobs = fetched.jobs.into_iter().peekable();
        while jobs.peek().is_some() {
            let group: Vec<_> = jobs
                .by_ref()
                .take(JOBS_PER_TASK)
                .map(|job| (job, permits.split(1)))
                .collect();
            let registry = registry.clone();
            let done_tx = done_tx.clone();
            let queue = queue.clone();
            tasks.spawn(async move {
                let mut running: FuturesUnordered<_> = group
                    .into_iter()
                    .map(|(job, slot)| run_and_report(&registry, &queue, &done_tx, job, slot))
                    .collect();
                while running.next().await.is_some() {}
            });
        }
        drop(permits);
    }

    // Graceful shutdown: wait for running jobs, then take back what did not finish.
    let grace = queue.settings().shutdown_grace;
    let deadline = tokio::time::Instant::now() + grace;
    while !tasks.is_empty() {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(
                    queue = queue.name(),
                    jobs = tasks.len(),
                    "grace period over; returning the leases of unfinished jobs"
                );
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
            }
        }
    }
    drop(done_tx);
    // Every finished attempt is acknowledged before the leases of the rest are returned.
    let _ = acker.await;
    heartbeat.abort();
    recoverer.abort();
    // A hook cut short is claimed again by another worker when its claim ends.
    sweeper.abort();
    let unfinished: Vec<(String, String)> = held_snapshot(&held)
        .into_iter()
        .map(|(id, token, _)| (id, token))
        .collect();
    if !unfinished.is_empty() {
        let returned = persist("returning leases", || queue.release(&unfinished)).await;
        counters.released.fetch_add(returned, Ordering::Relaxed);
    }
    if unsure {
        // Everything this worker knew of is finished or returned; what is left under its lease
        // id was leased by a fetch whose answer was lost.
        let returned = persist("returning leases", || {
            queue.release_unknown(&holder, |_| false)
        })
        .await;
        counters.released.fetch_add(returned, Ordering::Relaxed);
    }
}

/// How long a claimed dead-letter hook may run before another worker may claim it again.
const HOOK_CLAIM: Duration = Duration::from_secs(60);

/// Runs the dead-letter hooks of dead jobs, forever (aborted at shutdown).
async fn sweep_dead(queue: Queue, registry: Arc<Registry>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let claimed = match queue.claim_dead(HOOK_CLAIM, 64).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(queue = queue.name(), error = %e, "claiming dead jobs failed");
                Vec::new()
            }
        };
        if claimed.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let runs = claimed.iter().map(|d| {
            let fut = registry.dead_hook(&d.id, &d.job_type, &d.payload);
            async move {
                let r = match fut {
                    None => Ok(()),
                    Some(f) => match tokio::time::timeout(
                        HOOK_CLAIM / 2,
                        AssertUnwindSafe(f).catch_unwind(),
                    )
                    .await
                    {
                        Ok(Ok(r)) => r,
                        Ok(Err(p)) => Err(format!("hook panicked: {}", panic_message(&p))),
                        Err(_) => Err(format!("hook timed out after {:?}", HOOK_CLAIM / 2)),
                    },
                };
                (d.id.clone(), r)
            }
        });
        let results = futures::future::join_all(runs).await;
        let mut ok = Vec::new();
        let mut again = Vec::new();
        for (id, r) in results {
            match r {
                Ok(()) => ok.push(id),
                Err(e) => {
                    tracing::warn!(queue = queue.name(), job = %id, error = %e, "dead-letter hook failed; it runs again later");
                    again.push(id);
                }
            }
        }
        ::metrics::counter!(metrics::DEAD_HOOKS, "queue" => queue.name().to_string())
            .increment(ok.len() as u64);
        persist("marking dead jobs handled", || queue.dead_handled(&ok)).await;
        if again.is_empty() {
            backoff = Duration::from_secs(1);
        } else {
            let at = now_ms() + i64::try_from(backoff.as_millis()).unwrap_or(1000);
            persist("rescheduling dead-letter hooks", || {
                queue.dead_retry_at(&again, at)
            })
            .await;
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }
}

/// Jobs per spawned task. A task per job cost more than a no-op job itself (the task's
/// allocation, its scheduling and its join), so a fetched batch is run by tasks of this many
/// jobs each, concurrently within the task. Handlers are async and mostly wait on stores; a
/// handler that computes for long holds up the others of its group only as it would hold up a
/// runtime thread anyway, and groups still spread over the runtime's threads.
const JOBS_PER_TASK: usize = 16;

/// Runs one job and queues its outcome for acknowledgement.
async fn run_and_report(
    registry: &Registry,
    queue: &Queue,
    done_tx: &mpsc::Sender<Done>,
    job: LeasedJob,
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    // The slot is freed once the outcome is queued for acknowledgement; that queue is bounded,
    // so when acknowledgements (or the record stores behind them) fall behind, finished jobs
    // keep their slots and fetching slows down instead of leased jobs piling up in memory.
    let _slot = slot;
    let started = Instant::now();
    let result = run_one(registry, queue, &job).await;
    let _ = done_tx
        .send(Done {
            job,
            result,
            run: started.elapsed(),
            finished_at: now_ms(),
        })
        .await;
}

/// Runs one job's handler: decode, timeout, panic capture.
async fn run_one(
    registry: &Registry,
    queue: &Queue,
    job: &LeasedJob,
) -> Result<serde_json::Value, JobError> {
    if let Some(why) = &job.unreadable {
        return Err(JobError::Retry(format!("unreadable job spec: {why}")));
    }
    let ctx = JobContext {
        id: job.id.clone(),
        job_type: job.job_type.clone(),
        attempt: job.attempts,
        max_attempts: job.max_attempts,
        queue: queue.clone(),
    };
    let Some(fut) = registry.call(ctx, &job.payload) else {
        return Err(JobError::Retry(format!(
            "no handler for job type `{}` in this worker (it knows: {})",
            job.job_type,
            registry.types().join(", ")
        )));
    };
    match tokio::time::timeout(job.timeout, AssertUnwindSafe(fut).catch_unwind()).await {
        Ok(Ok(r)) => r,
        Ok(Err(panic)) => Err(JobError::Retry(format!(
            "handler panicked: {}",
            panic_message(&panic)
        ))),
        Err(_) => Err(JobError::Retry(format!(
            "timed out after {:?}",
            job.timeout
        ))),
    }
}

/// Acknowledges finished attempts in batches, then hands records over.
async fn acknowledge(
    queue: Queue,
    mut rx: mpsc::Receiver<Done>,
    held: Held,
    records: RecordSink,
    counters: Arc<Counters>,
) {
    let name = queue.name().to_string();
    let m_completed = metrics::counter(metrics::COMPLETED, &name);
    let m_failed = metrics::counter(metrics::FAILED, &name);
    let m_retried = metrics::counter(metrics::RETRIED, &name);
    let m_dead = metrics::counter(metrics::DEAD, &name);
    let mut batch: Vec<Done> = Vec::with_capacity(1024);
    let mut timings: HashMap<String, (::metrics::Histogram, ::metrics::Histogram)> = HashMap::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        let now = now_ms();
        let acks: Vec<(&LeasedJob, Outcome)> = batch
            .iter()
            .map(|d| {
                let outcome = match &d.result {
                    Ok(v) => Outcome::Completed {
                        result: v.to_string(),
                    },
                    Err(JobError::Retry(e)) if d.job.attempts < d.job.max_attempts => {
                        let delay = d.job.backoff.delay(d.job.attempts);
                        Outcome::Retry {
                            error: e.clone(),
                            at: now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2),
                        }
                    }
                    Err(JobError::Retry(e)) | Err(JobError::Abort(e)) => {
                        Outcome::Dead { error: e.clone() }
                    }
                };
                (&d.job, outcome)
            })
            .collect();
        let any_dedup = batch.iter().any(|d| d.job.has_dedup);
        {
            let mut h = lock_held(&held);
            for d in &batch {
                if let Some(j) = h.get_mut(&d.job.id) {
                    j.acknowledging = true;
                }
            }
        }
        let outcomes = persist("acknowledging jobs", || queue.finish(&acks, any_dedup)).await;
        {
            let mut h = lock_held(&held);
            for d in &batch {
                h.remove(&d.job.id);
            }
        }
        let mut finished = Vec::new();
        for (d, f) in batch.iter().zip(outcomes) {
            let wait_ms = (d.job.leased_at - d.job.runnable_at.max(d.job.created_at)).max(0) as f64;
            // One registry lookup per job type, not two per job.
            if !timings.contains_key(&d.job.job_type) {
                let t = d.job.job_type.clone();
                let pair = (
                    ::metrics::histogram!(metrics::WAIT, "queue" => name.clone(), "type" => t.clone()),
                    ::metrics::histogram!(metrics::RUN, "queue" => name.clone(), "type" => t.clone()),
                );
                timings.insert(t, pair);
            }
            let Some((wait, run)) = timings.get(&d.job.job_type) else {
                continue;
            };
            wait.record(wait_ms / 1000.0);
            run.record(d.run.as_secs_f64());
            let status = match f {
                Finished::Completed => {
                    counters.completed.fetch_add(1, Ordering::Relaxed);
                    m_completed.increment(1);
                    "completed"
                }
                Finished::Retrying => {
                    counters.retried.fetch_add(1, Ordering::Relaxed);
                    m_failed.increment(1);
                    m_retried.increment(1);
                    continue;
                }
                Finished::Dead => {
                    counters.dead.fetch_add(1, Ordering::Relaxed);
                    m_failed.increment(1);
                    m_dead.increment(1);
                    "dead"
                }
                Finished::Stale => {
                    counters.stale.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            if records.is_on() {
                let (result, error) = match &d.result {
                    Ok(v) => (Some(v.to_string()), None),
                    Err(e) => (None, Some(e.to_string())),
                };
                finished.push(JobRecord {
                    id: d.job.id.clone(),
                    queue: name.clone(),
                    job_type: d.job.job_type.clone(),
                    payload: d.job.payload.clone(),
                    status,
                    priority: d.job.priority,
                    attempts: d.job.attempts,
                    result,
                    error,
                    created_at: d.job.created_at,
                    started_at: d.job.leased_at,
                    finished_at: d.finished_at,
                    run_ms: d.run.as_secs_f64() * 1000.0,
                    wait_ms,
                });
            }
        }
        if !finished.is_empty() {
            records.send(&finished).await;
        }
        batch.clear();
    }
}
