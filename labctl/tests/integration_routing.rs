//! Routes of every kind, nexthop objects, policy rules and bridge options in a real lab,
//! each test in its own Sandbox (tests/common): `up` makes them, the
//! kernel's netlink dumps (labctl's own readers, and `ip`/sysfs inside the
//! nodes) show them as declared, `x:fdb` shows what a bridge learnt and
//! what a port with learning off did not, and `down` leaves nothing. VRFs,
//! VLANs and VLAN filtering, which this machine's kernel lacks, are refused
//! before anything is created (their kernel test is in .ci/vm-guest.py).

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};

use common::*;
use labctl::observe::counters;

const LAB: &str = r#"
lab { name = "rt" }
local h1, h2, r1 = node("h1"), node("h2"), node("r1", { forwarding = true })
local sw = bridge("sw", { ageing = "45s", multicast_snooping = false })
local quiet = bridge("quiet", { stp = true })
link(h1, sw, { { "198.18.1.1/24" } })
link(h2, sw, { { "198.18.1.2/24" } })
link(r1, sw, { { "198.18.1.254/24" } })
link(r1, h2, { { "198.18.2.254/24" }, { "198.18.2.1/24" } })
link(r1, quiet, { { "198.18.3.254/24" } })
sw:port("eth0", { flood = false })
sw:port("eth1", { learning = false })

h1:route("default", "198.18.1.254")
h1:route("198.19.9.0/24", { type = "blackhole" })
h1:route("198.19.10.0/24", { type = "unreachable", metric = 5 })
h1:route("198.19.0.0/24", "198.18.1.254", { metric = 20, src = "198.18.1.1" })
h1:route("198.19.1.0/24", { dev = "eth0" })
h1:route("198.19.11.0/24", { type = "prohibit", table = 100 })
h1:rule { from = "198.18.1.1", to = "198.19.11.0/24", priority = 100, table = 100 }
h2:route("198.19.0.0/16", { multipath = { { via = "198.18.1.254", weight = 1 }, { via = "198.18.2.254", weight = 3 } } })
h2:route("default", "198.18.2.254", { table = 200 })
h2:rule { fwmark = 7, iif = "lo", priority = 200, table = 200 }
h2:nexthop(1, { via = "198.18.1.254" })
h2:nexthop(2, { via = "198.18.2.254", dev = "eth1" })
h2:nexthop(3, { group = { 1, { id = 2, weight = 3 } } })
h2:nexthop(4, { blackhole = true })
h2:route("198.19.64.0/18", { nexthop = 3 })
h2:route("198.19.128.0/24", { nexthop = 4 })

-- What the bridge learnt: h1 behind eth0 and r1 behind eth2; h2's port
-- (eth1) does not learn, so h2's MAC is in no entry.
experiment("fdb", function(x)
  x:expect_eq(x.h1:ping("198.18.1.254", { count = 1 }).received, 1, "h1 reaches r1")
  x:expect_eq(x.h2:ping("198.18.1.254", { count = 1 }).received, 1, "h2 reaches r1")
  local where = {}
  for _, e in ipairs(x:fdb("sw", { learned = true })) do
    where[e.mac] = e.port
  end
  x:expect_eq(where[x:mac("h1:eth0")], "eth0", "h1 learnt behind eth0")
  x:expect_eq(where[x:mac("r1:eth0")], "eth2", "r1 learnt behind eth2")
  x:expect_eq(where[x:mac("h2:eth0")], nil, "h2 not learnt: its port does not learn")
  local own = 0
  for _, e in ipairs(x:fdb("sw", { port = "eth1" })) do
    if e.flags[1] == "permanent" then own = own + 1 end
  end
  x:expect(own >= 1, "the port's own address is a permanent entry")
end)

-- The packets go where the routes say: a blackhole drops them, an
-- unreachable route refuses them locally (EHOSTUNREACH).
experiment("drops", function(x)
  local quiet = x.h1:ping("198.19.9.1", { count = 1, timeout = 0.3 })
  x:expect_eq(quiet.received, 0, "the blackhole answers nothing")
  local refused = x.h1:ping("198.19.10.1", { count = 1, timeout = 0.3 })
  x:expect_eq(refused.received, 0, "the unreachable route answers nothing")
  x:expect(#refused.errors == 1, "the unreachable route refuses the send: " .. table.concat(refused.errors, "; "))
end)
"#;

fn write_lab(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, body).unwrap();
    path
}

