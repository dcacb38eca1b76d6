//! Crafted packets (`x.h1:send{...}`): one IPv4 or IPv6 packet with every
//! header field the caller chose (source address and MAC may be spoofed,
//! TTL, DSCP/ECN, DF, TCP flags, payload), built byte by byte and written
//! to the wire through an AF_PACKET socket in the sending node, so the
//! kernel's own stack neither checks nor fixes it. What mausezahn does in
//! the kernel's forwarding selftests.
//!
//! The destination must be a lab address (198.18.0.0/15, 2001:db8::/32);
//! the *source* may be anything (a class-E 240.0.0.0/4 address, the
//! destination itself, a link-local address): that is the point.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::blast::l2path;
use super::checksum;
use super::frame::{self, Mac};
use super::{io_err, TrafficError};
use crate::sys::netns;

/// The layer-4 part of a crafted packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Udp {
        sport: u16,
        dport: u16,
    },
    /// `flags`: the TCP flag bits (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20, ECE 0x40, CWR 0x80).
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
    },
    /// An echo request (ICMP or ICMPv6 by the address family).
    Echo {
        id: u16,
    },
}

/// One crafted packet, sent `count` times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crafted {
    pub to: IpAddr,
    /// None: the address the kernel would pick.
    pub src: Option<IpAddr>,
    pub src_mac: Option<Mac>,
    pub dst_mac: Option<Mac>,
    pub ttl: u8,
    pub dscp: u8,
    pub ecn: u8,
    /// IPv4's don't-fragment bit.
    pub df: bool,
    pub proto: Proto,
    pub payload: Vec<u8>,
    pub count: u32,
    pub interval: Duration,
}

/// What was sent.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SendReport {
    pub sent: u32,
    /// Bytes of each frame, Ethernet header included.
    pub frame_bytes: usize,
}

pub const MAX_COUNT: u32 = 100_000;
/// A frame must fit a 1500-byte MTU.
pub const MAX_PAYLOAD: usize = 1400;

/// Is `ip` in the lab's documentation ranges (198.18.0.0/15, 2001:db8::/32)?
pub fn is_lab_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.octets()[0] == 198 && (a.octets()[1] & 0xfe) == 18,
        IpAddr::V6(a) => a.segments()[0] == 0x2001 && a.segments()[1] == 0x0db8,
    }
}

/// TCP flags from letters: `"S"`, `"SA"`, `"FPU"`, ...
pub fn tcp_flags(letters: &str) -> Result<u8, String> {
    letters.chars().try_fold(0u8, |bits, c| {
        let bit = match c.to_ascii_uppercase() {
            'F' => 0x01,
            'S' => 0x02,
            'R' => 0x04,
            'P' => 0x08,
            'A' => 0x10,
            'U' => 0x20,
            'E' => 0x40,
            'C' => 0x80,
            other => return Err(format!("{other:?} is not a TCP flag (F S R P A U E C)")),
        };
        Ok(bits | bit)
    })
}

impl Crafted {
    fn check(&self) -> Result<(), TrafficError> {
        if !is_lab_address(self.to) {
            return Err(TrafficError::Options(format!(
                "{} is not a lab address: crafted packets go only to 198.18.0.0/15 or 2001:db8::/32",
                self.to
            )));
        }
        super::check_unicast(self.to)?;
        if self.src.is_some_and(|s| s.is_ipv4() != self.to.is_ipv4()) {
            return Err(TrafficError::Options("source and destination address families differ".into()));
        }
        if self.payload.len() > MAX_PAYLOAD || self.count == 0 || self.count > MAX_COUNT {
            return Err(TrafficError::Options(format!("payload up to {MAX_PAYLOAD} bytes, count 1 to {MAX_COUNT}")));
        }
        Ok(())
    }

