//! `trip.complete` for a batch of trips: the same nine steps with the same idempotency, each one
//! round trip for the whole batch (multi-row INSERTs, `insert_many`, one pipeline), under one
//! connection's named locks (docs/consistency.md#batches). A trip that fails a step fails its
//! own job; the others go on.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use async_recursion::async_recursion as boxed;
use mongodb::bson::Document;
use redis::{Script, ScriptInvocation};
use sqlx::{MySql, QueryBuilder, Row};
use tracing::Instrument;
use tsp_hub::{MongoStore, NamedLocks, RedisStore};
use tsp_queue::JobError;

use super::attempt::Attempt;
use super::history::{USER_WAIT, user_lock_name};
use super::steps::{
    GEO_UPDATE, NEAREST_STOPS, Nearest, TRANSIT_MODES, activity, booking, completed_event,
    nearest_call, stops_document, trajectory,
};
use super::{ACTIVITY_LOG, Completed, TRAJECTORIES, Trips, lock_name, ms_to_naive, step_span};
use crate::trip::TripCompletion;

/// The trips of a batch still going, and the outcome of each trip of the batch.
struct Batch<'a> {
    attempts: Vec<Attempt<'a>>,
    /// Position of each attempt's job in the batch.
    slot: Vec<usize>,
    alive: Vec<bool>,
    already: Vec<bool>,
    out: Vec<Option<Result<Completed, JobError>>>,
}

impl Batch<'_> {
    fn fail(&mut self, k: usize, e: JobError) {
        if self.alive[k] {
            self.alive[k] = false;
            self.out[self.slot[k]] = Some(Err(e));
        }
    }

    /// A step failed for the whole batch (a store error): every trip still going retries.
    fn fail_all(&mut self, e: &JobError) {
        for k in 0..self.attempts.len() {
            self.fail(k, e.clone());
        }
    }

    fn live(&self) -> Vec<usize> {
        (0..self.attempts.len())
            .filter(|&k| self.alive[k])
            .collect()
    }
}

impl Trips {
    /// Completes a batch of trips (`(job id, trip)` each); one outcome per trip, in order.
    #[boxed]
    pub async fn complete_batch(
        &self,
        jobs: &[(String, TripCompletion)],
    ) -> Vec<Result<Completed, JobError>> {
        let clock = Instant::now();
        let mut out: Vec<Option<Result<Completed, JobError>>> = vec![None; jobs.len()];
        let mut ok: Vec<usize> = Vec::new();
        for (i, (_, trip)) in jobs.iter().enumerate() {
            match trip
                .validate()
                .and_then(|()| trip.plausible(&self.inner.plausibility))
            {
                Ok(()) => ok.push(i),
                Err(e) => out[i] = Some(Err(JobError::abort(e))),
            }
        }
        if let Err(e) = self.check_users(jobs, &mut ok, &mut out).await {
            for i in ok.drain(..) {
                out[i] = Some(Err(e.clone()));
            }
        }
        if ok.is_empty() {
            // Nothing to lock or write: no connection taken.
            return finish(out);
        }
        let names: Vec<String> = ok
            .iter()
            .map(|&i| lock_name(&self.inner.stores.dataset, &jobs[i].1.trip_id))
            .collect();
        let locked = NamedLocks::try_acquire(&self.inner.stores.dataset, &names).await;
        let (mut locks, got) = match locked {
            Ok(l) => l,
            Err(e) => {
                let e = JobError::from(e);
                for i in ok {
                    out[i] = Some(Err(e.clone()));
                }
                return finish(out);
            }
        };
        let held = self.inner.held.hold(got.iter().filter(|g| **g).count());
        let mut batch = self.locked_batch(jobs, &ok, got, out);
        self.inner.timings.record("prepare", clock.elapsed());
        self.batch_steps(&mut locks, &mut batch).await;
        locks.release().await;
        drop(held);
        for (k, a) in batch.attempts.iter().enumerate() {
            if batch.alive[k] {
                let kind = if batch.already[k] { "again" } else { "new" };
                ::metrics::counter!(crate::metrics::TRIPS_COMPLETED, "kind" => kind).increment(1);
                batch.out[batch.slot[k]] = Some(Ok(a.completed(batch.already[k])));
            }
        }
        finish(batch.out)
    }

