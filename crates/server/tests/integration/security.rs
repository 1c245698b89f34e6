//! The secure profile (`scripts/services.sh up --secure`, `config/secure.toml`,
//! docs/store-security.md): every store over verified TLS with authentication, the app accounts held
//! to data changes, the client-certificate account, MariaDB encrypted at rest, and awkward
//! passwords through URLs and error paths without leaking.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use crate::common;

use std::path::PathBuf;

use mongodb::bson::{Document, doc};
use secrecy::ExposeSecret;
use tsp_config::Config;
use tsp_hub::Hub;
use tsp_mobility::sandbox::Sandbox;

fn secure_options(sets: &[&str]) -> tsp_config::LoadOptions {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    tsp_testkit::load_options_for("secure", &sets)
}

fn secure_config(sets: &[&str]) -> Config {
    tsp_config::load(&secure_options(sets)).unwrap_or_else(|e| panic!("secure configuration: {e}"))
}

fn pki(file: &str) -> String {
    let path: PathBuf = tsp_testkit::config_dir()
        .join("../.data/secure/pki")
        .join(file);
    path.display().to_string()
}

/// Every configured password, the app's and the migrator's, of every instance.
fn passwords(config: &Config) -> Vec<String> {
    let accounts = config
        .mysql
        .values()
        .map(|s| (&s.password, &s.migrate))
        .chain(config.redis.values().map(|s| (&s.password, &s.migrate)))
        .chain(config.mongo.values().map(|s| (&s.password, &s.migrate)))
        .chain(config.influx.values().map(|s| (&s.password, &s.migrate)));
    let mut all = Vec::new();
    for (app, migrator) in accounts {
        all.extend([app, &migrator.password].map(|p| p.expose_secret().to_string()));
    }
    all.retain(|p| !p.is_empty());
    all
}

/// `text` holds none of `secrets` in any of the forms an encoder writes.
fn assert_no_secret(text: &str, secrets: &[String]) {
    for s in secrets {
        // Every local password is a random part then a fixed awkward tail, which is no secret
        // by itself; the random part is, and every encoding of the password carries it as is.
        let random = s.split(' ').next().unwrap_or(s);
        assert!(!text.contains(random), "a secret leaked into: {text}");
    }
}

fn assert_all_up(report: &tsp_hub::HubHealth) {
    for s in &report.instances {
        assert_eq!(
            s.status,
            tsp_hub::Status::Up,
            "{}.{}: {:?}",
            s.store,
            s.instance,
            s.error
        );
    }
}

#[tokio::test]
async fn every_store_answers_over_verified_tls_with_the_app_account() {
    let config = secure_config(&[]);
    let hub = Hub::connect(&config).await.expect("hub");
    assert_all_up(&hub.health().await);
    // MySQL says the session is encrypted, for the password account and the certificate one.
    for instance in ["portal", "incentive"] {
        let store = hub.mysql(instance).unwrap();
        let (_, version): (String, String) =
            sqlx::query_as("SHOW SESSION STATUS LIKE 'Ssl_version'")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert!(version.starts_with("TLSv1."), "{instance}: {version:?}");
    }
    hub.shutdown(std::time::Duration::from_secs(2)).await;
}

