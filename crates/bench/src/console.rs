//! `tsp-bench console`: how long the operator console takes to answer on a big queue.
//! A sandbox gets one queue of `--jobs` waiting jobs (1 000 000 by default) and a few dead
//! ones; an in-process server answers a logged-in operator's pages one request at a time, and
//! each page's latency (p50, p99, max over `--requests` requests) is reported, with a check
//! that every answer was a 200 showing the queue's real count (docs/benchmarks.md#console).

use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use tsp_config::LoadOptions;
use tsp_mobility::auth::Role;
use tsp_mobility::batch::Percentiles;
use tsp_mobility::sandbox::Sandbox;
use tsp_queue::{JobState, NewJob, Order};

use crate::cli::ConsoleBenchArgs;
use tsp_server::app::App;
use tsp_server::http::{Activity, AppState, router};

/// The benchmark's queue.
const QUEUE: &str = "bench-console";
/// Jobs per enqueue call while filling the queue.
const FILL_BATCH: usize = 10_000;

pub async fn bench_console(
    options: &LoadOptions,
    args: &ConsoleBenchArgs,
) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(args.jobs >= 100, "--jobs: at least 100");
    let mut opts = options.clone();
    // One client asking in a loop: the read limit is set out of reach.
    opts.overrides
        .push("limits.read.per_second=10000000".to_string());
    opts.overrides
        .push("limits.read.burst=10000000".to_string());
    let sandbox = Sandbox::create(&opts).await?;
    let result = run(&sandbox, args).await;
    sandbox.dispose().await;
    result
}

async fn fill(app: &App, jobs: usize) -> anyhow::Result<(f64, String)> {
    let q = app.queue(QUEUE)?;
    let started = Instant::now();
    let bar = indicatif::ProgressBar::new(jobs as u64);
    let mut left = jobs;
    while left > 0 {
        let n = left.min(FILL_BATCH);
        let batch = (0..n)
            .map(|i| NewJob::new("builtin.noop", &json!({"n": i})))
            .collect::<Result<Vec<_>, _>>()?;
        q.enqueue_many(batch).await?;
        left -= n;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    // A few dead jobs (fetched and failed by hand) for the dead listing.
    let fetched = q.fetch(10, "bench-console").await?;
    let outcomes: Vec<_> = fetched
        .jobs
        .iter()
        .map(|j| {
            let dead = tsp_queue::Outcome::Dead {
                error: "made dead by the benchmark".into(),
            };
            (j, dead)
        })
        .collect();
    q.finish(&outcomes, false).await?;
    let newest = q
        .page_ids(JobState::Waiting, 0, 1, Order::Newest)
        .await?
        .pop()
        .context("the queue is empty")?;
    Ok((started.elapsed().as_secs_f64(), newest))
}

/// A session for a throwaway viewer account in the sandbox.
async fn viewer_session(app: &App) -> anyhow::Result<String> {
    let name = format!("bench{}", rand::random::<u32>());
    let password = format!("{:032x}", rand::random::<u128>());
    app.auth()
        .create_operator(&name, Role::Viewer, password.clone())
        .await?;
    let login = tsp_mobility::auth::Login {
        email: None,
        username: Some(name),
        password,
    };
    let session = app
        .auth()
        .login(login, "127.0.0.1")
        .await
        .map_err(|e| anyhow::anyhow!("login: {e}"))?;
    Ok(session.token)
}

/// Asks `path` `requests` times, one at a time; every answer must be a 200, and the overview
/// must show `waiting`.
async fn time_page(
    client: &reqwest::Client,
    url: &str,
    cookie: &str,
    requests: usize,
    waiting: usize,
) -> anyhow::Result<Percentiles> {
    let mut times = Vec::with_capacity(requests);
    for _ in 0..requests {
        let t = Instant::now();
        let r = client.get(url).header("cookie", cookie).send().await?;
        let status = r.status();
        let body = r.text().await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(status.is_success(), "{url}: HTTP {status}");
        if url.ends_with("/console") {
            // The overview shows the real count, not a cached or sampled one.
            anyhow::ensure!(
                body.contains(&format!(">{waiting}<")),
                "{url}: the waiting count {waiting} is not on the page"
            );
        }
    }
    Ok(Percentiles::of(times))
}

/// Cancels the first and the last job in line; the milliseconds each took.
async fn time_cancels(app: &App, newest: String) -> anyhow::Result<Vec<f64>> {
    // Cancelling walks its priority's list from the head: the newest job is the worst case.
    let q = app.queue(QUEUE)?;
    let oldest = q
        .page_ids(JobState::Waiting, 0, 1, Order::Oldest)
        .await?
        .pop()
        .context("the queue is empty")?;
    let mut cancel_ms = Vec::new();
    for id in [oldest, newest] {
        let t = Instant::now();
        let done = q.cancel(std::slice::from_ref(&id)).await?;
        cancel_ms.push(round(t.elapsed().as_secs_f64() * 1000.0));
        anyhow::ensure!(
            done == [tsp_queue::Cancelled::Cancelled],
            "cancel {id}: {done:?}"
        );
    }
    Ok(cancel_ms)
}

async fn run(sandbox: &Sandbox, args: &ConsoleBenchArgs) -> anyhow::Result<serde_json::Value> {
    let app = App::build(&sandbox.hub)?;
    let (fill_s, newest) = fill(&app, args.jobs).await?;
    let cookie = format!("tsp_console={}", viewer_session(&app).await?);
    let state = AppState::new(app.clone(), None, Activity::off());
    let base = crate::http::spawn(router(state)).await?;
    let waiting = args.jobs - 10;
    let pages = [
        ("overview", "/console".to_string()),
        (
            "queue, waiting, newest first",
            format!("/console/queues/{QUEUE}"),
        ),
        (
            "queue, waiting, oldest first",
            format!("/console/queues/{QUEUE}?order=oldest"),
        ),
        (
            "queue, waiting, from position 500 000",
            format!("/console/queues/{QUEUE}?from=500000"),
        ),
        (
            "queue, filtered by a type no job has (the bounded 5 000-job look)",
            format!("/console/queues/{QUEUE}?type=no.such.type"),
        ),
        ("queue, dead", format!("/console/queues/{QUEUE}?state=dead")),
        ("job", format!("/console/queues/{QUEUE}/jobs/{newest}")),
    ];
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    for (label, path) in pages {
        let url = format!("{base}{path}");
        let p = time_page(&client, &url, &cookie, args.requests, waiting).await?;
        out.push(json!({"page": label, "path": path, "p50_ms": round(p.p50), "p99_ms": round(p.p99), "max_ms": round(p.max)}));
    }
    let cancel_ms = time_cancels(&app, newest).await?;
    Ok(json!({
        "jobs_waiting": waiting,
        "cancel_first_in_line_ms": cancel_ms[0],
        "cancel_last_in_line_ms": cancel_ms[1],
        "fill_seconds": round(fill_s),
        "requests_per_page": args.requests,
        "pages": out,
    }))
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
