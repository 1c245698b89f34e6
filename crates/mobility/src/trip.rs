//! The `trip.complete` payload: its shape, the rules it must meet, and the distance and duration
//! computed from its trajectory. Pure functions; the job that writes the stores builds on them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Travel modes a trip may have. Points per km are configured per mode.
pub const MODES: &[&str] = &[
    "walk", "bike", "ebike", "scooter", "bus", "tram", "metro", "train", "ferry", "car", "taxi",
    "carpool",
];

/// The latitudes a position may have: Redis GEO (users' last positions, stops) indexes only
/// these (the Web Mercator range), so a position beyond them could not be stored or searched.
pub const MAX_LATITUDE: f64 = 85.051_128_78;

/// Points a trajectory may have (a day at one fix per 5 s): keeps a trajectory document far
/// below MongoDB's 16 MB limit.
pub const MAX_POINTS: usize = 20_000;
/// 2000-01-01 in Unix milliseconds: an earlier timestamp is a unit mistake.
pub const MIN_TIMESTAMP_MS: i64 = 946_684_800_000;
/// 2100-01-01 in Unix milliseconds: a later timestamp is a unit mistake.
pub const MAX_TIMESTAMP_MS: i64 = 4_102_444_800_000;
/// Costs are stored as DECIMAL(10, 2).
pub const MAX_COST: f64 = 1_000_000.0;

/// One GPS fix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackPoint {
    /// Latitude, degrees (-90 to 90).
    pub lat: f64,
    /// Longitude, degrees (-180 to 180).
    pub lng: f64,
    /// Unix milliseconds.
    pub timestamp: i64,
    /// Metres, as the device reported it.
    #[serde(default)]
    pub accuracy: Option<f64>,
    /// Metres per second, as the device reported it.
    #[serde(default)]
    pub speed: Option<f64>,
}

/// The `trip.complete` job payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TripCompletion {
    /// The trip's id (`dataset.trips.trip_id`): completing it twice awards once.
    pub trip_id: String,
    /// The user (`portal.users.id`).
    pub user_id: u64,
    /// One of [`MODES`].
    pub mode: String,
    /// The GPS fixes, in time order.
    pub trajectory: Vec<TrackPoint>,
    #[serde(default)]
    /// The fare, if any.
    pub cost: Option<f64>,
}

/// Why a payload is refused, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidTrip {
    /// The field (`trajectory[2].timestamp`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> InvalidTrip {
    InvalidTrip {
        field: field.into(),
        message: message.into(),
    }
}

impl TripCompletion {
    /// Checks every rule that needs no database (the user's existence is checked by the job).
    pub fn validate(&self) -> Result<(), InvalidTrip> {
        if self.trip_id.is_empty() || self.trip_id.len() > 64 {
            return Err(invalid("tripId", "must be 1-64 characters"));
        }
        if self.user_id == 0 {
            return Err(invalid("userId", "must be a positive id"));
        }
        if !MODES.contains(&self.mode.as_str()) {
            return Err(invalid(
                "mode",
                format!("unknown mode `{}`: one of {}", self.mode, MODES.join(", ")),
            ));
        }
        if self.trajectory.len() < 2 {
            return Err(invalid("trajectory", "needs at least two points"));
        }
        if self.trajectory.len() > MAX_POINTS {
            return Err(invalid(
                "trajectory",
                format!(
                    "at most {MAX_POINTS} points ({} given)",
                    self.trajectory.len()
                ),
            ));
        }
        for (i, p) in self.trajectory.iter().enumerate() {
            if !(p.lat.is_finite() && (-MAX_LATITUDE..=MAX_LATITUDE).contains(&p.lat)) {
                return Err(invalid(
                    format!("trajectory[{i}].lat"),
                    format!(
                        "{} is not a latitude (-{MAX_LATITUDE} to {MAX_LATITUDE})",
                        p.lat
                    ),
                ));
            }
            if !(p.lng.is_finite() && (-180.0..=180.0).contains(&p.lng)) {
                return Err(invalid(
                    format!("trajectory[{i}].lng"),
                    format!("{} is not a longitude (-180 to 180)", p.lng),
                ));
            }
            if !(MIN_TIMESTAMP_MS..MAX_TIMESTAMP_MS).contains(&p.timestamp) {
                return Err(invalid(
                    format!("trajectory[{i}].timestamp"),
                    format!(
                        "{} is not Unix milliseconds between 2000 and 2100",
                        p.timestamp
                    ),
                ));
            }
            if i > 0 && p.timestamp <= self.trajectory[i - 1].timestamp {
                return Err(invalid(
                    format!("trajectory[{i}].timestamp"),
                    "timestamps must strictly increase",
                ));
            }
        }
        if let Some(c) = self.cost
            && !(c.is_finite() && (0.0..MAX_COST).contains(&c))
        {
            return Err(invalid(
                "cost",
                format!("must be from 0 to below {MAX_COST}"),
            ));
        }
        Ok(())
    }

