//! Repeatable jobs through real worker processes in a sandbox: exactly one job per tick while
//! workers are killed, restarted, stopped and resumed; removing a schedule stops it everywhere;
//! the CLI and the HTTP routes manage them.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use tsp_mobility::sandbox::Sandbox;
use tsp_queue::{JobState, Missed, Schedule};
use tsp_server::app::App;

/// A worker process on queue `sched` of the sandbox.
fn worker(sandbox: &Sandbox) -> Child {
    common::worker_on(&sandbox.overrides, "sched", 4, "2s", &[])
}

fn signal(child: &Child, sig: &str) {
    Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
}

/// The tick a scheduled job stands for, from its dedup key (`…schedule:<name>:<ms>`).
fn tick_of(dedup: &str) -> i64 {
    dedup.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_per_tick_while_workers_die_restart_and_stall() {
    let sandbox = Sandbox::create(&common::load_options()).await.unwrap();
    let app = App::build(&sandbox.hub).unwrap();
    let schedules = app.schedules();
    let queue = app.queue("sched").unwrap();
    let set = format!("ticks-{}", rand::random::<u32>());
    schedules
        .put(Schedule {
            name: "every-second".into(),
            cron: None,
            tz: None,
            every_ms: Some(1000),
            job_type: "builtin.mark".into(),
            payload: serde_json::json!({"set": set}),
            queue: "sched".into(),
            priority: 0,
            max_attempts: None,
            timeout_ms: None,
            missed: Missed::CatchUp { max: 1000 },
            since: None,
            declared: false,
        })
        .await
        .unwrap();
    let mut workers: Vec<Child> = (0..4).map(|_| worker(&sandbox)).collect();

    // 64 seconds: worker 0 killed at 15 s and restarted at 20 s; worker 1 stopped from 30 s to
    // 40 s (its leases expire and its jobs run elsewhere).
    let started = Instant::now();
    let at = |s: u64| started + Duration::from_secs(s);
    let mut events: Vec<(Instant, &str)> = vec![
        (at(15), "kill"),
        (at(20), "restart"),
        (at(30), "stop"),
        (at(40), "continue"),
        (at(64), "remove"),
    ];
    events.reverse();
    while let Some((when, what)) = events.pop() {
        tokio::time::sleep_until(when.into()).await;
        match what {
            "kill" => {
                signal(&workers[0], "-KILL");
                workers[0].wait().unwrap();
            }
            "restart" => workers[0] = worker(&sandbox),
            "stop" => signal(&workers[1], "-STOP"),
            "continue" => signal(&workers[1], "-CONT"),
            _ => schedules.remove("every-second").await.unwrap(),
        }
    }
    let removed_at = chrono::Utc::now().timestamp_millis();

    // Every job finishes (bounded); then count.
    tsp_testkit::eventually("every job finished", Duration::from_secs(30), || async {
        let c = queue.counts().await.unwrap();
        if c.waiting + c.delayed + c.active == 0 {
            Ok(())
        } else {
            Err(c)
        }
    })
    .await;
    let jobs = queue.list(JobState::Completed, 10_000).await.unwrap();
    let mut per_tick: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for j in &jobs {
        per_tick
            .entry(tick_of(j.dedup_key.as_deref().unwrap()))
            .or_default()
            .push(j.id.clone());
    }
    let ticks: Vec<i64> = per_tick.keys().copied().collect();
    assert!(ticks.len() >= 60, "{} ticks", ticks.len());
    for (tick, ids) in &per_tick {
        assert_eq!(ids.len(), 1, "tick {tick}: {ids:?}");
    }
    for w in ticks.windows(2) {
        assert_eq!(w[1] - w[0], 1000, "no tick missed: {} then {}", w[0], w[1]);
    }
    assert!(
        *ticks.last().unwrap() <= removed_at,
        "nothing enqueued after the removal"
    );
    // Each job ran, and more than once only when an attempt was cut short (at least once).
    let mut conn = sandbox.hub.redis("cache").unwrap().conn().await.unwrap();
    let key = format!(
        "{}marks:{set}",
        sandbox.hub.redis("cache").unwrap().key_prefix()
    );
    let marks: HashMap<String, u32> = redis::cmd("HGETALL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    for j in &jobs {
        let runs = marks.get(&j.id).copied().unwrap_or(0);
        assert!(
            runs >= 1 && runs <= j.attempts,
            "job {} ran {runs} times in {} attempts",
            j.id,
            j.attempts
        );
    }
    // Removed: no further ticks, in any process. A ticker claims only what the queue's
    // timetable holds as due: asked an hour from now, it holds nothing of the schedule, and
    // nothing is left to run.
    let (due, next) = queue.due_ticks(removed_at + 3_600_000).await.unwrap();
    assert!(
        due.iter().all(|(name, _, _)| name != "every-second") && next.is_none(),
        "{due:?} {next:?}"
    );
    assert!(schedules.find("every-second").await.unwrap().is_none());
    let c = queue.counts().await.unwrap();
    assert_eq!(
        (c.completed as usize, c.waiting + c.delayed),
        (jobs.len(), 0)
    );
    for mut w in workers {
        signal(&w, "-TERM");
        w.wait().unwrap();
    }
    let _ = sandbox.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_managed_from_the_cli_and_over_http() {
    let sandbox = Sandbox::create(&common::load_options()).await.unwrap();
    let sets: Vec<&str> = sandbox.overrides.iter().map(String::as_str).collect();
    let with_sets = |args: &[&str]| {
        let mut all = args.to_vec();
        for s in &sets {
            all.extend(["--set", s]);
        }
        let out = tokio::task::block_in_place(|| common::run(&all, &[]));
        let (stdout, stderr) = common::text(&out);
        (out.status.code(), stdout, stderr)
    };
    let (code, out, err) = with_sets(&[
        "schedule",
        "add",
        "nightly",
        "--cron",
        "0 30 2 * * *",
        "--tz",
        "Europe/Berlin",
        "--type",
        "builtin.noop",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let added: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        added["next_run"].as_str().unwrap().contains("T0"),
        "{added}"
    );
    let (code, _, err) = with_sets(&[
        "schedule",
        "add",
        "bad",
        "--cron",
        "0 7o * * *",
        "--type",
        "builtin.noop",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("cron: field 2 (hour) `7o`"), "{err}");
    let (code, out, _) = with_sets(&["schedule", "pause", "nightly"]);
    assert_eq!(code, Some(0), "{out}");
    let (_, out, _) = with_sets(&["schedule", "list"]);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["paused"], true, "{list}");
    assert!(list[0]["next_run"].is_null());

    // Over HTTP, operators only.
    let app = App::build(&sandbox.hub).unwrap();
    let key = app
        .auth()
        .create_key("ops", &[tsp_mobility::auth::Scope::Admin])
        .await
        .unwrap()
        .key;
    let server =
        tokio::task::block_in_place(|| common::Server::start(&sets, &[])).with_credential(key);
    let body = serde_json::json!({"name": "often", "every_ms": 60000,
        "job_type": "builtin.noop", "queue": "default"});
    let mut claims_declared = body.clone();
    claims_declared["declared"] = true.into();
    let (code, out) = tokio::task::block_in_place(|| server.post("/schedules", &claims_declared));
    assert_eq!(code, 400, "{out}");
    assert!(out.contains("declared"), "{out}");
    let (code, out) = tokio::task::block_in_place(|| server.post("/schedules", &body));
    assert_eq!(code, 201, "{out}");
    let (code, out) = tokio::task::block_in_place(|| server.get("/schedules"));
    assert_eq!(code, 200);
    let all: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    let delete = || {
        let credential = server.credential.as_deref();
        let path = "/schedules/often";
        tokio::task::block_in_place(|| {
            server
                .send(reqwest::Method::DELETE, path, None, credential)
                .0
        })
    };
    assert_eq!(delete(), 200);
    assert_eq!(delete(), 404, "gone after the first");
    drop(server);
    let _ = sandbox.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_declared_in_the_configuration_are_reconciled_by_workers() {
    let mut options = common::load_options();
    let declared = [
        "schedules.beat.every=1s",
        "schedules.beat.type=builtin.noop",
        "schedules.beat.queue=declared",
    ];
    options.overrides.extend(declared.map(String::from));
    let sandbox = Sandbox::create(&options).await.unwrap();
    let app = App::build(&sandbox.hub).unwrap();
    // The first reconcile stores it; the next finds it as declared and leaves it be.
    let first = app.reconcile_schedules().await.unwrap();
    assert_eq!(
        (first.put, first.removed),
        (vec!["beat".to_string()], vec![])
    );
    assert_eq!(app.reconcile_schedules().await.unwrap(), Default::default());
    let listed = app.schedules().find("beat").await.unwrap().unwrap();
    assert_eq!(listed.schedule.every_ms, Some(1000));

    // A worker started with the same configuration runs it.
    let mut w = common::worker_on(&sandbox.overrides, "declared", 4, "2s", &declared);
    let queue = app.queue("declared").unwrap();
    tsp_testkit::eventually(
        "the declared schedule ran",
        Duration::from_secs(20),
        || async {
            let c = queue.counts().await.unwrap();
            if c.completed >= 2 { Ok(()) } else { Err(c) }
        },
    )
    .await;
    signal(&w, "-TERM");
    w.wait().unwrap();

    // One made by hand, then a process whose configuration no longer declares `beat`: its
    // reconcile removes `beat` and leaves the other alone.
    let mut by_hand = listed.schedule.clone();
    by_hand.name = "by-hand".into();
    by_hand.declared = false;
    app.schedules().put(by_hand).await.unwrap();
    let mut later = common::load_options();
    later.overrides.extend(sandbox.overrides.iter().cloned());
    let hub = tsp_hub::Hub::connect(&tsp_config::load(&later).unwrap())
        .await
        .unwrap();
    let done = App::build(&hub)
        .unwrap()
        .reconcile_schedules()
        .await
        .unwrap();
    assert_eq!((done.put, done.removed), (vec![], vec!["beat".to_string()]));
    let left: Vec<String> = app
        .schedules()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.schedule.name)
        .collect();
    assert_eq!(left, ["by-hand"]);
    hub.shutdown(Duration::from_secs(2)).await;
    let _ = sandbox.remove().await;
}
