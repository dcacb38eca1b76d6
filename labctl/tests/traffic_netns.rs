//! Root integration tests of labctl::traffic (ping, flows, blast), in a
//! throwaway network + mount namespace made by this process itself.
//!
//! Topology (all addresses in 198.18.0.0/15 and 2001:db8::/32):
//!
//! ```text
//!   a  veth-a 198.18.0.1/24 2001:db8::1/64 ---- veth-b 198.18.0.2/24 2001:db8::2/64  b (router)
//!   b  veth-bc 198.18.1.1/24 2001:db8:1::1/64 -- veth-c 198.18.1.2/24 2001:db8:1::2/64  c
//! ```
//!
//! `cargo test --test traffic_netns` runs the tests; `... -- --bench` instead
//! measures blast packet rates with the sender pinned to one core.
//! Needs root. Closes with "N passed, M failed" and a non-zero exit on failure.

mod isolated;

use std::fs::File;
use std::net::SocketAddr;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use isolated::Tally;
use labctl::sys::netns;
use labctl::traffic::{
    blast, ping, tcp_flow, udp_flow, BlastMode, BlastOptions, BlastReport, PingOptions, TcpFlow, UdpFlow,
};

struct Lab {
    a: File,
    b: File,
    c: File,
}

type Outcome = Result<(), String>;
type Test = (&'static str, fn(&Lab) -> Outcome);

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        let holds: bool = $cond;
        if !holds {
            return Err(format!($($fmt)+));
        }
    };
}

fn main() -> ExitCode {
    // First, while single-threaded: nothing made below is visible outside.
    if let Err(code) = isolated::enter("traffic_netns", "raw sockets, namespaces") {
        return code;
    }
    let lab = match build_lab() {
        Ok(lab) => lab,
        Err(e) => {
            eprintln!("cannot build the test topology: {e}");
            return Tally::default().failed_before_tests();
        }
    };
    if std::env::args().any(|a| a == "--bench") {
        return bench(&lab);
    }

    let tests: &[Test] = &[
        ("ping_v4", ping_v4),
        ("ping_v6", ping_v6),
        ("ping_ttl_1_to_a_neighbour_gets_replies", ping_ttl_1_to_a_neighbour),
        ("ping_through_a_router", ping_through_a_router),
        ("ping_ttl_expiry_is_reported_v4", ping_ttl_expiry_v4),
        ("ping_ttl_expiry_is_reported_v6", ping_ttl_expiry_v6),
        ("ping_without_a_route_reports_an_error", ping_without_a_route),
        ("ping_unreachable_from_the_router_is_reported", ping_unreachable_from_router),
        ("udp_flow_1000_packets_loss_free", udp_flow_loss_free),
        ("udp_flow_v6_by_duration", udp_flow_v6_by_duration),
        ("tcp_flow_10_mib", tcp_flow_10_mib),
        ("blast_sendmmsg_v4_2s", blast_sendmmsg_v4),
        ("blast_packet_ring_v4_2s", blast_packet_ring_v4),
        ("blast_sendmmsg_v6", blast_sendmmsg_v6),
        ("blast_packet_ring_v6", blast_packet_ring_v6),
        ("blast_rate_and_count_are_kept", blast_rate_and_count),
        ("blast_gso_count_arrives_whole", blast_gso_count),
        ("blast_af_xdp_v4_2s", blast_af_xdp_v4),
        ("blast_af_xdp_v6", blast_af_xdp_v6),
        ("blast_af_xdp_count_arrives_whole", blast_af_xdp_count),
        ("blast_af_xdp_back_to_back_rebinds_the_queue", blast_af_xdp_back_to_back),
    ];
    let mut tally = Tally::default();
    for (name, test) in tests {
        let started = Instant::now();
        tally.record(name, started, isolated::run(|| test(&lab)));
    }
    tally.finish()
}

// ---------------------------------------------------------------------------
// topology (test setup only: plain `ip` commands)

