//! The CLI contract end to end, each test in its own Sandbox (tests/common):
//! up/exec/down of part1, crash recovery and rollback at every plan step,
//! two labs with the same node names, idempotent down, bad scripts (exit 2,
//! nothing created) and missing privileges (exit 3).

mod common;

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

/// part1's hosts and their IPv4 addresses (labs/part1.lua).
const PART1_HOSTS: [(&str, &str); 3] = [("h1", "198.18.0.1"), ("h2", "198.18.0.2"), ("h3", "198.18.1.1")];

fn part1() -> PathBuf {
    lab_path("part1.lua")
}

/// `labctl exec LAB NODE -- ping -c 1 -W 2 ADDR`.
fn ping(sb: &Sandbox, lab: &str, node: &str, addr: &str) -> Output {
    sb.labctl(["exec", lab, node, "--", "ping", "-c", "1", "-W", "2", addr])
}

#[track_caller]
fn assert_ping(sb: &Sandbox, lab: &str, node: &str, addr: &str) {
    let out = ping(sb, lab, node, addr);
    assert!(out.status.success(), "{lab}: {node} cannot ping {addr}\n{}", describe(&out));
}

/// Number of steps in `labctl plan FILE --json` (`steps.len()`).
fn plan_steps(sb: &Sandbox, file: &Path) -> usize {
    let out = sb.labctl_ok([Path::new("plan"), file, Path::new("--json")]);
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("plan --json is not JSON ({e}):\n{out}"));
    let steps = v["steps"].as_array().unwrap_or_else(|| panic!("plan --json has no steps array:\n{out}"));
    assert!(!steps.is_empty(), "empty plan for {}", file.display());
    steps.len()
}

/// A host state without the sections a running lab legitimately changes:
/// its `/run/netns` entries and state directory, and the kernel's netns ids
/// (allocated in the host for namespaces it talks about; they go with them).
fn without_lab_bookkeeping(state: &str) -> String {
    let mut keep = true;
    let mut s = String::new();
    for line in state.lines() {
        if let Some(section) = line.strip_prefix("## ") {
            keep = !matches!(section, "netns ids" | "/run/netns" | "/run/labctl");
        }
        if keep {
            s.push_str(line);
            s.push('\n');
        }
    }
    s
}

/// Writes a lab script into `dir` and returns its path.
fn write_script(dir: &Path, file: &str, text: &str) -> PathBuf {
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn part1_up_ping_everyone_down_leaves_nothing() {
    let sb = Sandbox::new();
    let before = sb.host_state();

    let out = sb.labctl([Path::new("up"), &part1()]);
    assert_code(&out, 0, "labctl up labs/part1.lua");
    let ns = sb.netns_list();
    for node in ["h1", "h2", "h3", "r1"] {
        let name = format!("part1-{node}");
        assert!(ns.contains(&name), "no netns {name} after up: {ns:?}");
    }
    assert!(sb.path("/run/labctl/part1").is_dir(), "no state in /run/labctl/part1: {:?}", sb.labctl_state());
    // principle 2: nothing changed in the namespace labctl ran in
    assert_same_state(
        &without_lab_bookkeeping(&before),
        &without_lab_bookkeeping(&sb.host_state()),
        "while part1 is up",
    );
    // nothing keeps running in the background
    assert!(sb.processes().is_empty(), "{:?}", sb.processes());

    // every host reaches every other: over the bridge and through r1
    for (from, _) in PART1_HOSTS {
        for (to, addr) in PART1_HOSTS {
            if from != to {
                assert_ping(&sb, "part1", from, addr);
            }
        }
    }

    let ls = sb.labctl_ok(["ls"]);
    assert!(ls.contains("part1"), "ls does not list part1:\n{ls}");
    let show = sb.labctl_ok(["show", "part1", "--json"]);
    let v: serde_json::Value =
        serde_json::from_str(&show).unwrap_or_else(|e| panic!("show --json is not JSON ({e}):\n{show}"));
    assert!(v.to_string().contains("198.18.1.1"), "show --json misses h3:\n{show}");

    assert_code(&sb.labctl(["down", "part1"]), 0, "labctl down part1");
    sb.assert_clean(&before, "after part1 down");
}

#[test]
fn abort_after_every_step_then_down_cleans_up() {
    let sb = Sandbox::new();
    let steps = plan_steps(&sb, &part1());
    let before = sb.host_state();
    for k in 1..=steps {
        let mut c = sb.labctl_cmd();
        c.arg("up").arg(part1()).env("LABCTL_FAULT_ABORT_AFTER", k.to_string());
        // SAFETY: setrlimit is async-signal-safe; no core file per abort.
        unsafe {
            c.pre_exec(|| {
                nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)?;
                Ok(())
            });
        }
        let out = output(&mut c);
        assert!(
            out.status.signal().is_some(),
            "LABCTL_FAULT_ABORT_AFTER={k}/{steps}: expected up to die by a signal\n{}",
            describe(&out)
        );
        // journal first, kernel second: what step k made is on record
        assert!(!sb.labctl_state().is_empty(), "abort after step {k}/{steps}: nothing in /run/labctl to recover from");
        let down = sb.labctl(["down", "part1"]);
        assert_code(&down, 0, &format!("down after abort at step {k}/{steps}"));
        sb.assert_clean(&before, &format!("abort after step {k}/{steps}, then down"));
    }
}

