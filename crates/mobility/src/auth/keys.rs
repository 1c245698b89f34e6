//! API keys for machine clients: `tspk_` and 256 random bits. MySQL keeps only the key's
//! SHA-256, its scopes and whether it is revoked; the cache (tag `apikey:<hash>`) spares MySQL a
//! query per request, and revoking invalidates the tag in every process before it returns.

use async_recursion::async_recursion as boxed;
use sqlx::Row;
use tsp_hub::HubError;

use super::{Auth, AuthError, Principal, Scope, random_token, sha256_hex};

const PREFIX: &str = "tspk_";

/// A key as listed: never the key itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiKey {
    /// `portal.api_keys.id`.
    pub id: u64,
    /// What it is for.
    pub name: String,
    /// What it allows.
    pub scopes: Vec<Scope>,
    /// When it was made (RFC 3339, UTC).
    pub created_at: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

/// A key just made: the only time the key is shown.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewApiKey {
    /// Its id.
    pub id: u64,
    /// The key.
    pub key: String,
}

pub(super) fn looks_like_key(credential: &str) -> bool {
    credential.starts_with(PREFIX)
}

fn tag(hash: &str) -> String {
    format!("apikey:{hash}")
}

fn scopes_of(text: &str) -> Vec<Scope> {
    text.split(',').filter_map(Scope::parse).collect()
}

/// The principal of `key`, if it exists and is not revoked.
pub(super) async fn principal(auth: &Auth, key: &str) -> Result<Option<Principal>, HubError> {
    let hash = sha256_hex(key);
    let portal = auth.inner.portal.clone();
    let lookup = hash.clone();
    let (found, _) = auth
        .inner
        .cache
        .get_or_load(&tag(&hash), "k", || async move {
            let row = portal
                .timed(
                    "api key",
                    sqlx::query(
                        "SELECT id, scopes FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
                    )
                    .bind(&lookup)
                    .fetch_optional(portal.pool()),
                )
                .await?;
            Ok::<_, HubError>(row.map(|r| (r.get::<u64, _>(0), r.get::<String, _>(1))))
        })
        .await?;
    Ok(found.map(|(id, scopes)| Principal::Key {
        id,
        scopes: scopes_of(&scopes),
    }))
}

impl Auth {
    /// Makes a key named `name` with `scopes`; the key is in the answer and nowhere else.
    #[boxed]
    pub async fn create_key(&self, name: &str, scopes: &[Scope]) -> Result<NewApiKey, AuthError> {
        if name.trim().is_empty() || name.len() > 120 {
            return Err(AuthError::Invalid {
                field: "name",
                message: "1-120 characters".into(),
            });
        }
        if scopes.is_empty() {
            return Err(AuthError::Invalid {
                field: "scope",
                message: "at least one scope".into(),
            });
        }
        let key = format!("{PREFIX}{}", random_token());
        let mut names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let portal = &self.inner.portal;
        let done = portal
            .timed(
                "api key create",
                sqlx::query("INSERT INTO api_keys (name, key_hash, scopes) VALUES (?, ?, ?)")
                    .bind(name.trim())
                    .bind(sha256_hex(&key))
                    .bind(names.join(","))
                    .execute(portal.pool()),
            )
            .await?;
        Ok(NewApiKey {
            id: done.last_insert_id(),
            key,
        })
    }

    /// Every key, newest first, without the keys themselves.
    #[boxed]
    pub async fn list_keys(&self) -> Result<Vec<ApiKey>, AuthError> {
        let portal = &self.inner.portal;
        let rows = portal
            .timed(
                "api key list",
                sqlx::query(
                    "SELECT id, name, scopes, created_at, revoked_at FROM api_keys ORDER BY id DESC",
                )
                .fetch_all(portal.pool()),
            )
            .await?;
        let time = |t: chrono::NaiveDateTime| t.and_utc().to_rfc3339();
        Ok(rows
            .iter()
            .map(|r| ApiKey {
                id: r.get(0),
                name: r.get(1),
                scopes: scopes_of(&r.get::<String, _>(2)),
                created_at: time(r.get(3)),
                revoked_at: r.get::<Option<chrono::NaiveDateTime>, _>(4).map(time),
            })
            .collect())
    }

    /// Revokes key `id`: from when this returns, no process accepts it.
    #[boxed]
    pub async fn revoke_key(&self, id: u64) -> Result<(), AuthError> {
        let portal = &self.inner.portal;
        let hash: Option<String> = portal
            .timed(
                "api key revoke",
                sqlx::query_scalar("SELECT key_hash FROM api_keys WHERE id = ?")
                    .bind(id)
                    .fetch_optional(portal.pool()),
            )
            .await?;
        let Some(hash) = hash else {
            return Err(AuthError::NotFound(format!("api key {id}")));
        };
        portal
            .timed(
                "api key revoke",
                sqlx::query(
                    "UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP(3) \
                     WHERE id = ? AND revoked_at IS NULL",
                )
                .bind(id)
                .execute(portal.pool()),
            )
            .await?;
        self.inner.cache.invalidate(&[tag(&hash)]).await?;
        Ok(())
    }
}
