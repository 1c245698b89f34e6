//! A sandbox: a complete, isolated set of databases on the configured servers (four MySQL
//! databases, two MongoDB databases, two InfluxDB databases, a Redis key prefix), migrated,
//! and removed afterwards. Benchmarks and drills run in one so they never touch real data;
//! tests run one each, in parallel.

use std::time::Duration;

use async_recursion::async_recursion as boxed;
use tsp_config::{Config, ConfigError, LoadOptions};
use tsp_hub::{Hub, HubError};

/// Why a sandbox could not be made. Whatever was created before the failure is removed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the sandbox's configuration does not load")]
    /// The configuration with the sandbox's overrides is invalid.
    Config(#[source] ConfigError),
    #[error("sandbox {tag}: {step}")]
    /// A store failed during one step of the set-up.
    Store {
        /// The sandbox's tag.
        tag: String,
        /// The step: connecting, creating databases, migrating.
        step: &'static str,
        #[source]
        /// What failed.
        source: HubError,
    },
}

/// The configuration overrides that point every instance at sandbox `tag`'s databases.
pub fn overrides(tag: &str) -> Vec<String> {
    let mut o = Vec::new();
    use tsp_config::instances;
    for i in instances::MYSQL {
        o.push(format!("mysql.{i}.database=tsp_sb_{tag}_{i}"));
    }
    for i in instances::MONGO {
        o.push(format!("mongo.{i}.database=tsp_sb_{tag}_{i}"));
    }
    for i in instances::INFLUX {
        o.push(format!("influx.{i}.database=tsp_sb_{tag}_{i}"));
    }
    o.push(format!(
        "influx.service_monitor.bucket=tsp_sb_{tag}_monitor"
    ));
    o.push(format!("redis.{}.key_prefix=sb:{tag}:", instances::CACHE));
    o
}

/// A new sandbox tag: short, lowercase, unique enough.
pub fn new_tag() -> String {
    format!("{:010x}", rand::random::<u64>() & 0xff_ffff_ffff)
}

/// A live sandbox: its hub (pointing at its databases) and what to remove afterwards.
pub struct Sandbox {
    /// The tag naming its databases (`tsp_sb_{tag}_…`) and key prefix.
    pub tag: String,
    /// A hub on the sandbox's databases.
    pub hub: Hub,
    /// The overrides that configure another process for this sandbox.
    pub overrides: Vec<String>,
}

impl Sandbox {
    /// Creates the sandbox's MySQL databases (the others appear on first write) and migrates
    /// every store. `options` supplies the configuration (its overrides come first).
    #[boxed]
    pub async fn create(options: &LoadOptions) -> Result<Sandbox, SandboxError> {
        let tag = new_tag();
        let sb = overrides(&tag);
        let mut opts = options.clone();
        opts.overrides.extend(sb.iter().cloned());
        let config = tsp_config::load(&opts).map_err(SandboxError::Config)?;
        let failed = |step, source| SandboxError::Store {
            tag: tag.clone(),
            step,
            source,
        };
        let hub = Hub::connect(&config)
            .await
            .map_err(|e| failed("connecting", e))?;
        let sandbox = Sandbox {
            tag: tag.clone(),
            hub,
            overrides: sb,
        };
        // Databases are made and migrated by the migrator account; the sandbox's hub runs with
        // the app account, as the service does (docs/store-security.md#least-privilege).
        let made = match Hub::connect(&config.as_migrator()).await {
            Err(e) => Err(failed("connecting as the migrator", e)),
            Ok(migrator) => {
                let made = match create_mysql(migrator.config(), &migrator).await {
                    Err(e) => Err(failed("creating its MySQL databases", e)),
                    Ok(()) => match crate::migrate_all(&migrator, false).await {
                        (_, Some(e)) => Err(failed("migrating", e)),
                        (_, None) => Ok(()),
                    },
                };
                migrator.shutdown(Duration::from_secs(2)).await;
                made
            }
        };
        match made {
            Ok(()) => Ok(sandbox),
            Err(e) => {
                // Half a sandbox is still databases on the servers: take them away again.
                for problem in sandbox.remove().await {
                    tracing::warn!(%problem, "removing a sandbox that failed to set up");
                }
                Err(e)
            }
        }
    }

