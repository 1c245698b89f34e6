//! Job records: one MongoDB document and one InfluxDB point per finished job, written in
//! batches off the job's hot path.
//!
//! Memory is bounded: records wait in a channel of `queue.records.buffer`; when it is full the
//! worker's acknowledgement path waits, which slows the queue to the rate MongoDB absorbs instead
//! of dropping records. A batch that fails is retried with backoff until it is written; only
//! when the process stops and the grace period is over are the records still unwritten counted
//! as failed and logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_recursion::async_recursion as boxed;
use mongodb::bson::{DateTime, Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use tokio::sync::mpsc;
use tsp_hub::{MongoStore, Point, PointWriter};

use crate::metrics;

/// The collection of job records in `mongo.cache`.
pub const COLLECTION: &str = "job_queue";

/// One finished job.
#[derive(Debug, Clone)]
pub struct JobRecord {
    /// The job's id.
    pub id: String,
    /// The queue's name.
    pub queue: String,
    /// The job's type.
    pub job_type: String,
    /// The payload, JSON text.
    pub payload: String,
    /// `completed` or `dead`.
    pub status: &'static str,
    /// Its priority.
    pub priority: u16,
    /// Attempts it took.
    pub attempts: u32,
    /// Its handler's result, JSON text, if completed.
    pub result: Option<String>,
    /// The last attempt's error, if dead.
    pub error: Option<String>,
    /// When it was enqueued (Unix ms).
    pub created_at: i64,
    /// When its last attempt started (Unix ms).
    pub started_at: i64,
    /// When it finished (Unix ms).
    pub finished_at: i64,
    /// How long its last attempt ran.
    pub run_ms: f64,
    /// How long it waited from runnable to leased.
    pub wait_ms: f64,
}

impl JobRecord {
    /// The record's MongoDB document (`cache.job_queue`).
    pub fn document(&self) -> Document {
        let json = |s: &str| {
            serde_json::from_str::<serde_json::Value>(s)
                .ok()
                .and_then(|v| mongodb::bson::to_bson(&v).ok())
                .unwrap_or_else(|| mongodb::bson::Bson::String(s.to_string()))
        };
        let mut d = doc! {
            "_id": &self.id,
            "queue": &self.queue,
            "jobType": &self.job_type,
            "payload": json(&self.payload),
            "status": self.status,
            "priority": i32::from(self.priority),
            "attempts": i64::from(self.attempts),
            "createdAt": DateTime::from_millis(self.created_at),
            "startedAt": DateTime::from_millis(self.started_at),
            "finishedAt": DateTime::from_millis(self.finished_at),
            "durationMs": self.run_ms,
            "waitMs": self.wait_ms,
        };
        if let Some(r) = &self.result {
            d.insert("result", json(r));
        }
        if let Some(e) = &self.error {
            d.insert("error", e.as_str());
        }
        d
    }

    fn point(&self) -> Point {
        Point::new("job_execution")
            .tag("job_type", self.job_type.as_str())
            .tag("queue", self.queue.as_str())
            .tag("outcome", self.status)
            .field("duration_ms", self.run_ms)
            .field("attempts", i64::from(self.attempts))
            .field("wait_ms", self.wait_ms)
            .timestamp_ns(unique_ns(self.finished_at))
    }
}

/// A timestamp in ns at or after `ms`, never repeated in this process. Points of the same job
/// type, queue and outcome differ only in time, and InfluxDB keeps one point per series and
/// timestamp: two jobs finishing in the same millisecond must not overwrite each other.
fn unique_ns(ms: i64) -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
        .max(ms.saturating_mul(1_000_000));
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = wall.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(actual) => last = actual,
        }
    }
}

/// The record indexes: a 24 h TTL on `createdAt`, `{status, priority, createdAt}` and
/// `{jobType, status}`.
pub fn indexes() -> Vec<(Document, IndexOptions)> {
    let named = |n: &str| IndexOptions::builder().name(n.to_string()).build();
    vec![
        (
            doc! {"createdAt": 1},
            IndexOptions::builder()
                .name("ttl_createdAt".to_string())
                .expire_after(Duration::from_secs(24 * 3600))
                .build(),
        ),
        (
            doc! {"status": 1, "priority": -1, "createdAt": -1},
            named("status_priority_createdAt"),
        ),
        (doc! {"jobType": 1, "status": 1}, named("jobType_status")),
    ]
}

