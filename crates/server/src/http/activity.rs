//! The end of the user interaction flow: every request is measured (Prometheus histogram by
//! route template, method and status; an `http_request` point in InfluxDB `uis`), and every
//! authenticated request leaves an activity event in MongoDB `dataset.request_activity`.
//!
//! Nothing here is on the request's path: events go through a bounded channel to a task that
//! inserts them in batches, and points through the hub's batching writer. When MongoDB falls
//! behind, events beyond `activity.buffer` are dropped and counted
//! (`tsp_activity_events_dropped_total`), never waited for. One point per request (not per
//! second) keeps status and latency per request queryable; InfluxDB takes far more points per
//! second than this service answers requests (docs/benchmarks.md).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use mongodb::IndexModel;
use mongodb::bson::{DateTime, Document, doc};
use mongodb::options::IndexOptions;
use tokio::sync::{Mutex, Notify, mpsc};
use tsp_config::ActivitySettings;
use tsp_hub::{MongoStore, Point, PointWriter};

use crate::app::ActivityStores;
use tsp_mobility::auth::Principal;

/// The collection of activity events in `mongo.dataset`.
pub const COLLECTION: &str = "request_activity";

/// One answered request.
pub(super) struct Event {
    pub(super) principal: Option<Principal>,
    pub(super) method: String,
    pub(super) route: String,
    pub(super) status: u16,
    pub(super) address: IpAddr,
    pub(super) request_id: String,
    pub(super) elapsed: Duration,
}

impl Event {
    /// The event of a request to `route` answered with `status`, taken `started` ago.
    pub(super) fn answered(
        principal: Option<Principal>,
        method: &axum::http::Method,
        route: String,
        status: axum::http::StatusCode,
        (address, request_id): (IpAddr, String),
        started: std::time::Instant,
    ) -> Event {
        Event {
            principal,
            method: method.to_string(),
            route,
            status: status.as_u16(),
            address,
            request_id,
            elapsed: started.elapsed(),
        }
    }
}

/// Where activity goes. Cheap to clone.
#[derive(Clone)]
pub struct Activity {
    events: Option<mpsc::Sender<Document>>,
    points: Option<PointWriter>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
    closing: Arc<Notify>,
}

impl Activity {
    /// Nothing recorded but the Prometheus histogram.
    pub fn off() -> Activity {
        Activity {
            events: None,
            points: None,
            task: Arc::new(Mutex::new(None)),
            closing: Arc::new(Notify::new()),
        }
    }

    /// Starts the event writer on `stores` as `settings` (`activity.*`) configure (and its
    /// TTL index).
    pub async fn start(stores: &ActivityStores, settings: &ActivitySettings) -> Activity {
        let points = stores.points.as_ref().map(|p| p.writer());
        // At 0 from the start, so that an alert's `increase()` sees the first drop.
        metrics::counter!(crate::telemetry::ACTIVITY_DROPPED).increment(0);
        let closing = Arc::new(Notify::new());
        let (events, task) = if let Some(store) = stores.log.clone() {
            if let Err(e) = ensure_indexes(&store, settings.keep).await {
                tracing::warn!(error = %e, "request_activity indexes not created");
            }
            let (tx, rx) = mpsc::channel(settings.buffer.max(1));
            let task = tokio::spawn(write_events(
                store,
                rx,
                settings.batch.max(1),
                closing.clone(),
            ));
            (Some(tx), Some(task))
        } else {
            (None, None)
        };
        Activity {
            events,
            points,
            task: Arc::new(Mutex::new(task)),
            closing,
        }
    }

