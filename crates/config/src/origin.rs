//! Where a configuration value came from, so every error and `config show --origin` can say it.

use std::fmt;
use std::path::PathBuf;

/// The source of one effective configuration value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default in the schema.
    Default,
    /// A TOML file, with the 1-based line of the value.
    File { path: PathBuf, line: usize },
    /// An environment variable.
    Env { var: String },
    /// A file named by a `…_FILE` environment variable (secrets).
    EnvFile { var: String, path: PathBuf },
    /// `--set key=value` on the command line.
    Cli { arg: usize },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => write!(f, "built-in default"),
            Origin::File { path, line } => write!(f, "{}:{}", path.display(), line),
            Origin::Env { var } => write!(f, "env {var}"),
            Origin::EnvFile { var, path } => write!(f, "env {var} (file {})", path.display()),
            Origin::Cli { arg } => write!(f, "--set #{arg}"),
        }
    }
}
