//! Kernel packet timestamps for captures that start right before the
//! traffic they are meant to see.
//!
//! Capture sockets ask the kernel to timestamp packets (SO_TIMESTAMPNS). When
//! nothing else on the machine does, the kernel switches timestamping on a
//! moment later, from a workqueue (`net_enable_timestamp` defers the static
//! key flip). A packet that passes before then is stamped only when the
//! capture thread reads it, so the packets of two capture points could be
//! merged out of order: it happened in about one capture in ten started
//! right before a ping, more on a busy machine.

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::sys::sockopt;

/// Waits, at most about a second, until a datagram sent over a loopback is
/// stamped when it is sent, not when it is read. Call it once the capture
/// sockets are open (they are what keeps timestamping on). The probe runs
/// in a scratch namespace of its own, since the switch is machine-wide: its
/// datagrams show up in no node's counters. Best effort: if timestamps
/// never come, the capture goes on anyway.
pub fn wait_for_kernel_timestamps() {
    let _ = crate::sys::netns::in_scratch(probe);
}

fn probe() -> io::Result<()> {
    let rx = UdpSocket::bind("127.0.0.1:0")?;
    sockopt::set(&rx, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &(1 as libc::c_int))?;
    rx.set_read_timeout(Some(Duration::from_millis(100)))?;
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    tx.connect(rx.local_addr()?)?;
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        let sent = now_ns();
        tx.send(b"t")?;
        // Read late on purpose: a datagram stamped on reading shows the delay.
        std::thread::sleep(Duration::from_millis(1));
        if let Some(stamped) = received_at(&rx)? {
            if stamped < sent + 500_000 {
                return Ok(());
            }
        }
    }
    Ok(())
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Reads one datagram and returns its SCM_TIMESTAMPNS, if it had one.
fn received_at(sock: &UdpSocket) -> io::Result<Option<u64>> {
    let mut buf = [0u8; 16];
    let mut control = [0u64; 16]; // u64 for cmsghdr alignment
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: the msghdr points at live local buffers of the stated sizes;
    // the CMSG macros stay within msg_controllen.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        if libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                return Ok(Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        Ok(None)
    }
}
