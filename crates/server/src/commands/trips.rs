//! `tsp-job simulate` (the main job) and `tsp-job query …`.

use std::time::{Duration, Instant};
use tsp_mobility::gtfs::departure_window;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tsp_hub::{HubHealth, Status};
use tsp_mobility::analytics::RollupReport;
use tsp_mobility::batch::{self, Footprint, JobTimes, Rate};
use tsp_mobility::complete::Trips;
use tsp_mobility::queries::Around;
use tsp_mobility::seed::{self, TripPlan};
use tsp_queue::QueueCounts;

use crate::app::App;
use crate::cli::{QueryCommand, SimulateArgs};

/// How long the main job waits, at most, for its job records once every job is done.
const RECORDS_GRACE: Duration = Duration::from_secs(600);

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What `simulate` and `tsp-bench trips` report.
#[derive(Debug, Serialize)]
pub struct BatchSummary {
    pub trips: usize,
    /// Where the stops the trips run between came from.
    pub stops_from: String,
    pub users_seeded: u64,
    pub concurrency: usize,
    /// The most trips that held their lock at once, beside the `dataset` pool that capped it
    /// one job at a time (docs/consistency.md#batches).
    pub peak_trips_locked: usize,
    pub dataset_pool: u32,
    pub completed: u64,
    /// Dead-lettered (and compensated).
    pub failed: u64,
    pub retried: u64,
    /// Enqueue to settled.
    pub run: Rate,
    pub times: JobTimes,
    pub stores: Footprint,
    /// Mean time per step of the trip job in this process.
    pub steps: Vec<tsp_mobility::complete::StepTiming>,
}

fn lifetime(c: &QueueCounts, key: &str) -> u64 {
    c.totals.get(key).copied().unwrap_or(0)
}

/// Seeds users, enqueues generated trips, works them until settled, and measures.
pub async fn run_batch(
    app: &App,
    plan: &TripPlan,
    concurrency: usize,
    bar: Option<&ProgressBar>,
) -> anyhow::Result<BatchSummary> {
    let trips = app.trips();
    let users_seeded = seed::seed_users(&trips.stores().portal, plan.users)
        .await
        .context("seeding portal users")?;
    let (stops, stops_from) = seed::trip_stops(app.gtfs())
        .await
        .context("reading the stops to generate trips between")?;
    let generated = seed::generate_trips(plan, &stops);
    let queue = app.queue(&trips.settings().queue)?;
    let before = queue.counts().await?;
    let started = Instant::now();
    let ids = batch::enqueue(&queue, &generated).await?;
    if let Some(b) = bar {
        b.set_length(ids.len() as u64);
        b.set_message("working");
    }
    let (sink, task) = app.records().await?;
    let batches = app.batch_options(tsp_mobility::complete::JOB_TYPE);
    let report = batch::work_until_settled(trips, batches, &queue, concurrency, sink, &mut |c| {
        if let Some(b) = bar {
            let done = lifetime(c, "completed") + lifetime(c, "dead")
                - lifetime(&before, "completed")
                - lifetime(&before, "dead");
            b.set_position(done.min(ids.len() as u64));
        }
    })
    .await?;
    if let Some(t) = task {
        if let Some(b) = bar {
            b.set_message("writing job records");
        }
        // The records are part of the main job's output, and nothing here is in a hurry (unlike
        // a worker told to stop): wait for a slow record store well past the shutdown grace.
        let grace = app.hub().config().queue.shutdown_grace.max(RECORDS_GRACE);
        let unwritten = t.finish(grace).await;
        if unwritten > 0 {
            tracing::error!(unwritten, "job records were not written");
        }
    }
    // The run ends when every record and point of its trips is written: completed trips only,
    // over the time until then.
    trips.flush_bookings().await;
    let run = Rate::of(report.completed, started);
    if let Some(b) = bar {
        b.finish_with_message("done");
    }
    let times = batch::job_times(&queue, &ids).await?;
    let stores = batch::footprint(trips).await?;
    Ok(BatchSummary {
        trips: generated.len(),
        stops_from,
        users_seeded,
        concurrency,
        peak_trips_locked: trips.peak_trips_locked(),
        dataset_pool: trips.stores().dataset.pool_stats().max,
        completed: report.completed,
        failed: report.dead,
        retried: report.retried,
        run,
        times,
        stores,
        steps: trips.step_timings(),
    })
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {msg:8} [{bar:40}] {pos}/{len} trips  {per_sec}  eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// The main job.
pub async fn simulate(app: &App, args: &SimulateArgs) -> anyhow::Result<u8> {
    if args.trips == 0 || args.users == 0 {
        anyhow::bail!("--trips and --users: must be at least 1");
    }
    let hub = app.hub();
    hub.require().await.context("cannot start")?;
    let trips = app.trips();
    let concurrency = args.concurrency.unwrap_or_else(|| app.trip_concurrency());
    let plan = TripPlan {
        seed: args.seed,
        trips: args.trips,
        users: args.users,
        days: args.days,
        now_ms: now_ms(),
    };
    let bar = (!args.json).then(progress_bar);
    let summary = run_batch(app, &plan, concurrency, bar.as_ref()).await?;
    let rolled = roll_up(trips, args.days).await?;
    let health = hub.health().await;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"summary": summary, "analytics": rolled, "health": health})
            )?
        );
    } else {
        print!("{}", summary_text(&summary, &health));
        let trips: u64 = rolled.iter().map(|r| r.trips).sum();
        let ms: f64 = rolled.iter().map(|r| r.total_ms).sum();
        println!(
            "analytics    {} days rolled up ({trips} trips) in {:.0} ms\n",
            rolled.len(),
            ms
        );
    }
    Ok(if summary.failed == 0 && health.status == Status::Up {
        0
    } else {
        1
    })
}

