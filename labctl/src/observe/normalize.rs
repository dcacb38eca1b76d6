//! Packets as one deterministic line each, tcpdump-like, for snapshots.
//!
//! A line reads:
//!
//! ```text
//! [+0.000123 ][@h1:eth0 ][in |out ]<src> > <dst> [vlan N ]<what>
//! h1:eth0 > ff:ff:ff:ff:ff:ff ARP who-has 198.18.0.254 tell 198.18.0.1
//! r1:eth0 > h1:eth0 ARP reply 198.18.0.254 is-at r1:eth0
//! h1:eth0 > r1:eth0 IPv4 198.18.0.1 > 198.18.1.1 ICMP echo request seq 1 ttl 64 len 84
//! h1:eth0 > r1:eth0 IPv4 UDP 198.18.0.1:* > 198.18.1.1:5201 ttl 64 len 64
//! h1:eth0 > r1:eth0 IPv4 TCP 198.18.0.1:* > 198.18.1.1:5201 [S] seq 0 mss 1460 ttl 64 len 0
//! h1:eth0 > 01:80:c2:00:00:0e ethertype 0x88cc len 60
//! ```
//!
//! - MACs of the lab's own interfaces are shown by name (`node:ifname`),
//!   others as-is (broadcast, `33:33:..` IPv6 multicast, foreign hosts).
//! - Options, all off except `direction`:
//!   - `direction`: `in ` / `out ` as seen by the capturing interface
//!     (PACKET_OUTGOING), useful when one interface is captured;
//!   - `capture_point`: `@<label>` of the capture, for merged traces;
//!   - `relative_time`: `+s.micros` since the first packet, for humans only
//!     (it differs run to run, so never in a snapshot);
//!   - `keep_ephemeral_ports`: see below.
//! - What varies run to run is left out or rewritten: ICMP ids, checksums,
//!   IPv4 ids and IPv6 flow labels are not printed; TCP sequence numbers are
//!   relative per direction of a flow (the first one seen is 0, acks are
//!   relative to the other direction); ports from 32768 up (Linux' default
//!   ephemeral range starts there) are shown as `*` unless kept.
//! - `len` is the IP packet length for ICMP and other IP protocols, the
//!   payload length for UDP and TCP (as tcpdump prints them), and the frame
//!   length for non-IP frames. `ttl` is the IPv4 TTL, `hlim` the IPv6 hop limit.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    ArpHardwareId, ArpOperation, ArpPacketSlice, EtherType, IpNumber, LinkExtSlice, NetSlice, SlicedPacket,
    TcpOptionElement, TcpSlice, TransportSlice,
};

use super::capture::Packet;
use crate::model::MacAddr;

/// How lines are written; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub direction: bool,
    pub capture_point: bool,
    pub relative_time: bool,
    pub keep_ephemeral_ports: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { direction: true, capture_point: false, relative_time: false, keep_ephemeral_ports: false }
    }
}

/// Ports from here up are taken as ephemeral (Linux' default
/// `ip_local_port_range` is 32768-60999).
pub const EPHEMERAL_PORTS_FROM: u16 = 32768;

/// One line per packet, in the order given (merge captures by `ts_ns` first).
pub fn lines(packets: &[Packet], names: &BTreeMap<MacAddr, String>, options: &Options) -> Vec<String> {
    let mut normalizer = Normalizer::new(names, options.clone());
    packets.iter().map(|p| normalizer.line(p)).collect()
}

/// Line by line, keeping what must carry over between packets: the TCP
/// sequence bases and the first timestamp.
pub struct Normalizer<'a> {
    names: &'a BTreeMap<MacAddr, String>,
    options: Options,
    tcp_bases: HashMap<TcpDirection, u32>,
    first_ts: Option<u64>,
    /// ESP SPIs and sequence numbers seen so far (normalize/esp.rs).
    esp: esp::EspNames,
}

/// One direction of a TCP flow: (source, source port, destination, destination port).
type TcpDirection = (IpAddr, u16, IpAddr, u16);

impl<'a> Normalizer<'a> {
    pub fn new(names: &'a BTreeMap<MacAddr, String>, options: Options) -> Self {
        Normalizer { names, options, tcp_bases: HashMap::new(), first_ts: None, esp: Default::default() }
    }

