//! The hub's error type, and the redaction that keeps secrets out of every message.

use std::sync::Arc;
use std::time::Duration;

/// An error from a store, already stripped of secrets.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    #[error("{store}.{instance} is not configured")]
    UnknownInstance {
        store: &'static str,
        instance: String,
    },
    #[error("{store}.{instance}: {op} timed out after {after:?}")]
    Timeout {
        store: &'static str,
        instance: String,
        op: String,
        after: Duration,
    },
    #[error("{store}.{instance}: {op} failed: {message}")]
    Store {
        store: &'static str,
        instance: String,
        op: String,
        message: String,
    },
    #[error("{store}.{instance}: invalid settings: {message}")]
    Settings {
        store: &'static str,
        instance: String,
        message: String,
    },
    #[error("required stores are down: {0}")]
    RequiredDown(String),
    /// Instances a component needs that the configuration does not have: found at start-up,
    /// when the component resolves its stores, never mid-job.
    #[error("{component} needs {missing}, which the configuration does not define")]
    MissingInstances {
        component: &'static str,
        /// `kind.instance`, comma-separated.
        missing: String,
    },
}

/// What kind of failure a [`HubError`] is: what a caller steers on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The configuration is wrong or lacks something: retrying cannot help.
    Config,
    /// An operation did not answer in time: the store may be slow or gone.
    Timeout,
    /// The store refused or failed an operation, or could not be reached.
    Store,
    /// Required stores are down (start-up, readiness).
    Down,
}

impl HubError {
    /// The kind of failure, for callers that decide whether to retry.
    pub fn kind(&self) -> ErrorKind {
        match self {
            HubError::UnknownInstance { .. }
            | HubError::Settings { .. }
            | HubError::MissingInstances { .. } => ErrorKind::Config,
            HubError::Timeout { .. } => ErrorKind::Timeout,
            HubError::Store { .. } => ErrorKind::Store,
            HubError::RequiredDown(_) => ErrorKind::Down,
        }
    }
}

/// Replaces every configured secret in a message with `****`.
///
/// Drivers sometimes echo what they were given (a URL, a connection string); rather than trust
/// each one, every message that leaves the hub passes through here.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Arc<Vec<String>>,
}

impl Redactor {
    pub fn new(mut secrets: Vec<String>) -> Self {
        // Longest first, so a secret containing another is replaced whole. Very short values
        // would mangle ordinary words, and are not worth protecting this way.
        secrets.retain(|s| s.len() >= 3);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor {
            secrets: Arc::new(secrets),
        }
    }

    pub fn clean(&self, message: impl Into<String>) -> String {
        let mut m = message.into();
        for s in self.secrets.iter() {
            if m.contains(s.as_str()) {
                m = m.replace(s.as_str(), tsp_config::MASK);
            }
            let encoded: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
            if encoded != *s && m.contains(&encoded) {
                m = m.replace(&encoded, tsp_config::MASK);
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_plain_and_encoded() {
        let r = Redactor::new(vec!["p@ss word".into(), "x".into()]);
        assert_eq!(r.clean("auth p@ss word failed"), "auth **** failed");
        assert_eq!(
            r.clean("url redis://u:p%40ss+word@h"),
            "url redis://u:****@h"
        );
        assert_eq!(r.clean("x marks"), "x marks");
    }
}
