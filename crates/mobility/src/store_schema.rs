//! InfluxDB and Redis schema: versioned, checksummed steps with their state in the store itself.
//!
//! - **InfluxDB (v1 API)**: each database with its default retention policy. State: points of
//!   measurement `_tsp_migrations` (tag `version`, fields `checksum`, `description`) in that
//!   database. `CREATE DATABASE` and an identical `CREATE RETENTION POLICY` are no-ops when they
//!   exist, so concurrent runs are safe.
//! - **InfluxDB (v2 API)**: each bucket (the instance's; the service-monitor one on its
//!   instance) with its retention, created in the configured organisation through
//!   `/api/v2/buckets` (the token needs bucket-write permission). State: the bucket itself; one
//!   that exists with another retention is refused, naming both. A concurrent creation that
//!   loses the race (HTTP 422, name taken) counts as done.
//! - **Redis**: a key-schema version, `<key_prefix>schema` (hash version → checksum), advanced by
//!   ordered steps under a `SET NX` lock with expiry (`<key_prefix>schema:lock`).

use async_recursion::async_recursion as boxed;
use tsp_config::InfluxApi;
use tsp_hub::MigrationReport;
use tsp_hub::{Hub, HubError, InfluxStore, RedisConn, RedisStore};

fn fnv(text: &str) -> String {
    format!("{:016x}", crate::fnv1a(text.bytes()))
}

fn refused(store: &'static str, instance: &str, message: String) -> HubError {
    HubError::store(store, instance, "migrate", message)
}

/// One InfluxDB step: statements run once, in order, on one database.
pub struct InfluxStep {
    /// The step's number: steps apply in order, once.
    pub version: i64,
    /// The database it runs on.
    pub database: String,
    /// What it does, for reports.
    pub description: String,
    /// Its InfluxQL statements.
    pub statements: Vec<String>,
}

/// The retention policy that keeps downsampled series (raw points keep the database's default).
pub const LONG_RETENTION: &str = "tsp_2y";

/// A raw measurement rolled up into hourly and daily series in [`LONG_RETENTION`]: the
/// aggregates of the continuous queries, `field` expressions with their names.
pub struct Downsampled {
    /// The raw measurement.
    pub measurement: &'static str,
    /// `sum("count") AS "trips"`, …
    pub aggregates: &'static str,
}

/// What is downsampled where: trips and jobs in the instance's database, vendor latency in the
/// service-monitor one.
const TRIP_AND_JOB_SERIES: &[Downsampled] = &[
    Downsampled {
        measurement: "trip_bookings",
        aggregates: "sum(\"count\") AS \"trips\", sum(\"distance_m\") AS \"distance_m\", \
                     sum(\"points\") AS \"points\"",
    },
    Downsampled {
        measurement: "job_execution",
        aggregates: "count(\"duration_ms\") AS \"jobs\", mean(\"duration_ms\") AS \"mean_ms\", \
                     max(\"duration_ms\") AS \"max_ms\"",
    },
];

impl Downsampled {
    /// The `SELECT … INTO` a continuous query runs, for `database` at resolution `every`
    /// (`1h`, `1d`), optionally limited to a time range (a backfill).
    pub fn select_into(&self, database: &str, every: &str, range: Option<(i64, i64)>) -> String {
        let when = match range {
            Some((from, to)) => format!(" WHERE time >= {from}ms AND time < {to}ms"),
            None => String::new(),
        };
        format!(
            "SELECT {} INTO \"{database}\".\"{LONG_RETENTION}\".\"{}_{every}\" FROM \"{database}\"..\"{}\"{when} GROUP BY time({every}), *",
            self.aggregates, self.measurement, self.measurement
        )
    }

    fn continuous_query(&self, database: &str, every: &str) -> String {
        format!(
            "CREATE CONTINUOUS QUERY \"cq_{}_{every}\" ON \"{database}\" BEGIN {} END",
            self.measurement,
            self.select_into(database, every, None)
        )
    }
}

fn database_step(version: i64, database: &str, rp: &str, duration: &str) -> InfluxStep {
    InfluxStep {
        version,
        database: database.to_string(),
        description: format!("database {database} with default retention {rp} ({duration})"),
        statements: vec![
            format!("CREATE DATABASE \"{database}\""),
            format!(
                "CREATE RETENTION POLICY \"{rp}\" ON \"{database}\" DURATION {duration} REPLICATION 1 DEFAULT"
            ),
        ],
    }
}

