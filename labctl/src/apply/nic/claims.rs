//! Host-wide claim locks, so two labs never take the same device: one
//! folder per device under `/run/labctl/.claims/` (mkdir is atomic), named
//! by bus address (a VF by its PCI address), holding the owner lab's name.
//! A lock whose lab has no state folder any more is stale and ignored.

use std::fs;
use std::path::PathBuf;

use super::NicError;
use crate::model::layout::STATE_DIR;

fn dir(key: &str) -> PathBuf {
    PathBuf::from(STATE_DIR).join(".claims").join(key)
}

/// The lab holding `key`, if that lab still exists.
pub fn owner(key: &str) -> Option<String> {
    let lab = fs::read_to_string(dir(key).join("lab")).ok()?;
    let lab = lab.trim().to_string();
    PathBuf::from(STATE_DIR).join(&lab).is_dir().then_some(lab)
}

/// Takes `key` for `lab`; fails if another live lab holds it.
pub fn acquire(key: &str, lab: &str) -> Result<(), NicError> {
    match owner(key) {
        Some(other) if other != lab => return Err(NicError::Taken { device: key.to_string(), lab: other }),
        Some(_) => return Ok(()),
        None => {}
    }
    let path = dir(key);
    let _ = fs::remove_dir_all(&path); // stale
    fs::create_dir_all(&path).map_err(|source| NicError::Io { what: "cannot create", path: path.clone(), source })?;
    let file = path.join("lab");
    fs::write(&file, lab).map_err(|source| NicError::Io { what: "cannot write", path: file, source })
}

/// Gives `key` back, if `lab` holds it.
pub fn release(key: &str, lab: &str) {
    let held = fs::read_to_string(dir(key).join("lab")).is_ok_and(|owner| owner.trim() == lab);
    if held {
        let _ = fs::remove_dir_all(dir(key));
        // The last lock out leaves no folder behind.
        let _ = fs::remove_dir(PathBuf::from(STATE_DIR).join(".claims"));
    }
}
