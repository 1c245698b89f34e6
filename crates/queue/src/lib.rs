//! A reliable Redis job queue and worker runtime.
//!
//! At-least-once: a job leaves Redis only when a worker's acknowledgement is stored; a worker
//! that dies or hangs loses its leases, and the jobs run again elsewhere. Handlers must be
//! idempotent (the trip jobs are, by their unique keys).
//!
//! # Layout
//! - [`queue`]: a named queue: enqueue, inspect, pause, requeue, and the state transitions
//!   (each one Lua script in `lua/`, atomic, for a whole batch of jobs).
//! - [`worker`]: the runtime: batched fetch, concurrent handlers with timeout and panic capture,
//!   batched acknowledgement, heartbeats, stalled-job recovery, graceful shutdown.
//! - [`handler`]: the registry of job types: handlers with typed payloads, their payload
//!   checks, dedup keys and dead-letter hooks; the built-ins (docs/queue.md#built-in-job-types).
//! - [`records`]: MongoDB records and Influx points of finished jobs, batched, with backpressure.
//!
//! Design and guarantees: docs/queue.md.

pub mod error;
pub mod handler;
pub mod job;
pub mod metrics;
pub mod queue;
pub mod records;
pub mod worker;

pub use error::{JobError, QueueError};
pub use handler::{HookError, JobContext, JobRules, PayloadError, Registry};
pub use job::{Backoff, JobInfo, JobState, NewJob, QueueCounts};
pub use queue::{
    DeadJob, Fetched, Finished, LeasedJob, Outcome, Queue, Requeued, UNREADABLE_TYPE,
    valid_queue_name,
};
pub use records::{JobRecord, RecordSink, RecordTask};
pub use worker::{Ran, Worker, WorkerReport};
