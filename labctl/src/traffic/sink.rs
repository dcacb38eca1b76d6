//! The receiving end of UDP flows and blasts: a socket bound in the
//! receiver's namespace that counts datagrams with `recvmmsg`, and stops by
//! itself once the sender is done and the path has gone quiet, or at a hard
//! deadline if the sender never says so.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::cpu::{self, CpuTime};
use super::{io_err, TrafficError};
use crate::sys::netns;
use crate::sys::sockopt;

/// How long the sink keeps listening after the sender is done and nothing
/// more arrives: packets still in queues (veth backlog, socket) get counted.
pub const GRACE: Duration = Duration::from_millis(200);

/// How often the sink wakes up to look at the clock when nothing arrives.
const POLL: Duration = Duration::from_millis(20);

const BATCH: usize = 64;

/// Shared between a sender and its sink: when the sender finished, and the
/// latest moment the sink may run in any case.
pub struct StopSignal {
    sender_done: OnceLock<Instant>,
    hard_deadline: Instant,
}

impl StopSignal {
    pub fn new(hard_deadline: Instant) -> StopSignal {
        StopSignal { sender_done: OnceLock::new(), hard_deadline }
    }

    pub fn sender_done(&self) {
        let _ = self.sender_done.set(Instant::now());
    }

    /// Marks the sender done when dropped, so a sender that fails or
    /// panics still lets its sink stop early.
    pub fn done_on_drop(&self) -> DoneOnDrop<'_> {
        DoneOnDrop(self)
    }

    fn should_stop(&self, now: Instant, last_packet: Option<Instant>) -> bool {
        if now >= self.hard_deadline {
            return true;
        }
        match self.sender_done.get() {
            Some(done) => now.saturating_duration_since(last_packet.map_or(*done, |l| l.max(*done))) >= GRACE,
            None => false,
        }
    }
}

pub struct DoneOnDrop<'a>(&'a StopSignal);

impl Drop for DoneOnDrop<'_> {
    fn drop(&mut self) {
        self.0.sender_done();
    }
}

/// What a sink saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct SinkCounts {
    pub packets: u64,
    pub bytes: u64,
    pub first: Option<Instant>,
    pub last: Option<Instant>,
    pub cpu: CpuTime,
}

pub struct UdpSink {
    sock: Socket,
    /// Largest datagram expected; longer ones are counted at this length.
    max_size: usize,
}

impl UdpSink {
    /// Binds the sink at `at` inside the node behind `netns`.
    pub fn bind(netns: &File, at: SocketAddr, max_size: usize) -> Result<UdpSink, TrafficError> {
        let sock = netns::run_in(netns, || -> Result<Socket, TrafficError> {
            let sock = Socket::new(Domain::for_address(at), Type::DGRAM, Some(Protocol::UDP))
                .map_err(io_err("open the sink's UDP socket"))?;
            sock.bind(&at.into()).map_err(io_err(format!("bind the sink to {at}")))?;
            Ok(sock)
        })??;
        sockopt::grow_receive_buffer(&sock, 32 << 20);
        sock.set_read_timeout(Some(POLL)).map_err(io_err("set the sink's receive timeout"))?;
        Ok(UdpSink { sock, max_size: max_size.clamp(1, 65_535) })
    }

    /// Counts datagrams until `stop` says so; pins itself to `cpu` if given.
    pub fn run(self, stop: &StopSignal, cpu: Option<usize>) -> Result<SinkCounts, TrafficError> {
        if let Some(cpu) = cpu {
            cpu::pin_current_thread(cpu)?;
        }
        let cpu_start = CpuTime::thread_now();
        let mut counts = SinkCounts::default();
        let mut batch = RecvBatch::new(self.max_size);
        loop {
            match batch.recv(&self.sock) {
                Ok(lens) => {
                    let now = Instant::now();
                    counts.packets += lens.len() as u64;
                    counts.bytes += lens.iter().map(|&l| u64::from(l)).sum::<u64>();
                    counts.first.get_or_insert(now);
                    counts.last = Some(now);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(io_err("receive on the sink")(e)),
            }
            if stop.should_stop(Instant::now(), counts.last) {
                break;
            }
        }
        counts.cpu = CpuTime::thread_now().since(cpu_start);
        Ok(counts)
    }
}

/// Buffers and headers for `recvmmsg`, built once and reused for every call.
/// By hand over libc: neither socket2 nor std has recvmmsg, and nix's
/// version rebuilds its headers on every call.
struct RecvBatch {
    // The headers point into `iovs`, which point into `buffers`: heap
    // allocations that never move or grow after `new`.
    _buffers: Vec<u8>,
    _iovs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    lens: Vec<u32>,
}

impl RecvBatch {
    fn new(max_size: usize) -> RecvBatch {
        let mut buffers = vec![0u8; max_size * BATCH];
        let mut iovs: Vec<libc::iovec> = buffers
            .chunks_exact_mut(max_size)
            .map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() })
            .collect();
        let headers = sockopt::mmsg_headers(&mut iovs);
        RecvBatch { _buffers: buffers, _iovs: iovs, headers, lens: Vec::with_capacity(BATCH) }
    }

    /// Waits (up to the socket's timeout) for one datagram, then takes
    /// whatever else is already queued, up to a batch.
    fn recv(&mut self, sock: &Socket) -> io::Result<&[u32]> {
        // SAFETY: the headers and the memory they point to live in `self`.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.headers.as_mut_ptr(),
                self.headers.len() as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.lens.clear();
        self.lens.extend(self.headers[..n as usize].iter().map(|h| h.msg_len));
        Ok(&self.lens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_stops_after_grace_once_the_sender_is_done() {
        let t0 = Instant::now();
        let stop = StopSignal::new(t0 + Duration::from_secs(60));
        assert!(!stop.should_stop(t0 + Duration::from_secs(10), None), "sender still running");
        stop.sender_done();
        let done = *stop.sender_done.get().unwrap();
        assert!(!stop.should_stop(done + GRACE / 2, None));
        assert!(stop.should_stop(done + GRACE, None));
        // A packet after the sender finished restarts the grace period.
        let late = done + GRACE / 2;
        assert!(!stop.should_stop(done + GRACE, Some(late)));
        assert!(stop.should_stop(late + GRACE, Some(late)));
    }

    #[test]
    fn sink_stops_at_the_hard_deadline() {
        let t0 = Instant::now();
        let stop = StopSignal::new(t0 + Duration::from_secs(1));
        assert!(stop.should_stop(t0 + Duration::from_secs(1), None));
    }

    #[test]
    fn a_sender_that_bails_out_still_releases_the_sink() {
        let stop = StopSignal::new(Instant::now() + Duration::from_secs(60));
        let failing_sender = || -> Result<(), ()> {
            let _done = stop.done_on_drop();
            Err(())
        };
        assert!(failing_sender().is_err());
        assert!(stop.sender_done.get().is_some());
    }
}
