//! Sessions: random opaque tokens (256 bits), stored in Redis under their SHA-256 with the
//! principal, an absolute deadline and when it was last renewed. Checking one is a single
//! `HMGET` (one round trip, nothing written), and nothing is kept in process memory, so a
//! revoked session is gone for every process at once. Use renews the idle expiry
//! (`auth.session_ttl`), never past the deadline (`auth.session_max`); to keep checks
//! read-only, a renewal is written (off the request's path) only once a tenth of the TTL has
//! passed since the last, so a session idles out between 0.9 and 1 TTL after its last use.
//!
//! Every session carries the *generation* of its principal at login. Anything that changes what
//! a principal may do (a role, a password, a status, a revocation) bumps the generation, and a
//! session of an older generation is refused, in every process once the bump returns
//! (docs/security.md#revocation).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_recursion::async_recursion as boxed;
use redis::Script;

use tsp_hub::HubError;

use super::{Auth, Principal, random_token, sha256_hex};

/// A new session: the token, shown once to its holder.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Session {
    /// The bearer token.
    pub token: String,
    /// When it expires if unused (Unix ms); each use moves this on, up to the absolute cap.
    pub expires_at: i64,
}

fn session_key(auth: &Auth, token: &str) -> String {
    key_of_hash(auth, &sha256_hex(token))
}

fn key_of_hash(auth: &Auth, hash: &str) -> String {
    auth.key(&format!("s:{hash}"))
}

/// Renews a session's idle expiry, if it still exists (a logout may have just removed it).
/// KEYS[1] the session; ARGV[1] the TTL (ms), ARGV[2] now (ms).
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call("EXISTS", KEYS[1]) == 0 then return 0 end
redis.call("PEXPIRE", KEYS[1], ARGV[1])
redis.call("HSET", KEYS[1], "seen", ARGV[2])
return 1
"#,
    )
});

fn index_key(auth: &Auth, subject: &str) -> String {
    auth.key(&format!("u:{subject}"))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn generation_key(auth: &Auth, subject: &str) -> String {
    auth.key(&format!("g:{subject}"))
}

fn generation_tag(subject: &str) -> String {
    format!("generation:{subject}")
}

/// The current generation of `subject` (`user:5`), read from Redis.
pub(super) async fn read_generation(auth: &Auth, subject: &str) -> Result<u64, HubError> {
    let store = &auth.inner.redis;
    let mut conn = store.conn().await?;
    let g: Option<u64> = redis::cmd("GET")
        .arg(generation_key(auth, subject))
        .query_async(&mut conn)
        .await
        .map_err(|e| store.command_error("session generation", &e))?;
    Ok(g.unwrap_or(0))
}

/// The current generation of `subject`, held in the process level of the cache (tag
/// `generation:<subject>`) until a bump invalidates it.
async fn generation(auth: &Auth, subject: &str) -> Result<u64, HubError> {
    let (g, _) = auth
        .inner
        .cache
        .get_or_load_local(&generation_tag(subject), "g", || {
            read_generation(auth, subject)
        })
        .await?;
    Ok(g)
}

/// Starts a session for `principal`, of `generation` (read before the credential was checked,
/// so a change made meanwhile leaves it already outdated).
pub(super) async fn create(
    auth: &Auth,
    principal: &Principal,
    generation: u64,
) -> Result<Session, HubError> {
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
        .hset_multiple(
            &key,
            &[
                ("p", json),
                ("max", deadline.to_string()),
                ("seen", now.to_string()),
                ("g", generation.to_string()),
            ],
        )
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

/// A session as this process holds it (in the cache's process level, tag `session:<hash>`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct View {
    principal: String,
    deadline: i64,
    /// When it was last renewed (Unix ms). Shared by every copy of the entry, so a renewal
    /// made here is seen by the next request without reloading.
    seen: Seen,
    /// The principal's generation when the session began.
    #[serde(default)]
    generation: u64,
}

/// An `i64` shared between clones of a cached value.
#[derive(Debug, Clone, Default)]
struct Seen(Arc<AtomicI64>);

impl serde::Serialize for Seen {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0.load(Ordering::Relaxed))
    }
}

impl<'de> serde::Deserialize<'de> for Seen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Seen, D::Error> {
        let v = i64::deserialize(d)?;
        Ok(Seen(Arc::new(AtomicI64::new(v))))
    }
}

pub(super) fn tag(hash: &str) -> String {
    format!("session:{hash}")
}

async fn read(auth: &Auth, key: &str) -> Result<Option<View>, HubError> {
    let store = &auth.inner.redis;
    let mut conn = store.conn().await?;
    type Fields = (Option<String>, Option<i64>, Option<i64>, Option<u64>);
    let (principal, deadline, seen, generation): Fields = redis::cmd("HMGET")
        .arg(key)
        .arg("p")
        .arg("max")
        .arg("seen")
        .arg("g")
        .query_async(&mut conn)
        .await
        .map_err(|e| store.command_error("session check", &e))?;
    Ok(match (principal, deadline) {
        (Some(principal), Some(deadline)) => Some(View {
            principal,
            deadline,
            seen: Seen(Arc::new(AtomicI64::new(seen.unwrap_or(0)))),
            generation: generation.unwrap_or(0),
        }),
        _ => None,
    })
}

