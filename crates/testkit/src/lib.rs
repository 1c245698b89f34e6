//! Helpers the tests of every crate share: the development configuration, names no other test
//! uses, closed ports, and a guard that deletes a test's Redis keys even when the test fails.
//! Addresses always come from the configuration, never from literals.

mod process;
mod wait;

use std::path::PathBuf;

use rand::Rng;
use tsp_config::{Config, LoadOptions};

pub use process::command;
pub use wait::{eventually, eventually_blocking, until};

/// The project's `config/` folder.
pub fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

/// The configuration environment tests run on: `TSP_TEST_ENV` (`secure` runs them over the
/// secure profile, docs/testing.md#secure), else `development`.
pub fn env_name() -> String {
    std::env::var("TSP_TEST_ENV")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "development".into())
}

/// Load options for the test environment ([`env_name`]) with `sets` (`key=value`) on top. With
/// `TSP_TEST_REDIS_CLUSTER` set (seed nodes, `host:port,…`; `scripts/services.sh up --cluster`
/// starts `127.0.0.1:7001-7006`), Redis `cache` is that Cluster: the suites that run there
/// (docs/testing.md#cluster) see it unchanged.
pub fn load_options(sets: &[&str]) -> LoadOptions {
    let mut overrides: Vec<String> = cluster_override().into_iter().collect();
    overrides.extend(sets.iter().map(|s| s.to_string()));
    load_options_for(&env_name(), &overrides)
}

/// Load options for environment `env` (`development`, `secure`) with `sets` on top, and nothing
/// else: no Cluster override.
pub fn load_options_for(env: &str, sets: &[String]) -> LoadOptions {
    LoadOptions {
        config_dir: config_dir(),
        env_name: Some(env.into()),
        env: Vec::new(),
        overrides: sets.to_vec(),
    }
}

/// The `redis.cache.cluster_nodes` override `TSP_TEST_REDIS_CLUSTER` asks for, if any.
pub fn cluster_override() -> Option<String> {
    std::env::var("TSP_TEST_REDIS_CLUSTER")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| format!("redis.cache.cluster_nodes={}", v.trim()))
}

/// The development configuration with `sets` applied on top; panics naming every problem.
pub fn config(sets: &[&str]) -> Config {
    tsp_config::load(&load_options(sets)).unwrap_or_else(|e| panic!("test configuration: {e}"))
}

/// `prefix` followed by 12 random hex digits: a name no other test (or run) uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{:012x}",
        rand::rng().random::<u64>() & 0xffff_ffff_ffff
    )
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    let Ok(l) = std::net::TcpListener::bind("127.0.0.1:0") else {
        panic!("cannot bind a loopback port");
    };
    let Ok(addr) = l.local_addr() else {
        panic!("no local address");
    };
    addr.port()
}

/// The URL of the configured Redis `cache` instance (standalone), for a test's own admin
/// connection (killing clients, reading keys).
pub fn redis_url(config: &Config) -> String {
    let Some(r) = config.redis.get(tsp_config::instances::CACHE) else {
        panic!("no redis.cache in the test configuration");
    };
    format!("redis://{}:{}/{}", r.host, r.port, r.db)
}

/// Deletes every Redis key under a test's own prefix when dropped: at the end of the test,
/// and also when it fails, so a failed run leaves nothing behind.
pub struct RedisKeys {
    url: String,
    prefix: String,
}

impl RedisKeys {
    /// Guards the keys under `prefix` on the `cache` instance of `config`.
    pub fn new(config: &Config, prefix: &str) -> RedisKeys {
        RedisKeys {
            url: redis_url(config),
            prefix: prefix.to_string(),
        }
    }

    /// A fresh prefix of the test's own (`<tag>` and random digits, then `:`) on the
    /// development configuration, and its guard.
    pub fn fresh(tag: &str) -> (String, RedisKeys) {
        let prefix = unique(tag) + ":";
        let guard = RedisKeys::new(&config(&[]), &prefix);
        (prefix, guard)
    }

    /// The guarded prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// A client of the development Redis, for a test's own commands.
pub fn redis_client() -> redis::Client {
    redis::Client::open(redis_url(&config(&[]))).expect("the development Redis URL")
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query(&mut conn)
            .unwrap_or_default();
        for chunk in keys.chunks(500) {
            let _: redis::RedisResult<i64> = redis::cmd("UNLINK").arg(chunk).query(&mut conn);
        }
    }
}

/// A private Redis server on a free loopback port (no persistence unless asked), for a test
/// that stops, fills or restarts a store on purpose. Killed when dropped.
pub struct ScratchRedis {
    child: std::process::Child,
    /// Its port.
    pub port: u16,
    /// Its data folder (its RDB and AOF files).
    pub dir: PathBuf,
    args: Vec<String>,
}

impl ScratchRedis {
    /// Starts `redis-server` (from PATH: `scripts/services.sh up` installs it) without
    /// persistence; it may take a moment to listen ([`ScratchRedis::wait_listening`]).
    pub fn start() -> ScratchRedis {
        ScratchRedis::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// Starts `redis-server` with these extra arguments (e.g. `--appendonly yes`).
    pub fn start_with(args: &[&str]) -> ScratchRedis {
        let port = closed_port();
        let dir = std::env::temp_dir().join(unique("tsp-scratch-redis-"));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let child = spawn_redis(port, &dir, &args);
        ScratchRedis {
            child,
            port,
            dir,
            args,
        }
    }

    /// Waits (bounded: 10 s) until it accepts connections.
    pub fn wait_listening(&self) {
        let what = format!("scratch redis listening on port {}", self.port);
        eventually_blocking(&what, std::time::Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).map(drop)
        });
    }

    /// Stops it at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port and folder (it loads what it persisted) and waits until
    /// it accepts connections.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn_redis(self.port, &self.dir, &self.args);
        self.wait_listening();
    }
}

