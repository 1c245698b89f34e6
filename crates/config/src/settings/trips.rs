//! The `trip.complete` job (`trips.*`): its queue, points and plausibility limits.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use tsp_config_derive::Settings;

use crate::field::FieldType;

/// The values of `trips.fault.step`: `any`, then the steps of the `trip.complete` job in order
/// (the job takes its step list from here, so the two cannot disagree).
pub const FAULT_STEPS: &[&str] = &[
    "any",
    "trip",
    "points",
    "trajectory",
    "activity",
    "metrics",
    "geo",
    "complete",
    "cache",
    "publish",
];

/// The `trip.complete` job.
#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct TripSettings {
    /// fastest plausible mean speed over a whole trip, first fix to last, km/h
    #[setting(
        ty = FieldType::UInt { min: 1, max: 2_000 },
        each(
            walk = 10, bike = 35, ebike = 35, scooter = 30, bus = 80, tram = 60, metro = 80,
            train = 300, ferry = 60, car = 150, taxi = 150, carpool = 150
        )
    )]
    pub max_mean_kmh: BTreeMap<String, u32>,
    /// longest plausible trip of the mode, km (`trips.max_distance_km` bounds every mode)
    #[setting(
        ty = FieldType::UInt { min: 1, max: 100_000 },
        each(
            walk = 60, bike = 300, ebike = 200, scooter = 80, bus = 400, tram = 100, metro = 100,
            train = 1_000, ferry = 500, car = 1_000, taxi = 500, carpool = 1_000
        )
    )]
    pub max_trip_km: BTreeMap<String, u32>,
    /// longest plausible trip of the mode, first fix to last (`trips.max_duration` bounds every
    /// mode)
    #[setting(
        ty = FieldType::Duration,
        each(
            walk = "16h", bike = "16h", ebike = "12h", scooter = "6h", bus = "12h", tram = "6h",
            metro = "6h", train = "24h", ferry = "24h", car = "16h", taxi = "12h",
            carpool = "16h"
        )
    )]
    pub max_trip_duration: BTreeMap<String, Duration>,
    /// queue that trip.complete jobs go to
    #[setting(default = "trips")]
    pub queue: String,
    /// workers complete trips in batches (one round trip per store and step for the batch;
    /// `queue.batch.trip.complete.*`); false: one job at a time
    #[setting(default = true)]
    pub batch: bool,
    /// points per km, by mode
    #[setting(
        ty = FieldType::UInt { min: 0, max: 10_000 },
        each(
            walk = (20, "points awarded per km walked (each mode has a key: walk, bike, ebike, scooter, bus, tram, metro, train, ferry, car, taxi, carpool)"),
            bike = (15, "points per km by bike"),
            ebike = (10, "points per km by e-bike"),
            scooter = (8, "points per km by scooter"),
            bus = (10, "points per km by bus"),
            tram = (10, "points per km by tram"),
            metro = (10, "points per km by metro"),
            train = (8, "points per km by train"),
            ferry = (8, "points per km by ferry"),
            car = (0, "points per km by car"),
            taxi = (0, "points per km by taxi"),
            carpool = (5, "points per km in a carpool"),
        )
    )]
    pub points_per_km: BTreeMap<String, u32>,
    /// fastest plausible speed, by mode
    #[setting(
        ty = FieldType::UInt { min: 1, max: 2_000 },
        each(
            walk = (15, "fastest plausible speed by walking, km/h, between two fixes and over the trip; each mode has a key (see points_per_km); a faster trip is refused before any write"),
            bike = (60, "fastest plausible bike speed, km/h, between fixes and overall"),
            ebike = (60, "fastest plausible ebike speed, km/h, between fixes and overall"),
            scooter = (60, "fastest plausible scooter speed, km/h, between fixes and overall"),
            bus = (120, "fastest plausible bus speed, km/h, between fixes and overall"),
            tram = (100, "fastest plausible tram speed, km/h, between fixes and overall"),
            metro = (120, "fastest plausible metro speed, km/h, between fixes and overall"),
            train = (350, "fastest plausible train speed, km/h, between fixes and overall"),
            ferry = (80, "fastest plausible ferry speed, km/h, between fixes and overall"),
            car = (250, "fastest plausible car speed, km/h, between fixes and overall"),
            taxi = (250, "fastest plausible taxi speed, km/h, between fixes and overall"),
            carpool = (250, "fastest plausible carpool speed, km/h, between fixes and overall"),
        )
    )]
    pub max_speed_kmh: BTreeMap<String, u32>,
    /// longest plausible trip, km; a longer one is refused before any write
    #[setting(ty = FieldType::UInt { min: 1, max: 100_000 }, default = 1_000)]
    pub max_distance_km: u32,
    /// longest plausible trip, first fix to last
    #[setting(default = "24h")]
    pub max_duration: Duration,
    /// a fix whose reported accuracy is worse than this, metres, is refused: a claimed error never
    /// widens the checks past it
    #[setting(ty = FieldType::UInt { min: 1, max: 100_000 }, default = 500)]
    pub max_accuracy_m: u32,
    /// the distance between two fixes further apart in time than this earns no points: the gap is
    /// no evidence of the way taken
    #[setting(default = "15m")]
    pub max_fix_gap: Duration,
    /// most points one user earns from trips ending on one UTC day; the excess is not awarded but
    /// recorded on the trip and counted (0: no cap)
    #[setting(ty = FieldType::UInt { min: 0, max: 100_000_000 }, default = 2_000)]
    pub max_points_per_day: u32,
    /// GPS error allowed per fix when a speed is checked (a fix's own accuracy counts when larger):
    /// jitter and a stray fix are not speed
    #[setting(ty = FieldType::UInt { min: 0, max: 1_000 }, default = 100)]
    pub gps_tolerance_m: u32,
    /// a user counts as recently active (`/users/near`) this long after a completed trip
    #[setting(default = "24h")]
    pub active_window: Duration,
    #[setting(nested)]
    pub fault: FaultSettings,
}

/// Fault injection into the trip job, for drills and tests (`trips.fault.*`).
#[derive(Debug, Clone, Deserialize, Settings)]
#[serde(deny_unknown_fields)]
pub struct FaultSettings {
    /// fault injection for drills and tests: after a step, fail the attempt (`error`) or abort the
    /// process (`abort`)
    #[setting(ty = FieldType::Enum(&["off", "error", "abort"]), default = "off")]
    pub mode: FaultMode,
    /// chance of a fault after each step, per mille
    #[setting(ty = FieldType::UInt { min: 0, max: 1000 }, default = 0)]
    pub rate: u32,
    /// the step after which faults happen, or `any`
    #[setting(ty = FieldType::Enum(FAULT_STEPS), default = "any")]
    pub step: Option<String>,
}

/// Where a drill injects faults into the `trip.complete` job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultMode {
    Off,
    /// The attempt fails with an error after the step (and is retried).
    Error,
    /// The process aborts after the step, as if killed.
    Abort,
}
