//! The packet load generator: UDP over IPv4 or IPv6 at a fixed size, flat
//! out or at a rate cap, for a count or a duration, over many flows, into a
//! sink that counts what arrives. Sender and sink each run on their own
//! thread, optionally pinned, and report the CPU time they used.

mod gso;
pub(crate) mod l2path;
mod mmsg;
mod ring;
mod xsk;

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::cpu::{self, CpuTime};
use super::frame::{self, UdpFrame};
use super::pacing::Budget;
use super::sink::{SinkCounts, StopSignal, UdpSink};
use super::{check_unicast, TrafficError, MAX_RUN};
use crate::sys::netns;

use l2path::L2Path;

/// The sink's deadline past the sender's: time for queues to drain.
const DRAIN: Duration = Duration::from_secs(5);
/// First source port of the flows an AF_PACKET or AF_XDP blast makes up.
const FIRST_SOURCE_PORT: u16 = 49152;
pub const MAX_FLOWS: u16 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlastMode {
    /// Connected UDP sockets and `sendmmsg`: the full kernel stack.
    Sendmmsg,
    /// AF_PACKET TX ring with qdisc bypass: frames built here, straight to the driver.
    PacketRing,
    /// UDP sockets with UDP_SEGMENT (GSO): the stack runs once per message of
    /// up to 64 datagrams, cut into packets just before the driver.
    Gso,
    /// AF_XDP socket in copy mode: frames built here, from a UMEM straight to the driver.
    AfXdp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BlastOptions {
    /// The sink's address and port (the sink is bound there in `dst_ns`).
    pub to: SocketAddr,
    /// UDP payload bytes; the Ethernet frame is 42 (IPv4) or 62 (IPv6) more.
    pub size: usize,
    pub mode: BlastMode,
    /// Number of flows (distinct source ports), so RSS/RPS can spread them.
    pub flows: u16,
    /// Source addresses already on the sender to spread flows over too;
    /// empty: the one the kernel picks.
    pub sources: Vec<IpAddr>,
    pub rate_pps: Option<u64>,
    /// With a rate: packets sent back to back per burst, the bursts spaced
    /// to keep the rate (what fills a receiver's queues that a steady rate
    /// would not).
    pub burst: Option<u64>,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// Packets per system call.
    pub batch: usize,
    /// Pin the sender thread to this CPU.
    pub cpu: Option<usize>,
    /// Pin the sink thread to this CPU.
    pub sink_cpu: Option<usize>,
    /// Bind the sink at `to` (the default). Without it nothing listens
    /// there: the receiver drops every packet as "no socket" (Udp.NoPorts).
    pub listen: bool,
}

impl BlastOptions {
    /// One second flat out, 64-byte payloads, 16 flows, batches of 64.
    pub fn new(to: SocketAddr, mode: BlastMode) -> BlastOptions {
        BlastOptions {
            to,
            size: 64,
            mode,
            flows: 16,
            sources: Vec::new(),
            rate_pps: None,
            burst: None,
            count: None,
            duration: Some(Duration::from_secs(1)),
            batch: 64,
            cpu: None,
            sink_cpu: None,
            listen: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlastReport {
    pub mode: BlastMode,
    /// UDP payload bytes per packet.
    pub size: usize,
    /// Ethernet frame bytes per packet (no FCS).
    pub frame_size: usize,
    pub flows: u16,
    pub sent: u64,
    pub received: u64,
    /// `sent - received`: lost anywhere on the way, sink socket included.
    pub dropped: u64,
    /// Send calls the kernel refused (no buffer space, device drop).
    pub send_errors: u64,
    /// The sender's running time.
    pub duration_s: f64,
    /// Packets sent per second.
    pub pps: f64,
    /// UDP payload bits sent per second.
    pub bps: f64,
    pub received_pps: f64,
    pub received_bps: f64,
    /// On veth, the receive path runs in softirq on the sending CPU and
    /// is mostly charged to the sender.
    pub sender_cpu: CpuTime,
    pub sink_cpu: CpuTime,
}

/// What a sender did.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendOutcome {
    pub packets: u64,
    pub errors: u64,
}

/// A sender, ready to go: its sockets already open in the sender's namespace.
enum Sender {
    Sendmmsg(Vec<socket2::Socket>),
    PacketRing(ring::TxRing),
    Gso(Vec<socket2::Socket>),
    AfXdp(xsk::XskTx),
}

/// Runs a blast from the node behind `src_ns` to a sink in `dst_ns`.
pub fn blast(src_ns: &File, dst_ns: &File, opts: &BlastOptions) -> Result<BlastReport, TrafficError> {
    check(opts)?;
    let sender = prepare_sender(src_ns, opts)?;
    let sink = if opts.listen { Some(UdpSink::bind(dst_ns, opts.to, opts.size.max(1))?) } else { None };
    let run_for = opts.duration.unwrap_or(MAX_RUN).min(MAX_RUN);
    let stop = StopSignal::new(Instant::now() + run_for + DRAIN);

    std::thread::scope(|scope| {
        let receiver = scope.spawn(|| match sink {
            Some(sink) => sink.run(&stop, opts.sink_cpu),
            None => Ok(SinkCounts::default()),
        });
        let sending = scope.spawn(|| {
            let _done = stop.done_on_drop();
            run_sender(sender, opts)
        });
        let sent = sending.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        let got = receiver.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        let (outcome, duration, sender_cpu) = sent?;
        let secs = duration.as_secs_f64().max(1e-9);
        Ok(BlastReport {
            mode: opts.mode,
            size: opts.size,
            frame_size: frame::frame_len(opts.to.is_ipv6(), opts.size),
            flows: opts.flows,
            sent: outcome.packets,
            received: got.packets,
            dropped: outcome.packets.saturating_sub(got.packets),
            send_errors: outcome.errors,
            duration_s: duration.as_secs_f64(),
            pps: outcome.packets as f64 / secs,
            bps: (outcome.packets * opts.size as u64 * 8) as f64 / secs,
            received_pps: got.packets as f64 / secs,
            received_bps: (got.bytes * 8) as f64 / secs,
            sender_cpu,
            sink_cpu: got.cpu,
        })
    })
}

fn check(opts: &BlastOptions) -> Result<(), TrafficError> {
    check_unicast(opts.to.ip())?;
    let bad = |why: String| Err(TrafficError::Options(why));
    if opts.flows == 0 || opts.flows > MAX_FLOWS {
        return bad(format!("flows must be 1..={MAX_FLOWS}, not {}", opts.flows));
    }
    if opts.batch == 0 || opts.batch > 1024 {
        return bad(format!("batch must be 1..=1024, not {}", opts.batch));
    }
    let max_size = match opts.mode {
        BlastMode::Sendmmsg => 65_000,
        // One datagram per packet: it must fit a 1500-byte MTU.
        BlastMode::Gso => 1500 - frame::frame_len(opts.to.is_ipv6(), 0) + frame::ETH_HEADER,
        BlastMode::PacketRing => ring::MAX_FRAME - frame::frame_len(opts.to.is_ipv6(), 0),
        BlastMode::AfXdp => xsk::MAX_FRAME - frame::frame_len(opts.to.is_ipv6(), 0),
    };
    if opts.size > max_size {
        return bad(format!("size {} is larger than {max_size} in {:?} mode", opts.size, opts.mode));
    }
    if let Some(s) = opts.sources.iter().find(|s| s.is_ipv4() != opts.to.is_ipv4()) {
        return bad(format!("source {s} and destination {} differ in family", opts.to));
    }
    match (opts.burst, opts.rate_pps) {
        (Some(0), _) => return bad("burst must be at least 1".into()),
        (Some(_), None) => return bad("burst needs a rate: bursts are spaced to keep it".into()),
        _ => {}
    }
    // Fails early on a missing count/duration or a zero rate.
    Budget::new(opts.count, opts.duration, opts.rate_pps).map(|_| ())
}

/// The source address of each flow: `sources` round-robin, or the kernel's choice.
fn flow_sources(opts: &BlastOptions) -> Vec<Option<IpAddr>> {
    (0..usize::from(opts.flows))
        .map(|i| (!opts.sources.is_empty()).then(|| opts.sources[i % opts.sources.len()]))
        .collect()
}

fn prepare_sender(src_ns: &File, opts: &BlastOptions) -> Result<Sender, TrafficError> {
    let sources = flow_sources(opts);
    match opts.mode {
        BlastMode::Sendmmsg => Ok(Sender::Sendmmsg(netns::run_in(src_ns, || mmsg::open_flows(opts.to, &sources))??)),
        BlastMode::Gso => Ok(Sender::Gso(netns::run_in(src_ns, || gso::open_flows(opts.to, &sources, opts.size))??)),
        BlastMode::PacketRing => {
            let path = l2path::resolve(src_ns, opts.to.ip())?;
            let frames = packet_ring_frames(opts, &path, &sources);
            let ethertype = if opts.to.is_ipv6() { frame::ETHERTYPE_IPV6 } else { frame::ETHERTYPE_IPV4 };
            let ring = netns::run_in(src_ns, || ring::TxRing::open(path.ifindex, ethertype, &frames))??;
            Ok(Sender::PacketRing(ring))
        }
        BlastMode::AfXdp => {
            let path = l2path::resolve(src_ns, opts.to.ip())?;
            let frames = packet_ring_frames(opts, &path, &sources);
            Ok(Sender::AfXdp(netns::run_in(src_ns, || xsk::XskTx::open(path.ifindex, &frames))??))
        }
    }
}

/// One ready-made frame per flow (for the AF_PACKET ring and AF_XDP):
/// source address and port vary, the rest is what the kernel itself used
/// for the probe.
fn packet_ring_frames(opts: &BlastOptions, path: &L2Path, sources: &[Option<IpAddr>]) -> Vec<Vec<u8>> {
    sources
        .iter()
        .enumerate()
        .map(|(i, source)| {
            UdpFrame {
                src_mac: path.src_mac,
                dst_mac: path.dst_mac,
                src: SocketAddr::new(source.unwrap_or(path.src_ip), FIRST_SOURCE_PORT + i as u16),
                dst: opts.to,
                payload: opts.size,
                ttl: 64,
            }
            .build()
        })
        .collect()
}

/// The sender thread: pins itself, then sends and measures its own CPU time.
fn run_sender(sender: Sender, opts: &BlastOptions) -> Result<(SendOutcome, Duration, CpuTime), TrafficError> {
    if let Some(cpu) = opts.cpu {
        cpu::pin_current_thread(cpu)?;
    }
    let cpu_start = CpuTime::thread_now();
    let mut budget = Budget::new(opts.count, opts.duration, opts.rate_pps)?.in_bursts(opts.burst.unwrap_or(1));
    let outcome = match sender {
        Sender::Sendmmsg(sockets) => mmsg::send(&sockets, opts.size, opts.batch, &mut budget)?,
        Sender::PacketRing(mut ring) => ring.send(opts.batch, &mut budget)?,
        Sender::AfXdp(mut xsk) => xsk.send(opts.batch, &mut budget)?,
        Sender::Gso(sockets) => {
            gso::send(&sockets, opts.size, gso::segments_per_message(opts.size, opts.batch), &mut budget)?
        }
    };
    let duration = budget.start().elapsed();
    Ok((outcome, duration, CpuTime::thread_now().since(cpu_start)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(mode: BlastMode) -> BlastOptions {
        BlastOptions::new("198.18.0.2:9000".parse().unwrap(), mode)
    }

    #[test]
    fn options_are_checked() {
        assert!(check(&opts(BlastMode::Sendmmsg)).is_ok());
        let mut o = opts(BlastMode::PacketRing);
        o.size = 1500;
        assert!(check(&o).is_ok());
        o.size = 2000;
        assert!(check(&o).is_err(), "does not fit a ring slot");
        let mut o = opts(BlastMode::AfXdp);
        o.size = 1500;
        assert!(check(&o).is_ok());
        o.size = 2048;
        assert!(check(&o).is_err(), "does not fit a UMEM chunk");
        let mut o = opts(BlastMode::Sendmmsg);
        o.flows = 0;
        assert!(check(&o).is_err());
        let mut o = opts(BlastMode::Sendmmsg);
        o.duration = None;
        assert!(check(&o).is_err(), "unbounded");
        let mut o = opts(BlastMode::Sendmmsg);
        o.sources = vec!["2001:db8::1".parse().unwrap()];
        assert!(check(&o).is_err());
    }

    #[test]
    fn modes_have_stable_names() {
        let names: Vec<String> = [BlastMode::Sendmmsg, BlastMode::PacketRing, BlastMode::Gso, BlastMode::AfXdp]
            .iter()
            .map(|m| serde_json::to_string(m).unwrap())
            .collect();
        assert_eq!(names, ["\"sendmmsg\"", "\"packet_ring\"", "\"gso\"", "\"af_xdp\""]);
    }

    #[test]
    fn flows_spread_over_sources_and_ports() {
        let mut o = opts(BlastMode::PacketRing);
        o.flows = 4;
        o.sources = vec!["198.18.0.1".parse().unwrap(), "198.18.0.3".parse().unwrap()];
        let path = L2Path {
            ifindex: 2,
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: "198.18.0.1".parse().unwrap(),
        };
        let frames = packet_ring_frames(&o, &path, &flow_sources(&o));
        assert_eq!(frames.len(), 4);
        let src_of = |f: &Vec<u8>| ([f[26], f[27], f[28], f[29]], u16::from_be_bytes([f[34], f[35]]));
        assert_eq!(src_of(&frames[0]), ([198, 18, 0, 1], 49152));
        assert_eq!(src_of(&frames[1]), ([198, 18, 0, 3], 49153));
        assert_eq!(src_of(&frames[3]), ([198, 18, 0, 3], 49155));
        assert!(frames.iter().all(|f| f.len() == 14 + 20 + 8 + 64));
    }
}
