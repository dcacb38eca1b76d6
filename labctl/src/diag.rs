//! Diagnostics: what a user did wrong, where, and how to fix it.
//!
//! Both the script stage and validation report problems as [`Diagnostic`]s,
//! so every error a user can make in a lab file reads the same way:
//! `labs/part1.lua:12: error: ...` followed by a `help:` line.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// An error and its causes in one line, skipping a cause its parent already
/// quotes (many library errors say "step 3 failed: `<cause>`" themselves).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}

/// A place in a lab script.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Origin {
    pub file: PathBuf,
    pub line: u32,
}

impl Origin {
    pub fn new(file: impl Into<PathBuf>, line: u32) -> Self {
        Self { file: file.into(), line }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One problem in a lab script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub origin: Origin,
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(origin: Origin, message: impl Into<String>) -> Self {
        Self { origin, message: message.into(), help: None }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: error: {}", self.origin, self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// The candidate nearest to `wanted`, if it is near enough to be a typo of
/// it: for "did you mean ...?" help lines.
pub fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(wanted, c), c))
        .filter(|(distance, c)| *distance <= 2.max(c.len() / 3))
        .min()
        .map(|(_, c)| c)
}

/// All problems found in one script, in file order. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn suggests_a_near_name_only() {
        let names = ["one-ping", "drops", "softirq"];
        assert_eq!(closest("one-pign", names), Some("one-ping"));
        assert_eq!(closest("drop", names), Some("drops"));
        assert_eq!(closest("nosuch", names), None);
    }
}
