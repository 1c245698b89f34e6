//! `tsp-bench gtfs` (docs/benchmarks.md#gtfs-import): a feed imported into a sandbox
//! (parse, checks, INSERTs, copies, switch) beside the server's own bulk load of the same rows
//! in the same run: `LOAD DATA LOCAL INFILE` of the unpacked CSV files into the same tables, by
//! the MariaDB/MySQL client. Then the main job's trips/s alone and while an import runs.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use tsp_config::LoadOptions;
use tsp_hub::MysqlStore;
use tsp_mobility::gtfs::{FILES, FileSpec, NoProgress};
use tsp_mobility::sandbox::Sandbox;
use tsp_mobility::seed::TripPlan;

use tsp_server::app::App;

use crate::cli::GtfsBenchArgs;
use tsp_config::instances;

/// The version id the bare load writes (beside the import's version in the same tables).
const BARE_VERSION: u32 = 999_999;

/// `tsp-bench gtfs`: one JSON line.
pub async fn bench_gtfs(
    options: &LoadOptions,
    args: &GtfsBenchArgs,
) -> anyhow::Result<serde_json::Value> {
    let sandbox = Sandbox::create(options).await?;
    let result = run(&sandbox, args).await;
    sandbox.dispose().await;
    result
}

async fn run(sandbox: &Sandbox, args: &GtfsBenchArgs) -> anyhow::Result<serde_json::Value> {
    let hub = &sandbox.hub;
    let app = App::build(hub)?;
    let gtfs = app.gtfs();
    let import = gtfs
        .import(&args.path, "bench", &NoProgress)
        .await
        .with_context(|| format!("importing {}", args.path.display()))?;
    let unpacked = unpack(&args.path)?;
    let store = hub.mysql(instances::GTFS)?;
    let settings = hub
        .config()
        .mysql
        .get(store.name())
        .context("no mysql.gtfs in the configuration")?;
    let bare_s = bare_load(
        store,
        settings,
        &hub.config().backup.mysql_client,
        unpacked.path(),
    )
    .await?;
    let bare_rows = version_rows(store, BARE_VERSION).await?;
    anyhow::ensure!(
        bare_rows == import.rows,
        "the bare load wrote {bare_rows} rows, the import {}",
        import.rows
    );
    let files: Vec<serde_json::Value> = import
        .files
        .iter()
        .map(|f| {
            json!({"file": f.file, "rows": f.rows, "seconds": f.seconds,
                   "rows_per_s": (f.rows as f64 / f.seconds.max(1e-9)).round()})
        })
        .collect();
    let total = import.seconds.total;
    let impact = if args.trips > 0 {
        Some(impact(sandbox, &args.path, args.trips).await?)
    } else {
        None
    };
    Ok(json!({
        "bench": "gtfs",
        "feed": args.path.display().to_string(),
        "rows": import.rows,
        "import_s": total,
        "import_rows_per_s": (import.rows as f64 / total).round(),
        "phases_s": import.seconds,
        "files": files,
        "copies": import.copies,
        "bare_load_s": bare_s,
        "bare_rows_per_s": (bare_rows as f64 / bare_s).round(),
        "import_over_bare": total / bare_s,
        "targets": {"import_over_bare_at_most": 2.0, "rows_per_s_at_least": 100_000},
        "main_job": impact,
    }))
}

fn unpack(path: &Path) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    if path.is_dir() {
        for spec in FILES {
            let from = path.join(spec.file);
            if from.exists() {
                std::fs::copy(&from, dir.path().join(spec.file))?;
            }
        }
        return Ok(dir);
    }
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path)?)?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i)?;
        let Some(name) = entry.name().rsplit('/').next().map(str::to_string) else {
            continue;
        };
        if FILES.iter().any(|f| f.file == name) {
            let mut out = std::fs::File::create(dir.path().join(&name))?;
            std::io::copy(&mut entry, &mut out)?;
        }
    }
    Ok(dir)
}

/// Every file's `LOAD DATA LOCAL INFILE` in one client session, timed from the client's
/// start to its exit.
async fn bare_load(
    store: &MysqlStore,
    settings: &tsp_config::MysqlSettings,
    client: &str,
    dir: &Path,
) -> anyhow::Result<f64> {
    let mut sql = String::from("SET unique_checks = 1; SET foreign_key_checks = 1;\n");
    for spec in FILES {
        let p = dir.join(spec.file);
        if p.exists() {
            sql.push_str(&load_statement(spec, &p)?);
        }
    }
    let opts = tsp_backup::mysql_options_file(settings)?;
    let started = Instant::now();
    let out = tokio::process::Command::new(client)
        .arg(format!("--defaults-extra-file={}", opts.path().display()))
        .arg("--local-infile=1")
        .arg(store.database_name())
        .arg("-e")
        .arg(&sql)
        .output()
        .await
        .with_context(|| format!("running {client}"))?;
    let took = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        out.status.success(),
        "{client}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(took)
}

