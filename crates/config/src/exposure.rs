//! What a configuration exposes beyond this machine, judged once it is valid: a store reached
//! over the network without verifying its certificate, the development profile or its
//! passwords used off loopback. Refusals become problems of the load; the rest, warnings that
//! `config check`, `config show` and `health` repeat (docs/store-security.md#tls-modes).

use std::collections::BTreeSet;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use crate::error::Problem;
use crate::settings::{Config, TlsSettings, is_loopback_host};

/// The profile whose refusals are strictest.
pub const PRODUCTION: &str = "production";

/// One store as the checks see it.
struct Store<'a> {
    prefix: String,
    host: &'a str,
    tls: &'a TlsSettings,
    passwords: Vec<&'a SecretString>,
}

fn stores(config: &Config) -> Vec<Store<'_>> {
    let mut out = Vec::new();
    // The three kinds' settings differ in type, not in the fields read here.
    macro_rules! each {
        ($kind:literal, $map:expr) => {
            for (name, s) in $map {
                out.push(Store {
                    prefix: format!("{}.{name}", $kind),
                    host: &s.host,
                    tls: &s.tls,
                    passwords: vec![&s.password, &s.migrate.password],
                });
            }
        };
    }
    each!("mysql", &config.mysql);
    each!("redis", &config.redis);
    each!("mongo", &config.mongo);
    out
}

/// The passwords the development profile ships (`config/development.toml`): any value of a
/// key named `password`.
fn development_passwords(config_dir: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(config_dir.join("development.toml")).unwrap_or_default();
    let Ok(doc) = text.parse::<toml_edit::DocumentMut>() else {
        return BTreeSet::new();
    };
    let mut found = BTreeSet::new();
    collect(doc.as_table(), &mut found);
    found
}

fn collect(table: &toml_edit::Table, found: &mut BTreeSet<String>) {
    for (key, item) in table.iter() {
        if let Some(t) = item.as_table() {
            collect(t, found);
        } else if key == "password"
            && let Some(v) = item.as_str()
            && !v.is_empty()
        {
            found.insert(v.to_string());
        }
    }
}

fn problem(key: &str, message: String) -> Problem {
    Problem {
        key: key.into(),
        value: None,
        origin: None,
        message,
    }
}

/// The checks. `env_set`: whether `TSP_ENV` chose the profile (unset, it is the development
/// one by default). Returns the warnings, or every refusal.
pub(crate) fn check(
    config: &Config,
    config_dir: &Path,
    env_set: bool,
) -> Result<Vec<String>, Vec<Problem>> {
    let mut warnings = Vec::new();
    let mut problems = Vec::new();
    let remote: Vec<Store<'_>> = stores(config)
        .into_iter()
        .filter(|s| !s.host.is_empty() && !is_loopback_host(s.host))
        .collect();
    let listen_remote = !config.server.listen.ip().is_loopback();
    if !env_set && (!remote.is_empty() || listen_remote) {
        let what = match remote.first() {
            Some(s) => format!("{}.host is {}", s.prefix, s.host),
            None => format!("server.listen is {}", config.server.listen),
        };
        problems.push(problem(
            "TSP_ENV",
            format!(
                "not set, so the development profile (config/development.toml) applies, but {what}: \
                 the development profile is for this machine only. Choose a profile: \
                 TSP_ENV=production (config/production.toml) or your own; TSP_ENV=development \
                 uses the development profile deliberately"
            ),
        ));
    }
    let dev = development_passwords(config_dir);
    for s in &remote {
        if s.passwords.iter().any(|p| dev.contains(p.expose_secret())) {
            problems.push(problem(
                &format!("{}.password", s.prefix),
                format!(
                    "is a password of the development profile, for {}, which is not loopback: \
                     give the store its own (a *_FILE variable keeps it out of files)",
                    s.host
                ),
            ));
        }
        if s.tls.mode.verifies() {
            continue;
        }
        let key = format!("{}.tls.mode", s.prefix);
        let says = format!(
            "{key} is {} for {}, which is not loopback: the server's certificate is not checked, \
             so anyone on the path can pose as it (verify_identity checks it)",
            s.tls.mode.name(),
            s.host
        );
        if config.env == PRODUCTION && !s.tls.allow_insecure {
            problems.push(problem(
                &key,
                format!(
                    "{says}; refused in the production profile unless {}.tls.allow_insecure = true",
                    s.prefix
                ),
            ));
        } else {
            warnings.push(says);
        }
    }
    for (name, s) in &config.influx {
        let host = url::Url::parse(&s.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        if s.url.starts_with("http://") && !host.is_empty() && !is_loopback_host(&host) {
            warnings.push(format!(
                "influx.{name}.url is plain http to {host}, which is not loopback: credentials \
                 and points travel unencrypted (use https)"
            ));
        }
    }
    if problems.is_empty() {
        Ok(warnings)
    } else {
        Err(problems)
    }
}
