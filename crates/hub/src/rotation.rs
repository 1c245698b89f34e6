//! Credential rotation without a restart (docs/store-security.md#rotation): new credentials are
//! tried on a fresh connection first and only then replace the old ones, so a rejected secret
//! leaves the service running on the credentials it has.

use std::sync::Arc;
use std::time::Duration;

use async_recursion::async_recursion as boxed;
use tokio::sync::Notify;
use tsp_config::Config;

use crate::{Hub, HubError, secrets_of};

/// Raised by a store when a server refuses the credentials in use (its password changed): the
/// process's reloader then looks at the secrets at once instead of at its next poll. Shared by
/// every store of a hub; a burst of refusals is one wake-up.
#[derive(Clone, Default)]
pub(crate) struct AuthAlarm(Arc<Notify>);

impl AuthAlarm {
    pub(crate) fn raise(&self) {
        self.0.notify_one();
    }
}

/// What a reload did for one instance.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Rotation {
    /// `mysql`, `redis`, `mongo` or `influx`.
    pub store: &'static str,
    /// The instance's name.
    pub instance: String,
    /// What happened.
    pub outcome: RotationOutcome,
    /// Why new credentials were refused (secret-free).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The outcome of one instance's reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RotationOutcome {
    /// The credentials are the ones in use.
    Unchanged,
    /// New credentials worked and replaced the old ones.
    Replaced,
    /// New credentials failed; the old ones stay in use.
    Refused,
}

impl Rotation {
    fn of(store: &'static str, instance: &str, r: Result<bool, HubError>) -> Rotation {
        let (outcome, error) = match r {
            Ok(false) => (RotationOutcome::Unchanged, None),
            Ok(true) => (RotationOutcome::Replaced, None),
            Err(e) => (RotationOutcome::Refused, Some(e.to_string())),
        };
        let label = match outcome {
            RotationOutcome::Unchanged => "unchanged",
            RotationOutcome::Replaced => "replaced",
            RotationOutcome::Refused => "refused",
        };
        metrics::counter!(crate::metrics::names::ROTATIONS, "store" => store, "store_instance" => instance.to_string(), "outcome" => label)
            .increment(1);
        Rotation {
            store,
            instance: instance.to_string(),
            outcome,
            error,
        }
    }
}

/// `check` (a connection with new credentials) bounded by `timeout`.
pub(crate) async fn tried<T>(
    store: &'static str,
    instance: &str,
    timeout: Duration,
    check: impl Future<Output = Result<T, HubError>>,
) -> Result<T, HubError> {
    tokio::time::timeout(timeout, check)
        .await
        .unwrap_or_else(|_| {
            Err(HubError::Timeout {
                store,
                instance: instance.to_string(),
                op: "connect".into(),
                after: timeout,
            })
        })
}

impl Hub {
    /// Takes the credentials of `new` (a freshly loaded configuration) for every instance whose
    /// credentials differ, each after a connection with them succeeds within `timeout`. Other
    /// settings in `new` are not applied: they need a restart. Instances in `new` that the hub
    /// does not have are ignored.
    #[boxed]
    pub async fn rotate_credentials(&self, new: &Config, timeout: Duration) -> Vec<Rotation> {
        // Known before any message could carry them.
        self.inner.redactor.learn(secrets_of(new));
        let mut out = Vec::new();
        for (name, store) in &self.inner.mysql {
            if let Some(s) = new.mysql.get(name) {
                out.push(Rotation::of("mysql", name, store.rotate(s, timeout).await));
            }
        }
        for (name, store) in &self.inner.redis {
            if let Some(s) = new.redis.get(name) {
                out.push(Rotation::of("redis", name, store.rotate(s, timeout).await));
            }
        }
        for (name, store) in &self.inner.mongo {
            if let Some(s) = new.mongo.get(name) {
                out.push(Rotation::of("mongo", name, store.rotate(s, timeout).await));
            }
        }
        for (name, store) in &self.inner.influx {
            if let Some(s) = new.influx.get(name) {
                out.push(Rotation::of("influx", name, store.rotate(s, timeout).await));
            }
        }
        self.inner
            .current
            .set(with_credentials(&self.inner.current.get(), new, &out));
        out
    }

    /// Resolves when a store has seen its credentials refused since the last call (see
    /// `tsp_server::reload`): the moment to look for new ones.
    #[boxed]
    pub async fn credentials_refused(&self) {
        self.inner.alarm.0.notified().await;
    }

    /// The configuration with the credentials in use now: what the hub was built with, with
    /// every accepted rotation applied. Migrator accounts ([`Config::as_migrator`]) come from
    /// here, so a backup after a rotation uses the new ones.
    pub fn current_config(&self) -> Arc<Config> {
        self.inner.current.get()
    }
}

/// `current` with the app credentials of every replaced instance, and every migrator account,
/// taken from `new`. (Migrator accounts are tried when used: a migration, a backup.)
fn with_credentials(current: &Config, new: &Config, done: &[Rotation]) -> Config {
    let mut c = current.clone();
    let replaced = |store: &str, name: &str| {
        done.iter().any(|r| {
            r.store == store && r.instance == name && r.outcome == RotationOutcome::Replaced
        })
    };
    for (name, s) in c.mysql.iter_mut() {
        if let Some(n) = new.mysql.get(name) {
            s.migrate = n.migrate.clone();
            if replaced("mysql", name) {
                (s.user, s.password, s.url) = (n.user.clone(), n.password.clone(), n.url.clone());
            }
        }
    }
    for (name, s) in c.redis.iter_mut() {
        if let Some(n) = new.redis.get(name) {
            s.migrate = n.migrate.clone();
            if replaced("redis", name) {
                (s.username, s.password, s.url) =
                    (n.username.clone(), n.password.clone(), n.url.clone());
            }
        }
    }
    for (name, s) in c.mongo.iter_mut() {
        if let Some(n) = new.mongo.get(name) {
            s.migrate = n.migrate.clone();
            if replaced("mongo", name) {
                (s.username, s.password, s.uri) =
                    (n.username.clone(), n.password.clone(), n.uri.clone());
            }
        }
    }
    for (name, s) in c.influx.iter_mut() {
        if let Some(n) = new.influx.get(name) {
            s.migrate = n.migrate.clone();
            if replaced("influx", name) {
                (s.username, s.password, s.token) =
                    (n.username.clone(), n.password.clone(), n.token.clone());
            }
        }
    }
    c
}
