//! Health reports: per instance and overall.

use std::time::Duration;

use serde::Serialize;

use crate::error::HubError;

/// Up or down. Serialized as `"up"`/`"down"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Answered its check in time.
    Up,
    /// Did not answer, refused, or timed out.
    Down,
}

/// Connection pool figures, where the driver exposes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolStats {
    /// Open connections.
    pub size: u32,
    /// Open and idle.
    pub idle: u32,
    /// Open and lent out.
    pub in_use: u32,
    /// The configured maximum.
    pub max: u32,
}

/// The health of one store instance.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceHealth {
    /// `mysql`, `redis`, `mongo` or `influx`.
    pub store: &'static str,
    /// The instance's configured name.
    pub instance: String,
    /// Whether the service refuses to start (and is not ready) without it.
    pub required: bool,
    /// The outcome of the check.
    pub status: Status,
    /// Round trip of the check, in milliseconds.
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The server's version, when it says.
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The connection pool, for stores that pool.
    pub pool: Option<PoolStats>,
    /// Why it is down; secrets are removed before it gets here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The health of every instance; `status` is down when any required instance is down.
#[derive(Debug, Clone, Serialize)]
pub struct HubHealth {
    /// Up when every required instance is up.
    pub status: Status,
    /// RFC 3339 time of the check.
    pub checked_at: String,
    /// Every configured instance.
    pub instances: Vec<InstanceHealth>,
    /// What the configuration exposes that it should not (a store whose certificate is not
    /// checked, …: `tsp_config::exposure`), said on every report until it is mended.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl HubHealth {
    /// The report for these instances: up unless a required one is down.
    pub fn from_instances(instances: Vec<InstanceHealth>) -> Self {
        let status = if instances
            .iter()
            .any(|i| i.required && i.status == Status::Down)
        {
            Status::Down
        } else {
            Status::Up
        };
        HubHealth {
            status,
            checked_at: now_rfc3339(),
            instances,
            warnings: Vec::new(),
        }
    }

    /// The instance named `store.instance`, if any.
    pub fn get(&self, store: &str, instance: &str) -> Option<&InstanceHealth> {
        self.instances
            .iter()
            .find(|i| i.store == store && i.instance == instance)
    }
}

/// Runs one store's check bounded by `timeout` and reports it: up with the server's version, or
/// down with why; `latency_ms` is the whole check. Stores add their pool figures after.
pub(crate) async fn check<F>(
    store: &'static str,
    instance: &str,
    required: bool,
    timeout: Duration,
    check: F,
) -> InstanceHealth
where
    F: Future<Output = Result<Option<String>, HubError>>,
{
    let started = std::time::Instant::now();
    let (status, version, error) = match tokio::time::timeout(timeout, check).await {
        Ok(Ok(version)) => (Status::Up, version, None),
        Ok(Err(e)) => (Status::Down, None, Some(e.to_string())),
        Err(_) => (
            Status::Down,
            None,
            Some(format!("no answer within {timeout:?}")),
        ),
    };
    InstanceHealth {
        store,
        instance: instance.to_string(),
        required,
        status,
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        version,
        pool: None,
        error,
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
