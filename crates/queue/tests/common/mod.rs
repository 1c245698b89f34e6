//! Helpers: a hub on the local services with a key prefix of its own, and an in-process worker.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::oneshot;
use tsp_config::{Config, LoadOptions};
use tsp_hub::Hub;
use tsp_queue::{Queue, Registry, Worker, WorkerReport};

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{:012x}",
        rand::rng().random::<u64>() & 0xffff_ffff_ffff
    )
}

pub fn config(sets: &[&str]) -> Config {
    let mut overrides: Vec<String> = vec![
        format!("redis.cache.key_prefix={}:", unique("t")),
        "queue.lease=2s".into(),
    ];
    overrides.extend(sets.iter().map(|s| s.to_string()));
    tsp_config::load(&LoadOptions {
        config_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config"),
        env_name: Some("development".into()),
        env: Vec::new(),
        overrides,
    })
    .unwrap()
}

/// Deletes a test's Redis keys (its own prefix) when dropped, even when the test fails.
pub struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open("redis://127.0.0.1:6379/") else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.0))
            .query(&mut conn)
            .unwrap_or_default();
        for chunk in keys.chunks(500) {
            let _: redis::RedisResult<i64> = redis::cmd("UNLINK").arg(chunk).query(&mut conn);
        }
    }
}

pub async fn setup(sets: &[&str]) -> (Hub, Queue, Cleanup) {
    let hub = Hub::connect(&config(sets)).await.unwrap();
    let store = hub.redis("cache").unwrap().clone();
    let cleanup = Cleanup(store.key_prefix().to_string());
    let q = Queue::new(store, "jobs", &hub.config().queue).unwrap();
    (hub, q, cleanup)
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
    let started = Instant::now();
    loop {
        // A command may fail while a killed connection is re-established: just ask again.
        let c = q.counts().await;
        if let Ok(c) = &c
            && c.waiting + c.delayed + c.active == 0
        {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "not drained after {limit:?}: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until drained and every dead job's dead-letter hook has run (bounded).
pub async fn settled(q: &Queue, limit: Duration) {
    let started = Instant::now();
    loop {
        let c = q.counts().await;
        if let Ok(c) = &c
            && c.waiting + c.delayed + c.active + c.dead_unhandled == 0
        {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "not settled after {limit:?}: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
