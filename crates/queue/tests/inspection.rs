//! What an operator's console reads and does: pages of each state in both orders, the glance
//! (oldest waiting job, worker leases), and cancelling waiting and delayed jobs atomically.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::setup;
use tsp_queue::{Cancelled, Finished, JobState, NewJob, Order, Outcome};

fn job(n: u32, priority: u16) -> NewJob {
    NewJob::new("page", &n).unwrap().with_priority(priority)
}

/// Waiting jobs page through priorities in run order, and in reverse; offsets cross lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_jobs_page_across_priorities_in_both_orders() {
    let (_hub, q, _cleanup) = setup(&[]).await;
    // 0..5 at priority 1, 5..10 at priority 7, 10..13 at priority 1 again.
    let mut low = q
        .enqueue_many((0..5).map(|n| job(n, 1)).collect())
        .await
        .unwrap();
    let high = q
        .enqueue_many((5..10).map(|n| job(n, 7)).collect())
        .await
        .unwrap();
    low.extend(
        q.enqueue_many((10..13).map(|n| job(n, 1)).collect())
            .await
            .unwrap(),
    );
    let run_order: Vec<String> = high.iter().chain(low.iter()).cloned().collect();
    let mut newest = run_order.clone();
    newest.reverse();
    for (offset, limit) in [(0, 4), (3, 4), (4, 3), (8, 10), (12, 5), (13, 5)] {
        let oldest = q
            .page_ids(JobState::Waiting, offset, limit, Order::Oldest)
            .await
            .unwrap();
        let end = (offset + limit).min(run_order.len());
        let want: Vec<String> = run_order.get(offset..end).unwrap_or(&[]).to_vec();
        assert_eq!(oldest, want, "oldest first, offset {offset}");
        let newer = q
            .page_ids(JobState::Waiting, offset, limit, Order::Newest)
            .await
            .unwrap();
        let want: Vec<String> = newest.get(offset..end).unwrap_or(&[]).to_vec();
        assert_eq!(newer, want, "newest first, offset {offset}");
    }
    // Whole jobs come back too, with their payloads.
    let jobs = q
        .page(JobState::Waiting, 1, 2, Order::Oldest)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].payload, serde_json::json!(6));
    // The glance names the oldest waiting job's time (its id's, a ULID): the first enqueued,
    // though it waits behind higher priorities.
    let glance = q.glance().await.unwrap();
    let first = ulid::Ulid::from_string(&low[0]).unwrap().timestamp_ms() as i64;
    assert_eq!(glance.oldest_waiting_ms, Some(first));
    assert!(glance.leases.is_empty());
}

