//! The four kinds of store instance (`mysql.<name>.*`, `redis.<name>.*`, `mongo.<name>.*`,
//! `influx.<name>.*`), and the defaults that depend on the instance.

use secrecy::SecretString;
use serde::Deserialize;
use std::time::Duration;
use tsp_config_derive::Settings;

use super::{
    BatchSettings, CaSettings, MigrateAccount, MongoPoolSettings, PoolSettings, TlsSettings,
};
use crate::field::FieldType;
use crate::raw::RawValue;

#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct MysqlSettings {
    #[setting(skip)]
    pub name: String,
    #[setting(skip)]
    pub required: bool,
    /// mysql://user:password@host:port/database; when set it replaces host, port, user, password
    /// and database
    #[setting(ty = FieldType::SecretUrl(&["mysql", "mariadb"]))]
    pub url: Option<SecretString>,
    /// server host
    #[setting(ty = FieldType::Host, default = "127.0.0.1")]
    pub host: String,
    /// server port
    #[setting(ty = FieldType::Port, default = 3306)]
    pub port: u16,
    /// user name
    #[setting(default = "tsp")]
    pub user: String,
    /// password
    #[setting(default = "")]
    pub password: SecretString,
    #[setting(nested = "mysql")]
    pub migrate: MigrateAccount,
    /// database (schema) name; default tsp_<instance>
    #[setting(default_fn = database_of)]
    pub database: String,
    /// connection character set; utf8 for incentive, utf8mb4 elsewhere
    #[setting(
        ty = FieldType::Enum(&["utf8mb4", "utf8", "utf8mb3", "latin1", "ascii", "binary"]),
        default_fn = charset_of
    )]
    pub charset: String,
    #[setting(nested)]
    pub pool: PoolSettings,
    #[setting(nested = "mysql")]
    pub tls: TlsSettings,
}

#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    #[setting(skip)]
    pub name: String,
    #[setting(skip)]
    pub required: bool,
    /// redis[s]://[user:password@]host:port/db; when set it replaces host, port, username,
    /// password, db and tls
    #[setting(ty = FieldType::SecretUrl(&["redis", "rediss"]))]
    pub url: Option<SecretString>,
    /// server host
    #[setting(ty = FieldType::Host, default = "127.0.0.1")]
    pub host: String,
    /// server port
    #[setting(ty = FieldType::Port, default = 6379)]
    pub port: u16,
    /// ACL user name (empty: default user)
    #[setting(default = "")]
    pub username: String,
    /// password
    #[setting(default = "")]
    pub password: SecretString,
    #[setting(nested = "redis")]
    pub migrate: MigrateAccount,
    /// database number (standalone only)
    #[setting(ty = FieldType::UInt { min: 0, max: 15 }, default = 0)]
    pub db: u32,
    /// prefix of every key the service writes
    #[setting(default = "tsp:")]
    pub key_prefix: String,
    /// bound on establishing a connection
    #[setting(default = "10s")]
    pub connect_timeout: Duration,
    /// bound on one command's reply
    #[setting(default = "5s")]
    pub command_timeout: Duration,
    /// reconnect attempts before a command fails
    #[setting(ty = FieldType::UInt { min: 0, max: 100 }, default = 3)]
    pub max_retries: u32,
    #[setting(nested = "redis")]
    pub tls: TlsSettings,
    /// Redis Cluster seed nodes; non-empty switches to cluster mode
    #[setting(ty = FieldType::HostPortList, default = Vec::<RawValue>::new())]
    pub cluster_nodes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct MongoSettings {
    #[setting(skip)]
    pub name: String,
    #[setting(skip)]
    pub required: bool,
    /// mongodb://… connection string; when set it replaces host, port, username, password,
    /// auth_source and replica_set
    #[setting(ty = FieldType::SecretUrl(&["mongodb", "mongodb+srv"]))]
    pub uri: Option<SecretString>,
    /// server host
    #[setting(ty = FieldType::Host, default = "127.0.0.1")]
    pub host: String,
    /// server port
    #[setting(ty = FieldType::Port, default = 27017)]
    pub port: u16,
    /// user name (empty: no authentication)
    #[setting(default = "")]
    pub username: String,
    /// password
    #[setting(default = "")]
    pub password: SecretString,
    #[setting(nested = "mongo")]
    pub migrate: MigrateAccount,
    /// database name; default tsp_<instance>
    #[setting(default_fn = database_of)]
    pub database: String,
    /// database holding the user
    #[setting(default = "admin")]
    pub auth_source: String,
    /// replica set name (empty: connect directly to the one host)
    #[setting(default = "")]
    pub replica_set: String,
    #[setting(nested)]
    pub pool: MongoPoolSettings,
    /// bound on finding a usable server
    #[setting(default = "5s")]
    pub server_selection_timeout: Duration,
    /// bound on opening a connection
    #[setting(default = "10s")]
    pub connect_timeout: Duration,
    /// bound on one operation run through the hub
    #[setting(default = "30s")]
    pub socket_timeout: Duration,
    #[setting(nested = "mongo")]
    pub tls: TlsSettings,
}

#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct InfluxSettings {
    #[setting(skip)]
    pub name: String,
    #[setting(skip)]
    pub required: bool,
    /// server URL
    #[setting(ty = FieldType::Url(&["http", "https"]), default = "http://127.0.0.1:8086")]
    pub url: String,
    /// HTTP API: v1 (/write, /query) or v2 (/api/v2/*); default v2 when a token is set, else v1
    #[setting(ty = FieldType::Enum(&["v1", "v2"]))]
    pub api: InfluxApi,
    /// v2 API token
    #[setting(default = "")]
    pub token: SecretString,
    /// v2 organisation
    #[setting(default = "")]
    pub org: String,
    /// v2 bucket; v1 falls back to it when database is empty
    #[setting(default = "")]
    pub bucket: String,
    /// v1 database; primary tsp, others tsp_uis
    #[setting(default_fn = influx_database)]
    pub database: String,
    /// v1 retention policy (empty: the database default)
    #[setting(default = "")]
    pub retention_policy: String,
    /// v1 user name
    #[setting(default = "")]
    pub username: String,
    /// v1 password
    #[setting(default = "")]
    pub password: SecretString,
    #[setting(nested = "influx")]
    pub migrate: MigrateAccount,
    #[setting(nested)]
    pub tls: CaSettings,
    /// bound on one HTTP request
    #[setting(default = "10s")]
    pub timeout: Duration,
    #[setting(nested)]
    pub batch: BatchSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InfluxApi {
    V1,
    V2,
}

impl InfluxSettings {
    /// The v1 database, or the bucket when no database is set.
    pub fn v1_database(&self) -> &str {
        if self.database.is_empty() {
            &self.bucket
        } else {
            &self.database
        }
    }
}

// Defaults that depend on the instance (`#[setting(default_fn = …)]`).

fn text(v: &str) -> Option<RawValue> {
    Some(RawValue::Str(v.to_string()))
}

/// `tsp_<instance>`.
fn database_of(instance: &str) -> Option<RawValue> {
    text(&format!("tsp_{instance}"))
}

/// `utf8` for incentive (the original schema's), `utf8mb4` elsewhere.
fn charset_of(instance: &str) -> Option<RawValue> {
    text(if instance == "incentive" {
        "utf8"
    } else {
        "utf8mb4"
    })
}

/// `tsp` for primary, `tsp_uis` for the others.
fn influx_database(instance: &str) -> Option<RawValue> {
    text(if instance == "primary" {
        "tsp"
    } else {
        "tsp_uis"
    })
}