    /// A hub on the sandbox's databases with the migrator accounts, for schema work in it (a
    /// restore drops and creates tables). Shut it down when done.
    #[boxed]
    pub async fn migrator(&self) -> Result<Hub, HubError> {
        Hub::connect(&self.hub.config().as_migrator()).await
    }

    /// [`Sandbox::remove`], logging what could not be removed (for commands that end with it).
    #[boxed]
    pub async fn dispose(self) {
        let failed = self.remove().await;
        if !failed.is_empty() {
            tracing::warn!(?failed, "sandbox not fully removed");
        }
    }

    /// Removes every database and key of the sandbox, as the migrator. Best effort: reports
    /// what failed.
    #[boxed]
    pub async fn remove(self) -> Vec<String> {
        self.hub.shutdown(Duration::from_secs(2)).await;
        let hub = match Hub::connect(&self.hub.config().as_migrator()).await {
            Ok(hub) => hub,
            Err(e) => return vec![format!("connecting as the migrator: {e}")],
        };
        let failed = remove_from(&hub).await;
        hub.shutdown(Duration::from_secs(2)).await;
        failed
    }
}

/// Drops the sandbox databases and keys `hub` points at (names checked: only `tsp_sb_…`
/// databases and `sb:` prefixes).
async fn remove_from(hub: &Hub) -> Vec<String> {
    let mut failed = Vec::new();
    for store in hub.mysql_instances() {
        let db = store.database_name().to_string();
        if !db.starts_with("tsp_sb_") {
            continue;
        }
        if let Err(e) = store
            .timed(
                "drop database",
                sqlx::query(&format!("DROP DATABASE IF EXISTS `{db}`")).execute(store.pool()),
            )
            .await
        {
            failed.push(e.to_string());
        }
    }
    for store in hub.mongo_instances() {
        if store.database_name().starts_with("tsp_sb_")
            && let Err(e) = store.timed("drop database", store.database().drop()).await
        {
            failed.push(e.to_string());
        }
    }
    let monitor = &hub.config().service_monitor;
    let mut dbs: Vec<(&tsp_hub::InfluxStore, String)> = hub
        .influx_instances()
        .map(|s| (s, s.settings().database.clone()))
        .collect();
    if let Ok(s) = hub.influx(&monitor.instance) {
        dbs.push((s, monitor.bucket.clone()));
    }
    for (store, db) in dbs {
        if db.starts_with("tsp_sb_")
            && let Err(e) = store.query_v1("", &format!("DROP DATABASE \"{db}\"")).await
        {
            failed.push(e.to_string());
        }
    }
    for store in hub.redis_instances() {
        if store.key_prefix().starts_with("sb:")
            && let Err(e) = store
                .delete_matching(&format!("{}*", store.key_prefix()))
                .await
        {
            failed.push(e.to_string());
        }
    }
    failed
}

/// `CREATE DATABASE IF NOT EXISTS` for each MySQL instance, with the instance's charset.
async fn create_mysql(config: &Config, hub: &Hub) -> Result<(), HubError> {
    for (name, settings) in &config.mysql {
        let store = hub.mysql(name)?;
        // Connect to a database every user may use: the instance's does not exist yet.
        let options = tsp_hub::mysql_connect_options(settings)?.database("information_schema");
        let mut conn = store
            .timed("connect", sqlx::ConnectOptions::connect(&options))
            .await?;
        let charset = if settings.charset.is_empty() {
            "utf8mb4"
        } else {
            &settings.charset
        };
        store
            .timed(
                "create database",
                sqlx::query(&format!(
                    "CREATE DATABASE IF NOT EXISTS `{}` CHARACTER SET {charset}",
                    settings.database
                ))
                .execute(&mut conn),
            )
            .await?;
    }
    Ok(())
}
