//! The probes of a `tsp-job worker` process (`--listen`): live, ready (503 with the cause once
//! the worker gave outcomes up, docs/queue.md#acknowledgements) and Prometheus metrics. A worker
//! serves nothing else. Metrics name queues, job types and stores: they are served to loopback
//! only, or to a scraper presenting `server.metrics_token` (docs/security.md#probes).

use axum::Router;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tsp_queue::WorkerHealth;

use super::scrape_token::ScrapeToken;

#[derive(Clone)]
struct Probes {
    health: WorkerHealth,
    prometheus: Option<PrometheusHandle>,
    /// `server.metrics_token`, when set.
    token: Option<ScrapeToken>,
}

/// The worker's probe routes; serve them with connection info (`SocketAddr`).
pub fn worker_router(
    health: WorkerHealth,
    prometheus: Option<PrometheusHandle>,
    token: Option<&secrecy::SecretString>,
) -> Router {
    let token = ScrapeToken::from_config(token);
    Router::new()
        .route(
            "/health/live",
            get(|| async { Json(json!({"status": "up"})) }),
        )
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(Probes {
            health,
            prometheus,
            token,
        })
}

/// Whether a scrape may read the metrics: from loopback, or presenting the token.
fn may_scrape(p: &Probes, peer: SocketAddr, headers: &HeaderMap) -> bool {
    peer.ip().is_loopback() || p.token.is_some_and(|t| t.presented_in(headers))
}

async fn ready(State(p): State<Probes>) -> Response {
    match p.health.reason() {
        None => Json(json!({"status": "up"})).into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "down", "reason": reason})),
        )
            .into_response(),
    }
}

async fn metrics(
    State(p): State<Probes>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if !may_scrape(&p, peer, &headers) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"error": "metrics are served to loopback, or with server.metrics_token"})),
        )
            .into_response();
    }
    match &p.prometheus {
        Some(h) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probes(token: Option<&str>) -> Probes {
        Probes {
            health: WorkerHealth::default(),
            prometheus: None,
            token: ScrapeToken::from_config(token.map(|t| t.into()).as_ref()),
        }
    }

    fn bearer(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = format!("Bearer {t}").parse() {
            h.insert(header::AUTHORIZATION, v);
        }
        h
    }

    #[test]
    fn metrics_go_to_loopback_or_to_the_token() {
        let (local, remote): (SocketAddr, SocketAddr) = (
            SocketAddr::from(([127, 0, 0, 1], 9000)),
            SocketAddr::from(([192, 0, 2, 7], 9000)),
        );
        let none = HeaderMap::new();
        assert!(may_scrape(&probes(None), local, &none));
        assert!(!may_scrape(&probes(None), remote, &none));
        assert!(!may_scrape(&probes(None), remote, &bearer("anything")));
        let p = probes(Some("s3cret-token"));
        assert!(may_scrape(&p, remote, &bearer("s3cret-token")));
        assert!(!may_scrape(&p, remote, &bearer("s3cret-tokem")));
        assert!(!may_scrape(&p, remote, &none));
    }
}
