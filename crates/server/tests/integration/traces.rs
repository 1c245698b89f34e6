//! Traces for real: `serve` and a worker export their spans over OTLP/HTTP to a receiver of the
//! test's own, and one trip posted with a caller's `traceparent` is one trace, from the request
//! through its enqueue and its job to each step and each store call (docs/metrics.md#traces).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use serde_json::json;

use crate::common::api::{token_of, trip};
use crate::common::otlp::{Receiver, Span};
use crate::common::workers::signal;
use crate::common::{Server, Site, worker_command};

/// The only span named `name` whose parent is `parent`.
fn child<'a>(spans: &'a [Span], parent: &str, name: &str) -> &'a Span {
    let found: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent == parent && s.name == name)
        .collect();
    let names: Vec<(&str, &str)> = spans
        .iter()
        .map(|s| (s.name.as_str(), s.parent.as_str()))
        .collect();
    assert_eq!(found.len(), 1, "one {name} under {parent}: {names:?}");
    found[0]
}

/// The request id every test request presents.
const REQUEST_ID: &str = "trace-test-request";

/// POST /jobs with a trip: the status, the answer's `traceparent`, the job's id.
async fn post_job(server: &Server, token: &str, traceparent: &str) -> (u16, String, String) {
    let job = json!({"type": "trip.complete", "queue": "trips", "payload": trip("t-1", 1, 2, 1)});
    let resp = reqwest::Client::new()
        .post(format!("{}/jobs", server.base))
        .bearer_auth(token)
        .header("traceparent", traceparent)
        .header("x-request-id", REQUEST_ID)
        .json(&job)
        .send()
        .await
        .unwrap();
    let answered = resp
        .headers()
        .get("traceparent")
        .map(|v| v.to_str().unwrap().to_string());
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap();
    let id = body["id"].as_str().unwrap_or_default().to_string();
    (status, answered.unwrap_or_default(), id)
}

/// The spans of one trip's trace, posted with a caller's `traceparent` (span `CALLER`) to a
/// `serve` with JSON logs, run by a worker with `worker_sets`; and `serve`'s log.
async fn one_trip_traced(worker_sets: &[&str]) -> (Vec<Span>, String, String) {
    let receiver = Receiver::start().await;
    let site = Site::new(&[]).await;
    let email = site.user_with_password(1).await;
    let mut sets = site.sandbox.overrides.clone();
    sets.push(format!("telemetry.otlp.endpoint={}", receiver.endpoint));
    sets.push("telemetry.otlp.protocol=http/json".into());
    let refs: Vec<&str> = sets.iter().map(String::as_str).collect();
    let log = [("TSP_LOG", "debug"), ("TSP_LOG_FORMAT", "json")];
    let mut server = tokio::task::block_in_place(|| Server::start(&refs, &log));
    let mut worker = worker_command(&[("TSP_LOG", "warn")], &sets, "trips", 2, "2s", worker_sets)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();

    // The caller's trace: the request continues it and says so in its answer.
    let trace = format!("{:032x}", rand::random::<u128>() | 1);
    let user = token_of(&server, &email).await;
    let traceparent = format!("00-{trace}-{CALLER}-01");
    let (code, answered, id) = post_job(&server, &user, &traceparent).await;
    assert_eq!(code, 201);
    assert!(answered.starts_with(&format!("00-{trace}-")), "{answered}");
    let queue = site.app.queue("trips").unwrap();
    tsp_testkit::until("the trip completed", Duration::from_secs(60), || async {
        queue.counts().await.unwrap().completed == 1
    })
    .await;
    // The job keeps where it came from: the request's id, and its enqueue's trace.
    let origin = queue.job(&id).await.unwrap().unwrap().origin;
    assert_eq!(origin.request_id.as_deref(), Some(REQUEST_ID));
    let stored = origin.traceparent.unwrap_or_default();
    assert!(stored.starts_with(&format!("00-{trace}-")), "{stored}");
    // Spans still buffered are exported as each process exits on SIGTERM.
    signal(&worker, "-TERM");
    tokio::task::block_in_place(|| worker.wait()).unwrap();
    assert_eq!(tokio::task::block_in_place(|| server.terminate()), Some(0));
    let logs = server.stderr_so_far();
    site.done().await;
    let spans = receiver
        .spans()
        .into_iter()
        .filter(|s| s.trace_id == trace)
        .collect();
    (spans, trace, logs)
}

/// Store calls of the steps whatever the mode.
const EVERY_JOB: &[(&str, &str)] = &[
    ("trip", "mysql"),
    ("points", "mysql"),
    ("trajectory", "redis"),
    ("geo", "redis"),
    ("complete", "mysql"),
    ("publish", "redis"),
];

/// The caller's span id in [`one_trip_traced`].
const CALLER: &str = "00f067aa0ba902b7";

/// request → enqueue → `run` (named `run_name`) → each step → its store calls, each of
/// `calls_of_steps` (step, store) at least once; the run's span.
fn assert_one_tree<'a>(
    spans: &'a [Span],
    run_name: &str,
    calls_of_steps: &[(&str, &str)],
) -> &'a Span {
    let request = child(spans, CALLER, "POST /jobs");
    assert_eq!(request.attr("http.response.status_code"), Some("201"));
    let enqueue = child(spans, &request.span_id, "queue.enqueue");
    let run = child(spans, &enqueue.span_id, run_name);
    assert_eq!(run.attr("job.type"), Some("trip.complete"));
    let steps: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent == run.span_id && s.name == "trip.step")
        .collect();
    let mut names: Vec<&str> = steps.iter().filter_map(|s| s.attr("step")).collect();
    names.sort_unstable();
    let mut want: Vec<&str> = tsp_config::FAULT_STEPS[1..].to_vec();
    want.sort_unstable();
    assert_eq!(names, want, "each step once");
    // Each step's store calls are its children, named by store and operation.
    let calls = |step: &str| -> Vec<String> {
        let id = &steps
            .iter()
            .find(|s| s.attr("step") == Some(step))
            .unwrap()
            .span_id;
        spans
            .iter()
            .filter(|s| &s.parent == id)
            .filter_map(|s| s.attr("db.system.name").map(str::to_string))
            .collect()
    };
    for &(step, store) in calls_of_steps {
        assert!(
            calls(step).iter().any(|s| s == store),
            "{step}: {:?}",
            calls(step)
        );
    }
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trip_in_a_batch_is_one_trace_from_the_request_to_each_store_call() {
    let (spans, trace, logs) = one_trip_traced(&[]).await;
    // A batch of one trip runs in that trip's trace (a batch of many links to each).
    let calls = [("trajectory", "mongo"), ("activity", "mongo")];
    assert_one_tree(&spans, "job.batch", &[EVERY_JOB, &calls[..]].concat());
    // The request's log lines carry its trace.
    let line = logs
        .lines()
        .find(|l| l.contains("\"route\":\"/jobs\"") && l.contains("trace_id"))
        .unwrap_or_else(|| panic!("no log line of the request with a trace id:\n{logs}"));
    assert!(
        line.contains(&format!("\"trace_id\":\"{trace}\"")),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trip_run_alone_is_one_trace_from_the_request_to_each_store_call() {
    let (spans, _, _) = one_trip_traced(&["trips.batch=false"]).await;
    // One job at a time, documents go to MongoDB through a batcher shared by the jobs (one
    // insert for many): that insert is a span of its own, not a step's.
    let run = assert_one_tree(&spans, "job.run", EVERY_JOB);
    assert_eq!(run.attr("request.id"), Some(REQUEST_ID));
}
