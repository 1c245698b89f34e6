//! Precedence of every source, the historical variables, `_FILE` secrets and `--set`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::Path;

use secrecy::ExposeSecret;
use tsp_config::{InfluxApi, LoadOptions, Origin, load, schema};

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write config file");
}

fn opts(dir: &Path, env: &[(&str, &str)], sets: &[&str]) -> LoadOptions {
    LoadOptions {
        config_dir: dir.to_path_buf(),
        env_name: Some("staging".into()),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        overrides: sets.iter().map(|s| s.to_string()).collect(),
    }
}

fn origin_of(c: &tsp_config::Config, key: &str) -> Origin {
    c.shown
        .iter()
        .find(|v| v.key == key)
        .unwrap_or_else(|| panic!("{key} not shown"))
        .origin
        .clone()
}

#[test]
fn each_source_overrides_the_one_below() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Six keys; key N is set by the first N sources, so each shows the winner among N layers.
    write(
        d,
        "default.toml",
        "[mysql.portal.pool]\nmax = 11\n[mysql.dataset.pool]\nmax = 12\n[mysql.gtfs.pool]\nmax = 13\n[mysql.incentive.pool]\nmax = 14\n",
    );
    write(
        d,
        "staging.toml",
        "[mysql.dataset.pool]\nmax = 22\n[mysql.gtfs.pool]\nmax = 23\n[mysql.incentive.pool]\nmax = 24\n",
    );
    write(
        d,
        "local.toml",
        "[mysql.gtfs.pool]\nmax = 33\n\n[mysql.incentive.pool]\nmax = 34\n",
    );
    let c = load(&opts(
        d,
        &[
            ("TSP__MYSQL__INCENTIVE__POOL__MAX", "44"),
            ("TSP__REDIS__CACHE__DB", "4"),
        ],
        &["redis.cache.db=5"],
    ))
    .unwrap();
    // Built-in default only.
    assert_eq!(c.mongo["cache"].pool.max, 10);
    assert_eq!(origin_of(&c, "mongo.cache.pool.max"), Origin::Default);
    // default.toml over built-in.
    assert_eq!(c.mysql["portal"].pool.max, 11);
    assert_eq!(
        origin_of(&c, "mysql.portal.pool.max"),
        Origin::File {
            path: d.join("default.toml"),
            line: 2
        }
    );
    // {TSP_ENV}.toml over default.toml.
    assert_eq!(c.mysql["dataset"].pool.max, 22);
    // local.toml over {TSP_ENV}.toml.
    assert_eq!(c.mysql["gtfs"].pool.max, 33);
    assert_eq!(
        origin_of(&c, "mysql.gtfs.pool.max"),
        Origin::File {
            path: d.join("local.toml"),
            line: 2
        }
    );
    // Environment over local.toml.
    assert_eq!(c.mysql["incentive"].pool.max, 44);
    assert_eq!(
        origin_of(&c, "mysql.incentive.pool.max"),
        Origin::Env {
            var: "TSP__MYSQL__INCENTIVE__POOL__MAX".into()
        }
    );
    // --set over environment.
    assert_eq!(c.redis["cache"].db, 5);
    assert_eq!(origin_of(&c, "redis.cache.db"), Origin::Cli { arg: 1 });
    assert_eq!(c.env, "staging");
}

#[test]
fn generic_variable_wins_over_historical_name() {
    let dir = tempfile::tempdir().unwrap();
    let c = load(&opts(
        dir.path(),
        &[
            ("MYSQL_PORTAL_HOST", "old.example"),
            ("TSP__MYSQL__PORTAL__HOST", "new.example"),
        ],
        &[],
    ))
    .unwrap();
    assert_eq!(c.mysql["portal"].host, "new.example");
}

/// A value of the right type for a key, unique per variable.
fn sample_value(key: &str, n: usize) -> String {
    if key.ends_with(".port") {
        return (20000 + n).to_string();
    }
    if key.ends_with(".url") {
        return format!("http://influx{n}.example:8086");
    }
    if key.ends_with(".timeout") {
        return format!("{}ms", 1000 + n);
    }
    format!("value-{n}")
}

