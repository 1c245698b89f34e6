//! The subcommands that are more than a few lines.

pub mod accounts;
pub mod backup;
pub mod bench;
pub mod bench_analytics;
pub mod bench_backup;
pub mod bench_console;
pub mod bench_gtfs;
pub mod bench_http;
pub mod bench_queue;
pub mod bench_trips;
pub mod config;
pub mod gtfs;
pub mod health;
pub mod jobs;
pub mod roundtrip;
pub mod schedules;
pub mod trips;
