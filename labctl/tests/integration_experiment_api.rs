//! The experiment API is as strict as the lab vocabulary, and bounded in
//! time. Each test in its own Sandbox (tests/common):
//!
//! - the corpus fixtures/bad_experiments/: every script there calls an `x:`
//!   or node method with an unknown option key (or a bad duration); the lab
//!   comes up, the experiment stops at that line with `file:line: error:`
//!   and a `help:` naming the valid keys, `run` and `test` exit 2 (bad
//!   input), and what the user reads is snapshotted, as for fixtures/bad/;
//!   a failing expectation still exits 1;
//! - the per-experiment time limit stops a `while true do end` and a hung
//!   command, reports it at the experiment's line, exits 1 and leaves
//!   nothing behind.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// `labctl run FILE` from the repository root, so messages read
/// `fixtures/bad_experiments/x.lua:6`; the run folder goes to `out`.
fn labctl_run(sb: &Sandbox, file: &Path, out: &Path) -> std::process::Output {
    let mut c = sb.cmd_in(repo_root(), labctl_bin());
    c.arg("run").arg(file).arg("--out").arg(out);
    output(&mut c)
}

/// `labctl test FILE` from the repository root, its snapshots in `snapshots`.
fn labctl_test(sb: &Sandbox, file: &Path, snapshots: &Path) -> std::process::Output {
    let mut c = sb.cmd_in(repo_root(), labctl_bin());
    c.arg("test").arg(file).arg("--snapshots").arg(snapshots).env_remove("GITHUB_ACTIONS");
    output(&mut c)
}

/// The diagnostic lines of `labctl run` (`!! file:line: error: ...` and its `help:`).
fn diagnostics(stdout: &str) -> String {
    let mut lines = Vec::new();
    let mut in_error = false;
    for line in stdout.lines() {
        if let Some(error) = line.strip_prefix("!! ") {
            lines.push(error.to_string());
            in_error = true;
        } else if in_error && line.trim_start().starts_with("help:") {
            lines.push(line.to_string());
        } else {
            in_error = false;
        }
    }
    lines.join("\n")
}

