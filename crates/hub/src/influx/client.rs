//! The InfluxDB HTTP client: v1 (`/ping`, `/write`, `/query`) and v2 (`/health`,
//! `/api/v2/write`, `/api/v2/query`), over one keep-alive `reqwest` client per instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_recursion::async_recursion as boxed;
use bytes::Bytes;
use futures::future::BoxFuture;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use tracing::Instrument;
use tsp_config::{BatchSettings, HealthSettings, InfluxApi, InfluxSettings};

use super::sink::{LineSink, WriteFailure};
use super::writer::PointWriter;
use crate::error::{HubError, Redactor};
use crate::health::InstanceHealth;
use crate::metrics::StoreMetrics;
use crate::rotation::AuthAlarm;
use crate::shared::Shared;

const STORE: &str = "influx";

/// One InfluxDB instance.
#[derive(Clone)]
pub struct InfluxStore {
    settings: Arc<InfluxSettings>,
    /// The settings with the credentials in use (replaced by [`InfluxStore::rotate`]); every
    /// request reads its credentials from here.
    current: Shared<InfluxSettings>,
    alarm: AuthAlarm,
    http: reqwest::Client,
    base: String,
    metrics: StoreMetrics,
    redactor: Redactor,
    tags: Arc<Vec<(String, String)>>,
    writers: Arc<Mutex<HashMap<String, PointWriter>>>,
}

