//! Request rate limits shared by every process: GCRA in Redis (one key per subject holding its
//! "theoretical arrival time"), taken in chunks.
//!
//! A process that needs a token for a subject reserves several at once from Redis (the GCRA
//! with a cost) and hands them out locally until they run out or go stale (one second). A
//! reserved token is counted in Redis, so no process can admit more than the shared limit; the
//! price is that tokens one process reserved and did not use are lost to the others, which can
//! only refuse early, by at most a chunk per process. Chunks are sized to the limit: one token
//! (exact, a Redis call per request) for small limits, up to 50 ms of the rate for large ones,
//! so a hot credential or address costs Redis a call per chunk, not per request.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use redis::Script;
use tsp_config::RateSettings;

use super::Auth;
use super::limits::{RateError, Throttled};

/// GCRA with a cost. KEYS[1] the subject; ARGV: interval (µs), burst, cost.
/// Returns 0 when the cost was taken, else the µs until it could be.
static GCRA: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call("GET", KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * tonumber(ARGV[3])
local allow_at = new_tat - burst * interval
if allow_at > now then return allow_at - now end
redis.call("SET", KEYS[1], new_tat, "PX", math.ceil((new_tat - now) / 1000) + 1)
return 0
"#,
    )
});

/// Reserved tokens are dropped after this long unused.
const STALE: Duration = Duration::from_secs(1);
/// Beyond this many subjects held, stale ones are swept before another is added.
const SWEEP_AT: usize = 10_000;

struct Reserved {
    tokens: u32,
    until: Instant,
}

/// Tokens this process reserved, by limiter key.
#[derive(Default)]
pub(super) struct Reservations {
    held: Mutex<HashMap<String, Reserved>>,
}

impl Reservations {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Reserved>> {
        match self.held.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Takes a token already reserved for `key`, if there is one.
    fn take_local(&self, key: &str) -> bool {
        let mut held = self.held();
        match held.get_mut(key) {
            Some(r) if r.tokens > 0 && r.until > Instant::now() => {
                r.tokens -= 1;
                true
            }
            _ => false,
        }
    }

    fn keep(&self, key: &str, tokens: u32) {
        let mut held = self.held();
        if held.len() >= SWEEP_AT {
            let now = Instant::now();
            held.retain(|_, r| r.tokens > 0 && r.until > now);
        }
        held.insert(
            key.to_string(),
            Reserved {
                tokens,
                until: Instant::now() + STALE,
            },
        );
    }
}

/// How many tokens to reserve at once for `rate`: 50 ms of it, at most a quarter of the burst,
/// at least one.
fn chunk(rate: RateSettings) -> u32 {
    (rate.per_second / 20).min(rate.burst / 4).clamp(1, 256)
}

impl Auth {
    /// Counts one request against the shared limiter at `key`.
    pub(super) async fn rate_key(&self, key: &str, rate: RateSettings) -> Result<(), RateError> {
        let reservations = &self.inner.reservations;
        if reservations.take_local(key) {
            return Ok(());
        }
        let n = chunk(rate);
        match self.reserve(key, rate, n).await? {
            None => {
                reservations.keep(key, n - 1);
                Ok(())
            }
            // Near the limit a whole chunk may not fit where one token does.
            Some(_) if n > 1 => match self.reserve(key, rate, 1).await? {
                None => Ok(()),
                Some(t) => Err(RateError::Throttled(t)),
            },
            Some(t) => Err(RateError::Throttled(t)),
        }
    }

    /// Takes `cost` tokens in Redis; `Some` when they do not fit now.
    async fn reserve(
        &self,
        key: &str,
        rate: RateSettings,
        cost: u32,
    ) -> Result<Option<Throttled>, RateError> {
        let store = &self.inner.redis;
        let interval_us = (1_000_000 / u64::from(rate.per_second.max(1))).max(1);
        let mut conn = store.conn().await?;
        let wait_us: u64 = GCRA
            .key(key)
            .arg(interval_us)
            .arg(rate.burst.max(1))
            .arg(cost)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| store.command_error("rate limit", &e))?;
        Ok((wait_us > 0).then(|| Throttled {
            retry_after: Duration::from_micros(wait_us),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_exact_for_small_limits_and_bounded_for_large_ones() {
        let rate = |per_second, burst| RateSettings { per_second, burst };
        assert_eq!(chunk(rate(1, 4)), 1);
        assert_eq!(chunk(rate(200, 400)), 10);
        assert_eq!(chunk(rate(1_000, 2_000)), 50);
        assert_eq!(chunk(rate(10_000_000, 10_000_000)), 256);
        assert_eq!(chunk(rate(1_000, 8)), 2);
    }
}
