//! ICMP echo from inside a node, over a raw socket so that errors about our
//! requests (TTL expiry, unreachables) are seen and reported, not just lost.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};

use super::icmp::{self, Incoming};
use super::{check_unicast, io_err, TrafficError};
use crate::sys::netns;
use crate::sys::sockopt;

/// The most echoes one call sends: sequence numbers are 16 bits.
pub const MAX_COUNT: u32 = u16::MAX as u32;

/// The ICMP sequence number of the `n`-th echo (from 0): numbered from 1,
/// as iputils' ping does, so counts written against `ping` agree.
fn sequence_number(n: u32) -> u16 {
    (n + 1) as u16
}

#[derive(Debug, Clone, PartialEq)]
pub struct PingOptions {
    pub to: IpAddr,
    pub count: u32,
    /// ICMP payload bytes (ping's `-s`).
    pub size: usize,
    /// Time between two requests.
    pub interval: Duration,
    /// How long to wait for each reply.
    pub timeout: Duration,
    pub source: Option<IpAddr>,
    /// TTL (IPv4) or hop limit (IPv6) of the requests.
    pub ttl: Option<u8>,
}

impl PingOptions {
    pub fn new(to: IpAddr) -> PingOptions {
        PingOptions {
            to,
            count: 3,
            size: 56,
            interval: Duration::from_millis(100),
            timeout: Duration::from_secs(1),
            source: None,
            ttl: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub seq: u16,
    /// TTL (IPv4) or hop limit (IPv6) the reply arrived with.
    pub ttl: Option<u8>,
    pub from: IpAddr,
    pub rtt_us: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PingReport {
    pub to: IpAddr,
    pub transmitted: u32,
    pub received: u32,
    pub lost: u32,
    /// Round-trip times in microseconds; `None` when nothing came back.
    pub rtt_min_us: Option<f64>,
    pub rtt_avg_us: Option<f64>,
    pub rtt_max_us: Option<f64>,
    /// In sequence order.
    pub replies: Vec<Reply>,
    /// Failed sends and ICMP errors, e.g.
    /// `from 198.18.1.2 icmp_seq=1: Time to live exceeded (type 11 code 0)`.
    pub errors: Vec<String>,
}

/// Sends `opts.count` echo requests from the node behind `netns` and
/// collects the answers. Never waits longer than
/// `(count - 1) * interval + timeout` (plus scheduling).
pub fn ping(netns: &File, opts: &PingOptions) -> Result<PingReport, TrafficError> {
    check(opts)?;
    let id = echo_id();
    let (sock, sink) = netns::run_in(netns, || open_socket(opts).map(|sock| (sock, reply_sink(opts, id))))??;
    let mut session = Session::new(opts, id);
    let start = Instant::now();
    for n in 0..opts.count {
        session.receive_until(&sock, start + opts.interval * n, false)?;
        session.send(&sock, sequence_number(n));
    }
    while let Some(deadline) = session.pending_deadline() {
        session.receive_until(&sock, deadline, true)?;
    }
    if let Some(sink) = sink {
        drain(&sink);
    }
    Ok(session.report())
}

/// An ICMP datagram ("ping") socket bound to our echo id. The raw socket
/// gets a copy of every reply; the kernel then looks for a ping socket with
/// that id and, finding none, drops the reply as NO_SOCKET, which would show
/// in every drop trace. With this socket there the reply is delivered.
/// Best effort: it needs net.ipv4.ping_group_range to admit us, as labctl
/// sets it in every lab node.
fn reply_sink(opts: &PingOptions, id: u16) -> Option<Socket> {
    let (domain, protocol) =
        if opts.to.is_ipv6() { (Domain::IPV6, Protocol::ICMPV6) } else { (Domain::IPV4, Protocol::ICMPV4) };
    let sock = Socket::new(domain, Type::DGRAM, Some(protocol)).ok()?;
    let any: IpAddr = if opts.to.is_ipv6() { Ipv6Addr::UNSPECIFIED.into() } else { Ipv4Addr::UNSPECIFIED.into() };
    // For ping sockets the bound "port" is the echo identifier.
    sock.bind(&SocketAddr::new(any, id).into()).ok()?;
    sock.set_nonblocking(true).ok()?;
    Some(sock)
}

/// Reads what the sink holds: read packets are consumed, while packets left
/// queued at close would count as drops (QUEUE_PURGE).
fn drain(sink: &Socket) {
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
    while sink.recv(&mut buf).is_ok() {}
}

fn check(opts: &PingOptions) -> Result<(), TrafficError> {
    check_unicast(opts.to)?;
    if opts.count == 0 || opts.count > MAX_COUNT {
        return Err(TrafficError::Options(format!("ping count must be 1..={MAX_COUNT}, not {}", opts.count)));
    }
    if opts.size > 65_000 {
        return Err(TrafficError::Options(format!("ping size {} is larger than 65000", opts.size)));
    }
    if opts.timeout.is_zero() {
        return Err(TrafficError::Options("ping timeout must be more than zero".into()));
    }
    if let Some(src) = opts.source {
        if src.is_ipv4() != opts.to.is_ipv4() {
            return Err(TrafficError::Options(format!("source {src} and destination {} differ in family", opts.to)));
        }
    }
    Ok(())
}

/// Identifiers distinct between pings running at once in this process;
/// raw sockets see every ICMP message of the namespace.
fn echo_id() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    (std::process::id() as u16).wrapping_add(NEXT.fetch_add(0x1001, Ordering::Relaxed))
}

fn open_socket(opts: &PingOptions) -> Result<Socket, TrafficError> {
    let ipv6 = opts.to.is_ipv6();
    let (domain, protocol) = if ipv6 { (Domain::IPV6, Protocol::ICMPV6) } else { (Domain::IPV4, Protocol::ICMPV4) };
    let sock = Socket::new(domain, Type::RAW, Some(protocol)).map_err(io_err("open a raw ICMP socket"))?;
    if let Some(src) = opts.source {
        sock.bind(&SocketAddr::new(src, 0).into()).map_err(io_err(format!("bind to source {src}")))?;
    }
    if let Some(ttl) = opts.ttl {
        let set = if ipv6 { sock.set_unicast_hops_v6(ttl.into()) } else { sock.set_ttl_v4(ttl.into()) };
        set.map_err(io_err(format!("set TTL {ttl}")))?;
    }
    if ipv6 {
        sockopt::set(&sock, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, &(1 as libc::c_int))
            .map_err(io_err("ask for the hop limit of replies"))?;
    }
    install_filter(&sock, ipv6).map_err(io_err("install the ICMP filter"))?;
    Ok(sock)
}

/// Lets only echo replies and error messages reach the socket, so busy
/// namespaces (our own echo requests, neighbour discovery) cost nothing.
fn install_filter(sock: &Socket, ipv6: bool) -> io::Result<()> {
    // <linux/icmp.h> ICMP_FILTER and <linux/icmpv6.h> ICMPV6_FILTER, not in libc.
    const ICMP_FILTER: libc::c_int = 1;
    const ICMPV6_FILTER: libc::c_int = 1;
    if ipv6 {
        // A set bit blocks that type.
        let mut blocked = [u32::MAX; 8];
        for t in [
            icmp::v6::ECHO_REPLY,
            icmp::v6::DEST_UNREACH,
            icmp::v6::PACKET_TOO_BIG,
            icmp::v6::TIME_EXCEEDED,
            icmp::v6::PARAM_PROBLEM,
        ] {
            blocked[usize::from(t >> 5)] &= !(1 << (t & 31));
        }
        sockopt::set(sock, libc::IPPROTO_ICMPV6, ICMPV6_FILTER, &blocked)
    } else {
        let mut blocked = u32::MAX;
        for t in [icmp::v4::ECHO_REPLY, icmp::v4::DEST_UNREACH, icmp::v4::TIME_EXCEEDED, icmp::v4::PARAM_PROBLEM] {
            blocked &= !(1 << t);
        }
        sockopt::set(sock, libc::SOL_RAW, ICMP_FILTER, &blocked)
    }
}

/// The state of one ping run: what was sent when, and what came back.
struct Session<'a> {
    opts: &'a PingOptions,
    id: u16,
    /// Sequence number -> send time, for requests still waiting for an answer.
    outstanding: BTreeMap<u16, Instant>,
    transmitted: u32,
    replies: Vec<Reply>,
    errors: Vec<String>,
}

impl<'a> Session<'a> {
    fn new(opts: &'a PingOptions, id: u16) -> Self {
        Session { opts, id, outstanding: BTreeMap::new(), transmitted: 0, replies: Vec::new(), errors: Vec::new() }
    }

