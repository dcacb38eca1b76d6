//! Link impairments and static neighbours, end to end, each test in its own
//! Sandbox (tests/common): what `up` leaves in the kernel, read back with
//! iproute2's netlink dumps (`tc -j qdisc`, `ip -j neigh`, `ip -j link`),
//! not labctl's state; the seeded loss program's drops against the
//! generator's own count (`apply::impair::loss::dropped_of`), twice in a
//! run; `down` leaving nothing (no namespace, no bpffs pin); and delay
//! refused on a kernel without sch_netem before anything exists.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use labctl::apply::impair::loss;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(format!("{name}.lua"));
    std::fs::write(&p, text).unwrap();
    p
}

/// h1 -- h2, h1's end at 10 Mbit/s with 10% loss (seed 7), h2's with a
/// queue of 50 packets; h1 has an entry for an address no node has (with
/// its MAC given), the rest comes from `static_neighbours`.
const LAB: &str = r#"
lab { name = "imp", static_neighbours = true }
local h1, h2 = node("h1"), node("h2")
link(h1, h2, { { "198.18.0.1/24", "2001:db8::1/64" }, { "198.18.0.2/24", "2001:db8::2/64" } })
h1:impair("eth0", { rate = "10mbit", loss = "10%", seed = 7 })
h2:impair("eth0", { limit = 50 })
h1:neighbour("eth0", "198.18.0.77", "02:00:00:00:00:22")
"#;

fn json(sb: &Sandbox, program: &str, args: &[&str]) -> serde_json::Value {
    let out = sb.run_ok(program, args.iter().copied());
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{program} {args:?} is not JSON ({e}): {out}"))
}

/// Nothing of labctl in the sandbox's bpffs.
fn assert_no_pins(sb: &Sandbox, what: &str) {
    let left = sb.sh_ok("ls -A /sys/fs/bpf/labctl 2>/dev/null || true");
    assert!(left.trim().is_empty(), "{what}: pins left under /sys/fs/bpf/labctl: {left}");
}

#[test]
fn up_builds_qdiscs_loss_programs_and_permanent_neighbours_and_down_removes_them() {
    let sb = Sandbox::new();
    let before = sb.host_state();
    let tmp = temp_dir("impair-up");
    let dir = tmp.path().to_path_buf();
    let lab = write(&dir, "imp", LAB);
    sb.labctl_ok(["up".as_ref(), lab.as_os_str()]);

    // Rate: tbf at h1's root, 10 Mbit/s = 1250000 bytes/s.
    let qdiscs = json(&sb, "tc", &["-n", "imp-h1", "-j", "qdisc", "show", "dev", "eth0"]);
    let tbf =
        qdiscs.as_array().unwrap().iter().find(|q| q["kind"] == "tbf").unwrap_or_else(|| panic!("no tbf: {qdiscs}"));
    assert_eq!(tbf["root"], true, "{tbf}");
    assert_eq!(tbf["options"]["rate"], 1_250_000, "{tbf}");
    // The limit alone: a pfifo of 50 packets at h2's root.
    let qdiscs = json(&sb, "tc", &["-n", "imp-h2", "-j", "qdisc", "show", "dev", "eth0"]);
    let fifo = qdiscs
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["kind"] == "pfifo")
        .unwrap_or_else(|| panic!("no pfifo: {qdiscs}"));
    assert_eq!(fifo["options"]["limit"], 50, "{fifo}");
    // A shaped end sends wire-sized packets.
    let features = sb.run_ok("ip", ["netns", "exec", "imp-h1", "ethtool", "-k", "eth0"]);
    assert!(features.contains("generic-segmentation-offload: off"), "{features}");

    // Loss: a tcx program at the *receiving* end (h2:eth0), pinned in the lab's folder.
    let link = json(&sb, "ip", &["-n", "imp-h2", "-j", "-d", "link", "show", "eth0"]);
    let pins = sb.sh_ok("ls /sys/fs/bpf/labctl/imp/loss/h2-eth0");
    assert_eq!(pins.split_whitespace().collect::<Vec<_>>(), ["link", "maps", "prog"], "{link}");

    // Neighbours: PERMANENT, the declared MAC for h1's own entry, h2's
    // derived one (static_neighbours) for its addresses.
    let neigh = json(&sb, "ip", &["-n", "imp-h1", "-j", "neigh", "show", "dev", "eth0"]);
    let entries = neigh.as_array().unwrap();
    let of = |dst: &str| entries.iter().find(|e| e["dst"] == dst).unwrap_or_else(|| panic!("no {dst}: {neigh}"));
    assert_eq!(of("198.18.0.77")["lladdr"], "02:00:00:00:00:22");
    assert!(of("198.18.0.77")["state"].as_array().unwrap().contains(&"PERMANENT".into()), "{neigh}");
    assert!(of("198.18.0.2")["state"].as_array().unwrap().contains(&"PERMANENT".into()), "{neigh}");
    assert!(of("2001:db8::2")["state"].as_array().unwrap().contains(&"PERMANENT".into()), "{neigh}");
    let h2_mac = json(&sb, "ip", &["-n", "imp-h2", "-j", "link", "show", "eth0"])[0]["address"].clone();
    assert_eq!(of("2001:db8::2")["lladdr"], h2_mac);
    assert_eq!(of("198.18.0.2")["lladdr"], h2_mac);
    let back = json(&sb, "ip", &["-n", "imp-h2", "-j", "neigh", "show", "dev", "eth0"]);
    assert!(
        back.as_array()
            .unwrap()
            .iter()
            .any(|e| e["dst"] == "198.18.0.1" && e["state"].as_array().unwrap().contains(&"PERMANENT".into())),
        "{back}"
    );

    sb.labctl_ok(["down", "imp"]);
    sb.assert_clean(&before, "after down");
    assert_no_pins(&sb, "after down");
}

