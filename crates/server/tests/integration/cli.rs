//! The `tsp-job` binary: configuration commands, health exit codes, and no secret in any output.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::{Duration, Instant};

use crate::common::{closed_port, run, text};

#[test]
fn config_check_reports_every_problem_and_exits_2_without_a_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("local.toml"),
        "[mysql.portal]\nport = \"abc\"\n[mysql.gtfs.pool]\nmin = 99\n[influx.uis]\napi = \"v2\"\n",
    )
    .unwrap();
    let dir_s = dir.path().display().to_string();
    let out = run(
        &[
            "config",
            "check",
            "--config-dir",
            &dir_s,
            "--set",
            "redis.cache.command_timeout=0",
            "--set",
            "mongo.cache.tls.mode=maybe",
            "--set",
            "mysql.portal.pool.mx=3",
            "--set",
            "server.threads=5000",
        ],
        &[
            ("RUST_BACKTRACE", "1"),
            ("MYSQL_DATASET_PORT", "70000"),
            ("MYSQL_INCENTIVE_HOST", ""),
            ("INFLUXDB_URL", "not a url"),
            ("MYSQL_PORTAL_PASSWORD", "pw-never-shown-1"),
        ],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let needles: Vec<String> = [
        format!("mysql.portal.port: not a number: expected a port 1-65535 [value \"abc\", from {dir_s}/local.toml:2]"),
        format!("mysql.gtfs.pool.min: pool.min (99) is greater than pool.max (15) [value 99, from {dir_s}/local.toml:4]"),
    ]
    .into_iter()
    .chain(
        [
            "influx.uis.api: the v2 API needs token, org and bucket",
            "redis.cache.command_timeout: must be greater than zero [value \"0\", from --set #1]",
            "mongo.cache.tls.mode: unknown value `maybe`",
            "mysql.portal.pool.mx: unknown key; did you mean `mysql.portal.pool.max`? [value \"3\", from --set #3]",
            "mysql.dataset.port: out of range: expected a port 1-65535 [value \"70000\", from env MYSQL_DATASET_PORT]",
            "mysql.incentive.host: empty host for a required store [value \"\", from env MYSQL_INCENTIVE_HOST]",
            "influx.primary.url: malformed URL",
            "server.threads: out of range: expected an integer 0-1024 [value \"5000\", from --set #4]",
            "invalid configuration: 10 problems",
        ]
        .map(String::from),
    )
    .collect();
    for needle in &needles {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    assert!(!stderr.contains("pw-never-shown-1"));
    assert!(stdout.is_empty(), "{stdout}");

    let ok = run(&["config", "check"], &[]);
    assert_eq!(ok.status.code(), Some(0), "{:?}", text(&ok));
}

const SECRETS: [&str; 6] = [
    "pw-portal-secret-1",
    "pw-redis-secret-2",
    "tok-influx-secret-3",
    "pw-mongo-secret-4",
    "pw-url-secret-5",
    "pw-file-secret-6",
];

fn secret_env(file: &str) -> Vec<(&'static str, String)> {
    let gtfs = tsp_testkit::config(&[]).mysql["gtfs"].clone();
    vec![
        ("MYSQL_PORTAL_PASSWORD", SECRETS[0].into()),
        ("REDIS_CACHE_PASSWORD", SECRETS[1].into()),
        ("INFLUX_TOKEN", SECRETS[2].into()),
        ("INFLUX_ORG", "org".into()),
        ("INFLUX_BUCKET_UIS", "uis".into()),
        ("MONGO_DATASET_PASSWORD", SECRETS[3].into()),
        ("MONGO_DATASET_USER", "someone".into()),
        (
            "TSP__MYSQL__GTFS__URL",
            format!(
                "mysql://tsp:{}@{}:{}/tsp_gtfs",
                SECRETS[4], gtfs.host, gtfs.port
            ),
        ),
        ("MYSQL_INCENTIVE_PASSWORD_FILE", file.into()),
        ("TSP_LOG", "debug".into()),
    ]
}

fn assert_no_secret(what: &str, s: &str) {
    for secret in SECRETS {
        assert!(!s.contains(secret), "{secret} leaked in {what}:\n{s}");
    }
}

#[test]
fn config_show_masks_every_secret_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, SECRETS[5]).unwrap();
    let env = secret_env(file.to_str().unwrap());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for args in [
        vec!["config", "show"],
        vec!["config", "show", "--origin"],
        vec!["config", "show", "--json"],
        vec!["config", "show", "--json", "--origin"],
    ] {
        let out = run(&args, &env);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert_no_secret(&format!("{args:?}"), &stdout);
        assert_no_secret(&format!("{args:?} stderr"), &stderr);
        assert!(stdout.contains("****"), "{stdout}");
    }
    let out = run(&["config", "show", "--origin"], &env);
    let stdout = text(&out).0;
    assert!(stdout.contains("mysql.portal.password = ****"), "{stdout}");
    assert!(stdout.contains("# env MYSQL_PORTAL_PASSWORD"), "{stdout}");
    let gtfs = tsp_testkit::config(&[]).mysql["gtfs"].clone();
    let masked = format!(
        "mysql.gtfs.url = \"mysql://tsp:****@{}:{}/tsp_gtfs\"",
        gtfs.host, gtfs.port
    );
    assert!(stdout.contains(&masked), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "# env MYSQL_INCENTIVE_PASSWORD_FILE (file {})",
            file.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("mysql.portal.host = \"127.0.0.1\""),
        "{stdout}"
    );
    assert!(stdout.contains("config/development.toml:"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_slice(&run(&["config", "show", "--json"], &env).stdout).unwrap();
    assert_eq!(json["mysql"]["portal"]["pool"]["max"], 10);
    assert_eq!(json["mysql"]["portal"]["password"], "****");
}

#[test]
fn health_json_and_logs_never_carry_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, SECRETS[5]).unwrap();
    let env = secret_env(file.to_str().unwrap());
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("TSP__HEALTH__TIMEOUT", "2s"));
    let out = run(&["health", "--json"], &env);
    let (stdout, stderr) = text(&out);
    // Wrong passwords: portal (required) cannot log in, so the overall status is down.
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let h: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(h["status"], "down");
    let portal = h["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["store"] == "mysql" && i["instance"] == "portal")
        .unwrap();
    assert_eq!(portal["status"], "down");
    assert!(
        portal["error"].as_str().unwrap().contains("Access denied"),
        "{portal}"
    );
    assert_no_secret("health --json", &stdout);
    assert_no_secret("logs at debug level", &stderr);
}