#[test]
fn fail_at_every_step_rolls_back() {
    let sb = Sandbox::new();
    let steps = plan_steps(&sb, &part1());
    let before = sb.host_state();
    for k in 1..=steps {
        let mut c = sb.labctl_cmd();
        c.arg("up").arg(part1()).env("LABCTL_FAULT_FAIL_AT", k.to_string());
        let out = output(&mut c);
        assert_code(&out, 1, &format!("LABCTL_FAULT_FAIL_AT={k}/{steps}"));
        // no down: the rollback alone must leave nothing
        sb.assert_clean(&before, &format!("rollback of a failure at step {k}/{steps}"));
    }
}

#[test]
fn two_labs_with_the_same_node_names() {
    let tmp = temp_dir("twins");
    let dir = tmp.path().to_path_buf();
    let script = |lab: &str| {
        format!(
            "lab {{ name = \"{lab}\" }}\n\
             local h1, h2 = node(\"h1\"), node(\"h2\")\n\
             local sw = bridge(\"sw\")\n\
             link(h1, sw, {{ \"198.18.0.1/24\" }})\n\
             link(h2, sw, {{ \"198.18.0.2/24\" }})\n"
        )
    };
    let a = write_script(&dir, "twina.lua", &script("twina"));
    let b = write_script(&dir, "twinb.lua", &script("twinb"));

    let sb = Sandbox::new();
    let before = sb.host_state();
    assert_code(&sb.labctl([Path::new("up"), &a]), 0, "up twina");
    assert_code(&sb.labctl([Path::new("up"), &b]), 0, "up twinb");
    let ns = sb.netns_list();
    for name in ["twina-h1", "twina-h2", "twinb-h1", "twinb-h2"] {
        assert!(ns.contains(&name.to_string()), "no netns {name}: {ns:?}");
    }
    for lab in ["twina", "twinb"] {
        assert_ping(&sb, lab, "h1", "198.18.0.2");
        assert_ping(&sb, lab, "h2", "198.18.0.1");
    }
    let ls = sb.labctl_ok(["ls"]);
    assert!(ls.contains("twina") && ls.contains("twinb"), "ls:\n{ls}");

    // one down by name, one by file; the other lab is untouched
    assert_code(&sb.labctl(["down", "twina"]), 0, "down twina");
    assert!(sb.netns_list().iter().all(|n| !n.starts_with("twina-")));
    assert_ping(&sb, "twinb", "h1", "198.18.0.2");
    assert_code(&sb.labctl([Path::new("down"), &b]), 0, "down twinb.lua");
    sb.assert_clean(&before, "after both twins are down");
}

#[test]
fn down_is_idempotent() {
    let sb = Sandbox::new();
    let before = sb.host_state();
    assert_code(&sb.labctl(["down", "nosuchlab"]), 0, "down of a never-started lab");
    assert_code(&sb.labctl([Path::new("down"), &part1()]), 0, "down of a never-started lab, by file");
    sb.assert_clean(&before, "after down of labs that never ran");

    assert_code(&sb.labctl([Path::new("up"), &part1()]), 0, "up part1");
    assert_code(&sb.labctl(["down", "part1"]), 0, "first down");
    sb.assert_clean(&before, "after the first down");
    assert_code(&sb.labctl(["down", "part1"]), 0, "second down");
    assert_code(&sb.labctl([Path::new("down"), &part1()]), 0, "third down, by file");
    sb.assert_clean(&before, "after repeated downs");
}