    /// The batch of the trips in `ok` whose locks were `got`; the others retry.
    fn locked_batch<'a>(
        &self,
        jobs: &'a [(String, TripCompletion)],
        ok: &[usize],
        got: Vec<bool>,
        out: Vec<Option<Result<Completed, JobError>>>,
    ) -> Batch<'a> {
        let mut batch = Batch {
            attempts: Vec::new(),
            slot: Vec::new(),
            alive: Vec::new(),
            already: Vec::new(),
            out,
        };
        for (&i, taken) in ok.iter().zip(got) {
            let (job_id, trip) = (&jobs[i].0, &jobs[i].1);
            match (taken, Attempt::new(self, job_id, trip)) {
                (true, Some(a)) => {
                    batch.attempts.push(a);
                    batch.slot.push(i);
                    batch.alive.push(true);
                    batch.already.push(false);
                }
                (false, _) => {
                    batch.out[i] = Some(Err(JobError::retry(format!(
                        "another attempt of trip {} is running",
                        trip.trip_id
                    ))))
                }
                (true, None) => {
                    batch.out[i] = Some(Err(JobError::abort(
                        "trajectory: needs at least two points",
                    )))
                }
            }
        }
        batch
    }

    /// Users of the trips in `ok` must exist and be active; the others are refused (removed
    /// from `ok`). One query for the batch.
    async fn check_users(
        &self,
        jobs: &[(String, TripCompletion)],
        ok: &mut Vec<usize>,
        out: &mut [Option<Result<Completed, JobError>>],
    ) -> Result<(), JobError> {
        if ok.is_empty() {
            return Ok(());
        }
        let ids: HashSet<u64> = ok.iter().map(|&i| jobs[i].1.user_id).collect();
        let mut q =
            QueryBuilder::<MySql>::new("SELECT id, CAST(status AS CHAR) FROM users WHERE id IN (");
        let mut list = q.separated(", ");
        for id in &ids {
            list.push_bind(*id);
        }
        q.push(")");
        let portal = &self.inner.stores.portal;
        let rows = portal
            .timed("select users", q.build().fetch_all(portal.pool()))
            .await?;
        let status: HashMap<u64, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        ok.retain(|&i| {
            let user = jobs[i].1.user_id;
            let refusal = match status.get(&user).map(String::as_str) {
                Some("active") => return true,
                Some(other) => format!("userId: user {user} is {other}"),
                None => format!("userId: no user {user} in portal"),
            };
            out[i] = Some(Err(JobError::abort(refusal)));
            false
        });
        Ok(())
    }

    /// The nine steps for the trips still going; a step's store failure fails the trips that
    /// reached it.
    async fn batch_steps(&self, locks: &mut NamedLocks, b: &mut Batch<'_>) {
        let clock = &mut Instant::now();
        let step = |r: Result<(), JobError>, b: &mut Batch<'_>| {
            if let Err(e) = r {
                b.fail_all(&e);
            }
        };
        self.judge_and_record_batch(locks, b, clock).await;
        let r = self
            .insert_trajectories(b)
            .instrument(step_span("trajectory"))
            .await;
        step(r, b);
        self.batch_step_done("trajectory", clock, b);
        let docs = b.live().iter().map(|&k| activity(&b.attempts[k])).collect();
        let inserted = insert_all(&self.inner.stores.documents, ACTIVITY_LOG, docs);
        let r = inserted.instrument(step_span("activity")).await;
        step(r, b);
        self.batch_step_done("activity", clock, b);
        let bookings = async {
            for k in b.live() {
                let point = booking(&b.attempts[k]);
                if let Err(e) = self.inner.bookings.write_wait(&point).await {
                    b.fail(k, JobError::abort(format!("trip_bookings point: {e}")));
                }
            }
        };
        bookings.instrument(step_span("metrics")).await;
        self.batch_step_done("metrics", clock, b);
        let r = self.update_positions(b).instrument(step_span("geo")).await;
        step(r, b);
        self.batch_step_done("geo", clock, b);
        let completed = self.mark_all_completed(locks, b);
        let r = completed.instrument(step_span("complete")).await;
        step(r, b);
        self.batch_step_done("complete", clock, b);
        let tags: HashSet<String> = b
            .live()
            .iter()
            .map(|&k| Self::user_tag(b.attempts[k].trip.user_id))
            .collect();
        let tags: Vec<String> = tags.into_iter().collect();
        let invalidated = self.inner.cache.invalidate(&tags);
        let r = invalidated.instrument(step_span("cache")).await;
        step(r.map(|_| ()).map_err(JobError::from), b);
        self.batch_step_done("cache", clock, b);
        let r = self.publish_all(b).instrument(step_span("publish")).await;
        step(r, b);
        self.batch_step_done("publish", clock, b);
    }

    /// Under the users' locks: the trips judged against their users' history (`history`),
    /// then steps 1 and 2 for the batch, so trips judged next see these rows and points. A
    /// trip whose user's lock another batch holds past the wait retries.
    async fn judge_and_record_batch(
        &self,
        locks: &mut NamedLocks,
        b: &mut Batch<'_>,
        clock: &mut Instant,
    ) {
        let dataset = &self.inner.stores.dataset;
        let mut users: Vec<u64> = b
            .live()
            .iter()
            .map(|&k| b.attempts[k].trip.user_id)
            .collect();
        users.sort_unstable();
        users.dedup();
        let names: Vec<String> = users.iter().map(|&u| user_lock_name(dataset, u)).collect();
        let got = match locks.also(dataset, &names, USER_WAIT).await {
            Ok(got) => got,
            Err(e) => {
                b.fail_all(&JobError::from(e));
                return;
            }
        };
        for k in b.live() {
            let user = b.attempts[k].trip.user_id;
            if users.binary_search(&user).is_ok_and(|i| !got[i]) {
                let e = format!("another trip of user {user} is being recorded");
                b.fail(k, JobError::retry(e));
            }
        }
        let live = b.live();
        let judged = {
            let attempts: Vec<&Attempt<'_>> = live.iter().map(|&k| &b.attempts[k]).collect();
            self.judge(locks.conn(), &attempts).await
        };
        match judged {
            Ok(verdicts) => {
                for (k, v) in live.into_iter().zip(verdicts) {
                    if let Err(e) = b.attempts[k].judged(v) {
                        b.fail(k, e);
                    }
                }
            }
            Err(e) => b.fail_all(&e),
        }
        let r = self
            .insert_trips(locks, b)
            .instrument(step_span("trip"))
            .await;
        if let Err(e) = r {
            b.fail_all(&e);
        }
        self.batch_step_done("trip", clock, b);
        let r = self.insert_earns(b).instrument(step_span("points")).await;
        if let Err(e) = r {
            b.fail_all(&e);
        }
        self.batch_step_done("points", clock, b);
        locks.release_some(&names).await;
    }

    /// Records a step's time for the batch and injects a drill's faults: with `error`, each
    /// trip still going fails at the configured rate (its own job only); with `abort`, the
    /// process dies mid-batch.
    fn batch_step_done(&self, step: &str, clock: &mut Instant, b: &mut Batch<'_>) {
        let took = clock.elapsed();
        self.inner.timings.record(step, took);
        ::metrics::histogram!(crate::metrics::TRIP_STEP, "step" => step.to_string())
            .record(took.as_secs_f64());
        for k in b.live() {
            if let Err(e) = self.fault(step) {
                b.fail(k, e);
            }
        }
        *clock = Instant::now();
    }

    /// Step 1 for the batch: one multi-row INSERT (no-op for existing rows), then one read of
    /// owners and statuses.
    async fn insert_trips(
        &self,
        locks: &mut NamedLocks,
        b: &mut Batch<'_>,
    ) -> Result<(), JobError> {
        let live = b.live();
        if live.is_empty() {
            return Ok(());
        }
        let dataset = &self.inner.stores.dataset;
        let mut q = QueryBuilder::<MySql>::new(
            "INSERT INTO trips (trip_id, user_id, mode, status, started_at, ended_at, \
             distance_m, duration_s, points, cost, start_lat, start_lng, end_lat, end_lng) ",
        );
        q.push_values(live.iter().map(|&k| &b.attempts[k]), |mut row, a| {
            row.push_bind(&a.trip.trip_id)
                .push_bind(a.trip.user_id)
                .push_bind(&a.trip.mode)
                .push_bind("active")
                .push_bind(ms_to_naive(a.first.timestamp))
                .push_bind(ms_to_naive(a.last.timestamp))
                .push_bind(a.distance_m)
                .push_bind(a.duration_s.round() as u32)
                .push_bind(a.points)
                .push_bind(a.trip.cost)
                .push_bind(a.first.lat)
                .push_bind(a.first.lng)
                .push_bind(a.last.lat)
                .push_bind(a.last.lng);
        });
        q.push(" ON DUPLICATE KEY UPDATE trip_id = trip_id");
        dataset
            .timed("insert trips", q.build().execute(&mut *locks.conn()))
            .await?;
        let mut q = QueryBuilder::<MySql>::new(
            "SELECT trip_id, user_id, CAST(status AS CHAR) FROM trips WHERE trip_id IN (",
        );
        let mut list = q.separated(", ");
        for &k in &live {
            list.push_bind(&b.attempts[k].trip.trip_id);
        }
        q.push(")");
        let rows = dataset
            .timed("select trips", q.build().fetch_all(&mut *locks.conn()))
            .await?;
        let found: HashMap<String, (u64, String)> = rows
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
        for k in live {
            let a = &b.attempts[k];
            match found.get(&a.trip.trip_id) {
                Some((owner, _)) if *owner != a.trip.user_id => {
                    let e = format!("tripId: trip {} belongs to another user", a.trip.trip_id);
                    b.fail(k, JobError::abort(e));
                }
                Some((_, status)) => b.already[k] = status == "completed",
                None => b.fail(k, JobError::retry("trips row not found after its insert")),
            }
        }
        Ok(())
    }

    /// Step 2 for the batch: the earn transactions, one multi-row INSERT (unique per trip).
    async fn insert_earns(&self, b: &Batch<'_>) -> Result<(), JobError> {
        let live = b.live();
        if live.is_empty() {
            return Ok(());
        }
        let incentive = &self.inner.stores.incentive;
        let mut q = QueryBuilder::<MySql>::new(
            "INSERT INTO points_transactions (user_id, transaction_type, points, \
             reference_type, reference_id, description, created_at) ",
        );
        q.push_values(live.iter().map(|&k| &b.attempts[k]), |mut row, a| {
            row.push_bind(a.trip.user_id)
                .push_bind("earn")
                .push_bind(a.points)
                .push_bind("trip")
                .push_bind(&a.trip.trip_id)
                .push_bind(format!(
                    "{} trip, {:.1} km",
                    a.trip.mode,
                    a.distance_m / 1000.0
                ))
                .push_bind(ms_to_naive(a.last.timestamp));
        });
        q.push(" ON DUPLICATE KEY UPDATE id = id");
        incentive
            .timed("insert earns", q.build().execute(incentive.pool()))
            .await?;
        Ok(())
    }

    /// Step 3 for the batch: the nearest stops of the transit trips in one pipeline, then every
    /// trajectory in one unordered `insert_many` (the first write wins, as for one trip).
    async fn insert_trajectories(&self, b: &Batch<'_>) -> Result<(), JobError> {
        let live = b.live();
        let transit: Vec<usize> = live
            .iter()
            .copied()
            .filter(|&k| TRANSIT_MODES.contains(&b.attempts[k].trip.mode.as_str()))
            .collect();
        let mut stops: HashMap<usize, Option<Document>> = HashMap::new();
        if !transit.is_empty() {
            let keys = self.stop_keys();
            let calls: Vec<_> = transit
                .iter()
                .map(|&k| nearest_call(&keys, &b.attempts[k]))
                .collect();
            let found: Vec<Option<(String, Nearest, Nearest)>> = run_scripts(
                &self.inner.stores.redis,
                &NEAREST_STOPS,
                &calls,
                "nearest stops",
            )
            .await?;
            let feed = &self.inner.feed;
            for (k, f) in transit.iter().zip(found) {
                stops.insert(*k, stops_document(feed, f));
            }
        }
        let docs = live
            .iter()
            .map(|&k| trajectory(&b.attempts[k], stops.remove(&k).flatten()))
            .collect();
        insert_all(&self.inner.stores.documents, TRAJECTORIES, docs).await
    }

    /// Step 6 for the batch: every position update in one pipeline.
    async fn update_positions(&self, b: &Batch<'_>) -> Result<(), JobError> {
        let live = b.live();
        if live.is_empty() {
            return Ok(());
        }
        let calls: Vec<_> = live
            .iter()
            .map(|&k| self.geo_call(&b.attempts[k]))
            .collect();
        let _: Vec<i64> =
            run_scripts(&self.inner.stores.redis, &GEO_UPDATE, &calls, "geo update").await?;
        Ok(())
    }

    /// Step 7 for the batch: every trips row not yet completed becomes `completed` with its own
    /// job's id, in one UPDATE.
    async fn mark_all_completed(
        &self,
        locks: &mut NamedLocks,
        b: &Batch<'_>,
    ) -> Result<(), JobError> {
        let live = b.live();
        if live.is_empty() {
            return Ok(());
        }
        let mut q = QueryBuilder::<MySql>::new(
            "UPDATE trips SET status = 'completed', job_id = CASE trip_id",
        );
        for &k in &live {
            let a = &b.attempts[k];
            q.push(" WHEN ").push_bind(&a.trip.trip_id);
            q.push(" THEN ").push_bind(a.job_id);
        }
        q.push(" END WHERE status <> 'completed' AND trip_id IN (");
        let mut list = q.separated(", ");
        for &k in &live {
            list.push_bind(&b.attempts[k].trip.trip_id);
        }
        q.push(")");
        self.inner
            .stores
            .dataset
            .timed("complete trips", q.build().execute(&mut *locks.conn()))
            .await?;
        Ok(())
    }

    /// Step 9 for the batch: every `trip.completed` event in one pipeline.
    async fn publish_all(&self, b: &Batch<'_>) -> Result<(), JobError> {
        let live = b.live();
        if live.is_empty() {
            return Ok(());
        }
        let redis = &self.inner.stores.redis;
        let channel = self.events_channel();
        let mut pipe = redis::pipe();
        for &k in &live {
            pipe.cmd("PUBLISH")
                .arg(&channel)
                .arg(completed_event(&b.attempts[k]).to_string())
                .ignore();
        }
        let mut conn = redis.conn().await?;
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| redis.command_error("publish", &e))?;
        Ok(())
    }
}

