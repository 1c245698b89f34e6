//! What the semantics tests share: numbered jobs, hand-made specs, completions.

use tsp_queue::{JobState, NewJob};

/// Enqueues `n` jobs of type "t" with payloads 0..n; their ids in order.
pub(crate) async fn enqueue_numbered(q: &tsp_queue::Queue, n: u32) -> Vec<String> {
    q.enqueue_many((0..n).map(|i| NewJob::new("t", &i).unwrap()).collect())
        .await
        .unwrap()
}

/// Puts a job in line by hand, as a given spec: for specs this build would not write.
pub(crate) async fn store_waiting(q: &tsp_queue::Queue, id: &str, spec: &str, priority: u16) {
    let base = q.base_key();
    let mut conn = q.store().conn().await.unwrap();
    let _: () = redis::pipe()
        .cmd("HSET")
        .arg(format!("{base}data"))
        .arg(id)
        .arg(spec)
        .cmd("RPUSH")
        .arg(format!("{base}wait:{priority}"))
        .arg(id)
        .cmd("ZADD")
        .arg(format!("{base}prios"))
        .arg(1023 - priority)
        .arg(priority)
        .query_async(&mut conn)
        .await
        .unwrap();
}

pub(crate) fn job_ids(jobs: &[tsp_queue::LeasedJob]) -> Vec<String> {
    jobs.iter().map(|j| j.id.clone()).collect()
}

/// The ids `list` gives for completed jobs (oldest first), up to 10.
pub(crate) async fn completed_ids(q: &tsp_queue::Queue) -> Vec<String> {
    q.list(JobState::Completed, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect()
}

/// Plain completions (no result) of these jobs, for `Queue::finish`.
pub(crate) fn completions(
    jobs: &[tsp_queue::LeasedJob],
) -> Vec<(&tsp_queue::LeasedJob, tsp_queue::Outcome)> {
    jobs.iter()
        .map(|j| {
            (
                j,
                tsp_queue::Outcome::Completed {
                    result: "null".into(),
                },
            )
        })
        .collect()
}

/// Overwrites the stored spec of job `id` (what a corrupted store or a bad hand edit leaves).
pub(crate) async fn corrupt_spec(q: &tsp_queue::Queue, id: &str, spec: &[u8]) {
    let mut conn = q.store().conn().await.unwrap();
    let _: () = redis::cmd("HSET")
        .arg(format!("{}data", q.base_key()))
        .arg(id)
        .arg(spec)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// Specs that are not JSON, cut short, or of the wrong shape.
pub(crate) const BAD_SPECS: [&[u8]; 3] = [
    b"\xff\x00 not json at all \x9c",
    br#"["t","{}",0,3"#,
    br#"["t"]"#,
];
