//! The bad-script corpus: every script in fixtures/bad/ has one mistake
//! (or a few, to show they are all reported at once). Each must fail before
//! planning, with file:line diagnostics; what the user reads is snapshotted.

use std::path::{Path, PathBuf};

use labctl::script::ScriptError;

/// Runs from the workspace root so messages read `fixtures/bad/x.lua:3`.
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the crate sits in the workspace")
}

#[test]
fn every_bad_script_is_rejected_with_file_and_line() {
    std::env::set_current_dir(workspace_root()).expect("cd to the workspace root");
    // Only the top level: fixtures/bad/lib/ holds modules the scripts require.
    let mut scripts: Vec<PathBuf> = std::fs::read_dir("fixtures/bad")
        .expect("fixtures/bad exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "lua"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 30, "the corpus has {} scripts", scripts.len());

    // Every script is checked before failing, so one run lists every problem.
    let mut problems = Vec::new();
    for script in scripts {
        let diagnostics = match labctl::load_and_plan(&script) {
            Ok(_) => {
                problems.push(format!("{} was accepted", script.display()));
                continue;
            }
            Err(ScriptError::Invalid(diagnostics)) => diagnostics,
            Err(e) => {
                problems.push(format!("{}: {e}", script.display()));
                continue;
            }
        };
        for d in &diagnostics.0 {
            if !d.origin.file.starts_with("fixtures/bad") || d.origin.line == 0 {
                problems.push(format!("{}: no file:line in {d}", script.display()));
            }
        }
        let name = script.file_stem().unwrap().to_string_lossy().into_owned();
        insta::with_settings!({ input_file => &script, omit_expression => true }, {
            insta::assert_snapshot!(name, diagnostics.to_string());
        });
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Bad exercise files: every folder under fixtures/bad/exercises/ holds an
/// exercise.lua with mistakes in `exercise {}`, `check()` or `edited()`.
/// Each is rejected with file:line diagnostics before anything exists.
#[test]
fn every_bad_exercise_is_rejected_with_file_and_line() {
    std::env::set_current_dir(workspace_root()).expect("cd to the workspace root");
    let mut folders: Vec<PathBuf> = std::fs::read_dir("fixtures/bad/exercises")
        .expect("fixtures/bad/exercises exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    assert!(folders.len() >= 5, "the corpus has {} exercises", folders.len());
    let mut problems = Vec::new();
    for folder in folders {
        let diagnostics = match labctl::exercise::load(&folder, &labctl::exercise::Files::Starter) {
            Ok(_) => {
                problems.push(format!("{} was accepted", folder.display()));
                continue;
            }
            Err(ScriptError::Invalid(diagnostics)) => diagnostics,
            Err(e) => {
                problems.push(format!("{}: {e}", folder.display()));
                continue;
            }
        };
        for d in &diagnostics.0 {
            if !d.origin.file.starts_with("fixtures/bad/exercises") || d.origin.line == 0 || d.help.is_none() {
                problems.push(format!("{}: no file:line or help in {d}", folder.display()));
            }
        }
        let name = format!("exercise_{}", folder.file_name().unwrap().to_string_lossy());
        let file = folder.join("exercise.lua");
        insta::with_settings!({ input_file => &file, omit_expression => true }, {
            insta::assert_snapshot!(name, diagnostics.to_string());
        });
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
