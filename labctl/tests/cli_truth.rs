//! The CLI says what is so (issue 12), run as a user would with assert_cmd,
//! each test in its own Sandbox (tests/common) and temporary folders from
//! tempfile: a closed stdout does not leave a lab up, exit statuses are the
//! documented ones, `review` finds what `test` left from any folder, and
//! `show` reads the kernel and marks what drifted from the script.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use predicates::prelude::*;

/// Two nodes on one link and the experiments given, in `dir/labs/<name>.lua`,
/// with an empty `dir/snapshots/` beside (the repository's layout).
fn tiny_lab(dir: &Path, name: &str, experiments: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("labs")).unwrap();
    std::fs::create_dir_all(dir.join("snapshots")).unwrap();
    let lab = dir.join("labs").join(format!("{name}.lua"));
    let script = format!(
        "lab {{ name = \"{name}\" }}\n\
         local a, b = node(\"a\"), node(\"b\")\n\
         link(a, b, {{ \"198.18.0.1/24\", \"198.18.0.2/24\" }})\n\
         a:route(\"198.19.0.0/16\", \"198.18.0.2\")\n\
         {experiments}"
    );
    std::fs::write(&lab, script).unwrap();
    lab
}

fn labctl(sb: &Sandbox, dir: &Path) -> Command {
    let mut c = sb.cmd_in(dir, labctl_bin());
    c.env_remove("LABCTL_FAULT_ABORT_AFTER").env_remove("LABCTL_FAULT_FAIL_AT").env_remove("GITHUB_ACTIONS");
    Command::from_std(c)
}

#[track_caller]
fn assert_nothing_left(sb: &Sandbox, before: &str, what: &str) {
    assert!(sb.netns_list().is_empty(), "{what}: namespaces left: {:?}", sb.netns_list());
    assert!(sb.labctl_state().is_empty(), "{what}: state left: {:?}", sb.labctl_state());
    sb.assert_clean(before, what);
}

// ---------------------------------------------------------------------------
// 2. a closed pipe

#[test]
fn a_reader_that_goes_away_neither_kills_run_nor_leaves_the_lab_up() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = tiny_lab(
        tmp.path(),
        "piped",
        "experiment(\"first\", function(x) x:snapshot(\"one\", { a = 1 }) end)\n\
         experiment(\"second\", function(x)\n  x:sleep(0.5)\n  local t = {}\n  \
         for i = 1, 2000 do t[\"line\" .. i] = i end\n  x:snapshot(\"many\", t)\nend)\n",
    );
    let sb = Sandbox::new();
    let before = sb.host_state();
    let mut c = sb.cmd_in(tmp.path(), labctl_bin());
    c.arg("run").arg(&lab).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("start labctl run");
    // `| head -1`: read one line, then close the pipe while labctl goes on.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.contains("experiment first"), "{first}");
    let out = child.wait_with_output().unwrap();
    assert_code(&out, 0, "labctl run with its stdout closed after one line");
    assert_nothing_left(&sb, &before, "after labctl run | head -1");
}

// ---------------------------------------------------------------------------
// 3. exit statuses

#[test]
fn run_and_test_of_a_lab_already_up_exit_2_with_help_and_create_no_run_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = tiny_lab(tmp.path(), "twice", "experiment(\"e\", function(x) end)\n");
    let sb = Sandbox::new();
    labctl(&sb, tmp.path()).arg("up").arg(&lab).assert().success();
    for args in [vec!["run"], vec!["test"]] {
        labctl(&sb, tmp.path())
            .args(&args)
            .arg(&lab)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("already running"))
            .stderr(predicate::str::contains("help: run `labctl down twice` first"));
    }
    assert!(!tmp.path().join("runs").exists(), "a refused run created runs/");
    labctl(&sb, tmp.path()).args(["down", "twice"]).assert().success();
}

#[test]
fn an_experiment_name_that_matches_nothing_is_bad_input_with_the_closest_name() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = tiny_lab(
        tmp.path(),
        "named",
        "experiment(\"one-ping\", function(x) end)\nexperiment(\"drops\", function(x) end)\n",
    );
    let sb = Sandbox::new();
    let before = sb.host_state();
    let says_what_exists = || {
        predicate::str::contains("no experiment named \"one-pign\"")
            .and(predicate::str::contains("did you mean \"one-ping\"? experiments: one-ping, drops"))
    };
    labctl(&sb, tmp.path()).arg("run").arg(&lab).arg("one-pign").assert().code(2).stderr(says_what_exists());
    labctl(&sb, tmp.path()).args(["test", "-e", "one-pign"]).arg(&lab).assert().code(2).stderr(says_what_exists());
    assert!(!tmp.path().join("runs").exists(), "a refused run created runs/");
    assert_nothing_left(&sb, &before, "after runs refused for an unknown experiment");
}

