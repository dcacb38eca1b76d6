//! The learner's progress: one small JSON file,
//! `$XDG_STATE_HOME/labctl/exercises.json` (`~/.local/state/labctl/`),
//! written to a temporary file and renamed, so a kill never corrupts it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Started,
    Done,
}

/// What the learner did with one exercise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub status: Status,
    /// How many hints `hint` has shown.
    #[serde(default)]
    pub hints_seen: usize,
}

/// The exercise whose lab is up now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Active {
    pub id: String,
    /// The exercise's folder.
    pub dir: PathBuf,
    /// The learner's working folder (exercises with edited files).
    pub work: Option<PathBuf>,
    /// The fingerprint of the edited files the lab was built from.
    #[serde(default)]
    pub built_from: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub active: Option<Active>,
    #[serde(default)]
    pub exercises: BTreeMap<String, Record>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProgressError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a progress file ({source}); move it away to start afresh")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// `$XDG_STATE_HOME/labctl/exercises.json`, or under `~/.local/state`.
pub fn default_path() -> PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".local/state"));
    state.join("labctl").join("exercises.json")
}

pub fn home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"))
}

impl Progress {
    /// The progress in `path`; empty if there is no file yet.
    pub fn load(path: &Path) -> Result<Progress, ProgressError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                serde_json::from_str(&text).map_err(|source| ProgressError::Parse { path: path.into(), source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Progress::default()),
            Err(source) => Err(ProgressError::Read { path: path.into(), source }),
        }
    }

    /// Writes a temporary file beside `path`, then renames it over `path`.
    pub fn save(&self, path: &Path) -> Result<(), ProgressError> {
        let write = |source| ProgressError::Write { path: path.into(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        let temporary = path.with_extension(format!("json.{}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(self).expect("progress serializes");
        std::fs::write(&temporary, text + "\n").map_err(write)?;
        std::fs::rename(&temporary, path).map_err(write)
    }

    pub fn status(&self, id: &str) -> Option<Status> {
        self.exercises.get(id).map(|r| r.status)
    }

    /// Marks `id` started (a done exercise stays done).
    pub fn start(&mut self, id: &str) {
        self.exercises.entry(id.to_string()).or_insert(Record { status: Status::Started, hints_seen: 0 });
    }

    pub fn finish(&mut self, id: &str) {
        self.exercises.entry(id.to_string()).or_insert(Record { status: Status::Done, hints_seen: 0 }).status =
            Status::Done;
    }

    pub fn hints_seen(&self, id: &str) -> usize {
        self.exercises.get(id).map_or(0, |r| r.hints_seen)
    }

    pub fn saw_hint(&mut self, id: &str, seen: usize) {
        self.start(id);
        let record = self.exercises.get_mut(id).expect("just started");
        record.hints_seen = record.hints_seen.max(seen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_done_exercise_stays_done_when_started_again() {
        let mut p = Progress::default();
        p.start("part1/default-route");
        p.finish("part1/default-route");
        p.start("part1/default-route");
        assert_eq!(p.status("part1/default-route"), Some(Status::Done));
    }

    #[test]
    fn hints_seen_never_goes_down() {
        let mut p = Progress::default();
        p.saw_hint("a/b", 2);
        p.saw_hint("a/b", 1);
        assert_eq!(p.hints_seen("a/b"), 2);
    }

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labctl/exercises.json");
        let mut p = Progress::default();
        p.finish("part2/rp-filter");
        p.save(&path).unwrap();
        assert_eq!(Progress::load(&path).unwrap(), p);
        let names: Vec<_> =
            std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("exercises.json")]);
    }
}
