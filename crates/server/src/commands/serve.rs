//! `tsp-job serve`: the HTTP server, and the store health watch beside it.

use anyhow::Context;
use tsp_hub::{Hub, Status};

use crate::app::App;
use crate::{http, shutdown_signal};

/// `tsp-job serve`: fails fast when a required store is down, then serves until a signal.
pub async fn serve(
    hub: &Hub,
    prometheus: Option<metrics_exporter_prometheus::PrometheusHandle>,
    reloader: crate::reload::Reloader,
) -> anyhow::Result<u8> {
    let health = hub.require().await.context("cannot start")?;
    for i in health.instances.iter().filter(|i| i.status != Status::Up) {
        tracing::warn!(store = i.store, instance = %i.instance, error = i.error.as_deref().unwrap_or(""), "optional store is {}; it will be retried", i.status.as_str());
    }
    let app = App::build(hub).context("cannot start")?;
    let listen = hub.config().server.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    tracing::info!(%addr, "serving /health, /health/live, /health/ready, /metrics");
    let watcher = tokio::spawn(watch_health(hub.clone()));
    let activity = http::Activity::start(&app.stores().activity, &hub.config().activity).await;
    let grace = hub.config().server.shutdown_grace;
    http::serve(
        listener,
        http::AppState::new(app, prometheus, activity).with_reloader(reloader),
        shutdown_signal(),
        grace,
    )
    .await?;
    watcher.abort();
    tracing::info!("shutting down");
    Ok(0)
}

/// One point of `influx.service_monitor.measurement` (`vendor_latency`): the round trip of a
/// health check to one store (the service's vendors), tagged with the store and instance.
/// Waiting for room in the writer's buffer is bounded by `influx.service_monitor.timeout`;
/// past it the point is dropped and counted, so a slow InfluxDB never holds up health checks.
async fn record_vendor_latency(hub: &Hub, w: &tsp_hub::PointWriter, i: &tsp_hub::InstanceHealth) {
    let sm = &hub.config().service_monitor;
    let mut point = tsp_hub::Point::new(sm.measurement.as_str())
        .tag("store", i.store)
        .tag("instance", i.instance.as_str())
        .field("up", i.status == Status::Up)
        .field("latency_ms", i.latency_ms);
    for (k, v) in hub.config().influx_tags.pairs() {
        point = point.tag(k, v);
    }
    match tokio::time::timeout(sm.timeout, w.write_wait(&point)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot record vendor latency"),
        Err(_) => {
            metrics::counter!(crate::telemetry::VENDOR_LATENCY_DROPPED).increment(1);
            tracing::debug!("vendor latency point dropped: the writer stayed full");
        }
    }
}

/// Re-checks health every `health.interval`: keeps the `tsp_store_up` gauges current, retries
/// optional stores that were down, logs each change of state, and records each check in the
/// service-monitor bucket (docs/metrics.md#points-in-influxdb).
async fn watch_health(hub: Hub) {
    let mut last: std::collections::HashMap<String, Status> = Default::default();
    let monitor = hub.service_monitor_writer().ok();
    let interval = hub.config().health.interval;
    loop {
        let h = hub.health().await;
        let first_round = last.is_empty();
        for i in &h.instances {
            if let Some(w) = &monitor {
                record_vendor_latency(&hub, w, i).await;
            }
            let key = format!("{}.{}", i.store, i.instance);
            if last.insert(key.clone(), i.status) != Some(i.status) && !first_round {
                match i.status {
                    Status::Up => tracing::info!(store = %key, "store is up"),
                    Status::Degraded => {
                        tracing::warn!(store = %key, error = i.error.as_deref().unwrap_or(""), "store is degraded")
                    }
                    Status::Down => {
                        tracing::warn!(store = %key, error = i.error.as_deref().unwrap_or(""), "store is down")
                    }
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}