#[test]
fn ctrl_c_during_up_exits_130_and_removes_what_was_built() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = tmp.path().join("big.lua");
    // Big enough that `up` is still building when the signal comes.
    std::fs::write(&lab, "lab { name = \"big\" }\nrequire(\"topo\").star(600)\n").unwrap();
    let sb = Sandbox::new();
    let before = sb.host_state();
    let mut c = sb.cmd_in(tmp.path(), labctl_bin());
    c.arg("up").arg(&lab).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let child = c.spawn().expect("start labctl up");
    while sb.netns_list().len() < 20 {
        assert!(started.elapsed() < Duration::from_secs(30), "up never started building");
        std::thread::sleep(Duration::from_millis(5));
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_code(&out, 130, "labctl up interrupted by SIGINT");
    assert!(stderr(&out).contains("interrupted"), "{}", describe(&out));
    assert_nothing_left(&sb, &before, "after Ctrl-C during up");
}

// ---------------------------------------------------------------------------
// 4. review looks where test wrote; 8. the hint only when a snapshot is pending

#[test]
fn the_review_command_test_suggests_works_from_where_the_user_is() {
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let lab = tiny_lab(tmp.path(), "fresh", "experiment(\"e\", function(x) x:snapshot(\"s\", { n = 1 }) end)\n");
    let sb = Sandbox::new();
    let assert = labctl(&sb, elsewhere.path()).arg("test").arg(&lab).assert().code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    let snapshots = tmp.path().join("snapshots");
    let hint = format!("`labctl review --snapshots {}`", snapshots.display());
    assert!(stderr.contains(&hint), "expected {hint} in:\n{stderr}");
    // The exact command, from the same folder, finds the pending snapshot.
    labctl(&sb, elsewhere.path())
        .args(["review", "--snapshots"])
        .arg(&snapshots)
        .assert()
        .success()
        .stdout(predicate::str::contains("e__s.snap (new)"));
    // From the lab's own folder, plain `labctl review` finds it too.
    labctl(&sb, &tmp.path().join("labs")).arg("review").assert().success().stdout(predicate::str::contains("(new)"));
}

#[test]
fn a_failed_expectation_alone_does_not_suggest_review() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = tiny_lab(tmp.path(), "expects", "experiment(\"e\", function(x) x:expect(false, \"no\") end)\n");
    let sb = Sandbox::new();
    labctl(&sb, tmp.path())
        .arg("test")
        .arg(&lab)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("1 failed"))
        .stderr(predicate::str::contains("review").not());
}

// ---------------------------------------------------------------------------
// 1. show reads the kernel

#[test]
fn show_reads_the_kernel_and_marks_what_drifted_from_the_script() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = tiny_lab(tmp.path(), "drifty", "");
    let sb = Sandbox::new();
    let before = sb.host_state();
    labctl(&sb, tmp.path()).arg("up").arg(&lab).assert().success();
    labctl(&sb, tmp.path())
        .args(["show", "drifty"])
        .assert()
        .success()
        .stdout(predicate::str::contains("a: 198.19.0.0/16 via 198.18.0.2 dev eth0"))
        .stdout(predicate::str::contains("no drift"));

    // By hand, inside node a: the declared route goes, an address and a link come, eth0 of b goes down.
    sb.sh_ok(
        "ip netns exec drifty-a ip route del 198.19.0.0/16; \
         ip netns exec drifty-a ip addr add 198.18.9.9/24 dev eth0; \
         ip netns exec drifty-a ip link add extra0 type veth peer name extra1; \
         ip netns exec drifty-b ip link set eth0 down",
    );
    let line = |l: &str| predicate::str::contains(l.to_string());
    labctl(&sb, tmp.path())
        .args(["show", "drifty"])
        .assert()
        .success()
        .stdout(line("drift from"))
        .stdout(line("a: missing route 198.19.0.0/16 via 198.18.0.2 (declared at "))
        .stdout(line("a: added address 198.18.9.9/24 on eth0"))
        .stdout(line("a: added interface extra0"))
        .stdout(line("b: changed interface eth0: state down (set down; declared up)"))
        .stdout(line("a: 198.19.0.0/16 via").not());

    let out = labctl(&sb, tmp.path()).args(["show", "drifty", "--json"]).assert().success();
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).expect("show --json is JSON");
    let kinds: Vec<(String, String)> = json["drift"]
        .as_array()
        .expect("a drift list")
        .iter()
        .map(|d| (d["kind"].as_str().unwrap().to_string(), d["what"].as_str().unwrap().to_string()))
        .collect();
    for want in [
        ("missing", "route 198.19.0.0/16 via 198.18.0.2"),
        ("added", "address 198.18.9.9/24 on eth0"),
        ("added", "interface extra0"),
        ("changed", "interface eth0"),
    ] {
        assert!(kinds.contains(&(want.0.to_string(), want.1.to_string())), "{want:?} not in {kinds:?}");
    }
    // Both: the declaration, and the kernel's side.
    assert_eq!(json["lab"]["nodes"][0]["routes"][0]["destination"], "198.19.0.0/16");
    let eth0 = json["actual"]["a"]["interfaces"].as_array().unwrap().iter().find(|i| i["name"] == "eth0").unwrap();
    assert!(eth0["addresses"].as_array().unwrap().contains(&"198.18.9.9/24".into()), "{eth0}");

    labctl(&sb, tmp.path()).args(["down", "drifty"]).assert().success();
    assert_nothing_left(&sb, &before, "after show of a drifted lab");
}

