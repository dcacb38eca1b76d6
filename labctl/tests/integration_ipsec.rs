//! IPsec labs end to end, each test in its own Sandbox (tests/common):
//!
//! - part5 (strongSwan, user-space ESP): up, ping across the tunnel, down;
//!   afterwards no charon, no TUN device, no XFRM state or policy, nothing;
//! - `kill -9` of `labctl up` while it starts the daemons, then `down`;
//! - the kernel backend where the kernel has ESP, else SKIP with the reason.
//!
//! Own harness (`harness = false`): a test the machine cannot run is
//! reported as skipped ("ignored" in the summary), never as passed.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use common::*;

enum Outcome {
    Passed,
    Skipped(String),
}

type Test = fn() -> Outcome;

fn part5() -> PathBuf {
    lab_path("part5.lua")
}

/// The pid a node's charon wrote to its pidfile, read through the sandbox.
fn charon_pid(sb: &Sandbox, lab: &str, node: &str) -> Option<u32> {
    let path = sb.path(format!("/run/labctl/{lab}/ipsec/{node}/charon.pid"));
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Running (not gone, not a zombie waiting to be reaped).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => !matches!(stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()), Some("Z" | "X")),
    }
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string()
}

/// XFRM states and policies of the sandbox's own (host) namespace, and
/// links named like a TUN from charon: all must stay empty.
#[track_caller]
fn assert_no_ipsec_left(sb: &Sandbox, what: &str) {
    let states = sb.run_ok("ip", ["xfrm", "state"]);
    let policies = sb.run_ok("ip", ["xfrm", "policy"]);
    assert!(states.trim().is_empty(), "{what}: XFRM states left in the sandbox:\n{states}");
    assert!(policies.trim().is_empty(), "{what}: XFRM policies left in the sandbox:\n{policies}");
    let links = sb.run_ok("ip", ["-o", "link"]);
    assert!(!links.contains("ipsec0"), "{what}: a TUN ipsec0 in the sandbox:\n{links}");
    assert!(sb.netns_list().is_empty(), "{what}: namespaces left: {:?}", sb.netns_list());
}

#[track_caller]
fn assert_stopped(pids: &[u32], what: &str) {
    let deadline = Instant::now() + SETTLE;
    while pids.iter().any(|&p| running(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: Vec<String> = pids.iter().filter(|&&p| running(p)).map(|p| format!("{p} ({})", comm(*p))).collect();
    assert!(left.is_empty(), "{what}: charon still running: {left:?}");
}

fn part5_up_ping_across_the_tunnel_down_leaves_nothing() -> Outcome {
    let sb = Sandbox::new();
    let before = sb.host_state();
    assert_code(&sb.labctl([Path::new("up"), &part5()]), 0, "labctl up labs/part5.lua");

    let pids: Vec<u32> = ["gw_cloud", "gw_onprem"]
        .iter()
        .map(|n| {
            charon_pid(&sb, "part5", n).unwrap_or_else(|| panic!("no charon.pid for {n}: {:?}", sb.labctl_state()))
        })
        .collect();
    for &pid in &pids {
        assert!(running(pid) && comm(pid) == "charon", "pid {pid} is not a running charon ({})", comm(pid));
    }
    // `up` returned with the tunnel up: the first ping crosses it.
    let out = sb.labctl(["exec", "part5", "vpc1", "--", "ping", "-c", "1", "-W", "2", "198.19.20.10"]);
    assert!(out.status.success(), "vpc1 cannot ping op1 through the tunnel\n{}", describe(&out));
    let out = sb.labctl(["exec", "part5", "op1", "--", "ping", "-c", "1", "-W", "2", "198.19.10.11"]);
    assert!(out.status.success(), "op1 cannot ping vpc2 through the tunnel\n{}", describe(&out));
    let tun = sb.run_ok("ip", ["-n", "part5-gw_cloud", "-o", "link", "show", "ipsec0"]);
    assert!(tun.contains("ipsec0"), "no TUN ipsec0 on gw_cloud: {tun}");
    // Nothing of it in the sandbox's own namespace while it runs either.
    let states = sb.run_ok("ip", ["xfrm", "state"]);
    assert!(states.trim().is_empty(), "XFRM states in the host namespace while up:\n{states}");

    assert_code(&sb.labctl(["down", "part5"]), 0, "labctl down part5");
    assert_stopped(&pids, "after down");
    assert_no_ipsec_left(&sb, "after down");
    sb.assert_clean(&before, "after part5 down");
    Outcome::Passed
}

fn down_after_kill_9_of_up_stops_the_daemons() -> Outcome {
    let sb = Sandbox::new();
    let before = sb.host_state();
    let mut up = sb.labctl_cmd();
    up.arg("up").arg(part5()).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: setrlimit is async-signal-safe; no core file from the kill.
    unsafe {
        up.pre_exec(|| {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)?;
            Ok(())
        });
    }
    let mut child = up.spawn().expect("spawn labctl up");
    // Kill it as soon as the first daemon exists: mid-step, tunnel not up yet.
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        if let Some(pid) = charon_pid(&sb, "part5", "gw_onprem") {
            break pid;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("labctl up ended ({status}) before any charon started");
        }
        assert!(Instant::now() < deadline, "no charon started within 30 s");
        std::thread::sleep(Duration::from_millis(2));
    };
    child.kill().expect("kill -9 labctl up");
    let _ = child.wait();
    let mut pids = vec![first];
    pids.extend(charon_pid(&sb, "part5", "gw_cloud"));

    assert_code(&sb.labctl(["down", "part5"]), 0, "labctl down part5 after kill -9 of up");
    assert_stopped(&pids, "down after kill -9 of up");
    assert_no_ipsec_left(&sb, "down after kill -9 of up");
    sb.assert_clean(&before, "down after kill -9 of up");
    Outcome::Passed
}