#[test]
fn seeded_loss_drops_the_generators_count_every_time_and_x_impair_is_undone() {
    let sb = Sandbox::new();
    let before = sb.host_state();
    let tmp = temp_dir("impair-loss");
    let dir = tmp.path().to_path_buf();
    let lab = write(
        &dir,
        "imp",
        &format!(
            "{LAB}\n{}",
            r#"
experiment("loss", function(x)
  for run = 1, 2 do
    x:sleep(0.3) -- the last round's stragglers land before the count restarts
    x:impair("h1:eth0", { loss = "10%", seed = 7 })   -- the count restarts
    local f = x.h1:udp { to = "198.18.0.2", size = 64, count = 1000, rate = 5000 }
    local s = x:impair("h1:eth0")
    print(("round sent %d lost %d seen %d dropped %d"):format(f.sent_packets, f.sent_packets - f.received_packets, s.seen, s.dropped))
  end
  x:impair("h1:eth0", { loss = "50%", seed = 1, rate = "5mbit" })
end)
experiment("after", function(x)
  -- Put back as declared when "loss" ended: 10% with seed 7, 10 Mbit/s.
  local s = x:impair("h1:eth0")
  print(("loss %s seed %d seen %d rate %d"):format(s.loss, s.seed, s.seen, s.rate))
end)
"#
        ),
    );
    let out = sb.labctl(["run".as_ref(), lab.as_os_str(), "--out".as_ref(), dir.join("out").as_os_str()]);
    assert_code(&out, 0, "labctl run");
    // Lua's print goes to stderr, beside labctl's progress.
    let text = format!("{}{}", stdout(&out), stderr(&out));
    let rounds: Vec<[u64; 4]> = text
        .lines()
        .filter_map(|l| l.strip_prefix("round "))
        .map(|l| {
            let n: Vec<u64> = l.split(' ').skip(1).step_by(2).map(|v| v.parse().unwrap()).collect();
            [n[0], n[1], n[2], n[3]]
        })
        .collect();
    assert_eq!(rounds.len(), 2, "{text}");
    for [sent, lost, seen, dropped] in rounds {
        assert_eq!(sent, 1000, "{text}");
        // The kernel's own count is the generator's, exactly, for what it saw.
        assert_eq!(dropped, loss::dropped_of(7, 100_000, seen), "{text}");
        // It saw every packet of the flow; another unicast packet now and
        // then (seen > sent) takes its place in the sequence.
        assert!(seen >= sent, "{text}");
        if seen == sent {
            assert_eq!(lost, dropped, "{text}");
        } else {
            assert!(lost <= dropped && lost + (seen - sent) >= dropped, "{text}");
        }
    }
    assert!(text.contains("loss 10.0 seed 7 seen 0 rate 10000000"), "{text}");
    sb.assert_clean(&before, "after run");
    assert_no_pins(&sb, "after run");
}

