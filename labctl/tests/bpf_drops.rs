//! Root tests of labctl::bpf: compiling BPF C (cache, errors), the verifier
//! log on rejection, and the drop-reason tracer against real drops in
//! throwaway namespaces:
//!
//! ```text
//!   a eth0 198.18.0.1/24 ---- eth0 198.18.0.2/24  r (router)  eth1 198.18.1.1/24 ---- eth0 198.18.1.2/24 c
//!   o1 eth0 198.18.9.1/24 ---- eth0 198.18.9.2/24 o2   (outsiders: not in the "lab")
//! ```
//!
//! A `harness = false` binary: it first moves the whole (single-threaded)
//! process into its own network + mount namespace with a private /run, so
//! nothing it makes is visible outside. Prints "N passed, M failed" and exits
//! non-zero on failure. Needs root, clang, bpftool, libbpf-dev and nft.

mod isolated;

use std::collections::BTreeMap;
use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use isolated::Tally;
use labctl::bpf::{self, drops, DropTable, DropTracer};
use labctl::sys::netns;
use labctl::traffic::{ping, PingOptions};

type Outcome = Result<(), String>;
type Test = fn(&World) -> Outcome;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// The lab's namespaces, by node name; o1 and o2 stand for the rest of the machine.
struct World {
    lab: BTreeMap<String, File>,
    o1: File,
    o2: File,
}

const PINGS: u32 = 3;

fn main() -> ExitCode {
    if let Err(code) = isolated::enter("bpf_drops", "BPF, namespaces") {
        return code;
    }
    // A cache that survives runs (the vmlinux.h dump takes a few seconds);
    // the cache tests use fresh ones of their own.
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bpf-cache");
    std::env::set_var("LABCTL_BPF_CACHE", &cache);
    let world = match build() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("cannot build the test topology: {e}");
            return Tally::default().failed_before_tests();
        }
    };

    let tests: &[(&str, Test)] = &[
        ("compile_caches_by_content", compile_caches_by_content),
        ("compile_error_names_file_and_line", compile_error_names_file_and_line),
        ("missing_clang_names_the_packages", missing_clang_names_the_packages),
        ("verifier_rejection_shows_the_log", verifier_rejection_shows_the_log),
        ("no_route_at_the_router", no_route_at_the_router),
        ("ttl_expired_at_the_router", ttl_expired_at_the_router),
        ("nftables_drop_at_the_router", nftables_drop_at_the_router),
        ("rp_filter_drop_at_the_router", rp_filter_drop_at_the_router),
        ("path_counts_rx_and_tx_per_interface", path_counts_rx_and_tx),
        ("path_times_the_receive_work_when_asked", path_times_the_receive_work),
        ("other_namespaces_never_appear", other_namespaces_never_appear),
        ("locations_name_the_kernel_function", locations_name_the_kernel_function),
        ("programs_are_unloaded_after_stop_and_drop", programs_are_unloaded),
        ("lua_x_drops_in_a_lab", lua_x_drops_in_a_lab),
    ];
    let mut tally = Tally::default();
    for (name, test) in tests {
        let started = Instant::now();
        let run = || isolated::run(|| test(&world));
        let mut outcome = run();
        for _ in 0..2 {
            match &outcome {
                Err(why) if busy(why) => {
                    println!("    busy machine, trying again: {why}");
                    outcome = run();
                }
                _ => break,
            }
        }
        tally.record(name, started, outcome);
    }
    // Leave nothing behind, and check that nothing is left.
    drop(world);
    let _ = std::fs::remove_dir_all(scratch());
    for ns in ["a", "r", "c", "o1", "o2"] {
        let _ = ip(&format!("netns del {ns}"));
    }
    let left = sh("ip", &["netns", "list"]).unwrap_or_else(|e| e);
    let outcome = if left.trim().is_empty() { Ok(()) } else { Err(format!("ip netns list: {left}")) };
    tally.record("no_namespace_left", Instant::now(), outcome);
    tally.finish()
}

