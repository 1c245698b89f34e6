//! Abuse limits, kept in Redis so every process shares them and a restart forgets nothing:
//! failed-login counters per account and per address, each attempt counted before its password
//! is checked; the request rates are in `rate`.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

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

    /// Counts a login attempt of `account` from `address` as a failure *before* its password is
    /// checked, in one atomic step, or refuses it when either has failed too often lately: so
    /// N parallel guesses check at most the limit. A success gives it back
    /// ([`Auth::guess_succeeded`]).
    pub(super) async fn reserve_guess(
        &self,
        account: &str,
        address: &str,
    ) -> Result<(), RateError> {
        let store = &self.inner.redis;
        let login = &self.inner.settings.login;
        let [acct, addr] = self.failure_keys(account, address);
        let window = i64::try_from(login.window.as_millis()).unwrap_or(i64::MAX);
        let mut conn = store.conn().await?;
        let wait_ms: i64 = RESERVE
            .key(&acct)
            .key(&addr)
            .arg(login.max_failures)
            .arg(login.max_failures_per_address)
            .arg(window)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| store.command_error("login throttle", &e))?;
        if wait_ms > 0 {
            return Err(RateError::Throttled(Throttled {
                retry_after: Duration::from_millis(wait_ms.max(1000) as u64),
            }));
        }
        Ok(())
    }

    /// After a successful login: forgets `account`'s failures and gives the address back the
    /// attempt [`Auth::reserve_guess`] counted.
    pub(super) async fn guess_succeeded(
        &self,
        account: &str,
        address: &str,
    ) -> Result<(), HubError> {
        let store = &self.inner.redis;
        let [acct, addr] = self.failure_keys(account, address);
        let mut conn = store.conn().await?;
        RELEASE
            .key(&acct)
            .key(&addr)
            .invoke_async::<()>(&mut conn)
            .await
            .map_err(|e| store.command_error("login throttle", &e))
    }
}

/// KEYS: the account's and the address's failure counts; ARGV: their limits, the window (ms).
/// Returns 0 when the attempt was counted, else the ms until the fuller one empties.
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local limits = {tonumber(ARGV[1]), tonumber(ARGV[2])}
local wait = 0
for i = 1, 2 do
  if tonumber(redis.call("GET", KEYS[i]) or "0") >= limits[i] then
    local ttl = redis.call("PTTL", KEYS[i])
    if ttl < 1 then ttl = tonumber(ARGV[3]) end
    if ttl > wait then wait = ttl end
  end
end
if wait > 0 then return wait end
for i = 1, 2 do
  redis.call("INCR", KEYS[i])
  redis.call("PEXPIRE", KEYS[i], ARGV[3], "NX")
end
return 0
"#,
    )
});

/// KEYS: the account's and the address's failure counts: the first forgotten, the second one
/// attempt lower.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
redis.call("DEL", KEYS[1])
if tonumber(redis.call("GET", KEYS[2]) or "0") > 0 then redis.call("DECR", KEYS[2]) end
"#,
    )
});

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
