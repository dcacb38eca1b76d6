//! Mode (b): AF_PACKET with a TPACKET_V2 TX ring and PACKET_QDISC_BYPASS.
//! Frames are written once into a ring shared with the kernel; each
//! `send()` hands every slot marked "send request" straight to the driver,
//! skipping the UDP/IP stack and the qdisc.
//!
//! By hand over libc: no maintained crate wraps the TX ring (socket2 and
//! nix cover neither PACKET_TX_RING nor the mmap of it).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::SendOutcome;
use crate::sys::sockopt;
use crate::traffic::pacing::Budget;
use crate::traffic::{io_err, TrafficError};

/// One slot per frame; 2048 bytes hold the 32-byte slot header and any
/// frame up to a 1500-byte MTU.
const FRAME_SIZE: usize = 2048;
const BLOCK_SIZE: usize = 64 * 1024;
const BLOCKS: usize = 64; // 2048 slots, 4 MiB
/// Where frame data starts in a slot when sending without PACKET_TX_HAS_OFF:
/// TPACKET2_HDRLEN - sizeof(struct sockaddr_ll) (kernel af_packet.c).
const DATA_OFFSET: usize = 32;
/// The largest frame a slot holds.
pub const MAX_FRAME: usize = FRAME_SIZE - DATA_OFFSET;
/// How long the final flush may wait for the kernel to drain the ring.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

pub struct TxRing {
    fd: OwnedFd,
    ring: NonNull<u8>,
    slots: usize,
    /// Where the kernel sends the frames (interface and EtherType).
    target: libc::sockaddr_ll,
    next_slot: usize,
}

// SAFETY: the mapping belongs to this value alone; moving it to another
// thread (the sender's) is fine, and it is not shared.
unsafe impl Send for TxRing {}