#[test]
fn every_historical_variable_lands_on_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let table = schema::historical_env();
    assert!(
        table.len() >= 45,
        "the original service's variables are all mapped"
    );
    let env: Vec<(String, String)> = table
        .iter()
        .enumerate()
        .map(|(n, (var, key))| (var.clone(), sample_value(key, n)))
        .collect();
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let c = load(&opts(dir.path(), &env_refs, &[])).unwrap();
    for (n, (var, key)) in table.iter().enumerate() {
        let shown = c
            .shown
            .iter()
            .find(|v| &v.key == key)
            .unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(
            shown.origin,
            Origin::Env { var: var.clone() },
            "{var} → {key}"
        );
        let expected = sample_value(key, n);
        if !key.ends_with("password") && !key.ends_with("token") {
            let rendered = shown.json.to_string();
            assert!(
                rendered.contains(expected.trim_end_matches("ms")),
                "{var}: {key} = {rendered}, expected {expected}"
            );
        }
    }
    // And the typed values, one of each family.
    assert_eq!(
        c.mysql["gtfs"].port,
        20000
            + table
                .iter()
                .position(|(v, _)| v == "MYSQL_GTFS_PORT")
                .unwrap() as u16
    );
    assert!(c.mysql["incentive"].database.starts_with("value-"));
    assert!(c.mongo["dataset"].username.starts_with("value-"));
    assert!(
        c.redis["cache"]
            .password
            .expose_secret()
            .starts_with("value-")
    );
    assert_eq!(
        c.influx["primary"].api,
        InfluxApi::V2,
        "a token selects the v2 API"
    );
    assert!(c.influx["uis"].bucket.starts_with("value-"));
    assert!(c.influx["uis"].url.starts_with("http://influx"));
    assert!(c.service_monitor.measurement.starts_with("value-"));
    assert!(c.influx_tags.datacenter.starts_with("value-"));
    assert!(c.influx_tags.project.starts_with("value-"));
    assert!(c.influx_tags.stage.starts_with("value-"));
}

#[test]
fn file_variants_read_secrets_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("pw");
    std::fs::write(&secret_file, "s3cr3t-from-file\n").unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "tok-from-file").unwrap();
    let c = load(&opts(
        dir.path(),
        &[
            ("MYSQL_PORTAL_PASSWORD_FILE", secret_file.to_str().unwrap()),
            ("TSP__INFLUX__UIS__TOKEN_FILE", token_file.to_str().unwrap()),
            ("TSP__INFLUX__UIS__ORG", "org"),
            ("TSP__INFLUX__UIS__BUCKET", "b"),
        ],
        &[],
    ))
    .unwrap();
    assert_eq!(
        c.mysql["portal"].password.expose_secret(),
        "s3cr3t-from-file"
    );
    assert_eq!(c.influx["uis"].token.expose_secret(), "tok-from-file");
    assert!(matches!(
        origin_of(&c, "mysql.portal.password"),
        Origin::EnvFile { var, .. } if var == "MYSQL_PORTAL_PASSWORD_FILE"
    ));
}

#[test]
fn file_variant_errors_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(&opts(
        dir.path(),
        &[
            ("MYSQL_PORTAL_PASSWORD", "x"),
            ("MYSQL_PORTAL_PASSWORD_FILE", "/nonexistent/pw"),
            ("MYSQL_DATASET_PASSWORD_FILE", "/nonexistent/pw2"),
            ("MYSQL_GTFS_HOST_FILE", "/etc/hostname"),
        ],
        &[],
    ))
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("both MYSQL_PORTAL_PASSWORD and MYSQL_PORTAL_PASSWORD_FILE are set"),
        "{text}"
    );
    assert!(
        text.contains("mysql.dataset.password: cannot read the secret file"),
        "{text}"
    );
    assert!(
        text.contains("MYSQL_GTFS_HOST_FILE: the _FILE form is only accepted"),
        "{text}"
    );
}

