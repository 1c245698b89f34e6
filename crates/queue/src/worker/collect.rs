//! Batches for job types with a batch handler: one collector task per type gathers fetched jobs
//! (from one fetch or several) until `max_batch` or `max_wait` after the first, then runs the
//! batch while it collects the next (docs/queue.md#batch-handlers).

use std::collections::HashMap;

use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::task::JoinSet;

use super::execute::{Done, run_batch_and_report};
use crate::batch::ErasedBatch;
use crate::queue::{LeasedJob, Queue};

/// A fetched job and its slot, on its way into a batch.
type Slotted = (LeasedJob, Option<OwnedSemaphorePermit>);

/// The collectors of one queue runtime, by job type. Dropping it closes them: each runs what it
/// holds and ends.
#[derive(Default)]
pub(super) struct Collectors {
    by_type: HashMap<String, mpsc::UnboundedSender<Slotted>>,
}

impl Collectors {
    /// Hands `job` to its type's collector, starting one (in `tasks`) on the type's first job.
    pub(super) fn add(
        &mut self,
        job: LeasedJob,
        slot: Option<OwnedSemaphorePermit>,
        batch: &ErasedBatch,
        context: (&Queue, &mpsc::Sender<Done>),
        tasks: &mut JoinSet<()>,
    ) {
        let (queue, done_tx) = context;
        let tx = self.by_type.entry(job.job_type.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tasks.spawn(collect(rx, batch.clone(), queue.clone(), done_tx.clone()));
            tx
        });
        // The collector lives as long as its sender here, so this send cannot fail; were it
        // to, the job's slot is freed and its lease returned at shutdown.
        let _ = tx.send((job, slot));
    }
}

/// Gathers batches of one type and runs each as a task, until the runtime drops the sender.
async fn collect(
    mut rx: mpsc::UnboundedReceiver<Slotted>,
    batch: ErasedBatch,
    queue: Queue,
    done_tx: mpsc::Sender<Done>,
) {
    let mut running = JoinSet::new();
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let deadline = tokio::time::Instant::now() + batch.options.max_wait;
        while jobs.len() < batch.options.max_batch {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(j)) => jobs.push(j),
                // Closed (the runtime stops: run what is here now) or waited long enough.
                Ok(None) | Err(_) => break,
            }
        }
        let (queue, done_tx, run) = (queue.clone(), done_tx.clone(), batch.run.clone());
        running.spawn(async move { run_batch_and_report(&queue, &done_tx, &run, jobs).await });
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}