fn node_netns(sb: &Sandbox, lab: &str, node: &str) -> File {
    File::open(sb.path(format!("/run/netns/{lab}-{node}"))).expect("node namespace")
}

fn in_node(sb: &Sandbox, netns: &str, command: &str) -> String {
    sb.sh_ok(&format!("ip netns exec {netns} {command}"))
}

#[test]
fn routes_rules_and_bridge_options_are_in_the_kernel_as_declared_and_down_removes_them() {
    let sb = Sandbox::new();
    let before = sb.host_state();
    let tmp = temp_dir("routing");
    let dir = tmp.path().to_path_buf();
    let lab = write_lab(&dir, "rt", LAB);
    sb.labctl_ok(["up", lab.to_str().unwrap()]);

    // Routes, through labctl's netlink reader.
    let routes = sb.in_netns(|| counters::routes(&node_netns(&sb, "rt", "h1")).unwrap());
    let find = |dst: &str, table: Option<u32>| {
        routes
            .iter()
            .find(|r| r.dst.to_string() == dst && r.table == table)
            .unwrap_or_else(|| panic!("no {dst} in table {table:?}: {routes:#?}"))
            .clone()
    };
    assert_eq!(find("198.19.9.0/24", None).kind, "blackhole");
    let unreachable = find("198.19.10.0/24", None);
    assert_eq!((unreachable.kind.as_str(), unreachable.metric), ("unreachable", Some(5)));
    let with_src = find("198.19.0.0/24", None);
    assert_eq!(
        (with_src.via.map(|a| a.to_string()), with_src.metric, with_src.src.map(|a| a.to_string())),
        (Some("198.18.1.254".into()), Some(20), Some("198.18.1.1".into()))
    );
    let device = find("198.19.1.0/24", None);
    assert_eq!((device.dev.as_deref(), device.via, device.scope.as_str()), (Some("eth0"), None, "link"));
    assert_eq!(find("198.19.11.0/24", Some(100)).kind, "prohibit");

    // Rules, through labctl's netlink reader.
    let rules = sb.in_netns(|| counters::rules(&node_netns(&sb, "rt", "h1")).unwrap());
    let rule = rules.iter().find(|r| r.priority == 100).unwrap_or_else(|| panic!("{rules:#?}"));
    assert_eq!(
        (rule.from.map(|n| n.to_string()), rule.to.map(|n| n.to_string()), rule.table, rule.action.as_str()),
        (Some("198.18.1.1/32".into()), Some("198.19.11.0/24".into()), 100, "lookup")
    );
    let rules = sb.in_netns(|| counters::rules(&node_netns(&sb, "rt", "h2")).unwrap());
    let mark = rules.iter().find(|r| r.priority == 200).unwrap_or_else(|| panic!("{rules:#?}"));
    assert_eq!((mark.fwmark, mark.iif.as_deref(), mark.table), (Some(7), Some("lo"), 200));

    // Multipath with its weights, and table 200, as `ip` shows them.
    let multipath = in_node(&sb, "rt-h2", "ip route show 198.19.0.0/16");
    assert!(multipath.contains("nexthop via 198.18.1.254 dev eth0 weight 1"), "{multipath}");
    assert!(multipath.contains("nexthop via 198.18.2.254 dev eth1 weight 3"), "{multipath}");
    let t200 = in_node(&sb, "rt-h2", "ip route show table 200");
    assert_eq!(t200.trim(), "default via 198.18.2.254 dev eth1 proto static");

    // Nexthop objects and the routes through them.
    let nexthops = in_node(&sb, "rt-h2", "ip nexthop show");
    for want in
        ["id 1 via 198.18.1.254 dev eth0", "id 2 via 198.18.2.254 dev eth1", "id 3 group 1/2,3", "id 4 blackhole"]
    {
        assert!(nexthops.contains(want), "{want:?} missing from:\n{nexthops}");
    }
    let through = in_node(&sb, "rt-h2", "ip route show 198.19.64.0/18");
    assert!(through.starts_with("198.19.64.0/18 nhid 3"), "{through}");
    let dropped = in_node(&sb, "rt-h2", "ip route show 198.19.128.0/24");
    assert!(dropped.starts_with("blackhole 198.19.128.0/24 nhid 4"), "{dropped}");

    // Bridge and port options, from sysfs inside the bridge nodes.
    let sysfs = |netns: &str, file: &str| in_node(&sb, netns, &format!("cat /sys/class/net/{file}")).trim().to_string();
    assert_eq!(sysfs("rt-sw", "br0/bridge/ageing_time"), "4500");
    assert_eq!(sysfs("rt-sw", "br0/bridge/multicast_snooping"), "0");
    assert_eq!(sysfs("rt-sw", "br0/bridge/stp_state"), "0");
    assert_eq!(sysfs("rt-quiet", "br0/bridge/stp_state"), "1");
    assert_eq!(sysfs("rt-quiet", "br0/bridge/forward_delay"), "200");
    assert_eq!(sysfs("rt-sw", "eth0/brport/unicast_flood"), "0");
    assert_eq!(sysfs("rt-sw", "eth0/brport/learning"), "1");
    assert_eq!(sysfs("rt-sw", "eth1/brport/learning"), "0");

    // `show` finds no drift in what it now reads.
    let show = sb.labctl_ok(["show", "rt"]);
    assert!(show.contains("h1: blackhole 198.19.9.0/24"), "{show}");
    assert!(show.contains("h1: 100: from 198.18.1.1/32 to 198.19.11.0/24 lookup 100"), "{show}");
    for drift in ["missing route", "added route", "changed route", "missing rule", "added rule"] {
        assert!(!show.contains(drift), "{drift}: {show}");
    }

    assert_code(&sb.labctl(["down", "rt"]), 0, "labctl down");
    sb.assert_clean(&before, "after down");
}