/// The principal of the live session whose token hashes to `hash`; `None` when unknown,
/// expired or revoked.
///
/// The session is read from Redis once (one `HMGET`) and then held in the process level of the
/// cache: logout, revoke-all and suspension invalidate it in every process before they return
/// (docs/security.md#sessions). A held session that looks idle for its whole TTL is read again,
/// as another process may have renewed it.
pub(super) async fn check(auth: &Auth, hash: &str) -> Result<Option<Principal>, HubError> {
    let key = key_of_hash(auth, hash);
    let loader_key = key.clone();
    let (view, _) = auth
        .inner
        .cache
        .get_or_load_local(&tag(hash), "s", || read(auth, &loader_key))
        .await?;
    let Some(view) = view else {
        return Ok(None);
    };
    let now = chrono::Utc::now().timestamp_millis();
    let ttl = ms(auth.inner.settings.session_ttl);
    if now - view.seen.0.load(Ordering::Relaxed) >= ttl {
        match read(auth, &key).await? {
            Some(fresh) if now - fresh.seen.0.load(Ordering::Relaxed) < ttl => {
                view.seen
                    .0
                    .store(fresh.seen.0.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            _ => return Ok(None),
        }
    }
    if view.deadline <= now {
        return Ok(None);
    }
    if now - view.seen.0.load(Ordering::Relaxed) > ttl / 10 {
        view.seen.0.store(now, Ordering::Relaxed);
        renew(auth, key, ttl.min(view.deadline - now), now);
    }
    // A session written by another build that this one cannot read is no session.
    let Ok(principal) = serde_json::from_str::<Principal>(&view.principal) else {
        return Ok(None);
    };
    if view.generation < generation(auth, &principal.subject()).await? {
        return Ok(None);
    }
    Ok(Some(principal))
}

/// Renews a session off the request's path.
fn renew(auth: &Auth, key: String, ttl: i64, now: i64) {
    let store = auth.inner.redis.clone();
    tokio::spawn(async move {
        let renewed = async {
            let mut conn = store.conn().await?;
            RENEW
                .key(&key)
                .arg(ttl)
                .arg(now)
                .invoke_async::<u8>(&mut conn)
                .await
                .map_err(|e| store.command_error("session renew", &e))
        };
        if let Err(e) = renewed.await {
            tracing::warn!(error = %e, "session not renewed");
        }
    });
}

/// Ends the session of `token`, in Redis and in every process's cache. Returns whether there
/// was one.
pub(super) async fn revoke(auth: &Auth, token: &str) -> Result<bool, HubError> {
    let store = &auth.inner.redis;
    let mut conn = store.conn().await?;
    let n: u64 = redis::cmd("DEL")
        .arg(session_key(auth, token))
        .query_async(&mut conn)
        .await
        .map_err(|e| store.command_error("session revoke", &e))?;
    auth.inner
        .cache
        .invalidate(&[tag(&sha256_hex(token))])
        .await?;
    Ok(n > 0)
}

/// Ends every session of `subject` (`user:5`): bumps its generation, so no session begun before
/// this call (even one whose login is still in flight) is accepted, deletes the sessions, and
/// waits until every process has dropped its copies. Returns how many were live.
pub(super) async fn revoke_all(auth: &Auth, subject: &str) -> Result<u64, HubError> {
    let store = &auth.inner.redis;
    let index = index_key(auth, subject);
    let mut conn = store.conn().await?;
    // The generation outlives every session that could carry the old one.
    redis::pipe()
        .atomic()
        .incr(generation_key(auth, subject), 1)
        .ignore()
        .pexpire(
            generation_key(auth, subject),
            ms(auth.inner.settings.session_max),
        )
        .ignore()
        .query_async::<()>(&mut conn)
        .await
        .map_err(|e| store.command_error("session generation", &e))?;
    let keys: Vec<String> = redis::cmd("SMEMBERS")
        .arg(&index)
        .query_async(&mut conn)
        .await
        .map_err(|e| store.command_error("session index", &e))?;
    let mut live = 0;
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
    let tags: Vec<String> = keys
        .iter()
        .filter_map(|k| k.rsplit_once(":s:").map(|(_, hash)| tag(hash)))
        .chain([generation_tag(subject)])
        .collect();
    auth.inner.cache.invalidate(&tags).await?;
    Ok(live)
}

impl Auth {
    /// Starts a session for `principal` at its current generation (tests and tools; a login
    /// reads the generation before it checks the password).
    #[boxed]
    pub async fn start_session(&self, principal: &Principal) -> Result<Session, HubError> {
        let generation = read_generation(self, &principal.subject()).await?;
        create(self, principal, generation).await
    }

    /// Ends the session of `token`; whether there was one.
    #[boxed]
    pub async fn end_session(&self, token: &str) -> Result<bool, HubError> {
        revoke(self, token).await
    }

    /// Ends every session of `principal`'s subject, and any login of it still in flight; how
    /// many were live.
    #[boxed]
    pub async fn end_all_sessions(&self, principal: &Principal) -> Result<u64, HubError> {
        revoke_all(self, &principal.subject()).await
    }
}
