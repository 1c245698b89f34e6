//! `tsp-job worker`, `tsp-job enqueue`, `tsp-job jobs …`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tsp_hub::Hub;
use tsp_queue::{Cancelled, JobState, NewJob, Queue, Worker, WorkerReport};

use crate::app::App;
use crate::cli::{EnqueueArgs, JobStateArg, JobsCommand, WorkerArgs};

/// `tsp-job worker`: runs every job type of this build on the queues named (default: `default`
/// and the trips queue) until `shutdown`.
pub async fn worker(
    app: &App,
    args: &WorkerArgs,
    prometheus: Option<metrics_exporter_prometheus::PrometheusHandle>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<WorkerReport> {
    let hub = app.hub();
    let trips_queue = hub.config().trips.queue.clone();
    let names = if args.queues.is_empty() {
        vec!["default".to_string(), trips_queue.clone()]
    } else {
        args.queues.clone()
    };
    let queues = names
        .iter()
        .map(|q| app.queue(q))
        .collect::<Result<Vec<_>, _>>()?;
    // Declared schedules, reconciled before the tickers start (docs/queue.md#schedules).
    let done = app.reconcile_schedules().await?;
    if !done.put.is_empty() {
        tracing::info!(schedules = ?done.put, "schedules from the configuration stored");
    }
    if !done.removed.is_empty() {
        tracing::info!(schedules = ?done.removed, "schedules no longer declared removed");
    }
    let (sink, task) = app.records().await?;
    let mut w = Worker::new(queues, app.registry().clone()).with_records(sink);
    match args.concurrency {
        Some(c) => w = w.with_concurrency(c),
        None if names.contains(&trips_queue) => w = w.with_concurrency(app.trip_concurrency()),
        None => {}
    }
    tracing::info!(worker = w.id(), queues = ?names, "worker started");
    let probes = match args.listen {
        Some(addr) => {
            let token = hub.config().server.metrics_token.clone();
            Some(serve_probes(addr, w.health(), prometheus, token).await?)
        }
        None => None,
    };
    let report = w.run(shutdown).await;
    if let Some(p) = probes {
        p.abort();
    }
    if let Some(t) = task {
        let unwritten = t.finish(hub.config().queue.shutdown_grace).await;
        if unwritten > 0 {
            tracing::error!(unwritten, "job records were not written");
        }
    }
    // Buffered trip_bookings points go out before the process ends.
    for w in app.stores().trips.metrics.writers() {
        w.flush().await;
    }
    Ok(report)
}

/// Serves the worker's probes on `addr` until aborted.
async fn serve_probes(
    addr: std::net::SocketAddr,
    health: tsp_queue::WorkerHealth,
    prometheus: Option<metrics_exporter_prometheus::PrometheusHandle>,
    token: Option<secrecy::SecretString>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "worker probes: /health/live, /health/ready, /metrics");
    let router = crate::http::worker_router(health, prometheus, token.as_ref());
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, service).await {
            tracing::error!(error = %e, "worker probes stopped");
        }
    }))
}

/// `tsp-job enqueue`: the job type's rules apply (see `Registry::prepare`).
pub async fn enqueue(app: &App, a: &EnqueueArgs) -> anyhow::Result<Vec<String>> {
    let q = app.queue(&a.queue)?;
    let mut job = NewJob::raw(&a.job_type, &a.payload).with_priority(a.priority);
    if let Some(d) = &a.delay {
        let d = tsp_config::parse_duration_text(d).map_err(|e| anyhow::anyhow!("--delay: {e}"))?;
        job = job.with_delay(d);
    }
    if let Some(k) = a.dedup_key.clone() {
        job = job.with_dedup_key(k);
    }
    if let Some(n) = a.max_attempts {
        job = job.with_max_attempts(n);
    }
    if a.count == 0 {
        bail!("--count: must be at least 1");
    }
    let job = app.prepare(job).map_err(|e| match e {
        tsp_queue::QueueError::Invalid { field, message } => {
            anyhow::anyhow!("--{field}: {message}")
        }
        other => other.into(),
    })?;
    Ok(q.enqueue_many(vec![job; a.count]).await?)
}

