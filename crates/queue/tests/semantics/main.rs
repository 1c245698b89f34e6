//! Queue semantics against the real Redis, a module per kind of transition: the order jobs run
//! in, failed attempts, leases, completed jobs, records, and specs.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[path = "../common/mod.rs"]
mod common;
mod completed;
mod failures;
mod helpers;
mod leases;
mod order;
mod records;
mod specs;