    pub fn line(&mut self, packet: &Packet) -> String {
        let mut line = String::new();
        if self.options.relative_time {
            let first = *self.first_ts.get_or_insert(packet.ts_ns);
            let rel = packet.ts_ns.saturating_sub(first);
            let _ = write!(line, "+{}.{:06} ", rel / 1_000_000_000, rel % 1_000_000_000 / 1000);
        }
        if self.options.capture_point {
            let _ = write!(line, "@{} ", packet.ifname);
        }
        if self.options.direction {
            line.push_str(if packet.outgoing { "out " } else { "in " });
        }
        line.push_str(&self.frame(&packet.data, packet.orig_len.max(packet.data.len() as u32)));
        line
    }

    fn mac(&self, mac: [u8; 6]) -> String {
        let mac = MacAddr(mac);
        self.names.get(&mac).cloned().unwrap_or_else(|| mac.to_string())
    }

    fn port(&self, port: u16) -> String {
        if port >= EPHEMERAL_PORTS_FROM && !self.options.keep_ephemeral_ports {
            "*".into()
        } else {
            port.to_string()
        }
    }

    fn frame(&mut self, data: &[u8], frame_len: u32) -> String {
        if data.len() < 14 {
            return format!("runt len {frame_len}");
        }
        let macs =
            format!("{} > {}", self.mac(data[6..12].try_into().unwrap()), self.mac(data[0..6].try_into().unwrap()));
        let ether_type = u16::from_be_bytes([data[12], data[13]]);
        if ether_type < 0x0600 {
            return format!("{macs} 802.3 len {frame_len}");
        }
        let packet = match SlicedPacket::from_ethernet(data) {
            Ok(p) => p,
            Err(_) => return format!("{macs} ethertype {ether_type:#06x} malformed len {frame_len}"),
        };
        let mut line = macs;
        let mut inner_type = EtherType(ether_type);
        for ext in &packet.link_exts {
            match ext {
                LinkExtSlice::Vlan(vlan) => {
                    let _ = write!(line, " vlan {}", vlan.vlan_identifier().value());
                    inner_type = vlan.ether_type();
                }
                LinkExtSlice::Macsec(_) => line.push_str(" macsec"),
            }
        }
        let what = match &packet.net {
            Some(NetSlice::Arp(arp)) => self.arp(arp),
            Some(NetSlice::Ipv4(_)) | Some(NetSlice::Ipv6(_)) => self.ip(&packet),
            None => format!("ethertype {:#06x} len {frame_len}", inner_type.0),
        };
        line.push(' ');
        line.push_str(&what);
        line
    }

    fn arp(&self, arp: &ArpPacketSlice) -> String {
        let ipv4_over_ethernet = arp.hw_addr_type() == ArpHardwareId::ETHERNET
            && arp.proto_addr_type() == EtherType::IPV4
            && arp.hw_addr_size() == 6
            && arp.proto_addr_size() == 4;
        if !ipv4_over_ethernet {
            return format!(
                "ARP hw {} proto {:#06x} op {}",
                arp.hw_addr_type().0,
                arp.proto_addr_type().0,
                arp.operation().0
            );
        }
        let ip = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
        let (sender, target) = (ip(arp.sender_protocol_addr()), ip(arp.target_protocol_addr()));
        match arp.operation() {
            ArpOperation::REQUEST => format!("ARP who-has {target} tell {sender}"),
            ArpOperation::REPLY => {
                format!("ARP reply {sender} is-at {}", self.mac(arp.sender_hw_addr().try_into().unwrap()))
            }
            op => format!("ARP op {} {sender} > {target}", op.0),
        }
    }

