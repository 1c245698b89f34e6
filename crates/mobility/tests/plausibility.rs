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

/// A trip of `mode` through `fixes` (lat, lng, seconds after T0, accuracy).
fn made(mode: &str, fixes: &[(f64, f64, i64, Option<f64>)]) -> TripCompletion {
    trip(
        mode,
        fixes
            .iter()
            .map(|&(lat, lng, s, accuracy)| TrackPoint {
                lat,
                lng,
                timestamp: 1_767_225_600_000 + s * 1000,
                accuracy,
                speed: None,
            })
            .collect(),
    )
}

#[test]
fn trips_that_mint_points_are_refused() {
    let r = rules();
    // A "bike trip" of two fixes 1 000 km (9° of latitude) and 20 h apart: 50 km/h between
    // them, under a bike's top speed, but no bike trip is that long or that fast on average.
    let e = made(
        "bike",
        &[(40.0, 0.0, 0, None), (49.0, 0.0, 20 * 3600, None)],
    )
    .plausible(&r)
    .unwrap_err();
    assert!(e.message.contains("longest plausible bike trip"), "{e}");
    // Shorter, within the distance: the mean speed still gives it away.
    let e = made("bike", &[(40.0, 0.0, 0, None), (42.0, 0.0, 5 * 3600, None)])
        .plausible(&r)
        .unwrap_err();
    assert!(e.message.contains("bike's mean of 35 km/h"), "{e}");
    // A walk at 655 km/h whose fixes each claim to be anywhere within 1e9 m.
    let fixes: Vec<_> = (0..20)
        .map(|k| (40.0 + 0.1 * k as f64, 0.0, 60 * k, Some(1e9)))
        .collect();
    let e = made("walk", &fixes).plausible(&r).unwrap_err();
    assert_eq!(e.field, "trajectory[0].accuracy");
    // The same accuracy within bounds: the speed is caught.
    let fixes: Vec<_> = fixes
        .iter()
        .map(|&(a, b, c, _)| (a, b, c, Some(400.0)))
        .collect();
    let e = made("walk", &fixes).plausible(&r).unwrap_err();
    assert!(e.message.contains("exceeds walk's 15 km/h"), "{e}");
}

#[test]
fn distance_across_a_gap_earns_nothing() {
    // The Slovenian hike has a 17-minute gap between two fixes (a rest): the trip passes, and
    // the metres across the gap are not evidence of the way, so they earn no points.
    let hike = trip("walk", gpx("gpx-slovenia/korita-zbevnica.gpx"));
    let r = rules();
    hike.plausible(&r).unwrap();
    let all = hike.distance_m();
    let evidenced = hike.evidenced_m(r.max_fix_gap_ms);
    assert!(evidenced < all, "{evidenced} < {all}");
    assert_eq!(hike.evidenced_m(i64::MAX), all);
}

mod properties {
    use proptest::prelude::*;
    use tsp_mobility::trip::{MODES, SUSTAINED_MS, TrackPoint, TripCompletion, haversine_m};

    /// A trajectory: a start, then steps of (seconds, share of the mode's top speed, bearing,
    /// accuracy): from standing still to just over the limit, so that many pass and many
    /// do not.
    fn trajectories() -> impl Strategy<Value = (String, Vec<TrackPoint>)> {
        let step = (
            1i64..900,
            0.0f64..1.02,
            0.0f64..std::f64::consts::TAU,
            prop::option::weighted(0.3, 0.0f64..505.0),
        );
        (
            prop::sample::select(MODES.to_vec()),
            -60.0f64..60.0,
            -170.0f64..170.0,
            prop::collection::vec(step, 1..40),
        )
            .prop_map(|(mode, lat0, lng0, steps)| {
                let mut points = vec![TrackPoint {
                    lat: lat0,
                    lng: lng0,
                    timestamp: 1_767_225_600_000,
                    accuracy: None,
                    speed: None,
                }];
                let top = f64::from(super::rules().max_speed_kmh[mode]);
                for (s, share, bearing, accuracy) in steps {
                    let kmh = share * share * top;
                    let last = points[points.len() - 1].clone();
                    let metres = kmh / 3.6 * s as f64;
                    let (north, east) = (metres * bearing.cos(), metres * bearing.sin());
                    let lat = (last.lat + north / 111_195.0).clamp(-89.0, 89.0);
                    let lng = last.lng + east / (111_195.0 * lat.to_radians().cos());
                    points.push(TrackPoint {
                        lat,
                        lng: lng.clamp(-180.0, 180.0),
                        timestamp: last.timestamp + s * 1000,
                        accuracy,
                        speed: None,
                    });
                }
                (mode.to_string(), points)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Whatever the checks accept is within the mode's limits: every segment (beyond the
        /// error the fixes may claim), every stretch of five minutes, and the whole trip.
        #[test]
        fn what_the_checks_accept_is_within_the_modes_limits((mode, points) in trajectories()) {
            let rules = super::rules();
            let trip = TripCompletion {
                trip_id: "p".into(),
                user_id: 1,
                mode: mode.clone(),
                trajectory: points,
                cost: None,
            };
            prop_assume!(trip.validate().is_ok());
            if trip.plausible(&rules).is_ok() {
                let top = f64::from(rules.max_speed_kmh[&mode]);
                let tolerance = |p: &TrackPoint| p.accuracy.unwrap_or(0.0).max(rules.gps_tolerance_m);
                let pts = &trip.trajectory;
                for w in pts.windows(2) {
                    prop_assert!(w[0].accuracy.is_none_or(|a| a <= rules.max_accuracy_m));
                    let m = haversine_m(w[0].lat, w[0].lng, w[1].lat, w[1].lng)
                        - tolerance(&w[0]) - tolerance(&w[1]);
                    let h = (w[1].timestamp - w[0].timestamp) as f64 / 3_600_000.0;
                    prop_assert!(m / 1000.0 / h <= top + 1e-9, "segment at {} km/h", m / 1000.0 / h);
                }
                for (i, a) in pts.iter().enumerate() {
                    if let Some(b) = pts[i..].iter().find(|b| b.timestamp - a.timestamp >= SUSTAINED_MS) {
                        let m = haversine_m(a.lat, a.lng, b.lat, b.lng) - tolerance(a) - tolerance(b);
                        let h = (b.timestamp - a.timestamp) as f64 / 3_600_000.0;
                        prop_assert!(m / 1000.0 / h <= top + 1e-9);
                    }
                }
                let limits = rules.whole_trip(&mode);
                let km = trip.distance_m() / 1000.0;
                let hours = trip.duration_s() / 3600.0;
                prop_assert!(km <= limits.max_km && hours <= limits.max_hours);
                prop_assert!(km / hours <= limits.mean_kmh + 1e-9);
            }
        }
    }
}