#[test]
fn x_fdb_shows_what_the_bridge_learnt_routes_drop_and_run_leaves_nothing() {
    let sb = Sandbox::new();
    let before = sb.host_state();
    let tmp = temp_dir("routing-fdb");
    let dir = tmp.path().to_path_buf();
    let lab = write_lab(&dir, "rt", LAB);
    let out = sb.labctl_cmd().arg("run").arg(&lab).arg("--out").arg(dir.join("out")).output().unwrap();
    let text = assert_code(&out, 0, "labctl run");
    assert!(text.contains("fdb") && text.contains("drops"), "{text}");
    sb.assert_clean(&before, "after run");
}

#[test]
fn vrf_vlan_and_vlan_filtering_are_refused_before_anything_is_created_where_the_kernel_lacks_them() {
    let sb = Sandbox::new();
    let before = sb.host_state();
    let tmp = temp_dir("routing-vrf");
    let dir = tmp.path().to_path_buf();
    let lab = write_lab(
        &dir,
        "vv",
        r#"
lab { name = "vv" }
local h1, r1 = node("h1"), node("r1", { forwarding = true })
local sw = bridge("sw", { vlan_filtering = true })
link(h1, r1, { { "198.18.1.1/24" }, { "198.18.1.254/24" } })
link(r1, sw, {})
sw:port("eth0", { vlans = { 10 }, pvid = 10, untagged = { 10 } })
r1:vlan("eth1", 10, { addresses = { "198.18.10.254/24" } })
r1:vrf("blue", { table = 10, interfaces = { "eth0" } })
r1:route("default", "198.18.1.1", { table = 10 })
"#,
    );
    let out = sb.labctl(["up", lab.to_str().unwrap()]);
    let code = out.status.code();
    if code == Some(0) {
        println!("SKIP: this kernel has VRF, 802.1Q and VLAN filtering; the lab came up (the VM lane tests them)");
        assert_code(&sb.labctl(["down", "vv"]), 0, "labctl down");
        sb.assert_clean(&before, "after down");
        return;
    }
    let text = describe(&out);
    assert_eq!(code, Some(2), "{text}");
    let said = stderr(&out);
    for (feature, line) in [("CONFIG_NET_VRF", 9), ("CONFIG_VLAN_8021Q", 8), ("CONFIG_BRIDGE_VLAN_FILTERING", 4)] {
        // Each one said, at its declaration, unless this kernel has it.
        if said.contains(feature) {
            assert!(said.contains(&format!("vv.lua:{line}: error:")), "{feature} at line {line}: {said}");
        }
    }
    assert!(said.contains(".ci/vm-lane"), "{said}");
    assert!(said.contains("nothing was created"), "{said}");
    sb.assert_clean(&before, "after the refusal");
}