// ---------------------------------------------------------------------------
// setup (plain `ip`/`nft` commands)

fn sh(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("run {program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn ip(args: &str) -> Result<String, String> {
    sh("ip", &args.split_whitespace().collect::<Vec<_>>())
}

/// `nft -f -` inside a namespace.
fn nft(ns: &str, script: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("run nft: {e}"))?;
    child.stdin.take().unwrap().write_all(script.as_bytes()).map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    ensure!(out.status.success(), "nft in {ns}: {}", String::from_utf8_lossy(&out.stderr).trim());
    Ok(())
}

fn sysctl(ns: &File, key: &str, value: &str) -> Result<(), String> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    netns::run_in(ns, || std::fs::write(&path, value)).map_err(|e| e.to_string())?.map_err(|e| format!("{path}: {e}"))
}

fn build() -> Result<World, String> {
    let names = ["a", "r", "c", "o1", "o2"];
    for ns in names {
        ip(&format!("netns add {ns}"))?;
        let file = netns::open(ns).map_err(|e| e.to_string())?;
        // No IPv6 at all: no router solicitations, MLD or DAD in the counts.
        sysctl(&file, "net.ipv6.conf.all.disable_ipv6", "1")?;
        sysctl(&file, "net.ipv6.conf.default.disable_ipv6", "1")?;
        ip(&format!("-n {ns} link set lo up"))?;
    }
    for cmd in [
        "link add eth0 netns a type veth peer name eth0 netns r",
        "link add eth1 netns r type veth peer name eth0 netns c",
        "link add eth0 netns o1 type veth peer name eth0 netns o2",
        // Fixed MACs and permanent neighbours: no ARP in any count.
        "-n a link set eth0 address 02:00:00:00:00:0a",
        "-n r link set eth0 address 02:00:00:00:01:00",
        "-n r link set eth1 address 02:00:00:00:01:01",
        "-n c link set eth0 address 02:00:00:00:00:0c",
        "-n a neigh replace 198.18.0.2 lladdr 02:00:00:00:01:00 dev eth0 nud permanent",
        "-n r neigh replace 198.18.0.1 lladdr 02:00:00:00:00:0a dev eth0 nud permanent",
        "-n r neigh replace 198.18.1.2 lladdr 02:00:00:00:00:0c dev eth1 nud permanent",
        "-n c neigh replace 198.18.1.1 lladdr 02:00:00:00:01:01 dev eth0 nud permanent",
        "-n a addr add 198.18.0.1/24 dev eth0",
        "-n a addr add 198.18.5.5/32 dev lo",
        "-n r addr add 198.18.0.2/24 dev eth0",
        "-n r addr add 198.18.1.1/24 dev eth1",
        "-n c addr add 198.18.1.2/24 dev eth0",
        "-n o1 addr add 198.18.9.1/24 dev eth0",
        "-n o2 addr add 198.18.9.2/24 dev eth0",
        "-n a link set eth0 up",
        "-n r link set eth0 up",
        "-n r link set eth1 up",
        "-n c link set eth0 up",
        "-n o1 link set eth0 up",
        "-n o2 link set eth0 up",
        "-n a route add default via 198.18.0.2",
        "-n c route add default via 198.18.1.1",
    ] {
        ip(cmd)?;
    }
    let open = |ns: &str| netns::open(ns).map_err(|e| e.to_string());
    let lab: BTreeMap<String, File> =
        ["a", "r", "c"].iter().map(|n| Ok((n.to_string(), open(n)?))).collect::<Result<_, String>>()?;
    sysctl(&lab["r"], "net.ipv4.ip_forward", "1")?;
    // o2 drops every ICMP echo it receives.
    nft("o2", "table inet t {\n chain in {\n type filter hook input priority 0; policy accept;\n icmp type echo-request drop\n }\n}\n")?;
    let world = World { lab, o1: open("o1")?, o2: open("o2")? };
    ping(&world.o1, &opts("198.18.9.2", None)).map_err(|e| e.to_string())?;
    Ok(world)
}

