//! Abuse limits, kept in Redis so every process shares them and a restart forgets nothing:
//! failed-login counters per account and per address; the request rates are in `rate`.

use std::time::Duration;

use tsp_config::RateSettings;
use tsp_hub::HubError;

use super::{Auth, sha256_hex};

/// Refused for now: retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// How long until a retry can pass.
    pub retry_after: Duration,
}

/// What a request is counted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateClass {
    /// GET: `limits.read`.
    Read,
    /// POST, DELETE: `limits.write`.
    Write,
}

impl Auth {
    /// The configured rate for requests of `class` per credential.
    pub fn class_rate(&self, class: RateClass) -> RateSettings {
        match class {
            RateClass::Read => self.inner.limits.read,
            RateClass::Write => self.inner.limits.write,
        }
    }

    /// The configured rate per client address.
    pub fn address_rate(&self) -> RateSettings {
        self.inner.limits.address
    }

    fn failure_keys(&self, account: &str, address: &str) -> [String; 2] {
        [
            self.key(&format!("fail:acct:{}", sha256_hex(account))),
            self.key(&format!("fail:addr:{address}")),
        ]
    }

    /// Refuses a login attempt when `account` or `address` failed too often lately.
    pub(super) async fn login_allowed(
        &self,
        account: &str,
        address: &str,
    ) -> Result<(), RateError> {
        let store = &self.inner.redis;
        let login = &self.inner.settings.login;
        let keys = self.failure_keys(account, address);
        let mut conn = store.conn().await?;
        let (counts, ttls): ((Option<u32>, Option<u32>), (i64, i64)) = redis::pipe()
            .mget(&keys)
            .cmd("PTTL")
            .arg(&keys[0])
            .cmd("PTTL")
            .arg(&keys[1])
            .query_async::<(Vec<Option<u32>>, i64, i64)>(&mut conn)
            .await
            .map(|(c, a, b)| {
                (
                    (c.first().copied().flatten(), c.get(1).copied().flatten()),
                    (a, b),
                )
            })
            .map_err(|e| store.command_error("login throttle", &e))?;
        let over = |count: Option<u32>, max: u32, ttl: i64| {
            (count.unwrap_or(0) >= max).then(|| Duration::from_millis(ttl.max(1000) as u64))
        };
        let wait = over(counts.0, login.max_failures, ttls.0)
            .into_iter()
            .chain(over(counts.1, login.max_failures_per_address, ttls.1))
            .max();
        match wait {
            Some(retry_after) => Err(RateError::Throttled(Throttled { retry_after })),
            None => Ok(()),
        }
    }

    /// Records a failed login of `account` from `address`.
    pub(super) async fn login_failed(&self, account: &str, address: &str) -> Result<(), HubError> {
        let store = &self.inner.redis;
        let window =
            i64::try_from(self.inner.settings.login.window.as_millis()).unwrap_or(i64::MAX);
        let mut conn = store.conn().await?;
        let mut pipe = redis::pipe();
        for key in self.failure_keys(account, address) {
            pipe.incr(&key, 1).ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(window).arg("NX").ignore();
        }
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| store.command_error("login throttle", &e))
    }

    /// Forgets `account`'s failures after a successful login (its address's stay).
    pub(super) async fn login_succeeded(
        &self,
        account: &str,
        address: &str,
    ) -> Result<(), HubError> {
        let store = &self.inner.redis;
        let [acct, _] = self.failure_keys(account, address);
        let mut conn = store.conn().await?;
        redis::cmd("DEL")
            .arg(acct)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| store.command_error("login throttle", &e))
    }
}

/// A limit refused the request, or the store keeping limits failed.
#[derive(Debug, thiserror::Error)]
pub enum RateError {
    /// Over the limit.
    #[error("too many requests; retry after {:?}", .0.retry_after)]
    Throttled(Throttled),
    /// Redis failed.
    #[error(transparent)]
    Store(#[from] HubError),
}