    fn send(&mut self, sock: &Socket, seq: u16) {
        let request = icmp::echo_request(self.opts.to.is_ipv6(), self.id, seq, self.opts.size);
        match sock.send_to(&request, &SocketAddr::new(self.opts.to, 0).into()) {
            Ok(_) => {
                self.transmitted += 1;
                self.outstanding.insert(seq, Instant::now());
            }
            // e.g. "Network is unreachable" when the node has no route at all.
            Err(e) => self.errors.push(format!("icmp_seq={seq}: send: {e}")),
        }
    }

    /// When the oldest unanswered request times out, if any is left.
    fn pending_deadline(&self) -> Option<Instant> {
        self.outstanding.values().min().map(|sent| *sent + self.opts.timeout)
    }

    fn expire(&mut self, now: Instant) {
        let timeout = self.opts.timeout;
        self.outstanding.retain(|_, sent| now < *sent + timeout);
    }

    /// Handles whatever arrives until `deadline`, dropping requests that time out.
    /// Handles what arrives until `deadline`, or, with `until_answered`,
    /// until no request is waiting any more.
    fn receive_until(&mut self, sock: &Socket, deadline: Instant, until_answered: bool) -> Result<(), TrafficError> {
        let mut buf = vec![0u8; self.opts.size + 512];
        loop {
            let now = Instant::now();
            self.expire(now);
            if now >= deadline || (until_answered && self.outstanding.is_empty()) {
                return Ok(());
            }
            // A zero timeout would mean "block for ever".
            let wait = (deadline - now).max(Duration::from_micros(100));
            sock.set_read_timeout(Some(wait)).map_err(io_err("set the receive timeout"))?;
            let received = if self.opts.to.is_ipv6() { recv_v6(sock, &mut buf) } else { recv_v4(sock, &mut buf) };
            match received {
                Ok((from, ttl, incoming)) => self.handle(from, ttl, incoming, Instant::now()),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err("receive ICMP")(e)),
            }
        }
    }

