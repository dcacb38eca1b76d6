//! The learner's working folder for exercises with edited files
//! (`~/labctl-exercises/<part>/<name>/` unless `--dir`): the starter copies
//! go there, and a fingerprint of its files tells `check` when the lab must
//! be rebuilt from them.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::Exercise;

/// `~/labctl-exercises/<part>/<name>`.
pub fn default_dir(id: &str) -> PathBuf {
    super::progress::home().join("labctl-exercises").join(id)
}

/// Copies the starter files into `dir`; with `overwrite` false, files the
/// learner already has are kept. Returns the files copied.
pub fn copy_starters(exercise: &Exercise, dir: &Path, overwrite: bool) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut copied = Vec::new();
    for name in &exercise.spec.edit {
        let to = dir.join(name);
        if overwrite || !to.exists() {
            std::fs::copy(exercise.starter(name), &to)?;
            copied.push(to);
        }
    }
    Ok(copied)
}

/// A fingerprint of the edited files in `dir` (a missing file counts as
/// missing), to tell whether they changed since the lab was built.
pub fn fingerprint(exercise: &Exercise, dir: &Path) -> String {
    let mut hash = Sha256::new();
    for name in &exercise.spec.edit {
        hash.update(name.as_bytes());
        match std::fs::read(dir.join(name)) {
            Ok(bytes) => {
                hash.update((bytes.len() as u64).to_le_bytes());
                hash.update(&bytes);
            }
            Err(_) => hash.update(u64::MAX.to_le_bytes()),
        }
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
