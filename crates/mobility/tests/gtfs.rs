//! GTFS imports against the real servers, each test in a sandbox of its own: the real feeds in
//! `../shared/data/`, versions switched under a reader, rollback, prune, every kind of bad
//! input refused with nothing live changed, and departures checked against an independent
//! reading of the CSV files.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use mongodb::bson::{Document, doc};
use tsp_mobility::gtfs::{Gtfs, GtfsError, NoProgress, Outcome};
use tsp_mobility::sandbox::Sandbox;

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel)
}

const CAIRNS: &str = "gtfs-cairns/cairns_gtfs.zip";
const BARRIE: &str = "gtfs-barrie/mdb-3-202402080013.zip";

struct Env {
    sandbox: Sandbox,
    gtfs: Gtfs,
}

impl Env {
    async fn new(sets: &[&str]) -> Env {
        let sandbox = Sandbox::create(&tsp_testkit::load_options(sets))
            .await
            .unwrap();
        let gtfs = common::gtfs(&sandbox.hub, None);
        Env { sandbox, gtfs }
    }

    async fn count(&self, sql: &str) -> i64 {
        let store = self.sandbox.hub.mysql("gtfs").unwrap();
        sqlx::query_scalar(sql)
            .fetch_one(store.pool())
            .await
            .unwrap()
    }

    async fn live(&self, feed: &str) -> Option<u32> {
        self.gtfs
            .live_version(Some(feed))
            .await
            .ok()
            .map(|(_, v)| v)
    }

    async fn done(self) {
        let failed = self.sandbox.remove().await;
        assert!(failed.is_empty(), "{failed:?}");
    }
}

/// The files of a zip, unpacked into a fresh folder.
fn unpack(zip: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut a = zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
    a.extract(dir.path()).unwrap();
    // Some feeds pack their files under `./`.
    dir
}

/// A copy of Cairns with `edit` applied to `file`'s text.
fn cairns_with(file: &str, edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = unpack(&data(CAIRNS));
    let p = dir.path().join(file);
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, edit(text)).unwrap();
    dir
}

/// `text` with field `field` (0-based) of line `n` (1-based) set to `value`.
fn set_field(text: &str, n: usize, field: usize, value: &str) -> String {
    text.split_inclusive('\n')
        .enumerate()
        .map(|(i, l)| {
            if i + 1 != n {
                return l.to_string();
            }
            let mut f: Vec<&str> = l.split(',').collect();
            f[field] = value;
            f.join(",")
        })
        .collect()
}

const TABLES: &[(&str, i64)] = &[
    ("agency", 1),
    ("routes", 22),
    ("calendar", 4),
    ("calendar_dates", 9),
    ("shapes", 22_784),
    ("stops", 416),
    ("trips", 1_339),
    ("stop_times", 37_790),
    ("feed_info", 0),
];

async fn table_counts(env: &Env, version: u32) -> Vec<(&'static str, i64)> {
    let mut out = Vec::new();
    for (t, _) in TABLES {
        let n = env
            .count(&format!(
                "SELECT COUNT(*) FROM {t} WHERE version_id = {version}"
            ))
            .await;
        out.push((*t, n));
    }
    out
}

async fn mongo_stops(env: &Env, version: u32) -> u64 {
    let db = env.sandbox.hub.mongo("dataset").unwrap().database();
    db.collection::<Document>("gtfs_stops")
        .count_documents(doc! {"feed": "cairns", "version": i64::from(version)})
        .await
        .unwrap()
}

