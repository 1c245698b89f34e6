//! The credential rotation drill, on the secure profile (docs/store-security.md#rotation): two
//! `tsp-job worker` processes complete trips while trips keep arriving; the drill's own app
//! accounts (the same rights as `tsp_app`, so parallel tests are not disturbed) get new
//! passwords, one store after another, in their secret files and on the servers. Afterwards: no
//! job dead or retried to death, every completed trip whole, every worker took every new
//! password, and every server refuses the old ones.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mongodb::bson::doc;
use tsp_hub::Hub;
use tsp_mobility::batch;
use tsp_mobility::sandbox::Sandbox;
use tsp_queue::Queue;

const MYSQL: [&str; 4] = ["PORTAL", "DATASET", "GTFS", "INCENTIVE"];
const MONGO: [&str; 2] = ["CACHE", "DATASET"];
const INFLUX: [&str; 2] = ["PRIMARY", "UIS"];

fn secure_root() -> PathBuf {
    tsp_testkit::config_dir().join("../.data/secure")
}

fn new_password() -> String {
    format!("{} p@ss:w/rd?#%+é", tsp_testkit::unique(""))
}

/// The drill's accounts: one user name on every store, its password in a file per store.
struct Accounts {
    user: String,
    dir: tempfile::TempDir,
    migrator: Hub,
    databases: Vec<String>,
}

impl Accounts {
    fn file(&self, store: &str) -> PathBuf {
        self.dir.path().join(store)
    }

    /// The worker environment that makes every instance use the drill's accounts.
    fn env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        let mut add = |kind: &str, instances: &[&str], user_key: &str, store: &str| {
            for i in instances {
                let key = format!("TSP__{kind}__{i}__");
                env.push((format!("{key}{user_key}"), self.user.clone()));
                let file = self.file(store).display().to_string();
                env.push((format!("{key}PASSWORD_FILE"), file));
            }
        };
        add("MYSQL", &MYSQL, "USER", "mysql");
        add("REDIS", &["CACHE"], "USERNAME", "redis");
        add("MONGO", &MONGO, "USERNAME", "mongo");
        add("INFLUX", &INFLUX, "USERNAME", "influx");
        env
    }

    /// Creates the accounts with `password` everywhere.
    async fn create(sandbox: &Sandbox, password: &str) -> Accounts {
        let migrator = Hub::connect(&sandbox.hub.config().as_migrator())
            .await
            .unwrap();
        let mut databases: Vec<String> = sandbox
            .hub
            .influx_instances()
            .map(|s| s.default_target())
            .collect();
        databases.push(sandbox.hub.config().service_monitor.bucket.clone());
        let a = Accounts {
            user: tsp_testkit::unique("rot_"),
            dir: tempfile::tempdir().unwrap(),
            migrator,
            databases,
        };
        let u = &a.user;
        mariadb_root(&format!(
            "CREATE USER '{u}'@'127.0.0.1' IDENTIFIED BY '{password}' REQUIRE SSL; \
             CREATE USER '{u}'@'localhost' IDENTIFIED BY '{password}' REQUIRE SSL; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON `tsp%`.* TO '{u}'@'127.0.0.1'; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON `tsp%`.* TO '{u}'@'localhost';"
        ));
        // Redis: the app account's rules, under the drill's name and password.
        let mut r = a.migrator.redis("cache").unwrap().conn().await.unwrap();
        let rules: Vec<String> = redis::cmd("ACL")
            .arg("LIST")
            .query_async(&mut r)
            .await
            .unwrap();
        let app = rules
            .iter()
            .find(|l| l.starts_with("user tsp_app "))
            .unwrap();
        let mut args: Vec<String> = vec!["SETUSER".into(), u.clone()];
        args.extend(
            app.split(' ')
                .skip(2)
                .filter(|w| !w.starts_with('#') && !w.starts_with('>'))
                .map(String::from),
        );
        args.push(format!(">{password}"));
        let _: () = redis::cmd("ACL")
            .arg(&args)
            .query_async(&mut r)
            .await
            .unwrap();
        mongo_root(
            doc! {"createUser": u, "pwd": password, "roles": [{"role": "tspApp", "db": "admin"}]},
        )
        .await;
        let influx = a.migrator.influx("primary").unwrap();
        influx
            .query_v1(
                "",
                &format!("CREATE USER \"{u}\" WITH PASSWORD '{password}'"),
            )
            .await
            .unwrap();
        for db in &a.databases {
            influx
                .query_v1("", &format!("GRANT ALL ON \"{db}\" TO \"{u}\""))
                .await
                .unwrap();
        }
        for store in ["mysql", "redis", "mongo", "influx"] {
            std::fs::write(a.file(store), password).unwrap();
        }
        a
    }

    /// Gives `store`'s account `password`: the secret file first, then the server (the order
    /// an operator's tooling uses; the workers keep trying until the server agrees).
    async fn rotate(&self, store: &str, password: &str) {
        std::fs::write(self.file(store), password).unwrap();
        let u = &self.user;
        match store {
            "mysql" => mariadb_root(&format!(
                "ALTER USER '{u}'@'127.0.0.1' IDENTIFIED BY '{password}'; \
                 ALTER USER '{u}'@'localhost' IDENTIFIED BY '{password}';"
            )),
            "redis" => {
                let mut r = self.migrator.redis("cache").unwrap().conn().await.unwrap();
                let _: () = redis::cmd("ACL")
                    .arg(&["SETUSER", u, "resetpass", &format!(">{password}")][..])
                    .query_async(&mut r)
                    .await
                    .unwrap();
            }
            "mongo" => mongo_root(doc! {"updateUser": u, "pwd": password}).await,
            _ => {
                let influx = self.migrator.influx("primary").unwrap();
                let q = format!("SET PASSWORD FOR \"{u}\" = '{password}'");
                influx.query_v1("", &q).await.unwrap();
            }
        }
    }

    /// Whether `store` accepts `password` for the drill's account, on a fresh connection.
    async fn accepts(&self, sandbox: &Sandbox, store: &str, password: &str) -> bool {
        let mut sets = Vec::new();
        let u = &self.user;
        let instance = match store {
            "mysql" => "portal",
            "redis" | "mongo" => "cache",
            _ => "primary",
        };
        let user_key = if store == "mysql" { "user" } else { "username" };
        sets.push(format!("{store}.{instance}.{user_key}={u}"));
        sets.push(format!("{store}.{instance}.password={password}"));
        let mut opts = tsp_testkit::load_options_for("secure", &sets);
        opts.overrides.extend(sandbox.overrides.iter().cloned());
        let hub = Hub::connect(&tsp_config::load(&opts).unwrap())
            .await
            .unwrap();
        let up = hub
            .health()
            .await
            .instances
            .iter()
            .find(|i| i.store == store && i.instance == instance)
            .is_some_and(|i| i.status == tsp_hub::Status::Up);
        hub.shutdown(Duration::from_secs(1)).await;
        up
    }

    async fn drop_all(self) {
        let u = &self.user;
        mariadb_root(&format!(
            "DROP USER '{u}'@'127.0.0.1'; DROP USER '{u}'@'localhost';"
        ));
        let mut r = self.migrator.redis("cache").unwrap().conn().await.unwrap();
        let _: i64 = redis::cmd("ACL")
            .arg(&["DELUSER", u][..])
            .query_async(&mut r)
            .await
            .unwrap();
        mongo_root(doc! {"dropUser": u}).await;
        let influx = self.migrator.influx("primary").unwrap();
        influx
            .query_v1("", &format!("DROP USER \"{u}\""))
            .await
            .unwrap();
        self.migrator.shutdown(Duration::from_secs(1)).await;
    }
}