    fn ip(&mut self, packet: &SlicedPacket) -> String {
        let (family, src, dst, hop_label, hops, len, tos, payload) = match &packet.net {
            Some(NetSlice::Ipv4(v4)) => {
                let h = v4.header();
                let tos = (h.dcp().value() << 2) | h.ecn().value();
                (
                    "IPv4",
                    IpAddr::V4(h.source_addr()),
                    IpAddr::V4(h.destination_addr()),
                    "ttl",
                    h.ttl(),
                    h.total_len(),
                    tos,
                    v4.payload(),
                )
            }
            Some(NetSlice::Ipv6(v6)) => {
                let h = v6.header();
                let len = 40 + h.payload_length();
                (
                    "IPv6",
                    IpAddr::V6(h.source_addr()),
                    IpAddr::V6(h.destination_addr()),
                    "hlim",
                    h.hop_limit(),
                    len,
                    h.traffic_class(),
                    v6.payload(),
                )
            }
            _ => unreachable!("called for IP packets only"),
        };
        let tail = {
            let mut t = String::new();
            if tos != 0 {
                let _ = write!(t, " tos {tos:#04x}");
            }
            let _ = write!(t, " {hop_label} {hops}");
            t
        };
        if payload.fragmented {
            let offset = match &packet.net {
                Some(NetSlice::Ipv4(v4)) => format!(" off {}", v4.header().fragments_offset().byte_offset()),
                _ => String::new(),
            };
            return format!("{family} {src} > {dst} {} frag{offset}{tail} len {len}", proto_name(payload.ip_number));
        }
        match &packet.transport {
            Some(TransportSlice::Udp(udp)) => {
                let ports = [udp.source_port(), udp.destination_port()];
                let what = if ports.contains(&esp::NAT_T_PORT) {
                    format!(" {}", self.esp.udp_encap(udp.payload()))
                } else {
                    String::new()
                };
                format!(
                    "{family} UDP {} > {}{what}{tail} len {}",
                    endpoint(src, self.port(ports[0])),
                    endpoint(dst, self.port(ports[1])),
                    udp.payload().len()
                )
            }
            Some(TransportSlice::Tcp(tcp)) => {
                let what = self.tcp(src, dst, tcp);
                format!(
                    "{family} TCP {} > {} {what}{tail} len {}",
                    endpoint(src, self.port(tcp.source_port())),
                    endpoint(dst, self.port(tcp.destination_port())),
                    tcp.payload().len()
                )
            }
            Some(TransportSlice::Icmpv4(icmp)) => {
                format!(
                    "{family} {src} > {dst} ICMP {}{tail} len {len}",
                    icmpv4(icmp.type_u8(), icmp.code_u8(), icmp.bytes5to8(), icmp.payload(), self)
                )
            }
            Some(TransportSlice::Icmpv6(icmp)) => {
                format!(
                    "{family} {src} > {dst} ICMP6 {}{tail} len {len}",
                    icmpv6(icmp.type_u8(), icmp.code_u8(), icmp.bytes5to8(), icmp.payload(), self)
                )
            }
            _ if payload.ip_number.0 == 50 => {
                format!("{family} {src} > {dst} {}{tail} len {len}", self.esp.esp(payload.payload))
            }
            _ => format!("{family} {src} > {dst} {}{tail} len {len}", proto_name(payload.ip_number)),
        }
    }

    /// Flags, relative seq/ack, and the MSS of a SYN (it follows from the MTU).
    fn tcp(&mut self, src: IpAddr, dst: IpAddr, tcp: &TcpSlice) -> String {
        let (sport, dport) = (tcp.source_port(), tcp.destination_port());
        let seq_base = *self.tcp_bases.entry((src, sport, dst, dport)).or_insert(tcp.sequence_number());
        let mut s = String::from("[");
        for (on, c) in [
            (tcp.syn(), 'S'),
            (tcp.fin(), 'F'),
            (tcp.psh(), 'P'),
            (tcp.rst(), 'R'),
            (tcp.urg(), 'U'),
            (tcp.cwr(), 'W'),
            (tcp.ece(), 'E'),
            (tcp.ack(), '.'),
        ] {
            if on {
                s.push(c);
            }
        }
        let _ = write!(s, "] seq {}", tcp.sequence_number().wrapping_sub(seq_base));
        if tcp.ack() {
            // Not seen the other direction yet: its first ack becomes its base.
            let ack_base = *self.tcp_bases.entry((dst, dport, src, sport)).or_insert(tcp.acknowledgment_number());
            let _ = write!(s, " ack {}", tcp.acknowledgment_number().wrapping_sub(ack_base));
        }
        if tcp.syn() {
            for option in tcp.options_iterator().flatten() {
                if let TcpOptionElement::MaximumSegmentSize(mss) = option {
                    let _ = write!(s, " mss {mss}");
                }
            }
        }
        s
    }
}