#[test]
fn set_overrides_and_added_instances() {
    let dir = tempfile::tempdir().unwrap();
    let c = load(&opts(
        dir.path(),
        &[],
        &[
            "mysql.reporting.host=reports.internal",
            "mysql.reporting.pool.max=3",
            "mysql.reporting.pool.min=1",
            "stores.mysql.reporting.required=true",
            "influx.tags.stage=prod",
        ],
    ))
    .unwrap();
    let r = &c.mysql["reporting"];
    assert_eq!(r.host, "reports.internal");
    assert_eq!((r.pool.min, r.pool.max), (1, 3));
    assert!(r.required);
    assert_eq!(r.database, "tsp_reporting");
    assert_eq!(c.influx_tags.stage, "prod");
    // The defaults of the issue.
    assert_eq!(c.mysql["incentive"].charset, "utf8");
    assert_eq!(c.mysql["portal"].charset, "utf8mb4");
    assert_eq!(c.mysql["gtfs"].pool.idle_timeout.as_secs(), 60);
    assert_eq!(
        (c.mysql["dataset"].pool.min, c.mysql["dataset"].pool.max),
        (5, 20)
    );
    assert_eq!(c.mongo["dataset"].pool.max_idle.as_secs(), 60);
    assert_eq!(c.service_monitor.bucket, "service-monitoring");
    assert_eq!(c.service_monitor.timeout.as_millis(), 2000);
    assert!(c.mysql["portal"].required && !c.mysql["gtfs"].required && !c.influx["uis"].required);
}

#[test]
fn url_forms_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let c = load(&opts(
        dir.path(),
        &[
            (
                "TSP__MYSQL__PORTAL__URL",
                "mysql://u:p%40ss@db.internal:3307/portal",
            ),
            (
                "TSP__REDIS__CACHE__URL",
                "rediss://:pw@cache.internal:6380/2",
            ),
            (
                "TSP__MONGO__CACHE__URI",
                "mongodb://u:pw@m1:27017,m2:27017/?replicaSet=rs0",
            ),
        ],
        &[],
    ))
    .unwrap();
    assert!(c.mysql["portal"].url.is_some());
    let shown = tsp_config::mask_url("mysql://u:p%40ss@db.internal:3307/portal");
    assert_eq!(shown, "mysql://u:****@db.internal:3307/portal");
}

#[test]
fn toml_file_keys_read_secrets_and_paths_relative_to_their_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("secrets")).unwrap();
    std::fs::write(d.join("secrets/app"), "app pw\n").unwrap();
    std::fs::write(d.join("secrets/mig"), "mig pw").unwrap();
    std::fs::write(d.join("ca.pem"), "not checked here").unwrap();
    write(
        d,
        "staging.toml",
        "[mysql.portal]\nuser = \"app\"\npassword_file = \"secrets/app\"\n\
         migrate.user = \"mig\"\nmigrate.password_file = \"secrets/mig\"\n\
         tls = { mode = \"verify_identity\", ca = \"ca.pem\" }\n",
    );
    // Started anywhere: the paths are the config folder's.
    let c = load(&opts(d, &[], &[])).unwrap();
    let p = &c.mysql["portal"];
    assert_eq!(p.password.expose_secret(), "app pw");
    assert_eq!(p.migrate.password.expose_secret(), "mig pw");
    assert_eq!(p.tls.ca.as_deref(), Some(d.join("ca.pem").as_path()));
    match origin_of(&c, "mysql.portal.password") {
        Origin::SecretFile { path, line, .. } => {
            assert_eq!((path, line), (d.join("secrets/app"), 3));
        }
        other => panic!("{other:?}"),
    }
    // The migrator's view swaps the accounts; the app's is untouched.
    let m = c.as_migrator();
    let mp = &m.mysql["portal"];
    assert_eq!(
        (mp.user.as_str(), mp.password.expose_secret()),
        ("mig", "mig pw")
    );
    assert_eq!(
        (
            mp.migrate.user.as_str(),
            mp.migrate.password.expose_secret()
        ),
        ("app", "app pw")
    );
    assert_eq!(c.mysql["portal"].user, "app");
    // Without a migrator account, both views are the same.
    assert_eq!(m.mysql["dataset"].user, c.mysql["dataset"].user);

    // A missing secret file and a migrator password without a user are named.
    write(
        d,
        "staging.toml",
        "[mysql.portal]\npassword_file = \"secrets/none\"\n[redis.cache]\nmigrate.password = \"x\"\n\
         [influx.primary]\ntls.ca = \"ca.pem\"\n",
    );
    let e = load(&opts(d, &[], &[])).unwrap_err().to_string();
    assert!(
        e.contains("mysql.portal.password_file") && e.contains("cannot read the secret file"),
        "{e}"
    );
    assert!(e.contains("redis.cache.migrate.user"), "{e}");
    assert!(
        e.contains("influx.primary.tls.ca") && e.contains("not https"),
        "{e}"
    );
    assert!(!e.contains("mig pw") && !e.contains("app pw"), "{e}");
}
