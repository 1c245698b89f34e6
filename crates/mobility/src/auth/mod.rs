//! Who is calling: users, operators and service keys; their sessions in Redis; login throttling
//! and request rate limits. The HTTP layer decides what each principal may do
//! (docs/security.md); this module proves who it is.
//!
//! - `principal`: [`Principal`], [`Role`], [`Scope`].
//! - `password`: argon2id hashing, on blocking threads.
//! - `sessions`: opaque tokens, stored in Redis under their hash, sliding expiry, revocation.
//! - `keys`: API keys, stored in MySQL as hashes, looked up through the cache.
//! - `accounts`: creating users and operators, passwords, suspension, login.
//! - `limits`: failed-login throttles; `rate`: the request rate limits (GCRA in Redis).
//! - `admission`: a request's limits and credential, checked in one Redis round trip.

mod accounts;
mod admission;
mod keys;
mod limits;
mod password;
mod principal;
mod rate;
mod sessions;

use std::sync::Arc;

use tsp_config::{AuthSettings, LimitSettings};
use tsp_hub::{Cache, HubError, MysqlStore, RedisStore};

use crate::stores::AuthStores;

pub use accounts::{Login, LoginError, NewUser};
pub use admission::Admission;
pub use keys::{ApiKey, NewApiKey};
pub use limits::{RateClass, RateError, Throttled};
pub use principal::{Principal, Role, Scope};
pub use sessions::Session;

use password::Hasher;

/// Errors of account administration (CLI) and of credential checks.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Input refused, naming the field.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// No such user, operator or key.
    #[error("{0} not found")]
    NotFound(String),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] HubError),
}

/// The credential side of the service: one per process, cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    portal: MysqlStore,
    redis: RedisStore,
    cache: Cache,
    settings: AuthSettings,
    limits: LimitSettings,
    hasher: Hasher,
    reservations: rate::Reservations,
}

impl Auth {
    /// Credentials on `stores`, with `cache` holding user status and API keys between
    /// requests.
    pub fn new(
        stores: AuthStores,
        settings: AuthSettings,
        limits: LimitSettings,
        cache: Cache,
    ) -> Auth {
        Auth {
            inner: Arc::new(Inner {
                portal: stores.portal,
                redis: stores.redis,
                cache,
                hasher: Hasher::new(settings.argon2),
                settings,
                limits,
                reservations: rate::Reservations::default(),
            }),
        }
    }

    /// The `auth.*` settings.
    pub fn settings(&self) -> &AuthSettings {
        &self.inner.settings
    }

    /// A key of the auth data. All share the `{auth}` hash tag, so one script can check a
    /// request's session and limits together on a Redis Cluster too (one slot holds them).
    fn key(&self, rest: &str) -> String {
        format!("{}{{auth}}:{rest}", self.inner.redis.key_prefix())
    }
}

/// The SHA-256 of `text`, hex: how tokens and keys are stored (they carry 256 random bits, so
/// a fast hash is enough; passwords get argon2id).
fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// 32 random bytes, base64url without padding.
fn random_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
