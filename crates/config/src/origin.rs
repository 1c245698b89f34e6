//! Where a configuration value came from, so every error and `config show --origin` can say it.

use std::fmt;
use std::path::PathBuf;

/// The source of one effective configuration value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default in the schema.
    Default,
    /// A TOML file, with the 1-based line of the value.
    File {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
    },
    /// An environment variable.
    Env {
        /// The variable's name.
        var: String,
    },
    /// A file named by a `…_FILE` environment variable (secrets).
    EnvFile {
        /// The variable's name.
        var: String,
        /// The file it names.
        path: PathBuf,
    },
    /// A secret file named by a `…_file` key in a TOML file.
    SecretFile {
        /// The secret file.
        path: PathBuf,
        /// The TOML file naming it.
        config: PathBuf,
        /// The 1-based line of the `…_file` key there.
        line: usize,
    },
    /// `--set key=value` on the command line.
    Cli {
        /// Which `--set`, counting from 1.
        arg: usize,
    },
}

impl Origin {
    /// The file a secret was read from, if it was (`…_FILE` variables, `…_file` keys): what a
    /// credential reload re-reads.
    pub fn secret_file(&self) -> Option<&PathBuf> {
        match self {
            Origin::EnvFile { path, .. } | Origin::SecretFile { path, .. } => Some(path),
            _ => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => write!(f, "built-in default"),
            Origin::File { path, line } => write!(f, "{}:{}", path.display(), line),
            Origin::Env { var } => write!(f, "env {var}"),
            Origin::EnvFile { var, path } => write!(f, "env {var} (file {})", path.display()),
            Origin::SecretFile { path, config, line } => write!(
                f,
                "file {} (named at {}:{line})",
                path.display(),
                config.display()
            ),
            Origin::Cli { arg } => write!(f, "--set #{arg}"),
        }
    }
}