fn spawn_redis(port: u16, dir: &std::path::Path, args: &[String]) -> std::process::Child {
    std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(args)
        .arg("--dir")
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("redis-server on PATH (scripts/services.sh up): {e}"))
}

impl Drop for ScratchRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The local TCP ports of this process's open sockets (from `/proc`): on a shared server, the
/// client connections that are this test's own (each test runs in its own process), e.g. to
/// kill them on a Redis Cluster node where `CLIENT ID` cannot be asked through them.
pub fn own_tcp_ports() -> std::collections::HashSet<u16> {
    let mut inodes = std::collections::HashSet::new();
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let t = target.to_string_lossy();
                if let Some(n) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    inodes.insert(n.to_string());
                }
            }
        }
    }
    let mut ports = std::collections::HashSet::new();
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(inode)) = (cols.get(1), cols.get(9)) else {
                continue;
            };
            if !inodes.contains(*inode) {
                continue;
            }
            if let Some(port) = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
            {
                ports.insert(port);
            }
        }
    }
    ports
}

/// A private Redis Cluster on free loopback ports: `primaries` primaries with one replica each,
/// AOF on, a node timeout of 2 s (so a failover takes seconds). For drills that fail nodes over
/// or kill them. Every node is killed when dropped.
pub struct ScratchCluster {
    /// Its nodes, primaries first as created (roles change with failovers).
    pub nodes: Vec<ScratchRedis>,
}

impl ScratchCluster {
    /// Starts the nodes, creates the cluster and waits (bounded) until every node says it is ok.
    pub fn start(primaries: usize) -> ScratchCluster {
        let nodes: Vec<ScratchRedis> = (0..primaries * 2)
            .map(|_| {
                ScratchRedis::start_with(&[
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "2000",
                ])
            })
            .collect();
        for n in &nodes {
            n.wait_listening();
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = std::process::Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| panic!("redis-cli on PATH: {e}"));
        if !out.status.success() {
            panic!("cluster create: {}", String::from_utf8_lossy(&out.stdout));
        }
        let cluster = ScratchCluster { nodes };
        cluster.wait_ok();
        cluster
    }

    /// Seed nodes as `redis.<i>.cluster_nodes` takes them.
    pub fn seeds(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `redis-cli -p PORT args…`'s output ("" when the node does not answer).
    pub fn cli(port: u16, args: &[&str]) -> String {
        std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Waits (bounded: 30 s) until every live node reports `cluster_state:ok` and agrees on
    /// `primaries` primaries serving every slot.
    pub fn wait_ok(&self) {
        eventually_blocking(
            "cluster_state:ok",
            std::time::Duration::from_secs(30),
            || {
                let ok = self.nodes.iter().all(|n| {
                    std::net::TcpStream::connect(("127.0.0.1", n.port)).is_err()
                        || ScratchCluster::cli(n.port, &["cluster", "info"])
                            .contains("cluster_state:ok")
                });
                if ok { Ok(()) } else { Err("not yet") }
            },
        );
    }

    /// The port of the primary serving `key`'s slot, and of a replica of it.
    pub fn owners_of(&self, key: &str) -> (u16, Option<u16>) {
        let live = self
            .nodes
            .iter()
            .find(|n| std::net::TcpStream::connect(("127.0.0.1", n.port)).is_ok())
            .unwrap_or_else(|| panic!("no live node"));
        let slot: u16 = ScratchCluster::cli(live.port, &["cluster", "keyslot", key])
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("keyslot of {key}: {e}"));
        let nodes = ScratchCluster::cli(live.port, &["cluster", "nodes"]);
        let mut primary: Option<(String, u16)> = None;
        for line in nodes.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") {
                continue;
            }
            let serves = f[8..].iter().any(|range| {
                let mut ends = range.split('-').filter_map(|x| x.parse::<u16>().ok());
                match (ends.next(), ends.next()) {
                    (Some(a), Some(b)) => a <= slot && slot <= b,
                    (Some(a), None) => a == slot,
                    _ => false,
                }
            });
            if serves {
                primary = Some((f[0].to_string(), port_of(f[1])));
            }
        }
        let (id, port) = primary.unwrap_or_else(|| panic!("no primary serves slot {slot}"));
        let replica = nodes.lines().find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() > 3 && f[2].contains("slave") && !f[2].contains("fail") && f[3] == id)
                .then(|| port_of(f[1]))
        });
        (port, replica)
    }

    /// The node on `port`.
    pub fn node(&mut self, port: u16) -> &mut ScratchRedis {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }
}

/// The port of a `cluster nodes` address (`127.0.0.1:7001@17001`).
fn port_of(addr: &str) -> u16 {
    addr.split('@')
        .next()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// Spans of time already handed out by [`trip_end`] in this process.
static TRIP_SPANS: std::sync::Mutex<Vec<(i64, i64)>> = std::sync::Mutex::new(Vec::new());

/// The end (Unix ms) of a test trip lasting `span_ms` that ends `ago_ms` before now or, when
/// that would overlap a trip this process made before, just before the latest such trip began:
/// one user's trips may not overlap in time (docs/security.md#points), and tests make many
/// trips of one user in a row.
pub fn trip_end(ago_ms: i64, span_ms: i64) -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    let mut spans = match TRIP_SPANS.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let mut end = now - ago_ms;
    while let Some(&(start, _)) = spans
        .iter()
        .filter(|&&(s, e)| s < end && end - span_ms < e)
        .min_by_key(|&&(s, _)| s)
    {
        end = start - 1_000;
    }
    spans.push((end - span_ms, end));
    end
}
