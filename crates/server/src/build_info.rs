//! What this binary is: version, git revision, the date of its source, the compiler (set by
//! `build.rs`). `tsp-job --version`, `tsp-job version [--json]` and the `tsp_build_info` gauge
//! say it.

use serde::Serialize;

/// The package version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision built (`-modified` when the checkout had changes), or `unknown`.
pub const REVISION: &str = env!("TSP_BUILD_REVISION");
/// The date of the source built (`SOURCE_DATE_EPOCH`, else the commit's), or `unknown`.
pub const DATE: &str = env!("TSP_BUILD_DATE");
/// `rustc -V` of the compiler that built it.
pub const RUSTC: &str = env!("TSP_BUILD_RUSTC");
/// The cargo features it was built with (`mongodb-srv`), comma-separated, or `none`.
pub const FEATURES: &str = env!("TSP_BUILD_FEATURES");

/// `--version`'s long form.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\nrevision: ",
    env!("TSP_BUILD_REVISION"),
    "\nsource date: ",
    env!("TSP_BUILD_DATE"),
    "\ncompiler: ",
    env!("TSP_BUILD_RUSTC"),
    "\nfeatures: ",
    env!("TSP_BUILD_FEATURES"),
);

/// The build facts, as `version --json` prints them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BuildInfo {
    pub version: &'static str,
    pub revision: &'static str,
    pub source_date: &'static str,
    pub rustc: &'static str,
    pub features: &'static str,
}

/// This binary's build facts.
pub fn build_info() -> BuildInfo {
    BuildInfo {
        version: VERSION,
        revision: REVISION,
        source_date: DATE,
        rustc: RUSTC,
        features: FEATURES,
    }
}

/// The gauge that says what runs where.
pub const BUILD_INFO: &str = "tsp_build_info";

/// Sets `tsp_build_info{version, revision, rustc, features} 1`, so a dashboard shows what runs
/// where.
pub fn record_build_info() {
    metrics::gauge!(
        BUILD_INFO,
        "version" => VERSION,
        "revision" => REVISION,
        "rustc" => RUSTC,
        "features" => FEATURES
    )
    .set(1.0);
}
