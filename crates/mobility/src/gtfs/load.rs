//! The load: every file parsed and checked on a blocking thread, streamed as batches of rows to
//! multi-row INSERTs tagged with the new version (docs/gtfs.md#loading). At most a few batches
//! are in memory at once.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;
use sqlx::{MySql, QueryBuilder};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tsp_hub::{HubError, MysqlStore};

use super::files::{self, Ids, Value};
use super::row::Header;
use super::source::FeedSource;
use super::spec::{FILES, FileSpec};
use super::{GtfsError, ImportProgress};

/// The errors reported at most per feed before the import gives up reading it.
const MAX_ERRORS: usize = 20;
/// INSERTs in flight at once, each on its own connection.
const IN_FLIGHT: usize = 2;

/// What one file contributed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FileReport {
    /// `stops.txt`.
    pub file: String,
    /// Rows loaded.
    pub rows: u64,
    /// Records refused (each is an error: the version is then refused as a whole).
    pub rejected: u64,
    /// Warnings (not fatal).
    pub warnings: u64,
    /// Seconds from the file's first record to its last row written.
    pub seconds: f64,
}

/// The load's outcome: per file reports, warnings, and what later checks need.
pub(crate) struct Loaded {
    pub(crate) files: Vec<FileReport>,
    pub(crate) warnings: Vec<String>,
    pub(crate) warning_count: u64,
    pub(crate) unordered: bool,
}

/// What the parser hands back: the ids seen, warnings not tied to a record count, and
/// warnings counted per file.
type Parsed = (Ids, Vec<String>, HashMap<&'static str, u64>);

enum Msg {
    Batch(usize, Vec<Vec<Value>>),
    Done(usize, u64),
}

/// Loads every file of `source` into `version`, `batch_rows` rows per INSERT; says on
/// `stops_loaded` once stops.txt is written (the copies can start while the rest loads).
pub(crate) async fn load(
    store: &MysqlStore,
    source: &FeedSource,
    version: u32,
    batch_rows: usize,
    progress: &dyn ImportProgress,
    stops_loaded: tokio::sync::oneshot::Sender<()>,
) -> Result<Loaded, GtfsError> {
    let mut stops_loaded = Some(stops_loaded);
    check_files(source)?;
    let (tx, mut rx) = mpsc::channel::<Msg>(IN_FLIGHT * 2);
    let src = source.clone();
    let parser = tokio::task::spawn_blocking(move || parse_all(&src, batch_rows, &tx));
    let mut inserts: JoinSet<Result<(), GtfsError>> = JoinSet::new();
    let mut clock = Instant::now();
    let mut written = vec![0u64; FILES.len()];
    let mut reports = Vec::new();
    let mut failure: Option<GtfsError> = None;
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Batch(i, rows) => {
                if failure.is_some() {
                    continue;
                }
                while inserts.len() >= IN_FLIGHT {
                    if let Some(Err(e)) = next(&mut inserts).await {
                        failure = Some(e);
                    }
                }
                written[i] += rows.len() as u64;
                progress.rows(FILES[i].file, written[i]);
                let (store, spec) = (store.clone(), &FILES[i]);
                inserts.spawn(async move { insert(&store, spec, version, &rows).await });
            }
            Msg::Done(i, rows) => {
                while !inserts.is_empty() {
                    if let Some(Err(e)) = next(&mut inserts).await {
                        failure.get_or_insert(e);
                    }
                }
                let report = FileReport {
                    file: FILES[i].file.to_string(),
                    rows,
                    rejected: 0,
                    warnings: 0,
                    seconds: clock.elapsed().as_secs_f64(),
                };
                clock = Instant::now();
                progress.file_done(&report);
                if FILES[i].file == "stops.txt"
                    && failure.is_none()
                    && let Some(tx) = stops_loaded.take()
                {
                    let _ = tx.send(());
                }
                reports.push(report);
            }
        }
    }
    while !inserts.is_empty() {
        if let Some(Err(e)) = next(&mut inserts).await {
            failure.get_or_insert(e);
        }
    }
    let parsed = parser
        .await
        .map_err(|e| GtfsError::Internal(e.to_string()))?;
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(summarise(reports, parsed?))
}

