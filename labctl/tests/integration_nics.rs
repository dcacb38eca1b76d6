//! Host devices in labs, each test in its own Sandbox (tests/common): a veth
//! end left in the sandbox's host namespace stands in for a physical NIC.
//! Claimed into a node under a lab name with addresses, refused where it
//! must be, and restored exactly (name, MTU, MAC, alias, altnames, state,
//! addresses, ifindex) by `down`, by rollback, and by `down` after a kill -9
//! at every step. Real SR-IOV and physical-device semantics are tested in
//! the VM lane (.ci/vm-lane).

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// A stand-in NIC `hostnic` (its peer `hostpeer` stays behind), with
/// something of everything to restore.
fn stand_in(sb: &Sandbox) {
    // No DAD: link-local addresses are final at once, so states compare.
    sb.sh_ok(
        "sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
         ip link add hostnic type veth peer name hostpeer
         ip link set hostnic mtu 1450 address 02:00:00:00:aa:01 alias 'the uplink'
         ip link property add dev hostnic altname uplink0
         ip link property add dev hostnic altname wan0
         ip link set hostpeer up
         ip link set hostnic up
         # The kernel turns the carrier on in a work item: states compare once it has run.
         for i in $(seq 500); do
           ip link show hostnic | grep -q 'state UP' && ip link show hostpeer | grep -q 'state UP' && break
           sleep 0.01
         done",
    );
}

fn write_lab(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, body).unwrap();
    path
}

const CLAIM: &str = r#"
local nic = param("nic", "veth")
local r1 = node("r1", { forwarding = true })
local h1 = node("h1")
link(h1, r1, { "198.18.1.1/24", "198.18.1.2/24" })
r1:nic(nic, { name = "wan0", "198.18.9.1/24", "2001:db8:9::1/64", mtu = 1400 })
r1:route("198.19.0.0/16", "198.18.9.254")
"#;

/// Runs `labctl up`, expects exit 2 and returns what it said on stderr.
fn refused(out: std::process::Output, what: &str) -> String {
    assert_code(&out, 2, what);
    stderr(&out)
}

