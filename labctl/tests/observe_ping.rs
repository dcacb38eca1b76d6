//! Root integration test of labctl::observe: counters and captures around a
//! real ping between two namespaces.
//!
//! A `harness = false` binary, because its first act is to move the whole
//! (still single-threaded) process into a throwaway network + mount
//! namespace with a private tmpfs on /run: unsharing the mount namespace is
//! not possible once the libtest harness has started threads. Everything
//! made here (`ip netns add`, veth, qdisc) vanishes when the process exits.
//!
//! Prints `N passed, M failed` last and exits non-zero on any failure.

mod isolated;

use std::collections::BTreeMap;
use std::fs::File;
use std::process::{Command, ExitCode};
use std::time::Instant;

use isolated::Tally;
use labctl::model::MacAddr;
use labctl::observe::counters::{self, Delta};
use labctl::observe::{normalize, pcapng, Capture, ObserveError, Packet};
use labctl::sys::netns;

const H1_MAC: &str = "02:00:00:00:00:01";
const R1_MAC: &str = "02:00:00:00:00:fe";
const H1_IP: &str = "198.18.0.1";
const R1_IP: &str = "198.18.0.254";
const PINGS: usize = 3;

type Check = fn(&World);

fn main() -> ExitCode {
    if let Err(code) = isolated::enter("observe_ping", "network and mount namespaces") {
        return code;
    }
    setup();
    let world = World::observe_a_ping();

    let checks: &[(&str, Check)] = &[
        ("snmp counts the echoes in each namespace", snmp_counts_the_echoes),
        ("snmp reads the thread's namespace, not the process'", snmp_follows_the_thread),
        ("link stats move by what was captured", link_stats_match_the_capture),
        ("qdisc stats count the sent packets", qdisc_stats_count_sent_packets),
        ("capture sees the echoes with names and directions", capture_lines),
        ("pcapng round-trips both captures", pcapng_round_trip),
        ("neighbour and route tables", tables),
        ("softnet and softirqs move", per_cpu_counters),
        ("unknown interfaces are named in the error", unknown_interface),
    ];
    let mut tally = Tally::default();
    for (name, check) in checks {
        let started = Instant::now();
        tally.record(
            name,
            started,
            isolated::run(|| {
                check(&world);
                Ok(())
            }),
        );
    }
    tally.finish()
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("run {args:?}: {e}"));
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// h1 (198.18.0.1) -- veth -- r1 (198.18.0.254), IPv6 off so that only the
/// test's own traffic moves the counters. Test scaffolding only, with `ip`.
fn setup() {
    sh(&["ip", "link", "set", "lo", "up"]);
    for ns in ["h1", "r1"] {
        sh(&["ip", "netns", "add", ns]);
        sh(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]);
        sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
    sh(&[
        "ip", "link", "add", "eth0", "netns", "h1", "address", H1_MAC, "type", "veth", "peer", "name", "eth0", "netns",
        "r1", "address", R1_MAC,
    ]);
    for (ns, ip) in [("h1", H1_IP), ("r1", R1_IP)] {
        sh(&["ip", "-n", ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        sh(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
    }
    // A real qdisc on h1 (veth defaults to noqueue, which counts nothing).
    sh(&["ip", "netns", "exec", "h1", "tc", "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "pfifo_fast"]);
}

/// Everything observed around one `ping -c 3`.
struct World {
    h1: File,
    r1: File,
    snmp: BTreeMap<&'static str, Delta>,
    link: Delta,
    qdisc: Delta,
    softnet_processed: u64,
    h1_packets: Vec<Packet>,
    r1_packets: Vec<Packet>,
    snmp_main_thread_out_echos: u64,
}

fn sum_processed() -> u64 {
    counters::softnet().unwrap().iter().map(|r| r.processed).sum()
}

fn root_qdisc(netns: &File) -> BTreeMap<String, u64> {
    let qdiscs = counters::qdisc_stats(netns, "eth0").unwrap();
    let root = qdiscs.iter().find(|q| q.parent == "root").unwrap_or_else(|| panic!("no root qdisc in {qdiscs:?}"));
    assert_eq!((root.kind.as_str(), root.handle.as_str()), ("pfifo_fast", "1:0"), "{qdiscs:?}");
    root.counters()
}

fn main_thread_icmp_out_echos() -> u64 {
    let text = std::fs::read_to_string("/proc/self/net/snmp").unwrap();
    counters::parse_netstat(&text, "/proc/self/net/snmp").unwrap()["Icmp.OutEchos"]
}

impl World {
    fn observe_a_ping() -> World {
        let (h1, r1) = (netns::open("h1").unwrap(), netns::open("r1").unwrap());
        let snmp_before = [("h1", counters::snmp(&h1).unwrap()), ("r1", counters::snmp(&r1).unwrap())];
        let link_before = counters::link_stats(&h1, "eth0").unwrap();
        let qdisc_before = root_qdisc(&h1);
        let processed_before = sum_processed();
        let main_before = main_thread_icmp_out_echos();

        let h1_capture = Capture::start(&h1, "eth0").unwrap().labelled("h1:eth0");
        let r1_capture = Capture::start(&r1, "eth0").unwrap().labelled("r1:eth0");
        sh(&[
            "ip",
            "netns",
            "exec",
            "h1",
            "ping",
            "-n",
            "-q",
            "-c",
            &PINGS.to_string(),
            "-i",
            "0.05",
            "-W",
            "2",
            R1_IP,
        ]);
        let (h1_packets, h1_stats) = h1_capture.stop_with_stats().unwrap();
        let (r1_packets, r1_stats) = r1_capture.stop_with_stats().unwrap();
        assert_eq!((h1_stats.dropped, r1_stats.dropped), (0, 0));
        assert_eq!(h1_stats.received as usize, h1_packets.len());

        let snmp = snmp_before
            .into_iter()
            .map(|(name, before)| {
                let ns = if name == "h1" { &h1 } else { &r1 };
                (name, Delta::between(&before, &counters::snmp(ns).unwrap()).nonzero())
            })
            .collect();
        let link = Delta::between(&link_before, &counters::link_stats(&h1, "eth0").unwrap());
        let qdisc = Delta::between(&qdisc_before, &root_qdisc(&h1));
        let softnet_processed = sum_processed() - processed_before;
        let snmp_main_thread_out_echos = main_thread_icmp_out_echos() - main_before;
        World { h1, r1, snmp, link, qdisc, softnet_processed, h1_packets, r1_packets, snmp_main_thread_out_echos }
    }

    fn names() -> BTreeMap<MacAddr, String> {
        [(H1_MAC.parse().unwrap(), "h1:eth0".to_string()), (R1_MAC.parse().unwrap(), "r1:eth0".to_string())].into()
    }
}

fn snmp_counts_the_echoes(w: &World) {
    let (h1, r1) = (&w.snmp["h1"], &w.snmp["r1"]);
    println!("  h1 snmp delta: {}", serde_json::to_string(h1).unwrap());
    assert_eq!(h1.get("Icmp.OutEchos"), PINGS as u64);
    assert_eq!(h1.get("Icmp.InEchoReps"), PINGS as u64);
    assert_eq!(r1.get("Icmp.InEchos"), PINGS as u64);
    assert_eq!(r1.get("Icmp.OutEchoReps"), PINGS as u64);
    assert_eq!(h1.get("Ip.OutRequests"), PINGS as u64);
    assert!(h1.get("IpExt.InOctets") >= (PINGS * 84) as u64, "netstat is read too: {h1:?}");
}

fn snmp_follows_the_thread(w: &World) {
    // /proc/self/net is the main thread's namespace (the isolated "host"
    // here), which saw none of the pings; /proc/thread-self/net is the node's.
    assert_eq!(w.snmp_main_thread_out_echos, 0);
    let (thread_self, process) = netns::run_in(&w.h1, || {
        let read = |p: &str| counters::parse_netstat(&std::fs::read_to_string(p).unwrap(), p).unwrap()["Icmp.OutEchos"];
        (read("/proc/thread-self/net/snmp"), read("/proc/self/net/snmp"))
    })
    .unwrap();
    assert!(thread_self >= PINGS as u64 && process == 0, "thread-self {thread_self}, self {process}");
}

fn link_stats_match_the_capture(w: &World) {
    let out = w.h1_packets.iter().filter(|p| p.outgoing).count() as u64;
    let inn = w.h1_packets.len() as u64 - out;
    println!("  h1:eth0 link delta: {}", serde_json::to_string(&w.link.clone().nonzero()).unwrap());
    assert_eq!(w.link.get("tx_packets"), out);
    assert_eq!(w.link.get("rx_packets"), inn);
    assert!((PINGS as u64..=PINGS as u64 + 2).contains(&out), "pings plus at most ARP request and probe: {out}");
    let tx_bytes: u64 = w.h1_packets.iter().filter(|p| p.outgoing).map(|p| u64::from(p.orig_len)).sum();
    assert_eq!(w.link.get("tx_bytes"), tx_bytes);
    assert_eq!(w.link.get("rx_dropped") + w.link.get("tx_dropped"), 0);
}

fn qdisc_stats_count_sent_packets(w: &World) {
    assert_eq!(w.qdisc.get("packets"), w.link.get("tx_packets"), "{:?}", w.qdisc);
    assert_eq!(w.qdisc.get("drops"), 0);
}

fn capture_lines(w: &World) {
    let names = World::names();
    let h1 = normalize::lines(&w.h1_packets, &names, &normalize::Options::default());
    let r1 = normalize::lines(&w.r1_packets, &names, &normalize::Options::default());
    println!("  h1:eth0\n    {}", h1.join("\n    "));
    for seq in 1..=PINGS {
        let request = format!("h1:eth0 > r1:eth0 IPv4 {H1_IP} > {R1_IP} ICMP echo request seq {seq} ttl 64 len 84");
        let reply = format!("r1:eth0 > h1:eth0 IPv4 {R1_IP} > {H1_IP} ICMP echo reply seq {seq} ttl 64 len 84");
        let count = |lines: &[String], want: String| lines.iter().filter(|l| **l == want).count();
        assert_eq!(count(&h1, format!("out {request}")), 1, "{request}");
        assert_eq!(count(&h1, format!("in {reply}")), 1, "{reply}");
        assert_eq!(count(&r1, format!("in {request}")), 1, "{request}");
        assert_eq!(count(&r1, format!("out {reply}")), 1, "{reply}");
    }
    let echoes = |lines: &[String]| lines.iter().filter(|l| l.contains(" ICMP echo ")).count();
    assert_eq!((echoes(&h1), echoes(&r1)), (2 * PINGS, 2 * PINGS));
    assert!(h1.contains(&format!("out h1:eth0 > ff:ff:ff:ff:ff:ff ARP who-has {R1_IP} tell {H1_IP}")), "{h1:#?}");
    assert!(h1.contains(&format!("in r1:eth0 > h1:eth0 ARP reply {R1_IP} is-at r1:eth0")), "{h1:#?}");
    // What h1 sent, r1 received, in the same order.
    let sent: Vec<&[u8]> = w.h1_packets.iter().filter(|p| p.outgoing).map(|p| p.data.as_slice()).collect();
    let got: Vec<&[u8]> = w.r1_packets.iter().filter(|p| !p.outgoing).map(|p| p.data.as_slice()).collect();
    assert_eq!(sent, got);
}

fn pcapng_round_trip(w: &World) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ping.pcapng");
    let mut all: Vec<Packet> = w.h1_packets.iter().chain(&w.r1_packets).cloned().collect();
    pcapng::write_file(&path, &all).unwrap();
    let back = pcapng::read_file(&path).unwrap();
    all.sort_by_key(|p| p.ts_ns);
    assert_eq!(back, all);
    assert!(back.iter().all(|p| p.ts_ns > 1_600_000_000_000_000_000), "kernel wall-clock timestamps in ns");
}

fn tables(w: &World) {
    let neigh = counters::neighbours(&w.h1).unwrap();
    println!("  h1 neighbours: {}", serde_json::to_string(&neigh).unwrap());
    let r1 = neigh.iter().find(|n| n.dst.to_string() == R1_IP).unwrap_or_else(|| panic!("{neigh:?}"));
    assert_eq!((r1.dev.as_str(), r1.lladdr.map(|m| m.to_string())), ("eth0", Some(R1_MAC.to_string())));
    let routes = counters::routes(&w.r1).unwrap();
    println!("  r1 routes: {}", serde_json::to_string(&routes).unwrap());
    let connected =
        routes.iter().find(|r| r.dst.to_string() == "198.18.0.0/24").unwrap_or_else(|| panic!("{routes:?}"));
    assert_eq!(
        (connected.dev.as_deref(), connected.proto.as_str(), connected.scope.as_str(), connected.via),
        (Some("eth0"), "kernel", "link", None)
    );
    assert_eq!(connected.src.map(|a| a.to_string()).as_deref(), Some(R1_IP));
    assert!(routes.iter().all(|r| r.table.is_none()), "local table left out: {routes:?}");
}

fn per_cpu_counters(w: &World) {
    // Every received frame goes through __netif_receive_skb on some CPU.
    assert!(w.softnet_processed >= (2 * PINGS) as u64, "processed moved by {}", w.softnet_processed);
    let irqs = counters::softirqs().unwrap();
    assert_eq!(irqs.keys().collect::<Vec<_>>(), ["NET_RX", "NET_TX"]);
    assert_eq!(irqs["NET_RX"].len(), counters::softnet().unwrap().len().max(irqs["NET_RX"].len()));
}

fn unknown_interface(w: &World) {
    let err = counters::link_stats(&w.h1, "nope0").unwrap_err();
    assert!(matches!(err, ObserveError::NoSuchInterface { .. }), "{err}");
    assert_eq!(err.to_string(), "no interface \"nope0\" in this namespace");
    assert!(matches!(Capture::start(&w.r1, "nope0").err(), Some(ObserveError::NoSuchInterface { .. })));
    assert!(matches!(counters::qdisc_stats(&w.h1, "nope0"), Err(ObserveError::NoSuchInterface { .. })));
}
