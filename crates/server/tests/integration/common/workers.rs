//! Worker processes on a key space of their own: enqueue with the CLI, spawn workers, read the
//! queue's counts, signal them.

use std::process::{Child, Stdio};
use std::time::Duration;

use super::{run, text, tsp_job};

/// A fresh Redis key prefix, removed when the guard drops.
pub fn prefix() -> (String, tsp_testkit::RedisKeys) {
    tsp_testkit::RedisKeys::fresh("w")
}

/// `--set` arguments that put a test in its own key space with a short lease.
pub fn sets(prefix: &str) -> Vec<String> {
    vec![
        format!("redis.cache.key_prefix={prefix}"),
        "queue.lease=2s".into(),
        "queue.records.mongo=false".into(),
        "queue.records.influx=false".into(),
    ]
}

/// `args` followed by `--set` for each of `sets`.
pub fn with_sets(args: &[&str], sets: &[String]) -> Vec<String> {
    let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    for s in sets {
        v.push("--set".into());
        v.push(s.clone());
    }
    v
}

/// Runs `tsp-job args` with `sets`; its stdout, or a failed test naming its stderr.
pub fn cli(args: &[&str], sets: &[String]) -> String {
    let args = with_sets(args, sets);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&refs, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{args:?}: {stderr}");
    stdout
}

/// A `tsp-job worker` with `extra` arguments, logging warnings only, stdout piped (its report).
pub fn spawn_worker(extra: &[&str], sets: &[String]) -> Child {
    let args = with_sets(&[&["worker"], extra].concat(), sets);
    tsp_job(&[("TSP_LOG", "warn")])
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `jobs stats` of the `default` queue.
pub fn counts(sets: &[String]) -> serde_json::Value {
    let out = cli(&["jobs", "stats", "--json"], sets);
    let all: serde_json::Value = serde_json::from_str(&out).unwrap();
    all.as_array()
        .and_then(|a| a.iter().find(|q| q["queue"] == "default").cloned())
        .unwrap_or(serde_json::json!({}))
}

/// A count of [`counts`], 0 when absent.
pub fn n(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

/// Waits, bounded by `limit`, until `ok`.
pub fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    tsp_testkit::eventually_blocking(what, limit, || if ok() { Ok(()) } else { Err("no") });
}

/// Sends `sig` (`-TERM`, `-KILL`) to `child`.
pub fn signal(child: &Child, sig: &str) {
    std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
}
