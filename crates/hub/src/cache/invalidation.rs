//! Invalidation across processes: new tag versions in Redis, then every subscribed process
//! drops its L1 entries of the tags and acknowledges (the design: docs/cache.md).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_recursion::async_recursion as boxed;
use futures::StreamExt;

use super::{Cache, Invalidation, Shared, VERSION_TTL_S};
use crate::error::HubError;
use crate::redis::RedisStore;

impl Cache {
    /// `PUBLISH` on the node subscribers listen on (a Cluster's first seed node): the
    /// number of subscribers that received it.
    async fn publish_on_seed(&self, message: &str) -> Result<u64, HubError> {
        let store = &self.inner.store;
        let conn = self
            .inner
            .publisher
            .get_or_try_init(|| async {
                store
                    .client()?
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(|e| store.command_error("cache publish connect", &e))
            })
            .await?;
        redis::cmd("PUBLISH")
            .arg(&self.inner.channel)
            .arg(message)
            .query_async(&mut conn.clone())
            .await
            .map_err(|e| store.command_error("cache invalidate", &e))
    }

    /// Invalidates every entry of `tags` in every process: new versions in Redis, this
    /// process's L1 entries dropped, then the others', waiting for their acknowledgements.
    #[boxed]
    pub async fn invalidate(&self, tags: &[String]) -> Result<Invalidation, HubError> {
        if tags.is_empty() {
            return Ok(Invalidation {
                receivers: 0,
                acknowledged: 0,
            });
        }
        let store = &self.inner.store;
        {
            let mut l1 = self.inner.shared.l1();
            for t in tags {
                l1.drop_tag(t);
            }
        }
        let ack_id = format!("{:032x}", rand::random::<u128>());
        let ack_key = format!("{}cache:ack:{ack_id}", store.key_prefix());
        let message = serde_json::json!({"tags": tags, "ack": ack_key}).to_string();
        let mut p = redis::pipe();
        for t in tags {
            let ver = format!("{}ver", self.base(t));
            p.cmd("INCR").arg(&ver).ignore();
            p.cmd("EXPIRE").arg(&ver).arg(VERSION_TTL_S).ignore();
        }
        let mut conn = store.conn().await?;
        let receivers = if store.is_cluster() {
            // Versions live on their tags' nodes; the message goes out on the node every process
            // subscribes on (see `Inner::publisher`).
            p.query_async::<()>(&mut conn)
                .await
                .map_err(|e| store.command_error("cache invalidate", &e))?;
            self.publish_on_seed(&message).await?
        } else {
            p.cmd("PUBLISH").arg(&self.inner.channel).arg(&message);
            let (receivers,): (u64,) = p
                .query_async(&mut conn)
                .await
                .map_err(|e| store.command_error("cache invalidate", &e))?;
            receivers
        };
        self.inner
            .shared
            .counters
            .invalidations
            .fetch_add(1, Ordering::Relaxed);
        ::metrics::counter!(crate::metrics::names::CACHE_INVALIDATIONS).increment(1);
        // Each subscriber INCRs the ack key once it has dropped its entries.
        let until = Instant::now() + self.inner.settings.ack_timeout;
        let mut pause = Duration::from_micros(200);
        let acknowledged = loop {
            let n: Option<u64> = redis::cmd("GET")
                .arg(&ack_key)
                .query_async(&mut conn)
                .await
                .map_err(|e| store.command_error("cache ack", &e))?;
            let n = n.unwrap_or(0);
            if n >= receivers || Instant::now() >= until {
                break n;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(10));
        };
        if acknowledged < receivers {
            tracing::warn!(
                receivers,
                acknowledged,
                "cache invalidation: not every process acknowledged in time"
            );
        }
        Ok(Invalidation {
            receivers,
            acknowledged,
        })
    }
}

#[derive(serde::Deserialize)]
struct Message {
    tags: Vec<String>,
    ack: String,
}

/// Keeps the invalidation subscription up; L1 is served only while it is.
pub(super) async fn subscribe(store: RedisStore, channel: String, shared: Arc<Shared>) {
    let client = match store.client() {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(error = %e, "cache: no invalidation subscription (L1 stays off)");
            return;
        }
    };
    let mut delay = Duration::from_millis(100);
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    delay = Duration::from_millis(100);
                    shared.generation.fetch_add(1, Ordering::AcqRel);
                    shared.subscribed.store(true, Ordering::Release);
                    let mut messages = pubsub.into_on_message();
                    while let Some(msg) = messages.next().await {
                        let Ok(m) = serde_json::from_slice::<Message>(msg.get_payload_bytes())
                        else {
                            continue;
                        };
                        {
                            let mut l1 = shared.l1();
                            for t in &m.tags {
                                l1.drop_tag(t);
                            }
                        }
                        if let Err(e) = acknowledge(&store, &m.ack).await {
                            tracing::debug!(error = %e, "cache: acknowledging an invalidation failed");
                        }
                    }
                    tracing::warn!(
                        "cache: invalidation subscription lost; L1 off until it is back"
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %store.command_error("subscribe", &e), "cache: subscribing failed")
                }
            },
            Err(e) => {
                tracing::debug!(error = %store.command_error("subscribe", &e), "cache: no subscription connection")
            }
        }
        shared.subscribed.store(false, Ordering::Release);
        shared.generation.fetch_add(1, Ordering::AcqRel);
        shared.l1().clear();
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

async fn acknowledge(store: &RedisStore, ack_key: &str) -> Result<(), HubError> {
    if !ack_key.starts_with(store.key_prefix()) {
        return Ok(());
    }
    let mut conn = store.conn().await?;
    redis::pipe()
        .cmd("INCR")
        .arg(ack_key)
        .ignore()
        .cmd("EXPIRE")
        .arg(ack_key)
        .arg(60)
        .ignore()
        .query_async::<()>(&mut conn)
        .await
        .map_err(|e| store.command_error("cache ack", &e))
}
