//! The hub's error type, and the redaction that keeps secrets out of every message.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// An error from a store, already stripped of secrets.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    #[error("{store}.{instance} is not configured")]
    /// An instance the configuration does not define.
    UnknownInstance {
        /// `mysql`, `redis`, `mongo` or `influx`.
        store: &'static str,
        /// The instance's configured name.
        instance: String,
    },
    #[error("{store}.{instance}: {op} timed out after {after:?}")]
    /// An operation that did not answer within its bound.
    Timeout {
        /// `mysql`, `redis`, `mongo` or `influx`.
        store: &'static str,
        /// The instance's configured name.
        instance: String,
        /// What was attempted (`connect`, `insert_many`, …).
        op: String,
        /// The bound it exceeded.
        after: Duration,
    },
    /// `message` is the redacted text of `cause` when there is one, so a report that prints
    /// only this error still says what went wrong (chain printers skip the repeat).
    #[error("{store}.{instance}: {op} failed: {message}")]
    Store {
        /// `mysql`, `redis`, `mongo` or `influx`.
        store: &'static str,
        /// The instance's configured name.
        instance: String,
        /// What was attempted (`connect`, `insert_many`, …).
        op: String,
        /// What went wrong, secret-free.
        message: String,
        #[source]
        /// The driver error, when there is one.
        cause: Option<Cause>,
    },
    #[error("{store}.{instance}: invalid settings: {message}")]
    /// Settings the driver refuses (a malformed URL, an unreadable certificate).
    Settings {
        /// `mysql`, `redis`, `mongo` or `influx`.
        store: &'static str,
        /// The instance's configured name.
        instance: String,
        /// What is wrong, secret-free.
        message: String,
    },
    #[error("required stores are down: {0}")]
    /// Required instances that failed their health check (`kind.instance`, comma-separated).
    RequiredDown(String),
    /// Instances a component needs that the configuration does not have: found at start-up,
    /// when the component resolves its stores, never mid-job.
    #[error("{component} needs {missing}, which the configuration does not define")]
    MissingInstances {
        /// The component that asked (`trips`, `queue`, …).
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
    /// A store failure without a driver error behind it (a check that did not hold, a refusal).
    pub fn store(
        store: &'static str,
        instance: impl Into<String>,
        op: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        HubError::Store {
            store,
            instance: instance.into(),
            op: op.into(),
            message: message.into(),
            cause: None,
        }
    }

    /// The driver error behind a store failure, if any.
    pub fn cause(&self) -> Option<&Cause> {
        match self {
            HubError::Store { cause, .. } => cause.as_ref(),
            _ => None,
        }
    }

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

/// A driver error kept as the source of a [`HubError`].
///
/// Its text (the driver error and its own sources) is redacted once, when it is made; the
/// original stays reachable by [`Cause::downcast_ref`] for callers that steer on a driver's
/// error code, but is never formatted: neither `Display` nor `Debug` shows it.
#[derive(Clone)]
pub struct Cause(Arc<CauseInner>);

/// One allocation, so a [`HubError`] stays small.
struct CauseInner {
    text: String,
    original: Box<dyn StdError + Send + Sync>,
}

impl Cause {
    /// Keeps `error`, with its text (and its sources' text) cleaned by `redactor`.
    pub fn new<E: StdError + Send + Sync + 'static>(error: E, redactor: &Redactor) -> Self {
        let mut text = error.to_string();
        let mut next = error.source();
        while let Some(e) = next {
            let more = e.to_string();
            if !text.contains(&more) {
                text.push_str(": ");
                text.push_str(&more);
            }
            next = e.source();
        }
        Cause(Arc::new(CauseInner {
            text: redactor.clean(text),
            original: Box::new(error),
        }))
    }

    /// The original driver error, if it is a `T` (e.g. `sqlx::Error`, `mongodb::error::Error`).
    pub fn downcast_ref<T: StdError + 'static>(&self) -> Option<&T> {
        self.0.original.downcast_ref::<T>()
    }

    /// The redacted text.
    pub fn text(&self) -> &str {
        &self.0.text
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.text)
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Cause").field(&self.0.text).finish()
    }
}

impl StdError for Cause {}

/// Replaces every configured secret in a message with `****`.
///
/// Drivers sometimes echo what they were given (a URL, a connection string); rather than trust
/// each one, every message that leaves the hub passes through here.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Arc<Vec<String>>,
}

impl Redactor {
    /// A redactor for these secret values (passwords, tokens, whole URLs), as they are and as
    /// they appear encoded: in a URL's user information (`%40`, `%20`) and in a form or query
    /// string (`+` for a space).
    pub fn new(secrets: Vec<String>) -> Self {
        let mut all = Vec::new();
        // Very short values would mangle ordinary words, and are not worth protecting this way.
        for s in secrets.into_iter().filter(|s| s.len() >= 3) {
            all.push(url::form_urlencoded::byte_serialize(s.as_bytes()).collect());
            all.push(userinfo_encoded(&s));
            all.push(s);
        }
        // Longest first, so a secret containing another is replaced whole.
        all.sort_by_key(|s: &String| std::cmp::Reverse(s.len()));
        all.dedup();
        Redactor {
            secrets: Arc::new(all),
        }
    }

    /// `message` with every secret replaced by `****`.
    pub fn clean(&self, message: impl Into<String>) -> String {
        let mut m = message.into();
        for s in self.secrets.iter() {
            if m.contains(s.as_str()) {
                m = m.replace(s.as_str(), tsp_config::MASK);
            }
        }
        m
    }
}

/// `secret` as a URL carries it as a password: percent-encoded the way the `url` crate (and
/// the drivers' connection strings) encode user information.
fn userinfo_encoded(secret: &str) -> String {
    let Ok(mut u) = url::Url::parse("http://u@h") else {
        return secret.to_string();
    };
    match u.set_password(Some(secret)) {
        Ok(()) => u.password().unwrap_or(secret).to_string(),
        Err(()) => secret.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_plain_and_encoded() {
        let r = Redactor::new(vec!["p@ss word".into(), "x".into()]);
        assert_eq!(r.clean("auth p@ss word failed"), "auth **** failed");
        // In a form or query string, and in a URL's user information, as encoders write them.
        assert_eq!(
            r.clean("url redis://u:p%40ss+word@h"),
            "url redis://u:****@h"
        );
        assert_eq!(
            r.clean("url redis://u:p%40ss%20word@h"),
            "url redis://u:****@h"
        );
        let mut written = url::Url::parse("redis://u@h").unwrap();
        written.set_password(Some("p@ss word")).unwrap();
        assert_eq!(r.clean(written.as_str()), "redis://u:****@h");
        assert_eq!(r.clean("x marks"), "x marks");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("login as tsp with hunter22 refused")]
    struct DriverError;

    #[test]
    fn cause_is_the_source_redacted_and_still_downcasts() {
        let r = Redactor::new(vec!["hunter22".into()]);
        let cause = Cause::new(DriverError, &r);
        let e = HubError::Store {
            store: "mysql",
            instance: "portal".into(),
            op: "connect".into(),
            message: cause.text().to_string(),
            cause: Some(cause),
        };
        let source = StdError::source(&e).expect("the cause is the source");
        assert_eq!(source.to_string(), "login as tsp with **** refused");
        assert!(!format!("{e:?}").contains("hunter22"), "{e:?}");
        assert!(
            e.cause()
                .and_then(|c| c.downcast_ref::<DriverError>())
                .is_some()
        );
        assert_eq!(e.kind(), ErrorKind::Store);
    }
}
