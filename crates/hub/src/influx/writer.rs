//! The batching point writer.
//!
//! `write` formats a point into the open batch and returns at once; a background task sends
//! batches. A batch is sealed when it holds `batch.max_points` points, or when the open batch is
//! `batch.flush_interval` old. Up to `batch.in_flight` batches are sent at once (each point carries
//! its timestamp, so their order does not matter to the server). A batch that fails with
//! 429, 5xx or a network error is retried after `retry_interval · 2^attempt` (capped at
//! `max_retry_delay`, plus up to `jitter`), or after the server's `Retry-After`, at most
//! `max_retries` times; then it is counted as failed. Points wait in a bounded buffer
//! (`max_buffer_points`): past it the oldest sealed batch is dropped and counted, so a long outage
//! costs old metrics, never the process's memory.
//!
//! `flush()` returns when every point accepted before the call has been written, failed or
//! dropped (retries included); `close()` flushes and stops the task.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_recursion::async_recursion as boxed;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rand::Rng;
use tokio::sync::Notify;
use tsp_config::BatchSettings;

use super::line::{Point, PointError};
use super::sink::{LineSink, WriteFailure};
use crate::metrics::names;

/// Counters of one writer. `accepted = written + failed + dropped + buffered + in flight`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriterStats {
    /// Points handed to the writer.
    pub accepted: u64,
    /// Points the server accepted.
    pub written: u64,
    /// Points the server refused for good (bad data, wrong schema).
    pub failed: u64,
    /// Points thrown away because the buffer was full.
    pub dropped: u64,
    /// Batches sent again after a retryable failure.
    pub retries: u64,
    /// Points waiting in the buffer now.
    pub buffered: u64,
    /// Times the sending task has waited on an empty buffer for a point to arrive.
    pub idle_waits: u64,
}

impl WriterStats {
    /// Points accepted and not (yet) written: refused, dropped, still buffered or in flight.
    /// After [`PointWriter::close`], all of them are lost.
    pub fn unwritten(&self) -> u64 {
        self.accepted.saturating_sub(self.written)
    }
}

struct Batch {
    body: Bytes,
    points: u64,
}

#[derive(Default)]
struct State {
    open: String,
    open_points: u64,
    open_since: Option<Instant>,
    sealed: VecDeque<Batch>,
    /// Points in `open` and `sealed` (not the batch being sent).
    buffered: u64,
}

