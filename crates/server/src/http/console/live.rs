//! Live updates: one Redis subscription per process to every queue's events, and one sampler
//! of store health and queue counts, both fanned out to every open console page over
//! Server-Sent Events. Pages never poll rows; the process does the store work once, whatever
//! the number of pages open. Started with the first page that listens.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use tokio::sync::{Mutex, OnceCell, broadcast};
use tsp_hub::HubHealth;

use crate::app::App;

/// How often the sampler reads health and counts while a page listens.
const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// How long a health report is reused by pages rendered meanwhile.
const HEALTH_FRESH: Duration = Duration::from_secs(2);
/// How often an open stream asks whether its session still stands; a stream outlives a
/// logout or a revocation by at most this long.
pub(super) const RECHECK_EVERY: Duration = Duration::from_secs(3);
/// Messages a slow page may fall behind by before it misses some (it then catches up from the
/// next sample).
const BACKLOG: usize = 512;

/// One message to every page: `kind` is the SSE event name.
#[derive(Debug, Clone)]
pub(super) struct Message {
    pub(super) kind: &'static str,
    pub(super) data: String,
}

struct Inner {
    app: App,
    tx: broadcast::Sender<Message>,
    started: OnceCell<()>,
    health: Mutex<Option<(Instant, HubHealth)>>,
}

/// The process's live feed. Cheap to clone.
#[derive(Clone)]
pub struct Live {
    inner: Arc<Inner>,
}

impl Live {
    /// A feed for `app`'s stores; nothing runs until a page listens.
    pub fn new(app: App) -> Live {
        let (tx, _) = broadcast::channel(BACKLOG);
        Live {
            inner: Arc::new(Inner {
                app,
                tx,
                started: OnceCell::new(),
                health: Mutex::new(None),
            }),
        }
    }

    /// The hub's health, reused for [`HEALTH_FRESH`]: one check serves every page and the
    /// sampler (a down store costs its timeout once, not once per page).
    pub(super) async fn health(&self) -> HubHealth {
        let mut cached = self.inner.health.lock().await;
        if let Some((at, h)) = cached.as_ref()
            && at.elapsed() < HEALTH_FRESH
        {
            return h.clone();
        }
        let h = self.inner.app.hub().health().await;
        *cached = Some((Instant::now(), h.clone()));
        h
    }

    pub(super) async fn subscribe(&self) -> broadcast::Receiver<Message> {
        let rx = self.inner.tx.subscribe();
        self.inner
            .started
            .get_or_init(|| async {
                tokio::spawn(relay_events(self.clone()));
                tokio::spawn(sample(self.clone()));
            })
            .await;
        rx
    }

    fn send(&self, kind: &'static str, data: serde_json::Value) {
        // No page listening is not an error.
        let _ = self.inner.tx.send(Message {
            kind,
            data: data.to_string(),
        });
    }
}

/// The snapshot pages update themselves from: every store's status, every queue's counts and
/// the alerts, computed as the overview computes them.
pub(super) async fn snapshot(live: &Live) -> serde_json::Value {
    let (health, rows) = tokio::join!(live.health(), super::status::queue_rows(&live.inner.app));
    let stores: Vec<serde_json::Value> = health
        .instances
        .iter()
        .map(|i| {
            json!({
                "key": format!("{}.{}", i.store, i.instance),
                "status": i.status,
                // No latency for a store that did not answer (the page shows a dash).
                "latency_ms": (i.status != tsp_hub::Status::Down)
                    .then(|| (i.latency_ms * 10.0).round() / 10.0),
                "error": i.error.as_deref().unwrap_or(""),
            })
        })
        .collect();
    let rows = rows.unwrap_or_default();
    let alerts = super::status::alerts(&health, &rows, chrono::Utc::now().timestamp_millis());
    let queues: Vec<&tsp_queue::QueueCounts> = rows.iter().map(|r| &r.counts).collect();
    json!({
        "stores": stores,
        "queues": queues,
        "alerts": alerts,
        "at": chrono::Utc::now().to_rfc3339(),
    })
}

/// Samples while anyone listens; idles (one cheap check a period) otherwise.
async fn sample(live: Live) {
    loop {
        if live.inner.tx.receiver_count() > 0 {
            let s = snapshot(&live).await;
            live.send("overview", s);
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

/// Relays every queue's events (`<prefix>events:<queue>`), resubscribing with backoff when the
/// connection fails; an outage is logged when it starts and when it ends, not at every retry.
async fn relay_events(live: Live) {
    let mut delay = Duration::from_millis(250);
    let mut failing = false;
    loop {
        match relay_once(&live, &mut failing).await {
            Ok(()) => delay = Duration::from_millis(250),
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "console: queue events not relayed; retrying");
                }
                failing = true;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
        tokio::time::sleep(delay).await;
    }
}

/// One subscription, until its connection ends.
async fn relay_once(live: &Live, failing: &mut bool) -> anyhow::Result<()> {
    let q = live.inner.app.queue("default")?;
    let store = q.store().clone();
    let prefix = format!("{}events:", store.key_prefix());
    let client = store.client()?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.psubscribe(format!("{prefix}*")).await?;
    if std::mem::take(failing) {
        tracing::info!("console: queue events relayed again");
    }
    let mut messages = pubsub.into_on_message();
    while let Some(msg) = messages.next().await {
        let queue = msg
            .get_channel_name()
            .strip_prefix(&prefix)
            .unwrap_or_default()
            .to_string();
        let Ok(text) = msg.get_payload::<String>() else {
            continue;
        };
        let Ok(mut event) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        event["queue"] = json!(queue);
        live.send("job", event);
    }
    Ok(())
}
