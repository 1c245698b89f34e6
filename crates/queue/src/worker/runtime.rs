//! One queue's runtime in a worker process: the fetch loop that runs jobs, the background
//! loops beside it, and the graceful stop.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::Counters;
use super::collect::Collectors;
use super::execute::{Done, JOBS_PER_TASK, run_and_report};
use super::held::{Held, HeldJob, held_snapshot, lock_held};
use super::retry::{back_off, persist};
use super::{ack, dead, loops};
use crate::handler::Registry;
use crate::queue::{Fetched, LeasedJob, Queue};
use crate::records::RecordSink;

/// What one queue's fetch loop works with.
pub(super) struct QueueRuntime {
    pub(super) queue: Queue,
    pub(super) registry: Arc<Registry>,
    pub(super) concurrency: usize,
    pub(super) fetch_batch: usize,
    pub(super) worker_id: String,
    pub(super) counters: Arc<Counters>,
    pub(super) health: super::WorkerHealth,
    pub(super) stop: watch::Receiver<bool>,
}

/// The fetch loop's state between rounds.
struct Fetching {
    /// The lease id jobs are held under: the worker's id, then a new one after an eviction.
    holder: String,
    generation: u32,
    delay: Duration,
    /// A fetch failed, so it may have leased jobs whose answer was lost: take those back before
    /// fetching again (see `Queue::release_unknown`).
    unsure: bool,
}

/// The tasks that run beside the fetch loop.
struct Background {
    acker: JoinHandle<()>,
    heartbeat: JoinHandle<()>,
    recoverer: JoinHandle<()>,
    sweeper: JoinHandle<()>,
    ticker: JoinHandle<()>,
}

impl QueueRuntime {
    /// Runs until the worker stops, then stops gracefully (see the module documentation of
    /// `worker`).
    pub(super) async fn run(mut self, records: RecordSink) {
        self.upgrade_storage().await;
        let held: Held = Arc::default();
        let (done_tx, done_rx) = mpsc::channel::<Done>(self.concurrency.max(1));
        let rotate = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cx = ack::AckContext {
            held: held.clone(),
            records,
            counters: self.counters.clone(),
            health: self.health.clone(),
            rotate: rotate.clone(),
        };
        let background = Background {
            acker: tokio::spawn(ack::acknowledge(self.queue.clone(), done_rx, cx)),
            heartbeat: tokio::spawn(loops::heartbeat(self.queue.clone(), held.clone())),
            recoverer: tokio::spawn(loops::recover(self.queue.clone())),
            sweeper: tokio::spawn(dead::sweep_dead(self.queue.clone(), self.registry.clone())),
            ticker: tokio::spawn(crate::schedule::tick_loop(self.queue.clone())),
        };
        let mut tasks = JoinSet::new();
        let state = self.fetch_loop(&held, &done_tx, &mut tasks, &rotate).await;
        self.finish_tasks(&mut tasks).await;
        drop(done_tx);
        self.stop_background(background, &held, &state).await;
    }