#[tokio::test]
async fn plain_connections_and_an_untrusted_ca_are_refused() {
    let wrong_ca = pki("client.pem");
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "mysql without TLS",
            vec![
                "mysql.portal.tls.mode=disabled".into(),
                "mysql.portal.tls.ca=".into(),
            ],
        ),
        (
            "mysql with another CA",
            vec![format!("mysql.portal.tls.ca={wrong_ca}")],
        ),
        (
            "redis without TLS",
            vec![
                "redis.cache.tls.mode=disabled".into(),
                "redis.cache.tls.ca=".into(),
            ],
        ),
        (
            "redis with another CA",
            vec![format!("redis.cache.tls.ca={wrong_ca}")],
        ),
        (
            "mongo without TLS",
            vec![
                "mongo.cache.tls.mode=disabled".into(),
                "mongo.cache.tls.ca=".into(),
            ],
        ),
        (
            "mongo with another CA",
            vec![format!("mongo.cache.tls.ca={wrong_ca}")],
        ),
        (
            "influx over http",
            vec![
                "influx.primary.url=http://localhost:8087".into(),
                "influx.primary.tls.ca=".into(),
            ],
        ),
        (
            "influx with another CA",
            vec![format!("influx.primary.tls.ca={wrong_ca}")],
        ),
        (
            "the certificate account without its certificate",
            vec![
                "mysql.incentive.tls.cert=".into(),
                "mysql.incentive.tls.key=".into(),
            ],
        ),
    ];
    for (what, sets) in cases {
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let config = secure_config(&sets);
        let hub = Hub::connect(&config).await.expect("hub");
        let report = hub.health().await;
        let target = if what.starts_with("the certificate") {
            ("mysql", "incentive")
        } else {
            let store = what.split(' ').next().unwrap();
            let instance = match store {
                "mysql" => "portal",
                "influx" => "primary",
                _ => "cache",
            };
            (store, instance)
        };
        let s = report
            .instances
            .iter()
            .find(|s| s.store == target.0 && s.instance == target.1)
            .unwrap();
        assert_eq!(s.status, tsp_hub::Status::Down, "{what} was accepted");
        // The other instances still answer: only the misconfigured one is refused.
        let up = report
            .instances
            .iter()
            .filter(|s| s.status == tsp_hub::Status::Up)
            .count();
        assert_eq!(
            up,
            report.instances.len() - 1,
            "{what}: {:?}",
            report.instances
        );
        let error = s.error.clone().unwrap_or_default();
        assert_no_secret(&error, &passwords(&config));
        hub.shutdown(std::time::Duration::from_secs(1)).await;
    }
}

/// What the app account is refused and the migrator is allowed, on each store. Run in a sandbox
/// the migrator made.
#[tokio::test]
async fn the_app_accounts_change_data_only_and_the_migrators_change_schemas() {
    let sandbox = Sandbox::create(&secure_options(&[]))
        .await
        .expect("sandbox");
    let app = &sandbox.hub;
    let config = app.config().clone();
    let migrator = Hub::connect(&config.as_migrator())
        .await
        .expect("migrator hub");
    let secrets = passwords(&config);

    // MySQL: data yes; DROP TABLE and CREATE INDEX no, for the app only.
    let db = app.mysql("portal").unwrap();
    sqlx::query("INSERT INTO users (id, email, display_name) VALUES (1, 'a@example.org', 'A')")
        .execute(db.pool())
        .await
        .expect("the app inserts rows");
    for ddl in [
        "DROP TABLE users",
        "CREATE INDEX users_name ON users (display_name)",
    ] {
        let e = db
            .timed("ddl", sqlx::query(ddl).execute(db.pool()))
            .await
            .expect_err(ddl)
            .to_string();
        assert!(e.contains("denied"), "{ddl}: {e}");
        assert_no_secret(&e, &secrets);
    }
    let admin = migrator.mysql("portal").unwrap();
    sqlx::query("CREATE INDEX users_name ON users (display_name)")
        .execute(admin.pool())
        .await
        .expect("the migrator creates an index");

    // Redis: keys under the prefix yes; FLUSHALL, KEYS, CONFIG and other prefixes no.
    let redis = app.redis("cache").unwrap();
    let mut conn = redis.conn().await.unwrap();
    let own = format!("{}probe", redis.key_prefix());
    let _: () = redis::cmd("SET")
        .arg(&own)
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let refused: [(&str, &[&str]); 4] = [
        ("FLUSHALL", &[]),
        ("KEYS", &["*"]),
        ("CONFIG", &["GET", "maxmemory"]),
        ("SET", &["elsewhere:probe", "1"]),
    ];
    for (cmd, args) in refused {
        let e = redis::cmd(cmd)
            .arg(args)
            .query_async::<redis::Value>(&mut conn)
            .await
            .expect_err(cmd);
        assert_eq!(e.code(), Some("NOPERM"), "{cmd}: {e}");
    }
    let mut admin = migrator.redis("cache").unwrap().conn().await.unwrap();
    let _: String = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory")
        .query_async::<Vec<String>>(&mut admin)
        .await
        .map(|v| v.join(" "))
        .expect("the migrator reads the configuration");

    // MongoDB: documents yes; dropping a collection and creating an index no.
    let mongo = app.mongo("dataset").unwrap();
    let coll = mongo.database().collection::<Document>("trip_trajectories");
    coll.insert_one(doc! {"tripId": "t1"})
        .await
        .expect("the app inserts");
    let e = mongo
        .timed("drop", coll.drop())
        .await
        .expect_err("drop")
        .to_string();
    assert!(e.contains("not authorized"), "{e}");
    let index = mongodb::IndexModel::builder().keys(doc! {"x": 1}).build();
    let e = mongo
        .timed("create_index", coll.create_index(index.clone()))
        .await
        .expect_err("create_index")
        .to_string();
    assert!(e.contains("not authorized"), "{e}");
    let admin = migrator.mongo("dataset").unwrap();
    admin
        .timed(
            "create_index",
            admin
                .database()
                .collection::<Document>("trip_trajectories")
                .create_index(index),
        )
        .await
        .expect("the migrator creates an index");

    // InfluxDB: writes and reads yes; dropping the database no.
    let influx = app.influx("primary").unwrap();
    let target = influx.default_target();
    influx
        .write_body(&target, bytes::Bytes::from_static(b"probe v=1\n"))
        .await
        .expect("the app writes");
    influx
        .query_v1(&target, "SELECT count(v) FROM probe")
        .await
        .expect("the app reads");
    let e = influx
        .query_v1("", &format!("DROP DATABASE \"{target}\""))
        .await
        .expect_err("drop database")
        .to_string();
    assert!(e.contains("not authorized"), "{e}");

    migrator.shutdown(std::time::Duration::from_secs(2)).await;
    sandbox.dispose().await;
}

