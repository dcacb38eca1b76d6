//! The acceptance of every lab as a user runs it: `labctl test labs/` inside
//! a throwaway network and mount namespace passes against the committed
//! snapshots, and leaves nothing behind. One test in its own binary, so no
//! other test loads the CPUs while the labs measure their shapes.

mod common;

use common::*;

#[test]
fn every_lab_passes_labctl_test() {
    let sb = Sandbox::new();
    let before = sb.host_state();
    let labs = repo_root().join("labs");
    let mut command = sb.labctl_cmd();
    command.arg("test").arg(&labs).env_remove("GITHUB_ACTIONS");
    let out = output(&mut command);
    let stdout = assert_code(&out, 0, "labctl test labs/");
    assert!(stdout.contains(" passed, 0 failed"), "no closing line in:\n{stdout}");
    for lab in ["part1", "part2", "part3", "part4", "part5"] {
        assert!(stdout.contains(&format!("{lab}.lua")), "{lab} did not run:\n{stdout}");
    }
    sb.assert_clean(&before, "after labctl test labs/");
}
