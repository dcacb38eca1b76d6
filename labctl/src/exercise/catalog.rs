//! Finding exercises: every folder holding an `exercise.lua` under a root
//! (`labs/exercises/`), named `<part>/<name>` by its last two folders.

use std::path::{Path, PathBuf};

use super::FILE;

/// The exercises folder: `$LABCTL_EXERCISES`, else `labs/exercises` in the
/// current folder, else the one of the repository labctl was built from.
pub fn default_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("LABCTL_EXERCISES") {
        return PathBuf::from(dir);
    }
    let here = PathBuf::from("labs/exercises");
    if here.is_dir() {
        return here;
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../labs/exercises");
    if built.is_dir() {
        built
    } else {
        here
    }
}

/// Every exercise folder under `root` (or `root` itself), sorted by id.
pub fn folders(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    collect(root, &mut found)?;
    found.sort_by_key(|dir| super::id_of(dir));
    Ok(found)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if dir.join(FILE).is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        }
    }
    Ok(())
}

/// The folder of exercise `id` (`part2/rp-filter`) under `root`; a path to
/// an exercise folder works too.
pub fn find(root: &Path, id: &str) -> Option<PathBuf> {
    let as_path = Path::new(id);
    if as_path.join(FILE).is_file() {
        return Some(as_path.to_path_buf());
    }
    Some(root.join(id)).filter(|dir| dir.join(FILE).is_file())
}

/// The ids under `root`, for "did you mean" help.
pub fn ids(root: &Path) -> Vec<String> {
    folders(root).unwrap_or_default().iter().map(|d| super::id_of(d)).collect()
}
