//! Metric names of the trip job (docs/metrics.md#trips-and-cache).

use tsp_hub::{Metric, MetricKind::*};

/// How long each step of `trip.complete` took (label `step`).
pub const TRIP_STEP: &str = "tsp_trip_step_seconds";
/// Trips completed, by `kind`: `new`, or `again` (a retry found it already done).
pub const TRIPS_COMPLETED: &str = "tsp_trips_completed_total";
/// Compensations of dead trip jobs, by `result`.
pub const COMPENSATIONS: &str = "tsp_trips_compensations_total";
/// Trips refused against their user's history, by `rule` (`overlap`).
pub const TRIPS_REFUSED: &str = "tsp_trips_refused_total";
/// Points not awarded because a user reached `trips.max_points_per_day`.
pub const POINTS_CAPPED: &str = "tsp_trip_points_capped_total";

/// Every metric the trip job records.
pub const ALL: &[Metric] = &[
    Metric::new(
        TRIP_STEP,
        Histogram,
        &["step"],
        "Seconds each step of trip.complete took.",
    ),
    Metric::new(
        TRIPS_COMPLETED,
        Counter,
        &["kind"],
        "Trips completed, by kind (new, again).",
    ),
    Metric::new(
        COMPENSATIONS,
        Counter,
        &["result"],
        "Compensations of dead trip jobs, by result (undone, completed_elsewhere, nothing_written).",
    ),
    Metric::new(
        TRIPS_REFUSED,
        Counter,
        &["rule"],
        "Trips refused against their user's history, by rule.",
    ),
    Metric::new(
        POINTS_CAPPED,
        Counter,
        &[],
        "Points not awarded because a user reached trips.max_points_per_day.",
    ),
];
