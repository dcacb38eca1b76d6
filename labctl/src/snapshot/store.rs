//! Where snapshots live: `snapshots/<lab>/<experiment>__<name>.snap`, and
//! `.snap.new` beside it for a pending (new or changed) one, as insta does.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::file::SnapshotFile;

/// The result of comparing a fresh snapshot with the committed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Matches,
    /// No committed snapshot yet.
    New,
    Changed {
        old: String,
    },
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {source}")]
pub struct StoreError {
    what: &'static str,
    path: PathBuf,
    source: io::Error,
}

fn err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError { what, path: path.to_path_buf(), source }
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn path(&self, lab: &str, experiment: &str, name: &str) -> PathBuf {
        self.root.join(lab).join(format!("{experiment}__{name}.snap"))
    }

    fn pending_path(snap: &Path) -> PathBuf {
        snap.with_extension("snap.new")
    }

    /// Compares `new` with the committed snapshot; writes a pending file if
    /// they differ and removes a stale one if they match.
    pub fn check(&self, lab: &str, experiment: &str, name: &str, new: &SnapshotFile) -> Result<Outcome, StoreError> {
        let path = self.path(lab, experiment, name);
        let pending = Self::pending_path(&path);
        let outcome = match fs::read_to_string(&path) {
            Ok(text) => {
                let old = SnapshotFile::parse(&text).map(|f| f.normalized()).unwrap_or(text);
                if old == new.normalized() {
                    Outcome::Matches
                } else {
                    Outcome::Changed { old }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Outcome::New,
            Err(e) => return Err(err("cannot read", &path)(e)),
        };
        if outcome == Outcome::Matches {
            let _ = fs::remove_file(&pending);
        } else {
            fs::create_dir_all(pending.parent().expect("has a folder")).map_err(err("cannot create", &self.root))?;
            fs::write(&pending, new.render()).map_err(err("cannot write", &pending))?;
        }
        Ok(outcome)
    }

    /// Every pending snapshot under the store (or one lab of it), sorted.
    pub fn pending(&self, lab: Option<&str>) -> Vec<PathBuf> {
        let dirs: Vec<PathBuf> = match lab {
            Some(lab) => vec![self.root.join(lab)],
            None => fs::read_dir(&self.root)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect(),
        };
        let mut found: Vec<PathBuf> = dirs
            .iter()
            .flat_map(|d| fs::read_dir(d).into_iter().flatten().flatten())
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with(".snap.new"))
            .collect();
        found.sort();
        found
    }

    /// Makes a pending snapshot the committed one (without its assertion line).
    pub fn accept(pending: &Path) -> Result<PathBuf, StoreError> {
        let text = fs::read_to_string(pending).map_err(err("cannot read", pending))?;
        let target = PathBuf::from(pending.to_string_lossy().trim_end_matches(".new"));
        let body = match SnapshotFile::parse(&text) {
            Ok(file) => SnapshotFile { assertion_line: None, ..file }.render(),
            Err(_) => text,
        };
        fs::write(&target, body).map_err(err("cannot write", &target))?;
        fs::remove_file(pending).map_err(err("cannot remove", pending))?;
        Ok(target)
    }

    pub fn reject(pending: &Path) -> Result<(), StoreError> {
        fs::remove_file(pending).map_err(err("cannot remove", pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(contents: &str) -> SnapshotFile {
        SnapshotFile {
            source: "labs/x.lua".into(),
            assertion_line: Some(3),
            expression: None,
            contents: contents.into(),
        }
    }

    #[test]
    fn new_changed_accepted_then_matches() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::new(root.path());
        assert_eq!(store.check("x", "ping", "counters", &snap("a: 1")).unwrap(), Outcome::New);
        let pending = store.pending(None);
        assert_eq!(pending.len(), 1);
        let accepted = Store::accept(&pending[0]).unwrap();
        assert!(!fs::read_to_string(&accepted).unwrap().contains("assertion_line"));
        assert_eq!(store.check("x", "ping", "counters", &snap("a: 1\n\n")).unwrap(), Outcome::Matches);
        assert_eq!(
            store.check("x", "ping", "counters", &snap("a: 2")).unwrap(),
            Outcome::Changed { old: "a: 1".into() }
        );
        assert_eq!(store.pending(Some("x")).len(), 1);
    }
}
