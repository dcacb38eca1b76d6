//! XDP in labs, end to end, each test in its own Sandbox (tests/common):
//! every fixture under fixtures/xdp/ compiled from source and attached in
//! native mode; attachment checked through rtnetlink (`ip -j -d link`), not
//! through labctl's own state; map counts against packets sent; nothing
//! attached or pinned after `down`, after `kill -9` of `up` at the attach
//! step, and after a rollback; compile errors, verifier rejections, missing
//! clang and bad declarations stop `up` before anything is created; maps
//! read and written and programs attached from an experiment.

mod common;

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

fn fixture(name: &str) -> PathBuf {
    repo_root().join("fixtures/xdp").join(name)
}

/// Every C program under fixtures/xdp/, sorted: (file stem = program name, path).
fn fixtures() -> Vec<(String, PathBuf)> {
    let mut all: Vec<(String, PathBuf)> = std::fs::read_dir(repo_root().join("fixtures/xdp"))
        .expect("fixtures/xdp exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    all.sort();
    all
}

fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap();
    p
}

/// A two-node lab `name` (h1:eth0 198.18.0.1 <-> h2:eth0 198.18.0.2) plus `extra` Lua.
fn two_nodes(dir: &Path, name: &str, extra: &str) -> PathBuf {
    write(
        dir,
        &format!("{name}.lua"),
        &format!(
            "lab {{ name = {name:?} }}\nlocal h1 = node(\"h1\")\nlocal h2 = node(\"h2\")\nlink(h1, h2, {{ \"198.18.0.1/24\", \"198.18.0.2/24\" }})\n{extra}\n"
        ),
    )
}

