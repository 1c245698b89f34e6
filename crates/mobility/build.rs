//! Embeds the MySQL migrations (`migrations/mysql/<instance>/<version>_<name>.sql`) in the
//! library: `$OUT_DIR/migrations.rs` lists each instance's files, in version order, with their
//! text by `include_str!` (sqlx's `migrate!` did this, at the price of its macro crates).

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/mysql");
    let mut out = String::new();
    let mut instances: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.expect("a readable migrations folder").path())
        .filter(|p| p.is_dir())
        .collect();
    instances.sort();
    for dir in instances {
        let instance = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a UTF-8 folder name");
        let mut files: Vec<(i64, String, String)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("a readable migration file").path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .map(|p| {
                let stem = p
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .expect("a UTF-8 file name");
                let (version, name) = stem
                    .split_once('_')
                    .unwrap_or_else(|| panic!("{}: not <version>_<name>.sql", p.display()));
                let version = version
                    .parse()
                    .unwrap_or_else(|_| panic!("{}: the version is not a number", p.display()));
                (version, name.replace('_', " "), p.display().to_string())
            })
            .collect();
        files.sort();
        if let Some(w) = files.windows(2).find(|w| w[0].0 == w[1].0) {
            panic!("{} and {}: the same version", w[0].2, w[1].2);
        }
        let _ = writeln!(
            out,
            "pub(super) const {}: &[(i64, &str, &str)] = &[",
            instance.to_uppercase()
        );
        for (version, description, path) in files {
            let _ = writeln!(
                out,
                "    ({version}, {description:?}, include_str!({path:?})),"
            );
        }
        out.push_str("];\n");
    }
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("migrations.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
}