fn endpoint(ip: IpAddr, port: String) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn proto_name(n: IpNumber) -> String {
    match n.0 {
        1 => "ICMP".into(),
        2 => "IGMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        47 => "GRE".into(),
        50 => "ESP".into(),
        51 => "AH".into(),
        58 => "ICMP6".into(),
        89 => "OSPF".into(),
        112 => "VRRP".into(),
        132 => "SCTP".into(),
        other => format!("proto {other}"),
    }
}

fn echo_seq(rest: [u8; 4]) -> u16 {
    u16::from_be_bytes([rest[2], rest[3]])
}

fn icmpv4(kind: u8, code: u8, rest: [u8; 4], payload: &[u8], n: &Normalizer) -> String {
    let quoted = || quote_v4(payload, n);
    match (kind, code) {
        (8, _) => format!("echo request seq {}", echo_seq(rest)),
        (0, _) => format!("echo reply seq {}", echo_seq(rest)),
        (3, 4) => format!("unreachable need-frag mtu {} {}", u16::from_be_bytes([rest[2], rest[3]]), quoted()),
        (3, _) => {
            let why = match code {
                0 => "net",
                1 => "host",
                2 => "protocol",
                3 => "port",
                9 | 10 | 13 => "admin-prohibited",
                _ => "other",
            };
            format!("unreachable {why} {}", quoted())
        }
        (11, 0) => format!("time exceeded in-transit {}", quoted()),
        (11, _) => format!("time exceeded reassembly {}", quoted()),
        (5, _) => format!("redirect to {} {}", Ipv4Addr::from(rest), quoted()),
        _ => format!("type {kind} code {code}"),
    }
}

fn icmpv6(kind: u8, code: u8, rest: [u8; 4], payload: &[u8], n: &Normalizer) -> String {
    let quoted = || quote_v6(payload, n);
    let target =
        || payload.get(..16).map_or("?".to_string(), |b| Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap()).to_string());
    match kind {
        128 => format!("echo request seq {}", echo_seq(rest)),
        129 => format!("echo reply seq {}", echo_seq(rest)),
        1 => {
            let why = match code {
                0 => "no-route",
                1 => "admin-prohibited",
                3 => "address",
                4 => "port",
                _ => "other",
            };
            format!("unreachable {why} {}", quoted())
        }
        2 => format!("packet too big mtu {} {}", u32::from_be_bytes(rest), quoted()),
        3 => format!("time exceeded {}", quoted()),
        133 => "router solicitation".into(),
        134 => "router advertisement".into(),
        135 => format!("neighbor solicitation who-has {}", target()),
        136 => format!("neighbor advertisement {}", target()),
        137 => "redirect".into(),
        130 => "MLD query".into(),
        131 => "MLD report".into(),
        143 => "MLDv2 report".into(),
        _ => format!("type {kind} code {code}"),
    }
}

/// The packet an ICMPv4 error quotes, as `(UDP 198.18.0.1:* > 198.18.1.1:5201)`.
fn quote_v4(inner: &[u8], n: &Normalizer) -> String {
    let Some(&first) = inner.first() else { return "()".into() };
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < 20 || inner.len() < ihl {
        return "(?)".into();
    }
    let ip = |at: usize| IpAddr::V4(Ipv4Addr::new(inner[at], inner[at + 1], inner[at + 2], inner[at + 3]));
    quote(inner[9], ip(12), ip(16), &inner[ihl..], n)
}

fn quote_v6(inner: &[u8], n: &Normalizer) -> String {
    if inner.len() < 40 || inner[0] >> 4 != 6 {
        return "(?)".into();
    }
    let ip = |at: usize| IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&inner[at..at + 16]).unwrap()));
    quote(inner[6], ip(8), ip(24), &inner[40..], n)
}

fn quote(proto: u8, src: IpAddr, dst: IpAddr, l4: &[u8], n: &Normalizer) -> String {
    match proto {
        6 | 17 if l4.len() >= 4 => {
            let port = |at: usize| n.port(u16::from_be_bytes([l4[at], l4[at + 1]]));
            format!("({} {} > {})", proto_name(IpNumber(proto)), endpoint(src, port(0)), endpoint(dst, port(2)))
        }
        _ => format!("({} {src} > {dst})", proto_name(IpNumber(proto))),
    }
}

mod esp;

#[cfg(test)]
mod tests;