pub async fn jobs(app: &App, cmd: &JobsCommand) -> anyhow::Result<String> {
    Ok(match cmd {
        JobsCommand::Stats { json } => stats(app, *json).await?,
        JobsCommand::Show { id, queue: qn } => {
            let job = app
                .queue(qn)?
                .job(id)
                .await?
                .with_context(|| format!("job {id} not found in queue {qn}"))?;
            serde_json::to_string_pretty(&job)?
        }
        JobsCommand::List {
            state,
            queue: qn,
            limit,
        } => {
            let st = match state {
                JobStateArg::Waiting => JobState::Waiting,
                JobStateArg::Delayed => JobState::Delayed,
                JobStateArg::Active => JobState::Active,
                JobStateArg::Completed => JobState::Completed,
                JobStateArg::Dead => JobState::Dead,
            };
            let jobs = app.queue(qn)?.list(st, *limit).await?;
            serde_json::to_string_pretty(&jobs)?
        }
        JobsCommand::Retry {
            id,
            all_failed,
            queue: qn,
        } => retry(app, qn, id.as_deref(), *all_failed).await?,
        JobsCommand::Cancel { ids, queue: qn } => cancel(app, qn, ids).await?,
        JobsCommand::Audit {
            queue: qn,
            repair,
            json,
        } => audit(app, qn.as_deref(), *repair, *json).await?,
        JobsCommand::Rerun {
            completed_since,
            queue: qn,
        } => {
            let r = app
                .queue(qn)?
                .rerun_completed_since(completed_since.timestamp_millis())
                .await?;
            format!(
                "{qn}: {} completed jobs back to waiting; {} that finished earlier left completed",
                r.rerun, r.left_completed
            )
        }
        JobsCommand::Pause { queue: qn } => {
            app.queue(qn)?.pause().await?;
            format!("paused {qn}")
        }
        JobsCommand::Resume { queue: qn } => {
            app.queue(qn)?.resume().await?;
            format!("resumed {qn}")
        }
    })
}

/// `jobs audit`: per queue, what was found (and mended); an error when something is wrong and
/// was not mended.
async fn audit(app: &App, only: Option<&str>, repair: bool, json: bool) -> anyhow::Result<String> {
    let store = &app.stores().queue;
    let names = match only {
        Some(q) => vec![q.to_string()],
        None => Queue::known(store).await?,
    };
    let mut reports = Vec::new();
    for n in &names {
        reports.push(app.queue(n)?.audit(repair).await?);
    }
    let text = if json {
        serde_json::to_string_pretty(&reports)?
    } else {
        reports
            .iter()
            .map(audit_text)
            .collect::<Vec<_>>()
            .join("\n")
    };
    if !repair && reports.iter().any(|r| !r.clean()) {
        anyhow::bail!("{text}\nsomething is wrong: run again with --repair to mend it");
    }
    Ok(text)
}

fn audit_text(r: &tsp_queue::AuditReport) -> String {
    let mut states: Vec<String> = r.states.iter().map(|(k, v)| format!("{k} {v}")).collect();
    states.sort();
    let mut out = format!("{}: {} jobs ({})", r.queue, r.jobs, states.join(", "));
    if r.clean() {
        out.push_str(", accounting clean");
    }
    let verb = if r.repaired { "mended" } else { "found" };
    for f in &r.findings {
        out.push_str(&format!(
            "\n  {verb} {} {} (in: {})",
            f.kind,
            f.id,
            f.states.join(", ")
        ));
    }
    for l in &r.stray_leases {
        out.push_str(&format!(
            "\n  {verb} stray lease {l} (its jobs go back in line once recovered)"
        ));
    }
    out
}

/// `jobs cancel`: one line per id saying what became of it; an error if any stayed.
async fn cancel(app: &App, qn: &str, ids: &[String]) -> anyhow::Result<String> {
    let answers = app.queue(qn)?.cancel(ids).await?;
    let lines: Vec<String> = ids
        .iter()
        .zip(&answers)
        .map(|(id, a)| match a {
            Cancelled::Cancelled => format!("{id}: cancelled"),
            Cancelled::Missing => format!("{id}: no such job in {qn}"),
            other => format!(
                "{id}: not cancelled, it is {}",
                serde_json::to_value(other)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            ),
        })
        .collect();
    if answers.iter().all(|a| *a == Cancelled::Cancelled) {
        Ok(lines.join("\n"))
    } else {
        anyhow::bail!("{}", lines.join("\n"))
    }
}

/// The Redis hash where processes add, at exit, the InfluxDB points they accepted and never
/// wrote (field `<instance>.<target>`), so `jobs stats` can say so after they are gone.
fn lost_points_key(hub: &Hub) -> anyhow::Result<String> {
    let store = hub.redis(&hub.config().queue.redis)?;
    Ok(format!("{}influx:lost", store.key_prefix()))
}

