//! Trip plausibility against real GPS traces (`data/traces/`): Slovenian hikes pass as walks,
//! Denver drives pass as car trips, while the same drives on foot, and a teleport, are refused
//! with the segment named. The rules are the shipped defaults.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::PathBuf;

use tsp_mobility::trip::{Plausibility, TrackPoint, TripCompletion};

fn data(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn rules() -> Plausibility {
    Plausibility::from_settings(&tsp_testkit::config(&[]).trips)
}

fn trip(mode: &str, trajectory: Vec<TrackPoint>) -> TripCompletion {
    TripCompletion {
        trip_id: "real".into(),
        user_id: 1,
        mode: mode.into(),
        trajectory,
        cost: None,
    }
}

fn attr(tag: &str, name: &str) -> f64 {
    let start = tag.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    let end = start + tag[start..].find('"').unwrap();
    tag[start..end].parse().unwrap()
}

/// The timed track points of a GPX file (points without a `<time>` are skipped).
fn gpx(path: &str) -> Vec<TrackPoint> {
    let text = data(path);
    let mut out: Vec<TrackPoint> = Vec::new();
    for chunk in text.split("<trkpt ").skip(1) {
        let tag = &chunk[..chunk.find('>').unwrap()];
        let Some(t) = chunk.split("<time>").nth(1) else {
            continue;
        };
        let Some(end) = t.find("</time>") else {
            continue;
        };
        let at = chrono::DateTime::parse_from_rfc3339(&t[..end]).unwrap();
        let timestamp = at.timestamp_millis();
        // A recorder repeats a timestamp now and then; keep the first fix of each.
        if out.last().is_some_and(|p| p.timestamp >= timestamp) {
            continue;
        }
        out.push(TrackPoint {
            lat: attr(tag, "lat"),
            lng: attr(tag, "lon"),
            timestamp,
            accuracy: None,
            speed: None,
        });
    }
    out
}

/// A Denver trace (positions only), timed at a steady `kmh` along its path, a fix every
/// `every_s` seconds on average: real positions, so real GPS jitter between fixes.
fn denver(path: &str, kmh: f64) -> Vec<TrackPoint> {
    let text = data(path);
    let fixes: Vec<(f64, f64)> = text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (lat, lng) = l.split_once(',').unwrap();
            (lat.trim().parse().unwrap(), lng.trim().parse().unwrap())
        })
        .collect();
    let start = 1_767_225_600_000_i64;
    let mut metres = 0.0;
    let mut out = Vec::new();
    for (i, &(lat, lng)) in fixes.iter().enumerate() {
        if i > 0 {
            let (plat, plng) = fixes[i - 1];
            metres += tsp_mobility::trip::haversine_m(plat, plng, lat, lng);
        }
        let ms = (metres / (kmh / 3.6) * 1000.0) as i64;
        // Identical consecutive fixes (the vehicle stood still) still need increasing times.
        let timestamp = out.last().map_or(start + ms, |p: &TrackPoint| {
            (start + ms).max(p.timestamp + 1000)
        });
        out.push(TrackPoint {
            lat,
            lng,
            timestamp,
            accuracy: None,
            speed: None,
        });
    }
    out
}

#[test]
fn slovenian_tracks_are_plausible_as_what_they_are() {
    // A hike: 2.3 h in the hills, a few km/h.
    let hike = trip("walk", gpx("gpx-slovenia/korita-zbevnica.gpx"));
    assert!(hike.trajectory.len() > 200);
    hike.validate().unwrap();
    hike.plausible(&rules()).unwrap();
    // Round the Cerknica lake: 13.7 km in 2 h, but 21 km/h sustained over five minutes and
    // 23 km/h for stretches: a bicycle. It also has a stray fix (184 m off in 2 s), which the
    // GPS tolerance absorbs.
    let lake = gpx("gpx-slovenia/cerknicko-jezero.gpx");
    let ride = trip("bike", lake.clone());
    ride.validate().unwrap();
    ride.plausible(&rules()).unwrap();
    let e = trip("walk", lake).plausible(&rules()).unwrap_err();
    assert!(e.message.contains("exceeds walk's 15 km/h"), "{e}");
}

#[test]
fn denver_drives_are_plausible_car_trips_and_implausible_walks() {
    for file in [
        "gps-denver-traces/sample_trace_1.csv",
        "gps-denver-traces/sample_trace_2.csv",
        "gps-denver-traces/sample_trace_3.csv",
    ] {
        let car = trip("car", denver(file, 45.0));
        car.validate().unwrap();
        car.plausible(&rules())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let walk = trip("walk", denver(file, 45.0));
        let e = walk.plausible(&rules()).unwrap_err();
        assert!(e.message.contains("exceeds walk's 15 km/h"), "{file}: {e}");
    }
}

#[test]
fn a_teleport_is_refused_naming_its_segment() {
    let mut points = gpx("gpx-slovenia/cerknicko-jezero.gpx");
    // Fix 3 is suddenly in Madrid, ~1 900 km away, and fix 4 is back.
    points[3].lat = 40.4;
    points[3].lng = -3.7;
    let e = trip("walk", points).plausible(&rules()).unwrap_err();
    assert_eq!(e.field, "trajectory[3]");
    assert!(e.message.contains("between fixes 2 and 3"), "{e}");
    // Even as a car trip: no car covers 1 900 km in the minute between two fixes.
    let mut points = denver("gps-denver-traces/sample_trace_1.csv", 45.0);
    points[10].lat += 10.0;
    let e = trip("car", points).plausible(&rules()).unwrap_err();
    assert_eq!(e.field, "trajectory[10]");
}