/// A marker written through the app account, then looked for in the server's files: absent on
/// the secure server (tables and binary log encrypted), present on the development server (the
/// same search finds plaintext where there is some).
#[tokio::test]
async fn mariadb_keeps_tables_and_binary_log_encrypted_at_rest() {
    let secure = found_on_disk(secure_options(&[])).await;
    assert_eq!(
        secure,
        (false, false),
        "plaintext on the secure server's disk (table, binlog)"
    );
    let plain = found_on_disk(tsp_testkit::load_options_for("development", &[])).await;
    assert_eq!(
        plain,
        (true, true),
        "the search finds plaintext on an unencrypted server"
    );
}

/// Whether a fresh marker shows up in (the table's file, the binary log).
async fn found_on_disk(options: tsp_config::LoadOptions) -> (bool, bool) {
    let sandbox = Sandbox::create(&options).await.expect("sandbox");
    let marker = tsp_testkit::unique("plaintext-marker-");
    let db = sandbox.hub.mysql("portal").unwrap();
    sqlx::query("INSERT INTO users (id, email, display_name) VALUES (7, ?, 'Marker')")
        .bind(format!("{marker}@example.org"))
        .execute(db.pool())
        .await
        .unwrap();
    // The table's pages written to its file now, as a checkpoint would later.
    let migrator = Hub::connect(&sandbox.hub.config().as_migrator())
        .await
        .unwrap();
    let admin = migrator.mysql("portal").unwrap();
    let mut conn = admin.pool().acquire().await.unwrap();
    sqlx::query("FLUSH TABLES users FOR EXPORT")
        .execute(&mut *conn)
        .await
        .unwrap();
    let (datadir, binlog): (String, String) =
        sqlx::query_as("SELECT @@datadir, @@log_bin_basename")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    let table = PathBuf::from(&datadir)
        .join(db.database_name())
        .join("users.ibd");
    let in_table = contains(&table, &marker);
    sqlx::query("UNLOCK TABLES")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    let binlog = PathBuf::from(binlog);
    let dir = binlog.parent().unwrap().to_path_buf();
    let stem = binlog.file_name().unwrap().to_string_lossy().into_owned();
    let in_binlog = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&stem))
        .any(|e| contains(&e.path(), &marker));
    migrator.shutdown(std::time::Duration::from_secs(1)).await;
    sandbox.dispose().await;
    (in_table, in_binlog)
}

