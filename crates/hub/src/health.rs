//! Health reports: per instance and overall.

use serde::Serialize;

use tsp_config::HealthSettings;

use crate::error::HubError;

/// Up, degraded or down. Serialized as `"up"`, `"degraded"`, `"down"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Answered its ping and a real read in time.
    Up,
    /// Answered its ping but not a real read: a wedged server (docs/operations.md#health).
    Degraded,
    /// Did not answer, refused, or timed out.
    Down,
}

impl Status {
    /// Lower case, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "up",
            Status::Degraded => "degraded",
            Status::Down => "down",
        }
    }
}

/// Connection pool figures, where the driver exposes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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

/// The health of every instance; `status` is down when any required instance is down, else
/// degraded when any required instance is.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HubHealth {
    /// Up when every required instance is up; else the worst of theirs.
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
    /// The report for these instances: up unless a required one is down or degraded.
    pub fn from_instances(instances: Vec<InstanceHealth>) -> Self {
        let required = |s: Status| instances.iter().any(|i| i.required && i.status == s);
        let status = if required(Status::Down) {
            Status::Down
        } else if required(Status::Degraded) {
            Status::Degraded
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

    /// `store.instance` of each required instance that is not up, with why.
    pub fn required_failing(&self) -> Vec<String> {
        self.instances
            .iter()
            .filter(|i| i.required && i.status != Status::Up)
            .map(|i| {
                let why = i.error.as_deref().unwrap_or(i.status.as_str());
                format!("{}.{} ({why})", i.store, i.instance)
            })
            .collect()
    }

    /// The instance named `store.instance`, if any.
    pub fn get(&self, store: &str, instance: &str) -> Option<&InstanceHealth> {
        self.instances
            .iter()
            .find(|i| i.store == store && i.instance == instance)
    }
}

/// Runs one store's check: `ping` bounded by `settings.timeout`, then, when it answered, `read`
/// (a cheap query of real data, `what` names it) bounded by `settings.read_timeout`. Up with the
/// server's version (from the ping, or the read where only it says); down when the ping fails; degraded when the ping answers but the read does
/// not, which is how a wedged server looks (docs/operations.md#health). `latency_ms` is the
/// whole check. Stores add their pool figures after.
pub(crate) async fn check<P, R>(
    (store, instance, required): (&'static str, &str, bool),
    settings: &HealthSettings,
    ping: P,
    (what, read): (&str, R),
) -> InstanceHealth
where
    P: Future<Output = Result<Option<String>, HubError>>,
    R: Future<Output = Result<Option<String>, HubError>>,
{
    let started = std::time::Instant::now();
    let (status, version, error) = match tokio::time::timeout(settings.timeout, ping).await {
        Ok(Ok(version)) => match tokio::time::timeout(settings.read_timeout, read).await {
            Ok(Ok(read_version)) => (Status::Up, read_version.or(version), None),
            Ok(Err(e)) => (
                Status::Degraded,
                version,
                Some(format!("answers a ping, but a read of {what} failed: {e}")),
            ),
            Err(_) => (
                Status::Degraded,
                version,
                Some(format!(
                    "answers a ping, but a read of {what} got no answer within {:?}",
                    settings.read_timeout
                )),
            ),
        },
        Ok(Err(e)) => (Status::Down, None, Some(e.to_string())),
        Err(_) => (
            Status::Down,
            None,
            Some(format!("no answer within {:?}", settings.timeout)),
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
