//! The disaster-recovery drill, small: `scripts/dr-drill.sh` with a few hundred trips on its own
//! services (destroyed and recovered by the drill), checked from its JSON report. Redis comes
//! back from its append-only file (the drill's default); restoring it from a set is
//! `backup.rs`'s round trip.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::process::Command;

#[test]
fn the_drill_recovers_every_store_and_the_invariant_holds() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/dr-drill.sh"))
        .arg("300")
        .env("TSP_JOB", env!("CARGO_BIN_EXE_tsp-job"))
        // Two trips at a time: slow enough that the backup lands in the middle of the job.
        .env("DRILL_CONCURRENCY", "2")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the drill failed:\n{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not a report ({e}):\n{stderr}"));
    let r = |path: &str| report.pointer(path).cloned().unwrap_or_default();
    assert_eq!(r("/restore_exit_code"), 0, "{report}");
    // The set was taken while trips flowed, and the crash came later still.
    let at_backup = r("/completed_at_backup").as_i64().unwrap();
    let at_crash = r("/before_crash/completed_trips").as_i64().unwrap();
    assert!(0 < at_backup && at_backup < at_crash, "{report}");
    // MySQL loses nothing (binary log); Redis comes back from its append-only file, which the
    // crash spared as it spared the binary log: no job lost, at most a second of completions
    // (the target; a killed process loses none of what it wrote, a power cut up to a second).
    assert_eq!(r("/redis_from"), "aof", "{report}");
    assert_eq!(r("/rpo/mysql_completed_trips_lost"), 0, "{report}");
    assert_eq!(r("/rpo/mysql_earns_lost"), 0, "{report}");
    assert_eq!(r("/rpo/redis_jobs_lost"), 0, "{report}");
    assert!(r("/rpo/redis_rpo_s").as_f64().unwrap() <= 1.0, "{report}");
    // MongoDB went back to the set: the jobs completed since it began ran again, every one
    // completed after it ended among them.
    let done_at_crash = r("/before_crash/jobs_done").as_i64().unwrap();
    let rerun = r("/jobs_rerun").as_i64().unwrap();
    assert!(rerun >= done_at_crash - at_backup, "{report}");
    assert_eq!(r("/after_recovery/completed_trips"), 300, "{report}");
    assert_eq!(r("/after_recovery/jobs_done"), 300, "{report}");
    assert_eq!(r("/invariant/holds"), true, "{report}");
    // The RTO is timed, and the drill's own counting is left out of it, not more than it.
    let (rto, counting) = (
        r("/rto_s").as_f64().unwrap(),
        r("/drill_counting_s").as_f64().unwrap(),
    );
    assert!(rto > 0.0 && counting >= 0.0, "{report}");
}
