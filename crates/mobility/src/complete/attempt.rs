//! One attempt of a trip: its facts, computed once from the payload and shared by the steps
//! (`steps`, `batched`) and the history's judgement (`history`).

use super::{Completed, Trips};
use crate::trip::{TrackPoint, TripCompletion};

/// One attempt's facts, computed once and shared by its steps.
pub(super) struct Attempt<'a> {
    pub(super) job_id: &'a str,
    pub(super) trip: &'a TripCompletion,
    pub(super) first: &'a TrackPoint,
    pub(super) last: &'a TrackPoint,
    pub(super) distance_m: f64,
    pub(super) duration_s: f64,
    /// Points awarded (after the day's cap, once judged: [`Attempt::judged`]).
    pub(super) points: i64,
    /// Points over the day's cap, not awarded.
    pub(super) capped: i64,
}

impl<'a> Attempt<'a> {
    /// The facts of `trip`'s attempt in job `job_id`; `None` for a trajectory without two points
    /// (refused by validation before).
    pub(super) fn new(
        trips: &Trips,
        job_id: &'a str,
        trip: &'a TripCompletion,
    ) -> Option<Attempt<'a>> {
        let (first, last) = (trip.trajectory.first()?, trip.trajectory.last()?);
        let distance_m = trip.distance_m();
        let evidenced_m = trip.evidenced_m(trips.inner.plausibility.max_fix_gap_ms);
        Some(Attempt {
            job_id,
            trip,
            first,
            last,
            distance_m,
            duration_s: trip.duration_s(),
            points: trips.points_for(&trip.mode, evidenced_m),
            capped: 0,
        })
    }

    /// What the job returns for it.
    pub(super) fn completed(&self, already_completed: bool) -> Completed {
        Completed {
            trip_id: self.trip.trip_id.clone(),
            distance_m: self.distance_m,
            duration_s: self.duration_s,
            points: self.points,
            points_capped: self.capped,
            already_completed,
        }
    }
}
