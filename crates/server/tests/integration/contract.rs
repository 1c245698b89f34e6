//! The API contract against the live service (docs/api.md#fuzzing): schemathesis runs every
//! operation of `GET /openapi.json` as a user, an operator and a service key, with every check
//! on (server errors, status codes, response bodies and headers against the document, content
//! types, methods, authentication); then the trip flow's cross-store invariant still holds.
//! Every defect it found is a regression test beside the code it was in.

use crate::common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::common::api::{call, trip};
use crate::common::{PASSWORD, Site};
use reqwest::Method;
use serde_json::json;
use tsp_mobility::auth::{Role, Scope};
use tsp_mobility::batch;
use tsp_queue::QueueCounts;

/// Limits out of the fuzzer's way: what it sends is judged by the routes, not throttled.
const SETS: &[&str] = &[
    "auth.login.max_failures=1000000",
    "auth.login.max_failures_per_address=1000000",
    "limits.read.per_second=1000000",
    "limits.read.burst=1000000",
    "limits.write.per_second=1000000",
    "limits.write.burst=1000000",
    "limits.address.per_second=1000000",
    "limits.address.burst=1000000",
];

/// The seed of every run (`TSP_FUZZ_SEED` replaces it), so a failure can be replayed.
const SEED: u64 = 20_261_207;
/// Examples per operation and phase.
const EXAMPLES: &str = "20";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One schemathesis run as `who`: its exit status, its output, and the requests it made.
fn fuzz(base: &str, who: &str, login: &str, key: &str, seed: u64) -> (bool, String, usize) {
    let bin = root().join(".venv/bin/schemathesis");
    assert!(
        bin.exists(),
        "{} is missing: scripts/services.sh up installs it",
        bin.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let har = dir.path().join("requests.har");
    let fuzz = root().join("crates/server/tests/contract");
    let out = tokio::task::block_in_place(|| {
        Command::new(bin)
            .current_dir(dir.path())
            .env("SCHEMATHESIS_HOOKS", "hooks")
            .env("PYTHONPATH", &fuzz)
            .env("TSP_FUZZ_BASE", base)
            .env("TSP_FUZZ_AS", who)
            .env("TSP_FUZZ_LOGIN", login)
            .env("TSP_FUZZ_KEY", key)
            .arg("--config-file")
            .arg(fuzz.join("schemathesis.toml"))
            .args(["run", &format!("{base}/openapi.json"), "--checks", "all"])
            .args(["--max-examples", EXAMPLES, "--seed", &seed.to_string()])
            .args(["--request-timeout", "20", "--max-time", "60"])
            .args(["--report", "har", "--report-har-path"])
            .arg(&har)
            .output()
            .unwrap()
    });
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let requests = std::fs::read_to_string(&har)
        .ok()
        .and_then(|h| serde_json::from_str::<serde_json::Value>(&h).ok())
        .and_then(|h| h["log"]["entries"].as_array().map(Vec::len))
        .unwrap_or(0);
    (out.status.success(), text, requests)
}

/// Works the trips queue until nothing waits or runs there (delayed jobs the fuzzer asked
/// for may stay delayed).
async fn work_trips(site: &Site) -> QueueCounts {
    let queue = site.app.queue("trips").unwrap();
    let mut worker = common::trip_worker(&site.sandbox.overrides, 4, "5s", &[]);
    let counts = common::until_some(Duration::from_secs(120), || async {
        let c = queue.counts().await.unwrap();
        (c.waiting + c.active + c.dead_unhandled == 0).then_some(c)
    })
    .await;
    let _ = worker.kill();
    let _ = worker.wait();
    counts
}

/// Every completed trip is whole in every store, and nothing is left half done.
async fn trip_flow_holds(site: &Site) -> batch::Footprint {
    let f = batch::footprint(site.app.trips()).await.unwrap();
    assert_eq!(f.trips_unfinished, 0, "{f:?}");
    assert_eq!(f.earn_transactions, f.trips_completed, "{f:?}");
    let done = f.trips_completed as u64;
    assert_eq!((f.trajectories, f.activities), (done, done), "{f:?}");
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_contract() {
    let site = Site::new(SETS).await;
    let server = site.server(SETS);
    let email = site.user_with_password(1).await;
    let operator = site.operator(Role::Admin).await;
    let scopes = [
        Scope::JobsRead,
        Scope::JobsWrite,
        Scope::TripsWrite,
        Scope::UsersRead,
        Scope::AnalyticsRead,
    ];
    let key = site.key(&scopes).await;
    // Real trips first, so that reads find data and the invariant has something to hold.
    let user = common::api::token_of(&server, &email).await;
    for n in 0..5 {
        let job = json!({"type": "trip.complete", "queue": "trips",
                         "payload": trip(&format!("fuzz-{n}"), 1, 4, 2)});
        let (code, _, v) = call(&server, Method::POST, "/jobs", Some(&user), Some(job)).await;
        assert_eq!(code, 201, "{v}");
    }
    work_trips(&site).await;
    assert_eq!(trip_flow_holds(&site).await.trips_completed, 5);

    let seed = std::env::var("TSP_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    let logins = [
        ("user", json!({"email": email, "password": PASSWORD})),
        (
            "operator",
            json!({"username": operator, "password": PASSWORD}),
        ),
        ("key", json!(null)),
    ];
    let mut made = Vec::new();
    for (who, login) in logins {
        let (passed, output, requests) = fuzz(&server.base, who, &login.to_string(), &key, seed);
        if !passed {
            let log = std::env::temp_dir().join(format!("tsp-fuzz-{who}.log"));
            let _ = std::fs::write(&log, &output);
            panic!(
                "schemathesis as {who} (seed {seed}), all of it in {}:\n{output}",
                log.display()
            );
        }
        assert!(
            requests > 500,
            "as {who}: only {requests} requests\n{output}"
        );
        made.push(format!("{who}: {requests}"));
    }
    println!("schemathesis, seed {seed}: requests {}", made.join(", "));

    let counts = work_trips(&site).await;
    let after = trip_flow_holds(&site).await;
    assert!(after.trips_completed >= 5, "{after:?} {counts:?}");
    drop(server);
    site.done().await;
}

/// What the fuzzer found, each shown right: a method a route lacks is 405 naming those it has
/// (it was 401, or operator-only, even on public routes); a POST without a body needs no content
/// type (one with a body still must declare JSON); a query axum could not parse is the common
/// error body (it was plain text), as are a body over the limit (413) and a path that is not
/// UTF-8 (400); a job id of non-ASCII characters is a 400 (it passed a length check counted in
/// bytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answers_the_fuzzer_found_wrong_are_right() {
    let site = Site::new(&[]).await;
    let server = site.server(&[]);
    let client = reqwest::Client::new();
    for (method, path, allow) in [
        ("TRACE", "/health/live", "GET, HEAD"),
        ("PUT", "/jobs", "POST"),
        ("GET", "/users/1/sessions", "DELETE"),
    ] {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let r = client
            .request(m, format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 405, "{method} {path}");
        assert_eq!(r.headers()["allow"], allow, "{method} {path}");
        let body: serde_json::Value = r.json().await.unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!("{method} is not a method")),
            "{body}"
        );
    }
    let head = client.head(format!("{}/health/live", server.base));
    assert_eq!(head.send().await.unwrap().status().as_u16(), 200);

    let name = site.operator(Role::Operator).await;
    let login = json!({"username": name, "password": PASSWORD});
    let (_, v) = common::api::login(&server, login).await;
    let token = v["token"].as_str().unwrap().to_string();
    let pause = format!("{}/queues/default/pause", server.base);
    let bare = client
        .post(&pause)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status().as_u16(), 200);
    let text = client
        .post(&pause)
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status().as_u16(), 415);

    let big = client
        .post(format!("{}/jobs", server.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(format!("{{\"pad\": \"{}\"}}", "x".repeat(2 << 20)))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status().as_u16(), 413);
    let v: serde_json::Value = big.json().await.unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("body: larger than the limit"),
        "{v}"
    );

    for (path, error) in [
        ("/users/%FF/stats", "Invalid URL: Invalid UTF-8 in `id`"),
        ("/jobs/1?queue=a&queue=b", "query: duplicate field `queue`"),
        ("/jobs/%C2%B7?queue=default", "id: not a job id"),
        ("/jobs/1?queue=%5E", "queue: `^`: use 1-64 letters"),
    ] {
        let (code, v) = common::api::get(&server, path, &token).await;
        assert_eq!(code, 400, "{path}: {v}");
        assert!(
            v["error"].as_str().unwrap().starts_with(error),
            "{path}: {v}"
        );
    }
    drop(server);
    site.done().await;
}

