//! Deterministic demo data: portal users, and trips between the real bus stops of Cairns
//! (`data/gtfs-cairns/stops.txt`, shipped with the project). The same seed gives the same
//! trips on every machine and release: the generator is SplitMix64, written here because the
//! `rand` crate does not promise stable sequences across versions.

use async_recursion::async_recursion as boxed;
use tsp_hub::{HubError, MysqlStore};

use crate::gtfs::Gtfs;

use crate::trip::{TrackPoint, TripCompletion, haversine_m};

const STOPS_TXT: &str = include_str!("../../../data/gtfs-cairns/stops.txt");

/// A stop: name, latitude, longitude.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    /// The stop's name.
    pub name: String,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lng: f64,
}

/// The Cairns stops, parsed from the shipped GTFS file (columns found by header name).
pub fn cairns_stops() -> Result<Vec<Stop>, String> {
    parse_stops(STOPS_TXT)
}

/// The stops trips are generated between: the live version of the configured feed
/// (`gtfs.feed`) when one is imported, else the shipped Cairns stops. Also says which.
#[boxed]
pub async fn trip_stops(gtfs: &Gtfs) -> Result<(Vec<Stop>, String), crate::gtfs::GtfsError> {
    match gtfs.stops(None).await {
        Ok((feed, version, stops)) if stops.len() >= 2 => Ok((
            stops
                .into_iter()
                .filter_map(|s| {
                    Some(Stop {
                        name: s.name.unwrap_or_default(),
                        lat: s.lat?,
                        lng: s.lng?,
                    })
                })
                .collect(),
            format!("GTFS feed {feed} version {version}"),
        )),
        Ok(_) | Err(crate::gtfs::GtfsError::NotFound(_)) => {
            let stops = cairns_stops().map_err(|e| crate::gtfs::GtfsError::Invalid(vec![e]))?;
            Ok((
                stops,
                "the shipped Cairns stops (no GTFS feed imported)".into(),
            ))
        }
        Err(e) => Err(e),
    }
}

/// Parses a GTFS `stops.txt` (no quoted fields with commas in this feed; such a line is
/// refused, naming it).
pub fn parse_stops(text: &str) -> Result<Vec<Stop>, String> {
    let mut lines = text.lines().enumerate();
    let header: Vec<&str> = lines
        .next()
        .map(|(_, h)| h.trim_start_matches('\u{feff}').split(',').collect())
        .ok_or("stops.txt: empty")?;
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .ok_or(format!("stops.txt: no `{name}` column"))
    };
    let (ci_name, ci_lat, ci_lng) = (col("stop_name")?, col("stop_lat")?, col("stop_lon")?);
    let mut stops = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        if line.contains('"') {
            return Err(format!(
                "stops.txt line {}: quoted fields are not supported",
                i + 1
            ));
        }
        let f: Vec<&str> = line.split(',').collect();
        let get = |c: usize| f.get(c).copied().unwrap_or("");
        let num = |c: usize, what: &str| {
            get(c).trim().parse::<f64>().map_err(|_| {
                format!(
                    "stops.txt line {}: {what} `{}` is not a number",
                    i + 1,
                    get(c)
                )
            })
        };
        stops.push(Stop {
            name: get(ci_name).to_string(),
            lat: num(ci_lat, "stop_lat")?,
            lng: num(ci_lng, "stop_lon")?,
        });
    }
    Ok(stops)
}

/// SplitMix64: a small, stable, well-mixed generator.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// Inserts users `1..=count` into `users` of `portal` (existing ids are left as they are);
/// returns how many were new.
#[boxed]
pub async fn seed_users(portal: &MysqlStore, count: u64) -> Result<u64, HubError> {
    // Counted rather than taken from rows_affected, whose meaning for a no-op duplicate depends
    // on the server and the client's found-rows flag.
    let existing = || async {
        portal
            .timed(
                "count users",
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users WHERE id BETWEEN 1 AND ?")
                    .bind(count)
                    .fetch_one(portal.pool()),
            )
            .await
    };
    let before = existing().await?;
    let ids: Vec<u64> = (1..=count).collect();
    for chunk in ids.chunks(500) {
        let mut q = sqlx::QueryBuilder::<sqlx::MySql>::new(
            "INSERT INTO users (id, email, display_name, status) ",
        );
        q.push_values(chunk, |mut b, id| {
            b.push_bind(*id)
                .push_bind(format!("rider{id}@example.test"))
                .push_bind(format!("Rider {id}"))
                .push_bind("active");
        });
        q.push(" ON DUPLICATE KEY UPDATE id = id");
        portal
            .timed("seed users", q.build().execute(portal.pool()))
            .await?;
    }
    Ok((existing().await? - before).max(0) as u64)
}

