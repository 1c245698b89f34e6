//! Bad input: every problem is reported in one run, naming the key, the value and its origin;
//! secrets never appear.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::Path;

use tsp_config::{ConfigError, LoadOptions, load};

fn opts(dir: &Path, env: &[(&str, &str)], sets: &[&str]) -> LoadOptions {
    LoadOptions {
        config_dir: dir.to_path_buf(),
        env_name: None,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        overrides: sets.iter().map(|s| s.to_string()).collect(),
    }
}

const LOCAL_TOML: &str = r#"[mysql.portal]
port = "abc"

[mysql.dataset]
port = 70000

[mysql.gtfs.pool]
min = 20

[mysql.incentive.pool]
acquire_timeout = "0s"

[redis.cache]
connect_timeout = "-5s"
command_timeout = "5 parsecs"

[mongo.cache]
uri = "mongodb//broken"

[mongo.dataset.tls]
mode = "sometimes"

[influx.primary]
api = "v3"

[influx.uis]
api = "v2"

[mysql.portal.tls]
mode = "verify_ca"
ca = "/nonexistent/ca.pem"

[mysql.portal.pool]
mx = 5
"#;

/// (key, origin fragment, message fragment) of every expected problem.
fn expected(dir: &Path) -> Vec<(String, String, &'static str)> {
    let local = dir.join("local.toml").display().to_string();
    let at = |line: usize| format!("{local}:{line}");
    vec![
        (
            "mysql.portal.port".into(),
            at(2),
            "not a number: expected a port 1-65535",
        ),
        (
            "mysql.dataset.port".into(),
            at(5),
            "out of range: expected a port 1-65535",
        ),
        (
            "mysql.gtfs.pool.min".into(),
            at(8),
            "pool.min (20) is greater than pool.max (15)",
        ),
        (
            "mysql.incentive.pool.acquire_timeout".into(),
            at(11),
            "must be greater than zero",
        ),
        (
            "redis.cache.connect_timeout".into(),
            at(14),
            "must be greater than zero",
        ),
        (
            "redis.cache.command_timeout".into(),
            at(15),
            "unknown duration unit `parsecs`",
        ),
        ("mongo.cache.uri".into(), at(18), "malformed URL"),
        (
            "mongo.dataset.tls.mode".into(),
            at(21),
            "unknown value `sometimes`",
        ),
        (
            "influx.primary.api".into(),
            at(24),
            "unknown value `v3`: expected one of v1, v2",
        ),
        (
            "influx.uis.api".into(),
            at(27),
            "the v2 API needs token, org and bucket (missing: token, org, bucket)",
        ),
        (
            "mysql.portal.tls.ca".into(),
            at(31),
            "file not found: /nonexistent/ca.pem",
        ),
        (
            "mysql.portal.pool.mx".into(),
            at(34),
            "unknown key; did you mean `mysql.portal.pool.max`?",
        ),
        (
            "mysql.portal.host".into(),
            "env MYSQL_PORTAL_HOST".into(),
            "empty host for a required store",
        ),
        (
            "redis.cache.db".into(),
            "env TSP__REDIS__CACHE__DB".into(),
            "out of range: expected an integer 0-15",
        ),
        (
            "stores.mongo.cache.required".into(),
            "env TSP__STORES__MONGO__CACHE__REQUIRED".into(),
            "expected true or false",
        ),
        (
            "mysqll.portal.host".into(),
            "env TSP__MYSQLL__PORTAL__HOST".into(),
            "did you mean `mysql.portal.host`?",
        ),
        (
            "health.timeout".into(),
            "env TSP__HEALTH__TIMEOUT".into(),
            "not a duration",
        ),
        (
            "server.listen".into(),
            "--set #1".into(),
            "not an ip:port address",
        ),
        (
            "redis.cache.cluster_nodes".into(),
            "--set #2".into(),
            "`b` is not host:port",
        ),
        (
            "influx.primary.batch.max_points".into(),
            "--set #3".into(),
            "is larger than batch.max_buffer_points",
        ),
        (
            "mysql.portl.password".into(),
            "--set #4".into(),
            "did you mean `mysql.portal`?",
        ),
        (
            "influx.uis.url".into(),
            "--set #5".into(),
            "scheme `ftp` is not one of http, https",
        ),
        (
            "influx.service_monitor.instance".into(),
            "--set #6".into(),
            "no influx instance named `nowhere`",
        ),
    ]
}

fn load_bad(dir: &Path) -> ConfigError {
    std::fs::write(dir.join("local.toml"), LOCAL_TOML).unwrap();
    load(&opts(
        dir,
        &[
            ("MYSQL_PORTAL_HOST", ""),
            ("TSP__REDIS__CACHE__DB", "99"),
            ("TSP__STORES__MONGO__CACHE__REQUIRED", "perhaps"),
            ("TSP__MYSQLL__PORTAL__HOST", "x"),
            ("TSP__HEALTH__TIMEOUT", "abc"),
        ],
        &[
            "server.listen=localhost",
            "redis.cache.cluster_nodes=a:1,b",
            "influx.primary.batch.max_points=500000",
            "mysql.portl.password=hunter2-typo-secret",
            "influx.uis.url=ftp://metrics.example",
            "influx.service_monitor.instance=nowhere",
        ],
    ))
    .expect_err("bad configuration must be refused")
}