impl TxRing {
    /// Opens the socket and its ring on interface `ifindex` (call inside the
    /// sender's namespace) and writes `frames` into the slots round-robin
    /// once and for all: sending only flips slot status words.
    pub fn open(ifindex: i32, ethertype: u16, frames: &[Vec<u8>]) -> Result<TxRing, TrafficError> {
        if frames.is_empty() || frames.iter().any(|f| f.len() > MAX_FRAME || f.len() < 14) {
            return Err(TrafficError::Options(format!("AF_PACKET frames must be 14..={MAX_FRAME} bytes")));
        }
        // Protocol 0: this socket receives nothing, it only sends.
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        if fd < 0 {
            return Err(io_err("open an AF_PACKET socket")(io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh, valid descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let version = libc::tpacket_versions::TPACKET_V2 as libc::c_int;
        sockopt::set(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, &version).map_err(io_err("set TPACKET_V2"))?;
        sockopt::set(&fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &(1 as libc::c_int))
            .map_err(io_err("set PACKET_QDISC_BYPASS"))?;
        let req = libc::tpacket_req {
            tp_block_size: BLOCK_SIZE as u32,
            tp_block_nr: BLOCKS as u32,
            tp_frame_size: FRAME_SIZE as u32,
            tp_frame_nr: (BLOCKS * BLOCK_SIZE / FRAME_SIZE) as u32,
        };
        sockopt::set(&fd, libc::SOL_PACKET, libc::PACKET_TX_RING, &req).map_err(io_err("set up PACKET_TX_RING"))?;
        let len = BLOCKS * BLOCK_SIZE;
        // Every frame in flight is charged to the socket's send buffer until
        // the receiver frees it; the default (~200 KB, ~270 small frames)
        // would hold the sender back long before the ring or the receiver's
        // backlog (netdev_max_backlog, 1000) fills. Room for the whole ring
        // (the kernel doubles the value); as root, past net.core.wmem_max.
        if sockopt::set(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &(len as libc::c_int)).is_err() {
            let _ = sockopt::set(&fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &(len as libc::c_int));
        }
        // SAFETY: maps the ring the kernel just allocated for this socket.
        let ring = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ring == libc::MAP_FAILED {
            return Err(io_err("mmap the TX ring")(io::Error::last_os_error()));
        }
        // SAFETY: an all-zero sockaddr_ll is valid.
        let mut target: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        target.sll_family = libc::AF_PACKET as u16;
        target.sll_protocol = ethertype.to_be();
        target.sll_ifindex = ifindex;
        let mut tx = TxRing {
            fd,
            ring: NonNull::new(ring.cast()).expect("mmap returned null"),
            slots: req.tp_frame_nr as usize,
            target,
            next_slot: 0,
        };
        tx.bind()?;
        for slot in 0..tx.slots {
            tx.write_frame(slot, &frames[slot % frames.len()]);
        }
        Ok(tx)
    }

    fn bind(&self) -> Result<(), TrafficError> {
        // Bound to the interface with protocol 0: sends go out there, and
        // no received traffic is queued on this socket.
        let mut at = self.target;
        at.sll_protocol = 0;
        // SAFETY: `at` is a valid sockaddr_ll of the length passed.
        let rc = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&at as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io_err(format!("bind the AF_PACKET socket to interface {}", self.target.sll_ifindex))(
                io::Error::last_os_error(),
            ))
        }
    }

    fn slot(&self, slot: usize) -> *mut u8 {
        // SAFETY: slot < self.slots, so the offset is inside the mapping.
        unsafe { self.ring.as_ptr().add(slot * FRAME_SIZE) }
    }

    /// The slot's status word, shared with the kernel.
    fn status(&self, slot: usize) -> &AtomicU32 {
        // SAFETY: tp_status is the first, 4-byte aligned u32 of the slot
        // header; the kernel and we access it only atomically.
        unsafe { AtomicU32::from_ptr(self.slot(slot).cast::<u32>()) }
    }

    fn write_frame(&mut self, slot: usize, frame: &[u8]) {
        let base = self.slot(slot);
        // SAFETY: the slot is ours (status AVAILABLE, ring just made) and
        // DATA_OFFSET + frame.len() <= FRAME_SIZE was checked in `open`.
        unsafe {
            let header = base.cast::<libc::tpacket2_hdr>();
            (*header).tp_len = frame.len() as u32;
            std::ptr::copy_nonoverlapping(frame.as_ptr(), base.add(DATA_OFFSET), frame.len());
        }
    }

    /// Queues frames as `budget` allows, `batch` slots per `send()`.
    pub fn send(&mut self, batch: usize, budget: &mut Budget) -> Result<SendOutcome, TrafficError> {
        let mut outcome = SendOutcome::default();
        while let Some(n) = budget.wait_next(batch) {
            let queued = self.queue(n)?;
            budget.record(queued as u64);
            outcome.packets += queued as u64;
            // A full ring: wait in the kernel until it has sent what is queued.
            self.kick(queued < n, &mut outcome)?;
        }
        self.flush(&mut outcome)?;
        Ok(outcome)
    }

    /// Marks up to `n` free slots "send request"; returns how many.
    fn queue(&mut self, n: usize) -> Result<usize, TrafficError> {
        for queued in 0..n {
            let status = self.status(self.next_slot).load(Ordering::Acquire);
            if status & libc::TP_STATUS_WRONG_FORMAT != 0 {
                return Err(TrafficError::Options(format!(
                    "the kernel rejected a frame in slot {} as malformed (larger than the MTU?)",
                    self.next_slot
                )));
            }
            if status & (libc::TP_STATUS_SEND_REQUEST | libc::TP_STATUS_SENDING) != 0 {
                return Ok(queued); // the kernel has not released this slot yet
            }
            // Release: the frame bytes are visible before the kernel sees the request.
            self.status(self.next_slot).store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
            self.next_slot = (self.next_slot + 1) % self.slots;
        }
        Ok(n)
    }

    /// Asks the kernel to send every slot marked "send request". Without
    /// `wait` it returns once they are handed to the driver.
    fn kick(&self, wait: bool, outcome: &mut SendOutcome) -> Result<(), TrafficError> {
        let flags = if wait { 0 } else { libc::MSG_DONTWAIT };
        // SAFETY: no data buffer (the ring is the data); `target` is a valid sockaddr_ll.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                flags,
                (&self.target as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR | libc::EAGAIN) => Ok(()),
            // The device dropped a frame (e.g. the veth peer's backlog was
            // full); the rest stays queued for the next kick.
            Some(libc::ENOBUFS) => {
                outcome.errors += 1;
                Ok(())
            }
            _ => Err(io_err("send from the TX ring")(err)),
        }
    }

    /// Sends what is still queued and waits (bounded) until the kernel has
    /// released every slot, so the sink sees everything that was counted.
    fn flush(&self, outcome: &mut SendOutcome) -> Result<(), TrafficError> {
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        loop {
            let busy = (0..self.slots).any(|s| {
                self.status(s).load(Ordering::Acquire) & (libc::TP_STATUS_SEND_REQUEST | libc::TP_STATUS_SENDING) != 0
            });
            if !busy || Instant::now() >= deadline {
                return Ok(());
            }
            self.kick(true, outcome)?;
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for TxRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `open`; the fd closes after.
        unsafe {
            libc::munmap(self.ring.as_ptr().cast(), BLOCKS * BLOCK_SIZE);
        }
    }
}
