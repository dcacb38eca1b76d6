//! BPF objects as libbpf-era tutorials write them, loaded unmodified (issue
//! 10), each test in its own Sandbox with a private bpffs:
//! `LIBBPF_PIN_BY_NAME` maps pinned per interface inside the lab's pin
//! folder (shared only where the lab says so) and nothing outside it, also
//! after a failed `up`; struct values in per-CPU maps read by field name
//! and summed field by field, enum keys by name; an object with a program
//! in an old-style section; the compile cache following `#include`d
//! headers; `include`/`defines` and the help for a missing system header.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn stats(name: &str) -> String {
    repo_root().join("fixtures/xdp/stats").join(name).display().to_string()
}

fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap();
    p
}

/// h1 and h2 with `links` links (h2:eth0 198.18.0.2, h2:eth1 198.18.1.2, ...) plus `extra` Lua.
fn lab(dir: &Path, name: &str, links: usize, extra: &str) -> PathBuf {
    let mut text = format!("lab {{ name = {name:?} }}\nlocal h1 = node(\"h1\")\nlocal h2 = node(\"h2\")\n");
    for i in 0..links {
        text.push_str(&format!("link(h1, h2, {{ \"198.18.{i}.1/24\", \"198.18.{i}.2/24\" }})\n"));
    }
    text.push_str(extra);
    write(dir, &format!("{name}.lua"), &text)
}

/// Everything in the sandbox's bpffs, as paths relative to it, but the
/// kernel's own iterators (`maps.debug`, `progs.debug`: bpf_preload puts
/// them in every new bpffs).
fn bpffs_entries(sb: &Sandbox) -> Vec<String> {
    let out = sb.run_ok("find", ["/sys/fs/bpf", "-mindepth", "1"]);
    out.lines()
        .map(|l| l.trim_start_matches("/sys/fs/bpf/").to_string())
        .filter(|e| !matches!(e.as_str(), "maps.debug" | "progs.debug"))
        .collect()
}

/// Asserts that bpffs holds nothing but labctl's own folder.
#[track_caller]
fn assert_only_labctl_in_bpffs(sb: &Sandbox, what: &str) {
    let outside: Vec<String> =
        bpffs_entries(sb).into_iter().filter(|e| e != "labctl" && !e.starts_with("labctl/")).collect();
    assert!(outside.is_empty(), "{what}: pinned outside /sys/fs/bpf/labctl: {outside:?}");
}