/// Adds what this process lost to the `<prefix>influx:lost` hash (best effort: bounded, and a failure is
/// only logged; the exit report on stderr says it either way).
pub async fn record_lost_points(hub: &Hub, closed: &[tsp_hub::ClosedWriter]) {
    let lost: Vec<(String, u64)> = closed
        .iter()
        .filter(|w| w.stats.unwritten() > 0)
        .map(|w| (format!("{}.{}", w.instance, w.target), w.stats.unwritten()))
        .collect();
    if lost.is_empty() {
        return;
    }
    let done = async {
        let key = lost_points_key(hub)?;
        let mut conn = hub.redis(&hub.config().queue.redis)?.conn().await?;
        for (field, n) in &lost {
            redis::cmd("HINCRBY")
                .arg(&key)
                .arg(field)
                .arg(*n)
                .query_async::<i64>(&mut conn)
                .await?;
        }
        anyhow::Ok(())
    };
    match tokio::time::timeout(Duration::from_secs(2), done).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "lost points not recorded for jobs stats"),
        Err(_) => tracing::warn!("lost points not recorded for jobs stats: Redis too slow"),
    }
}

/// `jobs stats`: counts per state of every known queue, as a table or JSON.
async fn stats(app: &App, json: bool) -> anyhow::Result<String> {
    let store = &app.stores().queue;
    let mut all = Vec::new();
    for n in &Queue::known(store).await? {
        all.push(app.queue(n)?.counts().await?);
    }
    if json {
        return Ok(serde_json::to_string_pretty(&all)?);
    }
    let mut out = format!(
        "{:<20} {:>8} {:>8} {:>8} {:>10} {:>8}  {:<6}  {}\n",
        "QUEUE", "WAITING", "DELAYED", "ACTIVE", "COMPLETED", "DEAD", "PAUSED", "NEXT SCHEDULED"
    );
    for c in &all {
        out.push_str(&format!(
            "{:<20} {:>8} {:>8} {:>8} {:>10} {:>8}  {:<6}  {}\n",
            c.queue,
            c.waiting,
            c.delayed,
            c.active,
            c.completed,
            c.dead,
            if c.paused { "yes" } else { "no" },
            next_scheduled(app, &c.queue).await?
        ));
    }
    let mut conn = store.conn().await?;
    let lost: Vec<(String, u64)> = redis::cmd("HGETALL")
        .arg(lost_points_key(app.hub())?)
        .query_async(&mut conn)
        .await?;
    if !lost.is_empty() {
        out.push_str(
            "InfluxDB points accepted and never written, as processes reported at exit:\n",
        );
        for (target, n) in lost {
            out.push_str(&format!("  influx.{target}: {n}\n"));
        }
    }
    Ok(out)
}

/// The queue's earliest scheduled tick (`name at time`), or `-`.
async fn next_scheduled(app: &App, name: &str) -> anyhow::Result<String> {
    let next = app
        .queue(name)?
        .schedules()
        .await?
        .into_iter()
        .filter_map(|s| Some((s.next?, s.name)))
        .min();
    Ok(match next {
        Some((at, name)) => match chrono::DateTime::from_timestamp_millis(at) {
            Some(t) => format!("{name} at {}", t.format("%Y-%m-%d %H:%M:%S UTC")),
            None => "-".into(),
        },
        None => "-".into(),
    })
}

/// `jobs retry ID | --all-failed`: requeues dead jobs.
async fn retry(app: &App, qn: &str, id: Option<&str>, all_failed: bool) -> anyhow::Result<String> {
    let q = app.queue(qn)?;
    let n = match (id, all_failed) {
        (Some(id), false) => q.requeue(Some(&[id.to_string()])).await?,
        (None, true) => q.requeue(None).await?,
        _ => bail!("give a job id or --all-failed"),
    };
    if let Some(id) = id {
        if n.hook_running > 0 {
            bail!("job {id}: its dead-letter hook is running; try again shortly");
        }
        if n.requeued == 0 {
            bail!("job {id} is not dead-lettered in queue {qn}");
        }
    }
    Ok(if n.hook_running > 0 {
        format!(
            "requeued {}; {} left dead while their dead-letter hook runs",
            n.requeued, n.hook_running
        )
    } else {
        format!("requeued {}", n.requeued)
    })
}

/// Waits until every job of `q` is finished (none waiting, delayed or active), bounded.
pub async fn drained(q: &Queue, limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let c = q.counts().await?;
        if c.waiting + c.delayed + c.active == 0 {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!("queue {} not drained after {limit:?}: {c:?}", q.name());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