    /// Records one answered request, the tail of both guards (the API's and the console's):
    /// a debug log line, the duration histogram, the request point and the activity event.
    /// Never waits.
    pub(super) fn record(&self, e: Event) {
        tracing::debug!(
            id = %e.request_id,
            route = %e.route,
            status = e.status,
            elapsed_us = e.elapsed.as_micros() as u64,
            subject = e.principal.as_ref().map(Principal::subject),
            "answered"
        );
        let status = e.status.to_string();
        metrics::histogram!(
            crate::telemetry::HTTP_DURATION,
            "route" => e.route.clone(),
            "method" => e.method.clone(),
            "status" => status.clone()
        )
        .record(e.elapsed.as_secs_f64());
        if let Some(w) = &self.points {
            let point = Point::new("http_request")
                .tag("route", e.route.as_str())
                .tag("method", e.method.as_str())
                .tag("status", status.as_str())
                .field("duration_ms", e.elapsed.as_secs_f64() * 1000.0)
                .field("request_id", e.request_id.as_str())
                .timestamp_ns(unique_ns());
            if let Err(err) = w.write(&point) {
                tracing::debug!(error = %err, "http_request point refused");
            }
        }
        let (Some(tx), Some(p)) = (&self.events, &e.principal) else {
            return;
        };
        let event = doc! {
            "at": DateTime::now(),
            "subject": p.subject(),
            "userId": p.user_id().map(|u| u as i64),
            "method": &e.method,
            "route": &e.route,
            "status": i32::from(e.status),
            "address": e.address.to_string(),
            "requestId": &e.request_id,
            "durationMs": e.elapsed.as_secs_f64() * 1000.0,
        };
        if tx.try_send(event).is_err() {
            metrics::counter!(crate::telemetry::ACTIVITY_DROPPED).increment(1);
        }
    }

    /// Stops taking events and waits (at most `grace`) for the buffered ones to be written;
    /// what is left then is dropped (and logged).
    pub async fn close(&self, grace: Duration) {
        let Some(mut task) = self.task.lock().await.take() else {
            return;
        };
        self.closing.notify_one();
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
            tracing::warn!("activity events still unwritten at shutdown were dropped");
        }
    }
}

/// Now in Unix nanoseconds, strictly increasing within the process: InfluxDB keeps one point per
/// series and timestamp, so two requests to one route in the same nanosecond (or in one batch
/// stamped by the server) would otherwise count once.
fn unique_ns() -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => prev = seen,
        }
    }
}

/// Creates the `request_activity` indexes (TTL `keep`); `migrate` runs it too, so that an app
/// account without index rights finds them made.
pub async fn ensure_indexes(store: &MongoStore, keep: Duration) -> Result<(), tsp_hub::HubError> {
    let index = IndexModel::builder()
        .keys(doc! {"at": 1})
        .options(
            IndexOptions::builder()
                .name("ttl_at".to_string())
                .expire_after(keep)
                .build(),
        )
        .build();
    let by_subject = IndexModel::builder()
        .keys(doc! {"subject": 1, "at": -1})
        .build();
    store
        .ensure_indexes(COLLECTION, vec![index, by_subject])
        .await
}

/// Writes events in batches until closed, then writes what is buffered and ends.
async fn write_events(
    store: MongoStore,
    mut rx: mpsc::Receiver<Document>,
    batch: usize,
    closing: Arc<Notify>,
) {
    let mut buf = Vec::with_capacity(batch);
    loop {
        let got = tokio::select! {
            n = rx.recv_many(&mut buf, batch) => n,
            () = closing.notified() => {
                // No new events; the buffered ones are still received below.
                rx.close();
                rx.recv_many(&mut buf, batch).await
            }
        };
        if got == 0 {
            return;
        }
        insert(&store, &rx, &mut buf).await;
    }
}

async fn insert(store: &MongoStore, rx: &mpsc::Receiver<Document>, buf: &mut Vec<Document>) {
    {
        let mut delay = Duration::from_millis(100);
        loop {
            match store.insert_documents(COLLECTION, buf).await {
                Ok(_) => {
                    metrics::counter!(crate::telemetry::ACTIVITY_WRITTEN)
                        .increment(buf.len() as u64);
                    break;
                }
                Err(e) if rx.is_closed() && delay >= Duration::from_secs(2) => {
                    metrics::counter!(crate::telemetry::ACTIVITY_DROPPED)
                        .increment(buf.len() as u64);
                    tracing::error!(error = %e, events = buf.len(), "activity events lost at shutdown");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, events = buf.len(), "activity events not written; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        buf.clear();
    }
}
