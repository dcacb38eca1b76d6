//! Mode (d): an AF_XDP socket in copy mode, transmit only. Each flow's
//! frame is written once into its own chunk of a UMEM (memory registered
//! with the kernel); sending puts descriptors (offset, length) on the
//! socket's TX ring and kicks the kernel with `sendto`, which copies each
//! frame into an skb and hands it straight to the driver (no UDP/IP stack,
//! no qdisc). When that skb is freed, the offset comes back on the
//! completion ring: one frame less in flight.
//!
//! As the kernel copies (or, on drivers that take pages, only reads) the
//! chunk, one chunk may be in flight many times over, so the UMEM is one
//! chunk per flow and stays in the cache. (A chunk per
//! frame in flight, 8 MiB cycled through, cost a fifth of the sender's
//! time in cache misses of that copy.)
//!
//! By hand over libc: `xdpilone` (pure Rust) is EUPL-1.2, which this
//! MIT/Apache project cannot take in, and `xsk-rs` needs the libxdp/libbpf
//! C libraries. TX alone needs no XDP program, but the kernel refuses to
//! bind a UMEM socket without both a fill and a completion ring.
//!
//! Copy mode (XDP_COPY): veth has native XDP but no zero-copy AF_XDP.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::SendOutcome;
use crate::sys::sockopt;
use crate::traffic::pacing::Budget;
use crate::traffic::{io_err, TrafficError};

/// One UMEM chunk per flow; 2048 bytes hold any frame up to a 1500-byte
/// MTU (chunks must be a power of two, 2048..=page size).
const FRAME_SIZE: usize = 2048;
/// Frames in flight at most: what the completion ring holds, so it never
/// refuses a completion (the kernel would stop sending).
const IN_FLIGHT: u32 = 4096;
/// Ring sizes must be powers of two.
const TX_RING: u32 = 2048;
const COMPLETION_RING: u32 = IN_FLIGHT;
/// Required before bind, never filled: this socket receives nothing.
const FILL_RING: u32 = 64;
/// The largest frame a chunk holds (no headroom is reserved).
pub const MAX_FRAME: usize = FRAME_SIZE;
/// How long the final flush may wait for every frame to come back.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long bind waits for a queue that a just-closed socket still holds.
const BIND_RETRY: Duration = Duration::from_secs(2);
/// How long to back off when neither the TX ring nor the kernel made progress.
const BACKOFF: Duration = Duration::from_micros(20);
/// XDP_MAX_TX_SKB_BUDGET (Linux 6.17+, not yet in libc): frames one
/// `sendto` hands to the driver in copy mode, 32 by default.
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;
/// The kernel's default of that budget (TX_BATCH_SIZE in net/xdp/xsk.c).
const DEFAULT_TX_BUDGET: usize = 32;

// What the kernel accepts, checked when compiling.
const _: () = {
    assert!(FRAME_SIZE.is_power_of_two() && FRAME_SIZE >= 2048 && FRAME_SIZE <= 4096);
    assert!(TX_RING.is_power_of_two() && COMPLETION_RING.is_power_of_two() && FILL_RING.is_power_of_two());
    assert!(COMPLETION_RING >= IN_FLIGHT, "a completion always fits");
    assert!(IN_FLIGHT >= TX_RING, "the TX ring can be filled");
};

