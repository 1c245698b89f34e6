//! Helpers: a hub on the local services with a key prefix of its own, and an in-process worker.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use tokio::sync::oneshot;
use tsp_config::Config;
use tsp_hub::Hub;
use tsp_queue::{Clock, Queue, Registry, Worker, WorkerReport};

pub use tsp_testkit::unique;

/// The development configuration with a key prefix of its own and a short lease, `sets` on top.
pub fn config(sets: &[&str]) -> Config {
    let prefix = format!("redis.cache.key_prefix={}:", unique("t"));
    let mut all: Vec<&str> = vec![&prefix, "queue.lease=2s"];
    all.extend(sets);
    tsp_testkit::config(&all)
}

/// Deletes the test's Redis keys when dropped, even when the test fails.
pub type Cleanup = tsp_testkit::RedisKeys;

pub async fn setup(sets: &[&str]) -> (Hub, Queue, Cleanup) {
    let hub = Hub::connect(&config(sets)).await.unwrap();
    let store = hub.redis("cache").unwrap().clone();
    let cleanup = Cleanup::new(hub.config(), store.key_prefix());
    let q = Queue::new(store, "jobs", &hub.config().queue).unwrap();
    (hub, q, cleanup)
}

/// [`setup`] with the queue on a manual clock: time passes when the test says
/// (`clock.advance`), so leases lapse and ages grow without waiting.
pub async fn setup_clocked(sets: &[&str]) -> (Hub, Queue, Cleanup, Clock) {
    let (hub, q, cleanup) = setup(sets).await;
    let clock = Clock::manual();
    (hub, q.with_clock(clock.clone()), cleanup, clock)
}

/// A worker running in this process until [`Running::stop`].
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<WorkerReport>,
}

impl Running {
    pub fn start(worker: Worker) -> Running {
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(worker.run(async {
            let _ = rx.await;
        }));
        Running {
            stop: Some(tx),
            handle,
        }
    }

    pub async fn stop(mut self) -> WorkerReport {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.handle.await.unwrap()
    }
}

pub fn worker(q: &Queue, registry: Registry, concurrency: usize) -> Worker {
    Worker::new(vec![q.clone()], registry).with_concurrency(concurrency)
}

/// Waits until nothing is waiting, delayed or active (bounded).
pub async fn drained(q: &Queue, limit: Duration) {
    // A command may fail while a killed connection is re-established: just ask again.
    tsp_testkit::eventually("drained", limit, || async {
        match q.counts().await {
            Ok(c) if c.waiting + c.delayed + c.active == 0 => Ok(()),
            other => Err(other.map_err(|e| e.to_string())),
        }
    })
    .await
}

/// Waits until drained and every dead job's dead-letter hook has run (bounded).
pub async fn settled(q: &Queue, limit: Duration) {
    tsp_testkit::eventually("settled", limit, || async {
        match q.counts().await {
            Ok(c) if c.waiting + c.delayed + c.active + c.dead_unhandled == 0 => Ok(()),
            other => Err(other.map_err(|e| e.to_string())),
        }
    })
    .await
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The runs `builtin.mark` counted for `set`, by job id. Read with `HSCAN` in pieces so each
/// reply stays far inside a test's short command timeout however many jobs the set holds.
pub async fn marks(hub: &Hub, set: &str) -> std::collections::HashMap<String, i64> {
    let store = hub.redis("cache").unwrap();
    let mut conn = store.conn().await.unwrap();
    let key = format!("{}marks:{set}", store.key_prefix());
    let mut marks = std::collections::HashMap::new();
    let mut cursor = 0u64;
    loop {
        let (next, page): (u64, Vec<(String, i64)>) = redis::cmd("HSCAN")
            .arg(&key)
            .arg(cursor)
            .arg("COUNT")
            .arg(2_000)
            .query_async(&mut conn)
            .await
            .unwrap();
        marks.extend(page);
        if next == 0 {
            return marks;
        }
        cursor = next;
    }
}