#[test]
fn health_exits_1_only_when_a_required_store_is_down() {
    let port = closed_port().to_string();
    let out = run(
        &["health", "--set", &format!("mysql.gtfs.port={port}")],
        &[],
    );
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0), "gtfs is optional:\n{stdout}");
    assert!(
        stdout.contains("mysql   gtfs        no        DOWN"),
        "{stdout}"
    );

    let started = Instant::now();
    let out = run(
        &[
            "health",
            "--set",
            &format!("redis.cache.port={port}"),
            "--set",
            "health.timeout=2s",
        ],
        &[],
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let (stdout, _) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "redis.cache is required:\n{stdout}"
    );
    assert!(
        stdout.contains("redis   cache       yes       DOWN"),
        "{stdout}"
    );
    assert!(stdout.contains("overall: DOWN"), "{stdout}");

    // The same store made optional: exit 0.
    let out = run(
        &[
            "health",
            "--set",
            &format!("redis.cache.port={port}"),
            "--set",
            "stores.redis.cache.required=false",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).0);
}

#[test]
fn config_reference_covers_every_key_and_the_readme_carries_it() {
    let out = run(&["config", "reference"], &[]);
    let reference = text(&out).0;
    assert!(
        reference.contains(
            "| `mysql.portal.pool.max` | integer 1-1000 | `10` | `TSP__MYSQL__PORTAL__POOL__MAX` |"
        ),
        "{reference}"
    );
    assert!(
        reference.contains(
            "`MYSQL_PORTAL_PASSWORD` `TSP__MYSQL__PORTAL__PASSWORD` `MYSQL_PORTAL_PASSWORD_FILE`"
        ),
        "{reference}"
    );
    assert!(reference.contains("`INFLUX_BUCKET_UIS`"));
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/configuration.md"
    ))
    .unwrap();
    assert!(
        doc.contains(reference.trim()),
        "docs/configuration.md's reference table is out of date: regenerate it with `tsp-job config reference`"
    );
}

#[test]
fn moments_that_are_not_times_are_refused_before_any_work() {
    for args in [
        &["restore", "some-set", "--until", "yesterday"][..],
        &["restore", "some-set", "--until", "2026-13-01 00:00:00"],
        &["jobs", "rerun", "--completed-since", "2026-12-01T25:00:00Z"],
    ] {
        let out = run(args, &[]);
        let (_, err) = text(&out);
        let value = args[args.len() - 1];
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(args[args.len() - 2]) && err.contains(value) && err.contains("RFC 3339"),
            "{args:?}: {err}"
        );
    }
}

