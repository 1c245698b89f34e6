//! The groups of keys the store kinds share: TLS, the migrator account, pools, batches.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use tsp_config_derive::Settings;

use super::TlsMode;
use crate::field::FieldType;
use crate::raw::RawValue;

/// The TLS modes of MySQL (Redis and MongoDB have no `preferred` or `verify_ca`).
pub(crate) const TLS_MODES: &[&str] = &[
    "disabled",
    "preferred",
    "required",
    "verify_ca",
    "verify_identity",
];

#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// TLS: disabled, required (no certificate check), verify_identity; the default is
    /// verify_identity for a host that is not loopback
    #[setting(
        ty = FieldType::Enum(&["disabled", "required", "verify_identity"]),
        default = "disabled"
    )]
    #[setting(
        variant = "mysql",
        ty = FieldType::Enum(TLS_MODES),
        default = "preferred",
        doc = "TLS: disabled, preferred (use when offered), required, verify_ca, verify_identity; the default is verify_identity for a host that is not loopback"
    )]
    pub mode: TlsMode,
    /// accept, in the production profile, a tls.mode that does not verify the server (disabled,
    /// preferred, required) for a host that is not loopback
    #[setting(default = false)]
    pub allow_insecure: bool,
    /// CA certificate (PEM)
    #[setting(ty = FieldType::File)]
    pub ca: Option<PathBuf>,
    /// client certificate (PEM)
    #[setting(ty = FieldType::File)]
    #[setting(variant = "mongo", doc = "client certificate and key (PEM, one file)")]
    pub cert: Option<PathBuf>,
    /// client key (PEM)
    #[setting(ty = FieldType::File, not_for = "mongo")]
    pub key: Option<PathBuf>,
}

/// The migrator account of an instance (`<store>.<instance>.migrate.*`): used by `migrate`,
/// `backup`, `restore` and sandboxes; empty `user` means the app account does both.
#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct MigrateAccount {
    /// migrator account (DDL, indexes, backup, restore; docs/store-security.md#least-privilege);
    /// empty: the app account
    #[setting(default = "")]
    pub user: String,
    /// the migrator account's password
    #[setting(default = "")]
    pub password: SecretString,
    /// v2 token of the migrator (bucket and retention changes); empty: token
    #[setting(default = "", only = "influx")]
    #[serde(default)]
    pub token: Option<SecretString>,
}

/// A CA to trust besides the system's (`influx.<instance>.tls.ca`).
#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct CaSettings {
    /// CA certificate (PEM) trusted for an https url, besides the system's
    #[setting(ty = FieldType::File)]
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct PoolSettings {
    /// connections kept open; portal 2, dataset 5, gtfs 3, incentive 2
    #[setting(ty = FieldType::UInt { min: 0, max: 1000 }, default_fn = mysql_pool_min)]
    pub min: u32,
    /// pool size limit; portal 10, dataset 20, gtfs 15, incentive 8
    #[setting(ty = FieldType::UInt { min: 1, max: 1000 }, default_fn = mysql_pool_max)]
    pub max: u32,
    /// longest wait for a free connection
    #[setting(default = "30s")]
    pub acquire_timeout: Duration,
    /// idle connections above min are closed after this; gtfs 60s
    #[setting(default_fn = mysql_idle_timeout)]
    pub idle_timeout: Duration,
    /// connections are recycled after this age
    #[setting(default = "30m")]
    pub max_lifetime: Duration,
}

#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct MongoPoolSettings {
    /// connections kept open; cache 2, dataset 5
    #[setting(ty = FieldType::UInt { min: 0, max: 1000 }, default_fn = mongo_pool_min)]
    pub min: u32,
    /// pool size limit; cache 10, dataset 20
    #[setting(ty = FieldType::UInt { min: 1, max: 1000 }, default_fn = mongo_pool_max)]
    pub max: u32,
    /// idle connections are closed after this; cache 30s, dataset 60s
    #[setting(default_fn = mongo_pool_max_idle)]
    pub max_idle: Duration,
}

#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct BatchSettings {
    /// points per write request; a full batch is sent at once
    #[setting(ty = FieldType::UInt { min: 1, max: 1_000_000 }, default = 5000)]
    pub max_points: usize,
    /// a partial batch is sent after this
    #[setting(default = "1s")]
    pub flush_interval: Duration,
    /// retries of a batch on 429/5xx/network errors before it is dropped (counted)
    #[setting(ty = FieldType::UInt { min: 0, max: 100 }, default = 5)]
    pub max_retries: u32,
    /// first retry delay; doubles each retry unless the server sends Retry-After
    #[setting(default = "500ms")]
    pub retry_interval: Duration,
    /// cap on one retry delay
    #[setting(default = "30s")]
    pub max_retry_delay: Duration,
    /// points held while the server is slow or down; beyond it the oldest are dropped (counted)
    #[setting(ty = FieldType::UInt { min: 1, max: 100_000_000 }, default = 200_000)]
    pub max_buffer_points: usize,
    /// random extra delay added to each retry
    #[setting(default = "200ms")]
    pub jitter: Duration,
    /// write requests sent at once (docs/influx.md#batches-in-flight)
    #[setting(ty = FieldType::UInt { min: 1, max: 64 }, default = 4)]
    pub in_flight: usize,
}

// Pool sizes that depend on the instance (`#[setting(default_fn = …)]`).

/// The MySQL pool sizes per instance: (min, max).
fn mysql_pool(instance: &str) -> (i64, i64) {
    match instance {
        "dataset" => (5, 20),
        "gtfs" => (3, 15),
        "incentive" => (2, 8),
        _ => (2, 10),
    }
}

fn mysql_pool_min(instance: &str) -> Option<RawValue> {
    Some(RawValue::Int(mysql_pool(instance).0))
}

fn mysql_pool_max(instance: &str) -> Option<RawValue> {
    Some(RawValue::Int(mysql_pool(instance).1))
}

fn mysql_idle_timeout(instance: &str) -> Option<RawValue> {
    Some(RawValue::Str(
        if instance == "gtfs" { "60s" } else { "30s" }.to_string(),
    ))
}

/// The MongoDB pool per instance: (min, max, max_idle).
fn mongo_pool(instance: &str) -> (i64, i64, &'static str) {
    match instance {
        "dataset" => (5, 20, "60s"),
        _ => (2, 10, "30s"),
    }
}

fn mongo_pool_min(instance: &str) -> Option<RawValue> {
    Some(RawValue::Int(mongo_pool(instance).0))
}

fn mongo_pool_max(instance: &str) -> Option<RawValue> {
    Some(RawValue::Int(mongo_pool(instance).1))
}

fn mongo_pool_max_idle(instance: &str) -> Option<RawValue> {
    Some(RawValue::Str(mongo_pool(instance).2.to_string()))
}