async fn redis_stops(env: &Env, version: u32) -> u64 {
    let redis = env.sandbox.hub.redis("cache").unwrap();
    let mut conn = redis.conn().await.unwrap();
    redis::cmd("ZCARD")
        .arg(tsp_mobility::gtfs::sync::geo_key(redis, "cairns", version))
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn cairns_imports_exactly_and_again_is_a_no_op() {
    let env = Env::new(&[]).await;
    let r = env
        .gtfs
        .import(&data(CAIRNS), "cairns", &NoProgress)
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Imported);
    assert_eq!(r.rows, TABLES.iter().map(|t| t.1 as u64).sum::<u64>());
    assert_eq!(table_counts(&env, r.version).await, TABLES.to_vec());
    // Spot checks: the first stop, a first departure, a time past midnight (29:39:00).
    let name: String = sqlx::query_scalar(
        "SELECT stop_name FROM stops WHERE version_id = ? AND stop_id = '750000'",
    )
    .bind(r.version)
    .fetch_one(env.sandbox.hub.mysql("gtfs").unwrap().pool())
    .await
    .unwrap();
    assert_eq!(name, "Cedar Rd (Palm Cove) - Hail and Ride Location");
    let dep = env
        .count(&format!(
            "SELECT CAST(departure_secs AS SIGNED) FROM stop_times WHERE version_id = {} \
             AND trip_id = 'CNS2014-CNS_MUL-Weekday-00-4165878' AND stop_sequence = 1",
            r.version
        ))
        .await;
    assert_eq!(dep, 5 * 3600 + 50 * 60);
    let latest = env
        .count(&format!(
            "SELECT CAST(MAX(arrival_secs) AS SIGNED) FROM stop_times WHERE version_id = {}",
            r.version
        ))
        .await;
    assert_eq!(latest, 29 * 3600 + 39 * 60);
    // The agency has no agency_id: stored as "", and routes point at it.
    assert_eq!(
        env.count(&format!(
            "SELECT COUNT(*) FROM routes WHERE version_id = {} AND agency_id = ''",
            r.version
        ))
        .await,
        22
    );
    // Counts equal in all three stores.
    assert_eq!(
        (r.copies.mysql, r.copies.mongo, r.copies.redis),
        (416, 416, 416)
    );
    assert_eq!(mongo_stops(&env, r.version).await, 416);
    assert_eq!(redis_stops(&env, r.version).await, 416);
    assert_eq!(env.live("cairns").await, Some(r.version));

    // The same content again, zipped or unpacked: a no-op that says so.
    let again = env
        .gtfs
        .import(&data(CAIRNS), "cairns", &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        (again.outcome, again.version),
        (Outcome::Unchanged, r.version)
    );
    let folder = unpack(&data(CAIRNS));
    let same = env
        .gtfs
        .import(folder.path(), "cairns", &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        (same.outcome, same.version),
        (Outcome::Unchanged, r.version)
    );
    assert_eq!(env.count("SELECT COUNT(*) FROM feed_versions").await, 1);
    // A lost copy is remade by the next import of the same content.
    let redis = env.sandbox.hub.redis("cache").unwrap();
    let mut conn = redis.conn().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(tsp_mobility::gtfs::sync::geo_key(
            redis, "cairns", r.version,
        ))
        .query_async(&mut conn)
        .await
        .unwrap();
    let repaired = env
        .gtfs
        .import(&data(CAIRNS), "cairns", &NoProgress)
        .await
        .unwrap();
    assert_eq!(repaired.copies.redis, 416);
    env.done().await;
}

