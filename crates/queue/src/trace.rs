//! How jobs carry traces (docs/metrics.md#traces): an enqueue stores the current trace context
//! with each job, as a W3C `traceparent`, and the worker's span for the job continues it, so a
//! job's spans belong to the trace of the request that enqueued it. The queue knows the format
//! only; a process that traces installs [`TraceHooks`] once (tsp-server does, with
//! OpenTelemetry). Without them jobs carry no trace and their spans start their own.

use std::sync::OnceLock;

use tracing::Span;

/// How a trace context is attached to a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// The span is a child in that trace.
    Parent,
    /// The span stays in its own trace and links to that one (a batch of jobs from many).
    Link,
}

/// What a tracing process tells the queue.
pub struct TraceHooks {
    /// The current span's context as a `traceparent`, if there is one.
    pub current: fn() -> Option<String>,
    /// Attaches the context `traceparent` to `span`.
    pub attach: fn(&Span, &str, Relation),
    /// Whether a job that carries no trace gets a span of its own (when spans are exported);
    /// otherwise only jobs that continue a trace get one, so a queue full of untraced work
    /// pays nothing for it.
    pub every_job: bool,
}

static HOOKS: OnceLock<TraceHooks> = OnceLock::new();

/// Installs the hooks for this process; false when some were installed already.
pub fn install(hooks: TraceHooks) -> bool {
    HOOKS.set(hooks).is_ok()
}

/// The current trace context, when the process traces.
pub(crate) fn current() -> Option<String> {
    HOOKS.get().and_then(|h| (h.current)())
}

/// Attaches `traceparent` to `span`, when the process traces.
pub(crate) fn attach(span: &Span, traceparent: &str, relation: Relation) {
    if let Some(h) = HOOKS.get() {
        (h.attach)(span, traceparent, relation);
    }
}

/// Whether `s` is a version-00 W3C `traceparent`: `00-<32 hex>-<16 hex>-<2 hex>`, ids not zero.
pub fn is_traceparent(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let hex = |p: &str, n: usize| {
        p.len() == n && p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let nonzero = |p: &str| p.bytes().any(|b| b != b'0');
    matches!(parts.as_slice(), [v, t, s, f]
        if *v == "00" && hex(t, 32) && nonzero(t) && hex(s, 16) && nonzero(s) && hex(f, 2))
}

/// Whether every job gets a span, traced or not.
pub(crate) fn every_job() -> bool {
    HOOKS.get().is_some_and(|h| h.every_job)
}

#[cfg(test)]
mod tests {
    use super::is_traceparent;

    #[test]
    fn only_a_w3c_traceparent_passes() {
        assert!(is_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            assert!(!is_traceparent(bad), "{bad}");
        }
    }
}