    fn handle(&mut self, from: IpAddr, ttl: Option<u8>, incoming: Incoming, at: Instant) {
        match incoming {
            Incoming::EchoReply { id, seq } if id == self.id => {
                // Replies to requests already answered or timed out are dropped.
                if let Some(sent) = self.outstanding.remove(&seq) {
                    let rtt_us = (at - sent).as_secs_f64() * 1e6;
                    self.replies.push(Reply { seq, ttl, from, rtt_us });
                }
            }
            Incoming::Error { id, seq, reason } if id == self.id && self.outstanding.remove(&seq).is_some() => {
                self.errors.push(format!("from {from} icmp_seq={seq}: {reason}"));
            }
            _ => {}
        }
    }

    fn report(mut self) -> PingReport {
        self.replies.sort_by_key(|r| r.seq);
        let rtts: Vec<f64> = self.replies.iter().map(|r| r.rtt_us).collect();
        let received = self.replies.len() as u32;
        PingReport {
            to: self.opts.to,
            transmitted: self.transmitted,
            received,
            lost: self.transmitted - received,
            rtt_min_us: rtts.iter().copied().reduce(f64::min),
            rtt_avg_us: (!rtts.is_empty()).then(|| rtts.iter().sum::<f64>() / rtts.len() as f64),
            rtt_max_us: rtts.iter().copied().reduce(f64::max),
            replies: self.replies,
            errors: self.errors,
        }
    }
}