fn contains(path: &std::path::Path, marker: &str) -> bool {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes.windows(marker.len()).any(|w| w == marker.as_bytes())
}

/// The local passwords end in `p@ss:w/rd?#%+é`: given as connection URLs, percent-encoded,
/// every driver decodes them back; a wrong one is refused without echoing either.
#[tokio::test]
async fn awkward_passwords_work_in_urls_and_never_show_in_errors() {
    let config = secure_config(&[]);
    let m = &config.mysql["portal"];
    let r = &config.redis["cache"];
    let g = &config.mongo["cache"];
    let enc = |p: &secrecy::SecretString| tsp_config::encode_userinfo(p.expose_secret());
    let urls = [
        format!(
            "mysql.portal.url=mysql://{}:{}@localhost:3307/tsp_portal",
            m.user,
            enc(&m.password)
        ),
        format!(
            "redis.cache.url=rediss://{}:{}@localhost:6380/0",
            r.username,
            enc(&r.password)
        ),
        format!(
            "mongo.cache.uri=mongodb://{}:{}@localhost:27018/?authSource=admin&directConnection=true",
            g.username,
            enc(&g.password)
        ),
    ];
    let sets: Vec<&str> = urls.iter().map(String::as_str).collect();
    let hub = Hub::connect(&secure_config(&sets)).await.expect("hub");
    assert_all_up(&hub.health().await);
    hub.shutdown(std::time::Duration::from_secs(1)).await;

    // Wrong passwords, awkward too, in the URLs and in the plain keys.
    let wrong = "wr0ng p@ss:w/rd?#%+é!*'()";
    let w = tsp_config::encode_userinfo(wrong);
    let urls = [
        format!(
            "mysql.portal.url=mysql://{}:{w}@localhost:3307/tsp_portal",
            m.user
        ),
        format!(
            "redis.cache.url=rediss://{}:{w}@localhost:6380/0",
            r.username
        ),
        format!(
            "mongo.cache.uri=mongodb://{}:{w}@localhost:27018/?authSource=admin",
            g.username
        ),
        format!("mongo.dataset.password={wrong}"),
        format!("influx.primary.password={wrong}"),
        format!("mysql.dataset.password={wrong}"),
    ];
    let sets: Vec<&str> = urls.iter().map(String::as_str).collect();
    let config = secure_config(&sets);
    let hub = Hub::connect(&config).await.expect("hub");
    let report = hub.health().await;
    let down: Vec<String> = report
        .instances
        .iter()
        .filter(|s| s.status == tsp_hub::Status::Down)
        .map(|s| format!("{}.{}", s.store, s.instance))
        .collect();
    assert_eq!(
        down,
        [
            "mysql.dataset",
            "mysql.portal",
            "redis.cache",
            "mongo.cache",
            "mongo.dataset",
            "influx.primary"
        ],
    );
    let text = format!("{report:?} {}", serde_json::to_string(&report).unwrap());
    let mut secrets = passwords(&config);
    secrets.push(wrong.to_string());
    assert_no_secret(&text, &secrets);
    hub.shutdown(std::time::Duration::from_secs(1)).await;
}

