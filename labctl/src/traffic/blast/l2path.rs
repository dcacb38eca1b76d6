//! Finds what an AF_PACKET sender must put in its frames to reach an
//! address: the outgoing interface, both MACs and the source address.
//! Rather than reimplement routing and the neighbour table, it sends one
//! ordinary UDP probe and reads the frame the kernel built for it.

use std::fs::File;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::sys::netns;
use crate::traffic::frame::{self, Mac};
use crate::traffic::{io_err, TrafficError};

/// The probe goes to the discard port, never to the sink's port, so that
/// it cannot be counted as load.
pub const PROBE_PORT: u16 = 9;
/// How long to wait for the probe frame (ARP/ND resolution included).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The probe is sent again this often while waiting (the first may wait in
/// the neighbour queue, or be dropped there).
const PROBE_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2Path {
    pub ifindex: i32,
    pub src_mac: Mac,
    pub dst_mac: Mac,
    /// The source address the kernel picks for this destination.
    pub src_ip: IpAddr,
}

/// Resolves the path to `to` from inside the node behind `netns`.
pub fn resolve(netns: &File, to: IpAddr) -> Result<L2Path, TrafficError> {
    netns::run_in(netns, || resolve_here(to, None))?
}

/// Like [`resolve`], from the calling thread's namespace, with the probe's
/// TTL (hop limit) set to `ttl`: with 1, the probe dies at the first router
/// and reaches no rule or counter past it (crafted packets, traffic/craft.rs).
pub fn resolve_here(to: IpAddr, ttl: Option<u32>) -> Result<L2Path, TrafficError> {
    // Every frame on every interface of this node, outgoing ones included.
    let capture = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from((libc::ETH_P_ALL as u16).to_be() as i32)))
        .map_err(io_err("open an AF_PACKET capture socket"))?;
    capture.set_read_timeout(Some(Duration::from_millis(50))).map_err(io_err("set the capture timeout"))?;
    let bind = match to {
        IpAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        IpAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    };
    let probe = UdpSocket::bind(bind).map_err(io_err("open the probe socket"))?;
    probe.connect(SocketAddr::new(to, PROBE_PORT)).map_err(io_err(format!("no route from this node to {to}")))?;
    let local = probe.local_addr().map_err(io_err("read the probe's source address"))?;
    if let Some(ttl) = ttl {
        let set = match to {
            IpAddr::V4(_) => probe.set_ttl(ttl),
            IpAddr::V6(_) => socket2::SockRef::from(&probe).set_unicast_hops_v6(ttl),
        };
        set.map_err(io_err("set the probe's TTL"))?;
    }

    let deadline = Instant::now() + PROBE_TIMEOUT;
    let mut next_probe = Instant::now();
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        if Instant::now() >= next_probe {
            // Errors (an ICMP unreachable from an earlier probe) do not matter here.
            let _ = probe.send(b"labctl l2 probe");
            next_probe += PROBE_EVERY;
        }
        match recv_outgoing(&capture, &mut buf) {
            Ok(Some((ifindex, len))) => {
                if let Some(path) = match_probe(&buf[..len], local, to, ifindex) {
                    return Ok(path);
                }
            }
            Ok(None) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(io_err("capture the probe frame")(e)),
        }
    }
    Err(TrafficError::Io {
        what: format!("no Ethernet frame to {to} left this node within {PROBE_TIMEOUT:?} (neighbour unresolved?)"),
        source: io::ErrorKind::TimedOut.into(),
    })
}

/// One captured frame with its interface index, if it was outgoing.
fn recv_outgoing(capture: &Socket, buf: &mut [u8]) -> io::Result<Option<(i32, usize)>> {
    // SAFETY: initialized bytes are valid MaybeUninit<u8>; recv only writes them.
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
    let (len, addr) = capture.recv_from(uninit)?;
    if (addr.len() as usize) < size_of::<libc::sockaddr_ll>() - 8 || addr.family() != libc::AF_PACKET as u16 {
        return Ok(None);
    }
    // SAFETY: an AF_PACKET socket returns a sockaddr_ll, which fits the storage.
    let ll = unsafe { &*(addr.as_ptr() as *const libc::sockaddr_ll) };
    Ok((ll.sll_pkttype == libc::PACKET_OUTGOING).then_some((ll.sll_ifindex, len)))
}

/// The probe's frame: Ethernet, then IPv4/IPv6 (no extension headers), then
/// UDP from our probe socket's port to the probe port.
fn match_probe(f: &[u8], local: SocketAddr, to: IpAddr, ifindex: i32) -> Option<L2Path> {
    let ethertype = u16::from_be_bytes([*f.get(12)?, *f.get(13)?]);
    let ip = f.get(frame::ETH_HEADER..)?;
    let (dst, udp) = match ethertype {
        frame::ETHERTYPE_IPV4 if *ip.get(9)? == libc::IPPROTO_UDP as u8 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            (IpAddr::from(<[u8; 4]>::try_from(ip.get(16..20)?).ok()?), ip.get(ihl..)?)
        }
        frame::ETHERTYPE_IPV6 if *ip.get(6)? == libc::IPPROTO_UDP as u8 => {
            (IpAddr::from(<[u8; 16]>::try_from(ip.get(24..40)?).ok()?), ip.get(frame::IPV6_HEADER..)?)
        }
        _ => return None,
    };
    let ports = (u16::from_be_bytes([*udp.first()?, *udp.get(1)?]), u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]));
    (dst == to && ports == (local.port(), PROBE_PORT)).then(|| L2Path {
        ifindex,
        dst_mac: f[0..6].try_into().unwrap(),
        src_mac: f[6..12].try_into().unwrap(),
        src_ip: local.ip(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::frame::UdpFrame;

    #[test]
    fn the_probe_frame_is_recognised() {
        let local: SocketAddr = "198.18.0.1:40000".parse().unwrap();
        let to: IpAddr = "198.18.0.2".parse().unwrap();
        let f = UdpFrame {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: local,
            dst: SocketAddr::new(to, PROBE_PORT),
            payload: 15,
            ttl: 64,
        }
        .build();
        let path = match_probe(&f, local, to, 7).expect("matches");
        assert_eq!(
            path,
            L2Path { ifindex: 7, src_mac: [2, 0, 0, 0, 0, 1], dst_mac: [2, 0, 0, 0, 0, 2], src_ip: local.ip() }
        );
        assert_eq!(match_probe(&f, "198.18.0.1:40001".parse().unwrap(), to, 7), None, "another socket's datagram");
        assert_eq!(match_probe(&f[..20], local, to, 7), None, "truncated");
    }

    #[test]
    fn ipv6_probe_frame_is_recognised() {
        let local: SocketAddr = "[2001:db8::1]:40000".parse().unwrap();
        let to: IpAddr = "2001:db8::2".parse().unwrap();
        let f = UdpFrame {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: local,
            dst: SocketAddr::new(to, PROBE_PORT),
            payload: 15,
            ttl: 64,
        }
        .build();
        assert!(match_probe(&f, local, to, 3).is_some());
    }
}