    /// The layer-4 header and payload, checksum filled in over `src`/`dst`.
    fn transport(&self, src: IpAddr, dst: IpAddr) -> (u8, Vec<u8>) {
        let mut seg = Vec::new();
        let (proto, sum_at) = match self.proto {
            Proto::Udp { sport, dport } => {
                seg.extend_from_slice(&sport.to_be_bytes());
                seg.extend_from_slice(&dport.to_be_bytes());
                seg.extend_from_slice(&((frame::UDP_HEADER + self.payload.len()) as u16).to_be_bytes());
                seg.extend_from_slice(&[0, 0]);
                (libc::IPPROTO_UDP as u8, 6)
            }
            Proto::Tcp { sport, dport, flags } => {
                seg.extend_from_slice(&sport.to_be_bytes());
                seg.extend_from_slice(&dport.to_be_bytes());
                seg.extend_from_slice(&1u32.to_be_bytes()); // sequence
                seg.extend_from_slice(&u32::from(flags & 0x10 != 0).to_be_bytes()); // ack number if ACK
                seg.extend_from_slice(&[0x50, flags]); // 20-byte header
                seg.extend_from_slice(&64240u16.to_be_bytes()); // window
                seg.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
                (libc::IPPROTO_TCP as u8, 16)
            }
            Proto::Echo { id } => {
                let ty = if dst.is_ipv4() { 8 } else { 128 };
                seg.extend_from_slice(&[ty, 0, 0, 0]);
                seg.extend_from_slice(&id.to_be_bytes());
                seg.extend_from_slice(&1u16.to_be_bytes());
                (if dst.is_ipv4() { libc::IPPROTO_ICMP as u8 } else { libc::IPPROTO_ICMPV6 as u8 }, 2)
            }
        };
        seg.extend_from_slice(&self.payload);
        let sum = if proto == libc::IPPROTO_ICMP as u8 {
            checksum::checksum(&seg)
        } else {
            checksum::transport(proto, src, dst, &seg)
        };
        seg[sum_at..sum_at + 2].copy_from_slice(&sum.to_be_bytes());
        (proto, seg)
    }

    /// The whole frame, from `src` (MAC and address already chosen) to `dst_mac`.
    pub fn frame(&self, src_mac: Mac, dst_mac: Mac, src: IpAddr, id: u16) -> Vec<u8> {
        let (proto, seg) = self.transport(src, self.to);
        let tclass = (self.dscp << 2) | (self.ecn & 3);
        let mut f = Vec::with_capacity(frame::ETH_HEADER + frame::IPV6_HEADER + seg.len());
        f.extend_from_slice(&dst_mac);
        f.extend_from_slice(&src_mac);
        match (src, self.to) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&frame::ETHERTYPE_IPV4.to_be_bytes());
                let start = f.len();
                f.extend_from_slice(&[0x45, tclass]);
                f.extend_from_slice(&((frame::IPV4_HEADER + seg.len()) as u16).to_be_bytes());
                f.extend_from_slice(&id.to_be_bytes());
                f.extend_from_slice(&(if self.df { 0x4000u16 } else { 0 }).to_be_bytes());
                f.extend_from_slice(&[self.ttl, proto, 0, 0]);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
                let sum = checksum::checksum(&f[start..]);
                f[start + 10..start + 12].copy_from_slice(&sum.to_be_bytes());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f.extend_from_slice(&frame::ETHERTYPE_IPV6.to_be_bytes());
                f.extend_from_slice(&[0x60 | (tclass >> 4), tclass << 4, 0, 0]);
                f.extend_from_slice(&(seg.len() as u16).to_be_bytes());
                f.extend_from_slice(&[proto, self.ttl]);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
            }
            _ => unreachable!("families checked"),
        }
        f.extend_from_slice(&seg);
        f
    }
}

/// Sends `packet` from the node behind `netns`: finds the way out (the
/// interface and the next hop's MAC, with a TTL-1 probe that dies at the
/// first router), then writes the frames with an AF_PACKET socket.
pub fn send(netns: &File, packet: &Crafted) -> Result<SendReport, TrafficError> {
    packet.check()?;
    netns::run_in(netns, || send_here(packet))?
}