/// The statement loading `path` into `spec`'s table under [`BARE_VERSION`]: the CSV's columns
/// into variables, each table column computed from them as the import computes it.
fn load_statement(spec: &FileSpec, path: &Path) -> anyhow::Result<String> {
    // The header line alone (stop_times.txt is 16 MB).
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(std::fs::File::open(path)?),
        &mut first,
    )?;
    let crlf = first.ends_with("\r\n");
    let header: Vec<String> = first
        .trim_end_matches(['\r', '\n'])
        .trim_start_matches('\u{feff}')
        .split(',')
        .map(|h| h.trim().trim_end_matches('\r').to_string())
        .collect();
    let var = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .map(|i| format!("@c{i}"))
    };
    let text_of = |name: &str| var(name).map(|v| format!("NULLIF(TRIM({v}), '')"));
    let mut sets = vec![format!("version_id = {BARE_VERSION}")];
    for col in spec.columns {
        let expr = match *col {
            "arrival_secs" => text_of("arrival_time").map(|v| format!("TIME_TO_SEC({v})")),
            "departure_secs" => text_of("departure_time").map(|v| format!("TIME_TO_SEC({v})")),
            c if c.ends_with("date") => text_of(c).map(|v| format!("STR_TO_DATE({v}, '%Y%m%d')")),
            "agency_id" => {
                Some(text_of("agency_id").map_or("''".into(), |v| format!("COALESCE({v}, '')")))
            }
            "location_type" => {
                Some(text_of(col).map_or("0".into(), |v| format!("COALESCE({v}, 0)")))
            }
            c => text_of(c),
        };
        if let Some(e) = expr {
            sets.push(format!("{col} = {e}"));
        }
    }
    let vars: Vec<String> = (0..header.len()).map(|i| format!("@c{i}")).collect();
    Ok(format!(
        "LOAD DATA LOCAL INFILE '{}' INTO TABLE {} CHARACTER SET utf8mb4 \
         FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '{}' \
         IGNORE 1 LINES ({}) SET {};\n",
        path.display().to_string().replace('\'', "''"),
        spec.table,
        if crlf { "\\r\\n" } else { "\\n" },
        vars.join(", "),
        sets.join(", ")
    ))
}

async fn version_rows(store: &MysqlStore, version: u32) -> anyhow::Result<u64> {
    let mut n = 0;
    for (_, rows) in tsp_mobility::gtfs::versions::counts(store, version).await? {
        n += rows;
    }
    Ok(n)
}

/// The main job's trips/s alone, then while the feed is imported again and again (under new
/// names, so each is a full load) for the whole of the run: the import's cost to the service
/// running beside it.
async fn impact(sandbox: &Sandbox, path: &Path, trips: usize) -> anyhow::Result<serde_json::Value> {
    let hub = &sandbox.hub;
    let app = App::build(hub)?;
    let concurrency = app.trip_concurrency();
    let plan = |seed| TripPlan {
        seed,
        trips,
        users: 300,
        days: 30,
        now_ms: tsp_server::commands::trips::now_ms(),
    };
    let alone = tsp_server::commands::trips::run_batch(&app, &plan(101), concurrency, None).await?;
    let gtfs = app.gtfs();
    let trips_done = std::sync::atomic::AtomicBool::new(false);
    let importing = async {
        let mut imports = 0u32;
        let mut seconds = 0.0;
        while !trips_done.load(std::sync::atomic::Ordering::SeqCst) {
            let started = Instant::now();
            gtfs.import(path, &format!("bench-impact-{imports}"), &NoProgress)
                .await?;
            seconds += started.elapsed().as_secs_f64();
            imports += 1;
        }
        anyhow::Ok((imports, seconds))
    };
    let second = plan(102);
    let running = async {
        let r = tsp_server::commands::trips::run_batch(&app, &second, concurrency, None).await;
        trips_done.store(true, std::sync::atomic::Ordering::SeqCst);
        r
    };
    let (during, imported) = tokio::join!(running, importing);
    let during = during?;
    let (imports, import_s) = imported.context("the imports during the main job")?;
    Ok(json!({
        "trips": trips,
        "alone_trips_per_s": alone.run.per_second,
        "during_imports_trips_per_s": during.run.per_second,
        "drop": 1.0 - during.run.per_second / alone.run.per_second,
        "imports_during_run": imports,
        "import_mean_s": import_s / f64::from(imports.max(1)),
        "trip_run_s": during.run.seconds,
        "failed": alone.failed + during.failed,
    }))
}