struct Shared {
    store: Arc<dyn LineSink>,
    target: String,
    cfg: BatchSettings,
    state: Mutex<State>,
    /// Wakes the sending task: a batch was sealed, a flush was asked for, or close.
    wake: Notify,
    /// Wakes `flush()` callers when points settle.
    settled: Notify,
    flush_requested: AtomicBool,
    closed: AtomicBool,
    accepted: AtomicU64,
    written: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    retries: AtomicU64,
    idle_waits: AtomicU64,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A cheap-to-clone handle on one instance's writer for one bucket/database.
#[derive(Clone)]
pub struct PointWriter {
    shared: Arc<Shared>,
}

impl PointWriter {
    /// Starts a writer's sending task. Needs a Tokio runtime.
    pub(crate) fn spawn(store: Arc<dyn LineSink>, target: String) -> Self {
        let cfg = store.batch().clone();
        let shared = Arc::new(Shared {
            store,
            target,
            cfg,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            settled: Notify::new(),
            flush_requested: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            written: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            idle_waits: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(run(shared.clone()));
        if let Ok(mut slot) = shared.task.lock() {
            *slot = Some(task);
        }
        PointWriter { shared }
    }

    /// The bucket (v2) or database (v1) this writer sends to.
    pub fn target(&self) -> &str {
        &self.shared.target
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        match self.shared.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Queues one point. Never waits on the network.
    ///
    /// # Errors
    /// The point cannot be expressed in line protocol (see [`PointError`]); nothing is queued.
    pub fn write(&self, point: &Point) -> Result<(), PointError> {
        self.write_inner(point, true).map(|_| ())
    }

    /// Queues one point, waiting for room in the buffer instead of dropping old points: for
    /// producers that must not lose points and may be slowed to the server's pace.
    ///
    /// # Errors
    /// As [`PointWriter::write`].
    #[boxed]
    pub async fn write_wait(&self, point: &Point) -> Result<(), PointError> {
        // The common case first: room in the buffer, no waiter to register.
        if self.write_inner(point, false)? {
            return Ok(());
        }
        loop {
            // Registered before trying again, so room made in between is not missed.
            let notified = self.shared.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.write_inner(point, false)? {
                return Ok(());
            }
            notified.await;
        }
    }

    /// `Ok(false)`: the buffer is full and `may_drop` is false; nothing was queued.
    fn write_inner(&self, point: &Point, may_drop: bool) -> Result<bool, PointError> {
        let sh = &self.shared;
        let mut st = self.lock();
        if !may_drop && st.buffered >= sh.cfg.max_buffer_points as u64 {
            return Ok(false);
        }
        // On error `write_line` leaves the open batch as it was.
        point.write_line(sh.store.default_tags(), &mut st.open)?;
        st.open_points += 1;
        st.buffered += 1;
        sh.accepted.fetch_add(1, Ordering::Relaxed);
        if st.open_since.is_none() {
            // A new open batch: the sending task must learn its deadline.
            st.open_since = Some(Instant::now());
            sh.wake.notify_one();
        }
        if st.open_points >= sh.cfg.max_points as u64 {
            seal(&mut st);
            sh.wake.notify_one();
        }
        let max = sh.cfg.max_buffer_points as u64;
        let mut dropped = 0;
        while st.buffered > max {
            match st.sealed.pop_front() {
                Some(b) => {
                    st.buffered -= b.points;
                    dropped += b.points;
                }
                None => break,
            }
        }
        drop(st);
        if dropped > 0 {
            sh.dropped.fetch_add(dropped, Ordering::Relaxed);
            metrics::counter!(names::INFLUX_DROPPED, "store_instance" => sh.store.name().to_string())
                .increment(dropped);
            tracing::warn!(
                instance = sh.store.name(),
                target = %sh.target,
                dropped,
                "influx buffer full: dropped the oldest points"
            );
            sh.settled.notify_waiters();
        }
        Ok(true)
    }

    /// The counts so far.
    pub fn stats(&self) -> WriterStats {
        let sh = &self.shared;
        WriterStats {
            accepted: sh.accepted.load(Ordering::Relaxed),
            written: sh.written.load(Ordering::Relaxed),
            failed: sh.failed.load(Ordering::Relaxed),
            dropped: sh.dropped.load(Ordering::Relaxed),
            retries: sh.retries.load(Ordering::Relaxed),
            buffered: self.lock().buffered,
            idle_waits: sh.idle_waits.load(Ordering::Relaxed),
        }
    }

    fn settled_count(&self) -> u64 {
        let sh = &self.shared;
        sh.written.load(Ordering::Acquire)
            + sh.failed.load(Ordering::Acquire)
            + sh.dropped.load(Ordering::Acquire)
    }

    /// Waits until every point accepted before this call is written, failed or dropped.
    #[boxed]
    pub async fn flush(&self) {
        let target = self.shared.accepted.load(Ordering::Acquire);
        loop {
            let notified = self.shared.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.settled_count() >= target {
                return;
            }
            self.shared.flush_requested.store(true, Ordering::Release);
            self.shared.wake.notify_one();
            if self.shared.closed.load(Ordering::Acquire) && self.task_finished() {
                return;
            }
            notified.await;
        }
    }

    fn task_finished(&self) -> bool {
        match self.shared.task.lock() {
            Ok(t) => t.as_ref().is_none_or(|h| h.is_finished()),
            Err(_) => true,
        }
    }

    /// Flushes and stops the sending task, waiting at most `grace`. Returns the stats after.
    #[boxed]
    pub async fn close(&self, grace: Duration) -> WriterStats {
        let _ = tokio::time::timeout(grace, self.flush()).await;
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        let handle = self.shared.task.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = tokio::time::timeout(Duration::from_secs(1), h).await;
        }
        self.stats()
    }
}

fn seal(st: &mut State) {
    if st.open_points == 0 {
        return;
    }
    let body = std::mem::take(&mut st.open);
    // The next batch is likely the same size: grow once, not by doubling through it.
    st.open.reserve(body.len());
    st.sealed.push_back(Batch {
        body: Bytes::from(body),
        points: st.open_points,
    });
    st.open_points = 0;
    st.open_since = None;
}

/// The next batch to send, sealing the open one when it is due. `None` and the time to wait.
fn next_batch(sh: &Shared) -> (Option<Batch>, Option<Instant>) {
    let mut st = match sh.state.lock() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    };
    if st.sealed.is_empty() && st.open_points > 0 {
        let due = st
            .open_since
            .map(|t| t + sh.cfg.flush_interval)
            .unwrap_or_else(Instant::now);
        if sh.flush_requested.swap(false, Ordering::AcqRel)
            || sh.closed.load(Ordering::Acquire)
            || Instant::now() >= due
        {
            seal(&mut st);
        } else {
            return (None, Some(due));
        }
    }
    match st.sealed.pop_front() {
        Some(b) => {
            st.buffered -= b.points;
            (Some(b), None)
        }
        None => (None, None),
    }
}

async fn run(sh: Arc<Shared>) {
    let instance = sh.store.name().to_string();
    let written = metrics::counter!(names::INFLUX_WRITTEN, "store_instance" => instance.clone());
    let failed = metrics::counter!(names::INFLUX_FAILED, "store_instance" => instance.clone());
    // At 0 from the start, so that an alert's `increase()` sees the first loss: a series that
    // appears at 1 has no earlier sample to compare with.
    metrics::counter!(names::INFLUX_DROPPED, "store_instance" => instance.clone()).increment(0);
    let room = sh.cfg.in_flight.max(1);
    let mut sending = FuturesUnordered::new();
    loop {
        let notified = sh.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // Start sealed (or due) batches while there is room.
        let mut due = None;
        while sending.len() < room {
            match next_batch(&sh) {
                (Some(batch), _) => sending.push(send_batch(sh.clone(), batch)),
                (None, d) => {
                    due = d;
                    break;
                }
            }
        }
        if sending.is_empty() {
            if sh.closed.load(Ordering::Acquire) {
                sh.settled.notify_waiters();
                return;
            }
            match due {
                Some(at) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(at.into()) => {}
                    }
                }
                None => {
                    sh.idle_waits.fetch_add(1, Ordering::Release);
                    notified.await
                }
            }
            continue;
        }
        let has_room = sending.len() < room;
        let until = due.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            Some((points, ok)) = sending.next() => {
                if ok {
                    sh.written.fetch_add(points, Ordering::Release);
                    written.increment(points);
                } else {
                    sh.failed.fetch_add(points, Ordering::Release);
                    failed.increment(points);
                }
                sh.settled.notify_waiters();
            }
            // New work, or the open batch coming due, matter only while a send slot is free.
            _ = &mut notified, if has_room => {}
            _ = tokio::time::sleep_until(until.into()), if has_room && due.is_some() => {}
        }
    }
}

