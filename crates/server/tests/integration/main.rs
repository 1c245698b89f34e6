//! The `tsp-job` binary and its HTTP API against the real services, one module per subject,
//! in one test binary (one link instead of one per file). Run one subject with a filter:
//! `cargo nextest run -p tsp-server --test integration -- auth::`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod abuse;
mod auth;
mod backup;
mod cli;
mod common;
mod consistency;
mod console;
mod console_http;
mod contract;
mod dr_drill;
mod gtfs;
mod memory;
mod monitoring;
mod rotation;
mod schedules;
mod security;
mod serve;
mod traces;
mod trips;
mod workers;