#[tokio::test]
async fn each_kind_of_bad_input_is_refused_naming_the_place_and_nothing_live_changes() {
    let env = Env::new(&[]).await;
    let good = env
        .gtfs
        .import(&data(CAIRNS), "cairns", &NoProgress)
        .await
        .unwrap();
    let before = table_counts(&env, good.version).await;
    // stop_times.txt line 2 is the first record: trip, arrival, departure, stop, sequence.
    let cases: Vec<(&str, tempfile::TempDir, &str)> = vec![
        (
            "malformed time",
            cairns_with("stop_times.txt", |t| set_field(&t, 48, 1, "25:6o:00")),
            "stop_times.txt:48: arrival_time \"25:6o:00",
        ),
        (
            "dangling stop_id",
            cairns_with("stop_times.txt", |t| set_field(&t, 1000, 3, "no-such-stop")),
            "stop_times.txt:1000: stop_id \"no-such-stop\" is not in stops.txt",
        ),
        (
            "bad coordinate",
            cairns_with("stops.txt", |t| set_field(&t, 7, 4, "-96.5")),
            "stops.txt:7: stop_lat \"-96.5\" is not a latitude (-90 to 90)",
        ),
        (
            "missing required column",
            cairns_with("trips.txt", |t| t.replacen("service_id", "svc", 1)),
            "trips.txt:1: no \"service_id\" column",
        ),
        (
            "wrong encoding",
            {
                let dir = unpack(&data(CAIRNS));
                let p = dir.path().join("stops.txt");
                let text = std::fs::read(&p).unwrap();
                let mut lines: Vec<Vec<u8>> =
                    text.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
                // Latin-1 "é" (0xE9) in the name of the stop on line 3.
                let l = &mut lines[2];
                let at = l.iter().position(|b| *b == b',').unwrap();
                let at = at + 1 + l[at + 1..].iter().position(|b| *b == b',').unwrap() + 1;
                l.insert(at, 0xE9);
                std::fs::write(&p, lines.join(&b'\n')).unwrap();
                dir
            },
            "stops.txt:3: stop_name is not UTF-8",
        ),
    ];
    for (what, dir, expected) in &cases {
        let e = env
            .gtfs
            .import(dir.path(), "cairns", &NoProgress)
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, GtfsError::Invalid(_)), "{what}: {text}");
        assert!(text.contains(expected), "{what}: {text}");
        assert_eq!(env.live("cairns").await, Some(good.version), "{what}");
        assert_eq!(table_counts(&env, good.version).await, before, "{what}");
    }
    // A truncated zip.
    let bytes = std::fs::read(data(CAIRNS)).unwrap();
    let mut cut = tempfile::Builder::new().suffix(".zip").tempfile().unwrap();
    cut.write_all(&bytes[..bytes.len() / 2]).unwrap();
    let e = env
        .gtfs
        .import(cut.path(), "cairns", &NoProgress)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not a readable zip archive"), "{e}");
    // Only the good version has rows; the refused ones left none behind and say why.
    let rows_elsewhere = env
        .count(&format!(
            "SELECT COUNT(*) FROM stop_times WHERE version_id <> {}",
            good.version
        ))
        .await;
    assert_eq!(rows_elsewhere, 0);
    let failed = env
        .count("SELECT COUNT(*) FROM feed_versions WHERE status = 'failed' AND error IS NOT NULL")
        .await;
    assert_eq!(failed, cases.len() as i64);
    assert_eq!(mongo_stops(&env, good.version).await, 416);
    env.done().await;
}

/// Cairns with every stop's name marked, so answers show which version they came from.
fn cairns_v2() -> tempfile::TempDir {
    cairns_with("stops.txt", |t| {
        let mut out = String::new();
        for (i, l) in t.split_inclusive('\n').enumerate() {
            if i == 0 || l.trim().is_empty() {
                out.push_str(l);
                continue;
            }
            let mut f: Vec<String> = l.split(',').map(str::to_string).collect();
            f[2] = format!("{} (v2)", f[2]);
            out.push_str(&f.join(","));
        }
        out
    })
}