#[test]
fn show_of_a_killed_up_is_short_and_says_to_run_down() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = tmp.path().join("killed.lua");
    std::fs::write(&lab, "lab { name = \"killed\" }\nrequire(\"topo\").star(40)\n").unwrap();
    let sb = Sandbox::new();
    labctl(&sb, tmp.path()).arg("up").arg(&lab).env("LABCTL_FAULT_ABORT_AFTER", "30").assert().failure();
    let out = labctl(&sb, tmp.path()).args(["show", "killed"]).assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.lines().count() <= 5, "{text}");
    assert!(text.contains("incomplete") && text.contains("help: run `labctl down killed`"), "{text}");
    labctl(&sb, tmp.path()).args(["down", "killed"]).assert().success();
}

// ---------------------------------------------------------------------------
// 6. one package list, a toolchain that can build labctl, and a sudo that finds it

#[test]
fn one_package_list_serves_the_readme_ci_and_doctor() {
    let root = repo_root();
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let packages: Vec<String> = read(".ci/packages.txt")
        .lines()
        .map(|l| l.split('#').next().unwrap().trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    // What parts 2-5 and the lab comments use.
    for want in [
        "iproute2",
        "iputils-ping",
        "nftables",
        "clang",
        "llvm",
        "libbpf-dev",
        "bpftool",
        "strongswan-charon",
        "strongswan-swanctl",
        "iputils-tracepath",
        "ethtool",
        "tcpdump",
        "build-essential",
    ] {
        assert!(packages.iter().any(|p| p == want), "{want} is not in .ci/packages.txt");
    }
    // One list: .ci/run installs through .ci/setup, which reads it; nobody keeps a list of their own.
    assert!(read(".ci/setup").contains(".ci/packages.txt"));
    assert!(read(".ci/run").contains("bash .ci/setup"));
    assert!(!read(".ci/run").contains("apt-get install"), ".ci/run installs packages of its own");
    // The README's first command sets up the machine (toolchain included) and installs where sudo looks.
    let readme = read("README.md");
    let first = readme.lines().find(|l| l.contains("cargo install")).expect("a cargo install line in the README");
    assert!(first.contains("bash .ci/setup &&"), "{first}");
    assert!(first.contains("--root /usr/local"), "{first}");
    // The toolchain rule: a cargo older than rust-version is replaced.
    let setup = read(".ci/setup");
    assert!(setup.contains("rust-version") && setup.contains("cargo-web") && setup.contains("rustup"));
    // doctor names the list.
    Command::new(labctl_bin()).arg("doctor").assert().success().stdout(predicate::str::contains(".ci/packages.txt"));
}

#[test]
fn setup_picks_a_toolchain_when_cargo_is_missing() {
    require_root();
    // A dry run with no cargo on PATH: it must not stop at "cargo missing".
    let out = std::process::Command::new("bash")
        .arg(repo_root().join(".ci/setup"))
        .env("LABCTL_SETUP_DRY_RUN", "1")
        .env("HOME", "/nonexistent")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(text.contains("+ apt-get install -y -q --no-install-recommends build-essential"), "{text}");
    let installs_rust = ["+ apt-get install -y -q cargo-web", "+ apt-get install -y -q rustup", "sh.rustup.rs"];
    assert!(installs_rust.iter().any(|c| text.contains(c)), "no toolchain install in:\n{text}");
}

// ---------------------------------------------------------------------------
// 8. the small ones

#[test]
fn up_timings_have_a_header_plain_names_and_times_that_do_not_add_up_falsely() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = tiny_lab(tmp.path(), "timed", "");
    let sb = Sandbox::new();
    let out = labctl(&sb, tmp.path()).args(["up", "--timings"]).arg(&lab).assert().success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("PHASE") && stderr.contains("DONE AT"), "{stderr}");
    assert!(stderr.contains("node sysctls") && stderr.contains("routes"), "{stderr}");
    assert!(!stderr.contains("NamespaceSysctls"), "{stderr}");
    assert!(stderr.contains("total"), "{stderr}");
    labctl(&sb, tmp.path()).args(["down", "timed"]).assert().success();
}