impl InfluxStore {
    pub(crate) fn new(
        s: &InfluxSettings,
        tags: Vec<(String, String)>,
        redactor: Redactor,
        alarm: AuthAlarm,
    ) -> Result<Self, HubError> {
        let settings_error = |message: String| HubError::Settings {
            store: STORE,
            instance: s.name.clone(),
            message,
        };
        let mut builder = reqwest::Client::builder()
            .timeout(s.timeout)
            .connect_timeout(s.timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(32)
            .tcp_nodelay(true);
        if let Some(ca) = &s.tls.ca {
            let pem = std::fs::read(ca)
                .map_err(|e| settings_error(format!("tls.ca {}: {e}", ca.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                settings_error(format!(
                    "tls.ca {}: not a PEM certificate ({e})",
                    ca.display()
                ))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| settings_error(redactor.clean(e.without_url().to_string())))?;
        Ok(InfluxStore {
            settings: Arc::new(s.clone()),
            current: Shared::new(s.clone()),
            alarm,
            http,
            base: s.url.trim_end_matches('/').to_string(),
            metrics: StoreMetrics::new(STORE, &s.name),
            redactor,
            tags: Arc::new(tags),
            writers: Arc::default(),
        })
    }

    /// The instance's configured name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// Whether the service needs this instance to start.
    pub fn required(&self) -> bool {
        self.settings.required
    }

    /// The instance's settings.
    pub fn settings(&self) -> &InfluxSettings {
        &self.settings
    }

    /// The instance's command metrics.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    /// The tags added to every point written through this instance's writers.
    pub fn default_tags(&self) -> &[(String, String)] {
        &self.tags
    }

    /// The default bucket (v2) or database (v1).
    pub fn default_target(&self) -> String {
        match self.settings.api {
            InfluxApi::V2 => self.settings.bucket.clone(),
            InfluxApi::V1 => self.settings.v1_database().to_string(),
        }
    }

    /// The batching writer for the default bucket/database, created on first use.
    pub fn writer(&self) -> PointWriter {
        self.writer_for(&self.default_target())
    }

    /// The batching writer for `target` (a v2 bucket or v1 database), created on first use.
    pub fn writer_for(&self, target: &str) -> PointWriter {
        let mut writers = match self.writers.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        writers
            .entry(target.to_string())
            .or_insert_with(|| PointWriter::spawn(Arc::new(self.clone()), target.to_string()))
            .clone()
    }

    /// Every writer created so far (for metrics and shutdown).
    pub fn writers(&self) -> Vec<PointWriter> {
        match self.writers.lock() {
            Ok(w) => w.values().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().values().cloned().collect(),
        }
    }

    /// Replaces the credentials (username, password, token) with `new`'s once a request with
    /// them is accepted within `timeout` (v1 `SHOW DATABASES`, v2 a bucket listing);
    /// `Ok(false)` when they are the ones in use. Every later request carries them.
    pub(crate) async fn rotate(
        &self,
        new: &InfluxSettings,
        timeout: Duration,
    ) -> Result<bool, HubError> {
        let old = self.current.get();
        if old.username == new.username
            && old.password.expose_secret() == new.password.expose_secret()
            && old.token.expose_secret() == new.token.expose_secret()
        {
            return Ok(false);
        }
        let mut next = (*old).clone();
        next.username = new.username.clone();
        next.password = new.password.clone();
        next.token = new.token.clone();
        let mut probe = self.clone();
        probe.current = Shared::new(next.clone());
        // Its refusal is this rotation's answer, not news of a changed password.
        probe.alarm = AuthAlarm::default();
        let check = async {
            match next.api {
                InfluxApi::V1 => probe.query_v1("", "SHOW DATABASES").await.map(drop),
                InfluxApi::V2 => probe
                    .api_v2(
                        reqwest::Method::GET,
                        "/api/v2/buckets",
                        &[("limit", "1")],
                        None,
                    )
                    .await
                    .map(drop),
            }
        };
        crate::rotation::tried(STORE, &self.settings.name, timeout, check).await?;
        self.current.set(next);
        Ok(true)
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let s = &self.current.get();
        match s.api {
            InfluxApi::V2 => req.header(
                "Authorization",
                format!("Token {}", s.token.expose_secret()),
            ),
            InfluxApi::V1 if !s.username.is_empty() => {
                req.basic_auth(&s.username, Some(s.password.expose_secret()))
            }
            InfluxApi::V1 => req,
        }
    }

    fn clean_reqwest(&self, e: reqwest::Error) -> String {
        // Without the URL: the message then cannot carry query parameters.
        self.redactor.clean(e.without_url().to_string())
    }

    /// Sends one body of line protocol to `target` (bucket or database). Not retried here: the
    /// writer decides.
    #[boxed]
    pub async fn write_body(&self, target: &str, body: Bytes) -> Result<(), WriteFailure> {
        let started = Instant::now();
        let out = self.write_body_once(target, body).await;
        self.metrics.record("write", started, out.is_ok());
        out
    }

    async fn write_body_once(&self, target: &str, body: Bytes) -> Result<(), WriteFailure> {
        let s = &self.settings;
        let req = match s.api {
            InfluxApi::V2 => self
                .http
                .post(format!("{}/api/v2/write", self.base))
                .query(&[
                    ("org", s.org.as_str()),
                    ("bucket", target),
                    ("precision", "ns"),
                ]),
            InfluxApi::V1 => {
                let mut q = vec![("db", target), ("precision", "ns")];
                if !s.retention_policy.is_empty() {
                    q.push(("rp", s.retention_policy.as_str()));
                }
                self.http.post(format!("{}/write", self.base)).query(&q)
            }
        };
        let resp = self
            .auth(req)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_err(|e| WriteFailure::Retryable {
                message: self.clean_reqwest(e),
                retry_after: None,
            })?;
        let status = resp.status();
        self.refused_login(status);
        if status.is_success() {
            return Ok(());
        }
        let retry_after = resp
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.text().await.unwrap_or_default();
        let message = self.redactor.clean(format!(
            "HTTP {}: {}",
            status.as_u16(),
            text.chars().take(300).collect::<String>().trim()
        ));
        // 401 too: during a credential rotation the server may have the new password a moment
        // before this process does (docs/store-security.md#rotation); retries stay bounded.
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::UNAUTHORIZED
            || status.is_server_error()
        {
            Err(WriteFailure::Retryable {
                message,
                retry_after,
            })
        } else {
            Err(WriteFailure::Permanent { message })
        }
    }

    /// A 401 means the credentials in use were refused: raise the hub's credential alarm.
    fn refused_login(&self, status: StatusCode) {
        if status == StatusCode::UNAUTHORIZED {
            self.alarm.raise();
        }
    }

    fn http_error(&self, op: &str, message: String) -> HubError {
        HubError::store(STORE, &self.settings.name, op, message)
    }

    /// An InfluxQL statement through the v1 `/query` endpoint (also served by 2.x for
    /// compatibility). Returns the JSON response.
    #[boxed]
    pub async fn query_v1(&self, database: &str, q: &str) -> Result<serde_json::Value, HubError> {
        let started = Instant::now();
        let out = async {
            let req = self
                .http
                .post(format!("{}/query", self.base))
                .form(&[("db", database), ("q", q)]);
            let resp = self
                .auth(req)
                .send()
                .await
                .map_err(|e| self.http_error("query", self.clean_reqwest(e)))?;
            let status = resp.status();
            self.refused_login(status);
            let body: serde_json::Value = resp
                .json()
                .await
                .map_err(|e| self.http_error("query", self.clean_reqwest(e)))?;
            if !status.is_success() {
                return Err(self.http_error("query", format!("HTTP {}: {body}", status.as_u16())));
            }
            if let Some(err) = body
                .pointer("/results/0/error")
                .or_else(|| body.get("error"))
                .and_then(|e| e.as_str())
            {
                return Err(self.http_error("query", self.redactor.clean(err)));
            }
            Ok(body)
        }
        .instrument(self.metrics.span("query"))
        .await;
        self.metrics.record("query", started, out.is_ok());
        out
    }

    /// A JSON call to the v2 management API (`/api/v2/orgs`, `/api/v2/buckets`, …): the parsed
    /// answer, or an error with the server's message.
    #[boxed]
    pub async fn api_v2(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, HubError> {
        let started = Instant::now();
        let op = format!("{method} {path}");
        let out = async {
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .query(query)
                .header("Accept", "application/json");
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = self
                .auth(req)
                .send()
                .await
                .map_err(|e| self.http_error(&op, self.clean_reqwest(e)))?;
            let status = resp.status();
            self.refused_login(status);
            let text = resp
                .text()
                .await
                .map_err(|e| self.http_error(&op, self.clean_reqwest(e)))?;
            if !status.is_success() {
                return Err(self.http_error(
                    &op,
                    self.redactor
                        .clean(format!("HTTP {}: {}", status.as_u16(), text.trim())),
                ));
            }
            if text.trim().is_empty() {
                return Ok(serde_json::Value::Null);
            }
            serde_json::from_str(&text)
                .map_err(|e| self.http_error(&op, format!("answer is not JSON: {e}")))
        }
        .await;
        self.metrics.record("api", started, out.is_ok());
        out
    }

    /// A Flux query through `/api/v2/query`; returns annotated CSV.
    #[boxed]
    pub async fn query_flux(&self, flux: &str) -> Result<String, HubError> {
        let started = Instant::now();
        let out = async {
            let req = self
                .http
                .post(format!("{}/api/v2/query", self.base))
                .query(&[("org", self.settings.org.as_str())])
                .header("Content-Type", "application/vnd.flux")
                .header("Accept", "application/csv")
                .body(flux.to_string());
            let resp = self
                .auth(req)
                .send()
                .await
                .map_err(|e| self.http_error("query", self.clean_reqwest(e)))?;
            let status = resp.status();
            self.refused_login(status);
            let text = resp
                .text()
                .await
                .map_err(|e| self.http_error("query", self.clean_reqwest(e)))?;
            if !status.is_success() {
                return Err(self.http_error(
                    "query",
                    self.redactor
                        .clean(format!("HTTP {}: {}", status.as_u16(), text.trim())),
                ));
            }
            Ok(text)
        }
        .await;
        self.metrics.record("query", started, out.is_ok());
        out
    }

    /// v1 `/ping` (version from `X-Influxdb-Version`) or v2 `/health` (version from the body).
    #[boxed]
    pub async fn ping(&self) -> Result<Option<String>, HubError> {
        let started = Instant::now();
        let out = async {
            match self.settings.api {
                InfluxApi::V1 => {
                    let resp = self
                        .auth(self.http.get(format!("{}/ping", self.base)))
                        .send()
                        .await
                        .map_err(|e| self.http_error("ping", self.clean_reqwest(e)))?;
                    if !resp.status().is_success() {
                        return Err(
                            self.http_error("ping", format!("HTTP {}", resp.status().as_u16()))
                        );
                    }
                    // `/ping` answers without checking credentials; a statement does, so a
                    // wrong password shows as down here rather than at the first write.
                    if !self.current.get().username.is_empty() {
                        self.query_v1("", "SHOW DATABASES").await?;
                    }
                    Ok(resp
                        .headers()
                        .get("X-Influxdb-Version")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string))
                }
                InfluxApi::V2 => {
                    let resp = self
                        .http
                        .get(format!("{}/health", self.base))
                        .send()
                        .await
                        .map_err(|e| self.http_error("ping", self.clean_reqwest(e)))?;
                    let status = resp.status();
                    self.refused_login(status);
                    let body: serde_json::Value = resp.json().await.unwrap_or_default();
                    if !status.is_success()
                        || body.get("status").and_then(|s| s.as_str()) != Some("pass")
                    {
                        return Err(self.http_error(
                            "ping",
                            format!(
                                "HTTP {}: {}",
                                status.as_u16(),
                                body.get("message")
                                    .and_then(|m| m.as_str())
                                    .unwrap_or("not healthy")
                            ),
                        ));
                    }
                    Ok(body
                        .get("version")
                        .and_then(|v| v.as_str())
                        .map(str::to_string))
                }
            }
        }
        .await;
        self.metrics.record("ping", started, out.is_ok());
        out
    }

    /// Pings the server (and reads its version), then lists its databases (v1) or one bucket
    /// (v2) as the read, each bounded (`health.timeout`, `health.read_timeout`).
    #[boxed]
    pub async fn health(&self, settings: &HealthSettings) -> InstanceHealth {
        let read = async {
            match self.settings.api {
                // With credentials the ping listed the databases already, to check them.
                InfluxApi::V1 if !self.current.get().username.is_empty() => Ok(None),
                InfluxApi::V1 => self.query_v1("", "SHOW DATABASES").await.map(|_| None),
                InfluxApi::V2 => {
                    let limit = [("limit", "1")];
                    let buckets =
                        self.api_v2(reqwest::Method::GET, "/api/v2/buckets", &limit, None);
                    buckets.await.map(|_| None)
                }
            }
        };
        let who = (STORE, self.settings.name.as_str(), self.settings.required);
        crate::health::check(who, settings, self.ping(), ("its databases", read)).await
    }
}

impl LineSink for InfluxStore {
    fn name(&self) -> &str {
        InfluxStore::name(self)
    }

    fn batch(&self) -> &BatchSettings {
        &self.settings.batch
    }

    fn default_tags(&self) -> &[(String, String)] {
        InfluxStore::default_tags(self)
    }

    fn write_body<'a>(
        &'a self,
        target: &'a str,
        body: Bytes,
    ) -> BoxFuture<'a, Result<(), WriteFailure>> {
        Box::pin(InfluxStore::write_body(self, target, body))
    }
}