/// A shared memory mapping, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Anonymous memory for the UMEM (page aligned, as the kernel requires).
    fn anonymous(len: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        Mapping::checked(ptr, len)
    }

    /// A ring the kernel allocated for the socket, at its page offset.
    fn ring(fd: &OwnedFd, len: usize, pgoff: u64) -> io::Result<Mapping> {
        // SAFETY: maps the kernel's ring of this socket; the length is the
        // one the kernel told us (offsets + entries), the offset selects the ring.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                pgoff as libc::off_t,
            )
        };
        Mapping::checked(ptr, len)
    }

    fn checked(ptr: *mut libc::c_void, len: usize) -> io::Result<Mapping> {
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr: NonNull::new(ptr.cast()).expect("mmap returned null"), len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `anonymous`/`ring`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// One single-producer single-consumer ring shared with the kernel:
/// producer and consumer indices run freely (wrapping u32), entries are
/// at `index & (size - 1)`.
struct Ring<T> {
    map: Mapping,
    producer: usize,
    consumer: usize,
    desc: usize,
    size: u32,
    _entry: std::marker::PhantomData<T>,
}

impl<T: Copy> Ring<T> {
    fn map(fd: &OwnedFd, off: &libc::xdp_ring_offset, size: u32, pgoff: u64) -> io::Result<Ring<T>> {
        let len = off.desc as usize + size as usize * size_of::<T>();
        let map = Mapping::ring(fd, len, pgoff)?;
        Ok(Ring {
            map,
            producer: off.producer as usize,
            consumer: off.consumer as usize,
            desc: off.desc as usize,
            size,
            _entry: std::marker::PhantomData,
        })
    }

    fn index(&self, at: usize) -> &AtomicU32 {
        // SAFETY: the kernel's offsets point at 4-byte aligned u32 indices
        // inside the mapping; both sides access them only atomically.
        unsafe { AtomicU32::from_ptr(self.map.ptr.as_ptr().add(at).cast::<u32>()) }
    }

    fn producer(&self) -> &AtomicU32 {
        self.index(self.producer)
    }

    fn consumer(&self) -> &AtomicU32 {
        self.index(self.consumer)
    }

    fn entry(&self, i: u32) -> *mut T {
        // SAFETY: the entry index is masked to the ring size, so the entry
        // lies inside the mapping (desc + size * size_of::<T>()).
        unsafe { self.map.ptr.as_ptr().add(self.desc).cast::<T>().add((i & (self.size - 1)) as usize) }
    }
}

pub struct XskTx {
    // Field order is drop order: the rings and the socket go before the UMEM.
    tx: Ring<libc::xdp_desc>,
    completion: Ring<u64>,
    fd: OwnedFd,
    umem: Mapping,
    /// Length of the frame in each chunk (one per flow).
    lens: Vec<u32>,
    /// The chunk (flow) the next descriptor points at.
    next_chunk: usize,
    /// Sent but not yet completed.
    in_flight: u32,
    /// Our copies of the indices we alone advance.
    tx_head: u32,
    completion_tail: u32,
    ifindex: i32,
}

// SAFETY: the mappings belong to this value alone; moving it to another
// thread (the sender's) is fine, and it is not shared.
unsafe impl Send for XskTx {}

impl XskTx {
    /// Opens the socket, its UMEM and rings, binds it to queue 0 of
    /// `ifindex` in copy mode (call inside the sender's namespace), and
    /// writes `frames` into the chunks, one each, once and for all.
    pub fn open(ifindex: i32, frames: &[Vec<u8>]) -> Result<XskTx, TrafficError> {
        if frames.is_empty() || frames.iter().any(|f| f.len() > MAX_FRAME || f.len() < 14) {
            return Err(TrafficError::Options(format!("AF_XDP frames must be 14..={MAX_FRAME} bytes")));
        }
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            let err = io::Error::last_os_error();
            let what = if err.raw_os_error() == Some(libc::EAFNOSUPPORT) {
                "open an AF_XDP socket (kernel built without CONFIG_XDP_SOCKETS?)"
            } else {
                "open an AF_XDP socket"
            };
            return Err(io_err(what)(err));
        }
        // SAFETY: fd is a fresh, valid descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // Whole pages: the kernel pins the UMEM page by page.
        let page = page_size();
        let umem_len = (frames.len() * FRAME_SIZE).div_ceil(page) * page;
        let umem = Mapping::anonymous(umem_len).map_err(io_err("allocate the AF_XDP UMEM"))?;
        register_umem(&fd, &umem)?;
        for (option, size, ring) in [
            (libc::XDP_UMEM_FILL_RING, FILL_RING, "fill"),
            (libc::XDP_UMEM_COMPLETION_RING, COMPLETION_RING, "completion"),
            (libc::XDP_TX_RING, TX_RING, "TX"),
        ] {
            sockopt::set(&fd, libc::SOL_XDP, option, &size)
                .map_err(io_err(format!("set up the AF_XDP {ring} ring ({size} entries)")))?;
        }
        let off: libc::xdp_mmap_offsets =
            sockopt::get(&fd, libc::SOL_XDP, libc::XDP_MMAP_OFFSETS).map_err(io_err("read the AF_XDP ring offsets"))?;
        let tx = Ring::map(&fd, &off.tx, TX_RING, libc::XDP_PGOFF_TX_RING as u64)
            .map_err(io_err("mmap the AF_XDP TX ring"))?;
        let completion = Ring::map(&fd, &off.cr, COMPLETION_RING, libc::XDP_UMEM_PGOFF_COMPLETION_RING)
            .map_err(io_err("mmap the AF_XDP completion ring"))?;
        // Every frame in flight is an skb charged to the socket's send
        // buffer until the receiver frees it; the default (~200 KB) would
        // stop the sender long before IN_FLIGHT. As root, past
        // net.core.wmem_max.
        let sndbuf = (IN_FLIGHT as usize * FRAME_SIZE) as libc::c_int;
        if sockopt::set(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &sndbuf).is_err() {
            let _ = sockopt::set(&fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &sndbuf);
        }
        let mut xsk = XskTx {
            tx,
            completion,
            fd,
            umem,
            lens: Vec::with_capacity(frames.len()),
            next_chunk: 0,
            in_flight: 0,
            tx_head: 0,
            completion_tail: 0,
            ifindex,
        };
        xsk.bind()?;
        for (chunk, frame) in frames.iter().enumerate() {
            xsk.write_frame(chunk, frame);
        }
        xsk.tx_head = xsk.tx.producer().load(Ordering::Relaxed);
        xsk.completion_tail = xsk.completion.consumer().load(Ordering::Relaxed);
        Ok(xsk)
    }

    /// Binds to queue 0 in copy mode. A socket closed just before (the
    /// previous blast's) gives the queue up only when the kernel's deferred
    /// release has run, so EBUSY is retried for a while.
    fn bind(&self) -> Result<(), TrafficError> {
        let at = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: libc::XDP_COPY,
            sxdp_ifindex: self.ifindex as u32,
            sxdp_queue_id: 0,
            sxdp_shared_umem_fd: 0,
        };
        let deadline = Instant::now() + BIND_RETRY;
        loop {
            // SAFETY: `at` is a valid sockaddr_xdp of the length passed.
            let rc = unsafe {
                libc::bind(
                    self.fd.as_raw_fd(),
                    (&at as *const libc::sockaddr_xdp).cast(),
                    size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            let why = match err.raw_os_error() {
                Some(libc::EOPNOTSUPP) => ": the driver supports no AF_XDP, not even copy mode",
                Some(libc::EBUSY) => ": another AF_XDP socket or XDP program still holds that queue",
                Some(libc::EINVAL) => ": no such queue, or the device refuses AF_XDP",
                _ => "",
            };
            return Err(io_err(format!(
                "bind the AF_XDP socket to interface {} queue 0 in copy mode{why}",
                self.ifindex
            ))(err));
        }
    }

    fn write_frame(&mut self, chunk: usize, frame: &[u8]) {
        // SAFETY: the UMEM has a chunk per frame, frame.len() <= FRAME_SIZE
        // (checked in `open`), and nothing is in flight yet.
        unsafe {
            std::ptr::copy_nonoverlapping(frame.as_ptr(), self.umem.ptr.as_ptr().add(chunk * FRAME_SIZE), frame.len());
        }
        self.lens.push(frame.len() as u32);
    }

    /// Lets one `sendto` hand up to `batch` frames to the driver, where the
    /// kernel has the option (6.17+); otherwise it stays at 32 and `kick`
    /// simply calls again.
    fn set_tx_budget(&self, batch: usize) {
        let budget = batch.clamp(DEFAULT_TX_BUDGET, TX_RING as usize) as libc::c_uint;
        if budget as usize != DEFAULT_TX_BUDGET {
            let _ = sockopt::set(&self.fd, libc::SOL_XDP, XDP_MAX_TX_SKB_BUDGET, &budget);
        }
    }

    /// Queues frames as `budget` allows, `batch` per kick.
    pub fn send(&mut self, batch: usize, budget: &mut Budget) -> Result<SendOutcome, TrafficError> {
        self.set_tx_budget(batch);
        let mut outcome = SendOutcome::default();
        while let Some(n) = budget.wait_next(batch) {
            self.reap();
            let queued = self.queue(n);
            budget.record(queued as u64);
            outcome.packets += queued as u64;
            let progressed = self.kick(&mut outcome)?;
            if queued == 0 && !progressed && self.reap() == 0 {
                // IN_FLIGHT reached, and the kernel waits for the
                // receiver to free some: let it run.
                std::thread::sleep(BACKOFF);
            }
        }
        self.flush(&mut outcome)?;
        Ok(outcome)
    }

    /// Puts up to `n` descriptors on the TX ring, the flows' chunks in
    /// turn; returns how many.
    fn queue(&mut self, n: usize) -> usize {
        let in_ring = self.tx_head.wrapping_sub(self.tx.consumer().load(Ordering::Acquire));
        let room = (TX_RING - in_ring) as usize;
        let n = n.min(room).min((IN_FLIGHT - self.in_flight) as usize);
        for i in 0..n as u32 {
            let chunk = self.next_chunk;
            self.next_chunk = (chunk + 1) % self.lens.len();
            let desc = libc::xdp_desc { addr: (chunk * FRAME_SIZE) as u64, len: self.lens[chunk], options: 0 };
            // SAFETY: the entry is between the kernel's consumer index and
            // our producer index: ours to write until we publish it.
            unsafe { self.tx.entry(self.tx_head.wrapping_add(i)).write(desc) };
        }
        self.tx_head = self.tx_head.wrapping_add(n as u32);
        self.in_flight += n as u32;
        // Release: the descriptors are visible before the kernel sees the new producer index.
        self.tx.producer().store(self.tx_head, Ordering::Release);
        n
    }

    /// Counts the frames the kernel is done with; returns how many. Which
    /// chunks they were does not matter (each flow keeps its chunk), so the
    /// entries are not read, only consumed.
    fn reap(&mut self) -> usize {
        let head = self.completion.producer().load(Ordering::Acquire);
        let n = head.wrapping_sub(self.completion_tail);
        self.completion_tail = head;
        self.in_flight = self.in_flight.saturating_sub(n);
        // Release: pairs with the kernel's read of our consumer index before it reuses entries.
        self.completion.consumer().store(head, Ordering::Release);
        n as usize
    }

    /// Has the kernel send what is on the TX ring: each `sendto` takes up to
    /// its per-call budget, so it is called again while that moves the ring
    /// on. Returns whether the kernel took anything.
    fn kick(&mut self, outcome: &mut SendOutcome) -> Result<bool, TrafficError> {
        let mut progressed = false;
        loop {
            let before = self.tx.consumer().load(Ordering::Acquire);
            if before == self.tx_head {
                return Ok(progressed);
            }
            // AF_XDP refuses blocking sends (EOPNOTSUPP): MSG_DONTWAIT is a must.
            // SAFETY: no buffer and no address: the TX ring is the data.
            let rc = unsafe {
                libc::sendto(self.fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0)
            };
            let moved = self.tx.consumer().load(Ordering::Acquire) != before;
            progressed |= moved;
            if rc >= 0 {
                continue;
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                // The per-call budget ran out (go on), or the send buffer or
                // the device is full (stop until completions free some).
                Some(libc::EAGAIN | libc::EINTR) if moved => {}
                Some(libc::EAGAIN | libc::EINTR) => return Ok(progressed),
                // The device dropped a frame (NET_XMIT_DROP, e.g. the veth
                // peer's backlog was full); its chunk still completes.
                Some(libc::EBUSY | libc::ENOBUFS) => {
                    outcome.errors += 1;
                    if !moved {
                        return Ok(progressed);
                    }
                }
                Some(libc::ENETDOWN) => {
                    return Err(io_err(format!("send on interface {} (it is down)", self.ifindex))(err))
                }
                _ => return Err(io_err("send from the AF_XDP TX ring")(err)),
            }
        }
    }

    /// Sends what is still queued and waits (bounded) until every chunk has
    /// come back, so the sink sees everything that was counted.
    fn flush(&mut self, outcome: &mut SendOutcome) -> Result<(), TrafficError> {
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        loop {
            self.kick(outcome)?;
            self.reap();
            if self.in_flight == 0 || Instant::now() >= deadline {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096).max(FRAME_SIZE)
}

/// Registers `umem` as the socket's packet buffer, cut into FRAME_SIZE chunks.
fn register_umem(fd: &OwnedFd, umem: &Mapping) -> Result<(), TrafficError> {
    let reg = libc::xdp_umem_reg {
        addr: umem.ptr.as_ptr() as u64,
        len: umem.len as u64,
        chunk_size: FRAME_SIZE as u32,
        headroom: 0,
        flags: 0,
        tx_metadata_len: 0,
    };
    sockopt::set(fd, libc::SOL_XDP, libc::XDP_UMEM_REG, &reg).map_err(|e| {
        // The UMEM's pages are pinned and charged to RLIMIT_MEMLOCK without CAP_IPC_LOCK.
        let hint = if matches!(e.raw_os_error(), Some(libc::ENOMEM | libc::EPERM)) {
            " (locked memory limit? raise RLIMIT_MEMLOCK or run as root)"
        } else {
            ""
        };
        io_err(format!("register the AF_XDP UMEM of {} bytes{hint}", umem.len))(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_abi_is_the_one_libc_describes() {
        assert_eq!(size_of::<libc::xdp_desc>(), 16);
        assert_eq!(size_of::<libc::sockaddr_xdp>(), 16);
        assert_eq!(size_of::<libc::xdp_umem_reg>(), 32);
    }
}
