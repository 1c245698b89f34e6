//! The hub's error type, and the redaction that keeps secrets out of every message.

use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, RwLock};
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
    #[error("required stores are down or degraded: {0}")]
    /// Required instances that failed their health check (`kind.instance (why)`, comma-separated).
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
    /// Each form of each secret, longest first, so a secret containing another is replaced
    /// whole. Shared by every clone, so secrets learnt at a credential rotation reach all.
    secrets: Arc<RwLock<Arc<Vec<String>>>>,
}

/// Secrets shorter than this are replaced only where they stand alone (not inside a longer
/// word), so a short password does not mangle every message that happens to contain its letters.
const SHORT: usize = 8;

impl Redactor {
    /// A redactor for these secret values (passwords, tokens, whole URLs), as they are and as
    /// encoders write them: a URL's user information (`%40`, `%20`), a form or query string
    /// (`+` for a space), strict RFC 3986 encoding, JavaScript's `encodeURIComponent` (which
    /// leaves `!*'()` as they are), each with upper- and lower-case hex digits.
    pub fn new(secrets: Vec<String>) -> Self {
        Redactor {
            secrets: Arc::new(RwLock::new(Arc::new(forms(secrets)))),
        }
    }

    /// Adds `secrets` (new credentials after a rotation); the old ones stay masked too.
    pub fn learn(&self, secrets: Vec<String>) {
        let mut guard = match self.secrets.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut all: Vec<String> = guard.as_ref().clone();
        all.extend(forms(secrets));
        all.sort_by_key(|s: &String| std::cmp::Reverse(s.len()));
        all.dedup();
        *guard = Arc::new(all);
    }

    fn current(&self) -> Arc<Vec<String>> {
        match self.secrets.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// `message` with every secret replaced by `****`.
    pub fn clean(&self, message: impl Into<String>) -> String {
        let mut m = message.into();
        for s in self.current().iter() {
            if !m.contains(s.as_str()) {
                continue;
            }
            m = if s.len() >= SHORT {
                m.replace(s.as_str(), tsp_config::MASK)
            } else {
                replace_standalone(&m, s)
            };
        }
        m
    }
}

/// Every form a secret may take in a message (see [`Redactor::new`]), longest first.
fn forms(secrets: Vec<String>) -> Vec<String> {
    let mut all = Vec::new();
    for s in secrets.into_iter().filter(|s| !s.is_empty()) {
        let forms = [
            url::form_urlencoded::byte_serialize(s.as_bytes()).collect(),
            userinfo_encoded(&s),
            percent_encoded(&s, b"-._~"),
            percent_encoded(&s, b"-._~!*'()"),
        ];
        for form in forms {
            all.push(form.to_ascii_lowercase_hex());
            all.push(form);
        }
        all.push(s);
    }
    all.sort_by_key(|s: &String| std::cmp::Reverse(s.len()));
    all.dedup();
    all
}

/// `m` with `needle` replaced where no letter or digit touches it on either side.
fn replace_standalone(m: &str, needle: &str) -> String {
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let mut out = String::with_capacity(m.len());
    let mut rest = m;
    while let Some(at) = rest.find(needle) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + needle.len()..].chars().next();
        let glued = out.chars().next_back();
        out.push_str(&rest[..at]);
        if word(before.or(if at == 0 { glued } else { None })) || word(after) {
            out.push_str(needle);
        } else {
            out.push_str(tsp_config::MASK);
        }
        rest = &rest[at + needle.len()..];
    }
    out.push_str(rest);
    out
}

/// Hex digits of percent-escapes in lower case (`%2f`), which some encoders write.
trait LowerHex {
    fn to_ascii_lowercase_hex(&self) -> String;
}

impl LowerHex for String {
    fn to_ascii_lowercase_hex(&self) -> String {
        let mut out = String::with_capacity(self.len());
        let mut escape = 0;
        for c in self.chars() {
            if c == '%' {
                escape = 2;
                out.push(c);
            } else if escape > 0 {
                escape -= 1;
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        out
    }
}

/// `secret` with every byte but ASCII letters, digits and `keep` percent-encoded.
fn percent_encoded(secret: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(secret.len() * 3);
    for b in secret.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
        // A short secret only where it stands alone.
        assert_eq!(r.clean("x marks"), "**** marks");
        assert_eq!(r.clean("box"), "box");
    }

    #[test]
    fn redacts_every_encoder_s_form_of_an_awkward_password() {
        let secret = "p@ss:w/rd?#%+ é!*'()";
        let r = Redactor::new(vec![secret.into()]);
        let strict = "p%40ss%3Aw%2Frd%3F%23%25%2B%20%C3%A9%21%2A%27%28%29";
        let js = "p%40ss%3Aw%2Frd%3F%23%25%2B%20%C3%A9!*'()";
        for shown in [
            secret.to_string(),
            strict.to_string(),
            strict.to_lowercase(),
            js.to_string(),
            url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
            tsp_config::encode_userinfo(secret),
        ] {
            let cleaned = r.clean(format!("connect mysql://u:{shown}@h failed"));
            assert_eq!(cleaned, "connect mysql://u:****@h failed", "{shown}");
        }
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
