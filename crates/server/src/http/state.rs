//! What every handler shares: the service's components and the request-side state.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

use super::activity::Activity;
use super::caller::Caller;
use super::console::live::Live;
use super::rules::AccessMap;
use crate::app::App;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The service's components.
    pub app: App,
    /// The Prometheus exporter, when installed.
    pub prometheus: Option<PrometheusHandle>,
    /// Where activity events and request points go.
    pub activity: Activity,
    /// The operator console's live feed (one per process).
    pub console: Live,
    /// Credential reloads (`POST /admin/reload`), when the process runs one.
    pub reloader: Option<crate::reload::Reloader>,
    pub(super) access: Arc<AccessMap>,
    /// The OpenAPI document `GET /openapi.json` answers (set with `access` by the router).
    pub(super) openapi: &'static str,
    /// `server.metrics_token`: lets a scraper read `/metrics` without an operator's key.
    pub(super) scrape_token: Option<super::scrape_token::ScrapeToken>,
    /// `server.trusted_proxies`.
    pub(super) trusted: Arc<Vec<tsp_config::Network>>,
    /// Set only by [`router_without_auth`]: the caller every request is taken for.
    pub(super) assume: Option<Arc<Caller>>,
    /// True once the process shuts down: streams that would never end on their own end then.
    pub(super) closing: Arc<watch::Sender<bool>>,
}

impl AppState {
    /// The state for `app`: activity written as `activity.*` configures.
    pub fn new(app: App, prometheus: Option<PrometheusHandle>, activity: Activity) -> AppState {
        // Checked when the configuration loaded.
        let trusted =
            tsp_config::networks(&app.hub().config().server.trusted_proxies).unwrap_or_default();
        let token = app.hub().config().server.metrics_token.as_ref();
        let scrape_token = super::scrape_token::ScrapeToken::from_config(token);
        AppState {
            console: Live::new(app.clone()),
            app,
            prometheus,
            activity,
            reloader: None,
            // Filled by the router from its route table.
            access: Arc::default(),
            openapi: "",
            scrape_token,
            trusted: Arc::new(trusted),
            assume: None,
            closing: Arc::new(watch::channel(false).0),
        }
    }

    /// The state with `reloader` answering `POST /admin/reload`.
    pub fn with_reloader(mut self, reloader: crate::reload::Reloader) -> AppState {
        self.reloader = Some(reloader);
        self
    }

    /// Resolves once the process shuts down ([`super::serve`] says so before it drains).
    pub(super) fn closing(&self) -> impl Future<Output = ()> + Send + use<> {
        let mut rx = self.closing.subscribe();
        async move {
            // An error means the sender is gone: the server is gone too.
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }
}
