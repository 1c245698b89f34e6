//! Admitting a request: the client address's rate limit, the credential (a session read from
//! Redis in one round trip; a key through the cache), the credential's rate limit for the
//! route class, and the user's status. The guard calls this once per authenticated request.

use tsp_hub::HubError;

use super::limits::{RateClass, RateError, Throttled};
use super::{Auth, Principal, accounts, keys, sessions, sha256_hex};

/// What the checks decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A live credential within its limits.
    Admitted(Principal),
    /// No such credential (unknown, expired, revoked, or its user is not active).
    Unknown,
    /// Over a limit (the address's or the credential's).
    Limited(Throttled),
}

/// `Some` when the limit refused; a store failure is an error.
fn refused(r: Result<(), RateError>) -> Result<Option<Throttled>, HubError> {
    match r {
        Ok(()) => Ok(None),
        Err(RateError::Throttled(t)) => Ok(Some(t)),
        Err(RateError::Store(e)) => Err(e),
    }
}

impl Auth {
    /// Checks a request from `address` presenting `credential` for a route of `class`.
    pub async fn admit(
        &self,
        credential: &str,
        address: &str,
        class: RateClass,
    ) -> Result<Admission, HubError> {
        if let Some(t) = self.admit_address(address).await? {
            return Ok(Admission::Limited(t));
        }
        let hash = sha256_hex(credential);
        let found = if keys::looks_like_key(credential) {
            keys::principal(self, credential).await?
        } else {
            sessions::check(self, &hash).await?
        };
        let Some(principal) = found else {
            return Ok(Admission::Unknown);
        };
        let limit = self.key(&format!("rl:c:{hash}"));
        if let Some(t) = refused(self.rate_key(&limit, self.class_rate(class)).await)? {
            return Ok(Admission::Limited(t));
        }
        if let Principal::User { id } = principal
            && !accounts::is_active(self, id).await?
        {
            return Ok(Admission::Unknown);
        }
        Ok(Admission::Admitted(principal))
    }

    /// Checks only the address's limit (public routes, and first for every request).
    pub async fn admit_address(&self, address: &str) -> Result<Option<Throttled>, HubError> {
        let key = self.key(&format!("rl:a:{address}"));
        refused(self.rate_key(&key, self.address_rate()).await)
    }
}
