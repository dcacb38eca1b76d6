//! ICMP and ICMPv6 echo messages: building requests and reading what comes
//! back (echo replies, and the errors that quote one of our requests).
//! Pure byte work, tested without root.

use super::checksum;

pub mod v4 {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACH: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAM_PROBLEM: u8 = 12;
}

pub mod v6 {
    pub const DEST_UNREACH: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAM_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
}

const ICMP_HEADER: usize = 8;
const IPV6_HEADER: usize = 40;

/// What an incoming ICMP message means for a ping with identifier `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    EchoReply {
        id: u16,
        seq: u16,
    },
    /// An error message quoting our echo request `id`/`seq`.
    Error {
        id: u16,
        seq: u16,
        reason: String,
    },
    /// Anything else (someone else's traffic, our own requests looped back).
    Other,
}

/// An echo request; the ICMPv6 checksum is left zero because the kernel
/// fills it in for raw ICMPv6 sockets (it needs the pseudo-header).
pub fn echo_request(ipv6: bool, id: u16, seq: u16, payload: usize) -> Vec<u8> {
    let mut msg = vec![0u8; ICMP_HEADER + payload];
    msg[0] = if ipv6 { v6::ECHO_REQUEST } else { v4::ECHO_REQUEST };
    msg[4..6].copy_from_slice(&id.to_be_bytes());
    msg[6..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in msg[ICMP_HEADER..].iter_mut().enumerate() {
        *b = i as u8; // the classic ping pattern, easy to spot in a capture
    }
    if !ipv6 {
        let sum = checksum::checksum(&msg);
        msg[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    msg
}

/// Reads an IPv4 packet as a raw ICMP socket delivers it (IP header
/// included). Returns the packet's TTL with its meaning.
pub fn parse_v4(packet: &[u8]) -> Option<(u8, Incoming)> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    if packet.first()? >> 4 != 4 || packet.len() < ihl + ICMP_HEADER {
        return None;
    }
    let ttl = packet[8];
    let icmp = &packet[ihl..];
    let incoming = match icmp[0] {
        v4::ECHO_REPLY => Incoming::EchoReply { id: be16(icmp, 4), seq: be16(icmp, 6) },
        kind @ (v4::DEST_UNREACH | v4::TIME_EXCEEDED | v4::PARAM_PROBLEM) => {
            match quoted_v4_echo(&icmp[ICMP_HEADER..]) {
                Some((id, seq)) => Incoming::Error { id, seq, reason: reason_v4(kind, icmp[1]) },
                None => Incoming::Other,
            }
        }
        _ => Incoming::Other,
    };
    Some((ttl, incoming))
}

/// Reads an ICMPv6 message as a raw ICMPv6 socket delivers it (no IPv6 header).
pub fn parse_v6(icmp: &[u8]) -> Option<Incoming> {
    if icmp.len() < ICMP_HEADER {
        return None;
    }
    Some(match icmp[0] {
        v6::ECHO_REPLY => Incoming::EchoReply { id: be16(icmp, 4), seq: be16(icmp, 6) },
        kind @ (v6::DEST_UNREACH | v6::PACKET_TOO_BIG | v6::TIME_EXCEEDED | v6::PARAM_PROBLEM) => {
            match quoted_v6_echo(&icmp[ICMP_HEADER..]) {
                Some((id, seq)) => Incoming::Error { id, seq, reason: reason_v6(kind, icmp[1]) },
                None => Incoming::Other,
            }
        }
        _ => Incoming::Other,
    })
}

/// The id/seq of the echo request an ICMPv4 error quotes (original IP
/// header plus at least 8 bytes of what followed it).
fn quoted_v4_echo(quote: &[u8]) -> Option<(u16, u16)> {
    let ihl = usize::from(quote.first()? & 0x0f) * 4;
    let is_icmp = quote.get(9) == Some(&(libc::IPPROTO_ICMP as u8));
    let inner = quote.get(ihl..ihl + ICMP_HEADER)?;
    (is_icmp && inner[0] == v4::ECHO_REQUEST).then(|| (be16(inner, 4), be16(inner, 6)))
}

/// Same for ICMPv6; requests we send carry no extension headers, so the
/// echo header follows the fixed IPv6 header directly.
fn quoted_v6_echo(quote: &[u8]) -> Option<(u16, u16)> {
    let is_icmp6 = quote.get(6) == Some(&(libc::IPPROTO_ICMPV6 as u8));
    let inner = quote.get(IPV6_HEADER..IPV6_HEADER + ICMP_HEADER)?;
    (is_icmp6 && inner[0] == v6::ECHO_REQUEST).then(|| (be16(inner, 4), be16(inner, 6)))
}

fn reason_v4(kind: u8, code: u8) -> String {
    let text = match (kind, code) {
        (v4::DEST_UNREACH, 0) => "Destination Net Unreachable",
        (v4::DEST_UNREACH, 1) => "Destination Host Unreachable",
        (v4::DEST_UNREACH, 2) => "Destination Protocol Unreachable",
        (v4::DEST_UNREACH, 3) => "Destination Port Unreachable",
        (v4::DEST_UNREACH, 4) => "Frag needed and DF set",
        (v4::DEST_UNREACH, 9 | 10 | 13) => "Communication administratively prohibited",
        (v4::DEST_UNREACH, _) => "Destination Unreachable",
        (v4::TIME_EXCEEDED, 0) => "Time to live exceeded",
        (v4::TIME_EXCEEDED, _) => "Frag reassembly time exceeded",
        _ => "Parameter problem",
    };
    format!("{text} (type {kind} code {code})")
}

fn reason_v6(kind: u8, code: u8) -> String {
    let text = match (kind, code) {
        (v6::DEST_UNREACH, 0) => "No route",
        (v6::DEST_UNREACH, 1) => "Administratively prohibited",
        (v6::DEST_UNREACH, 3) => "Address unreachable",
        (v6::DEST_UNREACH, 4) => "Port unreachable",
        (v6::DEST_UNREACH, 6) => "Reject route",
        (v6::DEST_UNREACH, _) => "Destination unreachable",
        (v6::PACKET_TOO_BIG, _) => "Packet too big",
        (v6::TIME_EXCEEDED, 0) => "Hop limit exceeded in transit",
        (v6::TIME_EXCEEDED, _) => "Fragment reassembly time exceeded",
        _ => "Parameter problem",
    };
    format!("{text} (type {kind} code {code})")
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_header(proto: u8, ttl: u8, payload_len: usize) -> Vec<u8> {
        let mut h = vec![0u8; 20];
        h[0] = 0x45;
        h[2..4].copy_from_slice(&((20 + payload_len) as u16).to_be_bytes());
        h[8] = ttl;
        h[9] = proto;
        h[12..16].copy_from_slice(&[198, 18, 0, 1]);
        h[16..20].copy_from_slice(&[198, 18, 0, 2]);
        h
    }

    #[test]
    fn v4_request_is_well_formed() {
        let req = echo_request(false, 0x1234, 7, 56);
        assert_eq!(req.len(), 64);
        assert_eq!(req[0], v4::ECHO_REQUEST);
        assert_eq!(&req[4..8], &[0x12, 0x34, 0, 7]);
        assert_eq!(checksum::checksum(&req), 0, "checksum must verify");
    }

    #[test]
    fn v6_request_leaves_the_checksum_to_the_kernel() {
        let req = echo_request(true, 1, 2, 0);
        assert_eq!(req, vec![v6::ECHO_REQUEST, 0, 0, 0, 0, 1, 0, 2]);
    }

    #[test]
    fn v4_reply_is_read_with_its_ttl() {
        let mut reply = echo_request(false, 0xbeef, 3, 8);
        reply[0] = v4::ECHO_REPLY;
        let mut pkt = ipv4_header(1, 63, reply.len());
        pkt.extend_from_slice(&reply);
        assert_eq!(parse_v4(&pkt), Some((63, Incoming::EchoReply { id: 0xbeef, seq: 3 })));
    }

    #[test]
    fn v4_time_exceeded_names_the_quoted_request() {
        let req = echo_request(false, 42, 9, 56);
        let mut quote = ipv4_header(1, 1, req.len());
        quote.extend_from_slice(&req[..8]);
        let mut err = vec![v4::TIME_EXCEEDED, 0, 0, 0, 0, 0, 0, 0];
        err.extend_from_slice(&quote);
        let mut pkt = ipv4_header(1, 64, err.len());
        pkt.extend_from_slice(&err);
        match parse_v4(&pkt) {
            Some((64, Incoming::Error { id: 42, seq: 9, reason })) => assert!(reason.contains("Time to live")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn v4_error_about_other_traffic_is_ignored() {
        let mut quote = ipv4_header(17, 1, 8); // quotes a UDP datagram
        quote.extend_from_slice(&[0; 8]);
        let mut err = vec![v4::DEST_UNREACH, 3, 0, 0, 0, 0, 0, 0];
        err.extend_from_slice(&quote);
        let mut pkt = ipv4_header(1, 64, err.len());
        pkt.extend_from_slice(&err);
        assert_eq!(parse_v4(&pkt), Some((64, Incoming::Other)));
    }

    #[test]
    fn v6_unreachable_names_the_quoted_request() {
        let mut ip6 = vec![0u8; 40];
        ip6[0] = 0x60;
        ip6[6] = 58;
        let mut err = vec![v6::DEST_UNREACH, 0, 0, 0, 0, 0, 0, 0];
        err.extend_from_slice(&ip6);
        err.extend_from_slice(&echo_request(true, 5, 6, 0));
        match parse_v6(&err) {
            Some(Incoming::Error { id: 5, seq: 6, reason }) => assert!(reason.starts_with("No route")),
            other => panic!("unexpected {other:?}"),
        }
        let mut reply = echo_request(true, 5, 6, 4);
        reply[0] = v6::ECHO_REPLY;
        assert_eq!(parse_v6(&reply), Some(Incoming::EchoReply { id: 5, seq: 6 }));
    }

    #[test]
    fn truncated_input_is_not_a_panic() {
        assert_eq!(parse_v4(&[]), None);
        assert_eq!(parse_v4(&[0x45, 0, 0]), None);
        assert_eq!(parse_v6(&[129, 0]), None);
        let mut err = vec![v6::TIME_EXCEEDED, 0, 0, 0, 0, 0, 0, 0];
        err.extend_from_slice(&[0x60; 12]);
        assert_eq!(parse_v6(&err), Some(Incoming::Other));
    }
}