#[tokio::test]
async fn a_new_version_switches_atomically_under_a_reader_and_rolls_back() {
    let env = Env::new(&["gtfs.keep_versions=2"]).await;
    let v1 = env
        .gtfs
        .import(&data(CAIRNS), "cairns", &NoProgress)
        .await
        .unwrap()
        .version;
    // Cairns Central, where many stops are.
    let (lat, lng) = (-16.925, 145.770);
    let reader_gtfs = env.gtfs.clone();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_reader = stop.clone();
    let reader = tokio::spawn(async move {
        let mut answers = 0u64;
        while !stop_reader.load(std::sync::atomic::Ordering::SeqCst) {
            let near = reader_gtfs
                .stops_near(None, lat, lng, 2.0, 20)
                .await
                .unwrap();
            assert!(
                !near.stops.is_empty(),
                "an empty answer from version {}",
                near.version
            );
            let marked = near
                .stops
                .iter()
                .filter(|s| s.stop.name.as_deref().unwrap_or("").ends_with("(v2)"))
                .count();
            assert!(
                marked == 0 || marked == near.stops.len(),
                "a mixed answer: {marked} of {} from version 2",
                near.stops.len()
            );
            assert_eq!(
                marked == 0,
                near.version == v1,
                "names of version {}",
                near.version
            );
            answers += 1;
            let _ = seen_tx.send(near.version);
        }
        answers
    });
    assert_eq!(seen_rx.recv().await, Some(v1));
    let dir = cairns_v2();
    let r2 = env
        .gtfs
        .import(dir.path(), "cairns", &NoProgress)
        .await
        .unwrap();
    assert_eq!((r2.outcome, r2.previous), (Outcome::Imported, Some(v1)));
    // Wait until the reader has answered from the new version.
    while let Some(v) = seen_rx.recv().await {
        if v == r2.version {
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(reader.await.unwrap() >= 2);
    let names = env.gtfs.stops_near(None, lat, lng, 2.0, 5).await.unwrap();
    assert!(
        names
            .stops
            .iter()
            .all(|s| s.stop.name.as_deref().unwrap().ends_with("(v2)"))
    );

    // Rollback: version 1 is live again, its copies intact; the new one is kept.
    let (now, before) = env.gtfs.rollback("cairns").await.unwrap();
    assert_eq!((now, before), (v1, r2.version));
    let back = env.gtfs.stops_near(None, lat, lng, 2.0, 5).await.unwrap();
    assert_eq!(back.version, v1);
    assert!(
        back.stops
            .iter()
            .all(|s| !s.stop.name.as_deref().unwrap().ends_with("(v2)"))
    );
    let e = env.gtfs.rollback("cairns").await.unwrap_err();
    assert!(e.to_string().contains("no earlier version"), "{e}");
    // Importing version 2's content again makes it live without loading it again.
    let again = env
        .gtfs
        .import(dir.path(), "cairns", &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        (again.outcome, again.version),
        (Outcome::Resumed, r2.version)
    );

    // A third version: with keep_versions = 2, the oldest goes, rows and copies.
    let v3_dir = cairns_with("agency.txt", |t| t.replace("qconnect", "qconnect v3"));
    let r3 = env
        .gtfs
        .import(v3_dir.path(), "cairns", &NoProgress)
        .await
        .unwrap();
    assert_eq!(r3.pruned, vec![v1]);
    assert_eq!(
        table_counts(&env, v1)
            .await
            .iter()
            .map(|t| t.1)
            .sum::<i64>(),
        0
    );
    assert_eq!(
        (mongo_stops(&env, v1).await, redis_stops(&env, v1).await),
        (0, 0)
    );
    assert_eq!(redis_stops(&env, r2.version).await, 416);
    let statuses: Vec<(u32, String)> = env
        .gtfs
        .versions("cairns")
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.version, v.status))
        .collect();
    assert_eq!(
        statuses,
        vec![(r3.version, "live".into()), (r2.version, "retired".into())]
    );
    env.done().await;
}

/// Departures as GTFS defines them, read straight from the CSV files: services of the day by
/// calendar.txt (weekday and range) with calendar_dates.txt's exceptions; trips of the day
/// before that run past midnight count on the date too. (trip_id, clock seconds), in order.
fn expected_departures(dir: &Path, stop: &str, date: NaiveDate, from: u32) -> Vec<(String, u32)> {
    fn rows(dir: &Path, file: &str) -> Vec<HashMap<String, String>> {
        let p = dir.join(file);
        if !p.exists() {
            return Vec::new();
        }
        let mut r = csv::Reader::from_path(p).unwrap();
        let h: Vec<String> = r
            .headers()
            .unwrap()
            .iter()
            .map(|s| s.trim_start_matches('\u{feff}').trim().to_string())
            .collect();
        r.records()
            .map(|rec| {
                let rec = rec.unwrap();
                h.iter()
                    .cloned()
                    .zip(rec.iter().map(|v| v.trim().to_string()))
                    .collect()
            })
            .collect()
    }
    let secs = |t: &str| {
        let p: Vec<u32> = t.split(':').map(|x| x.trim().parse().unwrap()).collect();
        p[0] * 3600 + p[1] * 60 + p[2]
    };
    let ymd = |d: NaiveDate| d.format("%Y%m%d").to_string();
    let active = |day: NaiveDate| -> HashSet<String> {
        let wd = [
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
        ][day.weekday().num_days_from_monday() as usize];
        let mut s: HashSet<String> = rows(dir, "calendar.txt")
            .into_iter()
            .filter(|c| c[wd] == "1" && c["start_date"] <= ymd(day) && ymd(day) <= c["end_date"])
            .map(|c| c["service_id"].clone())
            .collect();
        for c in rows(dir, "calendar_dates.txt") {
            if c["date"] == ymd(day) {
                if c["exception_type"] == "1" {
                    s.insert(c["service_id"].clone());
                } else {
                    s.remove(&c["service_id"]);
                }
            }
        }
        s
    };
    let trips: HashMap<String, String> = rows(dir, "trips.txt")
        .into_iter()
        .map(|t| (t["trip_id"].clone(), t["service_id"].clone()))
        .collect();
    let (today, yesterday) = (active(date), active(date.pred_opt().unwrap()));
    let mut out: Vec<(String, u32)> = Vec::new();
    for st in rows(dir, "stop_times.txt") {
        if st["stop_id"] != stop || st["departure_time"].is_empty() {
            continue;
        }
        let (d, service) = (secs(&st["departure_time"]), &trips[&st["trip_id"]]);
        if today.contains(service) && d >= from {
            out.push((st["trip_id"].clone(), d));
        }
        if yesterday.contains(service) && d >= from + 86_400 {
            out.push((st["trip_id"].clone(), d - 86_400));
        }
    }
    out.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    out
}