/// Asserts `labctl up FILE` was refused as bad input and created nothing.
#[track_caller]
fn assert_rejected(sb: &Sandbox, before: &str, file: &Path, location: Option<&str>) {
    let out = sb.labctl([Path::new("up"), file]);
    let what = format!("up {}", file.display());
    assert_code(&out, 2, &what);
    let err = stderr(&out);
    match location {
        Some(loc) => assert!(err.contains(loc), "{what}: stderr lacks {loc}\n{err}"),
        None => assert!(has_file_line(&err), "{what}: stderr has no file.lua:LINE\n{err}"),
    }
    let ns = sb.netns_list();
    assert!(ns.is_empty(), "{what}: created netns {ns:?}");
    assert!(!sb.path("/run/labctl").exists(), "{what}: created /run/labctl: {:?}", sb.labctl_state());
    assert_same_state(before, &sb.host_state(), &what);
}

/// Whether `s` contains `<something>.lua:<digits>`.
fn has_file_line(s: &str) -> bool {
    s.match_indices(".lua:").any(|(i, m)| s[i + m.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

#[test]
fn bad_scripts_exit_2_with_file_line_and_create_nothing() {
    let tmp = temp_dir("bad");
    let dir = tmp.path().to_path_buf();
    let cases = [
        ("bad_syntax.lua", "local h1 = node(\"h1\")\nlocal x = = 1\n", "bad_syntax.lua:2"),
        ("bad_call.lua", "lab { name = \"badcall\" }\nlocal h1 = node(\"h1\")\nnod(\"h2\")\n", "bad_call.lua:3"),
        (
            "bad_addr.lua",
            "lab { name = \"badaddr\" }\nlocal h1 = node(\"h1\")\nlocal h2 = node(\"h2\")\n\
             link(h1, h2, { \"198.18.0.1/33\", \"198.18.0.2/24\" })\n",
            "bad_addr.lua:4",
        ),
        (
            "bad_dup.lua",
            "lab { name = \"baddup\" }\nlocal h1 = node(\"h1\")\nlocal again = node(\"h1\")\n",
            "bad_dup.lua:3",
        ),
    ];
    let sb = Sandbox::new();
    let before = sb.host_state();
    for (file, text, loc) in cases {
        let p = write_script(&dir, file, text);
        assert_rejected(&sb, &before, &p, Some(loc));
    }
    // the whole corpus of bad scripts, through the CLI
    let corpus = repo_root().join("fixtures/bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap_or_else(|e| panic!("{}: {e}", corpus.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "lua"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scripts in {}", corpus.display());
    for f in &files {
        assert_rejected(&sb, &before, f, None);
    }
}

#[test]
fn usage_errors_exit_2() {
    let sb = Sandbox::new();
    for args in [&["frobnicate"][..], &["up"], &["up", "/nonexistent/lab.lua"], &["exec", "part1"]] {
        let out = sb.labctl(args);
        assert_code(&out, 2, &format!("labctl {}", args.join(" ")));
    }
    assert!(sb.netns_list().is_empty());
    assert!(!sb.path("/run/labctl").exists());
}

#[test]
fn up_as_non_root_exits_3() {
    let sb = Sandbox::new();
    let before = sb.host_state();
    // Make the binary and the script reachable for nobody whatever the
    // permissions of the checkout: bind them under the sandbox's /run.
    let bin = "/run/it-bin/labctl";
    let lab = "/run/it-bin/part1.lua";
    sb.run_ok("mkdir", ["-m", "755", "-p", "/run/it-bin"]);
    sb.run_ok("touch", [bin, lab]);
    sb.run_ok("mount", [Path::new("--bind"), &labctl_bin(), Path::new(bin)]);
    sb.run_ok("mount", [Path::new("--bind"), &part1(), Path::new(lab)]);

    let mut c = sb.cmd_as(NOBODY, NOBODY, bin);
    c.args(["up", lab]).env_remove("LABCTL_FAULT_ABORT_AFTER").env_remove("LABCTL_FAULT_FAIL_AT");
    let out = output(&mut c);
    assert_code(&out, 3, "labctl up as nobody");
    let err = stderr(&out).to_lowercase();
    assert!(
        err.contains("root") || err.contains("cap_net_admin"),
        "the message should say what privileges are missing:\n{err}"
    );
    assert!(sb.netns_list().is_empty(), "{:?}", sb.netns_list());
    assert!(!sb.path("/run/labctl").exists(), "{:?}", sb.labctl_state());
    assert_same_state(&before, &sb.host_state(), "after up as nobody");
}
