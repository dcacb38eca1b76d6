//! One UDP or TCP flow between two nodes: a sink bound in the receiver's
//! namespace first, running on its own thread, then a sender in the
//! sender's namespace. Both stop by themselves.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};

use super::pacing::Budget;
use super::sink::{StopSignal, UdpSink};
use super::{check_unicast, io_err, TrafficError, MAX_RUN};
use crate::sys::netns;
use crate::sys::sockopt;

/// The sink's deadline, past the sender's own: time for queues to drain.
const DRAIN: Duration = Duration::from_secs(5);
/// How long a TCP connect may take before the flow fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A TCP write or read that makes no progress for this long ends the flow.
const STALL_TIMEOUT: Duration = Duration::from_secs(3);
const TCP_CHUNK: usize = 128 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct UdpFlow {
    pub to: SocketAddr,
    /// UDP payload bytes per datagram.
    pub size: usize,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// Datagrams per second; `None` sends as fast as the socket takes them.
    pub rate_pps: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TcpFlow {
    pub to: SocketAddr,
    /// Bytes to send; with a duration too, whichever ends first.
    pub bytes: Option<u64>,
    pub duration: Option<Duration>,
}

/// What one flow did. For TCP, packets are the segments carrying data, as
/// the kernel counted them (`tcpi_data_segs_out` / `tcpi_data_segs_in`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowReport {
    pub sent_packets: u64,
    /// Payload bytes.
    pub sent_bytes: u64,
    pub received_packets: u64,
    pub received_bytes: u64,
    /// Sends the kernel refused (e.g. no buffer space, connection refused).
    pub send_errors: u64,
    /// From the first send to the last byte received (or the sender's end).
    pub duration_s: f64,
    /// Received payload bits per second over `duration_s`.
    pub throughput_bps: f64,
    /// Received packets per second over `duration_s`.
    pub pps: f64,
}

impl FlowReport {
    fn new(sent: (u64, u64), received: (u64, u64), send_errors: u64, duration: Duration) -> FlowReport {
        let secs = duration.as_secs_f64();
        let per_second = |x: u64| if secs > 0.0 { x as f64 / secs } else { 0.0 };
        FlowReport {
            sent_packets: sent.0,
            sent_bytes: sent.1,
            received_packets: received.0,
            received_bytes: received.1,
            send_errors,
            duration_s: secs,
            throughput_bps: per_second(received.1) * 8.0,
            pps: per_second(received.0),
        }
    }
}

/// Sends `flow` from the node behind `src_ns` to a sink in `dst_ns`.
pub fn udp_flow(src_ns: &File, dst_ns: &File, flow: &UdpFlow) -> Result<FlowReport, TrafficError> {
    check_unicast(flow.to.ip())?;
    if flow.size > 65_000 {
        return Err(TrafficError::Options(format!("UDP size {} is larger than 65000", flow.size)));
    }
    let sink = UdpSink::bind(dst_ns, flow.to, flow.size.max(1))?;
    let sender = netns::run_in(src_ns, || connected_udp(flow.to))??;
    let mut budget = Budget::new(flow.count, flow.duration, flow.rate_pps)?;
    let stop = StopSignal::new(budget.end() + DRAIN);
    let payload = vec![0x5a; flow.size];

    std::thread::scope(|scope| {
        let receiver = scope.spawn(|| sink.run(&stop, None));
        let (errors, sender_end) = {
            let _done = stop.done_on_drop();
            let mut errors = 0;
            while let Some(n) = budget.wait_next(32) {
                for _ in 0..n {
                    match sender.send(&payload) {
                        Ok(_) => budget.record(1),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        // ENOBUFS, ECONNREFUSED (an ICMP error came back): count, go on.
                        Err(_) => {
                            errors += 1;
                            budget.record(1);
                        }
                    }
                }
            }
            (errors, Instant::now())
        };
        let got = receiver.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        let sent = budget.sent() - errors;
        let end = got.last.map_or(sender_end, |l| l.max(sender_end));
        Ok(FlowReport::new((sent, sent * flow.size as u64), (got.packets, got.bytes), errors, end - budget.start()))
    })
}

fn connected_udp(to: SocketAddr) -> Result<Socket, TrafficError> {
    let sock = Socket::new(Domain::for_address(to), Type::DGRAM, Some(Protocol::UDP))
        .map_err(io_err("open the sender's UDP socket"))?;
    sock.connect(&to.into()).map_err(io_err(format!("connect the UDP sender to {to}")))?;
    Ok(sock)
}

