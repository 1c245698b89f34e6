//! The subcommands that are more than a few lines.

pub mod accounts;
pub mod backup;
pub mod config;
pub mod gtfs;
pub mod health;
pub mod jobs;
pub mod migrate;
pub mod probe;
pub mod roundtrip;
pub mod schedules;
pub mod serve;
pub mod trips;