/// Mode, share of trips (per mille), speed in m/s, fare (none, flat, or per km).
const MODE_MIX: &[(&str, u64, f64, Fare)] = &[
    ("walk", 200, 1.4, Fare::None),
    ("bike", 150, 4.5, Fare::None),
    ("ebike", 80, 6.0, Fare::PerKm(0.30)),
    ("scooter", 70, 5.0, Fare::PerKm(0.45)),
    ("bus", 300, 7.0, Fare::Flat(2.40)),
    ("taxi", 60, 11.0, Fare::PerKm(2.10)),
    ("carpool", 60, 10.0, Fare::PerKm(0.50)),
    ("car", 80, 11.0, Fare::None),
];

#[derive(Debug, Clone, Copy)]
enum Fare {
    None,
    Flat(f64),
    PerKm(f64),
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct TripPlan {
    /// Same seed, same trips.
    pub seed: u64,
    /// How many trips.
    pub trips: usize,
    /// Users are `1..=users`.
    pub users: u64,
    /// Trips end within this many days before `now_ms`.
    pub days: u32,
    /// "Now", Unix ms: fixed, so a plan gives the same trips whenever it runs.
    pub now_ms: i64,
}

/// The time a generated trip may take, with room to spare: the longest is 2.5 km walked or
/// 8 km ridden, 1.25 times the straight line, about 37 minutes.
const LANE_MS: i64 = 45 * 60_000;
/// Lanes per slot: plans whose seeds differ modulo this never overlap.
const LANES: i64 = 8;
/// Trips are placed on a grid of six-hour slots, aligned to UTC days.
const SLOT_MS: i64 = LANE_MS * LANES;

/// Where trips go in time, so that no user's trips overlap, as no real person's do: each trip
/// takes a slot of the grid (a user's trips spread evenly over the window, newest first, one
/// per slot, users starting at different slots), and within it the plan's lane: its seed plus
/// the slot it is made in, modulo [`LANES`]. So two plans made in the same six hours whose
/// seeds differ modulo [`LANES`] (`--seed 2026`, `--seed 2027`) never overlap, whatever their
/// sizes; and a plan made again later (within two days) takes another lane, so its trips, the
/// same trip ids at other times, never overlap those its first run recorded
/// (docs/consistency.md#reruns).
struct Timeline {
    /// Per trip, its user.
    users: Vec<u64>,
    /// Per user, their trip count and how many have been placed.
    placed: std::collections::HashMap<u64, (i64, i64)>,
    window_ms: i64,
    /// The newest slot: the last that ends a minute before now.
    top: i64,
    lane: i64,
}

impl Timeline {
    fn new(plan: &TripPlan) -> Timeline {
        // Its own stream, so the users do not shift the rest of a plan's draws.
        let mut rng = SplitMix64::new(plan.seed ^ 0x7573_6572_7321);
        let users: Vec<u64> = (0..plan.trips)
            .map(|_| 1 + rng.below(plan.users.max(1)))
            .collect();
        let mut placed = std::collections::HashMap::new();
        for &u in &users {
            placed.entry(u).or_insert((0, 0)).0 += 1;
        }
        Timeline {
            users,
            placed,
            window_ms: i64::from(plan.days.max(1)) * 86_400_000,
            top: Timeline::newest_slot(plan),
            lane: Timeline::lane(plan),
        }
    }

    fn lane(plan: &TripPlan) -> i64 {
        let made_in = (plan.now_ms - 60_000).div_euclid(SLOT_MS);
        ((plan.seed % LANES as u64) as i64 + made_in).rem_euclid(LANES)
    }

    /// The newest slot whose lane for this plan has passed a minute before now.
    fn newest_slot(plan: &TripPlan) -> i64 {
        let lane = Timeline::lane(plan);
        let current = (plan.now_ms - 60_000).div_euclid(SLOT_MS);
        let lane_end = current * SLOT_MS + (lane + 1) * LANE_MS;
        if lane_end <= plan.now_ms - 60_000 {
            current
        } else {
            current - 1
        }
    }