fn ip(args: &str) -> Result<(), String> {
    let out = Command::new("ip").args(args.split_whitespace()).output().map_err(|e| format!("run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {args}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn sysctl(ns: &File, key: &str, value: &str) -> Result<(), String> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    // /proc/sys/net is per namespace of the thread that opens it.
    netns::run_in(ns, || std::fs::write(&path, value)).map_err(|e| e.to_string())?.map_err(|e| format!("{path}: {e}"))
}

fn build_lab() -> Result<Lab, String> {
    for name in ["a", "b", "c"] {
        ip(&format!("netns add {name}"))?;
        // No DAD on the link-local addresses to come: while tentative, a
        // router cannot solicit neighbours for packets it forwards, and the
        // first IPv6 pings would wait for DAD to end.
        let ns = netns::open(name).map_err(|e| e.to_string())?;
        sysctl(&ns, "net.ipv6.conf.default.accept_dad", "0")?;
    }
    for cmd in [
        "link add veth-a netns a type veth peer name veth-b netns b",
        "link add veth-bc netns b type veth peer name veth-c netns c",
        "-n a addr add 198.18.0.1/24 dev veth-a",
        "-n a addr add 2001:db8::1/64 dev veth-a nodad",
        "-n b addr add 198.18.0.2/24 dev veth-b",
        "-n b addr add 2001:db8::2/64 dev veth-b nodad",
        "-n b addr add 198.18.1.1/24 dev veth-bc",
        "-n b addr add 2001:db8:1::1/64 dev veth-bc nodad",
        "-n c addr add 198.18.1.2/24 dev veth-c",
        "-n c addr add 2001:db8:1::2/64 dev veth-c nodad",
        "-n a link set lo up",
        "-n b link set lo up",
        "-n c link set lo up",
        "-n a link set veth-a up",
        "-n b link set veth-b up",
        "-n b link set veth-bc up",
        "-n c link set veth-c up",
        "-n a route add 198.18.1.0/24 via 198.18.0.2",
        // Reaches b, which has no route for it: b answers "net unreachable".
        "-n a route add 198.18.2.0/24 via 198.18.0.2",
        "-n a -6 route add 2001:db8:1::/64 via 2001:db8::2",
        "-n c route add default via 198.18.1.1",
        "-n c -6 route add default via 2001:db8:1::1",
    ] {
        ip(cmd)?;
    }
    let lab = Lab {
        a: netns::open("a").map_err(|e| e.to_string())?,
        b: netns::open("b").map_err(|e| e.to_string())?,
        c: netns::open("c").map_err(|e| e.to_string())?,
    };
    sysctl(&lab.b, "net.ipv4.ip_forward", "1")?;
    sysctl(&lab.b, "net.ipv6.conf.all.forwarding", "1")?;
    settle_ipv6(&lab);
    Ok(lab)
}

/// Right after the links come up, the first IPv6 neighbour solicitation can
/// go unanswered and the kernel retries only a second later: resolve each
/// link's IPv6 neighbours once, unmeasured, so the tests start from a
/// settled network (as a lab built by labctl is when `up` returns).
fn settle_ipv6(lab: &Lab) {
    for (ns, to) in [(&lab.a, "2001:db8::2"), (&lab.c, "2001:db8:1::1")] {
        let mut opts = PingOptions::new(to.parse().expect("an address"));
        opts.count = 1;
        opts.timeout = Duration::from_secs(3);
        let _ = ping(ns, &opts);
    }
}

// ---------------------------------------------------------------------------
// ping

fn ping_opts(to: &str) -> PingOptions {
    PingOptions::new(to.parse().unwrap())
}

fn expect_replies(report: &labctl::traffic::PingReport, n: u32, ttl: u8, from: &str) -> Outcome {
    ensure!(report.transmitted == n && report.received == n && report.lost == 0, "expected {n}/{n}: {report:?}");
    ensure!(report.errors.is_empty(), "unexpected errors: {:?}", report.errors);
    ensure!(report.replies.iter().map(|r| r.seq).eq(1..=n as u16), "replies out of order: {:?}", report.replies);
    for r in &report.replies {
        ensure!(r.from.to_string() == from, "reply from {} instead of {from}", r.from);
        ensure!(r.ttl == Some(ttl), "reply TTL {:?}, expected {ttl}", r.ttl);
    }
    ensure!(report.rtt_min_us.is_some_and(|m| m > 0.0), "no RTT: {report:?}");
    Ok(())
}

fn ping_v4(lab: &Lab) -> Outcome {
    let report = ping(&lab.a, &ping_opts("198.18.0.2")).map_err(|e| e.to_string())?;
    expect_replies(&report, 3, 64, "198.18.0.2")
}

fn ping_v6(lab: &Lab) -> Outcome {
    let report = ping(&lab.a, &ping_opts("2001:db8::2")).map_err(|e| e.to_string())?;
    expect_replies(&report, 3, 64, "2001:db8::2")
}

fn ping_ttl_1_to_a_neighbour(lab: &Lab) -> Outcome {
    let mut opts = ping_opts("198.18.0.2");
    opts.ttl = Some(1);
    let report = ping(&lab.a, &opts).map_err(|e| e.to_string())?;
    expect_replies(&report, 3, 64, "198.18.0.2")
}

fn ping_through_a_router(lab: &Lab) -> Outcome {
    let report = ping(&lab.a, &ping_opts("198.18.1.2")).map_err(|e| e.to_string())?;
    expect_replies(&report, 3, 63, "198.18.1.2")?;
    let report = ping(&lab.a, &ping_opts("2001:db8:1::2")).map_err(|e| e.to_string())?;
    expect_replies(&report, 3, 63, "2001:db8:1::2")
}

fn expect_errors(report: &labctl::traffic::PingReport, needle: &str) -> Outcome {
    ensure!(report.received == 0, "expected no replies: {report:?}");
    ensure!(!report.errors.is_empty(), "expected an error report: {report:?}");
    ensure!(
        report.errors.iter().all(|e| e.contains(needle)),
        "expected {needle:?} in every error: {:?}",
        report.errors
    );
    Ok(())
}

fn ping_ttl_expiry_v4(lab: &Lab) -> Outcome {
    let mut opts = ping_opts("198.18.1.2");
    opts.ttl = Some(1);
    opts.count = 2;
    let report = ping(&lab.a, &opts).map_err(|e| e.to_string())?;
    expect_errors(&report, "from 198.18.0.2 icmp_seq=")?;
    expect_errors(&report, "Time to live exceeded")
}

fn ping_ttl_expiry_v6(lab: &Lab) -> Outcome {
    let mut opts = ping_opts("2001:db8:1::2");
    opts.ttl = Some(1);
    opts.count = 2;
    let report = ping(&lab.a, &opts).map_err(|e| e.to_string())?;
    expect_errors(&report, "from 2001:db8::2 icmp_seq=")?;
    expect_errors(&report, "Hop limit exceeded")
}

fn ping_without_a_route(lab: &Lab) -> Outcome {
    for to in ["198.19.0.1", "2001:db8:ffff::1"] {
        let started = Instant::now();
        let report = ping(&lab.a, &ping_opts(to)).map_err(|e| e.to_string())?;
        ensure!(started.elapsed() < Duration::from_secs(2), "took {:?}: should not hang", started.elapsed());
        ensure!(report.transmitted == 0 && report.received == 0, "{report:?}");
        ensure!(report.errors.len() == 3, "one error per request expected: {:?}", report.errors);
        ensure!(report.errors[0].contains("unreachable"), "unexpected error text: {:?}", report.errors);
    }
    Ok(())
}

fn ping_unreachable_from_router(lab: &Lab) -> Outcome {
    let mut opts = ping_opts("198.18.2.1");
    opts.count = 2;
    let report = ping(&lab.a, &opts).map_err(|e| e.to_string())?;
    expect_errors(&report, "from 198.18.0.2 icmp_seq=")?;
    expect_errors(&report, "Destination Net Unreachable")
}

// ---------------------------------------------------------------------------
// flows

fn udp_flow_loss_free(lab: &Lab) -> Outcome {
    let flow = UdpFlow {
        to: "198.18.0.2:7001".parse().unwrap(),
        size: 64,
        count: Some(1000),
        duration: None,
        rate_pps: Some(20_000),
    };
    let r = udp_flow(&lab.a, &lab.b, &flow).map_err(|e| e.to_string())?;
    println!("    udp: {r:?}");
    ensure!(r.sent_packets == 1000 && r.sent_bytes == 64_000, "sent {r:?}");
    ensure!(r.received_packets == r.sent_packets && r.received_bytes == r.sent_bytes, "loss: {r:?}");
    // 1000 packets at 20 kpps take about 50 ms; allow slack, catch an unpaced sender.
    ensure!(r.duration_s > 0.04 && r.duration_s < 2.0, "duration {} s is off for 20 kpps", r.duration_s);
    Ok(())
}

fn udp_flow_v6_by_duration(lab: &Lab) -> Outcome {
    let flow = UdpFlow {
        to: "[2001:db8:1::2]:7002".parse().unwrap(),
        size: 200,
        count: None,
        duration: Some(Duration::from_millis(300)),
        rate_pps: Some(5_000),
    };
    let r = udp_flow(&lab.a, &lab.c, &flow).map_err(|e| e.to_string())?;
    println!("    udp v6 routed: {r:?}");
    ensure!(r.sent_packets > 1000 && r.sent_packets <= 1600, "about 1500 expected: {r:?}");
    ensure!(r.received_packets == r.sent_packets, "loss: {r:?}");
    Ok(())
}

fn tcp_flow_10_mib(lab: &Lab) -> Outcome {
    const BYTES: u64 = 10 * 1024 * 1024;
    let flow = TcpFlow { to: "198.18.0.2:7003".parse().unwrap(), bytes: Some(BYTES), duration: None };
    let r = tcp_flow(&lab.a, &lab.b, &flow).map_err(|e| e.to_string())?;
    println!("    tcp: {r:?}");
    ensure!(r.sent_bytes == BYTES && r.received_bytes == BYTES, "{r:?}");
    ensure!(r.sent_packets > 0 && r.received_packets > 0, "segment counts missing: {r:?}");
    ensure!(r.throughput_bps > 0.0, "{r:?}");
    Ok(())
}

// ---------------------------------------------------------------------------
// blast

fn blast_opts(to: &str, mode: BlastMode, secs: f64) -> BlastOptions {
    let mut o = BlastOptions::new(to.parse::<SocketAddr>().unwrap(), mode);
    o.duration = Some(Duration::from_secs_f64(secs));
    o
}

fn run_blast(lab: &Lab, opts: &BlastOptions) -> Result<BlastReport, String> {
    let r = blast(&lab.a, &lab.b, opts).map_err(|e| e.to_string())?;
    println!(
        "    {:?} {} B: sent {} received {} dropped {} errors {} | {:.0} pps sent, {:.0} pps received | cpu sender {:.2}u+{:.2}s sink {:.2}u+{:.2}s",
        r.mode, r.size, r.sent, r.received, r.dropped, r.send_errors, r.pps, r.received_pps,
        r.sender_cpu.user_s, r.sender_cpu.sys_s, r.sink_cpu.user_s, r.sink_cpu.sys_s
    );
    ensure!(r.pps > 0.0 && r.sent > 0, "nothing sent: {r:?}");
    ensure!(r.received > 0, "nothing arrived (bad frames?): {r:?}");
    ensure!(r.received <= r.sent, "received more than sent: {r:?}");
    ensure!(r.dropped == r.sent - r.received, "{r:?}");
    Ok(r)
}

fn blast_sendmmsg_v4(lab: &Lab) -> Outcome {
    run_blast(lab, &blast_opts("198.18.0.2:7010", BlastMode::Sendmmsg, 2.0)).map(drop)
}

fn blast_packet_ring_v4(lab: &Lab) -> Outcome {
    run_blast(lab, &blast_opts("198.18.0.2:7011", BlastMode::PacketRing, 2.0)).map(drop)
}

fn blast_sendmmsg_v6(lab: &Lab) -> Outcome {
    run_blast(lab, &blast_opts("[2001:db8::2]:7012", BlastMode::Sendmmsg, 0.5)).map(drop)
}

fn blast_packet_ring_v6(lab: &Lab) -> Outcome {
    run_blast(lab, &blast_opts("[2001:db8::2]:7013", BlastMode::PacketRing, 0.5)).map(drop)
}

fn blast_rate_and_count(lab: &Lab) -> Outcome {
    for (mode, port) in [(BlastMode::Sendmmsg, 7014), (BlastMode::PacketRing, 7015)] {
        let mut o = blast_opts(&format!("198.18.0.2:{port}"), mode, 10.0);
        o.count = Some(5_000);
        o.rate_pps = Some(50_000);
        o.flows = 4;
        let r = run_blast(lab, &o)?;
        ensure!(r.sent == 5_000, "count not kept: {r:?}");
        ensure!(r.received == 5_000, "loss at a low rate: {r:?}");
        // 5000 packets at 50 kpps: about 100 ms.
        ensure!(r.duration_s > 0.08 && r.duration_s < 1.0, "rate not kept: {} s", r.duration_s);
    }
    Ok(())
}

fn blast_gso_count(lab: &Lab) -> Outcome {
    // 10 000 datagrams in messages of 64 (the last one shorter), v4 and v6.
    for to in ["198.18.0.2:7016", "[2001:db8::2]:7017"] {
        let mut o = blast_opts(to, BlastMode::Gso, 10.0);
        o.count = Some(10_000);
        o.rate_pps = Some(200_000);
        let r = run_blast(lab, &o)?;
        ensure!(r.sent == 10_000 && r.received == 10_000, "datagrams lost or miscounted: {r:?}");
        ensure!((r.received_bps / r.received_pps - 512.0).abs() < 1e-6, "datagrams of another size arrived: {r:?}");
    }
    Ok(())
}

fn blast_af_xdp_v4(lab: &Lab) -> Outcome {
    run_blast(lab, &blast_opts("198.18.0.2:7018", BlastMode::AfXdp, 2.0)).map(drop)
}

fn blast_af_xdp_v6(lab: &Lab) -> Outcome {
    run_blast(lab, &blast_opts("[2001:db8::2]:7019", BlastMode::AfXdp, 0.5)).map(drop)
}

fn blast_af_xdp_count(lab: &Lab) -> Outcome {
    // Every frame the UMEM sent reaches the sink, whole, v4 and v6; more
    // frames than the UMEM has chunks, so completions must recycle them.
    for to in ["198.18.0.2:7020", "[2001:db8::2]:7021"] {
        let mut o = blast_opts(to, BlastMode::AfXdp, 10.0);
        o.count = Some(10_000);
        o.rate_pps = Some(100_000);
        o.flows = 4;
        o.size = 200;
        let r = run_blast(lab, &o)?;
        ensure!(r.sent == 10_000 && r.received == 10_000, "frames lost or miscounted: {r:?}");
        ensure!(r.send_errors == 0, "the device dropped frames at a low rate: {r:?}");
        ensure!((r.received_bps / r.received_pps - 1600.0).abs() < 1e-6, "datagrams of another size arrived: {r:?}");
        // 10 000 packets at 100 kpps: about 100 ms.
        ensure!(r.duration_s > 0.08 && r.duration_s < 1.0, "rate not kept: {} s", r.duration_s);
    }
    Ok(())
}

fn blast_af_xdp_back_to_back(lab: &Lab) -> Outcome {
    // The kernel frees a closed AF_XDP socket's queue a moment later: the
    // next blast on the same interface must wait for it, not fail (EBUSY).
    for _ in 0..3 {
        let mut o = blast_opts("198.18.0.2:7022", BlastMode::AfXdp, 10.0);
        o.count = Some(1_000);
        let r = run_blast(lab, &o)?;
        ensure!(r.sent == 1_000 && r.received == 1_000, "{r:?}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// measurement: `[BENCH_SECONDS=5] [BENCH_SIZE=64] [BENCH_BATCH=64] [BENCH_RPS=1] cargo test --release --test traffic_netns -- --bench`

fn bench(lab: &Lab) -> ExitCode {
    let secs = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    // UDP payload bytes; 18 makes the minimum 60-byte Ethernet frame over IPv4.
    let size = std::env::var("BENCH_SIZE").ok().and_then(|s| s.parse().ok()).unwrap_or(64);
    let batch = std::env::var("BENCH_BATCH").ok().and_then(|s| s.parse().ok()).unwrap_or(64);
    if std::env::var_os("BENCH_RPS").is_some() {
        // Receive processing of veth-b on CPU 1 (RPS), off the sender's CPU 0.
        let rps = "echo 2 > /sys/class/net/veth-b/queues/rx-0/rps_cpus";
        let status = Command::new("ip").args(["netns", "exec", "b", "sh", "-c", rps]).status();
        if !status.is_ok_and(|s| s.success()) {
            println!("bench: cannot set RPS on veth-b");
            return ExitCode::FAILURE;
        }
    }
    let mut ok = true;
    for (family, to) in [("IPv4", "198.18.0.2:7100"), ("IPv6", "[2001:db8::2]:7101")] {
        for mode in [BlastMode::Sendmmsg, BlastMode::PacketRing, BlastMode::AfXdp] {
            for flows in [1, 16] {
                let mut o = blast_opts(to, mode, secs);
                o.flows = flows;
                o.size = size;
                o.batch = batch;
                o.cpu = Some(0);
                o.sink_cpu = Some(1);
                match blast(&lab.a, &lab.b, &o) {
                    Ok(r) => println!("{}", bench_line(family, flows, &r)),
                    Err(e) => {
                        ok = false;
                        println!("bench {family} {mode:?}: {e}");
                    }
                }
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Packets per second, and per CPU-second of the sender thread: the second
/// figure is what one core can push, and holds up when the machine is busy.
fn bench_line(family: &str, flows: u16, r: &BlastReport) -> String {
    let sender_cpu = r.sender_cpu.user_s + r.sender_cpu.sys_s;
    format!(
        "bench {family} {:?} flows={flows} payload={}B frame={}B: {:.0} pps sent ({:.0} per sender CPU-second), {:.0} pps received, dropped {}, sender cpu {:.2}u+{:.2}s of {:.1}s, sink cpu {:.2}u+{:.2}s",
        r.mode, r.size, r.frame_size, r.pps, r.sent as f64 / sender_cpu.max(1e-9), r.received_pps, r.dropped,
        r.sender_cpu.user_s, r.sender_cpu.sys_s, r.duration_s, r.sink_cpu.user_s, r.sink_cpu.sys_s
    )
}
