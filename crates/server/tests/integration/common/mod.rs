//! Helpers for running the `tsp-job` binary against the local services.
#![allow(dead_code, unused_imports)]

pub mod api;
pub mod browser;
pub mod otlp;
pub mod prometheus;
pub mod workers;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub use tsp_testkit::{closed_port, config, config_dir, unique};

/// Configuration options for this process: the project's config folder, the test environment.
pub fn load_options() -> tsp_config::LoadOptions {
    tsp_testkit::load_options(&[])
}

/// The binary with a clean environment: only PATH, HOME and the config folder, plus `env`.
pub fn tsp_job(env: &[(&str, &str)]) -> Command {
    tsp_testkit::command(env!("CARGO_BIN_EXE_tsp-job"), env)
}

pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    tsp_job(env).args(args).output().expect("run tsp-job")
}

pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `tsp-job serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub stderr: mpsc::Receiver<String>,
    /// The bearer credential `get` presents, if any.
    pub credential: Option<String>,
}

impl Server {
    /// Starts `serve` on a free port and waits (bounded) for its "listening on" line.
    pub fn start(sets: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = tsp_job(env);
        cmd.args(["serve", "--set", "server.listen=127.0.0.1:0"]);
        for s in sets {
            cmd.args(["--set", s]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (etx, erx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = etx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve printed its address");
        let base = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_string();
        Server {
            child,
            base,
            stderr: erx,
            credential: None,
        }
    }

    /// Presents `credential` on every request from now on.
    pub fn with_credential(mut self, credential: String) -> Server {
        self.credential = Some(credential);
        self
    }

    /// GET with this server's credential.
    pub fn get(&self, path: &str) -> (u16, String) {
        self.send(reqwest::Method::GET, path, None, self.credential.as_deref())
    }

    /// POST `body` as JSON with this server's credential.
    pub fn post(&self, path: &str, body: &serde_json::Value) -> (u16, String) {
        self.send(
            reqwest::Method::POST,
            path,
            Some(body),
            self.credential.as_deref(),
        )
    }

    /// Any request, with `credential` (or none) as the bearer.
    pub fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
        credential: Option<&str>,
    ) -> (u16, String) {
        let client = reqwest::blocking::Client::new();
        let mut req = client.request(method, format!("{}{path}", self.base));
        if let Some(c) = credential {
            req = req.bearer_auth(c);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().expect("HTTP request");
        (resp.status().as_u16(), resp.text().unwrap_or_default())
    }

    /// SIGTERM, then the exit code (bounded wait).
    pub fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let child = &mut self.child;
        let exited = tsp_testkit::eventually_blocking("exit", Duration::from_secs(10), || {
            match child.try_wait() {
                Ok(Some(status)) => Ok(status),
                other => Err(other.map_err(|e| e.to_string())),
            }
        });
        exited.code()
    }

    pub fn stderr_so_far(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A worker process on the trips queue of the databases `overrides` point at (see
/// [`worker_on`]).
pub fn trip_worker(overrides: &[String], concurrency: usize, lease: &str, extra: &[&str]) -> Child {
    worker_on(overrides, "trips", concurrency, lease, extra)
}

/// A worker process on `queue` of the databases `overrides` point at: `concurrency` jobs at
/// once, leases of `lease`, three attempts 50 ms apart, no queue records, then the `extra`
/// settings. Its output is discarded.
pub fn worker_on(
    overrides: &[String],
    queue: &str,
    concurrency: usize,
    lease: &str,
    extra: &[&str],
) -> Child {
    worker_command(
        &[("TSP_LOG", "warn")],
        overrides,
        queue,
        concurrency,
        lease,
        extra,
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn worker")
}

/// The command [`worker_on`] runs, with `env` set, for a caller that wants its output.
pub fn worker_command(
    env: &[(&str, &str)],
    overrides: &[String],
    queue: &str,
    concurrency: usize,
    lease: &str,
    extra: &[&str],
) -> Command {
    let mut cmd = tsp_job(env);
    cmd.args([
        "worker",
        "--queue",
        queue,
        "--concurrency",
        &concurrency.to_string(),
    ]);
    let mut sets: Vec<String> = overrides.to_vec();
    sets.push(format!("queue.lease={lease}"));
    sets.extend(
        [
            "queue.backoff=50ms",
            "queue.max_attempts=3",
            "queue.shutdown_grace=5s",
            "queue.records.mongo=false",
            "queue.records.influx=false",
        ]
        .map(String::from),
    );
    sets.extend(extra.iter().map(|s| s.to_string()));
    for s in &sets {
        cmd.args(["--set", s]);
    }
    cmd
}

/// An API key with `scopes` on the databases `sets` point at (migrated first, idempotently).
pub fn api_key(sets: &[&str], scopes: &[&str]) -> String {
    let with_sets = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        for s in sets {
            all.extend(["--set", s]);
        }
        let out = run(&all, &[]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{args:?}: {stderr}");
        stdout
    };
    with_sets(&["migrate"]);
    let mut create = vec!["apikey", "create", "--name", "test"];
    for s in scopes {
        create.extend(["--scope", s]);
    }
    let printed = with_sets(&create);
    let key: serde_json::Value = serde_json::from_str(printed.trim()).expect("apikey JSON");
    key["key"].as_str().expect("a key").to_string()
}

/// Every scope: what an admin's key holds.
pub const ALL_SCOPES: &[&str] = &[
    "jobs:write",
    "jobs:read",
    "trips:write",
    "users:read",
    "analytics:read",
    "admin",
];

/// The value of the first sample of `name` whose labels include every `labels` pair.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Holds a `/metrics` scrape to the catalogue (`tsp_server::telemetry::catalogue`): every
/// `tsp_` family has a `# HELP` line, is in the catalogue with the same type, and carries only
/// the label keys the catalogue documents. The families seen, so a caller can ask for more.
pub fn assert_catalogued(text: &str) -> Vec<String> {
    let catalogue: std::collections::HashMap<&str, &tsp_hub::Metric> =
        tsp_server::telemetry::catalogue()
            .map(|m| (m.name, m))
            .collect();
    let mut seen = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        if !name.starts_with("tsp_") {
            continue;
        }
        let m = catalogue
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in the metric catalogue"));
        assert_eq!(kind, m.kind.prometheus_type(), "{name}: type");
        assert!(
            text.contains(&format!("# HELP {name} {}", m.help)),
            "{name}: no # HELP line with its catalogue text"
        );
        seen.push(name.to_string());
    }
    for sample in text.lines().filter(|l| l.starts_with("tsp_")) {
        let name = sample.split(['{', ' ']).next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| catalogue.contains_key(f)))
            .unwrap_or(name);
        let m = catalogue
            .get(family)
            .unwrap_or_else(|| panic!("{sample}: {family} is not in the metric catalogue"));
        let labels = sample
            .split_once('{')
            .and_then(|(_, l)| l.rsplit_once('}'))
            .map_or("", |(l, _)| l);
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let key = pair.split_once('=').unwrap().0;
            assert!(
                m.labels.contains(&key) || key == "le",
                "{sample}: label {key} is not one of {family}'s ({:?})",
                m.labels
            );
        }
    }
    seen
}