/// The id of the map pinned at `path` (bpftool reads the pin).
fn pinned_map_id(sb: &Sandbox, path: &str) -> u64 {
    let out = sb.run_ok("bpftool", ["-j", "map", "show", "pinned", path]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["id"].as_u64().unwrap_or_else(|| panic!("no map id in {out}"))
}

/// `labctl xdp LAB --json`: the values of map `map` on `interface`.
fn shown_values(sb: &Sandbox, lab: &str, interface: &str, map: &str) -> serde_json::Value {
    let out = sb.labctl_ok(["xdp", lab, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let row = v.as_array().unwrap().iter().find(|r| r["interface"] == interface).unwrap_or_else(|| panic!("{out}"));
    let maps = row["programs"][0]["maps"].as_array().unwrap();
    maps.iter().find(|m| m["name"] == map).unwrap_or_else(|| panic!("no map {map} in {out}"))["values"].clone()
}

fn ping(sb: &Sandbox, lab: &str, cpu: &str, count: &str, to: &str) {
    let out =
        sb.labctl(["exec", lab, "h1", "--", "taskset", "-c", cpu, "ping", "-c", count, "-i", "0.01", "-W", "2", to]);
    assert_code(&out, 0, &format!("ping {to} from CPU {cpu}"));
}

/// Defect 1: by-name pinned maps go under the lab's pin folder, one per
/// interface, or one shared by the interfaces whose `share_maps` name it;
/// nothing outside `/sys/fs/bpf/labctl/`, and nothing at all after `down`.
#[test]
fn by_name_pins_stay_in_the_lab_folder_one_per_interface() {
    let sb = Sandbox::new();
    let tmp = temp_dir("bpf-pins");
    let dir = tmp.path().to_path_buf();
    let before = sb.host_state();
    let src = stats("xdp_stats.c");
    let lab_file = lab(
        &dir,
        "xpins",
        4,
        &format!(
            r#"xdp("h2:eth0", {{ src = {src:?}, prog = "xdp_stats_pass" }})
xdp("h2:eth1", {{ src = {src:?}, prog = "xdp_stats_pass" }})
xdp("h2:eth2", {{ src = {src:?}, prog = "xdp_stats_pass", share_maps = {{ "xdp_stats_map" }} }})
xdp("h2:eth3", {{ src = {src:?}, prog = "xdp_stats_pass", share_maps = {{ "xdp_stats_map" }} }})
"#
        ),
    );
    let up = sb.labctl([Path::new("up"), &lab_file]);
    assert_code(&up, 0, "up");
    assert_only_labctl_in_bpffs(&sb, "after up");
    let root = "/sys/fs/bpf/labctl/xpins";
    let eth0 = pinned_map_id(&sb, &format!("{root}/h2-eth0/maps/xdp_stats_map"));
    let eth1 = pinned_map_id(&sb, &format!("{root}/h2-eth1/maps/xdp_stats_map"));
    let shared = pinned_map_id(&sb, &format!("{root}/shared/xdp_stats_map"));
    assert_ne!(eth0, eth1, "each interface has its own xdp_stats_map");
    assert_ne!(shared, eth0);
    // The unshared map of eth2 and eth3 is theirs alone.
    assert_ne!(
        pinned_map_id(&sb, &format!("{root}/h2-eth2/maps/verdicts")),
        pinned_map_id(&sb, &format!("{root}/h2-eth3/maps/verdicts"))
    );

    // Warm up (ARP), then 3 pings on eth0, 1 on eth1, 2 on eth2 and 2 on eth3.
    for i in 0..4 {
        ping(&sb, "xpins", "0", "1", &format!("198.18.{i}.2"));
    }
    let before_counts: Vec<serde_json::Value> =
        (0..4).map(|i| shown_values(&sb, "xpins", &format!("h2:eth{i}"), "xdp_stats_map")).collect();
    for (i, n) in [(0, "3"), (1, "1"), (2, "2"), (3, "2")] {
        ping(&sb, "xpins", "0", n, &format!("198.18.{i}.2"));
    }
    let passed = |i: usize| {
        let after = shown_values(&sb, "xpins", &format!("h2:eth{i}"), "xdp_stats_map");
        let get = |v: &serde_json::Value| v["2"]["rx_packets"].as_u64().unwrap_or(0);
        get(&after) - get(&before_counts[i])
    };
    assert_eq!(passed(0), 3, "h2:eth0 counts its own 3 pings");
    assert_eq!(passed(1), 1, "h2:eth1 counts its own ping");
    assert_eq!(passed(2), 4, "the shared map counts the pings of eth2 and eth3");
    assert_eq!(passed(3), 4, "the shared map counts the pings of eth2 and eth3");

    assert_code(&sb.labctl(["down", "xpins"]), 0, "down");
    assert_eq!(bpffs_entries(&sb), Vec::<String>::new(), "bpffs after down");
    // A second up starts from zero, not from the old counts.
    assert_code(&sb.labctl([Path::new("up"), &lab_file]), 0, "up again");
    let fresh = shown_values(&sb, "xpins", "h2:eth0", "xdp_stats_map");
    assert!(fresh.as_object().is_none_or(|o| o.is_empty()), "old counts after a new up: {fresh}");
    assert_code(&sb.labctl(["down", "xpins"]), 0, "down again");
    assert_eq!(bpffs_entries(&sb), Vec::<String>::new(), "bpffs after the second down");
    sb.assert_clean(&before, "after down");
}

/// Defect 1: a lab whose second program the verifier rejects pins nothing
/// at all, not even the by-name maps of the first.
#[test]
fn a_failed_up_pins_nothing_anywhere() {
    let sb = Sandbox::new();
    let tmp = temp_dir("bpf-failed-up");
    let dir = tmp.path().to_path_buf();
    let before = sb.host_state();
    let unchecked = write(
        &dir,
        "unchecked.c",
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n\nSEC(\"xdp\")\nint xdp_unchecked(struct xdp_md *ctx)\n{\n\tunsigned char *data = (void *)(long)ctx->data;\n\n\treturn data[12] == 0x08 ? XDP_DROP : XDP_PASS;\n}\nchar LICENSE[] SEC(\"license\") = \"GPL\";\n",
    );
    let lab_file = lab(
        &dir,
        "xfail",
        2,
        &format!(
            "xdp(\"h2:eth0\", {{ src = {:?}, prog = \"xdp_stats_pass\" }})\nxdp(\"h2:eth1\", {{ src = {:?} }})\n",
            stats("xdp_stats.c"),
            unchecked.display().to_string()
        ),
    );
    let out = sb.labctl([Path::new("up"), &lab_file]);
    assert_code(&out, 2, "up with a rejected program");
    let err = stderr(&out);
    assert!(err.contains("unchecked.c"), "the error names the source file:\n{err}");
    assert!(!err.contains(".cache") && !err.contains("/bpf/"), "the error names the cache object:\n{err}");
    assert_eq!(bpffs_entries(&sb), Vec::<String>::new(), "bpffs after a failed up");
    // `labctl test` says the same with the same exit status.
    let out = sb.labctl([Path::new("test"), &lab_file]);
    assert_code(&out, 2, "test with a rejected program");
    assert_eq!(bpffs_entries(&sb), Vec::<String>::new(), "bpffs after a failed test");
    sb.assert_clean(&before, "after the failed up");
}

/// Defects 3 and 4: the tutorial-style object (a program in an old-style
/// section beside the one asked for) loads; its per-CPU struct values read
/// by field, summed over CPUs, the same in `x:counters`, `x:map` and
/// `labctl xdp`; enum keys by name.
#[test]
fn per_cpu_struct_values_sum_field_by_field_everywhere() {
    let sb = Sandbox::new();
    let tmp = temp_dir("bpf-struct");
    let dir = tmp.path().to_path_buf();
    let before = sb.host_state();
    let lab_file = lab(
        &dir,
        "xstruct",
        1,
        &format!(
            r#"xdp("h2:eth0", {{ src = {:?}, prog = "xdp_stats_pass" }})
experiment("agree", function(x)
  x.h1:ping("198.18.0.2", {{ count = 1 }}) -- neighbours resolved first: XDP sees ARP too
  local m0 = x:map("h2:eth0", "xdp_stats_map")[2]
  local d = x:delta({{ "h2:eth0:xdp" }}, function()
    x.h1:run({{ "ping", "-c", "3", "-i", "0.01", "198.18.0.2" }}, {{ cpu = 0 }})
    x.h1:run({{ "ping", "-c", "2", "-i", "0.01", "198.18.0.2" }}, {{ cpu = 1 }})
  end)["h2:eth0:xdp"]
  local m1 = x:map("h2:eth0", "xdp_stats_map")[2]
  x:expect_eq(d["xdp_stats_map.2.rx_packets"], 5, "five pings passed")
  x:expect_eq(d["xdp_stats_map.2.rx_bytes"], 5 * 98, "five 98-byte frames")
  x:expect_eq(m1.rx_packets - m0.rx_packets, 5, "x:map agrees")
  x:expect_eq(d["verdicts.XDP_PASS"], 5, "the enum key reads XDP_PASS")
  local c = x:counters {{ "h2:eth0:xdp" }}["h2:eth0:xdp"]
  x:expect_eq(c["xdp_stats_map.2.rx_packets"], m1.rx_packets, "x:counters and x:map agree")
  local per_cpu = x:map("h2:eth0", "xdp_stats_map", {{ per_cpu = true }})[2]
  local sum = 0
  for _, copy in pairs(per_cpu) do sum = sum + copy.rx_packets end
  x:expect_eq(sum, m1.rx_packets, "per-CPU copies add up")
  x:expect(per_cpu.cpu0.rx_packets > 0 and per_cpu.cpu1.rx_packets > 0, "both CPUs counted some")
end)
"#,
            stats("xdp_stats.c")
        ),
    );
    assert_code(&sb.labctl([Path::new("up"), &lab_file]), 0, "up");
    ping(&sb, "xstruct", "0", "1", "198.18.0.2");
    let field = |v: &serde_json::Value, f: &str| v["2"][f].as_u64().unwrap_or(0);
    let v0 = shown_values(&sb, "xstruct", "h2:eth0", "xdp_stats_map");
    let p0 = shown_values(&sb, "xstruct", "h2:eth0", "verdicts")["XDP_PASS"].as_u64().unwrap_or(0);
    ping(&sb, "xstruct", "0", "3", "198.18.0.2");
    ping(&sb, "xstruct", "1", "2", "198.18.0.2");
    let v1 = shown_values(&sb, "xstruct", "h2:eth0", "xdp_stats_map");
    assert_eq!(field(&v1, "rx_packets") - field(&v0, "rx_packets"), 5, "labctl xdp sums field by field: {v1}");
    assert_eq!(field(&v1, "rx_bytes") - field(&v0, "rx_bytes"), 5 * 98, "{v1}");
    let p1 = shown_values(&sb, "xstruct", "h2:eth0", "verdicts")["XDP_PASS"].as_u64().unwrap_or(0);
    assert_eq!(p1 - p0, 5, "verdicts keyed by enum xdp_action");
    let out = sb.labctl(["xdp", "xstruct"]);
    assert!(stdout(&out).contains(&format!("rx_packets={}", field(&v1, "rx_packets"))), "{}", describe(&out));
    assert_code(&sb.labctl(["down", "xstruct"]), 0, "down");

    let out = sb.labctl([Path::new("run"), &lab_file, Path::new("--out"), &dir.join("run")]);
    assert_code(&out, 0, "labctl run of the agreement experiment");
    assert!(!stdout(&out).contains("!!"), "an expectation failed:\n{}", describe(&out));
    assert_only_labctl_in_bpffs(&sb, "after run");
    sb.assert_clean(&before, "after the runs");
}

/// Defect 2: editing a header the program includes recompiles it.
#[test]
fn editing_an_included_header_recompiles() {
    let sb = Sandbox::new();
    let tmp = temp_dir("bpf-header");
    let dir = tmp.path().to_path_buf();
    let cache = dir.join("cache");
    let header = write(&dir, "verdict.h", "#define VERDICT XDP_PASS\n");
    let src = write(
        &dir,
        "verdict.c",
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n#include \"verdict.h\"\n\nSEC(\"xdp\")\nint xdp_verdict(struct xdp_md *ctx)\n{\n\treturn VERDICT;\n}\nchar LICENSE[] SEC(\"license\") = \"GPL\";\n",
    );
    let lab_file = lab(&dir, "xhdr", 1, &format!("xdp(\"h2:eth0\", {{ src = {:?} }})\n", src.display().to_string()));
    let pings = |expected: i32, what: &str| {
        let mut up = sb.labctl_cmd();
        up.arg("up").arg(&lab_file).env("LABCTL_BPF_CACHE", &cache);
        assert_code(&output(&mut up), 0, what);
        let out = sb.labctl(["exec", "xhdr", "h1", "--", "ping", "-c", "1", "-W", "1", "198.18.0.2"]);
        assert_code(&out, expected, what);
        assert_code(&sb.labctl(["down", "xhdr"]), 0, "down");
    };
    pings(0, "XDP_PASS from verdict.h");
    std::fs::write(&header, "#define VERDICT XDP_DROP\n").unwrap();
    pings(1, "XDP_DROP after verdict.h changed (the .c file did not)");
}

/// Defect 5: `include` and `defines` reach clang; a missing system header
/// gets a help line naming the Debian package.
#[test]
fn include_and_defines_reach_clang_and_missing_headers_get_help() {
    let sb = Sandbox::new();
    let tmp = temp_dir("bpf-include");
    let dir = tmp.path().to_path_buf();
    let before = sb.host_state();
    std::fs::create_dir_all(dir.join("inc")).unwrap();
    write(&dir.join("inc"), "answer.h", "#ifndef VERDICT\n#error VERDICT is not defined\n#endif\n");
    let src = write(
        &dir,
        "uses.c",
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n#include \"answer.h\"\n\nSEC(\"xdp\")\nint xdp_uses(struct xdp_md *ctx)\n{\n\treturn VERDICT;\n}\nchar LICENSE[] SEC(\"license\") = \"GPL\";\n",
    );
    let lab_file = lab(
        &dir,
        "xinc",
        1,
        &format!(
            "xdp(\"h2:eth0\", {{ src = {:?}, include = {{ \"inc\" }}, defines = {{ VERDICT = \"XDP_DROP\" }} }})\n",
            src.display().to_string()
        ),
    );
    assert_code(&sb.labctl([Path::new("up"), &lab_file]), 0, "up with include and defines");
    let out = sb.labctl(["exec", "xinc", "h1", "--", "ping", "-c", "1", "-W", "1", "198.18.0.2"]);
    assert_code(&out, 1, "VERDICT = XDP_DROP drops the ping");
    assert_code(&sb.labctl(["down", "xinc"]), 0, "down");

    // A header only the i386 libc brings, as the tutorial's headers need under -target bpf.
    let stubs = write(
        &dir,
        "stubs.c",
        "#include <gnu/stubs-32.h>\n#include <no-such-labctl-header.h>\n#include <linux/bpf.h>\nint x;\n",
    );
    let bad = lab(&dir, "xstubs", 1, &format!("xdp(\"h2:eth0\", {{ src = {:?} }})\n", stubs.display().to_string()));
    let out = sb.labctl([Path::new("up"), &bad]);
    assert_code(&out, 2, "a missing system header");
    let err = stderr(&out);
    let gnu_stubs_missing = !Path::new("/usr/include/x86_64-linux-gnu/gnu/stubs-32.h").exists()
        && !Path::new("/usr/include/gnu/stubs-32.h").exists();
    if gnu_stubs_missing {
        assert!(err.contains("help:") && err.contains("libc6-dev-i386"), "{err}");
    } else {
        assert!(err.contains("no-such-labctl-header.h") && err.contains("help:"), "{err}");
    }
    sb.assert_clean(&before, "after the runs");
}

/// Defect 4: the program asked for is itself in an old-style section.
#[test]
fn an_old_style_section_asked_for_says_how_to_rename_it() {
    let sb = Sandbox::new();
    let tmp = temp_dir("bpf-section");
    let dir = tmp.path().to_path_buf();
    let lab_file = lab(
        &dir,
        "xsec",
        1,
        &format!("xdp(\"h2:eth0\", {{ src = {:?}, prog = \"xdp_legacy_drop\" }})\n", stats("xdp_stats.c")),
    );
    let out = sb.labctl([Path::new("up"), &lab_file]);
    assert_code(&out, 2, "up of a program in an old-style section");
    let err = stderr(&out);
    assert!(err.contains("xdp_legacy_drop") && err.contains("SEC(\"xdp_drop_all\")"), "{err}");
    assert!(err.contains("SEC(\"xdp\")"), "says how to rename it:\n{err}");
    assert!(sb.netns_list().is_empty());
    assert_eq!(bpffs_entries(&sb), Vec::<String>::new());

    // The object's only program, in an old-style section, and no prog = ...
    let old = write(
        &dir,
        "old.c",
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\nSEC(\"xdp_pass_all\") int xdp_old(struct xdp_md *ctx) { return XDP_PASS; }\nchar LICENSE[] SEC(\"license\") = \"GPL\";\n",
    );
    let only = lab(&dir, "xold", 1, &format!("xdp(\"h2:eth0\", {{ src = {:?} }})\n", old.display().to_string()));
    let out = sb.labctl([Path::new("up"), &only]);
    assert_code(&out, 2, "up of an object whose only program is in an old-style section");
    let err = stderr(&out);
    assert!(err.contains("xdp_old") && err.contains("SEC(\"xdp_pass_all\")") && err.contains("rename it"), "{err}");
}

/// Issue 10, point 7: `labctl test <folder>` runs the labs in it, not the
/// helper modules beside them (which declare nothing when read alone).
#[test]
fn test_of_a_folder_skips_helper_modules() {
    let sb = Sandbox::new();
    let tmp = temp_dir("bpf-helpers");
    let dir = tmp.path().to_path_buf();
    write(&dir, "helpers.lua", "local M = {}\nfunction M.twice(n) return 2 * n end\nreturn M\n");
    write(
        &dir,
        "uses.lua",
        "lab { name = \"uses\" }\nnode(\"h1\")\nexperiment(\"twice\", function(x)\n  x:expect_eq(require(\"helpers\").twice(21), 42, \"the helper, required in an experiment\")\nend)\n",
    );
    let mut c = sb.labctl_cmd();
    c.arg("test").arg(&dir).arg("--snapshots").arg(dir.join("snapshots"));
    let out = output(&mut c);
    let text = assert_code(&out, 0, "labctl test of a folder with a helper module");
    assert!(text.contains("uses.lua") && !text.contains("helpers.lua"), "{text}");
    assert!(text.contains("test: 1 passed, 0 failed"), "{text}");
}

/// Issue 10, defect 6: an IPv6 node sends no MLD report (nor anything
/// else) once `up` has returned: every interface's tx count stays as it
/// was for a second and a half, the time the kernel's delayed DAD start and
/// MLD repeats used to take.
#[test]
fn ipv6_nodes_are_quiet_after_up() {
    let sb = Sandbox::new();
    let tmp = temp_dir("bpf-mld");
    let dir = tmp.path().to_path_buf();
    let before = sb.host_state();
    let file = write(
        &dir,
        "quiet6.lua",
        "lab { name = \"quiet6\" }\nlocal h1, r1, h2 = node(\"h1\"), node(\"r1\", { forwarding = true }), node(\"h2\")\nlocal sw = bridge(\"sw\")\nlink(h1, sw, { { \"198.18.0.1/24\", \"2001:db8::1/64\" } })\nlink(r1, sw, { { \"198.18.0.254/24\", \"2001:db8::fe/64\" } })\nlink(r1, h2, { { \"198.18.1.254/24\", \"2001:db8:1::fe/64\" }, { \"198.18.1.1/24\", \"2001:db8:1::1/64\" } })\n",
    );
    let counts = || {
        let mut out = String::new();
        for node in ["h1", "r1", "h2"] {
            for dev in ["eth0", "eth1"] {
                let o = sb.run(
                    "ip",
                    [
                        "netns",
                        "exec",
                        &format!("quiet6-{node}"),
                        "cat",
                        &format!("/sys/class/net/{dev}/statistics/tx_packets"),
                    ],
                );
                if o.status.success() {
                    out.push_str(&format!("{node}:{dev} {}", stdout(&o)));
                }
            }
        }
        out
    };
    for round in 0..3 {
        assert_code(&sb.labctl([Path::new("up"), &file]), 0, "up");
        let right_after = counts();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        assert_eq!(counts(), right_after, "round {round}: IPv6 nodes sent packets after up");
        assert_code(&sb.labctl(["down", "quiet6"]), 0, "down");
    }
    sb.assert_clean(&before, "after down");
}
