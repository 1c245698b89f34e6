//! The fixed sections (`queue`, `trips`, `cache`, …), read into their settings, with the rules
//! that span keys or sections.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Builder;
use crate::schema::{self, Field};
use crate::settings::{
    AuthSettings, CacheSettings, InfluxSettings, JobBatchSettings, QueueSettings, RedisSettings,
    ScheduleSettings, ServerSettings, ServiceMonitorSettings, TripSettings,
};

/// A section without rules beyond its keys' types.
pub(super) fn plain<T: DeserializeOwned>(
    b: &mut Builder,
    prefix: &str,
    fields: &'static [Field],
) -> Option<T> {
    let v = b.section(prefix, fields, "");
    b.typed(v)
}

pub(super) fn server(b: &mut Builder) -> Option<ServerSettings> {
    let s: ServerSettings = plain(b, "server", &schema::SERVER_FIELDS)?;
    if let Err(e) = crate::networks(&s.trusted_proxies) {
        b.problem("server.trusted_proxies", e);
    }
    Some(s)
}

pub(super) fn service_monitor(
    b: &mut Builder,
    influx: &BTreeMap<String, InfluxSettings>,
) -> Option<ServiceMonitorSettings> {
    let prefix = "influx.service_monitor";
    let s: ServiceMonitorSettings = plain(b, prefix, &schema::SERVICE_MONITOR_FIELDS)?;
    if !influx.contains_key(&s.instance) {
        b.problem(
            &format!("{prefix}.instance"),
            format!("no influx instance named `{}`", s.instance),
        );
    }
    if s.measurement.is_empty() {
        b.problem(&format!("{prefix}.measurement"), "must not be empty");
    }
    Some(s)
}

fn check_redis_instance(
    b: &mut Builder,
    key: &str,
    name: &str,
    redis: &BTreeMap<String, RedisSettings>,
) {
    if !redis.contains_key(name) {
        b.problem(key, format!("no redis instance named `{name}`"));
    }
}

pub(super) fn queue(
    b: &mut Builder,
    redis: &BTreeMap<String, RedisSettings>,
) -> Option<QueueSettings> {
    let q: QueueSettings = plain(b, "queue", &schema::QUEUE_FIELDS)?;
    check_redis_instance(b, "queue.redis", &q.redis, redis);
    if q.lease < Duration::from_secs(1) {
        b.problem(
            "queue.lease",
            "at least 1s: heartbeats run every third of it",
        );
    }
    Some(q)
}

pub(super) fn trips(b: &mut Builder) -> Option<TripSettings> {
    let mut v = b.section("trips", &schema::TRIP_FIELDS, "");
    // `any` is the schema's word for "no particular step".
    if v.get("fault.step").as_str() == Some("any") {
        v.set("fault.step", Value::Null);
    }
    let t: TripSettings = b.typed(v)?;
    if !queue_name_ok(&t.queue) {
        b.problem(
            "trips.queue",
            "1-64 characters: letters, digits, `.`, `_`, `-`",
        );
    }
    Some(t)
}

pub(super) fn cache(
    b: &mut Builder,
    redis: &BTreeMap<String, RedisSettings>,
) -> Option<CacheSettings> {
    let c: CacheSettings = plain(b, "cache", &schema::CACHE_FIELDS)?;
    check_redis_instance(b, "cache.redis", &c.redis, redis);
    Some(c)
}

pub(super) fn auth(
    b: &mut Builder,
    redis: &BTreeMap<String, RedisSettings>,
) -> Option<AuthSettings> {
    let a: AuthSettings = plain(b, "auth", &schema::AUTH_FIELDS)?;
    check_redis_instance(b, "auth.redis", &a.redis, redis);
    if a.session_max < a.session_ttl {
        b.problem(
            "auth.session_max",
            "must be at least `auth.session_ttl`: the cap cannot be shorter than one idle period",
        );
    }
    Some(a)
}

/// Every `queue.batch.<type>` section, by job type.
pub(super) fn batches(b: &mut Builder) -> BTreeMap<String, JobBatchSettings> {
    let mut types: Vec<String> = b
        .entries
        .keys()
        .filter_map(|k| match schema::resolve(k) {
            Ok(schema::Resolved::Batch { job_type, .. }) => Some(job_type.to_string()),
            _ => None,
        })
        .collect();
    types.sort();
    types.dedup();
    let mut out = BTreeMap::new();
    for job_type in types {
        let prefix = format!("queue.batch.{job_type}");
        let v = b.section(&prefix, &schema::BATCH_FIELDS, &job_type);
        if let Some(s) = b.typed::<JobBatchSettings>(v) {
            out.insert(job_type, s);
        }
    }
    out
}

/// Every `schedules.<name>` section, by name, with the rules a schedule needs here (the queue
/// crate checks the cron expression and the zone when it loads the schedule).
pub(super) fn schedules(b: &mut Builder) -> BTreeMap<String, ScheduleSettings> {
    let mut names: Vec<String> = b
        .entries
        .keys()
        .filter_map(|k| match schema::resolve(k) {
            Ok(schema::Resolved::Schedule { name, .. }) => Some(name.to_string()),
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    let mut out = BTreeMap::new();
    for name in names {
        let prefix = format!("schedules.{name}");
        let v = b.section(&prefix, &schema::SCHEDULE_FIELDS, &name);
        let Some(s) = b.typed::<ScheduleSettings>(v) else {
            continue;
        };
        if s.cron.is_some() == s.every.is_some() {
            b.problem(&format!("{prefix}.cron"), "give either `cron` or `every`");
        }
        if s.job_type.is_none() {
            b.problem(&format!("{prefix}.type"), "required");
        }
        if serde_json::from_str::<serde_json::Value>(&s.payload).is_err() {
            b.problem(&format!("{prefix}.payload"), "not JSON");
        }
        if !queue_name_ok(&s.queue) {
            b.problem(
                &format!("{prefix}.queue"),
                "1-64 characters: letters, digits, `.`, `_`, `-`",
            );
        }
        out.insert(name, s);
    }
    out
}

/// The queue's rule for names (`tsp_queue::valid_queue_name`), here too so a bad `trips.queue`
/// fails at load; the config crate sits below the queue crate.
fn queue_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
