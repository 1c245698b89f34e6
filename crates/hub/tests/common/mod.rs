//! Shared helpers for the hub's integration tests: configuration pointing at the local services
//! (`scripts/services.sh up`), unique names, free ports.
#![allow(dead_code)]

use std::path::PathBuf;

use rand::Rng;
use tsp_config::{Config, LoadOptions};

pub fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

/// The development configuration with `sets` applied on top.
pub fn config(sets: &[&str]) -> Config {
    let opts = LoadOptions {
        config_dir: config_dir(),
        env_name: Some("development".into()),
        env: Vec::new(),
        overrides: sets.iter().map(|s| s.to_string()).collect(),
    };
    tsp_config::load(&opts).unwrap_or_else(|e| panic!("test configuration: {e}"))
}

/// A name no other test (or run) uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{:012x}",
        rand::rng().random::<u64>() & 0xffff_ffff_ffff
    )
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    port
}
