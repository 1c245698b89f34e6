//! A reliable Redis job queue and worker runtime.
//!
//! At-least-once: a job leaves Redis only when a worker's acknowledgement is stored; a worker
//! that dies or hangs loses its leases, and the jobs run again elsewhere. Handlers must be
//! idempotent (the trip jobs are, by their unique keys).
//!
//! # Layout
//! - `queue` ([`Queue`]): a named queue: enqueue, inspect, pause, requeue, and the state transitions
//!   (each one Lua script in `lua/`, atomic, for a whole batch of jobs).
//! - `worker` ([`Worker`]): the runtime: batched fetch, concurrent handlers with timeout and panic capture,
//!   batched acknowledgement, heartbeats, stalled-job recovery, graceful shutdown.
//! - `handler` ([`Registry`]): the registry of job types: handlers with typed payloads, their payload
//!   checks, dedup keys and dead-letter hooks; the built-ins (docs/queue.md#built-in-job-types).
//! - `records` ([`RecordSink`]): MongoDB records and Influx points of finished jobs, batched, with backpressure.
//!
//! Design and guarantees: docs/queue.md.

#![warn(missing_docs, unreachable_pub)]

mod batch;
mod clock;
mod contract;
mod error;
mod handler;
mod job;
pub mod metrics;
mod queue;
mod records;
mod schedule;
pub mod trace;
mod worker;

pub use batch::{BatchFuture, BatchJob, BatchOptions};
pub use clock::Clock;
pub use contract::{HandlerFuture, JobContext, JobRules, PayloadError};
pub use error::{JobError, QueueError};
pub use handler::{HookError, HookFuture, Registry};
pub use job::{Backoff, JobInfo, JobState, MAX_PRIORITY, NewJob, Origin, QueueCounts};
pub use queue::{
    AuditReport, Cancelled, DeadJob, Fetched, Finding, Finished, Glance, Lease, LeasedJob, Order,
    Outcome, Queue, Requeued, Rerun, StoredSchedule, UNREADABLE_TYPE, valid_job_id,
    valid_queue_name,
};
pub use records::{
    COLLECTION as RECORDS_COLLECTION, JobRecord, RecordSink, RecordTask,
    ensure_indexes as ensure_record_indexes, indexes as record_indexes,
};
pub use schedule::{Missed, Schedule, ScheduleError, ScheduleState, Schedules};
pub use worker::{Ran, Worker, WorkerHealth, WorkerReport, host_name};
