//! Trip ids belong to their first claimant. A producer acting for users (the API) claims a
//! trip id for its user before enqueueing: another user's claim, or a trip row of another user,
//! refuses it, whatever state the other job is in (waiting, delayed, running, done or dead).
//! Jobs are also deduplicated per user and trip id, so one user's job can never swallow
//! another's submission (docs/security.md#trips).

use std::sync::LazyLock;
use std::time::Duration;

use async_recursion::async_recursion as boxed;
use redis::Script;
use tsp_hub::HubError;

use super::Trips;

/// How long a claim outlives its last submission: past the longest delay a job may ask for
/// (30 days) and its retries. After that, the trip row (if the trip completed) still decides.
pub const CLAIM_TTL: Duration = Duration::from_secs(40 * 24 * 3600);

/// KEYS[1] the claim; ARGV[1] the user, ARGV[2] the TTL (ms). 1 when the trip id is the
/// user's (now or already), 0 when another user holds it.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local holder = redis.call("GET", KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
return 1
"#,
    )
});

/// Whether a claim was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The trip id is the user's.
    Granted,
    /// Another user holds it (their claim, or their trip row).
    Taken,
}

impl Trips {
    fn claim_key(&self, trip_id: &str) -> String {
        format!(
            "{}trip-claim:{trip_id}",
            self.inner.stores.redis.key_prefix()
        )
    }

    /// The user of the trip's row, if it has one.
    async fn trip_owner(&self, trip_id: &str) -> Result<Option<u64>, HubError> {
        let dataset = &self.inner.stores.dataset;
        dataset
            .timed(
                "trip owner",
                sqlx::query_scalar("SELECT user_id FROM trips WHERE trip_id = ?")
                    .bind(trip_id)
                    .fetch_optional(dataset.pool()),
            )
            .await
    }

    /// The user a trip id belongs to: its completed row's, else its claim's (a trip posted and
    /// not completed yet). `None` for a trip id nobody posted.
    #[boxed]
    pub async fn trip_holder(&self, trip_id: &str) -> Result<Option<u64>, HubError> {
        let owner = self.trip_owner(trip_id).await?;
        if owner.is_some() {
            return Ok(owner);
        }
        let redis = &self.inner.stores.redis;
        let mut conn = redis.conn().await?;
        let held: Option<u64> = redis::cmd("GET")
            .arg(self.claim_key(trip_id))
            .query_async(&mut conn)
            .await
            .map_err(|e| redis.command_error("trip claim", &e))?;
        Ok(held)
    }

    /// Claims `trip_id` for `user_id` (see the module's documentation).
    #[boxed]
    pub async fn claim(&self, trip_id: &str, user_id: u64) -> Result<Claim, HubError> {
        let owner = self.trip_owner(trip_id).await?;
        if owner.is_some_and(|o| o != user_id) {
            return Ok(Claim::Taken);
        }
        let redis = &self.inner.stores.redis;
        let mut conn = redis.conn().await?;
        let granted: u8 = CLAIM
            .key(self.claim_key(trip_id))
            .arg(user_id)
            .arg(CLAIM_TTL.as_millis() as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| redis.command_error("trip claim", &e))?;
        Ok(if granted == 1 {
            Claim::Granted
        } else {
            Claim::Taken
        })
    }
}