/// A Python client generated from `docs/openapi.json` (docs/api.md#clients) logs in, posts a
/// trip, follows its job until a worker completed it, and reads the user's stats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_generated_from_the_document_posts_a_trip_and_reads_the_stats() {
    let site = Site::new(&[]).await;
    let server = site.server(&[]);
    let email = site.user_with_password(2).await;
    let mut worker = common::trip_worker(&site.sandbox.overrides, 2, "5s", &[]);
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("tsp_job_client");
    let generate = Command::new(root().join(".venv/bin/openapi-python-client"))
        .args(["generate", "--meta", "none", "--path"])
        .arg(root().join("docs/openapi.json"))
        .arg("--output-path")
        .arg(&package)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&generate.stdout).into_owned();
    assert!(generate.status.success(), "{said}");
    assert!(package.join("api/jobs/post_job.py").exists(), "{said}");
    let login = json!({"email": email, "password": PASSWORD}).to_string();
    let trip = trip("client-1", 2, 4, 2).to_string();
    let out = tokio::task::block_in_place(|| {
        Command::new(root().join(".venv/bin/python"))
            .arg(root().join("crates/server/tests/contract/client.py"))
            .env("TSP_CLIENT_DIR", dir.path())
            .env("TSP_CLIENT_BASE", &server.base)
            .env("TSP_CLIENT_LOGIN", login)
            .env("TSP_CLIENT_TRIP", trip)
            .output()
            .unwrap()
    });
    let (stdout, stderr) = common::text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let answer: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(answer["trips"], 1, "{answer}");
    let _ = worker.kill();
    let _ = worker.wait();
    drop(server);
    site.done().await;
}