/// Runs `sql` as MariaDB's root over the secure server's socket (creating users is beyond the
/// migrator's rights, as it should be).
fn mariadb_root(sql: &str) {
    let socket = secure_root().join("mysql.sock");
    let out = Command::new("mariadb")
        .arg(format!("--socket={}", socket.display()))
        .args(["-uroot", "-e", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a user-management command as SecantusDB's root account (its secret from the script).
async fn mongo_root(command: mongodb::bson::Document) {
    let root = std::fs::read_to_string(secure_root().join("secrets/mongo-root")).unwrap();
    let sets = [
        "mongo.cache.username=tsp_root".to_string(),
        format!("mongo.cache.password={root}"),
    ];
    let hub =
        Hub::connect(&tsp_config::load(&tsp_testkit::load_options_for("secure", &sets)).unwrap())
            .await
            .unwrap();
    let admin = hub.mongo("cache").unwrap().client().database("admin");
    admin.run_command(command).await.unwrap();
    hub.shutdown(Duration::from_secs(1)).await;
}

/// A worker on the sandbox's trips queue with the drill's accounts, polling secrets every
/// 100 ms, its pool connections recycled every 2 s (so new ones must use the new passwords);
/// its log lines arrive on the receiver.
fn worker(sandbox: &Sandbox, accounts: &Accounts) -> (Child, mpsc::Receiver<String>) {
    let env = accounts.env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.push(("TSP_LOG", "warn,tsp_server::reload=info"));
    env.push(("TSP_ENV", "secure"));
    let mut extra = vec!["secrets.poll_interval=100ms".to_string()];
    for i in MYSQL {
        extra.push(format!("mysql.{}.pool.max_lifetime=2s", i.to_lowercase()));
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut child = common::worker_command(&env, &sandbox.overrides, "trips", 8, "5s", &extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// A worker process stopped (SIGTERM, then waited for) when dropped: also when the test fails.
struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// Waits (bounded) until `log` has said "credentials replaced" for each of `store`'s
/// `instances`; every line read goes to `seen`.
fn wait_replaced(log: &mpsc::Receiver<String>, seen: &mut Vec<String>, store: &str, n: usize) {
    let tag = format!("store=\"{store}\"");
    let replaced = |l: &str| l.contains("credentials replaced") && l.contains(&tag);
    wait_until(log, seen, &format!("{store} replaced"), replaced, n);
}

/// Waits (bounded) until `log` has said `text` `times` times.
fn wait_for(log: &mpsc::Receiver<String>, seen: &mut Vec<String>, text: &str, times: usize) {
    wait_until(log, seen, text, |l| l.contains(text), times);
}

fn wait_until(
    log: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    what: &str,
    matches: impl Fn(&str) -> bool,
    times: usize,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let count = |seen: &[String]| seen.iter().filter(|l| matches(l)).count();
    while count(seen) < times {
        let left = deadline.saturating_duration_since(Instant::now());
        match log.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("{what}: {} of {times}; log: {seen:#?}", count(seen)),
        }
    }
}

/// The queue's counts once `n` jobs are finished and nothing is left (bounded).
async fn settled(queue: &Queue, n: usize) -> tsp_queue::QueueCounts {
    tsp_testkit::eventually("settled", Duration::from_secs(120), || async {
        let c = queue.counts().await.unwrap();
        if batch::settled(&c) && c.completed + c.dead == n as u64 {
            Ok(c)
        } else {
            Err(c)
        }
    })
    .await
}

async fn enqueue(queue: &Queue, seed: u64, n: usize) -> usize {
    common::enqueue_generated(queue, seed, n, 40, 10)
        .await
        .1
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_rotate_on_every_store_while_workers_run_with_no_failed_job() {
    let sandbox = Sandbox::create(&tsp_testkit::load_options_for("secure", &[]))
        .await
        .unwrap();
    let hub = sandbox.hub.clone();
    common::seed_users(&hub, 40).await;
    let queue = Queue::new(
        hub.redis("cache").unwrap().clone(),
        "trips",
        &hub.config().queue,
    )
    .unwrap();
    let first = new_password();
    let accounts = Accounts::create(&sandbox, &first).await;
    let mut workers: Vec<(Stopped, mpsc::Receiver<String>, Vec<String>)> = (0..2)
        .map(|_| {
            let (c, rx) = worker(&sandbox, &accounts);
            (Stopped(c), rx, Vec::new())
        })
        .collect();

    // Rotations start once both workers are up and watching their secrets.
    for (_, log, seen) in &mut workers {
        wait_for(log, seen, "watching secret files", 1);
    }
    // Trips keep arriving through every rotation. Each batch has its own seed, and the seeds
    // differ modulo 8, so no user's trips of two batches overlap in time (`seed::Timeline`).
    let mut enqueued = enqueue(&queue, 1, 200).await;
    let instances = [
        ("mysql", MYSQL.len()),
        ("redis", 1),
        ("mongo", MONGO.len()),
        ("influx", INFLUX.len()),
    ];
    for (round, (store, n)) in instances.iter().enumerate() {
        // Work is queued when the password changes.
        enqueued += enqueue(&queue, 10 + round as u64, 100).await;
        let next = new_password();
        accounts.rotate(store, &next).await;
        let rotated = Instant::now();
        for (_, log, seen) in &mut workers {
            wait_replaced(log, seen, store, *n);
        }
        eprintln!(
            "drill: {store} taken by both workers {:?} after the server changed",
            rotated.elapsed()
        );
        assert!(
            !accounts.accepts(&sandbox, store, &first).await,
            "{store} still takes the first password"
        );
        assert!(
            accounts.accepts(&sandbox, store, &next).await,
            "{store} refuses the new password"
        );
        // Everything queued so far finishes on the new password before the next store's turn.
        let c = settled(&queue, enqueued).await;
        assert_eq!(c.dead, 0, "{store}: {c:?}");
    }
    enqueued += enqueue(&queue, 16, 100).await;
    let started = Instant::now();
    let counts = settled(&queue, enqueued).await;
    eprintln!("drill: settled after {:?}: {counts:?}", started.elapsed());
    for (_, _, seen) in &workers {
        for line in seen
            .iter()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .take(5)
        {
            eprintln!("drill: worker said: {line}");
        }
    }
    tokio::task::block_in_place(|| drop(workers));
    assert_eq!(
        (counts.completed, counts.dead),
        (enqueued as u64, 0),
        "{counts:?}"
    );
    let trips = common::trips(&hub);
    let f = batch::footprint(&trips).await.unwrap();
    let n = enqueued as i64;
    assert_eq!(
        (f.trips_completed, f.trips_unfinished, f.earn_transactions),
        (n, 0, n)
    );
    assert_eq!((f.trajectories, f.activities), (n as u64, n as u64));
    accounts.drop_all().await;
    sandbox.dispose().await;
}
