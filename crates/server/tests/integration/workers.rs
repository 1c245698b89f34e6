//! Worker processes against the real Redis: a worker killed with SIGKILL loses nothing; four
//! workers run each of 50 000 jobs exactly once; SIGTERM under load finishes or returns every
//! job; the HTTP job API.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use crate::common;

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::workers::{
    cli, counts, n, prefix, sets, signal, spawn_worker, wait_for, with_sets,
};
use crate::common::{Server, run, text, tsp_job};

fn marks(prefix: &str, set: &str) -> HashMap<String, i64> {
    let mut cmd = redis::cmd("HGETALL");
    cmd.arg(format!("{prefix}marks:{set}"));
    if let Ok(seeds) = std::env::var("TSP_TEST_REDIS_CLUSTER") {
        let nodes: Vec<String> = seeds.split(',').map(|n| format!("redis://{n}/")).collect();
        let cluster = redis::cluster::ClusterClient::new(nodes).unwrap();
        return cmd.query(&mut cluster.get_connection().unwrap()).unwrap();
    }
    cmd.query(&mut tsp_testkit::redis_client().get_connection().unwrap())
        .unwrap()
}

/// Enqueues 60 jobs of `job_type`; worker A takes 40 and is SIGKILLed holding them (then
/// `after_kill` runs); worker B completes all 60 once A's leases expire (2 s). The final counts.
fn kill_a_worker_holding_40_of_60(
    s: &[String],
    job_type: &str,
    payload: &str,
    after_kill: impl FnOnce(),
) -> serde_json::Value {
    cli(
        &["enqueue", job_type, "--payload", payload, "--count", "60"],
        s,
    );
    let mut a = spawn_worker(&["--concurrency", "40"], s);
    wait_for("worker A to hold 40 jobs", Duration::from_secs(20), || {
        n(&counts(s), "active") == 40
    });
    signal(&a, "-KILL");
    a.wait().unwrap();
    after_kill();
    let mut b = spawn_worker(&["--concurrency", "100"], s);
    wait_for("every job to complete", Duration::from_secs(60), || {
        n(&counts(s), "completed") == 60
    });
    signal(&b, "-TERM");
    assert!(b.wait().unwrap().success());
    counts(s)
}