/// The password every test account gets.
pub const PASSWORD: &str = "correct horse battery";

/// A sandbox, the service's components on it (to make accounts and keys), and its servers.
pub struct Site {
    pub sandbox: tsp_mobility::sandbox::Sandbox,
    pub app: tsp_server::app::App,
}

impl Site {
    pub async fn new(sets: &[&str]) -> Site {
        let mut options = load_options();
        options.overrides.extend(sets.iter().map(|s| s.to_string()));
        let sandbox = tsp_mobility::sandbox::Sandbox::create(&options)
            .await
            .unwrap();
        let app = tsp_server::app::App::build(&sandbox.hub).unwrap();
        tsp_mobility::seed::seed_users(&app.stores().auth.portal, 3)
            .await
            .unwrap();
        Site { sandbox, app }
    }

    /// A `serve` process on the sandbox, with `sets` on top.
    pub fn server(&self, sets: &[&str]) -> Server {
        let mut all: Vec<&str> = self.sandbox.overrides.iter().map(String::as_str).collect();
        all.extend(sets);
        tokio::task::block_in_place(|| Server::start(&all, &[("TSP_LOG", "debug")]))
    }

    /// User `id` (seeded) gets a password and an email to log in with.
    pub async fn user_with_password(&self, id: u64) -> String {
        let email = format!("user{id}@example.test");
        sqlx::query("UPDATE users SET email = ? WHERE id = ?")
            .bind(&email)
            .bind(id)
            .execute(self.sandbox.hub.mysql("portal").unwrap().pool())
            .await
            .unwrap();
        self.app
            .auth()
            .set_user_password(id, PASSWORD.into())
            .await
            .unwrap();
        email
    }