/// The per-file reports with their warning counts, and every warning.
fn summarise(mut files: Vec<FileReport>, (ids, warnings, extra): Parsed) -> Loaded {
    let unused = files::unused(&ids);
    let mut all_warnings = Vec::new();
    for f in &mut files {
        f.warnings =
            files::unused_count(&ids, &f.file) + extra.get(f.file.as_str()).copied().unwrap_or(0);
        if let Some(w) = unused.get(f.file.as_str()) {
            all_warnings.extend(w.iter().map(|w| format!("{}: {w}", f.file)));
        }
    }
    let notes = warnings.len() as u64 - extra.values().sum::<u64>();
    let warning_count = files.iter().map(|f| f.warnings).sum::<u64>() + notes;
    all_warnings.extend(warnings);
    Loaded {
        warning_count,
        files,
        warnings: all_warnings,
        unordered: ids.unordered,
    }
}

async fn next(set: &mut JoinSet<Result<(), GtfsError>>) -> Option<Result<(), GtfsError>> {
    set.join_next().await.map(|r| match r {
        Ok(r) => r,
        Err(e) => Err(GtfsError::Internal(e.to_string())),
    })
}

/// The required files are there, and one of the calendars.
fn check_files(source: &FeedSource) -> Result<(), GtfsError> {
    let mut missing: Vec<String> = FILES
        .iter()
        .filter(|f| f.required && !source.has(f.file))
        .map(|f| format!("{} is missing", f.file))
        .collect();
    if !source.has("calendar.txt") && !source.has("calendar_dates.txt") {
        missing.push("neither calendar.txt nor calendar_dates.txt is present".into());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(GtfsError::Invalid(missing))
    }
}

/// Reads every file in load order, sending batches; on the blocking thread.
fn parse_all(
    source: &FeedSource,
    batch_rows: usize,
    tx: &mpsc::Sender<Msg>,
) -> Result<Parsed, GtfsError> {
    let mut ids = Ids::default();
    let mut notes = Vec::new();
    let mut extra = HashMap::new();
    for name in source.names() {
        if !FILES.iter().any(|f| f.file == name) {
            notes.push(format!(
                "{name}: not imported (the import reads {} files)",
                FILES.len()
            ));
        }
    }
    for (i, spec) in FILES.iter().enumerate() {
        let read = source.read(spec.file, |r| {
            parse_file(r, i, spec, batch_rows, &mut ids, tx)
        })?;
        let Some(rows) = read else {
            continue;
        };
        let warnings = files::after_file(spec.file, &mut ids);
        *extra.entry(spec.file).or_default() += warnings.len() as u64;
        notes.extend(warnings);
        // The receiver is gone only when the load failed; its error is reported instead.
        if tx.blocking_send(Msg::Done(i, rows)).is_err() {
            return Ok((ids, notes, extra));
        }
    }
    Ok((ids, notes, extra))
}

