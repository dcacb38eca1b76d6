//! The views that need no root: `labctl graph` (Mermaid and DOT) and
//! `labctl plan`, run as a user would, snapshotted with insta.

use std::path::PathBuf;
use std::process::Command;

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
fn plan_json_lists_every_step() {
    let text = labctl(&["plan", "labs/part1.lua", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&text).expect("plan --json is JSON");
    let steps = plan["steps"].as_array().expect("a steps array");
    assert_eq!(plan["lab"], "part1");
    assert_eq!(steps.iter().filter(|s| s["step"] == "create_namespace").count(), 5);
    assert_eq!(steps.iter().filter(|s| s["step"] == "create_veth").count(), 4);
}
