//! MySQL migrations against the real MariaDB, each test on fresh databases of its own.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use tsp_hub::Hub;

const INSTANCES: [&str; 4] = ["portal", "dataset", "gtfs", "incentive"];

/// Migrations per instance (instances in name order, as reports come).
fn migrations_of(instance: &str) -> usize {
    match instance {
        "dataset" => 4,
        "portal" | "gtfs" => 2,
        _ => 1,
    }
}

/// A hub whose four MySQL instances point at four new, empty databases (dropped on drop).
struct Fresh {
    hub: Hub,
    admin: Hub,
    dbs: Vec<String>,
}

impl Fresh {
    async fn new() -> Fresh {
        let tag = tsp_testkit::unique("");
        let dbs: Vec<String> = INSTANCES
            .iter()
            .map(|i| format!("tsp_t_{tag}_{i}"))
            .collect();
        let admin = hub(&[]).await;
        let portal = admin.mysql("portal").unwrap();
        for db in &dbs {
            sqlx::query(&format!("CREATE DATABASE `{db}`"))
                .execute(portal.pool())
                .await
                .unwrap();
        }
        let sets: Vec<String> = INSTANCES
            .iter()
            .zip(&dbs)
            .map(|(i, db)| format!("mysql.{i}.database={db}"))
            .collect();
        let refs: Vec<&str> = sets.iter().map(String::as_str).collect();
        Fresh {
            hub: hub(&refs).await,
            admin,
            dbs,
        }
    }

    async fn tables(&self, instance: &str) -> Vec<String> {
        let store = self.hub.mysql(instance).unwrap();
        let mut t: Vec<String> = sqlx::query_scalar::<_, String>("SHOW TABLES")
            .fetch_all(store.pool())
            .await
            .unwrap();
        t.sort();
        t
    }

    async fn drop_all(self) {
        self.hub.shutdown(std::time::Duration::from_secs(1)).await;
        let portal = self.admin.mysql("portal").unwrap();
        for db in &self.dbs {
            let _ = sqlx::query(&format!("DROP DATABASE `{db}`"))
                .execute(portal.pool())
                .await;
        }
    }
}

async fn hub(sets: &[&str]) -> Hub {
    let config = tsp_testkit::config(sets);
    Hub::connect(&config).await.unwrap()
}

#[tokio::test]
async fn a_fresh_database_gets_every_table_and_a_rerun_changes_nothing() {
    let f = Fresh::new().await;
    let first = tsp_mobility::migrations::run_mysql(&f.hub, false)
        .await
        .map_err(|(_, e)| e)
        .unwrap();
    assert_eq!(first.len(), 4);
    for r in &first {
        let n = migrations_of(&r.instance);
        assert_eq!((r.applied.len(), r.already.len()), (n, 0), "{r:?}");
    }
    let mut expected = vec![
        (
            "portal",
            vec![
                "_sqlx_migrations",
                "admin_users",
                "api_keys",
                "system_config",
                "user_preferences",
                "users",
            ],
        ),
        (
            "dataset",
            vec![
                "_sqlx_migrations",
                "payments",
                "reservations",
                "transit_routes",
                "trips",
                "user_activities",
                "user_profiles",
            ],
        ),
        (
            "gtfs",
            vec![
                "_sqlx_migrations",
                "agency",
                "calendar",
                "calendar_dates",
                "feed_info",
                "feed_versions",
                "feeds",
                "routes",
                "shapes",
                "stop_times",
                "stops",
                "trips",
            ],
        ),
        (
            "incentive",
            vec![
                "_sqlx_migrations",
                "challenge_definitions",
                "points_transactions",
                "rewards",
                "user_badges",
                "user_challenges",
            ],
        ),
    ];
    for (instance, tables) in expected.drain(..) {
        assert_eq!(f.tables(instance).await, tables, "{instance}");
    }
    let again = tsp_mobility::migrations::run_mysql(&f.hub, false)
        .await
        .map_err(|(_, e)| e)
        .unwrap();
    for r in &again {
        assert!(r.applied.is_empty(), "{r:?}");
        assert_eq!(r.already.len(), migrations_of(&r.instance));
    }
    // The unique key that makes awarding points idempotent.
    let inc = f.hub.mysql("incentive").unwrap();
    let insert = "INSERT INTO points_transactions (user_id, transaction_type, points, reference_type, reference_id) VALUES (1, 'earn', 10, 'trip', 't-1')";
    sqlx::query(insert).execute(inc.pool()).await.unwrap();
    let dup = sqlx::query(insert).execute(inc.pool()).await.unwrap_err();
    assert!(dup.to_string().contains("Duplicate entry"), "{dup}");
    f.drop_all().await;
}

#[tokio::test]
async fn a_dry_run_reports_without_applying() {
    let f = Fresh::new().await;
    let dry = tsp_mobility::migrations::run_mysql(&f.hub, true)
        .await
        .map_err(|(_, e)| e)
        .unwrap();
    assert!(
        dry.iter()
            .all(|r| r.dry_run && r.applied.len() == migrations_of(&r.instance)),
        "{dry:?}"
    );
    assert_eq!(f.tables("dataset").await, ["_sqlx_migrations"]);
    f.drop_all().await;
}

#[tokio::test]
async fn an_edited_applied_migration_is_refused() {
    let f = Fresh::new().await;
    tsp_mobility::migrations::run_mysql(&f.hub, false)
        .await
        .map_err(|(_, e)| e)
        .unwrap();
    let gtfs = f.hub.mysql("gtfs").unwrap();
    sqlx::query("UPDATE _sqlx_migrations SET checksum = X'00'")
        .execute(gtfs.pool())
        .await
        .unwrap();
    let (done, err) = tsp_mobility::migrations::run_mysql(&f.hub, false)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("mysql.gtfs"), "{text}");
    assert!(text.contains("was changed after it was applied"), "{text}");
    assert_eq!(
        done.len(),
        1,
        "dataset (instances run in name order) ran before gtfs was refused"
    );
    f.drop_all().await;
}

#[tokio::test]
async fn two_concurrent_runs_apply_each_migration_once() {
    let f = Fresh::new().await;
    let sets: Vec<String> = INSTANCES
        .iter()
        .zip(&f.dbs)
        .map(|(i, db)| format!("mysql.{i}.database={db}"))
        .collect();
    let refs: Vec<&str> = sets.iter().map(String::as_str).collect();
    let other = hub(&refs).await;
    let (a, b) = tokio::join!(
        tsp_mobility::migrations::run_mysql(&f.hub, false),
        tsp_mobility::migrations::run_mysql(&other, false)
    );
    let (a, b) = (
        a.map_err(|(_, e)| e).unwrap(),
        b.map_err(|(_, e)| e).unwrap(),
    );
    for (ra, rb) in a.iter().zip(&b) {
        assert_eq!(
            ra.applied.len() + rb.applied.len(),
            migrations_of(&ra.instance),
            "{ra:?} {rb:?}"
        );
    }
    let store = f.hub.mysql("portal").unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(rows as usize, migrations_of("portal"));
    f.drop_all().await;
}