fn parse_file(
    reader: &mut dyn std::io::Read,
    index: usize,
    spec: &'static FileSpec,
    batch_rows: usize,
    ids: &mut Ids,
    tx: &mpsc::Sender<Msg>,
) -> Result<u64, GtfsError> {
    let file = spec.file;
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(reader);
    let read_error = |e: csv::Error| GtfsError::Read {
        file: match e.position() {
            Some(p) => format!("{file}:{}", p.line()),
            None => file.to_string(),
        },
        message: e.to_string(),
    };
    let mut record = csv::ByteRecord::new();
    if !csv.read_byte_record(&mut record).map_err(read_error)? {
        return Err(GtfsError::Invalid(vec![format!(
            "{file}: empty (no header)"
        )]));
    }
    let header = Header::new(file, &record).map_err(|e| GtfsError::Invalid(vec![e]))?;
    let mut convert = files::converter(file, &header).map_err(|e| GtfsError::Invalid(vec![e]))?;
    let mut errors = Vec::new();
    let mut batch = Vec::with_capacity(batch_rows);
    let mut rows = 0u64;
    // The csv crate's record line is one short in CRLF files; lines are counted here (records,
    // and newlines inside quoted fields), and its count only covers blank lines it skipped.
    let mut line = 1u64;
    while csv.read_byte_record(&mut record).map_err(read_error)? {
        line += 1;
        line = line.max(record.position().map_or(0, |p| p.line()));
        let embedded = record
            .iter()
            .map(|f| f.iter().filter(|b| **b == b'\n').count() as u64)
            .sum::<u64>();
        if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        match convert(&record, line, ids) {
            Ok(row) if errors.is_empty() => {
                batch.push(row);
                rows += 1;
                if batch.len() == batch_rows {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_rows));
                    if tx.blocking_send(Msg::Batch(index, full)).is_err() {
                        return Ok(rows);
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                errors.push(e);
                if errors.len() == MAX_ERRORS {
                    break;
                }
            }
        }
        line += embedded;
    }
    if !errors.is_empty() {
        return Err(GtfsError::Invalid(errors));
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(Msg::Batch(index, batch));
    }
    Ok(rows)
}

/// One multi-row INSERT (its own transaction). A duplicate key (two records for one stop time
/// or shape point) refuses the feed, naming the file.
async fn insert(
    store: &MysqlStore,
    spec: &FileSpec,
    version: u32,
    rows: &[Vec<Value>],
) -> Result<(), GtfsError> {
    insert_rows(store, spec, version, rows).await.map_err(|e| {
        let text = e.to_string();
        match text.find("Duplicate entry") {
            Some(at) => GtfsError::Invalid(vec![format!(
                "{}: two records with one key ({})",
                spec.file,
                &text[at..]
            )]),
            None => GtfsError::Store(e),
        }
    })
}

async fn insert_rows(
    store: &MysqlStore,
    spec: &FileSpec,
    version: u32,
    rows: &[Vec<Value>],
) -> Result<(), HubError> {
    let mut q = QueryBuilder::<MySql>::new(format!(
        "INSERT INTO {} (version_id, {}) ",
        spec.table,
        spec.columns.join(", ")
    ));
    q.push_values(rows, |mut b, row| {
        b.push_bind(version);
        for v in row {
            match v {
                Value::Str(s) => b.push_bind(s.as_str()),
                Value::Int(i) => b.push_bind(*i),
                Value::Float(f) => b.push_bind(*f),
                Value::Date(d) => b.push_bind(*d),
                Value::Null => b.push_bind(None::<i64>),
            };
        }
    });
    store
        .timed(spec.table, q.build().execute(store.pool()))
        .await
        .map(|_| ())
}

/// Times going back along a trip, found in SQL when stop_times.txt was not in trip order.
pub(crate) async fn check_time_order(store: &MysqlStore, version: u32) -> Result<(), GtfsError> {
    let bad: Option<(String, u32, Option<u32>, Option<u32>)> = store
        .timed(
            "check stop time order",
            sqlx::query_as(
                "SELECT trip_id, stop_sequence, t, prev FROM ( \
                   SELECT trip_id, stop_sequence, COALESCE(arrival_secs, departure_secs) AS t, \
                     MAX(COALESCE(departure_secs, arrival_secs)) OVER (PARTITION BY trip_id \
                       ORDER BY stop_sequence ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev \
                   FROM stop_times WHERE version_id = ?) x \
                 WHERE t < prev LIMIT 1",
            )
            .bind(version)
            .fetch_optional(store.pool()),
        )
        .await?;
    match bad {
        None => Ok(()),
        Some((trip, seq, t, prev)) => Err(GtfsError::Invalid(vec![format!(
            "stop_times.txt: trip {trip:?} stop_sequence {seq}: {} is before an earlier stop's {}",
            super::fields::format_time(t.unwrap_or(0)),
            super::fields::format_time(prev.unwrap_or(0))
        )])),
    }
}
