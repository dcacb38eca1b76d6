//! Self-tests of the test harness (tests/common): a Sandbox isolates the
//! network and /run, vanishes on drop, and two sandboxes don't see each
//! other. These don't need labctl.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A name unique to this test process (interface names must stay <= 15).
fn uniq(tag: &str) -> String {
    format!("sb{}{}", tag, std::process::id() % 100_000)
}

/// `ip -o link` names on the real machine.
fn machine_links() -> Vec<String> {
    let out = Command::new("ip").args(["-o", "link", "show"]).output().unwrap();
    assert!(out.status.success());
    stdout(&out)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_string())
        .collect()
}

fn machine_netns() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn changes_inside_are_invisible_outside() {
    let run_netns_existed = Path::new("/run/netns").exists();
    let host_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let (ns, va, vb) = (uniq("n"), uniq("a"), uniq("b"));

    let sb = Sandbox::new();
    // a fresh host: only lo, and it is up
    let links = sb.netns_inventory();
    assert_eq!(links, vec![(String::new(), vec!["lo".to_string()])]);
    assert!(sb.run_ok("ip", ["-o", "link", "show", "lo"]).contains("UP"));
    assert!(sb.netns_list().is_empty());
    assert!(sb.labctl_state().is_empty());
    // /sys/class/net is the sandbox's, not the machine's
    assert_eq!(sb.sh_ok("ls /sys/class/net").trim(), "lo");

    let before = sb.host_state();
    sb.sh_ok(&format!(
        "ip netns add {ns}
         ip link add {va} type veth peer name {vb}
         ip link set {vb} netns {ns}
         ip addr add 198.18.0.1/24 dev {va}
         ip link set {va} up
         ip -n {ns} addr add 198.18.0.2/24 dev {vb}
         ip -n {ns} link set {vb} up
         ip -n {ns} link set lo up
         echo 1 > /proc/sys/net/ipv4/ip_forward
         mkdir -p /run/labctl/x"
    ));
    assert_eq!(sb.netns_list(), vec![ns.clone()]);
    assert_eq!(sb.labctl_state(), vec!["x/".to_string()]);
    assert_eq!(sb.link_count_in_all_netns(), 4); // lo, va | lo, vb

    // the host state notices all of it
    let during = sb.host_state();
    let diff = line_diff(&before, &during);
    for needle in [va.as_str(), "198.18.0.1/24", "net.ipv4.ip_forward = 1", ns.as_str()] {
        assert!(diff.contains(needle), "host_state misses {needle}:\n{diff}");
    }

    // the machine sees none of it
    let links = machine_links();
    assert!(!links.contains(&va) && !links.contains(&vb), "{links:?}");
    assert!(!machine_netns().contains(&ns));
    assert!(!Path::new("/run/labctl/x").exists());
    assert_eq!(Path::new("/run/netns").exists(), run_netns_existed);
    assert_eq!(std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(), host_forward);

    // undoing it inside gives back the same fingerprint
    sb.sh_ok(&format!(
        "ip netns del {ns}
         ip link del {va} 2>/dev/null || true
         echo 0 > /proc/sys/net/ipv4/ip_forward
         rm -r /run/labctl"
    ));
    // (the veth and the nsid go when the netns is destroyed, asynchronously:
    // assert_clean waits for that)
    sb.assert_clean(&before, "after undo");
}

#[test]
fn sandbox_vanishes_on_drop() {
    let ns = uniq("gone");
    let sb = Sandbox::new();
    sb.sh_ok(&format!("ip netns add {ns}; ip -n {ns} link add d0 type veth peer name d1"));
    // a stray process inside a lab netns, as a crashed labctl could leave
    let mut stray = sb.cmd("ip");
    stray.args(["netns", "exec", &ns, "sleep", "1000"]);
    let mut stray = stray.spawn().unwrap();
    let anchor = sb.pid();
    let net = sb.netns_ident();
    let mnt = sb.mntns_ident();
    let inner = std::fs::metadata(sb.path("/run/netns").join(&ns)).unwrap();
    let inner = (inner.dev(), inner.ino());
    // wait until `ip netns exec` has entered the netns and exec'd sleep
    let t0 = Instant::now();
    while !namespace_in_use("net", inner) && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(namespace_in_use("net", inner));
    assert_eq!(sb.processes().len(), 1, "{:?}", sb.processes());
    drop(sb);
    let _ = stray.wait();

    assert!(
        !Path::new(&format!("/proc/{anchor}")).exists() || {
            // pid reused by something else: it must not be our namespace
            !namespace_in_use("mnt", mnt)
        }
    );
    // no process is left in any of the sandbox's namespaces; the mount
    // namespace (and with it the tmpfs holding the netns binding) is gone.
    assert!(!namespace_in_use("net", net), "sandbox netns still used");
    assert!(!namespace_in_use("mnt", mnt), "sandbox mount ns still used");
    assert!(!namespace_in_use("net", inner), "inner netns still used");
    assert!(!machine_netns().contains(&ns));
}