#[test]
fn run_shows_measured_values_and_null_results_and_the_nearest_method() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = tiny_lab(
        tmp.path(),
        "measured",
        "experiment(\"values\", function(x)\n  \
         x:snapshot(\"r\", { share = x.range(0.98, 0.95, 1) })\n  \
         local p = x.a:ping(\"198.18.0.77\", { count = 1, timeout = 0.2 })\n  \
         x:snapshot(\"ping\", { rtt = p.rtt_avg_us })\nend)\n\
         experiment(\"typo\", function(x) x.a:pign(\"198.18.0.2\") end)\n",
    );
    let sb = Sandbox::new();
    let out = labctl(&sb, tmp.path()).arg("run").arg(&lab).args(["--out", "out"]).assert().code(1);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("share: in [0.95, 1] (measured 0.98)"), "{stdout}");
    assert!(stdout.contains("rtt: null"), "{stdout}");
    assert!(stdout.contains("did you mean \"ping\"? a node (x.h1) has the methods run, ping"), "{stdout}");
    let results = std::fs::read_to_string(tmp.path().join("out/results.json")).unwrap();
    assert!(results.contains("(measured 0.98)"), "{results}");
}

#[test]
fn blast_says_what_it_sends_and_checks_its_options_first() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("labs")).unwrap();
    let lab = tmp.path().join("labs/six.lua");
    std::fs::write(
        &lab,
        "lab { name = \"six\" }\nlocal a, b, c = node(\"a\"), node(\"b\"), node(\"c\")\n\
         link(a, b, { \"2001:db8::1/64\", \"2001:db8::2/64\" })\nlink(a, c, { \"198.18.5.1/24\", \"198.18.5.3/24\" })\n",
    )
    .unwrap();
    let sb = Sandbox::new();
    labctl(&sb, tmp.path()).arg("up").arg(&lab).assert().success();
    labctl(&sb, tmp.path())
        .args(["blast", "six", "a", "b", "--count", "1000"])
        .assert()
        .success()
        .stderr(predicate::str::contains("([2001:db8::2]:9000) 1000 packets..."))
        .stderr(predicate::str::contains("for 3s").not());
    labctl(&sb, tmp.path())
        .args(["blast", "six", "a", "b", "--to", "198.18.5.3", "--count", "10"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--to 198.18.5.3 is c's address, not one of b's"));
    labctl(&sb, tmp.path())
        .args(["blast", "six", "a", "b", "--cpu", "1000", "--count", "10"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--cpu 1000: this machine has no CPU 1000"));
    labctl(&sb, tmp.path()).args(["down", "six"]).assert().success();
}

#[test]
fn non_root_down_and_exec_say_which_command_needs_root() {
    let sb = Sandbox::new();
    for (args, command) in [(&["down", "x"][..], "down"), (&["exec", "x", "a", "--", "true"][..], "exec")] {
        let mut c = sb.cmd_as(NOBODY, NOBODY, labctl_bin());
        c.args(args);
        Command::from_std(c)
            .assert()
            .code(3)
            .stderr(predicate::str::contains(format!("`labctl {command}` needs root")))
            .stderr(predicate::str::contains("building a lab").not());
    }
}

#[test]
fn graph_takes_a_running_labs_name_and_shell_shows_the_node() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = tiny_lab(tmp.path(), "named", "");
    let sb = Sandbox::new();
    labctl(&sb, tmp.path()).arg("up").arg(&lab).assert().success();
    labctl(&sb, Path::new("/"))
        .args(["graph", "named"])
        .assert()
        .success()
        .stdout(predicate::str::contains("198.18.0.1/24"));
    labctl(&sb, Path::new("/"))
        .args(["shell", "named", "a"])
        .env("SHELL", "/bin/bash")
        .write_stdin("echo \"PROMPT=$PS1\"\nexit\n")
        .assert()
        .success()
        .stdout(predicate::str::contains("PROMPT=(named:a) "));
    labctl(&sb, Path::new("/")).args(["down", "named"]).assert().success();
}
