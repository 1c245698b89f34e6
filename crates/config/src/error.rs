//! Configuration problems: each names the key, the offending value (secrets masked) and its origin.

use std::fmt;

use crate::origin::Origin;

/// One thing wrong with the configuration.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The dotted key (`mysql.portal.port`), or the file/variable when no key applies.
    pub key: String,
    /// The offending value as written, with secrets masked; `None` when no single value is at fault.
    pub value: Option<String>,
    /// Where the value came from.
    pub origin: Option<Origin>,
    /// What is wrong and, when it helps, what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)?;
        match (&self.value, &self.origin) {
            (Some(v), Some(o)) => write!(f, " [value {v}, from {o}]"),
            (None, Some(o)) => write!(f, " [from {o}]"),
            (Some(v), None) => write!(f, " [value {v}]"),
            (None, None) => Ok(()),
        }
    }
}

/// Every problem found in one load, reported together so one run fixes them all.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    /// Every problem found.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "invalid configuration: {n} problem{}",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}