#[test]
fn delay_is_refused_before_anything_exists_on_a_kernel_without_netem() {
    if labctl::apply::impair::probe::netem_missing().is_none() {
        println!("SKIP: this kernel has sch_netem; the refusal is for kernels without it (the netem messages have unit tests)");
        return;
    }
    let sb = Sandbox::new();
    let before = sb.host_state();
    let tmp = temp_dir("impair-delay");
    let dir = tmp.path().to_path_buf();
    let lab = write(
        &dir,
        "slow",
        "local h1, h2 = node(\"h1\"), node(\"h2\")\n\
         link(h1, h2, { \"198.18.0.1/24\", \"198.18.0.2/24\", impair = { rate = \"10mbit\", delay = \"5ms\", loss = \"1%\" } })\n",
    );
    let out = sb.labctl(["up".as_ref(), lab.as_os_str()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(err.contains("slow.lua:2: error: impair(\"h1:eth0\"): delay needs sch_netem"), "{err}");
    assert!(err.contains("help: "), "{err}");
    assert!(err.contains("nothing was created"), "{err}");
    sb.assert_clean(&before, "after the refusal");
    assert_no_pins(&sb, "after the refusal");
}

/// The number of steps of `file`'s plan (its first line says it).
fn plan_steps(sb: &Sandbox, file: &Path) -> usize {
    let plan = sb.labctl_ok(["plan".as_ref(), file.as_os_str()]);
    let first = plan.lines().next().unwrap_or_default();
    let words: Vec<&str> = first.split_whitespace().collect();
    let at = words.iter().position(|w| w.starts_with("steps")).expect("a step count") - 1;
    words[at].parse().unwrap_or_else(|_| panic!("no step count in {first:?}"))
}

#[test]
fn a_kill_or_a_failure_at_the_loss_step_leaves_no_pin() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let sb = Sandbox::new();
    let before = sb.host_state();
    let tmp = temp_dir("impair-faults");
    let dir = tmp.path().to_path_buf();
    // Loss on both ends: two loss steps, the last two of the plan.
    let lab = write(&dir, "imp", &LAB.replace("{ limit = 50 }", "{ limit = 50, loss = \"1%\" }"));
    let steps = plan_steps(&sb, &lab);
    let last = sb.labctl_ok(["plan".as_ref(), lab.as_os_str()]);
    assert!(last.lines().last().unwrap().contains("loss program"), "the loss step is last:\n{last}");
    // Killed right after the loss program is attached and pinned: down removes it.
    let mut c = sb.labctl_cmd();
    c.arg("up").arg(&lab).env("LABCTL_FAULT_ABORT_AFTER", steps.to_string());
    // SAFETY: setrlimit is async-signal-safe; no core file per abort.
    unsafe {
        c.pre_exec(|| {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)?;
            Ok(())
        });
    }
    let out = output(&mut c);
    assert!(out.status.signal().is_some(), "expected up to die by a signal\n{}", describe(&out));
    let pins = sb.sh_ok("ls -A /sys/fs/bpf/labctl/imp/loss/h2-eth0 2>/dev/null || true");
    assert!(pins.contains("link"), "the loss program was pinned before the kill: {pins:?}");
    assert_code(&sb.labctl(["down", "imp"]), 0, "down after the kill");
    sb.assert_clean(&before, "kill after the loss step, then down");
    assert_no_pins(&sb, "kill after the loss step, then down");
    // Failing at the second loss step (the first attached and pinned), or
    // at the first: the rollback alone cleans up.
    for k in [steps - 1, steps] {
        let mut c = sb.labctl_cmd();
        c.arg("up").arg(&lab).env("LABCTL_FAULT_FAIL_AT", k.to_string());
        assert_code(&output(&mut c), 1, &format!("LABCTL_FAULT_FAIL_AT={k}/{steps}"));
        sb.assert_clean(&before, &format!("rollback of a failure at step {k}/{steps}"));
        assert_no_pins(&sb, &format!("rollback of a failure at step {k}/{steps}"));
    }
}