#[test]
fn every_bad_experiment_option_stops_at_its_line_with_the_valid_keys() {
    let sb = Sandbox::new();
    let before = sb.host_state();
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(repo_root().join("fixtures/bad_experiments"))
        .expect("fixtures/bad_experiments exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "lua"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 15, "the corpus has {} scripts", scripts.len());
    let tmp = temp_dir("bad-experiments");
    let scratch = tmp.path().to_path_buf();
    let mut problems = Vec::new();
    for script in &scripts {
        let name = script.file_stem().unwrap().to_string_lossy().into_owned();
        let relative = Path::new("fixtures/bad_experiments").join(script.file_name().unwrap());
        // A bad option is bad input, like a mistake in the lab: exit 2.
        let out = labctl_run(&sb, &relative, &scratch.join(&name));
        if out.status.code() != Some(2) {
            problems.push(format!("{name}: expected exit 2 from labctl run\n{}", describe(&out)));
            continue;
        }
        let tested = labctl_test(&sb, &relative, &scratch.join(&name).join("snapshots"));
        if tested.status.code() != Some(2) {
            problems.push(format!("{name}: expected exit 2 from labctl test\n{}", describe(&tested)));
        }
        let text = diagnostics(&stdout(&out));
        let prefix = format!("{}:6: error: ", relative.display());
        if !text.starts_with(&prefix) || !text.contains("help: ") {
            problems.push(format!("{name}: no `{prefix}...` with a help line\n{}", describe(&out)));
        }
        insta::with_settings!({ input_file => script, omit_expression => true }, {
            insta::assert_snapshot!(name, text);
        });
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    sb.assert_clean(&before, "after the bad experiments");
}

/// A failing expectation is a failed experiment (exit 1), not bad input,
/// even in an experiment that also passes an option check.
#[test]
fn a_failing_expectation_still_exits_1() {
    let sb = Sandbox::new();
    let tmp = temp_dir("failing-expectation");
    let dir = tmp.path().to_path_buf();
    let lab = write_lab(&dir, "failing", r#"x:sleep("10ms") x:expect_eq(1, 2, "one is two")"#, "{}");
    let out = sb.labctl([Path::new("run"), &lab, Path::new("--out"), &dir.join("run")]);
    assert_code(&out, 1, "labctl run of a failing expectation");
    assert!(stdout(&out).contains("one is two"), "{}", describe(&out));
    let mut c = sb.labctl_cmd();
    c.arg("test").arg(&lab).arg("--snapshots").arg(dir.join("snapshots")).env_remove("GITHUB_ACTIONS");
    let out = output(&mut c);
    assert_code(&out, 1, "labctl test of a failing expectation");
    assert!(stdout(&out).contains("one is two"), "{}", describe(&out));
}

/// A lab of two hosts whose one experiment is `body`, with `opts` as the
/// experiment's options.
fn write_lab(dir: &Path, name: &str, body: &str, opts: &str) -> PathBuf {
    let path = dir.join(format!("{name}.lua"));
    let script = format!(
        "local h1, h2 = node(\"h1\"), node(\"h2\")\n\
         link(h1, h2, {{ \"198.18.0.1/24\", \"198.18.0.2/24\" }})\n\
         experiment(\"stuck\", function(x)\n    {body}\nend, {opts})\n"
    );
    std::fs::write(&path, script).expect("write the lab");
    path
}

/// Runs `labctl test` on a lab whose experiment never ends by itself; it
/// must stop within its 1 s limit (plus bring-up and teardown), exit 1
/// with the experiment's line, and leave nothing behind.
fn assert_stopped_by_the_time_limit(test: &str, body: &str) {
    let sb = Sandbox::new();
    let before = sb.host_state();
    let tmp = temp_dir(test);
    let dir = tmp.path().to_path_buf();
    let lab = write_lab(&dir, test, body, r#"{ timeout = "1s" }"#);
    let started = Instant::now();
    let mut c = sb.cmd_in(&dir, labctl_bin());
    c.arg("test").arg(&lab);
    let out = output(&mut c);
    let took = started.elapsed();
    let stdout = assert_code(&out, 1, &format!("labctl test of {test}"));
    assert!(
        stdout.contains(&format!("{}:3:", lab.display())) && stdout.contains("ran past its time limit of 1s"),
        "the time limit is not reported at the experiment's line (3):\n{}",
        describe(&out)
    );
    // Generous: only "it stopped", not how fast; the limit itself is 1 s.
    assert!(took < Duration::from_secs(60), "labctl took {took:?} to stop a 1 s experiment");
    sb.assert_clean(&before, &format!("after {test}"));
}

#[test]
fn a_runaway_lua_loop_is_stopped_by_the_experiment_time_limit() {
    assert_stopped_by_the_time_limit("loop", "while true do end");
}

#[test]
fn a_loop_around_pcall_cannot_swallow_the_time_limit() {
    assert_stopped_by_the_time_limit("pcall_loop", "while true do pcall(function() while true do end end) end");
}

#[test]
fn a_hung_command_is_stopped_by_the_experiment_time_limit() {
    // Its own timeout is longer than the experiment's: the experiment's wins,
    // and the command's children go with it (its process group).
    assert_stopped_by_the_time_limit("hung", r#"x.h1:run({ "sh", "-c", "sleep 600 & wait" }, { timeout = "10m" })"#);
}

#[test]
fn an_experiment_timeout_that_is_not_a_duration_is_a_script_error() {
    let sb = Sandbox::new();
    let tmp = temp_dir("bad-timeout");
    let dir = tmp.path().to_path_buf();
    let lab = write_lab(&dir, "bad_timeout", "x:sleep(0)", r#"{ timeout = "soon" }"#);
    let out = sb.labctl([Path::new("test"), &lab]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains(&format!("{}:3: error: experiment(\"stuck\"): timeout:", lab.display())),
        "no error at the experiment's line:\n{}",
        describe(&out)
    );
    assert_ne!(out.status.code(), Some(0), "accepted a bad timeout\n{}", describe(&out));
    assert!(sb.netns_list().is_empty(), "a lab was created: {:?}", sb.netns_list());
}

/// part4's pattern: `with(make, undo, body)` where make attaches an XDP
/// program and then fails. part4's own copy skipped undo then, the program
/// stayed attached and the next experiment failed with "already attached";
/// `commands.with` undoes it.
#[test]
fn with_detaches_what_a_failing_make_attached() {
    let sb = Sandbox::new();
    let before = sb.host_state();
    let tmp = temp_dir("with-undo");
    let dir = tmp.path().to_path_buf();
    let program = repo_root().join("fixtures/xdp/xdp_pass.c");
    let lab = dir.join("with_undo.lua");
    let script = format!(
        r#"local with = require("commands").with
local h1, h2 = node("h1"), node("h2")
link(h1, h2, {{ "198.18.0.1/24", "198.18.0.2/24" }})
local PROGRAM = {program:?}

experiment("make-fails", function(x)
  local ok, err = pcall(with, function()
    x:xdp_attach("h2:eth0", {{ src = PROGRAM }})
    error("make failed after attaching", 0)
  end, function()
    x:xdp_detach("h2:eth0")
  end, function() end)
  x:expect(not ok and err == "make failed after attaching", "the make error comes through: " .. tostring(err))
  x:expect(x:xdp("h2:eth0") == nil, "undo detached the program")
end)

experiment("attach-again", function(x)
  x:xdp_attach("h2:eth0", {{ src = PROGRAM }})
  x:xdp_detach("h2:eth0")
end)
"#
    );
    std::fs::write(&lab, script).expect("write the lab");
    let mut c = sb.cmd_in(&dir, labctl_bin());
    c.arg("test").arg(&lab);
    let out = output(&mut c);
    let stdout = assert_code(&out, 0, "labctl test of with(make, undo, body) with a failing make");
    assert!(stdout.contains("make-fails") && stdout.contains("attach-again"), "{}", describe(&out));
    sb.assert_clean(&before, "after the with() lab");
}
