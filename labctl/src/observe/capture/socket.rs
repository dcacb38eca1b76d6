//! The raw AF_PACKET socket behind a capture (libc; nix has no packet-socket
//! options). Everything unsafe in the capture lives here.

use std::ffi::CString;
use std::io;
use std::mem::{size_of, zeroed, MaybeUninit};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::CaptureStats;
use crate::observe::error::{ObserveError, Result};
use crate::sys::sockopt;

/// Frames larger than this (GSO super-packets up to 64 KiB, BIG TCP beyond)
/// are truncated; their `orig_len` still says how long they were.
const SNAPLEN: usize = 256 * 1024;

/// Receive buffer asked for, so a burst is not dropped while the reader sleeps.
const RCVBUF: libc::c_int = 8 * 1024 * 1024;

/// A frame as read from the socket, before it is labelled.
pub(super) struct Frame {
    pub ts_ns: u64,
    pub outgoing: bool,
    pub orig_len: u32,
    pub data: Vec<u8>,
}

pub(super) struct PacketSocket {
    fd: OwnedFd,
    buf: Box<[u8]>,
}

fn last_error(what: &str) -> ObserveError {
    ObserveError::socket(what.to_string())(io::Error::last_os_error())
}

impl PacketSocket {
    /// Opens a socket on `ifname` in the calling thread's namespace.
    pub(super) fn open(ifname: &str) -> Result<PacketSocket> {
        let no_such = || ObserveError::NoSuchInterface { ifname: ifname.into() };
        let cname = CString::new(ifname).map_err(|_| no_such())?;
        // SAFETY: plain syscalls on a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(no_such());
        }
        // Protocol 0: the socket receives nothing until bound to the
        // interface below, so no frame of another interface slips in.
        // SAFETY: socket() returns a new fd or -1.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(last_error("open an AF_PACKET socket"));
        }
        // SAFETY: `raw` is a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        // Outgoing frames are what half of a trace is; off is the default
        // but say so (the option exists since 4.20, older kernels lack it).
        match sockopt::set(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &0 as &libc::c_int) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => {}
            Err(e) => return Err(ObserveError::socket("set PACKET_IGNORE_OUTGOING")(e)),
        }
        // VLAN tags stripped by offload come back as auxiliary data.
        sockopt::set(&fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, &1 as &libc::c_int)
            .map_err(ObserveError::socket("set PACKET_AUXDATA"))?;
        sockopt::set(&fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &1 as &libc::c_int)
            .map_err(ObserveError::socket("set SO_TIMESTAMPNS"))?;
        // FORCE passes rmem_max (we are root); plain SO_RCVBUF is the fallback.
        if sockopt::set(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &RCVBUF).is_err() {
            let _ = sockopt::set(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &RCVBUF);
        }

        // SAFETY: sockaddr_ll is plain data; zero is a valid start.
        let mut addr: libc::sockaddr_ll = unsafe { zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `addr` is a valid sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(last_error(&format!("bind the capture socket to {ifname}")));
        }
        Ok(PacketSocket { fd, buf: vec![0u8; SNAPLEN].into_boxed_slice() })
    }

    /// Waits until a frame is queued or `timeout` passes.
    pub(super) fn wait_readable(&self, timeout: Duration) -> Result<()> {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as libc::c_int) };
        if rc < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return Err(last_error("poll the capture socket"));
        }
        Ok(())
    }

    /// The next queued frame, or `None` if the queue is empty right now.
    pub(super) fn try_recv(&mut self) -> Result<Option<Frame>> {
        // SAFETY (whole block): recvmsg into buffers we own, sizes given;
        // control messages are read with the CMSG_* helpers within msg_controllen.
        unsafe {
            let mut addr: libc::sockaddr_ll = zeroed();
            let mut iov = libc::iovec { iov_base: self.buf.as_mut_ptr().cast(), iov_len: self.buf.len() };
            let mut control = [MaybeUninit::<u64>::uninit(); 16]; // 128 bytes, 8-aligned
            let mut msg: libc::msghdr = zeroed();
            msg.msg_name = (&mut addr as *mut libc::sockaddr_ll).cast();
            msg.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = size_of_val(&control);

            let n = libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT | libc::MSG_TRUNC);
            if n < 0 {
                let err = io::Error::last_os_error();
                return match err.kind() {
                    io::ErrorKind::WouldBlock => Ok(None),
                    io::ErrorKind::Interrupted => self.try_recv(),
                    _ => Err(ObserveError::socket("read the capture socket")(err)),
                };
            }
            let mut orig_len = n as usize; // MSG_TRUNC: the real length
            let mut data = self.buf[..orig_len.min(self.buf.len())].to_vec();
            let mut ts_ns = None;
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                let (level, kind) = ((*cmsg).cmsg_level, (*cmsg).cmsg_type);
                let payload = libc::CMSG_DATA(cmsg);
                if level == libc::SOL_SOCKET && kind == libc::SCM_TIMESTAMPNS {
                    let ts: libc::timespec = std::ptr::read_unaligned(payload.cast());
                    ts_ns = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
                } else if level == libc::SOL_PACKET && kind == libc::PACKET_AUXDATA {
                    let aux: libc::tpacket_auxdata = std::ptr::read_unaligned(payload.cast());
                    orig_len = aux.tp_len as usize;
                    if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                        let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                            aux.tp_vlan_tpid
                        } else {
                            0x8100
                        };
                        restore_vlan_tag(&mut data, tpid, aux.tp_vlan_tci);
                        orig_len += 4;
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
            Ok(Some(Frame {
                ts_ns: ts_ns.unwrap_or_else(now_ns),
                outgoing: addr.sll_pkttype == libc::PACKET_OUTGOING,
                orig_len: orig_len as u32,
                data,
            }))
        }
    }

    /// The kernel's counters for this socket (reading them resets them).
    pub(super) fn stats(&self) -> Result<CaptureStats> {
        let stats: libc::tpacket_stats = sockopt::get(&self.fd, libc::SOL_PACKET, libc::PACKET_STATISTICS)
            .map_err(|e| ObserveError::socket("read PACKET_STATISTICS".to_string())(e))?;
        // tp_packets counts drops too.
        Ok(CaptureStats { received: (stats.tp_packets - stats.tp_drops).into(), dropped: stats.tp_drops.into() })
    }
}

/// Puts back the 802.1Q tag that VLAN offload moved into skb metadata, as
/// libpcap does, so the trace shows the frame as it was on the wire.
fn restore_vlan_tag(frame: &mut Vec<u8>, tpid: u16, tci: u16) {
    if frame.len() < 12 {
        return;
    }
    let mut tag = [0u8; 4];
    tag[..2].copy_from_slice(&tpid.to_be_bytes());
    tag[2..].copy_from_slice(&tci.to_be_bytes());
    frame.splice(12..12, tag);
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_tag_goes_after_the_macs() {
        let mut frame: Vec<u8> = (0u8..14).collect();
        restore_vlan_tag(&mut frame, 0x8100, 0x000a);
        assert_eq!(&frame[12..16], &[0x81, 0x00, 0x00, 0x0a]);
        assert_eq!(&frame[16..], &[12, 13]);
        assert_eq!(frame.len(), 18);
    }
}