async fn departures(
    env: &Env,
    feed: &str,
    stop: &str,
    date: NaiveDate,
    from: u32,
) -> Vec<(String, u32)> {
    let d = env
        .gtfs
        .departures(Some(feed), stop, date, from, 500)
        .await
        .unwrap();
    d.departures
        .iter()
        .map(|x| {
            let p: Vec<u32> = x
                .clock_time
                .split(':')
                .map(|v| v.parse().unwrap())
                .collect();
            (x.trip_id.clone(), p[0] * 3600 + p[1] * 60 + p[2])
        })
        .collect()
}

#[tokio::test]
async fn departures_respect_exceptions_and_run_past_midnight() {
    let env = Env::new(&[]).await;
    env.gtfs
        .import(&data(CAIRNS), "cairns", &NoProgress)
        .await
        .unwrap();
    let dir = unpack(&data(CAIRNS));
    // The busiest stop at midnight-crossing times: one with a departure past 24:00.
    let stop: String = sqlx::query_scalar(
        "SELECT stop_id FROM stop_times WHERE departure_secs >= 86400 \
         GROUP BY stop_id ORDER BY COUNT(*) DESC, stop_id LIMIT 1",
    )
    .fetch_one(env.sandbox.hub.mysql("gtfs").unwrap().pool())
    .await
    .unwrap();
    // 2014-06-09 (a Monday) removes the weekday service: an exception date; 06-10 is the
    // Tuesday after it, whose early hours carry the Monday-night trips (or not).
    for (date, from) in [
        ("2014-06-02", 0),
        ("2014-06-09", 0),
        ("2014-06-10", 0),
        ("2014-06-03", 60),
        ("2014-06-08", 12 * 3600),
    ] {
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
        let expected = expected_departures(dir.path(), &stop, date, from);
        assert!(
            !expected.is_empty() || date.day() == 9,
            "{date}: the oracle found nothing"
        );
        assert!(expected.len() < 500, "{date}: more than one answer holds");
        assert_eq!(
            departures(&env, "cairns", &stop, date, from).await,
            expected,
            "{date} {from}"
        );
    }
    let normal = departures(
        &env,
        "cairns",
        &stop,
        NaiveDate::from_ymd_opt(2014, 6, 2).unwrap(),
        0,
    )
    .await;
    let holiday = departures(
        &env,
        "cairns",
        &stop,
        NaiveDate::from_ymd_opt(2014, 6, 9).unwrap(),
        0,
    )
    .await;
    assert_ne!(
        normal, holiday,
        "the exception date changes the day's departures"
    );
    // Past midnight: the Tuesday's first departures include Monday-service trips.
    let d = env
        .gtfs
        .departures(
            Some("cairns"),
            &stop,
            NaiveDate::from_ymd_opt(2014, 6, 3).unwrap(),
            0,
            5,
        )
        .await
        .unwrap();
    let first = &d.departures[0];
    assert_eq!(
        first.service_date,
        NaiveDate::from_ymd_opt(2014, 6, 2).unwrap()
    );
    assert!(first.departure_time.starts_with("2"), "{first:?}");
    env.done().await;
}

