//! The spans of a worker's runs: one per job run alone, one per batch (docs/metrics.md#traces).

use tracing::Span;

use crate::queue::LeasedJob;
use crate::trace::{Relation, attach, every_job};

/// The span of one attempt of `job`: a child of its enqueue's trace (none for a job without
/// one, unless every job gets a span).
pub(super) fn job_span(queue: &str, job: &LeasedJob) -> Span {
    if job.origin.traceparent.is_none() && !every_job() {
        return Span::none();
    }
    let span = tracing::info_span!(
        "job.run",
        queue,
        job.id = %job.id,
        job.r#type = %job.job_type,
        job.attempt = job.attempts,
        request.id = job.origin.request_id.as_deref(),
    );
    if let Some(t) = &job.origin.traceparent {
        attach(&span, t, Relation::Parent);
    }
    span
}

/// The span of one batch: a child of its job's trace when it holds one job, else linked to
/// each job's trace (a span has one parent).
pub(super) fn batch_span(queue: &str, jobs: &[LeasedJob]) -> Span {
    if jobs.iter().all(|j| j.origin.traceparent.is_none()) && !every_job() {
        return Span::none();
    }
    let job_type = jobs.first().map_or("", |j| j.job_type.as_str());
    let span = tracing::info_span!("job.batch", queue, job.r#type = %job_type, jobs = jobs.len());
    let relation = if jobs.len() == 1 {
        Relation::Parent
    } else {
        Relation::Link
    };
    for t in jobs.iter().filter_map(|j| j.origin.traceparent.as_deref()) {
        attach(&span, t, relation);
    }
    span
}
