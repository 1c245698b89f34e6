//! A worker that nobody scrapes keeps its memory flat: the metrics recorder folds histogram
//! samples into buckets on its own (docs/metrics.md). Without that, each job's wait and run
//! samples stayed in memory until a scrape, about 4 MB per 100 000 jobs.

use crate::common::workers::{cli, counts, prefix, sets, signal, spawn_worker, wait_for};
use std::time::Duration;

const ROUNDS: usize = 10;
const PER_ROUND: u64 = 100_000;

/// The resident set of process `pid`, in kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn mean(v: &[u64]) -> u64 {
    v.iter().sum::<u64>() / v.len() as u64
}

#[test]
fn a_worker_nobody_scrapes_keeps_its_memory_flat_over_a_million_jobs() {
    let (p, _cleanup) = prefix();
    let s = sets(&p);
    let worker = spawn_worker(&["--concurrency", "64"], &s);
    let mut rss = Vec::new();
    for round in 1..=ROUNDS as u64 {
        let count = PER_ROUND.to_string();
        cli(&["enqueue", "builtin.noop", "--count", &count], &s);
        wait_for("the round to finish", Duration::from_secs(300), || {
            counts(&s)["totals"]["completed"].as_u64() == Some(round * PER_ROUND)
        });
        rss.push(rss_kb(worker.id()));
    }
    signal(&worker, "-TERM");
    let out = worker.wait_with_output().unwrap();
    assert!(out.status.success());
    eprintln!("worker RSS (kB) after each {PER_ROUND} no-op jobs: {rss:?}");
    // Without upkeep the last three rounds sat 29 MB above the first three, and still rising;
    // with it 9 MB, levelling off after the fourth round (docs/metrics.md#upkeep).
    let (first, last) = (mean(&rss[..3]), mean(&rss[ROUNDS - 3..]));
    assert!(
        last < first + 20_000,
        "RSS grew from {first} kB to {last} kB over {} jobs: {rss:?}",
        ROUNDS as u64 * PER_ROUND
    );
}
