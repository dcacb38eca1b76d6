//! A running lab's state directory, `/run/labctl/<lab>/`:
//!
//! - `lab.json`: the lab's model, written before anything is created;
//! - `journal`: one plan step per line, appended *before* the step runs, so
//!   after a crash at any point `down` knows everything that may exist;
//! - `ready`: present once `up` finished.
//!
//! The directory is created with `mkdir`, which doubles as the lock that
//! stops two `up`s of the same lab name.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::layout::{self, STATE_DIR};
use crate::model::Lab;
use crate::plan::Step;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("lab {0:?} is already running")]
    AlreadyRunning(String),
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: io::Error },
    #[error("{path} is corrupt: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
}

/// What `lab.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recorded {
    pub lab: Lab,
    /// The script, as an absolute path.
    pub script: PathBuf,
    /// The `labctl up` process that built the lab.
    pub pid: u32,
}

pub struct LabState {
    dir: PathBuf,
    name: String,
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StateError + 'a {
    move |source| StateError::Io { what, path: path.to_path_buf(), source }
}

impl LabState {
    fn dir_of(name: &str) -> PathBuf {
        layout::lab_state_dir(name)
    }

    /// Claims the lab's name and records its model.
    pub fn create(recorded: &Recorded) -> Result<Self, StateError> {
        let name = recorded.lab.name.clone();
        let dir = Self::dir_of(&name);
        fs::create_dir_all(STATE_DIR).map_err(io_err("cannot create", Path::new(STATE_DIR)))?;
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(StateError::AlreadyRunning(name)),
            Err(e) => return Err(io_err("cannot create", &dir)(e)),
        }
        let state = Self { dir, name };
        let path = state.dir.join("lab.json");
        let json = serde_json::to_vec_pretty(recorded).expect("the model serializes");
        fs::write(&path, json).map_err(io_err("cannot write", &path))?;
        Ok(state)
    }

    /// The state of a lab that is running (or half built), if any.
    pub fn open(name: &str) -> Option<Self> {
        let dir = Self::dir_of(name);
        dir.is_dir().then(|| Self { dir, name: name.to_string() })
    }

    /// Names of all labs with a state directory, sorted.
    pub fn list() -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(STATE_DIR)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            // `.claims` holds the host-wide device locks (apply/nic/claims.rs).
            .filter(|name| !name.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    /// The lab's state folder, for scratch files of its own.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn recorded(&self) -> Result<Recorded, StateError> {
        let path = self.dir.join("lab.json");
        let bytes = fs::read(&path).map_err(io_err("cannot read", &path))?;
        serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt { path, source })
    }

    /// Appends steps to the journal, before they run.
    pub fn journal<'a>(&self, steps: impl IntoIterator<Item = &'a Step>) -> Result<(), StateError> {
        let path = self.dir.join("journal");
        let mut buf = Vec::new();
        for step in steps {
            serde_json::to_writer(&mut buf, step).expect("steps serialize");
            buf.push(b'\n');
        }
        let mut file =
            OpenOptions::new().create(true).append(true).open(&path).map_err(io_err("cannot open", &path))?;
        file.write_all(&buf).map_err(io_err("cannot write", &path))
    }

    /// Every step ever journaled. A line torn by a crash mid-write is skipped:
    /// its step had not started.
    pub fn journaled(&self) -> Result<Vec<Step>, StateError> {
        let path = self.dir.join("journal");
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("cannot read", &path)(e)),
        };
        Ok(text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect())
    }

    pub fn mark_ready(&self) -> Result<(), StateError> {
        let path = self.dir.join("ready");
        fs::write(&path, b"").map_err(io_err("cannot write", &path))
    }

    pub fn is_ready(&self) -> bool {
        self.dir.join("ready").exists()
    }

    /// Forgets the lab; call once everything in the journal is gone.
    pub fn remove(self) -> Result<(), StateError> {
        fs::remove_dir_all(&self.dir).map_err(io_err("cannot remove", &self.dir))
    }
}
