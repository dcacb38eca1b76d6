//! `labctl exercise`, as a learner and a teacher use it, inside a throwaway
//! sandbox: the learner's commands keep their progress in a temporary
//! XDG_STATE_HOME, and `grade` gives the same table for the sample
//! submissions run after run. (`verify` has a binary of its own:
//! exercises_verify.rs.)

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command as Assert;
use common::*;
use predicates::prelude::*;

fn exercises() -> PathBuf {
    repo_root().join("labs/exercises")
}

/// `labctl exercise ...` in the sandbox, its state and home in `home`.
fn exercise(sb: &Sandbox, home: &Path, args: &[&str]) -> Assert {
    let mut command = sb.labctl_cmd();
    command.arg("exercise").arg("--root").arg(exercises()).args(args);
    command.env("XDG_STATE_HOME", home.join("state")).env("HOME", home);
    Assert::from_std(command)
}

#[test]
fn a_learner_starts_fails_reads_hints_fixes_and_passes() {
    let sb = Sandbox::new();
    let before = sb.host_state();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    exercise(&sb, h, &["list"]).assert().success().stdout(predicate::str::contains("[ ] part1/default-route"));
    exercise(&sb, h, &["check"]).assert().code(2).stderr(predicate::str::contains("no exercise is started"));
    exercise(&sb, h, &["start", "part9/nothing"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("part1/default-route"));

    exercise(&sb, h, &["start", "part1/default-route"])
        .assert()
        .success()
        .stdout(predicate::str::contains("h1 (198.18.0.1, 2001:db8::1) cannot ping h3"));
    exercise(&sb, h, &["check"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("FAIL h3 reaches h1 over IPv4: h3 -> h1: 0 sent, 0 received"))
        .stdout(predicate::str::contains("0/4 checks pass"));
    exercise(&sb, h, &["solution"]).assert().code(2).stderr(predicate::str::contains("hints left"));
    // The failing check's hint comes first.
    exercise(&sb, h, &["hint"]).assert().success().stdout(predicate::str::contains("hint 1/"));
    let progress = std::fs::read_to_string(h.join("state/labctl/exercises.json")).unwrap();
    assert!(progress.contains("\"hints_seen\": 1") && progress.contains("\"started\""), "{progress}");

    sb.labctl(["exec", "ex-default-route", "h3", "--", "ip", "route", "add", "default", "via", "198.18.1.254"]);
    exercise(&sb, h, &["check"]).assert().code(1).stdout(predicate::str::contains("PASS h3 reaches h1 over IPv4"));
    sb.labctl([
        "exec",
        "ex-default-route",
        "h3",
        "--",
        "ip",
        "-6",
        "route",
        "add",
        "default",
        "via",
        "2001:db8:0:1::fe",
    ]);
    exercise(&sb, h, &["check", "--json"]).assert().success().stdout(predicate::str::contains("\"passed\": true"));
    let progress = std::fs::read_to_string(h.join("state/labctl/exercises.json")).unwrap();
    assert!(progress.contains("\"done\""), "{progress}");
    exercise(&sb, h, &["list"]).assert().success().stdout(predicate::str::contains("[x] part1/default-route"));
    exercise(&sb, h, &["solution"]).assert().success().stdout(predicate::str::contains("in h3: ip route add default"));
    exercise(&sb, h, &["stop"]).assert().success();
    sb.assert_clean(&before, "after labctl exercise stop");
}

#[test]
fn an_edited_file_is_copied_rebuilt_on_check_and_restored_by_reset() {
    let sb = Sandbox::new();
    let before = sb.host_state();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let work = h.join("work");
    let work_arg = work.to_string_lossy().into_owned();
    exercise(&sb, h, &["start", "part4/xdp-drop-port", "--dir", &work_arg])
        .assert()
        .success()
        .stdout(predicate::str::contains("xdp_drop_port.c"));
    exercise(&sb, h, &["check"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("FAIL the flood to port 9 dies in XDP"));
    let solved = exercises().join("part4/xdp-drop-port/solution/xdp_drop_port.c");
    std::fs::copy(&solved, work.join("xdp_drop_port.c")).unwrap();
    exercise(&sb, h, &["check"]).assert().success().stdout(predicate::str::contains("all 3 checks pass"));
    exercise(&sb, h, &["reset"]).assert().success();
    let starter = std::fs::read_to_string(exercises().join("part4/xdp-drop-port/starter/xdp_drop_port.c")).unwrap();
    assert_eq!(std::fs::read_to_string(work.join("xdp_drop_port.c")).unwrap(), starter);
    exercise(&sb, h, &["stop"]).assert().success();
    sb.assert_clean(&before, "after labctl exercise stop");
}

#[test]
fn grade_tables_of_the_sample_submissions() {
    let sb = Sandbox::new();
    let home = tempfile::tempdir().unwrap();
    let submissions = repo_root().join("fixtures/exercises/submissions");
    for (id, folder) in [
        ("part1/default-route", "part1-default-route"),
        ("part2/rp-filter", "part2-rp-filter"),
        ("part4/xdp-drop-port", "part4-xdp-drop-port"),
    ] {
        let dir = submissions.join(folder);
        assert!(std::fs::read_dir(&dir).unwrap().filter(|e| e.as_ref().unwrap().path().is_dir()).count() >= 5);
        let csv = home.path().join(format!("{folder}.csv"));
        let junit = home.path().join(format!("{folder}.xml"));
        let out = exercise(&sb, home.path(), &["grade", id, &dir.to_string_lossy()])
            .arg("--csv")
            .arg(&csv)
            .arg("--junit")
            .arg(&junit)
            .assert()
            .success();
        let table = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        insta::assert_snapshot!(format!("grade_{folder}"), table);
        let csv = std::fs::read_to_string(&csv).unwrap();
        assert!(csv.starts_with("submission,passed,total,failing\n") && csv.lines().count() >= 6, "{csv}");
        let junit = std::fs::read_to_string(&junit).unwrap();
        assert!(junit.contains(&format!("<testsuite name=\"{id}\"")), "{junit}");
    }
}