fn opts(to: &str, ttl: Option<u8>) -> PingOptions {
    let mut o = PingOptions::new(to.parse().unwrap());
    o.count = PINGS;
    o.interval = Duration::from_millis(20);
    o.timeout = Duration::from_millis(200);
    o.ttl = ttl;
    o
}

/// Drops that say the machine was busy, not that the lab did something: the
/// per-CPU backlog is shared by every namespace, so another test blasting
/// packets on the same CPU can overflow it under ours.
const LOAD_REASONS: &[&str] = &["CPU_BACKLOG"];

fn busy(text: &str) -> bool {
    LOAD_REASONS.iter().any(|r| text.contains(r))
}

/// Traces the lab's namespaces while `step` runs; the drops in lab names.
fn traced(w: &World, step: impl FnOnce() -> Outcome) -> Result<DropTable, String> {
    let tracer = DropTracer::start_in(&drops::inodes(&w.lab).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    step()?;
    let records = tracer.stop().map_err(|e| e.to_string())?;
    drops::by_node(&records, &w.lab, false).map_err(|e| e.to_string())
}

fn table(entries: &[(&str, &str, u64)]) -> DropTable {
    let mut t = DropTable::new();
    for (place, reason, n) in entries {
        t.entry(place.to_string()).or_default().insert(reason.to_string(), *n);
    }
    t
}

fn ping_from(w: &World, node: &str, o: &PingOptions) -> Outcome {
    let report = ping(&w.lab[node], o).map_err(|e| format!("ping from {node}: {e}"))?;
    ensure!(report.transmitted == PINGS, "sent {} of {PINGS}: {report:?}", report.transmitted);
    ensure!(report.received == 0, "expected no replies: {report:?}");
    Ok(())
}

// ---------------------------------------------------------------------------
// compile

/// This run's scratch folder under /tmp, removed at the end.
fn scratch() -> PathBuf {
    std::env::temp_dir().join(format!("labctl-bpf-test-{}", std::process::id()))
}

fn fresh_cache(name: &str) -> PathBuf {
    let dir = scratch().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `f` with LABCTL_BPF_CACHE (and maybe PATH) changed. Single-threaded here.
fn with_env<T>(vars: &[(&str, &std::ffi::OsStr)], f: impl FnOnce() -> T) -> T {
    let saved: Vec<_> = vars.iter().map(|(k, _)| (k.to_string(), std::env::var_os(k))).collect();
    for (k, v) in vars {
        std::env::set_var(k, v);
    }
    let result = catch_unwind(AssertUnwindSafe(f));
    for (k, v) in saved {
        match v {
            Some(v) => std::env::set_var(&k, v),
            None => std::env::remove_var(&k),
        }
    }
    result.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

const TINY: &str = r#"#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
SEC("tp_btf/kfree_skb")
int tiny(void *ctx) { return 0; }
"#;

fn compile_caches_by_content(_: &World) -> Outcome {
    let cache = fresh_cache("cache");
    with_env(&[("LABCTL_BPF_CACHE", cache.as_os_str())], || {
        let src = cache.join("tiny.c");
        std::fs::write(&src, TINY).unwrap();
        let first = bpf::compile(&src).map_err(|e| e.to_string())?;
        ensure!(first.starts_with(&cache) && first.exists(), "object {} not in the cache", first.display());
        ensure!(
            cache.read_dir().unwrap().flatten().any(|e| e.path().join("vmlinux.h").exists()),
            "no vmlinux.h in the cache"
        );
        let modified = std::fs::metadata(&first).unwrap().modified().unwrap();
        let t = Instant::now();
        let again = bpf::compile(&src).map_err(|e| e.to_string())?;
        let cached_in = t.elapsed();
        ensure!(again == first, "same source, different object: {} vs {}", again.display(), first.display());
        ensure!(std::fs::metadata(&again).unwrap().modified().unwrap() == modified, "the cached object was rewritten");
        ensure!(cached_in < Duration::from_millis(500), "a cache hit took {cached_in:?}");
        std::fs::write(&src, TINY.replace("return 0", "return 1")).unwrap();
        let changed = bpf::compile(&src).map_err(|e| e.to_string())?;
        ensure!(changed != first, "a changed source reused the old object");
        Ok(())
    })
}

fn compile_error_names_file_and_line(_: &World) -> Outcome {
    let cache = fresh_cache("error");
    with_env(&[("LABCTL_BPF_CACHE", cache.as_os_str())], || {
        let src = cache.join("broken.c");
        std::fs::write(
            &src,
            "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\nint f(void) { return undeclared_thing; }\n",
        )
        .unwrap();
        let err = bpf::compile(&src).err().ok_or("a broken program compiled")?.to_string();
        ensure!(err.contains("broken.c:3:"), "no file:line in: {err}");
        ensure!(err.contains("undeclared_thing"), "clang's message is missing: {err}");
        Ok(())
    })
}

fn missing_clang_names_the_packages(_: &World) -> Outcome {
    let cache = fresh_cache("noclang");
    let empty = cache.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    with_env(&[("LABCTL_BPF_CACHE", cache.as_os_str()), ("PATH", empty.as_os_str())], || {
        let src = cache.join("x.c");
        std::fs::write(&src, "int x;\n").unwrap();
        let err = bpf::compile(&src).err().ok_or("compiled without clang in PATH")?.to_string();
        ensure!(err.contains("clang") && err.contains("apt-get install -y clang llvm libbpf-dev bpftool"), "{err}");
        Ok(())
    })
}

fn verifier_rejection_shows_the_log(_: &World) -> Outcome {
    let cache = fresh_cache("verifier");
    // Uses a map value without checking the lookup for NULL.
    let src_text = r#"#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
char LICENSE[] SEC("license") = "GPL";
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); } m SEC(".maps");
SEC("tp_btf/kfree_skb")
int BPF_PROG(careless, struct sk_buff *skb) {
    __u32 k = 0;
    __u64 *v = bpf_map_lookup_elem(&m, &k);
    *v += 1;
    return 0;
}
"#;
    let src = cache.join("careless.c");
    std::fs::write(&src, src_text).unwrap();
    let object =
        with_env(&[("LABCTL_BPF_CACHE", cache.as_os_str())], || bpf::compile(&src)).map_err(|e| e.to_string())?;
    let btf = bpf::kernel_btf().map_err(|e| e.to_string())?;
    let mut ebpf = bpf::load(&object, &btf, |_| {}).map_err(|e| e.to_string())?;
    let program: &mut aya::programs::BtfTracePoint =
        ebpf.program_mut("careless").ok_or("no program")?.try_into().map_err(|e| format!("{e}"))?;
    let err = match program.load("kfree_skb", &btf) {
        Ok(()) => return Err("the verifier accepted a NULL dereference".into()),
        Err(e) => bpf::program_error("careless", e).to_string(),
    };
    ensure!(err.contains("careless") && err.contains("invalid mem access"), "no verdict in: {err}");
    ensure!(err.lines().count() <= 25, "the whole log instead of its tail ({} lines)", err.lines().count());
    Ok(())
}

// ---------------------------------------------------------------------------
// drops

fn no_route_at_the_router(w: &World) -> Outcome {
    let got = traced(w, || ping_from(w, "a", &opts("198.19.99.1", None)))?;
    println!("    no route: {got:?}");
    ensure!(got == table(&[("r:eth0", "IP_INNOROUTES", PINGS as u64)]), "got {got:?}");
    Ok(())
}

fn ttl_expired_at_the_router(w: &World) -> Outcome {
    let got = traced(w, || ping_from(w, "a", &opts("198.18.1.2", Some(1))))?;
    println!("    ttl 1: {got:?}");
    ensure!(got == table(&[("r:eth0", "IP_INHDR", PINGS as u64)]), "got {got:?}");
    Ok(())
}

fn nftables_drop_at_the_router(w: &World) -> Outcome {
    nft("r", "table inet drops {\n chain forward_filter {\n type filter hook forward priority 0; policy accept;\n ip daddr 198.18.1.2 icmp type echo-request drop\n }\n}\n")?;
    let got = traced(w, || ping_from(w, "a", &opts("198.18.1.2", None)));
    nft("r", "delete table inet drops")?;
    let got = got?;
    println!("    nftables: {got:?}");
    ensure!(got == table(&[("r:eth0", "NETFILTER_DROP", PINGS as u64)]), "got {got:?}");
    Ok(())
}

fn rp_filter_drop_at_the_router(w: &World) -> Outcome {
    let r = &w.lab["r"];
    sysctl(r, "net.ipv4.conf.all.rp_filter", "1")?;
    sysctl(r, "net.ipv4.conf.eth0.rp_filter", "1")?;
    let mut o = opts("198.18.1.2", None);
    // a owns 198.18.5.5, but r has no route back to it.
    o.source = Some("198.18.5.5".parse().unwrap());
    let got = traced(w, || ping_from(w, "a", &o));
    sysctl(r, "net.ipv4.conf.all.rp_filter", "0")?;
    sysctl(r, "net.ipv4.conf.eth0.rp_filter", "0")?;
    let got = got?;
    println!("    rp_filter: {got:?}");
    ensure!(got == table(&[("r:eth0", "IP_RPFILTER", PINGS as u64)]), "got {got:?}");
    Ok(())
}

fn path_counts_rx_and_tx(w: &World) -> Outcome {
    let tracer = DropTracer::start_in(&drops::inodes(&w.lab).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let report = ping(&w.lab["a"], &opts("198.18.1.2", None)).map_err(|e| e.to_string())?;
    ensure!(report.received == PINGS, "ping a -> c: {report:?}");
    let all = tracer.stop_with_path().map_err(|e| e.to_string())?;
    ensure!(all.lost == 0, "{} events lost", all.lost);
    // The only drops on a clean path: labctl's ping reads replies on a raw
    // socket, and the kernel's own ICMP code then finds no ping socket for
    // them (ping_rcv: NO_SOCKET). A learner sees it too; it is real.
    let t = drops::by_node(&all.drops, &w.lab, false).map_err(|e| e.to_string())?;
    ensure!(t == table(&[("a:eth0", "NO_SOCKET", PINGS as u64)]), "drops on a clean path: {t:?}");
    let inode = |n: &str| drops::inode(&w.lab[n]).unwrap();
    let find = |n: &str, ifname: &str| {
        let ifindex = netns::run_in(&w.lab[n], || nix_ifindex(ifname)).unwrap();
        all.path.iter().find(|p| p.netns_inode == inode(n) && p.ifindex == ifindex).cloned()
    };
    let n = PINGS as u64;
    // Requests a -> r -> c, replies back: each interface on the way sees n each way.
    for (node, ifname) in [("a", "eth0"), ("r", "eth0"), ("r", "eth1"), ("c", "eth0")] {
        let p = find(node, ifname).ok_or(format!("no path record for {node}:{ifname}: {:?}", all.path))?;
        ensure!(p.rx == n && p.tx == n, "{node}:{ifname}: rx {} tx {}, expected {n} each (drops: {t:?})", p.rx, p.tx);
        ensure!(p.rx_ns == 0, "{node}:{ifname}: receive time {} ns although not asked for", p.rx_ns);
    }
    ensure!(
        all.path.iter().all(|p| w.lab.values().any(|f| drops::inode(f).unwrap() == p.netns_inode)),
        "outside records: {:?}",
        all.path
    );
    Ok(())
}

/// With receive timing, every interface that received has time; and each
/// packet's time ends with its poll, not at the next packet 20 ms later.
fn path_times_the_receive_work(w: &World) -> Outcome {
    let inodes = drops::inodes(&w.lab).map_err(|e| e.to_string())?;
    let tracer = DropTracer::start_timing_rx(&inodes).map_err(|e| e.to_string())?;
    let report = ping(&w.lab["a"], &opts("198.18.1.2", None)).map_err(|e| e.to_string())?;
    ensure!(report.received == PINGS, "ping a -> c: {report:?}");
    let all = tracer.stop_with_path().map_err(|e| e.to_string())?;
    ensure!(all.lost == 0, "{} events lost", all.lost);
    let received: Vec<_> = all.path.iter().filter(|p| p.rx > 0).collect();
    ensure!(received.len() >= 4, "interfaces that received: {received:?}");
    for p in received {
        let per_packet_ns = p.rx_ns / p.rx;
        println!("    netns {} if {}: {} packets, {per_packet_ns} ns each", p.netns_inode, p.ifindex, p.rx);
        ensure!(p.rx_ns > 0, "no receive time for {p:?}");
        // A bound on what the tracer measures, not on the kernel's speed:
        // an interval that ran on to the next ping would be >= 20 ms.
        ensure!(per_packet_ns < 5_000_000, "{per_packet_ns} ns per packet: the poll's end was missed: {p:?}");
    }
    Ok(())
}

fn nix_ifindex(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: a NUL-terminated name.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}

fn other_namespaces_never_appear(w: &World) -> Outcome {
    let outsider = |ns: &File| -> Outcome {
        let report = ping(ns, &opts("198.18.9.2", None)).map_err(|e| e.to_string())?;
        ensure!(report.received == 0, "o2 answered: {report:?}");
        Ok(())
    };
    let o2 = drops::inode(&w.o2).map_err(|e| e.to_string())?;

    // Filtered in the kernel: nothing at all from o1/o2 is counted.
    let lab = drops::inodes(&w.lab).map_err(|e| e.to_string())?;
    let tracer = DropTracer::start_in(&lab).map_err(|e| e.to_string())?;
    outsider(&w.o1)?;
    let records = tracer.stop().map_err(|e| e.to_string())?;
    ensure!(records.iter().all(|r| lab.contains(&r.netns_inode)), "records from outside the lab: {records:?}");

    // Unfiltered: the tracer does see o2's drops, and by_node leaves them out.
    let tracer = DropTracer::start().map_err(|e| e.to_string())?;
    outsider(&w.o1)?;
    let records = tracer.stop().map_err(|e| e.to_string())?;
    let seen: u64 =
        records.iter().filter(|r| r.netns_inode == o2 && r.reason == "NETFILTER_DROP").map(|r| r.count).sum();
    ensure!(seen == PINGS as u64, "o2's drops not seen machine-wide: {records:?}");
    let t = drops::by_node(&records, &w.lab, false).map_err(|e| e.to_string())?;
    ensure!(t.is_empty(), "drops outside the lab reached the lab's table: {t:?}");
    Ok(())
}

fn locations_name_the_kernel_function(w: &World) -> Outcome {
    let tracer = DropTracer::start_in(&drops::inodes(&w.lab).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    ping_from(w, "a", &opts("198.19.99.1", None))?;
    let records = tracer.stop().map_err(|e| e.to_string())?;
    let t = drops::by_node(&records, &w.lab, true).map_err(|e| e.to_string())?;
    println!("    with locations: {t:?}");
    let reasons: Vec<&String> = t.values().flat_map(|r| r.keys()).collect();
    ensure!(reasons.len() == 1 && reasons[0].starts_with("IP_INNOROUTES (") && reasons[0].ends_with(')'), "{t:?}");
    Ok(())
}

fn bpftool_knows(id: u32) -> bool {
    sh("bpftool", &["prog", "show", "id", &id.to_string()]).is_ok()
}

/// The kernel frees a detached tracing program after an RCU grace period.
fn all_gone(ids: &[u32]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if !ids.iter().any(|&id| bpftool_knows(id)) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn programs_are_unloaded(w: &World) -> Outcome {
    let lab = drops::inodes(&w.lab).map_err(|e| e.to_string())?;
    let tracer = DropTracer::start_in(&lab).map_err(|e| e.to_string())?;
    let ids = tracer.program_ids().to_vec();
    ensure!(ids.len() == 3, "program ids: {ids:?}");
    ensure!(ids.iter().all(|&id| bpftool_knows(id)), "bpftool does not list the running programs {ids:?}");
    tracer.stop().map_err(|e| e.to_string())?;
    ensure!(all_gone(&ids), "programs {ids:?} still loaded after stop()");

    let tracer = DropTracer::start_in(&lab).map_err(|e| e.to_string())?;
    let ids = tracer.program_ids().to_vec();
    drop(tracer);
    ensure!(all_gone(&ids), "programs {ids:?} still loaded after drop");
    Ok(())
}

// ---------------------------------------------------------------------------
// x:drops in a lab script, through `labctl run`

const LAB: &str = r#"
lab { name = "bpfdrops" }
local h1 = node("h1")
local r1 = node("r1", { forwarding = true })
local h2 = node("h2")
link(h1, r1, { "198.18.0.1/24", "198.18.0.2/24" })
link(r1, h2, { "198.18.1.1/24", "198.18.1.2/24" })
h1:route("default", "198.18.0.2")
h2:route("default", "198.18.1.1")
-- Without this, a node's MLD reports (from ::, at interface up) reach the
-- others, which drop them in ip6_mc_input (NOT_SPECIFIED) for a second or two.
for _, n in ipairs({ h1, r1, h2 }) do
  n:sysctl("net.ipv6.conf.all.disable_ipv6", 1)
  n:sysctl("net.ipv6.conf.default.disable_ipv6", 1)
end
local fast = { count = 2, interval = 0.02, timeout = 0.2 }
experiment("drops", function(x)
  x:snapshot("no_route", x:drops(function() x.h1:ping("198.19.9.9", fast) end))
  x:snapshot("ttl", x:drops(function()
    x.h1:ping("198.18.1.2", { count = 2, interval = 0.02, timeout = 0.2, ttl = 1 })
  end, { locations = true }))
  x:snapshot("nothing", x:drops(function() end))
end)
"#;

fn lua_x_drops_in_a_lab(_: &World) -> Outcome {
    let dir = fresh_cache("lab");
    let file = dir.join("bpfdrops.lua");
    std::fs::write(&file, LAB).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_labctl"))
        .args(["run".as_ref(), file.as_os_str(), "--out".as_ref(), dir.join("run").as_os_str()])
        .output()
        .map_err(|e| format!("run labctl: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{}", stdout.lines().map(|l| format!("    | {l}")).collect::<Vec<_>>().join("\n"));
    ensure!(out.status.success(), "labctl run failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    let snapshot =
        |name: &str| std::fs::read_to_string(dir.join("run/drops").join(format!("{name}.txt"))).unwrap_or_default();
    ensure!(snapshot("no_route") == "r1:eth0:\n  IP_INNOROUTES: 2\n", "no_route: {:?}", snapshot("no_route"));
    ensure!(snapshot("ttl") == "r1:eth0:\n  IP_INHDR (ip_forward): 2\n", "ttl: {:?}", snapshot("ttl"));
    ensure!(snapshot("nothing") == "{}\n", "nothing: {:?}", snapshot("nothing"));
    ensure!(!sh("ip", &["netns", "list"])?.contains("bpfdrops"), "the lab was left running");
    Ok(())
}
