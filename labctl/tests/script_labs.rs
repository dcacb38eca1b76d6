//! Every lab under labs/ reads, validates and plans cleanly; its plan is
//! snapshotted so a change to a lab or to planning shows up in review.

use std::path::{Path, PathBuf};

/// Runs from the workspace root so paths (and messages) read `labs/...`.
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the crate sits in the workspace")
}

fn lua_files(dir: &Path, found: &mut Vec<PathBuf>) {
    // Exercises are more than labs: tests/exercises.rs proves them.
    if dir.join("exercise.lua").is_file() {
        return;
    }
    for entry in std::fs::read_dir(dir).expect("readable dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            lua_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "lua") {
            found.push(path);
        }
    }
}

#[test]
fn every_lab_plans_cleanly() {
    std::env::set_current_dir(workspace_root()).expect("cd to the workspace root");
    let mut labs = Vec::new();
    lua_files(Path::new("labs"), &mut labs);
    labs.sort();
    assert!(!labs.is_empty(), "no labs found");
    for lab in labs {
        let (_, plan) = labctl::load_and_plan(&lab).unwrap_or_else(|e| panic!("{}:\n{e}", lab.display()));
        // labs/examples/star.lua -> examples__star
        let name = lab
            .strip_prefix("labs")
            .unwrap()
            .with_extension("")
            .to_string_lossy()
            .trim_start_matches('/')
            .replace('/', "__");
        insta::with_settings!({ input_file => &lab, omit_expression => true }, {
            insta::assert_snapshot!(name, plan.to_string());
        });
    }
}