fn downsampling_step(version: i64, database: &str, series: &[Downsampled]) -> InfluxStep {
    let mut statements = vec![format!(
        "CREATE RETENTION POLICY \"{LONG_RETENTION}\" ON \"{database}\" DURATION 730d REPLICATION 1"
    )];
    for s in series {
        for every in ["1h", "1d"] {
            statements.push(s.continuous_query(database, every));
        }
    }
    let names: Vec<&str> = series.iter().map(|s| s.measurement).collect();
    InfluxStep {
        version,
        database: database.to_string(),
        description: format!(
            "downsampling of {} into {LONG_RETENTION} (1h, 1d)",
            names.join(", ")
        ),
        statements,
    }
}

/// The series downsampled in `database` of `store`.
pub fn downsampled(hub: &Hub, store: &InfluxStore, database: &str) -> Vec<Downsampled> {
    let sm = &hub.config().service_monitor;
    let mut out = Vec::new();
    if store.name() == tsp_config::instances::PRIMARY && database == store.settings().v1_database()
    {
        out.extend(TRIP_AND_JOB_SERIES.iter().map(|d| Downsampled {
            measurement: d.measurement,
            aggregates: d.aggregates,
        }));
    }
    if sm.instance == store.name() && database == sm.bucket {
        out.push(Downsampled {
            measurement: "vendor_latency",
            aggregates: "mean(\"latency_ms\") AS \"mean_ms\", max(\"latency_ms\") AS \"max_ms\"",
        });
    }
    out
}

impl InfluxStep {
    fn checksum(&self) -> String {
        fnv(&self.statements.join(";"))
    }
}

/// The steps of an instance: its database; the primary's also downsamples trips and jobs, and
/// the instance carrying the service-monitor database creates and downsamples that one.
pub fn influx_steps(hub: &Hub, store: &InfluxStore) -> Vec<InfluxStep> {
    let own = store.settings().v1_database().to_string();
    let mut steps = vec![database_step(1, &own, "tsp_90d", "90d")];
    let sm = &hub.config().service_monitor;
    if sm.instance == store.name() {
        steps.push(database_step(2, &sm.bucket, "tsp_30d", "30d"));
    }
    let mut version = 3;
    for db in [own, sm.bucket.clone()] {
        let series = downsampled(hub, store, &db);
        if !series.is_empty() {
            steps.push(downsampling_step(version, &db, &series));
            version += 1;
        }
    }
    steps
}

