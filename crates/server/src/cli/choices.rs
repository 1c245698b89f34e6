//! The options that take one of a set of values: clap lists them in `-h` and refuses others.

use clap::ValueEnum;

/// A store kind, as `--stores` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    Mysql,
    Redis,
    Mongo,
    Influx,
}

/// `tsp-job migrate`'s action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MigrateAction {
    /// Apply what is pending.
    Up,
    /// Only report.
    Status,
}

/// What a schedule does with ticks missed while no worker ran it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MissedTicks {
    /// Run only the latest.
    Skip,
    /// Run each, up to --catch-up-max.
    CatchUp,
}

/// An operator's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OperatorRole {
    /// Reads everything.
    Viewer,
    /// Also writes jobs and operates queues.
    Operator,
    /// Everything.
    Admin,
}

/// A job state, as `jobs list` pages them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JobStateArg {
    Waiting,
    Delayed,
    Active,
    Completed,
    /// Failed for good (alias: failed).
    #[value(alias = "failed")]
    Dead,
}