#[tokio::test]
async fn barrie_has_only_calendar_dates_and_its_departures_come_from_them() {
    let env = Env::new(&[]).await;
    let r = env
        .gtfs
        .import(&data(BARRIE), "barrie", &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        r.files
            .iter()
            .map(|f| (f.file.as_str(), f.rows))
            .collect::<Vec<_>>(),
        vec![
            ("agency.txt", 1),
            ("routes.txt", 20),
            ("calendar_dates.txt", 86),
            ("shapes.txt", 4_198),
            ("stops.txt", 656),
            ("trips.txt", 1_536),
            ("stop_times.txt", 66_934),
        ]
    );
    let dir = unpack(&data(BARRIE));
    let stop: String = sqlx::query_scalar(
        "SELECT stop_id FROM stop_times GROUP BY stop_id ORDER BY COUNT(*) DESC, stop_id LIMIT 1",
    )
    .fetch_one(env.sandbox.hub.mysql("gtfs").unwrap().pool())
    .await
    .unwrap();
    let date = NaiveDate::from_ymd_opt(2024, 1, 16).unwrap();
    let expected = expected_departures(dir.path(), &stop, date, 7 * 3600);
    assert!(expected.len() > 10, "{expected:?}");
    // At most 500 are answered: the first 500 in time order.
    let first: Vec<_> = expected.iter().take(500).cloned().collect();
    assert_eq!(
        departures(&env, "barrie", &stop, date, 7 * 3600).await,
        first
    );
    // A date outside every service: nothing.
    let none = departures(
        &env,
        "barrie",
        &stop,
        NaiveDate::from_ymd_opt(2030, 1, 1).unwrap(),
        0,
    )
    .await;
    assert!(none.is_empty());
    // Routes and a route's stops.
    let (_, _, routes) = env.gtfs.routes(Some("barrie")).await.unwrap();
    assert_eq!(routes.len(), 20);
    assert_eq!(routes.iter().map(|r| r.trips).sum::<u64>(), 1_536);
    let detail = env
        .gtfs
        .route(Some("barrie"), &routes[0].route_id)
        .await
        .unwrap();
    assert_eq!(detail.agency_name, "Barrie Transit");
    assert!(detail.stops.len() > 5);
    let e = env.gtfs.route(Some("barrie"), "nope").await.unwrap_err();
    assert!(matches!(e, GtfsError::NotFound(_)), "{e}");
    env.done().await;
}

/// A trip from `from` to `to` (lat, lng) in ten one-minute steps, ending a minute ago.
fn trip_between(
    id: &str,
    mode: &str,
    from: (f64, f64),
    to: (f64, f64),
) -> tsp_mobility::trip::TripCompletion {
    let end = tsp_testkit::trip_end(60_000, 10 * 60_000);
    let start = end - 10 * 60_000;
    tsp_mobility::trip::TripCompletion {
        trip_id: id.into(),
        user_id: 1,
        mode: mode.into(),
        trajectory: (0..=10)
            .map(|k| {
                let f = f64::from(k) / 10.0;
                tsp_mobility::trip::TrackPoint {
                    lat: from.0 + (to.0 - from.0) * f,
                    lng: from.1 + (to.1 - from.1) * f,
                    timestamp: start + i64::from(k) * 60_000,
                    accuracy: Some(5.0),
                    speed: None,
                }
            })
            .collect(),
        cost: None,
    }
}

