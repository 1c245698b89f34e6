//! Admitting a request: the client address's rate limit, the credential (a session read from
//! Redis in one round trip; a key through the cache), the credential's rate limit for the
//! route class, and the user's status. The guard calls this once per authenticated request.

use async_recursion::async_recursion as boxed;
use tsp_hub::HubError;

use super::limits::{RateClass, RateError, Throttled};
use super::{Auth, Principal, accounts, keys, sessions, sha256_hex};

/// What the checks decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A live credential within its limits.
    Admitted(Principal),
    /// No such credential (unknown, expired, revoked, of an older generation, or its user is not
    /// active, or its operator no longer exists).
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
    #[boxed]
    pub async fn admit(
        &self,
        credential: &str,
        address: &str,
        class: RateClass,
    ) -> Result<Admission, HubError> {
        if let Some(t) = self.admit_address(address).await? {
            return Ok(Admission::Limited(t));
        }
        let Some(principal) = self.presented(credential).await? else {
            return Ok(Admission::Unknown);
        };
        // Per principal, not per session: a new login brings no fresh budget.
        let limit = self.key(&format!("rl:p:{}", principal.subject()));
        if let Some(t) = refused(self.rate_key(&limit, self.class_rate(class)).await)? {
            return Ok(Admission::Limited(t));
        }
        Ok(match self.as_it_stands(principal).await? {
            Some(p) => Admission::Admitted(p),
            None => Admission::Unknown,
        })
    }

    /// Whether `credential` (a session token or a key) still stands for a principal, without
    /// counting against any limit: what a long-lived stream asks every few seconds.
    #[boxed]
    pub async fn still_valid(&self, credential: &str) -> Result<bool, HubError> {
        Ok(match self.presented(credential).await? {
            Some(p) => self.as_it_stands(p).await?.is_some(),
            None => false,
        })
    }

    /// The principal a live session or key stands for.
    async fn presented(&self, credential: &str) -> Result<Option<Principal>, HubError> {
        if keys::looks_like_key(credential) {
            keys::principal(self, credential).await
        } else {
            sessions::check(self, &sha256_hex(credential)).await
        }
    }

    /// `principal` as it is now: `None` for a user who is not active or an operator who no
    /// longer exists; an operator with the role they have now, not the one they logged in with.
    async fn as_it_stands(&self, mut principal: Principal) -> Result<Option<Principal>, HubError> {
        match &mut principal {
            Principal::User { id } if !accounts::is_active(self, *id).await? => return Ok(None),
            Principal::Operator { id, role } => match accounts::operator_role(self, *id).await? {
                Some(now) => *role = now,
                None => return Ok(None),
            },
            _ => {}
        }
        Ok(Some(principal))
    }

    /// Checks only the address's limit (public routes, and first for every request).
    #[boxed]
    pub async fn admit_address(&self, address: &str) -> Result<Option<Throttled>, HubError> {
        let key = self.key(&format!("rl:a:{address}"));
        refused(self.rate_key(&key, self.address_rate()).await)
    }
}