/// Sends `flow` over TCP from the node behind `src_ns` to a sink in `dst_ns`.
pub fn tcp_flow(src_ns: &File, dst_ns: &File, flow: &TcpFlow) -> Result<FlowReport, TrafficError> {
    check_unicast(flow.to.ip())?;
    if flow.bytes.is_none() && flow.duration.is_none() {
        return Err(TrafficError::Options("give a byte count or a duration".into()));
    }
    let listener = netns::run_in(dst_ns, || tcp_listener(flow.to))??;
    let sender = netns::run_in(src_ns, || {
        Socket::new(Domain::for_address(flow.to), Type::STREAM, Some(Protocol::TCP))
            .map_err(io_err("open the sender's TCP socket"))
    })??;
    let start = Instant::now();
    let end = start + flow.duration.unwrap_or(MAX_RUN).min(MAX_RUN);
    let sink_deadline = end + DRAIN;

    std::thread::scope(|scope| {
        let receiver = scope.spawn(|| tcp_sink(&listener, sink_deadline));
        // The sink sees EOF at the shutdown, or when `sender` is dropped on an early error.
        let sent = tcp_send(sender, flow, end)?;
        let (received, received_segments, last) = receiver.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        // Read once the sink has everything: earlier, data may still sit in the send buffer.
        let sent_segments = tcp_info(&sent.sock).map_or(0, |i| u64::from(i.tcpi_data_segs_out));
        let finished = last.map_or(sent.finished, |l| l.max(sent.finished));
        Ok(FlowReport::new((sent_segments, sent.bytes), (received_segments, received), 0, finished - start))
    })
}

fn tcp_listener(at: SocketAddr) -> Result<Socket, TrafficError> {
    let sock = Socket::new(Domain::for_address(at), Type::STREAM, Some(Protocol::TCP))
        .map_err(io_err("open the sink's TCP socket"))?;
    sock.set_reuse_address(true).map_err(io_err("set SO_REUSEADDR"))?;
    sock.bind(&at.into()).map_err(io_err(format!("bind the TCP sink to {at}")))?;
    sock.listen(1).map_err(io_err("listen"))?;
    // SO_RCVTIMEO bounds accept() as well as reads.
    sock.set_read_timeout(Some(CONNECT_TIMEOUT + STALL_TIMEOUT)).map_err(io_err("set the accept timeout"))?;
    Ok(sock)
}

struct Sent {
    /// Kept open (its sending side shut down) to read its counters at the end.
    sock: Socket,
    bytes: u64,
    finished: Instant,
}

fn tcp_send(sock: Socket, flow: &TcpFlow, end: Instant) -> Result<Sent, TrafficError> {
    sock.connect_timeout(&flow.to.into(), CONNECT_TIMEOUT).map_err(io_err(format!("connect to {}", flow.to)))?;
    sock.set_write_timeout(Some(STALL_TIMEOUT)).map_err(io_err("set the send timeout"))?;
    let chunk = vec![0x5a; TCP_CHUNK];
    let limit = flow.bytes.unwrap_or(u64::MAX);
    let mut sent = 0u64;
    let mut stream = &sock;
    while sent < limit && Instant::now() < end {
        let n = (limit - sent).min(TCP_CHUNK as u64) as usize;
        match stream.write(&chunk[..n]) {
            Ok(written) => sent += written as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(format!("send to {} after {sent} bytes", flow.to))(e)),
        }
    }
    sock.shutdown(Shutdown::Write).map_err(io_err("shut down the sending side"))?;
    Ok(Sent { sock, bytes: sent, finished: Instant::now() })
}

/// Accepts one connection and reads it to the end (or the deadline).
/// Returns bytes, data segments and when the last byte came.
fn tcp_sink(listener: &Socket, deadline: Instant) -> Result<(u64, u64, Option<Instant>), TrafficError> {
    let (conn, _) = listener.accept().map_err(io_err("accept the TCP flow"))?;
    conn.set_read_timeout(Some(Duration::from_millis(100))).map_err(io_err("set the read timeout"))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut received = 0u64;
    let mut last = None;
    let mut stream = &conn;
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                received += n as u64;
                last = Some(Instant::now());
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(io_err(format!("read the TCP flow after {received} bytes"))(e)),
        }
    }
    let segments = tcp_info(&conn).map_or(0, |i| u64::from(i.tcpi_data_segs_in));
    Ok((received, segments, last))
}

fn tcp_info(sock: &Socket) -> io::Result<libc::tcp_info> {
    sockopt::get(sock, libc::IPPROTO_TCP, libc::TCP_INFO)
}