#[tokio::test]
async fn transit_trips_record_their_nearest_stops_and_trips_are_generated_between_imported_stops() {
    let env = Env::new(&[]).await;
    let hub = &env.sandbox.hub;
    // Nothing imported: the shipped stops.
    let (stops, from) = tsp_mobility::seed::trip_stops(&env.gtfs).await.unwrap();
    assert_eq!(
        (stops.len(), from.contains("shipped")),
        (416, true),
        "{from}"
    );
    let v = env
        .gtfs
        .import(&data(BARRIE), "cairns", &NoProgress)
        .await
        .unwrap()
        .version;
    // Imported (Barrie's stops under the configured feed's name): those, not Cairns'.
    let (stops, from) = tsp_mobility::seed::trip_stops(&env.gtfs).await.unwrap();
    assert_eq!(stops.len(), 656, "{from}");
    assert!(from.contains(&format!("version {v}")), "{from}");
    assert!(stops.iter().all(|s| (44.0..45.0).contains(&s.lat)));

    tsp_mobility::seed::seed_users(&common::portal(hub), 1)
        .await
        .unwrap();
    let trips = common::trips(hub, common::cache(hub));
    let (a, b) = (&stops[0], &stops[stops.len() / 2]);
    let (a_id, b_id): (String, String) = {
        let near = |s: &tsp_mobility::seed::Stop| {
            let g = env.gtfs.clone();
            let (lat, lng) = (s.lat, s.lng);
            async move {
                g.stops_near(None, lat, lng, 0.05, 1).await.unwrap().stops[0]
                    .stop
                    .stop_id
                    .clone()
            }
        };
        (near(a).await, near(b).await)
    };
    // A bus between two stops, a bit off each (40 m north): records both, with the distance.
    let off = 40.0 / 111_195.0;
    let bus = trip_between("bus-1", "bus", (a.lat + off, a.lng), (b.lat + off, b.lng));
    trips.complete("job-bus", &bus).await.unwrap();
    let walk = trip_between("walk-1", "walk", (a.lat, a.lng), (a.lat + 0.005, a.lng));
    trips.complete("job-walk", &walk).await.unwrap();
    let db = hub.mongo("dataset").unwrap().database();
    let coll = db.collection::<Document>("trip_trajectories");
    let doc = coll
        .find_one(doc! {"tripId": "bus-1"})
        .await
        .unwrap()
        .unwrap();
    let stops_doc = doc.get_document("stops").unwrap();
    assert_eq!(stops_doc.get_str("feed").unwrap(), "cairns");
    assert_eq!(stops_doc.get_i64("version").unwrap(), i64::from(v));
    let start = stops_doc.get_document("start").unwrap();
    let end = stops_doc.get_document("end").unwrap();
    assert_eq!(start.get_str("stopId").unwrap(), a_id);
    assert_eq!(end.get_str("stopId").unwrap(), b_id);
    let metres = start.get_f64("distanceM").unwrap();
    assert!((35.0..=45.0).contains(&metres), "{metres}");
    // Not a transit mode: nothing recorded.
    let doc = coll
        .find_one(doc! {"tripId": "walk-1"})
        .await
        .unwrap()
        .unwrap();
    assert!(
        doc.get("stops").is_some_and(|s| s.as_null().is_some()),
        "{doc:?}"
    );
    // And the MongoDB copy answers $near beside the trajectories with the same stop.
    let mongo = hub.mongo("dataset").unwrap();
    let near = tsp_mobility::gtfs::sync::mongo_near(mongo, "cairns", v, a.lat, a.lng, 50.0, 1)
        .await
        .unwrap();
    assert_eq!(near, vec![a_id]);
    env.done().await;
}

#[tokio::test]
async fn a_failed_copy_keeps_the_previous_version_live_and_the_next_import_resumes() {
    let env = Env::new(&[]).await;
    let v1 = env
        .gtfs
        .import(&data(CAIRNS), "cairns", &NoProgress)
        .await
        .unwrap()
        .version;
    // The same sandbox with its MongoDB unreachable.
    let mut opts = tsp_testkit::load_options(&[]);
    opts.overrides.extend(env.sandbox.overrides.iter().cloned());
    opts.overrides.extend([
        format!("mongo.dataset.port={}", tsp_testkit::closed_port()),
        "stores.mongo.dataset.required=false".into(),
        "mongo.dataset.server_selection_timeout=500ms".into(),
        "mongo.dataset.connect_timeout=500ms".into(),
    ]);
    let config = tsp_config::load(&opts).unwrap();
    let broken = tsp_hub::Hub::connect(&config).await.unwrap();
    let dir = cairns_v2();
    let e = common::gtfs(&broken, None)
        .import(dir.path(), "cairns", &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(e, GtfsError::NotSynced { .. }), "{e}");
    assert!(e.is_transient(), "a job retries it");
    assert_eq!(env.live("cairns").await, Some(v1));
    let near = env
        .gtfs
        .stops_near(None, -16.925, 145.770, 2.0, 5)
        .await
        .unwrap();
    assert_eq!(near.version, v1);
    let statuses: Vec<String> = env
        .gtfs
        .versions("cairns")
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.status)
        .collect();
    assert_eq!(statuses, ["loaded", "live"]);
    // With MongoDB back, the same content is synced and switched without loading again.
    let r = env
        .gtfs
        .import(dir.path(), "cairns", &NoProgress)
        .await
        .unwrap();
    assert_eq!((r.outcome, r.previous), (Outcome::Resumed, Some(v1)));
    assert_eq!(
        (r.copies.mysql, r.copies.mongo, r.copies.redis),
        (416, 416, 416)
    );
    broken.shutdown(std::time::Duration::from_secs(1)).await;
    env.done().await;
}