    /// Checks that the trip could have happened as described: every fix within the accuracy
    /// `rules` allow; no segment and no stretch of [`SUSTAINED_MS`] faster than its
    /// mode allows; and the whole trip within its mode's distance, duration and mean speed. Distances between two fixes are first reduced by
    /// their GPS error (their `accuracy`, at least `rules.gps_tolerance_m` each), so jitter
    /// and a stray fix are not taken for speed while a teleport still is (docs/security.md).
    pub fn plausible(&self, rules: &Plausibility) -> Result<(), InvalidTrip> {
        self.evidence(rules)?;
        let limit = rules.max_speed_kmh(&self.mode);
        let tolerance = |p: &TrackPoint| p.accuracy.unwrap_or(0.0).max(rules.gps_tolerance_m);
        let kmh_between = |a: &TrackPoint, b: &TrackPoint| {
            let metres = haversine_m(a.lat, a.lng, b.lat, b.lng);
            let beyond_error = (metres - tolerance(a) - tolerance(b)).max(0.0);
            beyond_error / 1000.0 / ((b.timestamp - a.timestamp) as f64 / 3_600_000.0)
        };
        for (i, w) in self.trajectory.windows(2).enumerate() {
            let kmh = kmh_between(&w[0], &w[1]);
            if kmh > limit {
                return Err(invalid(
                    format!("trajectory[{}]", i + 1),
                    format!(
                        "{kmh:.0} km/h between fixes {i} and {} exceeds {}'s {limit:.0} km/h",
                        i + 1,
                        self.mode
                    ),
                ));
            }
        }
        let points = &self.trajectory;
        let mut j = 0;
        for (i, a) in points.iter().enumerate() {
            while j < points.len() && points[j].timestamp - a.timestamp < SUSTAINED_MS {
                j += 1;
            }
            let Some(b) = points.get(j) else {
                break;
            };
            let kmh = kmh_between(a, b);
            if kmh > limit {
                return Err(invalid(
                    format!("trajectory[{j}]"),
                    format!(
                        "{kmh:.0} km/h sustained from fix {i} to fix {j} exceeds {}'s {limit:.0} km/h",
                        self.mode
                    ),
                ));
            }
        }
        self.whole_trip(rules)
    }