#[test]
fn parallel_sandboxes_are_separate() {
    let ns = uniq("twin");
    let (a, b) = std::thread::scope(|s| {
        let ta = s.spawn(Sandbox::new);
        let tb = s.spawn(Sandbox::new);
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert_ne!(a.netns_ident(), b.netns_ident());
    assert_ne!(a.mntns_ident(), b.mntns_ident());
    // same names, different contents, built concurrently
    std::thread::scope(|s| {
        for (sb, addr) in [(&a, "198.18.0.1/24"), (&b, "198.18.0.2/24")] {
            let ns = ns.clone();
            s.spawn(move || {
                sb.sh_ok(&format!(
                    "ip netns add {ns}
                     ip link add sbt0 type veth peer name sbt1 netns {ns}
                     ip addr add {addr} dev sbt0
                     ip link set sbt0 up"
                ));
            });
        }
    });
    assert_eq!(a.netns_list(), vec![ns.clone()]);
    assert_eq!(b.netns_list(), vec![ns.clone()]);
    assert!(a.run_ok("ip", ["-o", "addr", "show", "sbt0"]).contains("198.18.0.1/24"));
    assert!(b.run_ok("ip", ["-o", "addr", "show", "sbt0"]).contains("198.18.0.2/24"));
    assert!(!a.run_ok("ip", ["-o", "addr"]).contains("198.18.0.2"));
    // a netns deleted in one is still there in the other
    a.run_ok("ip", ["netns", "del", &ns]);
    assert!(a.netns_list().is_empty());
    assert_eq!(b.netns_list(), vec![ns.clone()]);
    assert_eq!(b.run_ok("ip", ["-n", &ns, "-o", "link", "show", "sbt1"]).lines().count(), 1);
    drop(a);
    assert_eq!(b.netns_list(), vec![ns.clone()]);
    assert!(!machine_netns().contains(&ns));
}

#[test]
fn unprivileged_command_runs_inside_as_nobody() {
    let sb = Sandbox::new();
    let mut c = sb.cmd_as(NOBODY, NOBODY, "sh");
    c.args(["-c", "id -u; readlink /proc/self/ns/net; ip link add x0 type dummy"]);
    let out = output(&mut c);
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("65534"), "{}", describe(&out));
    let net = lines.next().unwrap_or_default();
    assert!(net.contains(&sb.netns_ident().1.to_string()), "{}", describe(&out));
    assert!(!out.status.success(), "nobody must not be able to add a link");
    assert_eq!(sb.link_count_in_all_netns(), 1);
}

/// Not a test on its own: the body of `anchor_dies_with_test_process`,
/// run in a child test process when LABCTL_SANDBOX_HELPER is set.
#[test]
fn helper_hold_sandbox() {
    if std::env::var_os("LABCTL_SANDBOX_HELPER").is_none() {
        return;
    }
    let sb = Sandbox::new();
    let (dev, ino) = sb.mntns_ident();
    println!("ANCHOR {} {dev} {ino}", sb.pid());
    // hold the sandbox until the parent test kills us (or dies: EOF)
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
}

#[test]
fn anchor_dies_with_test_process() {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "helper_hold_sandbox", "--nocapture", "--test-threads=1"])
        .env("LABCTL_SANDBOX_HELPER", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "helper ended early");
        if line.contains("ANCHOR ") {
            break;
        }
    }
    let tail = &line[line.find("ANCHOR ").unwrap()..];
    let f: Vec<u64> = tail.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect();
    let mnt = (f[1], f[2]);
    assert!(namespace_in_use("mnt", mnt));
    // kill -9 the test process: no Drop runs, yet the sandbox must go
    child.kill().unwrap();
    child.wait().unwrap();
    let t0 = Instant::now();
    while namespace_in_use("mnt", mnt) && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!namespace_in_use("mnt", mnt), "sandbox outlived its test process");
}