#[tokio::test]
async fn a_bom_quoted_commas_and_columns_in_any_order_are_read() {
    let env = Env::new(&[]).await;
    let dir = cairns_with("stops.txt", |t| {
        let mut lines: Vec<String> = t.lines().map(str::to_string).collect();
        // Columns reordered, an extra one, a byte-order mark, and a quoted name with a comma
        // and an escaped quote.
        let mut out = String::from("\u{feff}stop_lon,extra,stop_name,stop_id,stop_lat\r\n");
        lines.remove(0);
        for (i, l) in lines.iter().enumerate() {
            let f: Vec<&str> = l.split(',').collect();
            let name = if i == 0 {
                "\"Cedar Rd, Palm Cove \"\"north\"\"\"".to_string()
            } else {
                f[2].to_string()
            };
            out.push_str(&format!("{},x,{name},{},{}\r\n", f[5], f[0], f[4]));
        }
        out
    });
    let r = env
        .gtfs
        .import(dir.path(), "cairns", &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        r.files.iter().find(|f| f.file == "stops.txt").unwrap().rows,
        416
    );
    let name: String = sqlx::query_scalar(
        "SELECT stop_name FROM stops WHERE version_id = ? AND stop_id = '750000'",
    )
    .bind(r.version)
    .fetch_one(env.sandbox.hub.mysql("gtfs").unwrap().pool())
    .await
    .unwrap();
    assert_eq!(name, "Cedar Rd, Palm Cove \"north\"");
    let lat: f64 = sqlx::query_scalar(
        "SELECT CAST(stop_lat AS DOUBLE) FROM stops WHERE version_id = ? AND stop_id = '750000'",
    )
    .bind(r.version)
    .fetch_one(env.sandbox.hub.mysql("gtfs").unwrap().pool())
    .await
    .unwrap();
    assert_eq!(lat, -16.74359);
    env.done().await;
}

#[tokio::test]
async fn warnings_are_counted_per_file_and_an_unordered_stop_times_file_is_checked_in_sql() {
    let env = Env::new(&[]).await;
    // Auckland's sample keeps parent stations it dropped (942 of its 1 022 stops): warnings,
    // counted on stops.txt, and the feed is imported.
    let r = env
        .gtfs
        .import(
            &data("gtfs-auckland-sample/auckland_gtfs_sample.zip"),
            "auckland",
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(r.warning_count, 942);
    let stops = r.files.iter().find(|f| f.file == "stops.txt").unwrap();
    assert_eq!(
        (stops.rows, stops.rejected, stops.warnings),
        (1_022, 0, 942)
    );
    assert!(
        r.files
            .iter()
            .filter(|f| f.file != "stops.txt")
            .all(|f| f.warnings == 0)
    );
    assert!(r.warnings[0].contains("parent_station"), "{:?}", r.warnings);
    // Cairns with stop_times.txt reversed (not grouped in sequence order): imported after the
    // SQL check; with one time moved back, refused by it, naming trip and sequence.
    let reversed = |t: String| {
        let mut lines: Vec<&str> = t.lines().collect();
        let header = lines.remove(0);
        lines.reverse();
        std::iter::once(header)
            .chain(lines)
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    };
    let dir = cairns_with("stop_times.txt", reversed);
    let ok = env
        .gtfs
        .import(dir.path(), "cairns", &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        ok.files
            .iter()
            .find(|f| f.file == "stop_times.txt")
            .unwrap()
            .rows,
        37_790
    );
    // The first trip's second stop (line 3) leaves at 05:50:00; its third (line 4) is moved to
    // 05:00:00.
    let dir = cairns_with("stop_times.txt", |t| {
        reversed(set_field(
            &set_field(&t, 4, 1, "05:00:00"),
            4,
            2,
            "05:00:00",
        ))
    });
    let e = env
        .gtfs
        .import(dir.path(), "cairns", &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(e, GtfsError::Invalid(_)), "{e}");
    assert!(
        e.to_string().contains("stop_times.txt: trip \"CNS2014-CNS_MUL-Weekday-00-4165878\" stop_sequence 3: 05:00:00 is before an earlier stop's 05:50:00"),
        "{e}"
    );
    assert_eq!(env.live("cairns").await, Some(ok.version));
    env.done().await;
}
