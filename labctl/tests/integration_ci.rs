//! Labs as CI tests: the GitHub Action's test step run as a runner runs it
//! (job summary of a passing run and of a run with a changed snapshot,
//! step outputs, the results folder), `labctl test -j` against a sequential
//! run (same results and JUnit, labs of one name side by side, a lab that
//! must run alone running alone), `--shard` covering every lab once, and
//! `up --name` bringing one file up twice. Each test in its own Sandbox.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// Two nodes on one veth, one experiment with a deterministic snapshot.
fn tiny_lab(name: &str, extra: &str) -> String {
    format!(
        r#"lab {{ name = "{name}" }}
local a = node("a")
local b = node("b")
link(a, b, {{ "198.18.7.1/24", "198.18.7.2/24" }})
experiment("ping", function(x)
  local p = x.a:ping("198.18.7.2", {{ count = 2 }})
  x:snapshot("ping", {{ received = p.received }})
end)
{extra}"#
    )
}

/// A scratch repository: `labs/` with the given files, `snapshots/` beside it.
fn scratch_repo(labs: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("labctl-ci-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for (path, text) in labs {
        let file = dir.path().join("labs").join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("snapshots")).unwrap();
    dir
}

/// Times vary run to run; everything else in a summary must not.
fn without_times(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = match line.rsplit_once(" | ") {
            Some((head, tail)) if tail.ends_with(" s |") => format!("{head} | <time> |"),
            _ => line.to_string(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Runs the action's test step (.github/action/run-tests.sh) in `repo`, as
/// a runner would: the GitHub variables point at files of `runner`.
fn action_step(sb: &Sandbox, repo: &Path, runner: &Path) -> std::process::Output {
    let script = repo_root().join(".github/action/run-tests.sh");
    let mut c = sb.cmd_in(repo, "bash");
    c.arg(script)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", runner.join("summary.md"))
        .env("GITHUB_OUTPUT", runner.join("output"))
        .env("RUNNER_TEMP", runner)
        .env("LABCTL", labctl_bin())
        .env("LABS", "labs")
        .env("ARGS", "");
    output(&mut c)
}

#[test]
fn action_step_summarizes_a_passing_and_a_changed_run() {
    let sb = Sandbox::new();
    let repo = scratch_repo(&[("tiny.lua", tiny_lab("tiny", ""))]);
    let root = repo.path();
    sb.labctl_ok(["test", "--accept", root.join("labs/tiny.lua").to_str().unwrap()]);

    let runner = tempfile::tempdir().unwrap();
    let out = action_step(&sb, root, runner.path());
    assert_code(&out, 0, "the action step on a passing lab");
    let summary = std::fs::read_to_string(runner.path().join("summary.md")).unwrap();
    insta::assert_snapshot!("summary_passing", without_times(&summary));
    let outputs = std::fs::read_to_string(runner.path().join("output")).unwrap();
    assert!(outputs.contains("passed=1\n") && outputs.contains("failed=0\n"), "{outputs}");
    let results = runner.path().join("labctl-results");
    let junit = std::fs::read_to_string(results.join("junit.xml")).unwrap();
    assert!(junit.contains("testcase name=\"ping\""), "{junit}");

    // The committed snapshot says 3 received: this run differs.
    let snap = root.join("snapshots/tiny/ping__ping.snap");
    let text = std::fs::read_to_string(&snap).unwrap();
    assert!(text.contains("received: 2"), "{text}");
    std::fs::write(&snap, text.replace("received: 2", "received: 3")).unwrap();
    let runner = tempfile::tempdir().unwrap();
    let out = action_step(&sb, root, runner.path());
    assert_code(&out, 1, "the action step on a changed snapshot");
    let summary = std::fs::read_to_string(runner.path().join("summary.md")).unwrap();
    insta::assert_snapshot!("summary_changed", without_times(&summary));
    assert!(stdout(&out).contains("::error file="), "annotations are kept:\n{}", describe(&out));
    let outputs = std::fs::read_to_string(runner.path().join("output")).unwrap();
    assert!(outputs.contains("passed=0\n") && outputs.contains("failed=1\n"), "{outputs}");
    let pending = runner.path().join("labctl-results/pending");
    let found: Vec<PathBuf> =
        walk(&pending).into_iter().filter(|p| p.to_string_lossy().ends_with(".snap.new")).collect();
    assert_eq!(found.len(), 1, "the .snap.new is in the results: {found:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// JUnit with the times and the timestamp taken out.
fn junit_shape(xml: &str) -> String {
    let mut out = String::new();
    for part in xml.split(' ') {
        if !(part.starts_with("time=") || part.starts_with("timestamp=")) {
            out.push_str(part);
            out.push(' ');
        }
    }
    out
}

#[test]
fn parallel_run_reports_like_a_sequential_one_with_labs_of_one_name_side_by_side() {
    let sb = Sandbox::new();
    // Three labs named alike, with the same node names: only sandboxes let
    // them run at once.
    let repo = scratch_repo(&[
        ("a/twin.lua", tiny_lab("twin", "")),
        ("b/twin.lua", tiny_lab("twin", "")),
        ("c/twin.lua", tiny_lab("twin", "")),
    ]);
    let labs = repo.path().join("labs");
    let snapshots = repo.path().join("snapshots");
    let (labs, snaps) = (labs.to_str().unwrap(), snapshots.to_str().unwrap());
    sb.labctl_ok(["test", "-j", "1", "--accept", "--snapshots", snaps, labs]);
    let baseline = sb.host_state();

    let seq = repo.path().join("seq.xml");
    let par = repo.path().join("par.xml");
    let one = sb.labctl(["test", "-j", "1", "--snapshots", snaps, labs, "--junit", seq.to_str().unwrap()]);
    assert_code(&one, 0, "sequential");
    let four = sb.labctl(["test", "-j", "4", "--snapshots", snaps, labs, "--junit", par.to_str().unwrap()]);
    assert_code(&four, 0, "-j 4");
    assert_eq!(
        junit_shape(&std::fs::read_to_string(&seq).unwrap()),
        junit_shape(&std::fs::read_to_string(&par).unwrap()),
        "JUnit of -j 4 differs from the sequential one"
    );
    // Each lab's lines together, in the order of the list.
    let text = stdout(&four);
    let order: Vec<&str> = text.lines().filter(|l| l.starts_with("lab ")).collect();
    assert_eq!(order.len(), 3, "{text}");
    assert!(
        order[0].ends_with("a/twin.lua") && order[1].ends_with("b/twin.lua") && order[2].ends_with("c/twin.lua"),
        "{text}"
    );
    assert!(text.contains("test: 3 passed, 0 failed"), "{text}");
    assert!(sb.netns_list().is_empty(), "the parallel run reached the sandbox's /run/netns: {:?}", sb.netns_list());
    sb.assert_clean(&baseline, "after labctl test -j 4");
}

#[test]
fn a_lab_that_must_run_alone_runs_after_the_others_are_done() {
    let sb = Sandbox::new();
    let log = tempfile::tempdir().unwrap();
    let stamp = |what: &str| {
        format!(
            r#"experiment("stamp", function(x)
  x.a:run{{ "sh", "-c", "echo {what} start $(date +%s%N) >> {log}/log; sleep 1; echo {what} end $(date +%s%N) >> {log}/log" }}
end)"#,
            log = log.path().display()
        )
    };
    let alone = tiny_lab("alone", &stamp("alone"))
        .replace("lab { name = \"alone\" }", "lab { name = \"alone\", exclusive = true }");
    let repo = scratch_repo(&[
        ("1-alone.lua", alone),
        ("2-x.lua", tiny_lab("x", &stamp("x"))),
        ("3-y.lua", tiny_lab("y", &stamp("y"))),
    ]);
    let labs = repo.path().join("labs");
    let out = sb.labctl(["test", "-j", "3", "--accept", labs.to_str().unwrap(), "-e", "stamp"]);
    assert_code(&out, 0, "-j 3 with an exclusive lab");
    let text = std::fs::read_to_string(log.path().join("log")).unwrap();
    let at = |what: &str, edge: &str| -> u128 {
        let line = text.lines().find(|l| l.starts_with(&format!("{what} {edge} "))).unwrap_or_else(|| panic!("{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(at("alone", "start") > at("x", "end") && at("alone", "start") > at("y", "end"), "{text}");
    // The ordinary two ran at the same time.
    assert!(at("x", "start") < at("y", "end") && at("y", "start") < at("x", "end"), "{text}");
    // Output in list order all the same.
    let order: Vec<String> = stdout(&out).lines().filter(|l| l.starts_with("lab ")).map(String::from).collect();
    assert!(order[0].ends_with("1-alone.lua"), "{order:?}");
}

#[test]
fn a_host_sysctl_window_waits_for_other_labs_measurements_and_only_it_does() {
    let sb = Sandbox::new();
    let log = tempfile::tempdir().unwrap();
    let stamp = |what: &str, secs: &str| {
        format!(
            r#"x.a:run{{ "sh", "-c", "echo {what} start $(date +%s%N) >> {log}/log; sleep {secs}; echo {what} end $(date +%s%N) >> {log}/log" }}"#,
            log = log.path().display()
        )
    };
    let changer = format!(
        "experiment(\"stamp\", function(x)\n  {}\n  x:host_sysctl({{ [\"net.core.netdev_budget\"] = 299 }}, function()\n    {}\n  end)\nend)",
        stamp("pre", "1.5"),
        stamp("window", "1")
    );
    let measurer = format!(
        "experiment(\"stamp\", function(x)\n  {}\n  {}\n  {}\n  {}\nend)",
        stamp("m1", "0.7"),
        stamp("m2", "0.7"),
        stamp("m3", "0.7"),
        stamp("m4", "0.7")
    );
    let repo = scratch_repo(&[("1-changer.lua", tiny_lab("changer", &changer)), ("2-m.lua", tiny_lab("m", &measurer))]);
    let labs = repo.path().join("labs");
    let out = sb.labctl(["test", "-j", "2", "--accept", labs.to_str().unwrap(), "-e", "stamp"]);
    assert_code(&out, 0, "-j 2 with a host_sysctl window");
    let text = std::fs::read_to_string(log.path().join("log")).unwrap();
    let at = |what: &str, edge: &str| -> u128 {
        let line = text.lines().find(|l| l.starts_with(&format!("{what} {edge} "))).unwrap_or_else(|| panic!("{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let overlaps = |a: &str, b: &str| at(a, "start") < at(b, "end") && at(b, "start") < at(a, "end");
    let measurements = ["m1", "m2", "m3", "m4"];
    // Shared turns overlap: the changer's first command ran beside the other lab's.
    assert!(measurements.iter().any(|m| overlaps("pre", m)), "{text}");
    // The machine-wide change met none of them.
    for m in measurements {
        assert!(!overlaps("window", m), "{m} ran inside the host_sysctl window:\n{text}");
    }
}

#[test]
fn shards_together_list_every_lab_exactly_once() {
    let all = labctl_list(&[]);
    assert!(all.len() >= 5, "{all:?}");
    let mut together: Vec<String> = (1..=3).flat_map(|k| labctl_list(&["--shard", &format!("{k}/3")])).collect();
    together.sort();
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(together, expected);
    let out = output(std::process::Command::new(labctl_bin()).args(["test", "--list", "--shard", "4/3"]));
    assert_code(&out, 2, "a shard beyond N");
}

/// The labs `labctl test --list` names (no root, no kernel).
fn labctl_list(extra: &[&str]) -> Vec<String> {
    let out = output(
        std::process::Command::new(labctl_bin()).current_dir(repo_root()).args(["test", "--list", "labs"]).args(extra),
    );
    assert_code(&out, 0, "test --list");
    stdout(&out).lines().filter(|l| !l.starts_with(' ')).map(String::from).collect()
}

#[test]
fn up_name_brings_one_file_up_twice() {
    let sb = Sandbox::new();
    let baseline = sb.host_state();
    let lab = lab_path("part1.lua");
    let lab = lab.to_str().unwrap();
    sb.labctl_ok(["up", lab]);
    sb.labctl_ok(["up", "--name", "part1-b", lab]);
    for name in ["part1", "part1-b"] {
        let out = sb.labctl(["exec", name, "h1", "--", "ping", "-c", "1", "-W", "2", "198.18.1.1"]);
        assert_code(&out, 0, &format!("ping inside {name}"));
    }
    let mut ns = sb.netns_list();
    ns.sort();
    assert!(ns.contains(&"part1-h1".to_string()) && ns.contains(&"part1-b-h1".to_string()), "{ns:?}");
    let taken = sb.labctl(["up", "--name", "part1-b", lab]);
    assert_code(&taken, 2, "the same name twice");
    let bad = sb.labctl(["up", "--name", "Bad Name", lab]);
    assert_code(&bad, 2, "a bad name");
    sb.labctl_ok(["down", "part1"]);
    sb.labctl_ok(["down", "part1-b"]);
    sb.assert_clean(&baseline, "after both labs are down");
}