#[test]
fn every_problem_is_reported_at_once_with_key_and_origin() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_bad(dir.path());
    let expected = expected(dir.path());
    assert!(expected.len() >= 15);
    for (key, origin, message) in &expected {
        let found = err.problems.iter().find(|p| {
            &p.key == key
                && p.message.contains(message)
                && p.origin
                    .as_ref()
                    .is_some_and(|o| o.to_string().contains(origin.as_str()))
        });
        assert!(
            found.is_some(),
            "no problem for {key} from {origin} saying {message:?}; got:\n{err}"
        );
    }
    assert_eq!(
        err.problems.len(),
        expected.len(),
        "no extra problems expected; got:\n{err}"
    );
    // The rendered report carries the offending values.
    let text = err.to_string();
    assert!(text.contains("mysql.portal.port: not a number"), "{text}");
    assert!(text.contains("[value \"abc\", from"), "{text}");
    assert!(text.contains("[value 70000, from"), "{text}");
}

#[test]
fn secrets_are_masked_in_problems() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_bad(dir.path());
    let text = err.to_string();
    assert!(!text.contains("hunter2"), "{text}");

    let err = load(&opts(
        dir.path(),
        &[
            (
                "TSP__MYSQL__PORTAL__URL",
                "mysql://u:topsecret-pw@host:99999/db",
            ),
            ("MYSQL_DATASET_PASSWORD", "another-secret"),
            ("MYSQL_DATASET_PORT", "x"),
        ],
        &["redis.cache.password"],
    ))
    .unwrap_err();
    let text = format!("{err}\n{err:?}");
    assert!(text.contains("mysql.portal.url: malformed URL"), "{text}");
    assert!(
        text.contains("[value ****, from env TSP__MYSQL__PORTAL__URL]"),
        "{text}"
    );
    assert!(text.contains("--set expects key=value"), "{text}");
    for secret in ["topsecret-pw", "another-secret"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[test]
fn debug_of_a_loaded_config_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let c = load(&opts(
        dir.path(),
        &[
            ("MYSQL_PORTAL_PASSWORD", "pw-portal-123"),
            ("INFLUXDB_TOKEN", "tok-influx-456"),
            ("INFLUXDB_ORG", "o"),
            ("INFLUXDB_BUCKET", "b"),
            ("TSP__REDIS__CACHE__URL", "redis://:pw-redis-789@h:6379/0"),
        ],
        &[],
    ))
    .unwrap();
    let debug = format!("{c:?}");
    for secret in ["pw-portal-123", "tok-influx-456", "pw-redis-789"] {
        assert!(!debug.contains(secret), "{secret} in Debug output");
    }
    let shown: Vec<String> = c
        .shown
        .iter()
        .map(|v| format!("{} {}", v.display, v.json))
        .collect();
    let shown = shown.join("\n");
    for secret in ["pw-portal-123", "tok-influx-456", "pw-redis-789"] {
        assert!(!shown.contains(secret), "{secret} in shown values");
    }
    assert!(shown.contains("redis://:****@h:6379/0"), "{shown}");
}

#[test]
fn toml_syntax_errors_name_file_and_line_without_the_line_text() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("default.toml"),
        "[mysql.portal]\nhost = \"ok\"\npassword = \"unterminated-secret\n",
    )
    .unwrap();
    let err = load(&opts(dir.path(), &[], &[])).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("TOML syntax error"), "{text}");
    assert!(text.contains("default.toml:3"), "{text}");
    assert!(!text.contains("unterminated-secret"), "{text}");
}

#[test]
fn the_shipped_configuration_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut o = opts(&dir, &[], &[]);
    o.env_name = Some("development".into());
    let c = load(&o).unwrap_or_else(|e| panic!("development: {e}"));
    assert_eq!(c.mysql.len(), 4);
    assert_eq!(c.redis.len(), 1);
    assert_eq!(c.mongo.len(), 2);
    assert_eq!(c.influx.len(), 2);
}

#[test]
fn declared_schedules_load_and_bad_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("default.toml"),
        "[schedules.nightly]\ncron = \"0 30 2 * * *\"\ntz = \"Europe/Berlin\"\ntype = \"analytics.rollup\"\n",
    )
    .unwrap();
    let env = [
        ("TSP__SCHEDULES__BEAT__EVERY", "30s"),
        ("TSP__SCHEDULES__BEAT__TYPE", "builtin.noop"),
    ];
    let c = load(&opts(dir.path(), &env, &[])).unwrap();
    assert_eq!(c.schedules.len(), 2);
    let nightly = &c.schedules["nightly"];
    assert_eq!(
        (
            nightly.cron.as_deref(),
            nightly.tz.as_str(),
            nightly.queue.as_str()
        ),
        (Some("0 30 2 * * *"), "Europe/Berlin", "default")
    );
    assert_eq!(c.schedules["beat"].every.as_deref(), Some("30s"));

    let err = load(&opts(
        dir.path(),
        &[],
        &[
            "schedules.nightly.every=1m",
            "schedules.bad.type=builtin.noop",
            "schedules.bad.payload={",
            "schedules.worse.crn=* * * * *",
        ],
    ))
    .unwrap_err();
    let text = err.to_string();
    for says in [
        "schedules.nightly.cron: give either `cron` or `every`",
        "schedules.bad.cron: give either `cron` or `every`",
        "schedules.bad.payload: not JSON",
        "schedules.worse.crn: unknown key; did you mean `schedules.worse.cron`?",
    ] {
        assert!(text.contains(says), "{says} in:\n{text}");
    }
}