    /// Every fix claims an accuracy within `rules.max_accuracy_m`: a claimed error would
    /// otherwise widen the tolerance until no speed is caught.
    fn evidence(&self, rules: &Plausibility) -> Result<(), InvalidTrip> {
        for (i, p) in self.trajectory.iter().enumerate() {
            if let Some(a) = p.accuracy
                && !(a.is_finite() && (0.0..=rules.max_accuracy_m).contains(&a))
            {
                return Err(invalid(
                    format!("trajectory[{i}].accuracy"),
                    format!(
                        "{a} m: a fix must claim an accuracy from 0 to {:.0} m",
                        rules.max_accuracy_m
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The whole trip within its mode's distance, duration and mean speed (and the limits of
    /// every mode).
    fn whole_trip(&self, rules: &Plausibility) -> Result<(), InvalidTrip> {
        let limits = rules.whole_trip(&self.mode);
        let km = self.distance_m() / 1000.0;
        if km > limits.max_km {
            return Err(invalid(
                "trajectory",
                format!(
                    "{km:.0} km exceeds the longest plausible {} trip, {:.0} km",
                    self.mode, limits.max_km
                ),
            ));
        }
        let hours = self.duration_s() / 3600.0;
        if hours > limits.max_hours {
            return Err(invalid(
                "trajectory",
                format!(
                    "{hours:.1} h exceeds the longest plausible {} trip, {:.1} h",
                    self.mode, limits.max_hours
                ),
            ));
        }
        let mean = km / hours;
        if mean > limits.mean_kmh {
            return Err(invalid(
                "trajectory",
                format!(
                    "{mean:.0} km/h over the whole trip exceeds {}'s mean of {:.0} km/h",
                    self.mode, limits.mean_kmh
                ),
            ));
        }
        Ok(())
    }

    /// Metres along the trajectory (haversine between consecutive points).
    pub fn distance_m(&self) -> f64 {
        self.trajectory
            .windows(2)
            .map(|w| haversine_m(w[0].lat, w[0].lng, w[1].lat, w[1].lng))
            .sum()
    }

    /// Metres along the trajectory between fixes at most `max_gap_ms` apart: the distance the
    /// fixes are evidence of, and what earns points. Across a longer gap the way taken is
    /// unknown (docs/security.md#points).
    pub fn evidenced_m(&self, max_gap_ms: i64) -> f64 {
        self.trajectory
            .windows(2)
            .filter(|w| w[1].timestamp - w[0].timestamp <= max_gap_ms)
            .map(|w| haversine_m(w[0].lat, w[0].lng, w[1].lat, w[1].lng))
            .sum()
    }

    /// Seconds from the first point to the last.
    pub fn duration_s(&self) -> f64 {
        match (self.trajectory.first(), self.trajectory.last()) {
            (Some(a), Some(b)) => (b.timestamp - a.timestamp) as f64 / 1000.0,
            _ => 0.0,
        }
    }
}

/// The stretch over which a mode's speed must hold, not just between two fixes: five minutes.
pub const SUSTAINED_MS: i64 = 5 * 60 * 1000;

/// What a plausible trip looks like (`trips.max_speed_kmh.*`, `trips.max_mean_kmh.*`,
/// `trips.max_trip_km.*`, `trips.max_trip_duration.*`, `trips.max_distance_km`,
/// `trips.max_duration`, `trips.max_accuracy_m`, `trips.gps_tolerance_m`; and
/// `trips.max_fix_gap`, which decides what distance earns points, not whether a trip passes).
#[derive(Debug, Clone)]
pub struct Plausibility {
    /// Fastest plausible speed by mode, km/h: between two fixes and over five minutes.
    pub max_speed_kmh: BTreeMap<String, u32>,
    /// Fastest plausible mean speed over a whole trip by mode, km/h.
    pub max_mean_kmh: BTreeMap<String, u32>,
    /// Longest plausible trip by mode, km.
    pub max_trip_km: BTreeMap<String, u32>,
    /// Longest plausible trip by mode, hours.
    pub max_trip_hours: BTreeMap<String, f64>,
    /// Longest plausible trip of any mode, km.
    pub max_distance_km: f64,
    /// Longest plausible trip of any mode, hours.
    pub max_duration_h: f64,
    /// The worst accuracy a fix may claim, metres.
    pub max_accuracy_m: f64,
    /// The longest time between two fixes whose distance earns points, ms.
    pub max_fix_gap_ms: i64,
    /// GPS error allowed per fix, metres.
    pub gps_tolerance_m: f64,
}

/// A mode's limits on a whole trip, with the limits of every mode applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TripLimits {
    /// Longest distance, km.
    pub max_km: f64,
    /// Longest duration, hours.
    pub max_hours: f64,
    /// Fastest mean speed, km/h (never above the mode's top speed).
    pub mean_kmh: f64,
}

impl Plausibility {
    /// The rules the configuration sets.
    pub fn from_settings(s: &tsp_config::TripSettings) -> Plausibility {
        Plausibility {
            max_speed_kmh: s.max_speed_kmh.clone(),
            max_mean_kmh: s.max_mean_kmh.clone(),
            max_trip_km: s.max_trip_km.clone(),
            max_trip_hours: s
                .max_trip_duration
                .iter()
                .map(|(m, d)| (m.clone(), d.as_secs_f64() / 3600.0))
                .collect(),
            max_distance_km: f64::from(s.max_distance_km),
            max_duration_h: s.max_duration.as_secs_f64() / 3600.0,
            max_accuracy_m: f64::from(s.max_accuracy_m),
            max_fix_gap_ms: i64::try_from(s.max_fix_gap.as_millis()).unwrap_or(i64::MAX),
            gps_tolerance_m: f64::from(s.gps_tolerance_m),
        }
    }

    /// Every mode has a key in each map (the schema lists them); an unknown mode was refused
    /// already, and gets 0: nothing passes.
    fn max_speed_kmh(&self, mode: &str) -> f64 {
        f64::from(self.max_speed_kmh.get(mode).copied().unwrap_or(0))
    }

    /// `mode`'s limits on a whole trip.
    pub fn whole_trip(&self, mode: &str) -> TripLimits {
        let of = |m: &BTreeMap<String, u32>| f64::from(m.get(mode).copied().unwrap_or(0));
        TripLimits {
            max_km: of(&self.max_trip_km).min(self.max_distance_km),
            max_hours: self
                .max_trip_hours
                .get(mode)
                .copied()
                .unwrap_or(0.0)
                .min(self.max_duration_h),
            mean_kmh: of(&self.max_mean_kmh).min(self.max_speed_kmh(mode)),
        }
    }
}

/// Mean Earth radius (IUGG), metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance in metres.
pub fn haversine_m(lat1: f64, lng1: f64, lat2: f64, lng2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lng2 - lng1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().atan2((1.0 - a).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01T00:00:00Z; test timestamps are offsets from it.
    const T0: i64 = 1_767_225_600_000;

    fn trip(points: &[(f64, f64, i64)]) -> TripCompletion {
        TripCompletion {
            trip_id: "t-1".into(),
            user_id: 7,
            mode: "bus".into(),
            trajectory: points
                .iter()
                .map(|&(lat, lng, timestamp)| TrackPoint {
                    lat,
                    lng,
                    timestamp: T0 + timestamp,
                    accuracy: None,
                    speed: None,
                })
                .collect(),
            cost: Some(2.5),
        }
    }

    #[test]
    fn haversine_matches_known_distances() {
        // One degree of latitude on the mean sphere: 2πR/360.
        let one_degree = 2.0 * std::f64::consts::PI * EARTH_RADIUS_M / 360.0;
        assert!((haversine_m(0.0, 0.0, 1.0, 0.0) - one_degree).abs() < 1e-6);
        // A quarter of the equator.
        assert!((haversine_m(0.0, 0.0, 0.0, 90.0) - one_degree * 90.0).abs() < 1e-3);
        assert_eq!(haversine_m(-16.92, 145.77, -16.92, 145.77), 0.0);
    }

    #[test]
    fn distance_and_duration_follow_the_trajectory() {
        let t = trip(&[(0.0, 0.0, 1_000), (1.0, 0.0, 61_000), (1.0, 1.0, 121_000)]);
        let expected = haversine_m(0.0, 0.0, 1.0, 0.0) + haversine_m(1.0, 0.0, 1.0, 1.0);
        assert!((t.distance_m() - expected).abs() < 1e-9);
        assert_eq!(t.duration_s(), 120.0);
        assert_eq!(t.validate(), Ok(()));
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases = [
            (
                trip(&[(0.0, 0.0, 1)]),
                "trajectory: needs at least two points",
            ),
            (
                trip(&[(0.0, 0.0, 1), (91.0, 0.0, 2)]),
                "trajectory[1].lat: 91 is not a latitude (-85.05112878 to 85.05112878)",
            ),
            // A real latitude, but beyond what Redis GEO holds: the trip could not be indexed.
            (
                trip(&[(86.0, 0.0, 1), (0.0, 0.0, 2)]),
                "trajectory[0].lat: 86 is not a latitude (-85.05112878 to 85.05112878)",
            ),
            (
                trip(&[(0.0, 181.0, 1), (0.0, 0.0, 2)]),
                "trajectory[0].lng: 181 is not a longitude (-180 to 180)",
            ),
            (
                trip(&[(0.0, 0.0, 5), (0.0, 0.1, 5)]),
                "trajectory[1].timestamp: timestamps must strictly increase",
            ),
            (
                trip(&[(0.0, 0.0, -T0 + 1_700_000_000), (0.0, 0.1, 5)]),
                "trajectory[0].timestamp: 1700000000 is not Unix milliseconds between 2000 and 2100",
            ),
        ];
        for (t, msg) in cases {
            assert_eq!(t.validate().unwrap_err().to_string(), msg);
        }
        let mut t = trip(&[(0.0, 0.0, 1), (0.0, 0.1, 2)]);
        t.mode = "rocket".into();
        assert!(
            t.validate()
                .unwrap_err()
                .to_string()
                .starts_with("mode: unknown mode `rocket`")
        );
        let mut t = trip(&[(0.0, 0.0, 1), (0.0, 0.1, 2)]);
        t.cost = Some(-1.0);
        assert_eq!(
            t.validate().unwrap_err().to_string(),
            "cost: must be from 0 to below 1000000"
        );
        t.cost = Some(2e6);
        assert_eq!(t.validate().unwrap_err().field, "cost");
        let many: Vec<(f64, f64, i64)> = (0..=MAX_POINTS as i64).map(|i| (0.0, 0.0, i)).collect();
        assert_eq!(
            trip(&many).validate().unwrap_err().to_string(),
            "trajectory: at most 20000 points (20001 given)"
        );
        let mut t = trip(&[(0.0, 0.0, 1), (0.0, 0.1, 2)]);
        t.user_id = 0;
        assert_eq!(t.validate().unwrap_err().field, "userId");
        let mut t = trip(&[(0.0, 0.0, 1), (0.0, 0.1, 2)]);
        t.trip_id = String::new();
        assert_eq!(t.validate().unwrap_err().field, "tripId");
    }

    #[test]
    fn payloads_decode_from_the_job_json_and_refuse_unknown_fields() {
        let json = r#"{"tripId":"t9","userId":3,"mode":"bike","trajectory":[{"lat":-16.9,"lng":145.7,"timestamp":1,"accuracy":5,"speed":3.2},{"lat":-16.91,"lng":145.71,"timestamp":2}],"cost":0}"#;
        let t: TripCompletion = serde_json::from_str(json).unwrap();
        assert_eq!(
            (t.trip_id.as_str(), t.user_id, t.trajectory.len()),
            ("t9", 3, 2)
        );
        let err = serde_json::from_str::<TripCompletion>(
            r#"{"tripId":"t","userId":1,"mode":"bus","trajectory":[],"colour":1}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `colour`"), "{err}");
    }

    fn rules() -> Plausibility {
        let each = |v| MODES.iter().map(|m| (m.to_string(), v)).collect();
        Plausibility {
            max_speed_kmh: each(15),
            max_mean_kmh: each(15),
            max_trip_km: each(100_000),
            max_trip_hours: MODES.iter().map(|m| (m.to_string(), 1000.0)).collect(),
            max_distance_km: 1000.0,
            max_duration_h: 24.0,
            max_accuracy_m: 500.0,
            max_fix_gap_ms: 15 * 60_000,
            gps_tolerance_m: 100.0,
        }
    }

    /// Extends `points` due north at `kmh` for `minutes`, a fix every 2 s.
    fn leg(points: &mut Vec<(f64, f64, i64)>, kmh: f64, minutes: i64) {
        let (mut lat, _, mut t) = points.last().copied().unwrap_or((0.0, 0.0, 0));
        for _ in 0..minutes * 30 {
            lat += kmh / 3.6 * 2.0 / 111_195.0;
            t += 2_000;
            points.push((lat, 0.0, t));
        }
    }

    #[test]
    fn a_short_ride_inside_a_long_walk_is_caught_by_the_sustained_speed() {
        // An hour at 5 km/h, ten minutes at 60, ten more at 5: 12.9 km/h over the whole trip,
        // and 33 m between fixes, within the GPS tolerance; but 60 km/h for ten minutes.
        let mut points = vec![(0.0, 0.0, 0)];
        leg(&mut points, 5.0, 60);
        let mut walk = trip(&points);
        walk.mode = "walk".into();
        assert_eq!(walk.plausible(&rules()), Ok(()));
        leg(&mut points, 60.0, 10);
        leg(&mut points, 5.0, 10);
        let mut mixed = trip(&points);
        mixed.mode = "walk".into();
        let e = mixed.plausible(&rules()).unwrap_err();
        assert!(e.message.contains("sustained"), "{e}");
        assert!(e.message.ends_with("exceeds walk's 15 km/h"), "{e}");
    }

    #[test]
    fn distance_and_duration_have_ceilings() {
        let mut r = rules();
        r.max_speed_kmh.insert("bus".into(), 120);
        r.max_mean_kmh.insert("bus".into(), 120);
        let mut points = vec![(0.0, 0.0, 0)];
        leg(&mut points, 100.0, 60 * 11);
        let e = trip(&points).plausible(&r).unwrap_err();
        assert!(
            e.message.contains("longest plausible bus trip, 1000 km"),
            "{e}"
        );
        let mut points = vec![(0.0, 0.0, 0)];
        leg(&mut points, 1.0, 60 * 25);
        let e = trip(&points).plausible(&r).unwrap_err();
        assert!(
            e.message.contains("longest plausible bus trip, 24.0 h"),
            "{e}"
        );
    }
}