async fn influx_recorded(
    store: &InfluxStore,
    step: &InfluxStep,
) -> Result<Option<String>, HubError> {
    let q = format!(
        "SELECT last(\"checksum\") FROM \"_tsp_migrations\" WHERE \"version\" = '{}'",
        step.version
    );
    let body = match store.query_v1(&step.database, &q).await {
        Ok(b) => b,
        // Before step 1 the database does not exist yet: nothing is recorded.
        Err(e) if e.to_string().contains("database not found") => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(body
        .pointer("/results/0/series/0/values/0/1")
        .and_then(|v| v.as_str())
        .map(str::to_string))
}

/// Applies (or reports) the steps of one v1 instance.
#[boxed]
pub async fn run_influx(
    hub: &Hub,
    store: &InfluxStore,
    dry_run: bool,
) -> Result<MigrationReport, HubError> {
    let mut report = MigrationReport::new("influx", store.name(), dry_run);
    let steps = influx_steps(hub, store);
    for step in &steps {
        let name = format!("{} {}", step.version, step.description);
        let sum = step.checksum();
        match influx_recorded(store, step).await? {
            Some(found) if found == sum => {
                report.already.push(name);
                continue;
            }
            Some(_) => {
                return Err(refused(
                    "influx",
                    store.name(),
                    format!("step {name} was changed after it was applied (checksum differs)"),
                ));
            }
            None => {}
        }
        if !dry_run {
            for statement in &step.statements {
                store.query_v1(&step.database, statement).await?;
            }
            let line = format!(
                "_tsp_migrations,version={} checksum=\"{sum}\",description=\"{}\"\n",
                step.version,
                step.description.replace('"', "'")
            );
            let body = line.into_bytes();
            store
                .write_body(&step.database, body.into())
                .await
                .map_err(|e| refused("influx", store.name(), e.message().to_string()))?;
        }
        report.applied.push(name);
    }
    if !dry_run {
        let databases: Vec<&str> = steps.iter().map(|s| s.database.as_str()).collect();
        grant_app_account(store, &databases).await?;
    }
    Ok(report)
}

/// Gives the app account read and write on `databases` when `store` runs as a separate
/// migrator (see [`tsp_config::Config::as_migrator`]: its `migrate` block then names the app
/// account); nothing otherwise. Idempotent, so migrations run it every time, not as a step.
#[boxed]
pub async fn grant_app_account(store: &InfluxStore, databases: &[&str]) -> Result<(), HubError> {
    let s = store.settings();
    let app = &s.migrate.user;
    if app.is_empty() || *app == s.username {
        return Ok(());
    }
    let mut databases = databases.to_vec();
    databases.sort_unstable();
    databases.dedup();
    for db in databases {
        let grant = format!(
            "GRANT ALL ON \"{}\" TO \"{}\"",
            db.replace('"', "\\\""),
            app.replace('"', "\\\"")
        );
        store.query_v1("", &grant).await?;
    }
    Ok(())
}

/// A v2 bucket step: name and retention in seconds.
fn bucket_steps(hub: &Hub, store: &InfluxStore) -> Vec<(String, u64)> {
    let mut steps = vec![(store.settings().bucket.clone(), 90 * 86_400)];
    let sm = &hub.config().service_monitor;
    if sm.instance == store.name() && sm.bucket != store.settings().bucket {
        steps.push((sm.bucket.clone(), 30 * 86_400));
    }
    steps
}

/// The retention of a bucket as the v2 API describes it (0: forever).
fn bucket_retention(bucket: &serde_json::Value) -> u64 {
    bucket["retentionRules"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["type"] == "expire")
        .and_then(|r| r["everySeconds"].as_u64())
        .unwrap_or(0)
}

/// Creates (or reports) the buckets of one v2 instance.
#[boxed]
pub async fn run_influx_v2(
    hub: &Hub,
    store: &InfluxStore,
    dry_run: bool,
) -> Result<MigrationReport, HubError> {
    use reqwest::Method;
    let mut report = MigrationReport::new("influx", store.name(), dry_run);
    let org = store.settings().org.clone();
    let orgs = store
        .api_v2(Method::GET, "/api/v2/orgs", &[("org", org.as_str())], None)
        .await?;
    let org_id = orgs["orgs"][0]["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| {
            refused(
                "influx",
                store.name(),
                format!("no organisation named `{org}`"),
            )
        })?;
    for (bucket, seconds) in bucket_steps(hub, store) {
        let name = format!("bucket {bucket} with retention {}d", seconds / 86_400);
        let found = store
            .api_v2(
                Method::GET,
                "/api/v2/buckets",
                &[("orgID", org_id.as_str()), ("name", bucket.as_str())],
                None,
            )
            .await?;
        if let Some(existing) = found["buckets"].as_array().and_then(|b| b.first()) {
            let have = bucket_retention(existing);
            if have != seconds {
                return Err(refused(
                    "influx",
                    store.name(),
                    format!(
                        "bucket {bucket} exists with retention {have}s, this release wants {seconds}s"
                    ),
                ));
            }
            report.already.push(name);
            continue;
        }
        if !dry_run {
            let body = serde_json::json!({
                "orgID": org_id,
                "name": bucket,
                "description": "created by tsp-job migrate",
                "retentionRules": [{"type": "expire", "everySeconds": seconds}],
            });
            match store
                .api_v2(Method::POST, "/api/v2/buckets", &[], Some(&body))
                .await
            {
                Ok(_) => {}
                Err(e) if e.to_string().contains("HTTP 422") => {
                    report.already.push(name);
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        report.applied.push(name);
    }
    Ok(report)
}

/// One Redis key-schema step. `apply` transforms data written under the previous layout; the
/// first step marks the layout this build writes (nothing older exists to transform).
pub struct RedisStep {
    /// The step's number: steps apply in order, once.
    pub version: i64,
    /// What it does, for reports.
    pub description: &'static str,
}

/// The ordered Redis key-schema steps.
pub fn redis_steps() -> Vec<RedisStep> {
    vec![
        RedisStep {
            version: 1,
            description: "queues under <prefix>q:{<queue>}: (sorted sets; data and lease hashes by job id); marks under <prefix>marks:",
        },
        RedisStep {
            version: 2,
            description: "queues: completed jobs in the list `done`, their finish time in the lease record (was the sorted set `completed`); a first attempt has a lease record only once it finishes or heartbeats",
        },
    ]
}

/// Transforms the data of the layout before `version` (version 1 marks the first layout).
async fn apply_redis_step(store: &RedisStore, version: i64) -> Result<(), HubError> {
    if version == 2 {
        let n = tsp_queue::Queue::upgrade_all(store)
            .await
            .map_err(|e| refused("redis", store.name(), format!("converting queues: {e}")))?;
        tracing::info!(
            instance = store.name(),
            jobs = n,
            "converted completed jobs"
        );
    }
    Ok(())
}

/// Records (or reports) the key-schema steps of one Redis instance.
#[boxed]
pub async fn run_redis(store: &RedisStore, dry_run: bool) -> Result<MigrationReport, HubError> {
    let mut conn = store.conn().await?;
    let key = format!("{}schema", store.key_prefix());
    let lock = format!("{key}:lock");
    // A lock with an expiry: a runner that dies cannot hold it forever.
    let token = format!("{}-{}", std::process::id(), rand_token());
    if !dry_run {
        lock_schema(store, &mut conn, &lock, &token).await?;
    }
    let result = redis_steps_on(store, &mut conn, &key, dry_run).await;
    if !dry_run {
        // Release only our own lock.
        let _: redis::RedisResult<i64> = redis::Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
        )
        .key(&lock)
        .arg(&token)
        .invoke_async(&mut conn)
        .await;
    }
    result
}

/// Takes the schema lock under `token`, waiting for another runner up to a minute.
async fn lock_schema(
    store: &RedisStore,
    conn: &mut RedisConn,
    lock: &str,
    token: &str,
) -> Result<(), HubError> {
    for _ in 0..=600 {
        let got: Option<String> = redis::cmd("SET")
            .arg(lock)
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(60_000)
            .query_async(conn)
            .await
            .map_err(|e| store.command_error("set", &e))?;
        if got.is_some() {
            return Ok(());
        }
        tokio_sleep_100ms().await;
    }
    Err(refused(
        "redis",
        store.name(),
        "another migration held the schema lock for a minute".into(),
    ))
}

/// Applies (or, dry, reports) each step not yet recorded in `key`; refuses a recorded step
/// whose checksum changed.
async fn redis_steps_on(
    store: &RedisStore,
    conn: &mut RedisConn,
    key: &str,
    dry_run: bool,
) -> Result<MigrationReport, HubError> {
    let err = |op: &str, e: redis::RedisError| store.command_error(op, &e);
    let mut report = MigrationReport::new("redis", store.name(), dry_run);
    for step in redis_steps() {
        let name = format!("{} {}", step.version, step.description);
        let sum = fnv(step.description);
        let found: Option<String> = redis::cmd("HGET")
            .arg(key)
            .arg(step.version)
            .query_async(conn)
            .await
            .map_err(|e| err("hget", e))?;
        match found {
            Some(f) if f == sum => report.already.push(name),
            Some(_) => {
                return Err(refused(
                    "redis",
                    store.name(),
                    format!("step {name} was changed after it was applied (checksum differs)"),
                ));
            }
            None => {
                if !dry_run {
                    apply_redis_step(store, step.version).await?;
                    let _: i64 = redis::cmd("HSET")
                        .arg(key)
                        .arg(step.version)
                        .arg(&sum)
                        .query_async(conn)
                        .await
                        .map_err(|e| err("hset", e))?;
                }
                report.applied.push(name);
            }
        }
    }
    Ok(report)
}

fn rand_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{nanos:08x}")
}

async fn tokio_sleep_100ms() {
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
}

/// Migrates every InfluxDB (v1) and Redis instance.
#[boxed]
pub async fn run_all(
    hub: &Hub,
    dry_run: bool,
) -> Result<Vec<MigrationReport>, (Vec<MigrationReport>, HubError)> {
    let mut reports = Vec::new();
    for store in hub.influx_instances() {
        let run = match store.settings().api {
            InfluxApi::V1 => run_influx(hub, store, dry_run).await,
            _ => run_influx_v2(hub, store, dry_run).await,
        };
        match run {
            Ok(r) => reports.push(r),
            Err(e) => return Err((reports, e)),
        }
    }
    for store in hub.redis_instances() {
        match run_redis(store, dry_run).await {
            Ok(r) => reports.push(r),
            Err(e) => return Err((reports, e)),
        }
    }
    Ok(reports)
}