/// The analytics flow after the trips: every day the generated trips can have started on
/// (`days` back, and today) rolled up from MySQL into MongoDB and InfluxDB.
async fn roll_up(trips: &Trips, days: u32) -> anyhow::Result<Vec<RollupReport>> {
    let today = chrono::Utc::now().date_naive();
    let mut out = Vec::new();
    for back in (0..=i64::from(days) + 1).rev() {
        out.push(
            trips
                .rollup_day(today - chrono::Duration::days(back))
                .await?,
        );
    }
    Ok(out)
}

fn summary_text(s: &BatchSummary, health: &HubHealth) -> String {
    let f = &s.stores;
    let t = &s.times;
    let up = health
        .instances
        .iter()
        .filter(|i| i.status == Status::Up)
        .count();
    format!(
        "\ntrips        {} generated (between the stops of {}), {} completed, {} failed (dead-lettered and compensated), {} retried attempts\n\
         throughput   {:.0} trips/s completed over {:.1} s (until every record and point is written), {} at once, at most {} holding their lock (dataset pool {})\n\
         job run      p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
         latency      p50 {:.0} ms, p99 {:.0} ms (enqueue to done, queueing included)\n\
         mysql        portal.users {} ({} new) · dataset.trips {} completed, {} unfinished\n\
         \x20            incentive.points_transactions {} earn, {} points awarded\n\
         mongo        dataset.trip_trajectories {} · dataset.activity_log {}\n\
         influx       primary trip_bookings {} points ({} accepted and not written)\n\
         redis        {} users located\n\
         steps (ms)   {}\n{}\
         health       {} of {} instances up\n\n{}",
        s.trips,
        s.stops_from,
        s.completed,
        s.failed,
        s.retried,
        s.run.per_second,
        s.run.seconds,
        s.concurrency,
        s.peak_trips_locked,
        s.dataset_pool,
        t.run_ms.p50,
        t.run_ms.p99,
        t.run_ms.max,
        t.latency_ms.p50,
        t.latency_ms.p99,
        f.users,
        s.users_seeded,
        f.trips_completed,
        f.trips_unfinished,
        f.earn_transactions,
        f.points_awarded,
        f.trajectories,
        f.activities,
        f.booking_points,
        f.points_unwritten,
        f.users_located,
        s.steps
            .iter()
            .map(|t| format!("{} {:.1}", t.step, t.mean_ms))
            .collect::<Vec<_>>()
            .join(" · "),
        s.times
            .dead_errors
            .iter()
            .map(|(e, n)| format!("failed       {n} × {e}\n"))
            .collect::<String>(),
        up,
        health.instances.len(),
        crate::commands::health::table(health),
    )
}

/// `tsp-job query …`: the answer as JSON. Errors name the parameter or the missing user.
pub async fn query(app: &App, cmd: &QueryCommand) -> anyhow::Result<String> {
    let (trips, g) = (app.trips(), app.gtfs());
    let out = match cmd {
        QueryCommand::Stats { user, days } => {
            serde_json::to_value(trips.user_stats(*user, *days).await?)?
        }
        QueryCommand::Points { user } => serde_json::to_value(trips.user_points(*user).await?)?,
        QueryCommand::TripsNear(a) => {
            let at = Around::new(Some(a.lat), Some(a.lng), Some(a.radius_km))?;
            serde_json::to_value(trips.trips_near(at, a.limit).await?)?
        }
        QueryCommand::UsersNear(a) => {
            let at = Around::new(Some(a.lat), Some(a.lng), Some(a.radius_km))?;
            serde_json::to_value(trips.users_near(at, a.limit).await?)?
        }
        QueryCommand::Engagement { days, limit } => {
            serde_json::to_value(trips.engagement(*days, *limit).await?)?
        }
        QueryCommand::StopsNear { near, feed } => {
            let found = g
                .stops_near(
                    feed.as_deref(),
                    near.lat,
                    near.lng,
                    near.radius_km,
                    near.limit,
                )
                .await?;
            serde_json::to_value(found)?
        }
        QueryCommand::Departures {
            stop,
            date,
            from,
            limit,
            feed,
        } => {
            let today = chrono::Utc::now().date_naive();
            let (date, from) = departure_window(date.as_deref(), from.as_deref(), today)?;
            serde_json::to_value(
                g.departures(feed.as_deref(), stop, date, from, *limit)
                    .await?,
            )?
        }
        QueryCommand::Routes { feed } => {
            let (feed, version, routes) = g.routes(feed.as_deref()).await?;
            serde_json::json!({"feed": feed, "version": version, "routes": routes})
        }
        QueryCommand::Route { id, feed } => {
            serde_json::to_value(g.route(feed.as_deref(), id).await?)?
        }
    };
    Ok(serde_json::to_string_pretty(&out)?)
}