fn send_here(packet: &Crafted) -> Result<SendReport, TrafficError> {
    let path = l2path::resolve_here(packet.to, Some(1))?;
    let src = packet.src.unwrap_or(path.src_ip);
    let (src_mac, dst_mac) = (packet.src_mac.unwrap_or(path.src_mac), packet.dst_mac.unwrap_or(path.dst_mac));
    let ethertype = if packet.to.is_ipv4() { frame::ETHERTYPE_IPV4 } else { frame::ETHERTYPE_IPV6 };
    let socket = packet_socket()?;
    // SAFETY: sockaddr_ll is plain data; zeroed is valid.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = ethertype.to_be();
    to.sll_ifindex = path.ifindex;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&dst_mac);
    let mut frame_bytes = 0;
    for i in 0..packet.count {
        let frame = packet.frame(src_mac, dst_mac, src, i as u16);
        frame_bytes = frame.len();
        // SAFETY: sendto reads `frame` and `to`, both alive for the call.
        let sent = unsafe {
            libc::sendto(
                socket.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&to as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if sent < 0 {
            return Err(io_err(format!("send crafted frame {} of {}", i + 1, packet.count))(
                std::io::Error::last_os_error(),
            ));
        }
        if !packet.interval.is_zero() && i + 1 < packet.count {
            std::thread::sleep(packet.interval);
        }
    }
    Ok(SendReport { sent: packet.count, frame_bytes })
}

/// An AF_PACKET socket that only sends (protocol 0: it receives nothing).
fn packet_socket() -> Result<OwnedFd, TrafficError> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io_err("open an AF_PACKET socket")(std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh, valid descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = [2, 0, 0, 0, 0, 1];
    const B: Mac = [2, 0, 0, 0, 0, 2];

    fn packet(to: &str, proto: Proto) -> Crafted {
        Crafted {
            to: to.parse().unwrap(),
            src: None,
            src_mac: None,
            dst_mac: None,
            ttl: 1,
            dscp: 46,
            ecn: 1,
            df: true,
            proto,
            payload: b"hi".to_vec(),
            count: 1,
            interval: Duration::ZERO,
        }
    }

    #[test]
    fn a_spoofed_class_e_udp_packet_carries_every_field() {
        let p = packet("198.18.0.2", Proto::Udp { sport: 54321, dport: 9 });
        let f = p.frame(A, B, "240.0.0.1".parse().unwrap(), 7);
        assert_eq!((&f[0..6], &f[6..12], &f[12..14]), (&B[..], &A[..], &[0x08, 0x00][..]));
        let ip = &f[14..34];
        assert_eq!(ip[1], 46 << 2 | 1, "DSCP EF, ECT(1)");
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 20 + 8 + 2);
        assert_eq!(u16::from_be_bytes([ip[4], ip[5]]), 7, "IP id");
        assert_eq!(ip[6], 0x40, "DF");
        assert_eq!((ip[8], ip[9]), (1, 17));
        assert_eq!(&ip[12..16], &[240, 0, 0, 1]);
        assert_eq!(checksum::checksum(ip), 0, "header checksum verifies");
        let udp = &f[34..];
        assert_eq!(&udp[0..4], &[0xd4, 0x31, 0, 9]);
        assert_eq!(&udp[8..], b"hi");
        let src = "240.0.0.1".parse().unwrap();
        let mut zeroed = udp.to_vec();
        zeroed[6..8].copy_from_slice(&[0, 0]);
        assert_eq!(checksum::udp(src, p.to, &zeroed).to_be_bytes(), [udp[6], udp[7]], "over the spoofed source");
    }

    #[test]
    fn tcp_and_icmpv6_checksums_verify() {
        let p = packet("2001:db8::2", Proto::Tcp { sport: 1000, dport: 80, flags: tcp_flags("SA").unwrap() });
        let src: IpAddr = "fe80::1".parse().unwrap();
        let f = p.frame(A, B, src, 0);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        let ip = &f[14..54];
        assert_eq!(((ip[0] & 0x0f) << 4) | (ip[1] >> 4), 46 << 2 | 1, "traffic class");
        assert_eq!((ip[6], ip[7]), (6, 1));
        let tcp = &f[54..];
        assert_eq!(tcp[13], 0x12, "SYN+ACK");
        let verify = |proto: u8, seg: &[u8]| {
            let sum = checksum::add(checksum::add(0, &[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), &{
                let IpAddr::V6(d) = p.to else { unreachable!() };
                d.octets()
            });
            checksum::finish(checksum::add(sum + u64::from(proto) + seg.len() as u64, seg))
        };
        assert_eq!(verify(6, tcp), 0, "TCP checksum verifies");
        let echo = packet("2001:db8::2", Proto::Echo { id: 5 }).frame(A, B, src, 0);
        assert_eq!(echo[54], 128, "ICMPv6 echo request");
        assert_eq!(verify(58, &echo[54..]), 0, "ICMPv6 checksum verifies");
        let echo4 = packet("198.18.0.2", Proto::Echo { id: 5 }).frame(A, B, "198.18.0.2".parse().unwrap(), 0);
        assert_eq!((echo4[34], checksum::checksum(&echo4[34..])), (8, 0), "ICMPv4 echo, checksum verifies");
    }

    #[test]
    fn only_lab_destinations_and_sane_counts_pass() {
        assert!(packet("198.19.255.1", Proto::Echo { id: 1 }).check().is_ok());
        for to in ["198.20.0.1", "10.0.0.1", "2001:db9::1", "8.8.8.8", "224.0.0.1"] {
            assert!(packet(to, Proto::Echo { id: 1 }).check().is_err(), "{to}");
        }
        let mut p = packet("198.18.0.2", Proto::Echo { id: 1 });
        p.src = Some("2001:db8::1".parse().unwrap());
        assert!(p.check().is_err(), "mixed families");
        p.src = None;
        p.count = 0;
        assert!(p.check().is_err(), "count 0");
    }

    #[test]
    fn tcp_flags_parse() {
        assert_eq!(tcp_flags("S"), Ok(0x02));
        assert_eq!(tcp_flags("sa"), Ok(0x12));
        assert_eq!(tcp_flags(""), Ok(0));
        assert!(tcp_flags("X").is_err());
    }
}
