//! Enqueueing: one job, or many in as few round trips as possible.

use std::sync::LazyLock;
use std::sync::atomic::Ordering;

use async_recursion::async_recursion as boxed;
use tracing::Instrument;

use super::spec::encode_spec;
use super::{Queue, SCRIPTS};
use crate::error::QueueError;
use crate::job::NewJob;

/// Jobs per enqueue script call: big enough to amortize the round trip, small enough that one
/// call does not hold Redis for long (about a millisecond).
const ENQUEUE_CHUNK: usize = 500;

/// A new job id: a ULID, strictly increasing within this process, so that sorting ids restores
/// the order one producer enqueued them in (used when jobs taken back are put in line again).
pub(super) fn new_id() -> String {
    static IDS: LazyLock<std::sync::Mutex<ulid::Generator>> =
        LazyLock::new(|| std::sync::Mutex::new(ulid::Generator::new()));
    let mut generator = match IDS.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    // The random part overflows only after 2^80 ids in one millisecond.
    generator
        .generate()
        .unwrap_or_else(|_| ulid::Ulid::new())
        .to_string()
}

impl Queue {
    /// Enqueues one job; returns its id (or, for a duplicate dedup key, the pending job's id).
    #[boxed]
    pub async fn enqueue(&self, job: NewJob) -> Result<String, QueueError> {
        let ids = self.enqueue_many(vec![job]).await?;
        ids.into_iter()
            .next()
            .ok_or_else(|| QueueError::Protocol("enqueue returned no id".into()))
    }

    /// Enqueues many jobs in as few round trips as possible; ids in order.
    ///
    /// Jobs are sent in chunks, a few at a time over the multiplexed connection, which
    /// pipelines them. If an error is returned, chunks before it may have been stored.
    ///
    /// Inside a trace (a request, a job), each job without a trace context continues it, as a
    /// child of this enqueue ([`crate::trace`]). Outside one (a bulk enqueue from the command
    /// line), jobs carry none: a trace of 100 000 jobs helps nobody, and untraced jobs cost the
    /// worker nothing for tracing.
    #[boxed]
    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<String>, QueueError> {
        let traced = crate::trace::current().is_some();
        let span =
            tracing::info_span!("queue.enqueue", queue = %self.inner.name, jobs = jobs.len());
        self.store_jobs(jobs, traced).instrument(span).await
    }

    async fn store_jobs(
        &self,
        mut jobs: Vec<NewJob>,
        traced: bool,
    ) -> Result<Vec<String>, QueueError> {
        if let Some(trace) = traced.then(crate::trace::current).flatten() {
            for j in jobs.iter_mut().filter(|j| j.origin.traceparent.is_none()) {
                j.origin.traceparent = Some(trace.clone());
            }
        }
        for (n, j) in jobs.iter().enumerate() {
            j.validate().map_err(|e| match e {
                QueueError::Invalid { field, message } if jobs.len() > 1 => QueueError::Invalid {
                    field: format!("jobs[{n}].{field}"),
                    message,
                },
                other => other,
            })?;
        }
        let conn = self.conn().await?;
        if !self.inner.registered.load(Ordering::Relaxed) {
            self.set_registered(&mut conn.clone(), true).await?;
        }
        let now = self.now_ms();
        let invocations: Vec<Invocation> = chunks(&jobs)
            .into_iter()
            .map(|(is_plain, chunk)| self.enqueue_call(is_plain, chunk, now))
            .collect();
        // A few calls in flight keep the connection busy without queueing seconds of work
        // behind one another (each call must answer within the command timeout).
        let mut ids = Vec::with_capacity(jobs.len());
        for group in invocations.chunks(4) {
            let calls = group.iter().map(|(_, inv)| {
                let mut conn = conn.clone();
                async move { inv.invoke_async::<Vec<String>>(&mut conn).await }
            });
            let results = futures::future::join_all(calls).await;
            for ((made, _), r) in group.iter().zip(results) {
                let returned = r.map_err(|e| self.err("enqueue", &e))?;
                match made {
                    Some(made) => ids.extend(made.iter().cloned()),
                    None => ids.extend(returned),
                }
            }
        }
        if let Some((confirmed, wanted)) = self.wait_replicas().await?
            && confirmed < wanted
        {
            return Err(QueueError::NotReplicated {
                op: "enqueue",
                confirmed,
                wanted,
            });
        }
        metrics::counter!(crate::metrics::ENQUEUED, "queue" => self.inner.name.clone())
            .increment(ids.len() as u64);
        Ok(ids)
    }