/// Creates the record indexes (idempotent).
#[boxed]
pub async fn ensure_indexes(store: &MongoStore) -> Result<(), tsp_hub::HubError> {
    let models: Vec<IndexModel> = indexes()
        .into_iter()
        .map(|(keys, opts)| IndexModel::builder().keys(keys).options(opts).build())
        .collect();
    store.ensure_indexes(COLLECTION, models).await
}

/// Mongo records handed to the writer and written, so that what is left is known at any time.
#[derive(Default)]
struct Tally {
    accepted: AtomicU64,
    written: AtomicU64,
}

impl Tally {
    fn unwritten(&self) -> u64 {
        let written = self.written.load(Ordering::Acquire);
        self.accepted
            .load(Ordering::Acquire)
            .saturating_sub(written)
    }
}

/// Where finished jobs' records go. Cheap to clone.
#[derive(Clone)]
pub struct RecordSink {
    mongo: Option<mpsc::Sender<Document>>,
    influx: Option<PointWriter>,
    tally: Arc<Tally>,
}

/// The background task that writes Mongo records; await [`RecordTask::finish`] at shutdown.
pub struct RecordTask {
    handle: Option<tokio::task::JoinHandle<u64>>,
    tally: Arc<Tally>,
}

impl RecordTask {
    /// Waits (at most `grace`) for every record sent so far to be written. Returns how many
    /// were not: those the writer gave up on, or, when the grace period ends first, every record
    /// handed over and not yet written (the writer is then stopped). Each is counted in
    /// `tsp_job_records_failed_total` and logged.
    #[boxed]
    pub async fn finish(mut self, grace: Duration) -> u64 {
        let Some(mut h) = self.handle.take() else {
            return 0;
        };
        match tokio::time::timeout(grace, &mut h).await {
            Ok(Ok(unwritten)) => unwritten,
            _ => {
                h.abort();
                let n = self.tally.unwritten();
                metrics::counter(metrics::RECORDS_FAILED, "").increment(n);
                tracing::error!(
                    records = n,
                    "job records still unwritten when the grace period ended"
                );
                n
            }
        }
    }
}

impl RecordSink {
    /// A sink writing to `mongo` (batched) and/or `influx` (through its batching writer, with
    /// backpressure). Either may be off.
    pub fn start(
        mongo: Option<MongoStore>,
        influx: Option<PointWriter>,
        batch: usize,
        buffer: usize,
    ) -> (RecordSink, RecordTask) {
        let tally = Arc::new(Tally::default());
        let (tx, handle) = match mongo {
            Some(store) => {
                let (tx, rx) = mpsc::channel(buffer.max(1));
                let task = write_loop(store, rx, batch.max(1), tally.clone());
                (Some(tx), Some(tokio::spawn(task)))
            }
            None => (None, None),
        };
        let sink = RecordSink {
            mongo: tx,
            influx,
            tally: tally.clone(),
        };
        (sink, RecordTask { handle, tally })
    }

    /// A sink that records nothing.
    pub fn none() -> RecordSink {
        RecordSink {
            mongo: None,
            influx: None,
            tally: Arc::default(),
        }
    }

    /// Whether any sink is configured.
    pub fn is_on(&self) -> bool {
        self.mongo.is_some() || self.influx.is_some()
    }

    /// Hands records over; waits while the buffers are full.
    #[boxed]
    pub async fn send(&self, records: &[JobRecord]) {
        if let Some(w) = &self.influx {
            for r in records {
                if let Err(e) = w.write_wait(&r.point()).await {
                    metrics::counter(metrics::POINTS_REFUSED, &r.queue).increment(1);
                    tracing::warn!(job = %r.id, error = %e, "job_execution point refused");
                }
            }
        }
        if let Some(tx) = &self.mongo {
            for r in records {
                if tx.send(r.document()).await.is_ok() {
                    self.tally.accepted.fetch_add(1, Ordering::AcqRel);
                } else {
                    metrics::counter(metrics::RECORDS_FAILED, &r.queue).increment(1);
                    tracing::error!(job = %r.id, "job record writer has stopped; record lost");
                }
            }
        }
    }
}