/// Like [`Sandbox::assert_clean`], but routes (and every other section) are
/// compared as sets: a device that went away and came back has its routes
/// re-added after its neighbours', which reorders the dump, not the table.
#[track_caller]
fn assert_restored(sb: &Sandbox, before: &str, what: &str) {
    let sorted = |s: &str| {
        let mut lines: Vec<&str> = s.lines().collect();
        lines.sort();
        lines.join("\n")
    };
    let started = std::time::Instant::now();
    loop {
        let now = sb.host_state();
        let clean = sb.netns_list().is_empty() && sb.labctl_state().is_empty() && sorted(&now) == sorted(before);
        if clean {
            return;
        }
        if started.elapsed() > std::time::Duration::from_secs(3) {
            assert!(sb.netns_list().is_empty(), "{what}: namespaces left: {:?}", sb.netns_list());
            assert!(sb.labctl_state().is_empty(), "{what}: state left in /run/labctl: {:?}", sb.labctl_state());
            assert_same_state(before, &now, what);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn up(sb: &Sandbox, lab: &Path, extra: &[&str]) -> std::process::Output {
    let mut args: Vec<&str> = vec!["up", lab.to_str().unwrap()];
    args.extend(extra);
    sb.labctl(args)
}

#[test]
fn a_claimed_nic_is_renamed_addressed_and_restored_exactly() {
    let sb = Sandbox::new();
    stand_in(&sb);
    let tmp = temp_dir("nic-claim");
    let dir = tmp.path().to_path_buf();
    let lab = write_lab(&dir, "claim", CLAIM);
    let before = sb.host_state();
    assert_code(&up(&sb, &lab, &["--set", "nic=hostnic"]), 0, "labctl up");

    let wan = sb.run_ok("ip", ["netns", "exec", "claim-r1", "ip", "-d", "addr", "show", "wan0"]);
    assert!(wan.contains("mtu 1400"), "{wan}");
    assert!(wan.contains("02:00:00:00:aa:01"), "the MAC stays: {wan}");
    assert!(wan.contains("inet 198.18.9.1/24") && wan.contains("inet6 2001:db8:9::1/64"), "{wan}");
    assert!(wan.contains("altname uplink0"), "altnames travel with the device: {wan}");
    assert!(!wan.contains("altname wan0"), "its own altname equal to its lab name is dropped for the stay: {wan}");
    let routes = sb.run_ok("ip", ["netns", "exec", "claim-r1", "ip", "route"]);
    assert!(routes.contains("198.19.0.0/16 via 198.18.9.254 dev wan0"), "{routes}");
    let host = sb.run_ok("ip", ["-o", "link"]);
    assert!(!host.contains("hostnic"), "the NIC left the host: {host}");
    let show = sb.labctl_ok(["show", "claim"]);
    assert!(show.contains("param nic = hostnic (--set)"), "{show}");
    assert!(show.contains("wan0"), "{show}");
    let recorded = std::fs::read_to_string(sb.path("/run/labctl/claim/lab.json")).unwrap();
    assert!(recorded.contains("\"value\": \"hostnic\""), "the journal records the parameter: {recorded}");
    let saved = std::fs::read_to_string(sb.path("/run/labctl/claim/nics/0000.json")).unwrap();
    for what in ["\"name\": \"hostnic\"", "\"mtu\": 1450", "\"the uplink\"", "uplink0", "\"up\": true"] {
        assert!(saved.contains(what), "saved before the move: {what} in {saved}");
    }

    assert_code(&sb.labctl(["down", "claim"]), 0, "labctl down");
    assert_restored(&sb, &before, "after down");
}

#[test]
fn rollback_and_kill_9_at_every_step_then_down_restore_the_nic() {
    let sb = Sandbox::new();
    stand_in(&sb);
    let tmp = temp_dir("nic-kill");
    let dir = tmp.path().to_path_buf();
    let lab = write_lab(&dir, "claim", CLAIM);
    let steps = stdout(&sb.labctl(["plan", "--json", lab.to_str().unwrap()]));
    let steps = serde_json::from_str::<serde_json::Value>(&steps).unwrap()["steps"].as_array().unwrap().len();
    let before = sb.host_state();
    for step in 1..=steps {
        let mut cmd = sb.labctl_cmd();
        cmd.env("LABCTL_FAULT_ABORT_AFTER", step.to_string()).args([
            "up",
            lab.to_str().unwrap(),
            "--set",
            "nic=hostnic",
        ]);
        let killed = output(&mut cmd);
        assert!(!killed.status.success(), "up survived abort after step {step}");
        assert_code(&sb.labctl(["down", "claim"]), 0, &format!("down after a kill -9 after step {step}"));
        assert_restored(&sb, &before, &format!("after kill -9 after step {step} and down"));

        let mut cmd = sb.labctl_cmd();
        cmd.env("LABCTL_FAULT_FAIL_AT", step.to_string()).args(["up", lab.to_str().unwrap(), "--set", "nic=hostnic"]);
        assert_code(&output(&mut cmd), 1, &format!("up failing at step {step}"));
        assert_restored(&sb, &before, &format!("after rollback from step {step}"));
    }
}

#[test]
fn nics_the_host_uses_or_that_do_not_exist_are_refused_before_anything_is_created() {
    let sb = Sandbox::new();
    stand_in(&sb);
    let tmp = temp_dir("nic-refuse");
    let dir = tmp.path().to_path_buf();
    let lab = write_lab(&dir, "claim", CLAIM);
    let lab_arg = lab.to_str().unwrap();

    let before = sb.host_state();
    let missing = refused(up(&sb, &lab, &["--set", "nic=enp9s0"]), "a missing NIC");
    assert!(missing.contains("claim.lua:6: error: nic(\"enp9s0\"): there is no network device"), "{missing}");
    assert!(missing.contains("help: the devices here: hostnic, hostpeer"), "{missing}");
    assert_restored(&sb, &before, "after refusing a missing NIC");

    sb.sh_ok("ip addr add 198.18.50.1/24 dev hostnic");
    let before = sb.host_state();
    let used = refused(up(&sb, &lab, &["--set", "nic=hostnic"]), "a NIC with an address");
    assert!(used.contains("hostnic has addresses (198.18.50.1/24)") && used.contains("force = true"), "{used}");
    sb.sh_ok("ip route add default via 198.18.50.254 dev hostnic");
    let before_route = sb.host_state();
    let routed = refused(up(&sb, &lab, &["--set", "nic=hostnic"]), "a NIC with the default route");
    assert!(routed.contains("the host's default route goes out through hostnic"), "{routed}");
    assert_restored(&sb, &before_route, "after refusing a NIC the host uses");

    // force = true takes it anyway; down gives back its address and route... the route
    // goes with the address while it is away, so drop it first and compare addresses only.
    sb.sh_ok("ip route del default");
    let forced = write_lab(&dir, "claim", &CLAIM.replace("mtu = 1400", "mtu = 1400, force = true"));
    assert_code(&up(&sb, &forced, &["--set", "nic=hostnic"]), 0, "up with force = true");
    assert_code(&sb.labctl(["down", "claim"]), 0, "down");
    assert_restored(&sb, &before, "after a forced claim and down: the address is back");

    let unknown = refused(sb.labctl(["up", lab_arg, "--set", "nick=hostnic"]), "an unknown --set");
    assert!(unknown.contains("has no parameter \"nick\" (its parameters: nic)"), "{unknown}");
}

#[test]
fn an_altname_naming_another_interface_of_the_node_is_refused() {
    let sb = Sandbox::new();
    stand_in(&sb);
    sb.sh_ok("ip link property add dev hostnic altname eth0");
    let tmp = temp_dir("nic-altname");
    let dir = tmp.path().to_path_buf();
    let lab = write_lab(&dir, "claim", CLAIM);
    let before = sb.host_state();
    let err = refused(up(&sb, &lab, &["--set", "nic=hostnic"]), "an altname clash");
    assert!(err.contains("its altname \"eth0\" is the name of another interface of r1"), "{err}");
    assert_restored(&sb, &before, "after refusing an altname clash");
}

#[test]
fn a_macvlan_shares_a_nic_the_host_keeps() {
    let sb = Sandbox::new();
    stand_in(&sb);
    sb.sh_ok("ip addr add 198.18.50.1/24 dev hostnic");
    let tmp = temp_dir("nic-macvlan");
    let dir = tmp.path().to_path_buf();
    let lab = write_lab(
        &dir,
        "mv",
        r#"local r1, r2 = node("r1"), node("r2")
           r1:macvlan("hostnic", { name = "mv0", mode = "bridge", "198.18.50.2/24" })
           r2:macvlan("hostnic", { mode = "private", "198.18.50.3/24" })"#,
    );
    let before = sb.host_state();
    assert_code(&sb.labctl(["up", lab.to_str().unwrap()]), 0, "up");
    let mv0 = sb.run_ok("ip", ["netns", "exec", "mv-r1", "ip", "-d", "addr", "show", "mv0"]);
    assert!(mv0.contains("macvlan mode bridge") && mv0.contains("198.18.50.2/24"), "{mv0}");
    let eth0 = sb.run_ok("ip", ["netns", "exec", "mv-r2", "ip", "-d", "link", "show", "eth0"]);
    assert!(eth0.contains("macvlan mode private"), "{eth0}");
    assert!(sb.run_ok("ip", ["addr", "show", "hostnic"]).contains("198.18.50.1/24"), "the host keeps its NIC");
    assert_code(&sb.labctl(["down", "mv"]), 0, "down");
    assert_restored(&sb, &before, "after down");
}
