//! `labctl exercise verify labs/exercises`: every exercise proves itself
//! (unsolved, a check fails; with the reference solution, every check
//! passes; nothing left behind), inside a throwaway sandbox. One test in its
//! own binary, so no other test loads the CPUs while part3's exercises
//! measure per-CPU work.

mod common;

use assert_cmd::Command as Assert;
use common::*;
use predicates::prelude::*;

fn exercises() -> std::path::PathBuf {
    repo_root().join("labs/exercises")
}

#[test]
fn verify_proves_every_exercise_and_leaves_nothing() {
    let sb = Sandbox::new();
    let before = sb.host_state();
    let home = tempfile::tempdir().unwrap();
    let count = std::fs::read_dir(exercises())
        .unwrap()
        .flat_map(|part| std::fs::read_dir(part.unwrap().path()).unwrap())
        .filter(|e| e.as_ref().unwrap().path().join("exercise.lua").is_file())
        .count();
    assert!(count >= 10, "only {count} exercises");
    let mut command = sb.labctl_cmd();
    command.args(["exercise", "verify"]).arg(exercises()).env("XDG_STATE_HOME", home.path()).env("HOME", home.path());
    Assert::from_std(command)
        .timeout(std::time::Duration::from_secs(600))
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("verify: {count} proven, 0 failed")));
    sb.assert_clean(&before, "after labctl exercise verify");
}
