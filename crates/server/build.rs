//! Build facts the binary reports (`tsp-job version`, `tsp_build_info`): the git revision, the
//! date of the build's source and the compiler. Reproducible: the date is `SOURCE_DATE_EPOCH`
//! when set, else the commit's; "unknown" where a fact cannot be found (a source tarball).

use std::path::Path;
use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// `YYYY-MM-DD` of a Unix time (the civil-from-days algorithm: no date crate at build time).
fn date_of(epoch: i64) -> String {
    let z = epoch.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn main() {
    let revision = std::env::var("TSP_GIT_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            let rev = output("git", &["rev-parse", "--short=12", "HEAD"])?;
            let dirty = output("git", &["status", "--porcelain", "--untracked-files=no"]);
            Some(if dirty.is_some() {
                format!("{rev}-modified")
            } else {
                rev
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let date = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|e| e.parse::<i64>().ok())
        .or_else(|| output("git", &["log", "-1", "--format=%ct"])?.parse().ok())
        .map(date_of)
        .unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let compiler = output(&rustc, &["-V"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TSP_BUILD_REVISION={revision}");
    println!("cargo:rustc-env=TSP_BUILD_DATE={date}");
    println!("cargo:rustc-env=TSP_BUILD_RUSTC={compiler}");
    // Cargo tells a build script the package's enabled features as CARGO_FEATURE_<NAME>.
    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| {
            Some(
                k.strip_prefix("CARGO_FEATURE_")?
                    .to_lowercase()
                    .replace('_', "-"),
            )
        })
        .collect();
    features.sort();
    let features = if features.is_empty() {
        "none".into()
    } else {
        features.join(",")
    };
    println!("cargo:rustc-env=TSP_BUILD_FEATURES={features}");
    println!("cargo:rerun-if-env-changed=TSP_GIT_REVISION");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // A new commit or checkout changes these; a path that does not exist would rerun every build.
    for p in [
        "../../.git/HEAD",
        "../../.git/index",
        "../../.git/refs/heads",
    ] {
        if Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}
