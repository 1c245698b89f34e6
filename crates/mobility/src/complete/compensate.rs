//! The compensation of a trip job that failed for good: its dead-letter hook
//! (docs/consistency.md).

use async_recursion::async_recursion as boxed;
use mongodb::bson::{self, doc};
use tsp_hub::HubError;
use tsp_hub::NamedLock;

use super::{ACTIVITY_LOG, TRAJECTORIES, Trips, trip_lock};
use crate::trip::TripCompletion;

/// What a compensation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compensation {
    /// The trip's partial data was removed.
    Undone,
    /// Another job completed this trip: nothing to undo.
    CompletedElsewhere,
    /// No attempt wrote anything (e.g. a refused payload), or a compensation already ran.
    NothingWritten,
}

impl Trips {
    /// Undoes what the attempts of dead job `job_id` wrote for `trip`, unless another job
    /// completed the trip. Idempotent.
    #[boxed]
    pub async fn compensate(
        &self,
        job_id: &str,
        trip: &TripCompletion,
    ) -> Result<Compensation, HubError> {
        let dataset = &self.inner.stores.dataset;
        let mut lock = trip_lock(dataset, &trip.trip_id).await?;
        let r = self.undo(&mut lock, job_id, trip).await;
        lock.release().await;
        if let Ok(c) = &r {
            let result = match c {
                Compensation::Undone => "undone",
                Compensation::CompletedElsewhere => "completed_elsewhere",
                Compensation::NothingWritten => "nothing_written",
            };
            ::metrics::counter!(crate::metrics::COMPENSATIONS, "result" => result).increment(1);
        }
        r
    }

    /// `Some` when the trip is not this job's to undo: completed by another job, or another
    /// user's trip under the same id.
    async fn not_ours(
        &self,
        lock: &mut NamedLock,
        job_id: &str,
        trip: &TripCompletion,
    ) -> Result<Option<Compensation>, HubError> {
        let row: Option<(String, Option<String>, u64)> = self
            .inner
            .stores
            .dataset
            .timed(
                "select trip",
                sqlx::query_as(
                    "SELECT CAST(status AS CHAR), job_id, user_id FROM trips WHERE trip_id = ?",
                )
                .bind(&trip.trip_id)
                .fetch_optional(&mut *lock.conn()),
            )
            .await?;
        Ok(match row {
            Some((status, owner, _))
                if status == "completed" && owner.as_deref() != Some(job_id) =>
            {
                Some(Compensation::CompletedElsewhere)
            }
            Some((_, _, user)) if user != trip.user_id => Some(Compensation::CompletedElsewhere),
            _ => None,
        })
    }

    async fn undo(
        &self,
        lock: &mut NamedLock,
        job_id: &str,
        trip: &TripCompletion,
    ) -> Result<Compensation, HubError> {
        if let Some(c) = self.not_ours(lock, job_id, trip).await? {
            return Ok(c);
        }
        let stores = &self.inner.stores;
        let dataset = &stores.dataset;
        let incentive = &stores.incentive;
        let earns = incentive
            .timed(
                "delete earn",
                sqlx::query(
                    "DELETE FROM points_transactions WHERE reference_type = 'trip' \
                     AND reference_id = ? AND transaction_type = 'earn' AND user_id = ?",
                )
                .bind(&trip.trip_id)
                .bind(trip.user_id)
                .execute(incentive.pool()),
            )
            .await?
            .rows_affected();
        let mongo = &stores.documents;
        let db = mongo.database();
        let owned = doc! {"tripId": &trip.trip_id, "userId": trip.user_id as i64};
        let trajectories = mongo
            .timed(
                "delete trajectory",
                db.collection::<bson::Document>(TRAJECTORIES)
                    .delete_one(owned.clone()),
            )
            .await?
            .deleted_count;
        let activities = mongo
            .timed(
                "delete activity",
                db.collection::<bson::Document>(ACTIVITY_LOG)
                    .delete_one(owned),
            )
            .await?
            .deleted_count;
        let rows = dataset
            .timed(
                "delete trip",
                sqlx::query("DELETE FROM trips WHERE trip_id = ? AND user_id = ?")
                    .bind(&trip.trip_id)
                    .bind(trip.user_id)
                    .execute(&mut *lock.conn()),
            )
            .await?
            .rows_affected();
        if earns + trajectories + activities + rows == 0 {
            return Ok(Compensation::NothingWritten);
        }
        self.inner
            .cache
            .invalidate(&[Self::user_tag(trip.user_id)])
            .await?;
        self.publish(&serde_json::json!({
            "event": "trip.compensated",
            "tripId": trip.trip_id,
            "userId": trip.user_id,
            "jobId": job_id,
        }))
        .await?;
        Ok(Compensation::Undone)
    }
}