/// One batch sent (with its retries): its points and whether they were written.
async fn send_batch(sh: Arc<Shared>, batch: Batch) -> (u64, bool) {
    let ok = send_with_retries(&sh, &batch).await;
    (batch.points, ok)
}

/// Sends one batch, retrying what may succeed later. `true` when written.
async fn send_with_retries(sh: &Shared, batch: &Batch) -> bool {
    let cfg = &sh.cfg;
    let mut attempt: u32 = 0;
    loop {
        match sh.store.write_body(&sh.target, batch.body.clone()).await {
            Ok(()) => return true,
            Err(WriteFailure::Retryable {
                message,
                retry_after,
            }) if attempt < cfg.max_retries => {
                let backoff = cfg
                    .retry_interval
                    .saturating_mul(2u32.saturating_pow(attempt))
                    .min(cfg.max_retry_delay);
                let jitter_ms = u64::try_from(cfg.jitter.as_millis()).unwrap_or(0);
                let jitter = Duration::from_millis(if jitter_ms > 0 {
                    rand::rng().random_range(0..jitter_ms)
                } else {
                    0
                });
                let delay = retry_after.unwrap_or(backoff).min(cfg.max_retry_delay) + jitter;
                attempt += 1;
                sh.retries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    instance = sh.store.name(),
                    target = %sh.target,
                    attempt,
                    delay_ms = delay.as_millis() as u64,
                    error = %message,
                    "influx write failed; retrying"
                );
                tokio::time::sleep(delay).await;
            }
            Err(e) => {
                tracing::error!(
                    instance = sh.store.name(),
                    target = %sh.target,
                    points = batch.points,
                    error = %e.message(),
                    "influx write failed; batch dropped"
                );
                return false;
            }
        }
    }
}