/// Completed and dead jobs page newest first and oldest first; active ones by worker; the
/// glance shows each lease and how many jobs it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_dead_and_active_jobs_page_and_leases_are_seen() {
    // The queue's clock moves when the test says: each death gets a millisecond of its own.
    let (_hub, q, _cleanup, clock) = common::setup_clocked(&[]).await;
    let ids = q
        .enqueue_many((0..9).map(|n| job(n, 0)).collect())
        .await
        .unwrap();
    let fetched = q.fetch(9, "w1").await.unwrap();
    assert_eq!(fetched.jobs.len(), 9);
    // One at a time, so the completion order is known: 0..4 completed, 4..6 dead, 6.. held.
    for j in &fetched.jobs[..6] {
        let n: u32 = serde_json::from_str(&j.payload).unwrap();
        let outcome = if n < 4 {
            Outcome::Completed {
                result: "null".into(),
            }
        } else {
            Outcome::Dead {
                error: format!("no {n}"),
            }
        };
        let f = q.finish(&[(j, outcome)], false).await.unwrap();
        assert!(matches!(f[0], Finished::Completed | Finished::Dead));
        // Dead jobs are ordered by the millisecond they died: keep them apart.
        clock.advance(Duration::from_millis(1));
    }
    let page = |state, offset, limit, order| q.page_ids(state, offset, limit, order);
    assert_eq!(
        page(JobState::Completed, 0, 3, Order::Newest)
            .await
            .unwrap(),
        vec![ids[3].clone(), ids[2].clone(), ids[1].clone()]
    );
    assert_eq!(
        page(JobState::Completed, 1, 2, Order::Oldest)
            .await
            .unwrap(),
        ids[1..3].to_vec()
    );
    assert_eq!(
        page(JobState::Dead, 0, 5, Order::Newest).await.unwrap(),
        vec![ids[5].clone(), ids[4].clone()]
    );
    assert_eq!(
        page(JobState::Dead, 1, 5, Order::Oldest).await.unwrap(),
        vec![ids[5].clone()]
    );
    let mut held = ids[6..].to_vec();
    held.sort();
    assert_eq!(
        page(JobState::Active, 0, 10, Order::Newest).await.unwrap(),
        held
    );
    assert_eq!(
        page(JobState::Active, 2, 10, Order::Oldest).await.unwrap(),
        held[2..].to_vec()
    );
    let glance = q.glance().await.unwrap();
    assert_eq!(glance.oldest_waiting_ms, None);
    assert_eq!(glance.leases.len(), 1);
    assert_eq!(glance.leases[0].holder, "w1");
    assert_eq!(glance.leases[0].held, 3);
    assert!(glance.leases[0].deadline_ms > chrono_now_ms());
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Cancel removes waiting (first attempts and requeued ones) and delayed jobs with everything
/// stored for them and frees their dedup keys; it leaves active, finished and dead jobs alone
/// and says why; the counts and the events agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_removes_waiting_and_delayed_jobs_only() {
    let (hub, q, _cleanup) = setup(&[]).await;
    let mut events = subscribe(&hub, q.events_channel()).await;
    // Three jobs fetched first: one completes, one dies, one stays held.
    let fetched_ids = q
        .enqueue_many(vec![job(4, 0), job(5, 0), job(6, 0)])
        .await
        .unwrap();
    let fetched = q.fetch(10, "w1").await.unwrap().jobs;
    assert_eq!(
        fetched.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        fetched_ids
    );
    let completed = Outcome::Completed { result: "1".into() };
    let died = Outcome::Dead { error: "x".into() };
    q.finish(&[(&fetched[0], completed), (&fetched[1], died)], false)
        .await
        .unwrap();
    let (done, dead, active) = (
        fetched_ids[0].clone(),
        fetched_ids[1].clone(),
        fetched_ids[2].clone(),
    );
    let waiting = q.enqueue(job(1, 3).with_dedup_key("same")).await.unwrap();
    let other = q.enqueue(job(2, 3)).await.unwrap();
    let delayed = q
        .enqueue(job(3, 0).with_delay(Duration::from_secs(600)))
        .await
        .unwrap();
    let requeued = requeued_job(&q).await;
    let asked = vec![
        waiting.clone(),
        delayed.clone(),
        requeued.clone(),
        done.clone(),
        dead.clone(),
        active.clone(),
        "01ZZZZZZZZZZZZZZZZZZZZZZZZ".to_string(),
    ];
    let before = q.counts().await.unwrap();
    let answers = q.cancel(&asked).await.unwrap();
    assert_eq!(
        answers,
        vec![
            Cancelled::Cancelled,
            Cancelled::Cancelled,
            Cancelled::Cancelled,
            Cancelled::Completed,
            Cancelled::Dead,
            Cancelled::Active,
            Cancelled::Missing,
        ]
    );
    let after = q.counts().await.unwrap();
    assert_eq!(after.waiting, before.waiting - 2);
    assert_eq!(after.delayed, before.delayed - 1);
    assert_eq!(
        (after.completed, after.dead, after.active),
        (before.completed, before.dead, before.active)
    );
    assert_eq!(after.totals.get("cancelled"), Some(&3));
    for id in [&waiting, &delayed, &requeued] {
        assert!(q.job(id).await.unwrap().is_none(), "{id} is gone");
    }
    // The rest still wait, and the dedup key is free again.
    let still: Vec<String> = q
        .page_ids(JobState::Waiting, 0, 10, Order::Oldest)
        .await
        .unwrap();
    assert!(still.contains(&other) && !still.contains(&waiting));
    let again = q.enqueue(job(7, 3).with_dedup_key("same")).await.unwrap();
    assert_ne!(again, waiting);
    // One event names the three.
    let event = next_event(&mut events, "cancelled").await;
    let mut named: Vec<String> = serde_json::from_value(event["ids"].clone()).unwrap();
    named.sort();
    let mut want = vec![waiting, delayed, requeued];
    want.sort();
    assert_eq!(named, want);
    // Bad ids are refused before anything happens.
    assert!(q.cancel(&["a:b".to_string()]).await.is_err());
}

/// A job that waits as "~id" (it had an attempt before): dead-lettered, then requeued.
async fn requeued_job(q: &tsp_queue::Queue) -> String {
    let id = q.enqueue(job(9, 500)).await.unwrap();
    let fetched = q.fetch(1, "w2").await.unwrap();
    assert_eq!(fetched.jobs[0].id, id);
    q.finish(
        &[(&fetched.jobs[0], Outcome::Dead { error: "y".into() })],
        false,
    )
    .await
    .unwrap();
    let r = q.requeue(Some(std::slice::from_ref(&id))).await.unwrap();
    assert_eq!(r.requeued, 1);
    id
}

async fn subscribe(
    hub: &tsp_hub::Hub,
    channel: &str,
) -> futures::stream::BoxStream<'static, redis::Msg> {
    let client = hub.redis("cache").unwrap().client().unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(channel).await.unwrap();
    Box::pin(pubsub.into_on_message())
}

async fn next_event(
    events: &mut futures::stream::BoxStream<'static, redis::Msg>,
    kind: &str,
) -> serde_json::Value {
    use futures::StreamExt;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event within 10 s")
            .expect("the subscription is open");
        let text: String = msg.get_payload().unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        if v["event"] == kind {
            return v;
        }
    }
}