    /// Trip `i`'s user and end (Unix ms), for a trip lasting `duration_ms` (at most a lane).
    fn place(&mut self, i: usize, duration_ms: i64, rng: &mut SplitMix64) -> (u64, i64) {
        let user = self.users[i];
        let (count, placed) = self.placed.entry(user).or_insert((1, 0));
        // Spread over the window when it has room; a user with more trips than the window has
        // slots goes further back.
        let stride = (self.window_ms / (*count * SLOT_MS)).max(1);
        // Users start at different slots of their stride, so the newest trips are spread too.
        let offset = (user.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 33) as i64 % stride;
        let slot = self.top - offset - *placed * stride;
        *placed += 1;
        let lane_start = slot * SLOT_MS + self.lane * LANE_MS;
        let room = (LANE_MS - duration_ms.min(LANE_MS) - 60_000).max(0);
        let start = lane_start + (rng.unit() * room as f64) as i64;
        (user, start + duration_ms)
    }
}

/// `plan.trips` trips: each from one stop to another (at most ~8 km apart), a GPS fix every
/// 10-40 s along the way with a few metres of noise, at the mode's speed; one user's trips
/// never overlap in time.
pub fn generate_trips(plan: &TripPlan, stops: &[Stop]) -> Vec<TripCompletion> {
    let mut rng = SplitMix64::new(plan.seed);
    let mut out = Vec::with_capacity(plan.trips);
    if stops.len() < 2 || plan.users == 0 {
        return out;
    }
    let mut timeline = Timeline::new(plan);
    let total_share: u64 = MODE_MIX.iter().map(|m| m.1).sum();
    for i in 0..plan.trips {
        let mut pick = rng.below(total_share);
        let &(mode, _, speed, fare) = MODE_MIX
            .iter()
            .find(|m| {
                if pick < m.1 {
                    true
                } else {
                    pick -= m.1;
                    false
                }
            })
            .unwrap_or(&MODE_MIX[0]);
        let a = &stops[rng.below(stops.len() as u64) as usize];
        // Walkers stay within 2.5 km, others within 8 km: one of a few candidate stops, or,
        // when none is in range, a point on the way to the last candidate.
        let max = if mode == "walk" { 2_500.0 } else { 8_000.0 };
        let mut b = &stops[rng.below(stops.len() as u64) as usize];
        for _ in 0..8 {
            let d = haversine_m(a.lat, a.lng, b.lat, b.lng);
            if d > 50.0 && d <= max {
                break;
            }
            b = &stops[rng.below(stops.len() as u64) as usize];
        }
        let d = haversine_m(a.lat, a.lng, b.lat, b.lng);
        let reach = if d > max { max / d } else { 1.0 };
        let b = Stop {
            lat: a.lat + (b.lat - a.lat) * reach,
            lng: a.lng + (b.lng - a.lng) * reach,
            ..b.clone()
        };
        let direct = haversine_m(a.lat, a.lng, b.lat, b.lng).max(200.0);
        let fixes = 5 + (direct / 250.0).min(40.0) as usize;
        let total_s = direct * 1.25 / speed;
        let (user_id, end_ms) = timeline.place(i, (total_s * 1000.0) as i64, &mut rng);
        let start_ms = end_ms - (total_s * 1000.0) as i64;
        let mut trajectory = Vec::with_capacity(fixes);
        for k in 0..fixes {
            let f = k as f64 / (fixes - 1) as f64;
            // A little bend so the path is not a straight line (a tenth of the trip's length at
            // most, so a short trip does not double its path), and GPS noise (~5 m).
            let bend = (f * std::f64::consts::PI).sin() * (0.1 * direct / 111_195.0).min(0.002);
            let noise = |r: &mut SplitMix64| (r.unit() - 0.5) * 0.0001;
            trajectory.push(TrackPoint {
                lat: a.lat + (b.lat - a.lat) * f + bend + noise(&mut rng),
                lng: a.lng + (b.lng - a.lng) * f + noise(&mut rng),
                timestamp: start_ms + ((end_ms - start_ms) as f64 * f) as i64 + k as i64,
                accuracy: Some(3.0 + rng.unit() * 12.0),
                speed: Some(speed * (0.7 + rng.unit() * 0.6)),
            });
        }
        let km = direct / 1000.0;
        let cost = match fare {
            Fare::None => None,
            Fare::Flat(x) => Some(x),
            Fare::PerKm(x) => Some((x * km * 100.0).round() / 100.0),
        };
        out.push(TripCompletion {
            // The plan's seed and user count name the trips: rerunning a plan finds its own trips
            // (idempotent), another plan makes others (the same id with another user would be
            // refused as someone else's trip).
            trip_id: format!("trip-{:x}u{}-{i:07}", plan.seed, plan.users),
            user_id,
            mode: mode.to_string(),
            trajectory,
            cost,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_stops_parse() {
        let stops = cairns_stops().unwrap();
        assert_eq!(stops.len(), 416);
        assert_eq!(
            stops[0].name,
            "Cedar Rd (Palm Cove) - Hail and Ride Location"
        );
        assert_eq!((stops[0].lat, stops[0].lng), (-16.74359, 145.668217));
        // Every stop is in or near Cairns.
        assert!(
            stops
                .iter()
                .all(|s| (-17.5..-16.5).contains(&s.lat) && (145.5..146.0).contains(&s.lng))
        );
    }

    #[test]
    fn bad_stop_files_name_the_line() {
        let e = parse_stops("stop_id,stop_name,stop_lat,stop_lon\n1,A,x,1\n").unwrap_err();
        assert_eq!(e, "stops.txt line 2: stop_lat `x` is not a number");
        let e = parse_stops("stop_id,stop_name,stop_lat\n").unwrap_err();
        assert_eq!(e, "stops.txt: no `stop_lon` column");
    }

    #[test]
    fn trips_are_deterministic_and_valid() {
        let stops = cairns_stops().unwrap();
        let plan = TripPlan {
            seed: 42,
            trips: 2_000,
            users: 300,
            days: 30,
            now_ms: 1_790_000_000_000,
        };
        let a = generate_trips(&plan, &stops);
        let b = generate_trips(&plan, &stops);
        assert_eq!(a, b);
        assert_eq!(a.len(), 2_000);
        let rules = crate::trip::Plausibility::from_settings(&tsp_testkit::config(&[]).trips);
        for t in &a {
            t.validate().unwrap();
            t.plausible(&rules)
                .unwrap_or_else(|e| panic!("{}: {e}", t.trip_id));
            assert!((1..=300).contains(&t.user_id));
            let last = t.trajectory.last().unwrap().timestamp;
            assert!(last < plan.now_ms && last > plan.now_ms - 31 * 86_400_000);
        }
        let modes: std::collections::BTreeSet<&str> = a.iter().map(|t| t.mode.as_str()).collect();
        assert_eq!(modes.len(), MODE_MIX.len());
        // No user's trips overlap in time.
        let mut spans: Vec<(u64, i64, i64)> = a
            .iter()
            .map(|t| {
                let (first, last) = (&t.trajectory[0], t.trajectory.last().unwrap());
                (t.user_id, first.timestamp, last.timestamp)
            })
            .collect();
        spans.sort_unstable();
        for w in spans.windows(2) {
            assert!(w[0].0 != w[1].0 || w[0].2 <= w[1].1, "{w:?}");
        }
        let other = generate_trips(&TripPlan { seed: 43, ..plan }, &stops);
        assert_ne!(a[0], other[0]);
        // Nor do the trips of two plans made in the same slot whose seeds differ modulo the
        // lanes, of any sizes; nor the same plan made again in a later slot.
        let third = generate_trips(
            &TripPlan {
                seed: 47,
                trips: 500,
                ..plan.clone()
            },
            &stops,
        );
        let later = generate_trips(
            &TripPlan {
                now_ms: plan.now_ms + 3 * SLOT_MS + 12_345,
                ..plan.clone()
            },
            &stops,
        );
        let span = |t: &TripCompletion| {
            let last = t.trajectory.len() - 1;
            (
                t.user_id,
                t.trajectory[0].timestamp,
                t.trajectory[last].timestamp,
            )
        };
        for other in [&third, &later] {
            let mut spans: Vec<(u64, i64, i64)> = a.iter().chain(other).map(span).collect();
            spans.sort_unstable();
            for w in spans.windows(2) {
                assert!(w[0].0 != w[1].0 || w[0].2 <= w[1].1, "{w:?}");
            }
        }
        assert_eq!(later[0].trip_id, a[0].trip_id, "the same trips");
    }

    #[test]
    fn splitmix_matches_its_reference_sequence() {
        // First outputs for seed 0 (reference implementation by Vigna).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }
}