/// `labctl test labs/part5.lua` against the committed snapshots, from a
/// scratch copy (a failure leaves its `.snap.new` there, not in the repo).
fn part5_passes_against_its_committed_snapshots() -> Outcome {
    let tmp = temp_dir("test-part5");
    let root = tmp.path().to_path_buf();
    std::fs::create_dir_all(root.join("labs")).unwrap();
    let lab = root.join("labs/part5.lua");
    std::fs::copy(part5(), &lab).unwrap();
    let snapshots = root.join("snapshots/part5");
    std::fs::create_dir_all(&snapshots).unwrap();
    let committed = repo_root().join("snapshots/part5");
    for entry in std::fs::read_dir(&committed).unwrap_or_else(|e| panic!("{}: {e}", committed.display())) {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "snap") {
            std::fs::copy(&path, snapshots.join(path.file_name().unwrap())).unwrap();
        }
    }
    let sb = Sandbox::new();
    let before = sb.host_state();
    let mut c = sb.labctl_cmd();
    c.arg("test").arg(&lab).env_remove("GITHUB_ACTIONS");
    let out = output(&mut c);
    let stdout = assert_code(&out, 0, "labctl test labs/part5.lua (run it yourself to see the diff)");
    assert!(stdout.contains("test: 5 passed, 0 failed"), "{stdout}");
    sb.assert_clean(&before, "after labctl test labs/part5.lua");
    Outcome::Passed
}

const KERNEL_LAB: &str = r#"
lab { name = "esp" }
local h1, gw1, gw2, h2 = node("h1"), node("gw1"), node("gw2"), node("h2")
link(h1, gw1, { "198.19.10.10/24", "198.19.10.1/24" })
link(gw1, gw2, { "198.18.1.1/24", "198.18.1.2/24" })
link(gw2, h2, { "198.19.20.1/24", "198.19.20.10/24" })
h1:route("default", "198.19.10.1")
h2:route("default", "198.19.20.1")
gw1:route("198.19.20.0/24", "198.18.1.2")
gw2:route("198.19.10.0/24", "198.18.1.1")
gw1:sysctl("net.ipv4.ip_forward", 1)
gw2:sysctl("net.ipv4.ip_forward", 1)
ipsec { left = gw1, right = gw2, left_subnet = "198.19.10.0/24", right_subnet = "198.19.20.0/24", backend = "kernel" }
"#;

/// The kernel backend needs the kernel's ESP. Probed in the sandbox with
/// `labctl doctor`; without it this test is skipped, with the reason.
fn kernel_backend_tunnel_or_skip() -> Outcome {
    let sb = Sandbox::new();
    let doctor = sb.labctl_ok(["doctor", "--json"]);
    let findings: serde_json::Value = serde_json::from_str(&doctor).expect("doctor --json is JSON");
    let esp = findings
        .as_array()
        .and_then(|a| a.iter().find(|f| f["check"] == "kernel ESP (XFRM)"))
        .unwrap_or_else(|| panic!("doctor reports no ESP check:\n{doctor}"))
        .clone();
    if esp["ok"] != true {
        return Outcome::Skipped(format!("kernel has no ESP (INET_ESP): {}", esp["detail"].as_str().unwrap_or("?")));
    }
    let tmp = temp_dir("esp");
    let dir = tmp.path().to_path_buf();
    let file = dir.join("esp.lua");
    std::fs::write(&file, KERNEL_LAB).unwrap();
    let before = sb.host_state();
    assert_code(&sb.labctl([Path::new("up"), &file]), 0, "labctl up (kernel backend)");
    let out = sb.labctl(["exec", "esp", "h1", "--", "ping", "-c", "2", "-W", "2", "198.19.20.10"]);
    assert!(out.status.success(), "h1 cannot ping h2 through the kernel tunnel\n{}", describe(&out));
    let states = sb.run_ok("ip", ["-n", "esp-gw1", "-s", "xfrm", "state"]);
    assert_eq!(states.matches("proto esp").count(), 2, "gw1's SAs:\n{states}");
    let policies = sb.run_ok("ip", ["-n", "esp-gw1", "xfrm", "policy"]);
    assert!(policies.contains("dir fwd"), "gw1's policies:\n{policies}");
    assert_code(&sb.labctl(["down", "esp"]), 0, "labctl down esp");
    assert_no_ipsec_left(&sb, "after the kernel lab is down");
    sb.assert_clean(&before, "after the kernel lab is down");
    Outcome::Passed
}

fn main() -> ExitCode {
    let tests: &[(&str, Test)] = &[
        ("part5_up_ping_across_the_tunnel_down_leaves_nothing", part5_up_ping_across_the_tunnel_down_leaves_nothing),
        ("down_after_kill_9_of_up_stops_the_daemons", down_after_kill_9_of_up_stops_the_daemons),
        ("part5_passes_against_its_committed_snapshots", part5_passes_against_its_committed_snapshots),
        ("kernel_backend_tunnel_or_skip", kernel_backend_tunnel_or_skip),
    ];
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    println!("\nrunning {} tests", tests.len());
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        match std::panic::catch_unwind(test) {
            Ok(Outcome::Passed) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Ok(Outcome::Skipped(why)) => {
                println!("test {name} ... SKIP: {why}");
                skipped += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {passed} passed; {failed} failed; {skipped} ignored; 0 measured; 0 filtered out\n"
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
