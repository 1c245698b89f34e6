//! argon2id password hashes. Hashing and checking are CPU work by design (tens of ms), so they
//! run on blocking threads, never on the async workers serving requests, and at most
//! `auth.argon2.max_concurrent` at once: each holds `auth.argon2.memory_kib`, so a thousand
//! concurrent logins wait their turn instead of allocating a thousand times that.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHash, Version};
use tokio::sync::OnceCell;
use tsp_config::Argon2Settings;

/// Hashes with the configured cost; checks any stored hash with the cost it was made with.
#[derive(Clone)]
pub(super) struct Hasher {
    params: Argon2Settings,
    /// A hash of a random password with the configured cost: checked against when there is no
    /// account, so an unknown name costs what a wrong password costs.
    decoy: Arc<OnceCell<String>>,
    /// Permits to hash: one per hash in progress.
    permits: Arc<tokio::sync::Semaphore>,
}

impl Hasher {
    pub(super) fn new(params: Argon2Settings) -> Hasher {
        Hasher {
            params,
            decoy: Arc::new(OnceCell::new()),
            permits: Arc::new(tokio::sync::Semaphore::new(
                params.max_concurrent.max(1) as usize
            )),
        }
    }

    fn argon2(params: Argon2Settings) -> Result<Argon2<'static>, String> {
        let p = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| format!("argon2 parameters: {e}"))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
    }

    /// The PHC string of `password` (`$argon2id$v=19$m=…`), with a fresh salt.
    pub(super) async fn hash(&self, password: String) -> Result<String, String> {
        let params = self.params;
        self.run_blocking(move || {
            let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
                .map_err(|e| format!("salt: {e}"))?;
            Hasher::argon2(params)?
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| format!("hashing: {e}"))
        })
        .await
    }

    /// Whether `password` matches `stored`. `None` (no account, or no password set) checks a
    /// decoy hash and answers false, taking the same time.
    pub(super) async fn verify(&self, password: String, stored: Option<String>) -> bool {
        let (stored, real) = match stored {
            Some(s) => (s, true),
            None => match self.decoy().await {
                Some(d) => (d, false),
                None => return false,
            },
        };
        let matched = self
            .run_blocking(move || {
                let Ok(parsed) = PasswordHash::new(&stored) else {
                    return Ok(false);
                };
                Ok(Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok())
            })
            .await
            .unwrap_or(false);
        matched && real
    }

    async fn decoy(&self) -> Option<String> {
        self.decoy
            .get_or_try_init(|| {
                let random: [u8; 24] = rand::random();
                self.hash(hex::encode(random))
            })
            .await
            .ok()
            .cloned()
    }

    /// Runs `f` on a blocking thread once a permit is free.
    async fn run_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let Ok(_permit) = self.permits.acquire().await else {
            return Err("password hashing is shut down".into());
        };
        match tokio::task::spawn_blocking(f).await {
            Ok(r) => r,
            Err(e) => Err(format!("password hashing task failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Hasher {
        Hasher::new(Argon2Settings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 2,
        })
    }

    #[tokio::test]
    async fn a_hash_checks_its_password_only() {
        let h = cheap();
        let stored = h.hash("correct horse".into()).await.unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
            "{stored}"
        );
        assert!(h.verify("correct horse".into(), Some(stored.clone())).await);
        assert!(!h.verify("correct horse!".into(), Some(stored)).await);
        assert!(!h.verify("anything".into(), None).await);
        assert!(!h.verify("x".into(), Some("not a hash".into())).await);
    }
}
