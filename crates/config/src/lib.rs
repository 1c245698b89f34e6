//! Typed, layered configuration for every store tsp-job uses.
//!
//! # Layout
//! - `settings`: the typed configuration ([`Config`] and its sections); each struct declares its
//!   keys (`#[derive(Settings)]`: name, description, type, bounds, default).
//! - [`schema`]: the keys the structs declare, their environment variables, key resolution.
//! - `sources`: reads TOML files (with line numbers), the environment and `--set` into layers.
//! - `validate`: turns the merged layers into a typed [`Config`], reporting every problem at once.
//!
//! Precedence, lowest first: built-in defaults < `default.toml` < `{TSP_ENV}.toml` <
//! `local.toml` < environment < `--set key=value`.
//!
//! Secrets are `secrecy::SecretString`: `Debug` prints `[REDACTED]`, and every rendering of a
//! value (`config show`, problems) masks them.

#![warn(missing_docs, unreachable_pub)]

mod accounts;
mod declare;
mod error;
pub mod exposure;
mod field;
pub mod instances;
mod networks;
mod origin;
mod raw;
pub mod schema;
// Each settings field is a configuration key, and its doc comment is the key's description
// in `docs/configuration.md`: no second copy to drift. Those descriptions are the reference's
// text (`redis[s]://…` is a URL, `tsp_<instance>` a pattern), not rustdoc markup.
#[allow(
    missing_docs,
    rustdoc::broken_intra_doc_links,
    rustdoc::invalid_html_tags
)]
mod settings;
mod sources;
mod validate;

use std::path::PathBuf;

pub use accounts::encode_userinfo;
pub use error::{ConfigError, Problem};
pub use networks::{Network, networks};
pub use origin::Origin;
pub use raw::{MASK, mask_url};
pub use settings::*;
pub use validate::parse_duration_text;

/// Where to read configuration from. Tests build one by hand; the binary uses
/// [`LoadOptions::from_process`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Folder holding `default.toml`, `{env}.toml`, `local.toml`.
    pub config_dir: PathBuf,
    /// `TSP_ENV`; `None` means `development`.
    pub env_name: Option<String>,
    /// The environment variables to read (a snapshot, so tests need not touch the process's).
    pub env: Vec<(String, String)>,
    /// `--set key=value` arguments.
    pub overrides: Vec<String>,
}

impl LoadOptions {
    /// Options from the process: the folder [`find_config_dir`] finds; `TSP_ENV`; all
    /// environment variables.
    pub fn from_process(config_dir: Option<PathBuf>, overrides: Vec<String>) -> Self {
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let (config_dir, _) = find_config_dir(config_dir);
        let env_name = std::env::var("TSP_ENV").ok().filter(|s| !s.is_empty());
        LoadOptions {
            config_dir,
            env_name,
            env,
            overrides,
        }
    }
}

/// The system-wide configuration folder, for installed services (docs/configuration.md).
pub const SYSTEM_CONFIG_DIR: &str = "/etc/tsp-job";

/// The configuration folder, and what chose it: `--config-dir` (`arg`), else `TSP_CONFIG_DIR`,
/// else `./config` when there is one, else [`SYSTEM_CONFIG_DIR`].
pub fn find_config_dir(arg: Option<PathBuf>) -> (PathBuf, &'static str) {
    if let Some(dir) = arg {
        return (dir, "--config-dir");
    }
    if let Some(dir) = std::env::var_os("TSP_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return (PathBuf::from(dir), "TSP_CONFIG_DIR");
    }
    if std::path::Path::new("config").is_dir() {
        return (PathBuf::from("config"), "./config");
    }
    (PathBuf::from(SYSTEM_CONFIG_DIR), "no ./config here")
}