    /// The spec of a new job, with the queue's options where the job sets none.
    pub(super) fn spec_of(&self, j: &NewJob, now: i64) -> String {
        let s = &self.inner.settings;
        let timeout_ms =
            u64::try_from(j.timeout.unwrap_or(s.timeout).as_millis()).unwrap_or(u64::MAX);
        encode_spec(
            j,
            j.max_attempts.unwrap_or(s.max_attempts),
            j.backoff.unwrap_or_else(|| self.default_backoff()),
            timeout_ms,
            now,
        )
    }

    /// One enqueue script call for a chunk. A plain chunk is stored by a few variadic commands,
    /// its ids the ones made here; the others one by one, as a dedup key may answer with an
    /// existing id (`None`: take the ids from the reply).
    fn enqueue_call(&self, is_plain: bool, chunk: &[NewJob], now: i64) -> Invocation {
        let mut inv = SCRIPTS.enqueue.key(&self.inner.base);
        inv.arg(now);
        if !is_plain {
            inv.arg(0).arg(0).arg(chunk.len());
            for j in chunk {
                inv.arg(new_id())
                    .arg(self.spec_of(j, now))
                    .arg(j.priority)
                    .arg(dedup_slot(j))
                    .arg(u64::try_from(j.delay.as_millis()).unwrap_or(u64::MAX));
            }
            return (None, inv);
        }
        let ids: Vec<String> = chunk.iter().map(|_| new_id()).collect();
        inv.arg(chunk.len());
        for (id, j) in ids.iter().zip(chunk) {
            inv.arg(id).arg(self.spec_of(j, now));
        }
        let mut prios: Vec<u16> = chunk.iter().map(|j| j.priority).collect();
        prios.sort_unstable();
        prios.dedup();
        inv.arg(prios.len());
        for p in prios {
            let members: Vec<&String> = ids
                .iter()
                .zip(chunk)
                .filter(|(_, j)| j.priority == p)
                .map(|(id, _)| id)
                .collect();
            inv.arg(p).arg(members.len()).arg(members);
        }
        inv.arg(0);
        (Some(ids), inv)
    }
}

/// An enqueue call, with the ids it stores when they are known before it runs.
type Invocation = (Option<Vec<String>>, redis::ScriptInvocation<'static>);

/// Where a job's dedup key is held: in its type's namespace, so a key chosen for one type can
/// never hold back a job of another (a no-op cannot sit on a trip's key).
pub(super) fn dedup_slot(j: &NewJob) -> String {
    match &j.dedup_key {
        Some(k) => format!("{}:{k}", j.job_type),
        None => String::new(),
    }
}

/// Runs of plain jobs (no delay, no dedup key) and of the others, in order, each at most
/// [`ENQUEUE_CHUNK`] long. Splitting at every change of kind keeps FIFO across the runs.
fn chunks(jobs: &[NewJob]) -> Vec<(bool, &[NewJob])> {
    let plain = |j: &NewJob| j.dedup_key.is_none() && j.delay.is_zero();
    let mut out = Vec::new();
    let mut rest = jobs;
    while let Some(first) = rest.first() {
        let kind = plain(first);
        let len = rest
            .iter()
            .take(ENQUEUE_CHUNK)
            .take_while(|j| plain(j) == kind)
            .count();
        let (chunk, tail) = rest.split_at(len);
        out.push((kind, chunk));
        rest = tail;
    }
    out
}
