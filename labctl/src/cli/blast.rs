//! `labctl blast LAB SRC DST`: the built-in UDP load generator between two
//! nodes of a running lab, with a sink counting what arrives.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::anyhow;
use labctl::apply;
use labctl::sys::netns;
use labctl::traffic::{self, BlastMode, BlastOptions};

use super::{running_lab, Failure, EXIT_FAILURE};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Mode {
    /// UDP sockets and sendmmsg: the whole kernel stack
    Mmsg,
    /// AF_PACKET TX ring with qdisc bypass: frames straight to the driver
    Ring,
    /// UDP sockets with UDP_SEGMENT: the stack once per 64 datagrams
    Gso,
    /// AF_XDP socket (copy mode): frames from a UMEM straight to the driver
    Xdp,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The running lab
    lab: String,
    /// The sending node
    src: String,
    /// The receiving node (a sink counts what arrives there)
    dst: String,
    /// Destination address, one of the receiving node's [default: its first address]
    #[arg(long)]
    to: Option<IpAddr>,
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// UDP payload bytes
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// How long to send, e.g. 3s or 500ms [default: 3s, or until --count packets are sent]
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Packets to send (with --duration too: whichever comes first)
    #[arg(long)]
    count: Option<u64>,
    /// Packets per second at most [default: flat out]
    #[arg(long)]
    rate: Option<u64>,
    /// With --rate: packets per burst, sent back to back, bursts spaced to keep the rate (a late burst goes out alone, never merged with the next)
    #[arg(long, requires = "rate")]
    burst: Option<u64>,
    /// Flows (distinct source ports), for RSS/RPS to spread
    #[arg(long, default_value_t = 16)]
    flows: u16,
    #[arg(long, value_enum, default_value = "mmsg")]
    mode: Mode,
    /// Pin the sender to this CPU
    #[arg(long)]
    cpu: Option<usize>,
    /// Pin the sink to this CPU
    #[arg(long)]
    sink_cpu: Option<usize>,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<(), Failure> {
    apply::check_privileges()?;
    let recorded = running_lab(&args.lab)?;
    let lab = &recorded.lab;
    for node in [&args.src, &args.dst] {
        if lab.node(node).is_none() {
            return Err(Failure::bad_input(anyhow!("lab {} has no node {node:?}", lab.name)));
        }
    }
    let addresses: Vec<IpAddr> =
        lab.endpoints_of(&args.dst).flat_map(|e| e.addresses.iter()).map(|a| a.addr()).collect();
    let to = match args.to {
        Some(to) => check_destination(lab, &args.dst, to, &addresses)?,
        None => addresses
            .iter()
            .copied()
            .min_by_key(|a| a.is_ipv6())
            .ok_or_else(|| Failure::bad_input(anyhow!("node {} has no address; give one with --to", args.dst)))?,
    };
    for (flag, cpu) in [("--cpu", args.cpu), ("--sink-cpu", args.sink_cpu)] {
        if let Some(cpu) = cpu {
            check_cpu(flag, cpu)?;
        }
    }
    // --count alone sends that many, however long it takes.
    let duration = args.duration.or(if args.count.is_some() { None } else { Some(Duration::from_secs(3)) });
    let open = |node: &str| netns::open(&lab.netns_name(node)).map_err(|e| Failure::new(EXIT_FAILURE, e));
    let (src, dst) = (open(&args.src)?, open(&args.dst)?);
    let mode = match args.mode {
        Mode::Mmsg => BlastMode::Sendmmsg,
        Mode::Ring => BlastMode::PacketRing,
        Mode::Gso => BlastMode::Gso,
        Mode::Xdp => BlastMode::AfXdp,
    };
    let target = SocketAddr::new(to, args.port);
    let mut options = BlastOptions::new(target, mode);
    options.size = args.size;
    options.duration = duration;
    options.count = args.count;
    options.rate_pps = args.rate;
    options.burst = args.burst;
    options.flows = args.flows;
    options.cpu = args.cpu;
    options.sink_cpu = args.sink_cpu;
    if !args.json {
        let how_long = match (args.count, duration) {
            (Some(count), Some(d)) => format!("{count} packets, for at most {d:?}"),
            (Some(count), None) => format!("{count} packets"),
            (None, Some(d)) => format!("for {d:?}"),
            (None, None) => unreachable!("a duration is set when no count is"),
        };
        // SocketAddr writes IPv6 as [addr]:port.
        eprintln!("blasting {} -> {} ({target}) {how_long}...", args.src, args.dst);
    }
    let report = traffic::blast(&src, &dst, &options).map_err(|e| Failure::new(EXIT_FAILURE, e))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("reports serialize"));
    } else {
        println!(
            "sent {} received {} dropped {} in {:.2}s: {:.0} pps sent, {:.0} pps received, {:.1} Mbit/s received",
            report.sent,
            report.received,
            report.dropped,
            report.duration_s,
            report.pps,
            report.received_pps,
            report.received_bps / 1e6
        );
        println!(
            "cpu: sender {:.2}s user {:.2}s sys, sink {:.2}s user {:.2}s sys",
            report.sender_cpu.user_s, report.sender_cpu.sys_s, report.sink_cpu.user_s, report.sink_cpu.sys_s
        );
    }
    Ok(())
}

/// The sink counts at the receiving node: the destination must be one of its addresses.
fn check_destination(lab: &labctl::model::Lab, dst: &str, to: IpAddr, addresses: &[IpAddr]) -> Result<IpAddr, Failure> {
    if addresses.contains(&to) {
        return Ok(to);
    }
    let owner = lab.links.iter().flat_map(|l| l.ends.iter()).find(|e| e.addresses.iter().any(|a| a.addr() == to));
    let whose = owner.map_or_else(|| "no node's".to_string(), |e| format!("{}'s", e.node));
    let listed: Vec<String> = addresses.iter().map(ToString::to_string).collect();
    Err(Failure::bad_input(anyhow!("--to {to} is {whose} address, not one of {dst}'s, where the sink counts"))
        .help(format!("{dst}'s addresses: {}; or blast to the node that has {to}", listed.join(", "))))
}

/// A CPU this process may run on, checked before any packet is sent.
fn check_cpu(flag: &str, cpu: usize) -> Result<(), Failure> {
    let allowed = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map(|set| (0..nix::sched::CpuSet::count()).filter(|c| set.is_set(*c).unwrap_or(false)).collect::<Vec<_>>())
        .unwrap_or_default();
    if allowed.is_empty() || allowed.contains(&cpu) {
        return Ok(());
    }
    let listed: Vec<String> = allowed.iter().map(ToString::to_string).collect();
    Err(Failure::bad_input(anyhow!("{flag} {cpu}: this machine has no CPU {cpu} labctl may use"))
        .help(format!("CPUs available: {}", listed.join(", "))))
}