async fn write_loop(
    store: MongoStore,
    mut rx: mpsc::Receiver<Document>,
    batch: usize,
    tally: Arc<Tally>,
) -> u64 {
    let coll: Collection<Document> = store.database().collection(COLLECTION);
    let mut buf: Vec<Document> = Vec::with_capacity(batch);
    loop {
        if buf.is_empty() {
            match rx.recv().await {
                Some(d) => buf.push(d),
                None => return 0,
            }
        }
        // Gather what is already waiting, up to a batch; a short pause lets a trickle batch up.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(20);
        while buf.len() < batch {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(d)) => buf.push(d),
                Ok(None) | Err(_) => break,
            }
        }
        let mut delay = Duration::from_millis(100);
        loop {
            let started = std::time::Instant::now();
            match insert_batch(&store, &coll, &buf).await {
                Ok(()) => {
                    tracing::debug!(
                        records = buf.len(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "job records written"
                    );
                    metrics::counter(metrics::RECORDS_WRITTEN, "").increment(buf.len() as u64);
                    tally.written.fetch_add(buf.len() as u64, Ordering::AcqRel);
                    buf.clear();
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, records = buf.len(), "job records not written; retrying");
                    if rx.is_closed() && delay >= Duration::from_secs(5) {
                        // Shutting down and the store stays down: report, do not spin forever.
                        let n = buf.len() as u64;
                        metrics::counter(metrics::RECORDS_FAILED, "").increment(n);
                        tracing::error!(
                            records = n,
                            "job records could not be written before shutdown"
                        );
                        buf.clear();
                        let mut rest = 0;
                        while rx.try_recv().is_ok() {
                            rest += 1;
                        }
                        return n + rest;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// Inserts a batch; a job re-run after a lost acknowledgement (or `jobs rerun`) already has its
/// record, so the documents refused as duplicates are replaced instead (the newer outcome wins).
async fn insert_batch(
    store: &MongoStore,
    coll: &Collection<Document>,
    docs: &[Document],
) -> Result<(), tsp_hub::HubError> {
    let opts = mongodb::options::InsertManyOptions::builder()
        .ordered(false)
        .build();
    let result = store
        .timed(
            "insert_many",
            coll.insert_many(docs.iter()).with_options(opts),
        )
        .await;
    let e = match result {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    match MongoStore::duplicate_positions(&e) {
        Some(refused) => {
            tracing::debug!(
                records = refused.len(),
                "some job records exist already (jobs run again): replacing them"
            );
            replace_all(store, coll, refused.iter().filter_map(|&i| docs.get(i))).await
        }
        None => Err(e),
    }
}

/// Replaces `docs` by `_id` (inserting any that is gone) in one `update` command: one round trip
/// however many, where `replace_one` takes one each.
async fn replace_all<'a>(
    store: &MongoStore,
    coll: &Collection<Document>,
    docs: impl Iterator<Item = &'a Document>,
) -> Result<(), tsp_hub::HubError> {
    let updates: Vec<Document> = docs
        .map(|d| {
            let id = d.get("_id").cloned().unwrap_or(mongodb::bson::Bson::Null);
            doc! {"q": {"_id": id}, "u": d.clone(), "upsert": true}
        })
        .collect();
    if updates.is_empty() {
        return Ok(());
    }
    let command = doc! {"update": coll.name(), "updates": updates, "ordered": false};
    let reply = store
        .timed("replace records", store.database().run_command(command))
        .await?;
    // The command answers ok with per-statement errors beside it; any is this batch's failure.
    match reply.get_array("writeErrors") {
        Ok(errors) if !errors.is_empty() => Err(tsp_hub::HubError::store(
            "mongo",
            store.name(),
            "replace records",
            format!(
                "{} of the records were refused: {:?}",
                errors.len(),
                errors.first()
            ),
        )),
        _ => Ok(()),
    }
}