/// Every call of `script` in one pipeline (the script loaded first, so the calls need not
/// fall back to EVAL): one round trip for a batch.
async fn run_scripts<T: redis::FromRedisValue>(
    redis: &RedisStore,
    script: &Script,
    calls: &[ScriptInvocation<'_>],
    op: &str,
) -> Result<T, JobError> {
    let mut pipe = redis::pipe();
    pipe.load_script(script).ignore();
    for call in calls {
        pipe.invoke_script(call);
    }
    let mut conn = redis.conn().await?;
    pipe.query_async(&mut conn)
        .await
        .map_err(|e| redis.command_error(op, &e).into())
}

/// One unordered `insert_many`; documents already there (a retried attempt's) count as written.
async fn insert_all(
    store: &MongoStore,
    collection: &str,
    docs: Vec<Document>,
) -> Result<(), JobError> {
    if docs.is_empty() {
        return Ok(());
    }
    let coll = store.database().collection::<Document>(collection);
    match store
        .timed("insert many", coll.insert_many(docs).ordered(false))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if MongoStore::only_duplicates(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn finish(out: Vec<Option<Result<Completed, JobError>>>) -> Vec<Result<Completed, JobError>> {
    out.into_iter()
        .map(|o| o.unwrap_or_else(|| Err(JobError::retry("no outcome for this trip"))))
        .collect()
}