/// Loads and validates the configuration.
///
/// # Errors
/// Every problem found, each with key, masked value and origin.
pub fn load(opts: &LoadOptions) -> Result<Config, ConfigError> {
    let env_name = opts
        .env_name
        .clone()
        .unwrap_or_else(|| "development".to_string());
    let mut layers = sources::Layers::default();
    let mut warnings = Vec::new();
    if !opts.config_dir.is_dir() {
        // A missing folder is fine when everything comes from the environment; say so.
        warnings.push(format!(
            "configuration folder {} does not exist; using defaults and environment only",
            opts.config_dir.display()
        ));
    }
    if env_name.contains(['/', '\\', '.']) {
        return Err(ConfigError {
            problems: vec![Problem {
                key: "TSP_ENV".into(),
                value: Some(env_name),
                origin: Some(Origin::Env {
                    var: "TSP_ENV".into(),
                }),
                message: "must be a plain name such as development or production".into(),
            }],
        });
    }
    layers.add_file(&opts.config_dir.join("default.toml"));
    let env_file = opts.config_dir.join(format!("{env_name}.toml"));
    if opts.env_name.is_some() && opts.config_dir.is_dir() && !env_file.is_file() {
        warnings.push(format!(
            "TSP_ENV={env_name} but {} does not exist",
            env_file.display()
        ));
    }
    layers.add_file(&env_file);
    layers.add_file(&opts.config_dir.join("local.toml"));
    layers.add_env(&opts.env);
    layers.add_overrides(&opts.overrides);
    let mut config =
        validate::build(layers, env_name).map_err(|problems| ConfigError { problems })?;
    config.warnings.extend(warnings);
    let exposed = exposure::check(&config, &opts.config_dir, opts.env_name.is_some())
        .map_err(|problems| ConfigError { problems })?;
    config.warnings.extend(exposed);
    Ok(config)
}

/// One row of the configuration reference: key pattern, type, default, variables, description.
#[derive(Debug, Clone)]
pub struct ReferenceRow {
    /// The dotted key; `<name>` stands for an instance name.
    pub key: String,
    /// The value's type, described.
    pub ty: String,
    /// The built-in default, masked if secret; empty when there is none.
    pub default: String,
    /// Environment variables that set it.
    pub env: Vec<String>,
    /// What it does.
    pub doc: String,
}

/// The configuration reference, generated from the schema (the README's table comes from here).
pub fn reference() -> Vec<ReferenceRow> {
    use schema::{Field, Kind};
    let historical = schema::historical_env();
    let row = |key: String, field: &Field, instance: &str| {
        let mut env: Vec<String> = historical
            .iter()
            .filter(|(_, k)| *k == key)
            .map(|(v, _)| v.clone())
            .collect();
        env.push(schema::generic_env_name(&key));
        if field.ty.is_secret() {
            let files: Vec<String> = env.iter().map(|v| format!("{v}_FILE")).collect();
            env.extend(files);
        }
        let default = (field.default)(instance)
            .map(|d| d.render())
            .unwrap_or_else(|| "—".into());
        ReferenceRow {
            key,
            ty: field.ty.describe(),
            default,
            env,
            doc: field.doc.to_string(),
        }
    };
    let mut rows = Vec::new();
    for kind in Kind::ALL {
        for inst in kind.builtin_instances() {
            rows.push(ReferenceRow {
                key: format!("stores.{}.{inst}.required", kind.name()),
                ty: "true | false".into(),
                default: kind.required_by_default(inst).to_string(),
                env: vec![schema::generic_env_name(&format!(
                    "stores.{}.{inst}.required",
                    kind.name()
                ))],
                doc: schema::REQUIRED_FIELD.doc.into(),
            });
            for field in kind.fields() {
                rows.push(row(
                    format!("{}.{inst}.{}", kind.name(), field.key),
                    field,
                    inst,
                ));
            }
        }
    }
    for (section, fields) in schema::FIXED_SECTIONS.iter() {
        for field in *fields {
            rows.push(row(format!("{section}.{}", field.key), field, ""));
        }
    }
    for field in schema::BATCH_FIELDS.iter() {
        rows.push(row(format!("queue.batch.<type>.{}", field.key), field, ""));
    }
    for field in schema::SCHEDULE_FIELDS.iter() {
        rows.push(row(format!("schedules.<name>.{}", field.key), field, ""));
    }
    rows
}
