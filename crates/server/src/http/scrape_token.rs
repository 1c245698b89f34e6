//! `server.metrics_token`: the one credential a Prometheus scraper needs, for `serve` and every
//! worker's `--listen` alike. It reads metrics and nothing else, so a scrape configuration never
//! holds an operator's key (docs/security.md#probes).

use axum::http::{HeaderMap, header};
use secrecy::{ExposeSecret, SecretString};

/// The SHA-256 of the configured token; compared as digests, so the time a comparison takes
/// says nothing of the token.
#[derive(Clone, Copy)]
pub(super) struct ScrapeToken([u8; 32]);

impl ScrapeToken {
    /// The token's digest, when one is configured.
    pub(super) fn from_config(token: Option<&SecretString>) -> Option<ScrapeToken> {
        token.map(|t| ScrapeToken(sha256(t.expose_secret().as_bytes())))
    }

    /// Whether the request presents it (`Authorization: Bearer <token>`).
    pub(super) fn presented_in(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|got| sha256(got.trim().as_bytes()) == self.0)
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