#[test]
fn a_killed_worker_loses_no_job() {
    let (p, _cleanup) = prefix();
    let s = sets(&p);
    let c = kill_a_worker_holding_40_of_60(&s, "builtin.sleep", r#"{"ms": 1500}"#, || {});
    assert_eq!(
        (n(&c, "dead"), n(&c, "active"), n(&c, "waiting")),
        (0, 0, 0),
        "{c}"
    );
    assert_eq!(c["totals"]["stalled"], 40, "{c}");
}

#[test]
fn a_worker_killed_mid_batch_loses_no_job_and_each_runs_once_elsewhere() {
    let (p, _cleanup) = prefix();
    let s = sets(&p);
    let set = "killed-mid-batch";
    // builtin.mark is a batch handler: each batch sleeps, then marks all its jobs at once.
    let payload = format!(r#"{{"set": "{set}", "ms": 1500}}"#);
    let c = kill_a_worker_holding_40_of_60(&s, "builtin.mark", &payload, || {
        assert!(
            marks(&p, set).is_empty(),
            "A was killed before any batch marked"
        );
    });
    let m = marks(&p, set);
    assert_eq!(m.len(), 60, "every job ran");
    assert!(m.values().all(|v| *v == 1), "{m:?}");
    assert_eq!(c["totals"]["stalled"], 40, "{c}");
}

#[test]
fn four_workers_run_each_of_50000_jobs_exactly_once() {
    let (p, _cleanup) = prefix();
    let s = sets(&p);
    let set = "exactly-once";
    cli(
        &[
            "enqueue",
            "builtin.mark",
            "--payload",
            &format!(r#"{{"set": "{set}"}}"#),
            "--count",
            "50000",
        ],
        &s,
    );
    let mut workers: Vec<Child> = (0..4)
        .map(|_| spawn_worker(&["--concurrency", "64"], &s))
        .collect();
    wait_for("the queue to drain", Duration::from_secs(300), || {
        let c = counts(&s);
        n(&c, "completed") == 50_000 || n(&c, "dead") > 0
    });
    let mut per_worker = Vec::new();
    for w in &mut workers {
        signal(w, "-TERM");
    }
    for w in workers {
        let out = w.wait_with_output().unwrap();
        assert!(out.status.success());
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        per_worker.push(report["completed"].as_u64().unwrap());
    }
    assert_eq!(per_worker.iter().sum::<u64>(), 50_000, "{per_worker:?}");
    assert!(
        per_worker.iter().all(|c| *c > 0),
        "every worker took part: {per_worker:?}"
    );
    let m = marks(&p, set);
    assert_eq!(m.len(), 50_000, "every job ran");
    let twice: Vec<_> = m.iter().filter(|(_, v)| **v != 1).collect();
    assert!(twice.is_empty(), "{} jobs ran more than once", twice.len());
    let c = counts(&s);
    assert_eq!(
        (n(&c, "dead"), n(&c, "active"), n(&c, "waiting")),
        (0, 0, 0),
        "{c}"
    );
}

#[test]
fn sigterm_under_load_loses_nothing_and_leaves_nothing_active() {
    let (p, _cleanup) = prefix();
    let mut s = sets(&p);
    s.push("queue.shutdown_grace=500ms".into());
    // The 5 s jobs first and at a higher priority: they are certainly leased and running when
    // the signal comes, and the grace period cannot cover them.
    cli(
        &[
            "enqueue",
            "builtin.sleep",
            "--payload",
            r#"{"ms": 5000}"#,
            "--priority",
            "9",
            "--count",
            "5",
        ],
        &s,
    );
    cli(
        &[
            "enqueue",
            "builtin.sleep",
            "--payload",
            r#"{"ms": 300}"#,
            "--count",
            "400",
        ],
        &s,
    );
    let mut w = spawn_worker(&["--concurrency", "50"], &s);
    wait_for("some jobs to complete", Duration::from_secs(20), || {
        n(&counts(&s), "completed") >= 50
    });
    let c = counts(&s);
    assert!(n(&c, "active") >= 5, "the long jobs are running: {c}");
    signal(&w, "-TERM");
    let started = Instant::now();
    let status = w.wait().unwrap();
    assert!(status.success());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let mut out = String::new();
    std::io::Read::read_to_string(&mut w.stdout.take().unwrap(), &mut out).unwrap();
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let released = report["released"].as_u64().unwrap();
    assert!(released >= 5, "the 5 s jobs were handed back: {report}");
    let c = counts(&s);
    assert_eq!(n(&c, "active"), 0, "nothing left active: {c}");
    assert_eq!(n(&c, "completed") + n(&c, "waiting"), 405, "{c}");
    assert_eq!(n(&c, "dead"), 0);
    let returned: u64 = 405 - n(&c, "completed");
    assert!(
        returned >= released,
        "every job handed back waits again: {c}"
    );

    // The returned jobs run later, their interrupted attempt not counted.
    let mut again = spawn_worker(&["--concurrency", "100"], &s);
    wait_for("the rest to complete", Duration::from_secs(30), || {
        n(&counts(&s), "completed") == 405
    });
    signal(&again, "-TERM");
    assert!(again.wait().unwrap().success());
    let list = cli(
        &["jobs", "list", "--state", "completed", "--limit", "1000"],
        &s,
    );
    let jobs: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
    assert_eq!(jobs.len(), 405);
    assert!(
        jobs.iter().all(|j| j["attempts"] == 1),
        "no attempt was spent by the shutdown"
    );
}

#[test]
fn the_http_job_api_validates_and_serves_jobs() {
    let (p, _cleanup) = prefix();
    let s = sets(&p);
    let set_refs: Vec<&str> = s.iter().map(String::as_str).collect();
    let key = common::api_key(&set_refs, common::ALL_SCOPES);
    let server = Server::start(&set_refs, &[]).with_credential(key);
    let post = |body: serde_json::Value| {
        let (code, text) = server.post("/jobs", &body);
        (
            code,
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        )
    };
    let (code, body) =
        post(serde_json::json!({"type": "builtin.noop", "payload": {"a": 1}, "priority": 7}));
    assert_eq!(code, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();

    for (bad, field) in [
        (serde_json::json!({"payload": {}}), "missing field `type`"),
        (
            serde_json::json!({"type": "builtin.noop", "priority": 5000}),
            "priority: must be 0-1023",
        ),
        (
            serde_json::json!({"type": "builtin.noop", "priority": "high"}),
            "invalid type: string \"high\"",
        ),
        (
            serde_json::json!({"type": "builtin.noop", "colour": "red"}),
            "unknown field `colour`",
        ),
        (
            serde_json::json!({"type": "builtin.noop", "queue": "no spaces"}),
            "queue: `no spaces`",
        ),
        (
            serde_json::json!({"type": "builtin.noop", "max_attempts": 0}),
            "max_attempts: 1 to 25",
        ),
        (
            serde_json::json!({"type": "no.such.type"}),
            "type: no job type `no.such.type`",
        ),
        (
            serde_json::json!({"type": "builtin.noop", "delay_ms": 31_u64 * 24 * 3600 * 1000}),
            "delay_ms: at most 30 days",
        ),
        // A trip is checked before it is queued.
        (
            serde_json::json!({"type": "trip.complete", "payload": {"tripId": "t"}}),
            "payload: missing field `userId`",
        ),
        (
            serde_json::json!({"type": "trip.complete", "payload": {
                "tripId": "t", "userId": 1, "mode": "bus", "trajectory": [
                    {"lat": -16.9, "lng": 145.7, "timestamp": 1_790_000_000_000_i64},
                    {"lat": -16.9, "lng": 145.7, "timestamp": 1_789_000_000_000_i64}]}}),
            "payload.trajectory[1].timestamp: timestamps must strictly increase",
        ),
    ] {
        let (code, body) = post(bad.clone());
        assert_eq!(code, 400, "{bad} → {body}");
        assert!(
            body["error"].as_str().unwrap().contains(field),
            "{bad} → {body}"
        );
    }

    let trip = serde_json::json!({"type": "trip.complete", "queue": "trips", "payload": {
        "tripId": "t-http", "userId": 1, "mode": "bus", "trajectory": [
            {"lat": -16.9, "lng": 145.7, "timestamp": 1_790_000_000_000_i64},
            {"lat": -16.8, "lng": 145.7, "timestamp": 1_790_000_600_000_i64}]}});
    let (code, first) = post(trip.clone());
    assert_eq!(code, 201, "{first}");
    let (_, second) = post(trip);
    assert_eq!(first["id"], second["id"], "deduplicated on the trip id");

    let (code, body) = server.get(&format!("/jobs/{id}"));
    assert_eq!(code, 200, "{body}");
    let job: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            job["type"].as_str(),
            job["priority"].as_u64(),
            job["state"].as_str()
        ),
        (Some("builtin.noop"), Some(7), Some("waiting"))
    );
    assert_eq!(job["payload"], serde_json::json!({"a": 1}));
    assert_eq!(server.get("/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV").0, 404);
    assert_eq!(server.get("/jobs/bad{id}").0, 400);

    let (code, body) = server.get("/queues");
    assert_eq!(code, 200);
    let queues: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(queues[0]["queue"], "default");
    assert_eq!(queues[0]["waiting"], 1);

    let none = serde_json::json!({});
    let (code, _) = server.post(&format!("/jobs/{id}/retry"), &none);
    assert_eq!(code, 409, "a waiting job is not dead-lettered");
    let (code, _) = server.post("/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/retry", &none);
    assert_eq!(code, 404);

    // A payload its type cannot decode is refused before it is queued.
    let (code, body) = post(serde_json::json!({"type": "builtin.sleep", "payload": {"ms": "bad"}}));
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("payload: invalid type: string"),
        "{body}"
    );
    // A dead job (its handler refuses the payload: over an hour) can be retried over HTTP.
    let (_, body) =
        post(serde_json::json!({"type": "builtin.sleep", "payload": {"ms": 3_600_001}}));
    let dead_id = body["id"].as_str().unwrap().to_string();
    let mut w = spawn_worker(&[], &s);
    wait_for(
        "the bad job to be dead-lettered",
        Duration::from_secs(20),
        || n(&counts(&s), "dead") == 1,
    );
    signal(&w, "-TERM");
    w.wait().unwrap();
    let (code, _) = server.post(&format!("/jobs/{dead_id}/retry"), &none);
    assert_eq!(code, 200);
    let (_, m) = server.get("/metrics");
    assert!(
        m.contains("tsp_queue_depth{queue=\"default\",state=\"waiting\"} 1"),
        "{}",
        m.lines()
            .filter(|l| l.contains("queue"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn points_accepted_and_never_written_are_reported_at_exit() {
    // InfluxDB does not answer: the worker's job_execution points can only pile up, and the
    // process says how many it loses.
    let (p, _cleanup) = prefix();
    let mut s = sets(&p);
    s.push(format!(
        "influx.primary.url=http://127.0.0.1:{}",
        tsp_testkit::closed_port()
    ));
    cli(
        &["enqueue", "builtin.noop", "--payload", "{}", "--count", "3"],
        &s,
    );
    let mut with_influx = s.clone();
    with_influx.push("queue.records.influx=true".into());
    with_influx.push("queue.shutdown_grace=1s".into());
    let args = with_sets(&["worker"], &with_influx);
    let mut w = tsp_job(&[("TSP_LOG", "error")])
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the jobs to complete", Duration::from_secs(20), || {
        n(&counts(&s), "completed") == 3
    });
    signal(&w, "-TERM");
    assert!(w.wait().unwrap().success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut w.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("influx.primary") && err.contains("3 points accepted and not written"),
        "{err}"
    );
    // And `jobs stats` says so after the process is gone.
    let stats = cli(&["jobs", "stats"], &s);
    assert!(
        stats.contains("InfluxDB points accepted and never written")
            && stats.contains("influx.primary.")
            && stats.contains(": 3"),
        "{stats}"
    );
}

/// `jobs audit`: clean on a healthy queue (exit 0), names a job taken out of its line (exit 1),
/// and with `--repair` puts it back so a worker completes it.
#[test]
fn jobs_audit_finds_and_mends_a_job_in_no_state() {
    let (p, _cleanup) = prefix();
    let s = sets(&p);
    cli(
        &[
            "enqueue",
            "builtin.noop",
            "--queue",
            "audited",
            "--count",
            "3",
        ],
        &s,
    );
    let clean = cli(&["jobs", "audit", "--queue", "audited"], &s);
    assert!(
        clean.contains("audited: 3 jobs (waiting 3), accounting clean"),
        "{clean}"
    );
    // Take one job out of its line by hand, as a lost write would.
    let mut conn = tsp_testkit::redis_client().get_connection().unwrap();
    let list = format!("{p}q:{{audited}}:wait:0");
    let id: String = redis::cmd("LPOP").arg(&list).query(&mut conn).unwrap();
    let args = with_sets(&["jobs", "audit", "--queue", "audited"], &s);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&refs, &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("found orphan {id}")), "{stderr}");
    let mended = cli(
        &["jobs", "audit", "--queue", "audited", "--repair", "--json"],
        &s,
    );
    let reports: serde_json::Value = serde_json::from_str(&mended).unwrap();
    assert_eq!(reports[0]["findings"][0]["id"], id.as_str());
    assert_eq!(reports[0]["repaired"], true);
    let after = cli(&["jobs", "audit", "--queue", "audited"], &s);
    assert!(after.contains("waiting 3"), "{after}");
}

/// A worker whose outcomes cannot be stored (every acknowledgement fails, by
/// `queue.fault.ack_failures`) gives each batch up after `queue.ack_attempts` tries rather than
/// retrying it forever: its `/health/ready` turns 503 with the cause, its metrics show the jobs
/// given up and the worker unhealthy, and its exit report counts them.
#[test]
fn a_worker_that_cannot_store_outcomes_says_so_on_its_probes() {
    let (p, _cleanup) = prefix();
    let mut s = sets(&p);
    s.extend([
        "queue.ack_attempts=2".into(),
        "queue.fault.ack_failures=1000000".into(),
    ]);
    cli(&["enqueue", "builtin.noop", "--count", "5"], &s);
    let port = common::closed_port();
    let listen = format!("127.0.0.1:{port}");
    let worker = spawn_worker(&["--queue", "default", "--listen", &listen], &s);
    let base = format!("http://{listen}");
    let get = |path: &str| {
        reqwest::blocking::get(format!("{base}{path}"))
            .ok()
            .map(|r| (r.status().as_u16(), r.text().unwrap_or_default()))
    };
    wait_for("the probes to answer", Duration::from_secs(20), || {
        get("/health/live").is_some_and(|(c, _)| c == 200)
    });
    wait_for("readiness to turn 503", Duration::from_secs(20), || {
        get("/health/ready").is_some_and(|(c, _)| c == 503)
    });
    let (_, body) = get("/health/ready").unwrap();
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["status"], "down");
    assert!(
        ready["reason"]
            .as_str()
            .unwrap()
            .contains("not stored after 2 tries"),
        "{ready}"
    );
    let (_, metrics) = get("/metrics").unwrap();
    let seen = common::assert_catalogued(&metrics);
    assert!(seen.iter().any(|s| s == "tsp_worker_healthy"), "{seen:?}");
    let abandoned = common::metric(
        &metrics,
        "tsp_queue_acks_abandoned_total",
        &[("queue", "default")],
    );
    assert!(abandoned.is_some_and(|n| n >= 1.0), "{metrics}");
    assert_eq!(
        common::metric(&metrics, "tsp_worker_healthy", &[("queue", "default")]),
        Some(0.0)
    );
    signal(&worker, "-TERM");
    let out = worker.wait_with_output().unwrap();
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert!(n(&report, "abandoned") >= 1, "{report}");
}
