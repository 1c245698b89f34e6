//! The benchmarks run small and check their own reports: each measures what it says, on the
//! real stores (figures are not checked here; docs/benchmarks.md has them).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::process::Output;

use serde_json::Value;

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    tsp_testkit::command(env!("CARGO_BIN_EXE_tsp-bench"), env)
        .args(args)
        .output()
        .expect("run tsp-bench")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `--set` arguments that put a benchmark in its own key space, without job records.
fn sets(prefix: &str) -> Vec<String> {
    let records_off = ["queue.records.mongo=false", "queue.records.influx=false"];
    let mut sets = vec![format!("redis.cache.key_prefix={prefix}")];
    sets.extend(records_off.map(String::from));
    sets
}

/// Runs `args` with `--set` for each of `sets`; its standard output, once it succeeded.
fn cli(args: &[&str], sets: &[String]) -> String {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    for s in sets {
        all.push("--set".into());
        all.push(s.clone());
    }
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = run(&refs, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{all:?}: {stderr}");
    stdout
}

#[test]
fn the_http_benchmark_reports_reads_and_logins_under_many_clients() {
    let out = run(
        &[
            "http",
            "--connections",
            "4",
            "--seconds",
            "0.5",
            "--login-clients",
            "12",
            "--login-seconds",
            "1",
        ],
        &[("TSP_LOG", "warn")],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    for variant in ["none", "auth_and_limits", "full"] {
        assert!(
            report["variants"][variant]["requests"].as_u64().unwrap() > 0,
            "{report}"
        );
    }
    let login = &report["login"];
    assert_eq!(login["clients"], 12, "{report}");
    assert!(login["logins"].as_u64().unwrap() >= 12, "{report}");
    assert_eq!(login["refused"], 0, "{report}");
    assert!(login["p99_ms"].as_f64().unwrap() >= login["p50_ms"].as_f64().unwrap());
    assert!(login["rss_peak_mib"].as_f64().unwrap() >= login["rss_before_mib"].as_f64().unwrap());
}

/// `bench backup`, small: each store's set and tools alone are timed, the Redis snapshot holds
/// the trips queue's completed jobs, and every part the sets made was restored.
#[test]
fn the_backup_benchmark_times_each_store_beside_its_own_tools() {
    let out = run(&["backup", "--trips", "300"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let stores = v["stores"].as_array().unwrap();
    let names: Vec<_> = stores
        .iter()
        .map(|s| s["store"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mysql", "redis", "influx"]);
    for s in stores {
        for field in [
            "backup_s",
            "native_backup_s",
            "restore_s",
            "raw_mb",
            "ratio",
        ] {
            assert!(s[field].as_f64().unwrap() > 0.0, "{field}: {s}");
        }
    }
    assert!(v["ratio"].as_f64().unwrap() > 0.0, "{v}");
}

#[test]
fn benchmark_durations_that_are_not_seconds_are_refused_before_any_work() {
    for (flag, value) in [
        ("--seconds", "-1"),
        ("--settle-max", "NaN"),
        ("--seconds", "1e9"),
        ("--settle-max", "soon"),
    ] {
        let out = run(&["hub", &format!("{flag}={value}")], &[]);
        let (_, err) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(
            err.contains(flag) && err.contains(value),
            "{flag} {value}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// `bench console` runs on a small queue and checks its own answers.
#[test]
fn the_console_benchmark_runs_and_checks_its_pages() {
    let out = run(&["console", "--jobs", "300", "--requests", "2"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["jobs_waiting"], 290);
    assert_eq!(v["pages"].as_array().unwrap().len(), 7);
    assert!(v["pages"][0]["p50_ms"].as_f64().unwrap() > 0.0);
    assert!(v["cancel_last_in_line_ms"].as_f64().is_some());
}

/// The benchmarks measure what they say on a small scale: `bench trips --compare --ceiling`
/// completes every trip in both modes with every store's count agreeing, and `bench gtfs`
/// loads the same rows as the bare load. (Their own sandboxes; figures are not checked here.)
#[test]
fn the_trip_and_gtfs_benchmarks_check_their_own_counts() {
    let out = run(
        &[
            "trips",
            "--compare",
            "--ceiling",
            "--trips",
            "40",
            "--users",
            "5",
        ],
        &[("TSP_LOG", "error")],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for mode in ["batched", "per_job"] {
        assert_eq!(r[mode]["completed"], 40, "{mode}: {r}");
        assert_eq!(r[mode]["counts_agree"], true, "{mode}: {r}");
        assert_eq!(r[mode]["counts"]["job_records"], 40, "{mode}: {r}");
    }
    // One job at a time, each trip's lock holds a `dataset` connection: never more trips
    // locked at once than the pool. In batches, one connection holds a batch's locks: the 40
    // trips enqueued at once are fetched, and locked, together.
    let pool = r["per_job"]["dataset_pool"].as_u64().unwrap();
    assert!(
        r["per_job"]["peak_trips_locked"].as_u64().unwrap() <= pool,
        "{r}"
    );
    assert!(
        r["batched"]["peak_trips_locked"].as_u64().unwrap() > pool,
        "{r}"
    );
    assert_eq!(r["ceiling_before"]["trips"], 40, "{r}");
    assert!(r["first_of_ceiling"].as_f64().unwrap() > 0.0, "{r}");
    // The bound on what batches can gain: the ceiling over the per-job rate of the same run.
    let f = |v: &serde_json::Value| v.as_f64().unwrap();
    let bound = f(&r["ceiling_trips_per_s"]) / f(&r["per_job"]["trips_per_s"]);
    assert!((f(&r["ceiling_over_per_job"]) - bound).abs() < 1e-9, "{r}");
    let cairns = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/gtfs-cairns/cairns_gtfs.zip"
    );
    let out = run(
        &["gtfs", "--path", cairns, "--trips", "0"],
        &[("TSP_LOG", "error")],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(r["rows"], 62_365, "{r}");
    assert!(r["import_over_bare"].as_f64().unwrap() > 0.0, "{r}");
}

#[test]
fn the_hub_benchmark_reports_each_store_and_the_redis_servers_counters() {
    let (prefix, _cleanup) = tsp_testkit::RedisKeys::fresh("b");
    let out = cli(
        &[
            "hub",
            "--points",
            "2000",
            "--single-points",
            "20",
            "--seconds",
            "0.3",
            "--health-rounds",
            "2",
            "--writer-rounds",
            "2",
            // Servers shared with parallel tests are seldom idle; the test checks the report.
            "--settle-max",
            "0",
        ],
        &sets(&prefix),
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for rate in [
        "/influx_writer/points_per_s",
        "/influx_raw_http/points_per_s",
        "/mysql_select_1/queries_per_s",
        "/redis_get/ops_per_s",
    ] {
        assert!(
            v.pointer(rate).unwrap().as_f64().unwrap() > 0.0,
            "{rate}: {v}"
        );
    }
    // Two rounds, one share each, and their median.
    let shares = v["influx_raw_http"]["writer_shares"].as_array().unwrap();
    assert_eq!(shares.len(), 2, "{v}");
    let mean = (shares[0].as_f64().unwrap() + shares[1].as_f64().unwrap()) / 2.0;
    let share = v["influx_raw_http"]["writer_share"].as_f64().unwrap();
    assert!((share - mean).abs() < 0.011, "{v}");
    // The server's own counters around the GET run. Other tests share the server, so only
    // their presence and sign are certain here.
    for counter in [
        "/redis_get/server_commands_per_read",
        "/redis_get/server_us_per_get",
    ] {
        assert!(
            v.pointer(counter).unwrap().as_f64().unwrap() > 0.0,
            "{counter}: {v}"
        );
    }
    // The GET key lives under the run's prefix.
    let mut conn = tsp_testkit::redis_client().get_connection().unwrap();
    let key: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}bench:get"))
        .query(&mut conn)
        .unwrap();
    assert_eq!(key.as_deref(), Some("x".repeat(64).as_str()));
}

#[test]
fn the_queue_benchmark_reports_its_rates_on_the_threads_configured() {
    let (prefix, _cleanup) = tsp_testkit::RedisKeys::fresh("b");
    let mut s = sets(&prefix);
    // Not the default on any machine without exactly three cores.
    s.push("server.threads=3".into());
    let out = cli(
        &[
            "queue",
            "--jobs",
            "3000",
            "--records",
            "off",
            "--load-rate",
            "2000",
            "--load-seconds",
            "1",
        ],
        &s,
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["threads"], 3, "{v}");
    assert_eq!(v["jobs"], 3000, "{v}");
    for rate in ["enqueue_per_s", "process_per_s"] {
        assert!(v[rate].as_f64().unwrap() > 0.0, "{v}");
    }
    // Under a steady load: every job timed from enqueue to completion in the sample.
    let load = &v["latency_under_load"];
    assert_eq!(load["jobs"], 2000, "{v}");
    assert_eq!(load["sampled"], 2000, "{v}");
    let p50 = load["enqueue_to_completion_ms"]["p50"].as_f64().unwrap();
    let p99 = load["enqueue_to_completion_ms"]["p99"].as_f64().unwrap();
    assert!(0.0 <= p50 && p50 <= p99, "{v}");
    // The benchmark removes its queue: nothing of it is left under the prefix.
    let client = tsp_testkit::redis_client();
    let mut conn = client.get_connection().unwrap();
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}q:*"))
        .query(&mut conn)
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}