/// A raw ICMPv4 socket delivers the IP header too, TTL included.
fn recv_v4(sock: &Socket, buf: &mut [u8]) -> io::Result<(IpAddr, Option<u8>, Incoming)> {
    // SAFETY: initialized bytes are valid MaybeUninit<u8>; recv only writes them.
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
    let (len, addr) = sock.recv_from(uninit)?;
    let from = addr.as_socket().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    Ok(match icmp::parse_v4(&buf[..len]) {
        Some((ttl, incoming)) => (from, Some(ttl), incoming),
        None => (from, None, Incoming::Other),
    })
}

/// A raw ICMPv6 socket delivers no IPv6 header; the hop limit comes as an
/// IPV6_HOPLIMIT control message. Written with libc::recvmsg because the
/// control messages have to be walked with the CMSG_* macros anyway.
fn recv_v6(sock: &Socket, buf: &mut [u8]) -> io::Result<(IpAddr, Option<u8>, Incoming)> {
    let mut from: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut control = [0u64; 16]; // u64 for cmsghdr alignment
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: every pointer in the msghdr refers to a live local buffer of
    // the stated size; the CMSG macros stay within msg_controllen.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = (&mut from as *mut libc::sockaddr_in6).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of::<[u64; 16]>();
        let len = libc::recvmsg(sock.as_raw_fd(), &mut msg, 0);
        if len < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut hop_limit = None;
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::IPPROTO_IPV6 && (*cmsg).cmsg_type == libc::IPV6_HOPLIMIT {
                let value = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int);
                hop_limit = u8::try_from(value).ok();
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        let from = IpAddr::V6(Ipv6Addr::from(from.sin6_addr.s6_addr));
        let incoming = icmp::parse_v6(&buf[..len as usize]).unwrap_or(Incoming::Other);
        Ok((from, hop_limit, incoming))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_before_any_socket() {
        let mut o = PingOptions::new("198.18.0.2".parse().unwrap());
        assert!(check(&o).is_ok());
        o.count = 0;
        assert!(check(&o).is_err());
        o.count = 3;
        o.source = Some("2001:db8::1".parse().unwrap());
        assert!(check(&o).is_err());
        o.source = None;
        o.to = "255.255.255.255".parse().unwrap();
        assert!(check(&o).is_err());
    }

    #[test]
    fn sequences_start_at_1_like_iputils() {
        assert_eq!(sequence_number(0), 1);
        assert_eq!(sequence_number(MAX_COUNT - 1), u16::MAX);
    }

    #[test]
    fn session_matches_replies_and_errors_by_id_and_seq() {
        let opts = PingOptions::new("198.18.0.2".parse().unwrap());
        let mut s = Session::new(&opts, 7);
        let t0 = Instant::now();
        s.outstanding.insert(0, t0);
        s.outstanding.insert(1, t0);
        s.outstanding.insert(2, t0);
        s.transmitted = 3;
        let peer: IpAddr = "198.18.0.2".parse().unwrap();
        s.handle(peer, Some(64), Incoming::EchoReply { id: 8, seq: 0 }, t0); // not ours
        s.handle(peer, Some(64), Incoming::EchoReply { id: 7, seq: 0 }, t0 + Duration::from_micros(50));
        s.handle(peer, Some(64), Incoming::EchoReply { id: 7, seq: 0 }, t0); // duplicate
        s.handle(peer, None, Incoming::Error { id: 7, seq: 1, reason: "Time to live exceeded".into() }, t0);
        assert_eq!(s.pending_deadline(), Some(t0 + opts.timeout));
        s.expire(t0 + opts.timeout);
        assert_eq!(s.pending_deadline(), None);
        let r = s.report();
        assert_eq!((r.transmitted, r.received, r.lost), (3, 1, 2));
        assert_eq!(r.rtt_min_us, Some(50.0));
        assert_eq!(r.errors, vec!["from 198.18.0.2 icmp_seq=1: Time to live exceeded".to_string()]);
    }
}
