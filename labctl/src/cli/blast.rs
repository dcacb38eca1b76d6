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
    /// Destination address [default: the receiving node's first address]
    #[arg(long)]
    to: Option<IpAddr>,
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// UDP payload bytes
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// How long to send, e.g. 3s or 500ms
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3s")]
    duration: Duration,
    /// Packets to send (stops earlier than --duration if reached)
    #[arg(long)]
    count: Option<u64>,
    /// Packets per second at most [default: flat out]
    #[arg(long)]
    rate: Option<u64>,
    /// With --rate: packets per burst, sent back to back, bursts spaced to keep the rate
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
    let to = match args.to {
        Some(to) => to,
        None => lab
            .endpoints_of(&args.dst)
            .flat_map(|e| e.addresses.iter())
            .map(|a| a.addr())
            .min_by_key(|a| a.is_ipv6())
            .ok_or_else(|| Failure::bad_input(anyhow!("node {} has no address; give one with --to", args.dst)))?,
    };
    let open = |node: &str| netns::open(&lab.netns_name(node)).map_err(|e| Failure::new(EXIT_FAILURE, e));
    let (src, dst) = (open(&args.src)?, open(&args.dst)?);
    let mode = match args.mode {
        Mode::Mmsg => BlastMode::Sendmmsg,
        Mode::Ring => BlastMode::PacketRing,
        Mode::Gso => BlastMode::Gso,
        Mode::Xdp => BlastMode::AfXdp,
    };
    let mut options = BlastOptions::new(SocketAddr::new(to, args.port), mode);
    options.size = args.size;
    options.duration = Some(args.duration);
    options.count = args.count;
    options.rate_pps = args.rate;
    options.burst = args.burst;
    options.flows = args.flows;
    options.cpu = args.cpu;
    options.sink_cpu = args.sink_cpu;
    if !args.json {
        eprintln!("blasting {} -> {} ({to}:{}) for {:?}...", args.src, args.dst, args.port, args.duration);
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
