//! Redis Cluster: a three-node cluster started for the test; the hub connects through its seed
//! nodes, checks health and runs commands that land on different slots.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tsp_hub::{Hub, Status};

struct Cluster {
    nodes: Vec<Child>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            let _ = n.kill();
            let _ = n.wait();
        }
    }
}

fn ping(port: u16) -> bool {
    Command::new("redis-cli")
        .args(["-p", &port.to_string(), "ping"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
}

fn start_cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    let mut ports = Vec::new();
    for n in 0..3 {
        let port = common::closed_port();
        let node_dir = dir.path().join(format!("n{n}"));
        std::fs::create_dir_all(&node_dir).unwrap();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
            ])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--cluster-node-timeout",
                "2000",
            ])
            .arg("--dir")
            .arg(&node_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        nodes.push(child);
        ports.push(port);
    }
    tsp_testkit::eventually_blocking("cluster nodes started", Duration::from_secs(10), || {
        if ports.iter().all(|p| ping(*p)) {
            Ok(())
        } else {
            Err(&ports)
        }
    });
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let out = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Wait until every node agrees the cluster is up.
    tsp_testkit::eventually_blocking("cluster_state:ok", Duration::from_secs(20), || {
        let ok = ports.iter().all(|p| {
            Command::new("redis-cli")
                .args(["-p", &p.to_string(), "cluster", "info"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
        });
        if ok { Ok(()) } else { Err(&ports) }
    });
    Cluster {
        nodes,
        ports,
        _dir: dir,
    }
}

#[tokio::test]
async fn the_hub_speaks_to_a_redis_cluster() {
    let cluster = start_cluster();
    let seeds = cluster
        .ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let config = common::config(&[&format!("redis.cache.cluster_nodes={seeds}")]);
    let hub = Hub::connect(&config).await.unwrap();
    let h = hub.health().await;
    let redis = h.get("redis", "cache").unwrap();
    assert_eq!(redis.status, Status::Up, "{:?}", redis.error);

    let store = hub.redis("cache").unwrap();
    let mut conn = store.conn().await.unwrap();
    // Keys spread over many slots, so over all three nodes.
    for n in 0..200 {
        let _: () = redis::cmd("SET")
            .arg(format!("{}k{n}", store.key_prefix()))
            .arg(n)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    for n in 0..200 {
        let v: i64 = redis::cmd("GET")
            .arg(format!("{}k{n}", store.key_prefix()))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(v, n);
    }
    let mut owners = std::collections::BTreeSet::new();
    for p in &cluster.ports {
        let out = Command::new("redis-cli")
            .args(["-p", &p.to_string(), "dbsize"])
            .output()
            .unwrap();
        let n: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        if n > 0 {
            owners.insert(*p);
        }
    }
    assert_eq!(owners.len(), 3, "keys landed on every node");
}