/// `POST /admin/reload` and `config reload` on the development profile: a secret file with a
/// wrong password is refused (409, naming the instance, the old password stays in use and the
/// service keeps answering), the right one again is taken; the CLI checks before it signals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_refuse_a_wrong_secret_and_keep_the_old_one() {
    let site = common::Site::new(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("mysql-portal");
    let right = site.sandbox.hub.config().mysql["portal"]
        .password
        .expose_secret()
        .to_string();
    std::fs::write(&secret, &right).unwrap();
    let file = secret.display().to_string();
    let env = [
        ("TSP__MYSQL__PORTAL__PASSWORD_FILE", file.as_str()),
        ("TSP_LOG", "info"),
    ];
    let mut sets: Vec<&str> = site.sandbox.overrides.iter().map(String::as_str).collect();
    // Reloads here come from the requests, not from a poll.
    sets.push("secrets.poll_interval=1h");
    let server = tokio::task::block_in_place(|| common::Server::start(&sets, &env));
    let name = site.operator(tsp_mobility::auth::Role::Admin).await;
    let login = serde_json::json!({"username": name, "password": common::PASSWORD});
    let (code, body) = tokio::task::block_in_place(|| server.post("/auth/login", &login));
    assert_eq!(code, 200, "{body}");
    let token: serde_json::Value = serde_json::from_str(&body).unwrap();
    let server = server.with_credential(token["token"].as_str().unwrap().to_string());

    let reload = |server: &common::Server| {
        let (code, body) =
            tokio::task::block_in_place(|| server.post("/admin/reload", &serde_json::json!({})));
        (
            code,
            serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        )
    };
    let outcome = |v: &serde_json::Value, store: &str, instance: &str| {
        v["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["store"] == store && r["instance"] == instance)
            .map(|r| r["outcome"].as_str().unwrap().to_string())
            .unwrap()
    };
    let (code, v) = reload(&server);
    assert_eq!(
        (code, outcome(&v, "mysql", "portal")),
        (200, "unchanged".into()),
        "{v}"
    );

    let wrong = "n0t the p@ss:w/rd?#%+é";
    std::fs::write(&secret, wrong).unwrap();
    let (code, v) = reload(&server);
    assert_eq!(
        (code, outcome(&v, "mysql", "portal")),
        (409, "refused".into()),
        "{v}"
    );
    assert!(v.to_string().contains("Access denied"), "{v}");
    assert_no_secret(&v.to_string(), &[wrong.to_string(), right.clone()]);
    let (code, body) = tokio::task::block_in_place(|| server.get("/health"));
    assert_eq!(code, 200, "the old password stays in use: {body}");
    // The CLI tries the file's password, says it is refused and signals nothing.
    let cli = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        for s in &site.sandbox.overrides {
            all.extend(["--set", s.as_str()]);
        }
        tokio::task::block_in_place(|| common::run(&all, &env))
    };
    let out = cli(&["config", "reload", "--pid", &server.child.id().to_string()]);
    let (stdout, stderr) = common::text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("mysql.portal") && stderr.contains("nothing signalled"),
        "{stderr}"
    );
    assert_no_secret(
        &format!("{stdout}{stderr}"),
        &[wrong.to_string(), right.clone()],
    );

    std::fs::write(&secret, &right).unwrap();
    // SIGHUP to the server: it reloads (a process without the handler would die of it, and the
    // request below would fail).
    let out = cli(&["config", "reload", "--pid", &server.child.id().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{:?}", common::text(&out));
    let (code, v) = reload(&server);
    assert_eq!(
        (code, outcome(&v, "mysql", "portal")),
        (200, "unchanged".into()),
        "{v}"
    );
    site.done().await;
}

/// Backups and their restore check on the secure profile: made and restored by the migrator
/// accounts (over TLS, `mariadb-dump` included), never by the app's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_run_as_the_migrator_over_tls() {
    let sandbox = Sandbox::create(&secure_options(&[])).await.unwrap();
    common::seed_users(&sandbox.hub, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().display().to_string();
    let cli = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        for s in &sandbox.overrides {
            all.extend(["--set", s.as_str()]);
        }
        let out = tokio::task::block_in_place(|| common::run(&all, &[("TSP_ENV", "secure")]));
        let (stdout, stderr) = common::text(&out);
        assert!(out.status.success(), "{args:?}: {stdout}{stderr}");
        assert_no_secret(
            &format!("{stdout}{stderr}"),
            &passwords(sandbox.hub.config()),
        );
        stdout
    };
    let manifest: serde_json::Value =
        serde_json::from_str(&cli(&["backup", "create", "--to", &to, "--json"])).unwrap();
    let set = manifest["id"].as_str().unwrap().to_string();
    let verified = cli(&["backup", "verify", &set, "--from", &to, "--restore-check"]);
    assert!(
        verified.contains("every count matches the manifest"),
        "{verified}"
    );
    sandbox.dispose().await;
}
