//! Complete Ethernet + IPv4/IPv6 + UDP frames, checksums filled in, for the
//! AF_PACKET generator, which hands frames to the driver as they are.

use std::net::{IpAddr, SocketAddr};

use super::checksum;

pub const ETH_HEADER: usize = 14;
pub const IPV4_HEADER: usize = 20;
pub const IPV6_HEADER: usize = 40;
pub const UDP_HEADER: usize = 8;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

pub type Mac = [u8; 6];

/// One UDP datagram as a frame on the wire (without the FCS, which the
/// NIC adds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpFrame {
    pub src_mac: Mac,
    pub dst_mac: Mac,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// UDP payload bytes.
    pub payload: usize,
    pub ttl: u8,
}

/// Frame length for a UDP payload: payload + 42 (IPv4) or + 62 (IPv6).
pub fn frame_len(ipv6: bool, payload: usize) -> usize {
    ETH_HEADER + if ipv6 { IPV6_HEADER } else { IPV4_HEADER } + UDP_HEADER + payload
}

impl UdpFrame {
    pub fn build(&self) -> Vec<u8> {
        let ipv6 = match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(_), IpAddr::V4(_)) => false,
            (IpAddr::V6(_), IpAddr::V6(_)) => true,
            (s, d) => panic!("frame from {s} to {d}: address families differ"),
        };
        let mut frame = Vec::with_capacity(frame_len(ipv6, self.payload));
        frame.extend_from_slice(&self.dst_mac);
        frame.extend_from_slice(&self.src_mac);
        frame.extend_from_slice(&(if ipv6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 }).to_be_bytes());
        let udp = self.udp_datagram();
        match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let start = frame.len();
                let total = (IPV4_HEADER + udp.len()) as u16;
                frame.extend_from_slice(&[0x45, 0]); // version 4, 20-byte header; DSCP/ECN 0
                frame.extend_from_slice(&total.to_be_bytes());
                frame.extend_from_slice(&[0, 0, 0x40, 0]); // id 0, don't fragment
                frame.extend_from_slice(&[self.ttl, libc::IPPROTO_UDP as u8, 0, 0]);
                frame.extend_from_slice(&s.octets());
                frame.extend_from_slice(&d.octets());
                let sum = checksum::checksum(&frame[start..]);
                frame[start + 10..start + 12].copy_from_slice(&sum.to_be_bytes());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                frame.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, class 0, flow label 0
                frame.extend_from_slice(&(udp.len() as u16).to_be_bytes());
                frame.extend_from_slice(&[libc::IPPROTO_UDP as u8, self.ttl]);
                frame.extend_from_slice(&s.octets());
                frame.extend_from_slice(&d.octets());
            }
            _ => unreachable!("checked above"),
        }
        frame.extend_from_slice(&udp);
        frame
    }

    fn udp_datagram(&self) -> Vec<u8> {
        let len = UDP_HEADER + self.payload;
        let mut udp = Vec::with_capacity(len);
        udp.extend_from_slice(&self.src.port().to_be_bytes());
        udp.extend_from_slice(&self.dst.port().to_be_bytes());
        udp.extend_from_slice(&(len as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.resize(len, 0x5a);
        let sum = checksum::udp(self.src.ip(), self.dst.ip(), &udp);
        udp[6..8].copy_from_slice(&sum.to_be_bytes());
        udp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = [0x02, 0, 0, 0, 0, 1];
    const B: Mac = [0x02, 0, 0, 0, 0, 2];

    fn frame(src: &str, dst: &str, payload: usize) -> Vec<u8> {
        UdpFrame { src_mac: A, dst_mac: B, src: src.parse().unwrap(), dst: dst.parse().unwrap(), payload, ttl: 64 }
            .build()
    }

    /// A receiver's check: the one's-complement sum over pseudo-header and
    /// datagram, checksum included, is all ones.
    fn udp_verifies(src: IpAddr, dst: IpAddr, udp: &[u8]) -> bool {
        let mut sum = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => checksum::add(checksum::add(0, &s.octets()), &d.octets()),
            (IpAddr::V6(s), IpAddr::V6(d)) => checksum::add(checksum::add(0, &s.octets()), &d.octets()),
            _ => unreachable!(),
        };
        sum += 17 + udp.len() as u64;
        checksum::finish(checksum::add(sum, udp)) == 0
    }

    #[test]
    fn ipv4_frame_layout_and_checksums() {
        let f = frame("198.18.0.1:49152", "198.18.0.2:9000", 18);
        assert_eq!(f.len(), 60, "the minimum Ethernet frame without FCS");
        assert_eq!(f.len(), frame_len(false, 18));
        assert_eq!(&f[0..6], &B);
        assert_eq!(&f[6..12], &A);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        let ip = &f[14..34];
        assert_eq!(ip[0], 0x45);
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 46);
        assert_eq!((ip[8], ip[9]), (64, 17));
        assert_eq!(&ip[12..16], &[198, 18, 0, 1]);
        assert_eq!(&ip[16..20], &[198, 18, 0, 2]);
        assert_eq!(checksum::checksum(ip), 0, "IPv4 header checksum verifies");
        let udp = &f[34..];
        assert_eq!(&udp[0..6], &[0xc0, 0x00, 0x23, 0x28, 0x00, 26]);
        assert!(udp_verifies("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap(), udp));
        assert!(udp[8..].iter().all(|&b| b == 0x5a));
    }

    #[test]
    fn ipv6_frame_layout_and_checksums() {
        let f = frame("[2001:db8::1]:49153", "[2001:db8::2]:9000", 64);
        assert_eq!(f.len(), 14 + 40 + 8 + 64);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        let ip = &f[14..54];
        assert_eq!(ip[0] >> 4, 6);
        assert_eq!(u16::from_be_bytes([ip[4], ip[5]]), 72);
        assert_eq!((ip[6], ip[7]), (17, 64));
        let udp = &f[54..];
        assert_ne!(&udp[6..8], &[0, 0], "UDP checksum is mandatory over IPv6");
        assert!(udp_verifies("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap(), udp));
    }

    #[test]
    fn checksums_change_with_the_ports() {
        let a = frame("198.18.0.1:49152", "198.18.0.2:9000", 18);
        let b = frame("198.18.0.1:49153", "198.18.0.2:9000", 18);
        assert_ne!(a[40..42], b[40..42]);
        assert_eq!(a[24..26], b[24..26], "the IP header does not depend on ports");
    }
}
