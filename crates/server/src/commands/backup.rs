//! `tsp-job backup …` and `tsp-job restore` (docs/backup.md): progress on stderr, results on
//! stdout; a restore ends with the migration status and health of what it restored.

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tsp_backup::{Backups, Key, Part, Progress};
use tsp_config::LoadOptions;
use tsp_hub::{Hub, Status};
use tsp_mobility::sandbox::Sandbox;

use crate::cli::{BackupCommand, RestoreArgs, StoreSelection};

/// A spinner naming the part in hand, and a line per part done (hidden when `quiet` or when
/// stderr is not a terminal).
fn progress(quiet: bool) -> (ProgressBar, tsp_backup::ProgressFn) {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let b = bar.clone();
    let f: tsp_backup::ProgressFn = Arc::new(move |p| match p {
        Progress::Started(what) => b.set_message(what),
        Progress::Finished(part) => b.println(part_line(&part)),
    });
    (bar, f)
}

fn part_line(p: &Part) -> String {
    let counts: Vec<String> = p.counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let shown = if counts.len() > 4 {
        format!(
            "{} counts, {} in all",
            counts.len(),
            p.counts.values().sum::<u64>()
        )
    } else {
        counts.join(", ")
    };
    format!("  {:<48} {:>10}  {}", p.file, human_bytes(p.bytes), shown)
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// `tsp-job backup …`.
pub async fn backup(hub: &Hub, opts: &LoadOptions, cmd: &BackupCommand) -> anyhow::Result<u8> {
    match cmd {
        BackupCommand::Create { to, stores, json } => {
            let (bar, f) = progress(*json);
            let backups = Backups::new(hub, to.clone())?.with_progress(f);
            let m = backups.create(stores.stores()).await;
            bar.finish_and_clear();
            let m = m?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                let bytes: u64 = m.parts.iter().map(|p| p.bytes).sum();
                println!(
                    "set {} complete: {} parts, {} in {}",
                    m.id,
                    m.parts.len(),
                    human_bytes(bytes),
                    backups.root().join(&m.id).display()
                );
            }
            Ok(0)
        }
        BackupCommand::List { from, json } => {
            let sets = Backups::new(hub, from.clone())?.list()?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&sets)?);
            } else {
                println!(
                    "{:<22} {:<10} {:>6} {:>10}  ENCRYPTED",
                    "SET", "STATE", "PARTS", "SIZE"
                );
                for s in sets {
                    let state = if s.complete { "complete" } else { "INCOMPLETE" };
                    println!(
                        "{:<22} {:<10} {:>6} {:>10}  {}{}",
                        s.id,
                        state,
                        s.parts,
                        human_bytes(s.bytes),
                        if s.encrypted { "yes" } else { "no" },
                        s.error.map(|e| format!("  ({e})")).unwrap_or_default()
                    );
                }
            }
            Ok(0)
        }
        BackupCommand::Verify {
            set,
            from,
            stores,
            restore_check,
        } => verify(hub, opts, set, from.clone(), stores, *restore_check).await,
        BackupCommand::Prune { from, dry_run } => {
            let removed = Backups::new(hub, from.clone())?.prune(*dry_run)?;
            let verb = if *dry_run { "would remove" } else { "removed" };
            if removed.is_empty() {
                println!("nothing to remove");
            }
            for id in removed {
                println!("{verb} {id}");
            }
            Ok(0)
        }
        BackupCommand::Keygen => {
            println!("{}", Key::generate_hex());
            Ok(0)
        }
    }
}

async fn verify(
    hub: &Hub,
    opts: &LoadOptions,
    set: &str,
    from: Option<std::path::PathBuf>,
    stores: &StoreSelection,
    restore_check: bool,
) -> anyhow::Result<u8> {
    let stores = stores.stores();
    let checked = Backups::new(hub, from.clone())?.verify(set, stores)?;
    for p in &checked {
        println!("{}", part_line(p));
    }
    println!(
        "set {set}: {} parts match their checksums and read back whole",
        checked.len()
    );
    if restore_check {
        let sandbox = Sandbox::create(opts).await?;
        // A restore replaces tables: the migrator's work (docs/store-security.md).
        let migrator = sandbox.migrator().await?;
        let (bar, f) = progress(false);
        let result = async {
            Backups::new(&migrator, from)?
                .with_progress(f)
                .restore(set, stores, false)
                .await
        }
        .await;
        bar.finish_and_clear();
        migrator.shutdown(std::time::Duration::from_secs(5)).await;
        let tag = sandbox.tag.clone();
        let left = sandbox.remove().await;
        if !left.is_empty() {
            tracing::warn!(?left, "sandbox not fully removed");
        }
        let restored = result?;
        println!(
            "set {set}: restored into sandbox {tag} in {:.1} s; every count matches the manifest",
            restored.seconds
        );
    }
    Ok(0)
}

/// `tsp-job restore SET`.
pub async fn restore(hub: &Hub, opts: &LoadOptions, args: &RestoreArgs) -> anyhow::Result<u8> {
    let stores = args.stores.stores();
    let until = args.until;
    let sandbox = if args.into_sandbox {
        Some(Sandbox::create(opts).await?)
    } else {
        None
    };
    // `hub` runs as the migrator already; a sandbox's hub has the app account.
    let migrator = match &sandbox {
        Some(s) => Some(s.migrator().await?),
        None => None,
    };
    let target = migrator.as_ref().unwrap_or(hub);
    let (bar, f) = progress(false);
    let restored = Backups::new(target, args.from.clone())?
        .with_progress(f)
        .restore_until(&args.set, stores, args.force, until)
        .await;
    bar.finish_and_clear();
    let restored = restored?;
    println!(
        "set {}: {} parts restored in {:.1} s",
        restored.set,
        restored.parts.len(),
        restored.seconds
    );
    if let Some(s) = &sandbox {
        println!(
            "sandbox {} kept; inspect it with: {}",
            s.tag,
            s.overrides
                .iter()
                .map(|o| format!("--set {o}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    // What the operator checks next: is the schema where this build expects it, and is every
    // store answering?
    let (reports, failure) = tsp_mobility::migrate_all(target, true).await;
    let pending: usize = reports.iter().map(|r| r.applied.len()).sum();
    println!("migrations: {pending} pending (run `tsp-job migrate` to apply)");
    if let Some(e) = failure {
        println!("migrations: cannot tell: {e}");
    }
    let h = target.health().await;
    print!("{}", super::health::table(&h));
    if let Some(m) = &migrator {
        m.shutdown(std::time::Duration::from_secs(5)).await;
    }
    Ok(if h.status == Status::Up { 0 } else { 1 })
}
