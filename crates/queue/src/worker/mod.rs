//! The worker runtime: fetch in batches, run handlers concurrently, acknowledge in batches,
//! keep leases alive, recover stalled jobs, and shut down without losing anything.
//!
//! Per queue, a process runs a [`runtime`] (the fetch loop and the job tasks) and beside it the
//! acknowledger ([`ack`]), the heartbeat and the recoverer ([`loops`]) and the dead-letter
//! sweeper ([`dead`]). How they fit together, and the guarantees: docs/queue.md.
//!
//! Shutdown: stop fetching; let running jobs finish within `shutdown_grace`; acknowledge what
//! finished; return the leases of what did not (the attempt is not counted), so nothing is
//! left active.

mod ack;
mod collect;
mod dead;
mod execute;
mod health;
mod held;
mod loops;
mod retry;
mod runtime;
mod spans;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_recursion::async_recursion as boxed;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::error::{JobError, QueueError};
use crate::handler::Registry;
use crate::queue::{Finished, LeasedJob, Outcome, Queue};
use crate::records::RecordSink;
use runtime::QueueRuntime;

pub use health::WorkerHealth;

/// Totals of one worker run.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct WorkerReport {
    /// Jobs completed.
    pub completed: u64,
    /// Failed attempts that will run again.
    pub retried: u64,
    /// Jobs dead-lettered.
    pub dead: u64,
    /// Outcomes refused because the lease had already expired and been taken back.
    pub stale: u64,
    /// Leases returned at shutdown.
    pub released: u64,
    /// Jobs whose outcomes were given up after `queue.ack_attempts` tries (they run again
    /// elsewhere once their lease lapses).
    pub abandoned: u64,
}

#[derive(Default)]
struct Counters {
    completed: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    stale: AtomicU64,
    released: AtomicU64,
    abandoned: AtomicU64,
}

/// One job run by [`Worker::run_once`]: what its handler returned and what the queue made of
/// it.
#[derive(Debug)]
pub struct Ran {
    /// The job's id.
    pub id: String,
    /// The job's type.
    pub job_type: String,
    /// What its handler returned.
    pub result: Result<serde_json::Value, JobError>,
    /// What the queue made of it.
    pub finished: Finished,
}

/// Runs handlers for one or more queues.
pub struct Worker {
    queues: Vec<Queue>,
    registry: Arc<Registry>,
    concurrency: usize,
    fetch_batch: usize,
    id: String,
    records: RecordSink,
    health: WorkerHealth,
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
            host_name(),
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
            health: WorkerHealth::default(),
        }
    }

    /// Runs up to `n` jobs at once (at least one).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Stores a record of each finished job through `sink`.
    pub fn with_records(mut self, sink: RecordSink) -> Self {
        self.records = sink;
        self
    }

    /// Its health (whether its outcomes are being stored), readable while it runs.
    pub fn health(&self) -> WorkerHealth {
        self.health.clone()
    }

    /// This worker's id (its lease id, or the prefix of later ones).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs until `shutdown` resolves, then shuts down gracefully.
    pub fn run<'a>(
        self,
        shutdown: impl Future<Output = ()> + Send + 'a,
    ) -> Pin<Box<dyn Future<Output = WorkerReport> + Send + 'a>> {
        self.run_boxed(Box::pin(shutdown))
    }

    /// [`Worker::run`] without its type parameter, boxed here so that the crates that run a
    /// worker do not compile it again (docs/benchmarks.md#build).
    #[inline(never)]
    fn run_boxed<'a>(
        self,
        shutdown: Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
    ) -> Pin<Box<dyn Future<Output = WorkerReport> + Send + 'a>> {
        Box::pin(self.run_until(shutdown))
    }

    async fn run_until(
        self,
        shutdown: Pin<Box<dyn Future<Output = ()> + Send + '_>>,
    ) -> WorkerReport {
        let (stop_tx, stop_rx) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let mut loops = JoinSet::new();
        for q in &self.queues {
            let runtime = QueueRuntime {
                queue: q.clone(),
                registry: self.registry.clone(),
                concurrency: self.concurrency,
                fetch_batch: self.fetch_batch,
                worker_id: self.id.clone(),
                counters: counters.clone(),
                health: self.health.clone(),
                stop: stop_rx.clone(),
            };
            loops.spawn(runtime.run(self.records.clone()));
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
            abandoned: counters.abandoned.load(Ordering::Relaxed),
        }
    }
}

/// The host name in worker ids (`<host>-<pid>-<random>`): `/etc/hostname`, or `host`.
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into())
}

impl Worker {
    /// Fetches up to `fetch_batch` jobs of `queue`, runs each through its handler (timeout and
    /// panic capture as in [`Worker::run`]) and reports their outcomes, then returns: one step
    /// of the runtime without its background loops or records, for tests of handlers and of
    /// queue semantics. Jobs run one after another, in fetch order.
    #[boxed]
    pub async fn run_once(&self, queue: &Queue) -> Result<Vec<Ran>, QueueError> {
        let fetched = queue.fetch(self.fetch_batch, &self.id).await?;
        let mut done: Vec<(LeasedJob, Result<serde_json::Value, JobError>)> = Vec::new();
        for job in fetched.jobs {
            let result = execute::run_one(&self.registry, queue, &job).await;
            done.push((job, result));
        }
        let now = queue.now_ms();
        let acks: Vec<(&LeasedJob, Outcome)> = done
            .iter()
            .map(|(job, result)| (job, ack::outcome(job, result, now)))
            .collect();
        let any_dedup = done.iter().any(|(j, _)| j.has_dedup);
        let finished = queue.finish(&acks, any_dedup).await?;
        Ok(done
            .into_iter()
            .zip(finished)
            .map(|((job, result), finished)| Ran {
                id: job.id,
                job_type: job.job_type,
                result,
                finished,
            })
            .collect())
    }
}