/// `--version` and `version --json` say what the binary is, with no configuration at all.
#[test]
fn the_binary_says_what_it_is() {
    let out = run(&["--version"], &[("TSP_CONFIG_DIR", "/nonexistent")]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some(concat!("tsp-job ", env!("CARGO_PKG_VERSION")))
    );
    let labels = [
        "revision: ",
        "source date: ",
        "compiler: rustc ",
        "features: ",
    ];
    assert_eq!(lines.clone().count(), labels.len(), "{stdout}");
    for (line, label) in lines.zip(labels) {
        assert!(
            line.starts_with(label) && line.len() > label.len(),
            "{stdout}"
        );
    }
    let out = run(
        &["version", "--json"],
        &[("TSP_CONFIG_DIR", "/nonexistent")],
    );
    let v: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    for key in ["revision", "source_date", "rustc"] {
        assert!(!v[key].as_str().unwrap().is_empty(), "{key}: {v}");
    }
    // Integration tests build with the package's features, so they know which to expect.
    let features = if cfg!(feature = "mongodb-srv") {
        "mongodb-srv"
    } else {
        "none"
    };
    assert_eq!(v["features"], features, "{v}");
}

/// The configuration folder: `TSP_CONFIG_DIR`, else `./config` where there is one, else
/// `/etc/tsp-job`; `config show` names it and what chose it.
#[test]
fn the_configuration_folder_is_found_and_named() {
    let out = run(&["config", "show"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let named = format!(
        "# configuration folder: {} (TSP_CONFIG_DIR)",
        crate::common::config_dir().display()
    );
    assert!(stdout.contains(&named), "{stdout}");
    let show_in = |dir: &std::path::Path| {
        let out = crate::common::tsp_job(&[])
            .env_remove("TSP_CONFIG_DIR")
            .current_dir(dir)
            .args(["config", "show"])
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        stdout
    };
    let here = tempfile::tempdir().unwrap();
    let stdout = show_in(here.path());
    assert!(
        stdout.contains("# configuration folder: /etc/tsp-job (no ./config here)"),
        "{stdout}"
    );
    std::fs::create_dir(here.path().join("config")).unwrap();
    let stdout = show_in(here.path());
    assert!(
        stdout.contains("# configuration folder: config (./config)"),
        "{stdout}"
    );
}

/// Shell completions and the manual page come from the command line itself: every shell's
/// script names the subcommands (bash's parses), and the page is roff with every subcommand.
#[test]
fn completions_and_the_manual_page_cover_every_subcommand() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(&["completions", shell], &[]);
        let (script, stderr) = text(&out);
        assert!(out.status.success(), "{shell}: {stderr}");
        for sub in ["simulate", "worker", "backup", "completions"] {
            assert!(script.contains(sub), "{shell}: no {sub}");
        }
        if shell == "bash" {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("tsp-job.bash");
            std::fs::write(&file, &script).unwrap();
            let check = std::process::Command::new("bash")
                .arg("-n")
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                check.status.success(),
                "{}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
    }
    let out = run(&["man"], &[]);
    let (page, _) = text(&out);
    assert!(out.status.success());
    assert!(page.contains(".TH tsp-job 1"), "{page}");
    for sub in ["simulate", "worker", "migrate", "restore"] {
        assert!(page.contains(sub), "man: no {sub}");
    }
}

/// Options that take one of a set say which in `-h` (`--help` describes each), and refuse anything else before any
/// work, naming the choices.
#[test]
fn options_with_a_set_of_values_list_them_and_refuse_others() {
    for (args, listed) in [
        (&["migrate", "-h"][..], "[possible values: up, status]"),
        (
            &["jobs", "list", "-h"],
            "waiting, delayed, active, completed, dead",
        ),
        (&["backup", "create", "-h"], "mysql, redis, mongo, influx"),
        (&["restore", "-h"], "mysql, redis, mongo, influx"),
        (&["admins", "create", "-h"], "viewer, operator, admin"),
        (&["schedule", "add", "-h"], "skip, catch-up"),
    ] {
        let out = run(args, &[]);
        let (help, _) = text(&out);
        assert!(out.status.success(), "{args:?}");
        let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains(listed), "{args:?}: {help}");
    }
    let out = run(&["backup", "create", "--stores", "mysql,postgres"], &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid value 'postgres'"), "{stderr}");
    assert!(stderr.contains("mysql, redis, mongo, influx"), "{stderr}");
}

/// A list key takes a TOML array or a comma-separated list from `--set` (both read as the same
/// list: `validate::parse`'s `host_port_lists`); items that are not host:port text are refused.
#[test]
fn set_takes_a_list_key_as_a_toml_array_or_a_comma_list() {
    let check = |value: &str| {
        let set = format!("redis.cache.cluster_nodes={value}");
        let out = run(&["--set", &set, "config", "check"], &[]);
        (out.status.code(), text(&out).1)
    };
    assert_eq!(check(r#"["127.0.0.1:7001", "127.0.0.1:7002"]"#).0, Some(0));
    assert_eq!(check("127.0.0.1:7001,127.0.0.1:7002").0, Some(0));
    let (code, stderr) = check("[7001]");
    assert_eq!(code, Some(2));
    assert!(stderr.contains("list items must be strings"), "{stderr}");
    let (code, stderr) = check(r#"["127.0.0.1:70001"]"#);
    assert_eq!(code, Some(2), "{stderr}");
}
