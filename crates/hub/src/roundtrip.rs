//! A round trip: write something to every store instance and read it back.
//!
//! Leaves nothing behind: MySQL uses a temporary table, Redis a key that is deleted (and
//! expires anyway), Mongo a document that is deleted. Influx points stay (measurement
//! `hub_roundtrip`), as points do.

use std::time::{Duration, Instant};

use async_recursion::async_recursion as boxed;
use futures::FutureExt;
use futures::future::BoxFuture;
use mongodb::bson::doc;
use rand::Rng;

use crate::{Hub, HubError, InfluxStore, MongoStore, MysqlStore, Point, RedisStore};

/// The outcome for one instance.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoundtripOutcome {
    /// `mysql`, `redis`, `mongo` or `influx`.
    pub store: &'static str,
    /// The instance's name in the configuration.
    pub instance: String,
    /// Whether the service needs it to start.
    pub required: bool,
    /// Whether what was written was read back.
    pub ok: bool,
    /// How long the round trip took.
    pub ms: f64,
    /// What was done, or the (redacted) error.
    pub detail: String,
}

fn run_id() -> String {
    format!("{:016x}", rand::rng().random::<u64>())
}

async fn mysql(s: &MysqlStore, id: &str) -> Result<String, HubError> {
    // A temporary table lives on one connection, so hold one for the whole exchange.
    let mut conn = s.timed("acquire", s.pool().acquire()).await?;
    s.timed(
        "create_temporary_table",
        sqlx::query("CREATE TEMPORARY TABLE hub_roundtrip (id VARCHAR(32) PRIMARY KEY, note VARCHAR(64) NOT NULL)")
            .execute(&mut *conn),
    )
    .await?;
    s.timed(
        "insert",
        sqlx::query("INSERT INTO hub_roundtrip (id, note) VALUES (?, ?)")
            .bind(id)
            .bind("tsp-job roundtrip ✓")
            .execute(&mut *conn),
    )
    .await?;
    let (note,): (String,) = s
        .timed(
            "select",
            sqlx::query_as("SELECT note FROM hub_roundtrip WHERE id = ?")
                .bind(id)
                .fetch_one(&mut *conn),
        )
        .await?;
    s.timed(
        "drop_table",
        sqlx::query("DROP TEMPORARY TABLE hub_roundtrip").execute(&mut *conn),
    )
    .await?;
    if note != "tsp-job roundtrip ✓" {
        return Err(mismatch("mysql", s.name(), &note));
    }
    Ok("temporary table insert + select".into())
}

fn mismatch(store: &'static str, instance: &str, got: &str) -> HubError {
    HubError::store(
        store,
        instance,
        "roundtrip",
        format!("read back {got:?}, not what was written"),
    )
}

async fn redis(s: &RedisStore, id: &str) -> Result<String, HubError> {
    let mut conn = s.conn().await?;
    let key = format!("{}roundtrip:{id}", s.key_prefix());
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("ok ✓")
        .arg("EX")
        .arg(60)
        .query_async(&mut conn)
        .await
        .map_err(|e| s.command_error("set", &e))?;
    let got: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .map_err(|e| s.command_error("get", &e))?;
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .map_err(|e| s.command_error("del", &e))?;
    if got != "ok ✓" {
        return Err(mismatch("redis", s.name(), &got));
    }
    Ok(format!("SET/GET/DEL {key}"))
}

async fn mongo(s: &MongoStore, id: &str) -> Result<String, HubError> {
    let coll = s
        .database()
        .collection::<mongodb::bson::Document>("hub_roundtrip");
    s.timed("insert", coll.insert_one(doc! {"_id": id, "note": "ok ✓"}))
        .await?;
    let found = s.timed("find", coll.find_one(doc! {"_id": id})).await?;
    s.timed("delete", coll.delete_one(doc! {"_id": id})).await?;
    let note = found
        .as_ref()
        .and_then(|d| d.get_str("note").ok())
        .unwrap_or_default()
        .to_string();
    if note != "ok ✓" {
        return Err(mismatch("mongo", s.name(), &note));
    }
    Ok(format!(
        "insert/find/delete in {}.hub_roundtrip",
        s.database_name()
    ))
}

async fn influx(s: &InfluxStore, id: &str) -> Result<String, HubError> {
    const POINTS: i64 = 100;
    let writer = s.writer();
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    for n in 0..POINTS {
        let p = Point::new("hub_roundtrip")
            .tag("run", id)
            .field("n", n)
            .timestamp_ns(base + n);
        writer
            .write(&p)
            .map_err(|e| HubError::store("influx", s.name(), "write", e.to_string()))?;
    }
    writer.flush().await;
    let count = match s.settings().api {
        tsp_config::InfluxApi::V1 => {
            let q = format!("SELECT count(n) FROM hub_roundtrip WHERE run = '{id}'");
            let body = s.query_v1(writer.target(), &q).await?;
            body.pointer("/results/0/series/0/values/0/1")
                .and_then(|v| v.as_i64())
                .unwrap_or(0)
        }
        tsp_config::InfluxApi::V2 => {
            let flux = format!(
                "from(bucket: \"{}\") |> range(start: -1h) |> filter(fn: (r) => r._measurement == \"hub_roundtrip\" and r.run == \"{id}\") |> count()",
                writer.target()
            );
            let csv = s.query_flux(&flux).await?;
            csv.lines()
                .filter_map(|l| l.rsplit(',').next())
                .filter_map(|v| v.trim().parse::<i64>().ok())
                .sum()
        }
    };
    if count != POINTS {
        return Err(mismatch("influx", s.name(), &format!("{count} points")));
    }
    Ok(format!(
        "{POINTS} points written and counted in {}",
        writer.target()
    ))
}

/// One instance's round trip: store, instance, required, the work.
type Check<'a> = (
    &'static str,
    String,
    bool,
    BoxFuture<'a, Result<String, HubError>>,
);

impl Hub {
    /// Writes something to every store instance and reads it back, all concurrently, each bounded
    /// by `timeout` (`tsp-job roundtrip`).
    #[boxed]
    pub async fn roundtrip(&self, timeout: Duration) -> Vec<RoundtripOutcome> {
        let id = run_id();
        let check = |store, name: &str, required, work| -> Check<'_> {
            (store, name.to_string(), required, work)
        };
        let runs = self
            .mysql_instances()
            .map(|s| check("mysql", s.name(), s.required(), mysql(s, &id).boxed()))
            .chain(
                self.redis_instances()
                    .map(|s| check("redis", s.name(), s.required(), redis(s, &id).boxed())),
            )
            .chain(
                self.mongo_instances()
                    .map(|s| check("mongo", s.name(), s.required(), mongo(s, &id).boxed())),
            )
            .chain(
                self.influx_instances()
                    .map(|s| check("influx", s.name(), s.required(), influx(s, &id).boxed())),
            )
            .map(|(store, instance, required, fut)| async move {
                let started = Instant::now();
                let result = tokio::time::timeout(timeout, fut).await;
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                let (ok, detail) = match result {
                    Ok(Ok(d)) => (true, d),
                    Ok(Err(e)) => (false, e.to_string()),
                    Err(_) => (false, format!("no answer within {timeout:?}")),
                };
                RoundtripOutcome {
                    store,
                    instance,
                    required,
                    ok,
                    ms,
                    detail: self.redactor().clean(detail),
                }
            });
        futures::future::join_all(runs).await
    }
}
