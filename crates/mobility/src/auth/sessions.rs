//! Sessions: random opaque tokens (256 bits), stored in Redis under their SHA-256 with the
//! principal and an absolute deadline. Each use renews the idle expiry (`auth.session_ttl`) up
//! to the deadline (`auth.session_max`), in one script: one round trip per request, and a
//! revoked session is gone for every process at once (nothing is kept in process memory).

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use tsp_hub::HubError;

use super::{Auth, Principal, random_token, sha256_hex};

/// A new session: the token, shown once to its holder.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Session {
    /// The bearer token.
    pub token: String,
    /// When it expires if unused (Unix ms); each use moves this on, up to the absolute cap.
    pub expires_at: i64,
}

/// Reads a session and renews its idle expiry, never past its deadline.
/// KEYS[1] the session; ARGV[1] the idle TTL (ms). Returns the principal JSON or false.
static CHECK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local v = redis.call("HMGET", KEYS[1], "p", "max")
if not v[1] then return false end
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local left = tonumber(v[2]) - now
if left <= 0 then
  redis.call("DEL", KEYS[1])
  return false
end
local ttl = tonumber(ARGV[1])
if left < ttl then ttl = left end
redis.call("PEXPIRE", KEYS[1], ttl)
return v[1]
"#,
    )
});

fn session_key(auth: &Auth, token: &str) -> String {
    auth.key(&format!("s:{}", sha256_hex(token)))
}

fn index_key(auth: &Auth, subject: &str) -> String {
    auth.key(&format!("u:{subject}"))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Starts a session for `principal`.
pub(super) async fn create(auth: &Auth, principal: &Principal) -> Result<Session, HubError> {
    let token = random_token();
    let key = session_key(auth, &token);
    let now = chrono::Utc::now().timestamp_millis();
    let s = &auth.inner.settings;
    let deadline = now + ms(s.session_max);
    let json = serde_json::to_string(principal).unwrap_or_default();
    let store = &auth.inner.redis;
    let index = index_key(auth, &principal.subject());
    let mut conn = store.conn().await?;
    redis::pipe()
        .atomic()
        .hset_multiple(&key, &[("p", json), ("max", deadline.to_string())])
        .ignore()
        .pexpire(&key, ms(s.session_ttl))
        .ignore()
        .sadd(&index, &key)
        .ignore()
        .pexpire(&index, ms(s.session_max))
        .ignore()
        .query_async::<()>(&mut conn)
        .await
        .map_err(|e| store.command_error("session create", &e))?;
    Ok(Session {
        token,
        expires_at: (now + ms(s.session_ttl)).min(deadline),
    })
}

/// The principal of a live session, renewing it; `None` when unknown, expired or revoked.
pub(super) async fn check(auth: &Auth, token: &str) -> Result<Option<Principal>, HubError> {
    let store = &auth.inner.redis;
    let mut conn = store.conn().await?;
    let found: Option<String> = CHECK
        .key(session_key(auth, token))
        .arg(ms(auth.inner.settings.session_ttl))
        .invoke_async(&mut conn)
        .await
        .map_err(|e| store.command_error("session check", &e))?;
    // A session written by another build that this one cannot read is no session.
    Ok(found.and_then(|j| serde_json::from_str(&j).ok()))
}

/// Ends the session of `token`. Returns whether there was one.
pub(super) async fn revoke(auth: &Auth, token: &str) -> Result<bool, HubError> {
    let store = &auth.inner.redis;
    let mut conn = store.conn().await?;
    let n: u64 = redis::cmd("DEL")
        .arg(session_key(auth, token))
        .query_async(&mut conn)
        .await
        .map_err(|e| store.command_error("session revoke", &e))?;
    Ok(n > 0)
}

/// Ends every session of `subject` (`user:5`). Returns how many were live.
pub(super) async fn revoke_all(auth: &Auth, subject: &str) -> Result<u64, HubError> {
    let store = &auth.inner.redis;
    let index = index_key(auth, subject);
    let mut conn = store.conn().await?;
    let keys: Vec<String> = redis::cmd("SMEMBERS")
        .arg(&index)
        .query_async(&mut conn)
        .await
        .map_err(|e| store.command_error("session index", &e))?;
    let mut live = 0;
    // One key per command: sessions hash to different slots on a cluster.
    for key in &keys {
        let n: u64 = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(|e| store.command_error("session revoke", &e))?;
        live += n;
    }
    let _: u64 = redis::cmd("DEL")
        .arg(&index)
        .query_async(&mut conn)
        .await
        .map_err(|e| store.command_error("session index", &e))?;
    Ok(live)
}

impl Auth {
    /// Starts a session for `principal` (after a successful login).
    pub async fn start_session(&self, principal: &Principal) -> Result<Session, HubError> {
        create(self, principal).await
    }

    /// Ends the session of `token`; whether there was one.
    pub async fn end_session(&self, token: &str) -> Result<bool, HubError> {
        revoke(self, token).await
    }

    /// Ends every session of `principal`'s subject; how many were live.
    pub async fn end_all_sessions(&self, principal: &Principal) -> Result<u64, HubError> {
        revoke_all(self, &principal.subject()).await
    }
}
