//! What a configuration exposes off this machine: remote stores default to verified TLS; a mode
//! that does not verify is a warning, refused in the production profile unless allowed per
//! instance; the development profile and its passwords are refused off loopback.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use tsp_config::{LoadOptions, TlsMode, load};

/// The project's own profiles, `env` (`None`: TSP_ENV unset), with `sets` on top.
fn opts(env: Option<&str>, sets: &[&str]) -> LoadOptions {
    LoadOptions {
        config_dir: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config"),
        env_name: env.map(str::to_string),
        env: Vec::new(),
        overrides: sets.iter().map(|s| s.to_string()).collect(),
    }
}

fn problems(o: &LoadOptions) -> String {
    load(o).unwrap_err().to_string()
}

#[test]
fn a_remote_store_gets_verified_tls_unless_told_otherwise() {
    let c = load(&opts(
        Some("production"),
        &["mysql.portal.host=db.internal"],
    ))
    .unwrap();
    assert_eq!(c.mysql["portal"].tls.mode, TlsMode::VerifyIdentity);
    assert_eq!(
        c.mysql["dataset"].tls.mode,
        TlsMode::Preferred,
        "loopback keeps its default"
    );
    let shown = c
        .shown
        .iter()
        .find(|v| v.key == "mysql.portal.tls.mode")
        .unwrap();
    assert_eq!(shown.json, "verify_identity");
    let c = load(&opts(Some("production"), &["redis.cache.host=10.1.2.3"])).unwrap();
    assert_eq!(c.redis["cache"].tls.mode, TlsMode::VerifyIdentity);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn tls_that_does_not_verify_is_a_warning_and_refused_in_production_unless_allowed() {
    let sets = [
        "mysql.portal.host=db.internal",
        "mysql.portal.password=its-own-secret",
        "mysql.portal.tls.mode=required",
    ];
    let c = load(&opts(Some("development"), &sets)).unwrap();
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].starts_with("mysql.portal.tls.mode is required for db.internal"),
        "{:?}",
        c.warnings
    );
    let e = problems(&opts(Some("production"), &sets));
    assert!(
        e.contains("mysql.portal.tls.mode") && e.contains("refused in the production profile"),
        "{e}"
    );
    for mode in ["preferred", "disabled"] {
        let m = format!("mysql.portal.tls.mode={mode}");
        let e = problems(&opts(Some("production"), &[sets[0], sets[1], &m]));
        assert!(e.contains(&format!("is {mode} for db.internal")), "{e}");
    }
    let mut allowed = sets.to_vec();
    allowed.push("mysql.portal.tls.allow_insecure=true");
    let c = load(&opts(Some("production"), &allowed)).unwrap();
    assert_eq!(c.warnings.len(), 1, "still said: {:?}", c.warnings);
    // verify_ca checks the chain: accepted.
    let ca = [sets[0], sets[1], "mysql.portal.tls.mode=verify_ca"];
    assert!(
        load(&opts(Some("production"), &ca))
            .unwrap()
            .warnings
            .is_empty()
    );
}

#[test]
fn the_development_profile_and_its_passwords_stay_on_loopback() {
    // TSP_ENV unset: the development profile applies, refused for a remote store or listener.
    let e = problems(&opts(None, &["mysql.portal.host=db.internal"]));
    assert!(
        e.contains("TSP_ENV: not set") && e.contains("mysql.portal.host is db.internal"),
        "{e}"
    );
    assert!(e.contains("TSP_ENV=production"), "says how to choose: {e}");
    let e = problems(&opts(None, &["server.listen=0.0.0.0:8080"]));
    assert!(e.contains("server.listen is 0.0.0.0:8080"), "{e}");
    // Chosen deliberately, it runs (the passwords are another matter, below).
    load(&opts(Some("development"), &["server.listen=0.0.0.0:8080"])).unwrap();
    // On loopback, unset TSP_ENV is the developer's machine: fine.
    load(&opts(None, &[])).unwrap();
    // A development password for a remote store, whatever the profile; never printed.
    let sets = [
        "mysql.portal.host=db.internal",
        "mysql.portal.password=tsp-local-dev",
    ];
    let e = problems(&opts(Some("production"), &sets));
    assert!(
        e.contains("mysql.portal.password: is a password of the development profile"),
        "{e}"
    );
    assert!(!e.contains("tsp-local-dev"), "{e}");
    let e = problems(&opts(Some("development"), &sets[..1]));
    assert!(
        e.contains("mysql.portal.password"),
        "the development profile's own: {e}"
    );
}
