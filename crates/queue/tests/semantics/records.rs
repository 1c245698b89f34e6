//! The records of finished jobs in MongoDB and InfluxDB.

use std::time::Duration;

use tsp_queue::{NewJob, Registry};

use crate::common::{self, Running, drained, setup, worker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_have_exactly_one_mongo_record_and_one_influx_point() {
    let db = common::unique("tsp_t_");
    let (hub, q, _cleanup) = setup(&[
        &format!("mongo.cache.database={db}"),
        &format!("influx.primary.database={db}"),
    ])
    .await;
    let influx = hub.influx("primary").unwrap();
    influx
        .query_v1(&db, &format!("CREATE DATABASE \"{db}\""))
        .await
        .unwrap();
    let mongo = hub.mongo("cache").unwrap().clone();
    tsp_queue::ensure_record_indexes(&mongo).await.unwrap();
    let (sink, task) =
        tsp_queue::RecordSink::start(Some(mongo.clone()), Some(influx.writer()), 500, 2_000);
    let good = vec![NewJob::raw("builtin.noop", "{}"); 1_200];
    let bad = vec![NewJob::raw("builtin.sleep", "[]"); 300];
    q.enqueue_many(good).await.unwrap();
    q.enqueue_many(bad).await.unwrap();
    let running = Running::start(worker(&q, Registry::new(), 64).with_records(sink));
    drained(&q, Duration::from_secs(60)).await;
    running.stop().await;
    assert_eq!(task.finish(Duration::from_secs(60)).await, 0);
    influx.writer().flush().await;

    let coll = mongo
        .database()
        .collection::<mongodb::bson::Document>("job_queue");
    let count = |f: mongodb::bson::Document| {
        let coll = coll.clone();
        async move { coll.count_documents(f).await.unwrap() }
    };
    assert_eq!(count(mongodb::bson::doc! {"queue": "jobs"}).await, 1_500);
    assert_eq!(
        count(mongodb::bson::doc! {"status": "completed", "jobType": "builtin.noop"}).await,
        1_200
    );
    assert_eq!(
        count(mongodb::bson::doc! {"status": "dead", "jobType": "builtin.sleep"}).await,
        300
    );
    let mut names = mongo
        .database()
        .collection::<mongodb::bson::Document>("job_queue")
        .list_index_names()
        .await
        .unwrap();
    names.sort();
    assert_eq!(
        names,
        [
            "_id_",
            "jobType_status",
            "status_priority_createdAt",
            "ttl_createdAt"
        ]
    );

    let body = influx
        .query_v1(
            &db,
            "SELECT count(duration_ms) FROM job_execution GROUP BY outcome",
        )
        .await
        .unwrap();
    let series = body
        .pointer("/results/0/series")
        .and_then(|s| s.as_array())
        .cloned()
        .unwrap_or_default();
    let by_outcome: std::collections::HashMap<String, i64> = series
        .iter()
        .map(|s| {
            (
                s.pointer("/tags/outcome")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string(),
                s.pointer("/values/0/1")
                    .and_then(|v| v.as_i64())
                    .unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(by_outcome.get("completed"), Some(&1_200), "{body}");
    assert_eq!(by_outcome.get("dead"), Some(&300), "{body}");
    let _ = influx
        .query_v1(&db, &format!("DROP DATABASE \"{db}\""))
        .await;
    let _ = mongo.database().drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_unwritten_when_the_grace_period_ends_are_counted_one_by_one() {
    // MongoDB does not answer: nothing handed over can be written, and finish says how much.
    let port = tsp_testkit::closed_port();
    let hub = tsp_hub::Hub::connect(&common::config(&[&format!("mongo.cache.port={port}")]))
        .await
        .unwrap();
    let mongo = hub.mongo("cache").unwrap().clone();
    let (sink, task) = tsp_queue::RecordSink::start(Some(mongo), None, 500, 100);
    let record = |i: usize| tsp_queue::JobRecord {
        id: format!("r-{i}"),
        queue: "jobs".into(),
        job_type: "builtin.noop".into(),
        payload: "{}".into(),
        status: "completed",
        priority: 0,
        attempts: 1,
        result: None,
        error: None,
        created_at: 1,
        started_at: 2,
        finished_at: 3,
        run_ms: 1.0,
        wait_ms: 1.0,
    };
    let records: Vec<_> = (0..7).map(record).collect();
    sink.send(&records).await;
    assert_eq!(task.finish(Duration::from_millis(300)).await, 7);
    hub.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_jobs_run_again_replace_the_older_outcome_and_the_rest_are_inserted() {
    let db = common::unique("tsp_t_");
    let (hub, _q, _cleanup) = setup(&[&format!("mongo.cache.database={db}")]).await;
    let mongo = hub.mongo("cache").unwrap().clone();
    tsp_queue::ensure_record_indexes(&mongo).await.unwrap();
    // Created now: the records' TTL index would remove a record from 1970 at its next pass.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let record = |i: usize, status: &'static str| tsp_queue::JobRecord {
        id: format!("r-{i}"),
        queue: "jobs".into(),
        job_type: "builtin.noop".into(),
        payload: "{}".into(),
        status,
        priority: 0,
        attempts: 1,
        result: None,
        error: None,
        created_at: now,
        started_at: now,
        finished_at: now,
        run_ms: 1.0,
        wait_ms: 1.0,
    };
    // The first outcomes of jobs 0, 2, 4, 6 and 8; then all ten jobs end, in one batch.
    for (statuses, expected) in [
        ((0..10).step_by(2).collect::<Vec<_>>(), "dead"),
        ((0..10).collect(), "completed"),
    ] {
        let (sink, task) = tsp_queue::RecordSink::start(Some(mongo.clone()), None, 500, 100);
        let records: Vec<_> = statuses.into_iter().map(|i| record(i, expected)).collect();
        sink.send(&records).await;
        drop(sink);
        assert_eq!(task.finish(Duration::from_secs(30)).await, 0);
    }
    let coll = mongo
        .database()
        .collection::<mongodb::bson::Document>("job_queue");
    assert_eq!(
        coll.count_documents(mongodb::bson::doc! {}).await.unwrap(),
        10
    );
    assert_eq!(
        coll.count_documents(mongodb::bson::doc! {"status": "completed"})
            .await
            .unwrap(),
        10
    );
    hub.shutdown(Duration::from_secs(1)).await;
}
