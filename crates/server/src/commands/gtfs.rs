//! `tsp-job gtfs …` (docs/gtfs.md): an import shows a progress line per file (rows and rows/s)
//! on stderr and its report on stdout.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tsp_mobility::gtfs::{FileReport, Gtfs, GtfsError, ImportProgress, ImportReport, NoProgress};

use crate::cli::GtfsCommand;

/// A spinner per file with its rows and rows/s, and one for the phase.
struct Bars {
    all: MultiProgress,
    phase: ProgressBar,
    files: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn new() -> Bars {
        let all = MultiProgress::new();
        let phase = all.add(ProgressBar::new_spinner());
        phase.set_style(style("{spinner} {elapsed:>4} {msg}"));
        phase.enable_steady_tick(Duration::from_millis(120));
        Bars {
            all,
            phase,
            files: Mutex::new(HashMap::new()),
        }
    }

    fn bar(&self, file: &str) -> ProgressBar {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        files
            .entry(file.to_string())
            .or_insert_with(|| {
                let b = self
                    .all
                    .insert_before(&self.phase, ProgressBar::new_spinner());
                b.set_style(style(
                    "  {prefix:<20} {human_pos:>10} rows {per_sec:>14} {msg}",
                ));
                b.set_prefix(file.to_string());
                b
            })
            .clone()
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

impl ImportProgress for Bars {
    fn phase(&self, phase: &str) {
        self.phase.set_message(phase.to_string());
    }

    fn rows(&self, file: &str, rows: u64) {
        self.bar(file).set_position(rows);
    }

    fn file_done(&self, r: &FileReport) {
        let b = self.bar(&r.file);
        b.set_position(r.rows);
        b.finish_with_message(format!("done in {:.2} s", r.seconds));
    }
}

/// `tsp-job gtfs …`.
pub async fn gtfs(g: &Gtfs, cmd: &GtfsCommand) -> anyhow::Result<u8> {
    let feed_or = |f: &Option<String>| f.clone().unwrap_or_else(|| g.default_feed().to_string());
    match cmd {
        GtfsCommand::Import { path, feed, json } => {
            let feed = feed_or(feed);
            let result = if *json {
                g.import(path, &feed, &NoProgress).await
            } else {
                let bars = Bars::new();
                let r = g.import(path, &feed, &bars).await;
                bars.phase.finish_and_clear();
                r
            };
            match result {
                Ok(report) if *json => println!("{}", serde_json::to_string(&report)?),
                Ok(report) => print!("{}", summary(&report)),
                Err(GtfsError::Invalid(problems)) => {
                    eprintln!(
                        "{}: the feed is refused; nothing live changed:",
                        path.display()
                    );
                    for p in problems {
                        eprintln!("  {p}");
                    }
                    return Ok(1);
                }
                Err(e) => return Err(e.into()),
            }
        }
        GtfsCommand::Rollback { feed } => {
            let (now, before) = g.rollback(&feed_or(feed)).await?;
            println!(
                "feed {}: version {now} is live (was {before})",
                feed_or(feed)
            );
        }
        GtfsCommand::Versions { feed, json } => {
            let list = g.versions(&feed_or(feed)).await?;
            if *json {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                println!(
                    "{:>8}  {:<8}  {:>10}  {:<20}  {:<12}  source",
                    "version", "status", "rows", "created", "sha256"
                );
                for v in list {
                    println!(
                        "{:>8}  {:<8}  {:>10}  {:<20}  {:<12}  {}",
                        v.version,
                        v.status,
                        v.rows,
                        v.created_at,
                        &v.content_sha256[..12.min(v.content_sha256.len())],
                        v.source
                    );
                }
            }
        }
        GtfsCommand::Prune { feed } => {
            let removed = g.prune(&feed_or(feed)).await?;
            println!("removed {} version(s): {removed:?}", removed.len());
        }
    }
    Ok(0)
}

/// The report as a table: one line per file, then the copies and phases.
fn summary(r: &ImportReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let what = match r.outcome {
        tsp_mobility::gtfs::Outcome::Imported => "imported as",
        tsp_mobility::gtfs::Outcome::Unchanged => "unchanged: already live as",
        tsp_mobility::gtfs::Outcome::Resumed => "made live again (loaded before) as",
    };
    let _ = writeln!(out, "feed {} {what} version {}", r.feed, r.version);
    if !r.files.is_empty() {
        let _ = writeln!(
            out,
            "  {:<20} {:>10} {:>9} {:>9} {:>8} {:>12}",
            "file", "rows", "rejected", "warnings", "seconds", "rows/s"
        );
        for f in &r.files {
            let _ = writeln!(
                out,
                "  {:<20} {:>10} {:>9} {:>9} {:>8.2} {:>12.0}",
                f.file,
                f.rows,
                f.rejected,
                f.warnings,
                f.seconds,
                f.rows as f64 / f.seconds.max(1e-9)
            );
        }
    }
    for w in r.warnings.iter().take(10) {
        let _ = writeln!(out, "  warning: {w}");
    }
    if r.warning_count > 10 {
        let _ = writeln!(
            out,
            "  … {} warnings in all (--json lists the first {})",
            r.warning_count,
            r.warnings.len()
        );
    }
    let _ = writeln!(
        out,
        "  {} rows in {:.2} s ({:.0} rows/s overall); stops: {} in MySQL, {} in MongoDB, {} in Redis",
        r.rows,
        r.seconds.total,
        r.rows as f64 / r.seconds.total.max(1e-9),
        r.copies.mysql,
        r.copies.mongo,
        r.copies.redis
    );
    if let Some(p) = r.previous {
        let _ = writeln!(
            out,
            "  replaced version {p} (kept for `tsp-job gtfs rollback`)"
        );
    }
    if !r.pruned.is_empty() {
        let _ = writeln!(out, "  pruned versions {:?}", r.pruned);
    }
    out
}
