//! Who is looking at a console page, and from where (request extensions the session guard
//! sets).

use std::net::IpAddr;

use sha2::{Digest, Sha256};
use tsp_mobility::auth::Principal;

/// The client's address (`Extension<Address>` in handlers).
#[derive(Debug, Clone, Copy)]
pub(super) struct Address(pub(super) IpAddr);

/// Who is looking at the console (`Extension<Viewer>` in handlers).
#[derive(Debug, Clone)]
pub(super) struct Viewer {
    pub(super) principal: Principal,
    /// The token every form of this session must carry.
    pub(super) csrf: String,
    /// The session token itself (logout ends it).
    pub(super) token: String,
}

impl Viewer {
    /// Whether the role may act (operator, admin), not only read (viewer).
    pub(super) fn may_act(&self) -> bool {
        self.principal.is_operator()
    }

    /// The role's name, for the page header.
    pub(super) fn role(&self) -> &'static str {
        match &self.principal {
            Principal::Operator { role, .. } => role.as_str(),
            _ => "key",
        }
    }
}

/// The CSRF token of a session: a keyed digest of its token, so it proves the form came from a
/// page of this session without storing anything, and reveals nothing of the token.
pub(super) fn csrf_of(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"tsp-console-csrf\0");
    h.update(token.as_bytes());
    hex::encode(h.finalize())
}