    /// Converts storage of earlier builds (see docs/operations.md#upgrades). Not fatal: jobs
    /// finish in the current layout either way; the next start tries again.
    async fn upgrade_storage(&self) {
        let queue = &self.queue;
        match queue.upgrade_storage().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                queue = queue.name(),
                jobs = n,
                "converted completed jobs stored by an earlier build"
            ),
            Err(e) => tracing::warn!(
                queue = queue.name(),
                error = %e,
                "could not convert completed jobs stored by an earlier build"
            ),
        }
    }

    /// Fetches once half the concurrency (or a fetch batch) is free, and runs what it got,
    /// until the worker stops.
    async fn fetch_loop(
        &mut self,
        held: &Held,
        done_tx: &mpsc::Sender<Done>,
        tasks: &mut JoinSet<()>,
        rotate: &std::sync::atomic::AtomicBool,
    ) -> Fetching {
        // Blocking waits need a connection of their own to the key's server: on a standalone
        // Redis; on a Cluster the wake list may live on any node, so poll there.
        let mut waiter = match self.queue.store().client() {
            Ok(c) if !self.queue.store().is_cluster() => {
                c.get_multiplexed_async_connection().await.ok()
            }
            _ => None,
        };
        let sem = Arc::new(Semaphore::new(self.concurrency));
        let mut collectors = Collectors::default();
        let mut state = Fetching {
            holder: self.worker_id.clone(),
            generation: 0,
            delay: Duration::from_millis(50),
            unsure: false,
        };
        while !*self.stop.borrow() {
            if state.unsure && !self.release_unknown(&mut state, held).await {
                continue;
            }
            let Some(permit) = self.free_slots(&sem).await else {
                break;
            };
            if rotate.swap(false, std::sync::atomic::Ordering::Relaxed) {
                self.next_lease_id(&mut state, "outcomes were given up");
            }
            while tasks.try_join_next().is_some() {}
            let fetched = match self.queue.fetch(permit.num_permits(), &state.holder).await {
                Ok(f) => {
                    state.delay = Duration::from_millis(50);
                    f
                }
                Err(e) => {
                    tracing::warn!(queue = self.queue.name(), error = %e, "fetch failed; retrying");
                    state.unsure = true;
                    drop(permit);
                    back_off(&mut state.delay, &mut self.stop).await;
                    continue;
                }
            };
            if fetched.evicted {
                self.next_lease_id(&mut state, "lease expired and taken back");
            } else if fetched.jobs.is_empty() {
                drop(permit);
                if !self.wait_for_work(&fetched, waiter.as_mut()).await {
                    break;
                }
            } else {
                self.start(fetched.jobs, permit, held, done_tx, tasks, &mut collectors);
            }
        }
        // Closes the collectors: each runs the batch it holds, then ends.
        drop(collectors);
        state
    }

    /// Takes back the jobs leased by a fetch whose answer was lost; `false` when that failed
    /// (and was backed off), so the round starts again.
    async fn release_unknown(&mut self, state: &mut Fetching, held: &Held) -> bool {
        let known = |id: &str| lock_held(held).contains_key(id);
        match self.queue.release_unknown(&state.holder, known).await {
            Ok(n) => {
                if n > 0 {
                    tracing::warn!(
                        queue = self.queue.name(),
                        jobs = n,
                        "took back jobs leased by a fetch whose answer was lost"
                    );
                    self.counters.released.fetch_add(n, Ordering::Relaxed);
                }
                state.unsure = false;
                true
            }
            Err(e) => {
                tracing::warn!(queue = self.queue.name(), error = %e, "checking this worker's leases failed; retrying");
                back_off(&mut state.delay, &mut self.stop).await;
                false
            }
        }
    }

    /// Waits until half the concurrency (at most a fetch batch) is free, then takes every free
    /// slot up to a fetch batch. `None`: the worker is stopping.
    async fn free_slots(&mut self, sem: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
        let want = (self.concurrency / 2).clamp(1, self.fetch_batch);
        let mut permit = tokio::select! {
            p = sem.clone().acquire_many_owned(u32::try_from(want).unwrap_or(1)) => p.ok()?,
            _ = self.stop.changed() => return None,
        };
        let extra = sem.available_permits().min(self.fetch_batch - want);
        if extra > 0
            && let Ok(more) = sem
                .clone()
                .try_acquire_many_owned(u32::try_from(extra).unwrap_or(0))
        {
            permit.merge(more);
        }
        Some(permit)
    }

    /// Carries on under a new lease id: after this worker missed its heartbeats for a whole
    /// lease (paused, partitioned: its jobs run elsewhere now and their outcomes here will be
    /// refused as stale), or after it gave up storing some outcomes (the old id, no longer
    /// extended once its running jobs finish, lapses and those jobs run again).
    fn next_lease_id(&self, state: &mut Fetching, why: &str) {
        state.generation += 1;
        let next = format!("{}.{}", self.worker_id, state.generation);
        tracing::warn!(queue = self.queue.name(), lease = %state.holder, next = %next, "{why}; continuing under a new lease id");
        state.holder = next;
    }

    /// The queue is empty: block on its wake list until a producer pushes, the next delayed
    /// job is due, or a second passes. `false`: the worker is stopping.
    async fn wait_for_work(
        &mut self,
        fetched: &Fetched,
        waiter: Option<&mut redis::aio::MultiplexedConnection>,
    ) -> bool {
        let wait = match fetched.next_delayed_at {
            Some(at) => Duration::from_millis(u64::try_from(at - self.queue.now_ms()).unwrap_or(0))
                .clamp(Duration::from_millis(5), Duration::from_secs(1)),
            None => Duration::from_secs(1),
        };
        let wake_key = self.queue.wake_key();
        let blocked = async {
            match waiter {
                Some(conn) => {
                    let r: redis::RedisResult<Option<(String, String)>> = redis::cmd("BLPOP")
                        .arg(&wake_key)
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
            _ = blocked => true,
            _ = self.stop.changed() => false,
        }
    }

    /// Holds the fetched jobs and runs them, one slot each: jobs of a type with a batch handler
    /// go to its collector, the others run in tasks of [`JOBS_PER_TASK`].
    fn start(
        &self,
        jobs: Vec<LeasedJob>,
        mut permits: OwnedSemaphorePermit,
        held: &Held,
        done_tx: &mpsc::Sender<Done>,
        tasks: &mut JoinSet<()>,
        collectors: &mut Collectors,
    ) {
        {
            let mut h = lock_held(held);
            for j in &jobs {
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
        let (batched, single): (Vec<_>, Vec<_>) = jobs
            .into_iter()
            .partition(|j| j.unreadable.is_none() && self.registry.batch(&j.job_type).is_some());
        for job in batched {
            if let Some(batch) = self.registry.batch(&job.job_type) {
                let slot = permits.split(1);
                collectors.add(job, slot, batch, (&self.queue, done_tx), tasks);
            }
        }
        let mut jobs = single.into_iter().peekable();
        while jobs.peek().is_some() {
            let group: Vec<_> = jobs
                .by_ref()
                .take(JOBS_PER_TASK)
                .map(|job| (job, permits.split(1)))
                .collect();
            let registry = self.registry.clone();
            let done_tx = done_tx.clone();
            let queue = self.queue.clone();
            tasks.spawn(async move {
                let mut running: FuturesUnordered<_> = group
                    .into_iter()
                    .map(|(job, slot)| run_and_report(&registry, &queue, &done_tx, job, slot))
                    .collect();
                while running.next().await.is_some() {}
            });
        }
    }

    /// Lets running jobs finish within `queue.shutdown_grace`, then cuts the rest short.
    async fn finish_tasks(&self, tasks: &mut JoinSet<()>) {
        let deadline = tokio::time::Instant::now() + self.queue.settings().shutdown_grace;
        while !tasks.is_empty() {
            match tokio::time::timeout_at(deadline, tasks.join_next()).await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(
                        queue = self.queue.name(),
                        jobs = tasks.len(),
                        "grace period over; returning the leases of unfinished jobs"
                    );
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                }
            }
        }
    }

    /// Every finished attempt is acknowledged before the leases of the rest are returned, so
    /// nothing is left active.
    async fn stop_background(&self, background: Background, held: &Held, state: &Fetching) {
        let _ = background.acker.await;
        background.heartbeat.abort();
        background.recoverer.abort();
        // A claim is one script: stopping between claims loses nothing.
        background.ticker.abort();
        // A hook cut short is claimed again by another worker when its claim ends.
        background.sweeper.abort();
        let queue = &self.queue;
        let unfinished: Vec<(String, String)> = held_snapshot(held)
            .into_iter()
            .map(|(id, token, _)| (id, token))
            .collect();
        if !unfinished.is_empty() {
            let returned = persist("returning leases", || queue.release(&unfinished)).await;
            self.counters
                .released
                .fetch_add(returned, Ordering::Relaxed);
        }
        if state.unsure {
            // Everything this worker knew of is finished or returned; what is left under its
            // lease id was leased by a fetch whose answer was lost.
            let returned = persist("returning leases", || {
                queue.release_unknown(&state.holder, |_| false)
            })
            .await;
            self.counters
                .released
                .fetch_add(returned, Ordering::Relaxed);
        }
    }
}