/// The XDP state of `ifname` in netns `ns` as rtnetlink reports it
/// (`ip -j -d link show`): (IFLA_XDP_ATTACHED mode, program id), or None.
fn xdp_of(sb: &Sandbox, ns: &str, ifname: &str) -> Option<(u64, u64)> {
    let out = sb.run_ok("ip", ["-n", ns, "-j", "-d", "link", "show", ifname]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip -j is not JSON ({e}): {out}"));
    let xdp = v[0].get("xdp")?;
    Some((xdp["mode"].as_u64()?, xdp["prog"]["id"].as_u64()?))
}

/// XDP_ATTACHED_DRV: native mode.
const ATTACHED_NATIVE: u64 = 1;
const ATTACHED_GENERIC: u64 = 2;

/// Is a BPF program with this id loaded anywhere on the machine?
fn program_loaded(sb: &Sandbox, id: u64) -> bool {
    sb.run("bpftool", ["prog", "show", "id", &id.to_string()]).status.success()
}

/// Waits (a program is freed a moment after its last reference goes) until
/// program `id` is gone; panics if it stays.
#[track_caller]
fn assert_program_gone(sb: &Sandbox, id: u64, what: &str) {
    let t0 = Instant::now();
    while program_loaded(sb, id) {
        assert!(t0.elapsed() < SETTLE, "{what}: BPF program {id} is still loaded");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Nothing of labctl left in the sandbox's bpffs.
#[track_caller]
fn assert_no_pins(sb: &Sandbox, what: &str) {
    let dir = sb.path("/sys/fs/bpf/labctl");
    assert!(
        !dir.exists(),
        "{what}: pins left: {:?}",
        std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
    );
}

/// 1-based number of the first plan step named `kind` (`attach_xdp`, ...).
fn step_number(sb: &Sandbox, file: &Path, kind: &str) -> usize {
    let out = sb.labctl_ok([Path::new("plan"), file, Path::new("--json")]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let steps = v["steps"].as_array().expect("steps");
    steps.iter().position(|s| s["step"] == kind).unwrap_or_else(|| panic!("no {kind} step in {out}")) + 1
}

#[test]
fn every_fixture_compiles_and_attaches_natively() {
    let sb = Sandbox::new();
    let tmp = temp_dir("xdp-fixtures");
    let dir = tmp.path().to_path_buf();
    let before = sb.host_state();
    let all = fixtures();
    assert!(all.len() >= 6, "fixtures/xdp has {} programs", all.len());
    // h1 -- h2 with one link per fixture; h2:ethN runs fixture N.
    let mut text = String::from("lab { name = \"xfix\" }\nlocal h1 = node(\"h1\")\nlocal h2 = node(\"h2\")\n");
    for (i, (name, path)) in all.iter().enumerate() {
        text.push_str(&format!("link(h1, h2, {{ \"198.18.{i}.1/24\", \"198.18.{i}.2/24\" }})\n"));
        text.push_str(&format!(
            "xdp(\"h2:eth{i}\", {{ src = {:?}, prog = {name:?}, mode = \"native\" }})\n",
            path.display().to_string()
        ));
    }
    let lab = write(&dir, "xfix.lua", &text);
    // A fresh cache: every program is compiled from source here.
    let cache = dir.join("cache");
    let mut up = sb.labctl_cmd();
    up.arg("up").arg(&lab).env("LABCTL_BPF_CACHE", &cache);
    assert_code(&output(&mut up), 0, "up with every fixture");
    let mut ids = Vec::new();
    for (i, (name, _)) in all.iter().enumerate() {
        let (mode, id) = xdp_of(&sb, "xfix-h2", &format!("eth{i}")).unwrap_or_else(|| panic!("{name}: not attached"));
        assert_eq!(mode, ATTACHED_NATIVE, "{name}: not in native mode");
        ids.push(id);
    }
    let objects =
        std::fs::read_dir(&cache).unwrap().flatten().filter(|e| e.path().extension().is_some_and(|x| x == "o")).count();
    assert_eq!(objects, all.len(), "one object compiled per fixture");
    assert_code(&sb.labctl(["down", "xfix"]), 0, "down");
    for id in ids {
        assert_program_gone(&sb, id, "after down");
    }
    assert_no_pins(&sb, "after down");
    sb.assert_clean(&before, "after down");
}

#[test]
fn native_attach_counts_packets_and_down_detaches() {
    let sb = Sandbox::new();
    let tmp = temp_dir("xdp-count");
    let dir = tmp.path().to_path_buf();
    let before = sb.host_state();
    let lab = two_nodes(
        &dir,
        "xcount",
        &format!(
            "xdp(\"h2:eth0\", {{ src = {:?}, prog = \"xdp_count\", mode = \"native\" }})",
            fixture("xdp_count.c").display().to_string()
        ),
    );
    assert_code(&sb.labctl([Path::new("up"), &lab]), 0, "up");

    // The kernel says: native mode, our program.
    let (mode, id) = xdp_of(&sb, "xcount-h2", "eth0").expect("XDP attached to h2:eth0");
    assert_eq!(mode, ATTACHED_NATIVE);
    let show = sb.run_ok("bpftool", ["-j", "prog", "show", "id", &id.to_string()]);
    assert!(show.contains("\"name\":\"xdp_count\""), "bpftool: {show}");
    // The pins are where the journal says.
    let pins = sb.path("/sys/fs/bpf/labctl/xcount/h2-eth0");
    for pin in ["link", "prog", "maps/packets", "maps/bytes", "maps/actions"] {
        assert!(pins.join(pin).exists(), "no pin {pin}");
    }
    let journal = std::fs::read_to_string(sb.path("/run/labctl/xcount/journal")).unwrap();
    assert!(
        journal.contains("\"step\":\"attach_xdp\"") && journal.contains("/sys/fs/bpf/labctl/xcount/h2-eth0"),
        "{journal}"
    );

    // 20 pings: 20 ICMP packets reach h2:eth0, and the map counts 20.
    let ping = sb.labctl(["exec", "xcount", "h1", "--", "ping", "-c", "20", "-i", "0.01", "-W", "2", "198.18.0.2"]);
    assert_code(&ping, 0, "ping through the XDP counter");
    let dump = sb.run_ok("bpftool", ["-j", "map", "dump", "pinned", "/sys/fs/bpf/labctl/xcount/h2-eth0/maps/packets"]);
    let entries: serde_json::Value = serde_json::from_str(&dump).unwrap();
    // bpftool shows the values as bytes, and with BTF also "formatted": per CPU.
    let icmp: u64 = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["formatted"])
        .find(|e| e["key"] == 1)
        .map(|e| e["values"].as_array().unwrap().iter().map(|v| v["value"].as_u64().unwrap()).sum())
        .unwrap_or(0);
    assert_eq!(icmp, 20, "ICMP packets counted by xdp_count in maps/packets[1]");

    // `labctl xdp` reads the same from the kernel.
    let shown = sb.labctl_ok(["xdp", "xcount", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(v[0]["interface"], "h2:eth0", "{shown}");
    assert_eq!(v[0]["mode"], "native", "{shown}");
    assert_eq!(v[0]["programs"][0]["id"], id, "{shown}");
    assert_eq!(v[0]["programs"][0]["maps"][0]["values"]["1"], 20, "{shown}");

    assert_code(&sb.labctl(["down", "xcount"]), 0, "down");
    assert_program_gone(&sb, id, "after down");
    assert_no_pins(&sb, "after down");
    sb.assert_clean(&before, "after down");
}

#[test]
fn kill_9_at_the_attach_step_then_down_cleans_up() {
    let sb = Sandbox::new();
    let tmp = temp_dir("xdp-abort");
    let dir = tmp.path().to_path_buf();
    let lab = two_nodes(
        &dir,
        "xabort",
        &format!("xdp(\"h2:eth0\", {{ src = {:?}, mode = \"native\" }})", fixture("xdp_drop.c").display().to_string()),
    );
    let attach = step_number(&sb, &lab, "attach_xdp");
    let before = sb.host_state();
    for k in [attach - 1, attach] {
        let mut c = sb.labctl_cmd();
        c.arg("up").arg(&lab).env("LABCTL_FAULT_ABORT_AFTER", k.to_string());
        // SAFETY: setrlimit is async-signal-safe; no core file per abort.
        unsafe {
            c.pre_exec(|| {
                nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)?;
                Ok(())
            });
        }
        let out = output(&mut c);
        assert!(out.status.signal().is_some(), "abort after step {k}: expected a signal\n{}", describe(&out));
        let attached = if k == attach {
            // Killed right after attaching: the pinned link keeps it attached.
            let (mode, id) = xdp_of(&sb, "xabort-h2", "eth0").expect("still attached after kill -9");
            assert_eq!(mode, ATTACHED_NATIVE);
            assert!(sb.path("/sys/fs/bpf/labctl/xabort/h2-eth0/link").exists(), "link not pinned");
            Some(id)
        } else {
            None
        };
        assert_code(&sb.labctl(["down", "xabort"]), 0, &format!("down after abort at step {k}"));
        if let Some(id) = attached {
            assert_program_gone(&sb, id, &format!("abort after step {k}, then down"));
        }
        assert_no_pins(&sb, &format!("abort after step {k}, then down"));
        sb.assert_clean(&before, &format!("abort after step {k}, then down"));
    }
}

#[test]
fn a_failing_attach_step_rolls_back() {
    let sb = Sandbox::new();
    let tmp = temp_dir("xdp-fail");
    let dir = tmp.path().to_path_buf();
    let lab = two_nodes(
        &dir,
        "xfail",
        &format!(
            "xdp(\"h1:eth0\", {{ src = {:?} }})\nxdp(\"h2:eth0\", {{ src = {:?} }})",
            fixture("xdp_pass.c").display().to_string(),
            fixture("xdp_count.c").display().to_string()
        ),
    );
    let first = step_number(&sb, &lab, "attach_xdp");
    let before = sb.host_state();
    // The second attach fails: the first one, attached and pinned, goes again.
    let mut c = sb.labctl_cmd();
    c.arg("up").arg(&lab).env("LABCTL_FAULT_FAIL_AT", (first + 1).to_string());
    let out = output(&mut c);
    assert_code(&out, 1, "up with a failing attach step");
    assert_no_pins(&sb, "after rollback");
    sb.assert_clean(&before, "after rollback");
}

#[test]
fn bad_programs_stop_up_before_anything_exists() {
    let sb = Sandbox::new();
    let tmp = temp_dir("xdp-bad");
    let dir = tmp.path().to_path_buf();
    let before = sb.host_state();
    let broken = write(
        &dir,
        "broken.c",
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n\nSEC(\"xdp\")\nint xdp_broken(struct xdp_md *ctx)\n{\n\treturn XDP_PASS\n}\nchar LICENSE[] SEC(\"license\") = \"GPL\";\n",
    );
    let unchecked = write(
        &dir,
        "unchecked.c",
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n\nSEC(\"xdp\")\nint xdp_unchecked(struct xdp_md *ctx)\n{\n\tunsigned char *data = (void *)(long)ctx->data;\n\n\t// no check against data_end: the verifier refuses\n\treturn data[12] == 0x08 ? XDP_DROP : XDP_PASS;\n}\nchar LICENSE[] SEC(\"license\") = \"GPL\";\n",
    );
    let attach =
        |file: &Path, opts: &str| format!("xdp(\"h2:eth0\", {{ src = {:?}{opts} }})", file.display().to_string());
    let cases: [(&str, String, i32, &[&str]); 6] = [
        // clang's own message, with the C file and line
        ("compile", attach(&broken, ""), 2, &["broken.c:7:", "error:", "nothing was created"]),
        // the verifier's verdict, from the end of its log
        ("verifier", attach(&unchecked, ""), 2, &["verifier log", "invalid access to packet"]),
        (
            "prog",
            attach(&fixture("xdp_pass.c"), ", prog = \"xdp_nope\""),
            2,
            &["no program named \"xdp_nope\"", "xdp_pass"],
        ),
        ("node", "xdp(\"r9:eth0\", { src = \"x.c\" })".into(), 2, &["bad-node.lua:5:", "no node named \"r9\""]),
        ("mode", attach(&fixture("xdp_pass.c"), ", mode = \"fast\""), 2, &["bad-mode.lua:5:", "unknown mode \"fast\""]),
        (
            "missing",
            "xdp(\"h2:eth0\", { src = \"nowhere.c\" })".into(),
            2,
            &["bad-missing.lua:5:", "nowhere.c does not exist"],
        ),
    ];
    for (name, decl, code, expected) in cases {
        let lab = two_nodes(&dir, &format!("bad-{name}"), &decl);
        let out = sb.labctl([Path::new("up"), &lab]);
        assert_code(&out, code, name);
        let err = stderr(&out);
        for e in expected {
            assert!(err.contains(e), "{name}: stderr lacks {e:?}\n{err}");
        }
        assert!(sb.netns_list().is_empty(), "{name}: created {:?}", sb.netns_list());
        assert!(!sb.path("/run/labctl").exists(), "{name}: created {:?}", sb.labctl_state());
        assert_no_pins(&sb, name);
        assert_same_state(&before, &sb.host_state(), name);
    }

    // Without clang: the error names the packages to install.
    let lab = two_nodes(&dir, "bad-clang", &attach(&fixture("xdp_pass.c"), ""));
    let mut c = sb.labctl_cmd();
    c.arg("up").arg(&lab).env("PATH", "/nonexistent");
    let out = output(&mut c);
    assert_code(&out, 1, "up without clang");
    assert!(stderr(&out).contains("apt-get install -y clang llvm libbpf-dev bpftool"), "{}", describe(&out));
    assert!(sb.netns_list().is_empty() && !sb.path("/run/labctl").exists(), "up without clang created something");
}

#[test]
fn experiments_attach_programs_and_read_and_write_maps() {
    let sb = Sandbox::new();
    let tmp = temp_dir("xdp-runtime");
    let dir = tmp.path().to_path_buf();
    let before = sb.host_state();
    let drop_port = fixture("xdp_drop_port.c").display().to_string();
    let lab = two_nodes(
        &dir,
        "xrun",
        &format!(
            r#"
local SRC = {drop_port:?}
experiment("runtime", function(x)
  x:expect(x:xdp("h2:eth0") == nil, "nothing attached at first")
  local a = x:xdp_attach("h2:eth0", {{ src = SRC, prog = "xdp_drop_port", mode = "generic" }})
  x:expect_eq(a.program, "xdp_drop_port", "attached program")
  x:expect_eq(x:xdp("h2:eth0").mode, "generic", "mode seen by the kernel")
  -- ICMP passes, UDP to 9000 is dropped once the port is in the map
  x:expect_eq(x.h1:ping("198.18.0.2", {{ count = 2 }}).received, 2, "ping passes")
  x:map_set("h2:eth0", "udp_ports", 9000, 0)
  local b = x.h1:blast {{ to = "198.18.0.2", port = 9000, count = 500, rate = 20000, mode = "ring" }}
  x:expect_eq(b.received, 0, "every packet dropped")
  x:expect_eq(x:map("h2:eth0", "udp_ports")[9000], b.sent, "the map counts the drops")
  local c = x:counters {{ "h2:eth0:xdp" }}["h2:eth0:xdp"]
  x:expect_eq(c["actions.XDP_DROP"], b.sent, "XDP_DROP action counter")
  local per_cpu = x:map("h2:eth0", "actions", {{ per_cpu = true }}).XDP_DROP
  local sum = 0
  for _, v in pairs(per_cpu) do sum = sum + v end
  x:expect_eq(sum, b.sent, "per-CPU values add up")
  x:expect(x:map_delete("h2:eth0", "udp_ports", 9000), "port removed")
  local again = x.h1:blast {{ to = "198.18.0.2", port = 9000, count = 200, rate = 20000, mode = "ring" }}
  x:expect_eq(again.received, again.sent, "nothing dropped once the port is out of the map")
  x:expect(x:xdp_detach("h2:eth0"), "detached")
  x:expect(x:xdp("h2:eth0") == nil, "nothing attached at the end")
  x:expect(not x:xdp_detach("h2:eth0"), "a second detach finds nothing")
end)
"#
        ),
    );
    let out = sb.labctl([Path::new("run"), &lab, Path::new("--out"), &dir.join("run")]);
    assert_code(&out, 0, "labctl run of the runtime experiment");
    assert!(!stdout(&out).contains("!!"), "an expectation failed:\n{}", describe(&out));
    assert_no_pins(&sb, "after the run");
    sb.assert_clean(&before, "after the run");
}

#[test]
fn down_unpins_a_program_an_experiment_left_attached() {
    let sb = Sandbox::new();
    let tmp = temp_dir("xdp-left");
    let dir = tmp.path().to_path_buf();
    let lab = two_nodes(
        &dir,
        "xleft",
        &format!(
            "experiment(\"leave\", function(x) x:xdp_attach(\"h1:eth0\", {{ src = {:?}, mode = \"native\" }}) end)",
            fixture("xdp_pass.c").display().to_string()
        ),
    );
    let before = sb.host_state();
    // `labctl run` runs the experiment, then takes the lab down: the
    // program it attached (journaled at attach time) goes too.
    let out = sb.labctl([Path::new("run"), &lab, Path::new("--out"), &dir.join("run")]);
    assert_code(&out, 0, "run");
    assert_no_pins(&sb, "after run");
    sb.assert_clean(&before, "after run");
    let _ = ATTACHED_GENERIC;
}
