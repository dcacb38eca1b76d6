//! The views, run as a user would, snapshotted with insta: `labctl graph`
//! (Mermaid and DOT) and `labctl plan` need no root; `labctl show` needs a
//! running lab, brought up in a throwaway Sandbox (tests/common, root).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{describe, labctl_bin, output, repo_root, require_root, Sandbox};

fn labctl(args: &[&str]) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO_BIN_EXE_labctl")).args(args).current_dir(&root).output().expect("labctl runs");
    assert!(out.status.success(), "labctl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn graph_of_part1_as_mermaid_and_dot() {
    insta::assert_snapshot!("part1_mermaid", labctl(&["graph", "labs/part1.lua"]));
    insta::assert_snapshot!("part1_dot", labctl(&["graph", "labs/part1.lua", "--format", "dot"]));
}

#[test]
fn graph_of_part4_marks_the_interfaces_with_xdp() {
    insta::assert_snapshot!("part4_mermaid", labctl(&["graph", "labs/part4.lua"]));
    insta::assert_snapshot!("part4_dot", labctl(&["graph", "labs/part4.lua", "--format", "dot"]));
}

#[test]
fn graph_of_part5_draws_the_ipsec_tunnel_as_a_dashed_edge() {
    insta::assert_snapshot!("part5_mermaid", labctl(&["graph", "labs/part5.lua"]));
    insta::assert_snapshot!("part5_dot", labctl(&["graph", "labs/part5.lua", "--format", "dot"]));
}

/// `labctl show` of `labs/<lab>.lua` brought up in a Sandbox: the text (repository
/// root written `[repo]`) and the JSON. Runs from the repository root so the
/// script's paths read `labs/...` on every machine.
fn show_of_running(lab: &str) -> (String, serde_json::Value) {
    require_root();
    let sb = Sandbox::new();
    let in_repo = |args: &[&str]| {
        let out = output(sb.cmd_in(repo_root(), labctl_bin()).args(args));
        assert!(out.status.success(), "labctl {args:?} failed\n{}", describe(&out));
        String::from_utf8(out.stdout).expect("utf-8 output")
    };
    in_repo(&["up", &format!("labs/{lab}.lua")]);
    wait_for_settled_link_states(&|| serde_json::from_str(&in_repo(&["show", lab, "--json"])).expect("JSON"));
    // Neighbour states (reachable, delay, ...) change with time: left out.
    let text = without_section(&in_repo(&["show", lab]), "neighbours (from the kernel):")
        .replace(&repo_root().display().to_string(), "[repo]");
    let json = serde_json::from_str(&in_repo(&["show", lab, "--json"])).expect("show --json is JSON");
    in_repo(&["down", lab]);
    (text, json)
}

/// The kernel reports a new veth's state as "unknown" until its link watch
/// has run (up to a second): wait until every veth and bridge says "up".
fn wait_for_settled_link_states(show: &dyn Fn() -> serde_json::Value) {
    let started = std::time::Instant::now();
    loop {
        let json = show();
        let settled = json["actual"].as_object().expect("show --json has the kernel's side").values().all(|node| {
            node["interfaces"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["name"] == "lo" || i["name"] == "ipsec0" || i["state"] == "up")
        });
        if settled || started.elapsed() > std::time::Duration::from_secs(5) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `text` without the section that starts with the line `title` (up to the next blank line).
fn without_section(text: &str, title: &str) -> String {
    let mut out = Vec::new();
    let mut skipping = false;
    for line in text.lines() {
        if line == title {
            skipping = true;
        } else if skipping && line.is_empty() {
            skipping = false;
            continue;
        }
        if !skipping {
            out.push(line);
        }
    }
    out.join("\n") + "\n"
}

/// The fields `show --json` had before XDP and IPsec: still there.
#[track_caller]
fn assert_earlier_fields(json: &serde_json::Value) {
    for field in ["name", "state", "script", "namespaces", "interfaces", "lab", "actual", "drift"] {
        assert!(json.get(field).is_some(), "show --json lost {field:?}");
    }
    assert_eq!(json["state"], "up");
}

/// Only the fields `show --json` gained for XDP and IPsec, pretty-printed.
fn xdp_and_ipsec(json: &serde_json::Value) -> String {
    let fields = serde_json::json!({ "xdp": json["xdp"], "ipsec": json["ipsec"] });
    serde_json::to_string_pretty(&fields).expect("serializes")
}

#[test]
fn show_of_part4_lists_xdp_programs_per_interface() {
    let (text, json) = show_of_running("part4");
    assert_earlier_fields(&json);
    insta::assert_snapshot!("show_part4", text);
    insta::assert_snapshot!("show_part4_json", xdp_and_ipsec(&json));
}

#[test]
fn show_of_part5_lists_the_ipsec_tunnel() {
    // part5 pins the strongSwan backend: without charon the lab cannot come up.
    if !labctl::apply::ipsec::strongswan::installed() {
        eprintln!("SKIP show_of_part5_lists_the_ipsec_tunnel: strongSwan (charon) is not installed");
        return;
    }
    let (text, json) = show_of_running("part5");
    assert_earlier_fields(&json);
    insta::assert_snapshot!("show_part5", text);
    insta::assert_snapshot!("show_part5_json", xdp_and_ipsec(&json));
}

#[test]
fn plan_json_lists_every_step() {
    let text = labctl(&["plan", "labs/part1.lua", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&text).expect("plan --json is JSON");
    let steps = plan["steps"].as_array().expect("a steps array");
    assert_eq!(plan["lab"], "part1");
    assert_eq!(steps.iter().filter(|s| s["step"] == "create_namespace").count(), 5);
    assert_eq!(steps.iter().filter(|s| s["step"] == "create_veth").count(), 4);
}