    pub async fn key(&self, scopes: &[tsp_mobility::auth::Scope]) -> String {
        self.app
            .auth()
            .create_key("test", scopes)
            .await
            .unwrap()
            .key
    }

    pub async fn operator(&self, role: tsp_mobility::auth::Role) -> String {
        let name = format!("op{}", rand::random::<u32>());
        self.app
            .auth()
            .create_operator(&name, role, PASSWORD.into())
            .await
            .unwrap();
        name
    }

    /// `tsp-job args…` on the sandbox (its overrides after `args`), run to its end.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        for s in &self.sandbox.overrides {
            all.extend(["--set", s.as_str()]);
        }
        tokio::task::block_in_place(|| run(&all, &[]))
    }

    /// [`Site::cli`] with `input` on its standard input (passwords).
    pub fn cli_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        for s in &self.sandbox.overrides {
            all.extend(["--set", s.as_str()]);
        }
        tokio::task::block_in_place(|| {
            let mut child = tsp_job(&[])
                .args(&all)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn tsp-job");
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(input.as_bytes()).expect("write stdin");
            }
            child.wait_with_output().expect("run tsp-job")
        })
    }

    /// [`Site::cli`], which must succeed: its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{args:?}: {stderr}");
        stdout
    }

    pub async fn done(self) {
        let _ = self.sandbox.remove().await;
    }
}

/// Asks `f` until it answers `Some`, for at most `limit` (then the test fails).
pub async fn until_some<T, F, Fut>(limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    tsp_testkit::eventually("the condition", limit, || {
        let fut = f();
        async move { fut.await.ok_or("not yet") }
    })
    .await
}

/// A file of the real data beside the repository (`../shared/data/`: GTFS feeds, GPS traces).
pub fn shared_data(rel: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel)
}

/// `n` generated trips (seed `seed`, among users `1..=users`, ending within `days` before now)
/// enqueued on `queue`: the trips, and their job ids in the same order.
pub async fn enqueue_generated(
    queue: &tsp_queue::Queue,
    seed: u64,
    n: usize,
    users: u64,
    days: u32,
) -> (Vec<tsp_mobility::trip::TripCompletion>, Vec<String>) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let plan = tsp_mobility::seed::TripPlan {
        seed,
        trips: n,
        users,
        days,
        now_ms,
    };
    let stops = tsp_mobility::seed::cairns_stops().unwrap();
    let generated = tsp_mobility::seed::generate_trips(&plan, &stops);
    let ids = tsp_mobility::batch::enqueue(queue, &generated)
        .await
        .unwrap();
    (generated, ids)
}

/// Users `1..=count` in `hub`'s `mysql.portal` (see `tsp_mobility::seed::seed_users`).
pub async fn seed_users(hub: &tsp_hub::Hub, count: u64) -> u64 {
    let portal = hub.mysql(tsp_config::instances::PORTAL).unwrap();
    tsp_mobility::seed::seed_users(portal, count).await.unwrap()
}

/// The trip flows of the service on `hub`, as `serve` and `worker` build them.
pub fn trips(hub: &tsp_hub::Hub) -> tsp_mobility::complete::Trips {
    tsp_server::app::App::build(hub).unwrap().trips().clone()
}
