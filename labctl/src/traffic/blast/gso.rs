//! Mode (c): UDP segmentation offload (GSO, `UDP_SEGMENT`). Connected UDP
//! sockets as in mode (a), but each message carries up to 64 datagrams'
//! worth of payload and the kernel cuts it into datagrams of `size` bytes:
//! the socket, UDP, IP, routing and netfilter run once per message instead
//! of once per packet. The cutting happens in software just before the
//! driver (or in the NIC, where it offers USO), so each datagram is still a
//! packet of its own on the wire. This is how QUIC stacks reach high packet
//! rates.
//!
//! A veth can carry the uncut message as one "super-packet" (its
//! tx-udp-segmentation feature); then the receiver's interface counts one
//! packet per message, and its UDP layer cuts it up for the socket. Turn
//! the feature off on the sending interface to put real packets on the veth
//! (`labctl bench-traffic` does).
//!
//! By hand over libc like mode (a): headers built once, reused every call.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::Socket;

use super::SendOutcome;
use crate::sys::sockopt;
use crate::traffic::pacing::Budget;
use crate::traffic::{io_err, TrafficError};

/// `UDP_SEGMENT` from linux/udp.h (socket option level SOL_UDP).
const UDP_SEGMENT: libc::c_int = 103;
/// The most segments per message the kernel takes on every version that
/// has UDP GSO (UDP_MAX_SEGMENTS is 64 on 4.18-5.x, 128 since).
pub const MAX_SEGMENTS: usize = 64;
/// Messages per `sendmmsg`.
const MESSAGES: usize = 8;

/// Opens one connected UDP socket per flow, each cutting its messages into
/// `size`-byte datagrams; call inside the sender's namespace.
pub fn open_flows(to: SocketAddr, sources: &[Option<IpAddr>], size: usize) -> Result<Vec<Socket>, TrafficError> {
    let sockets = super::mmsg::open_flows(to, sources)?;
    for sock in &sockets {
        sockopt::set(sock, libc::SOL_UDP, UDP_SEGMENT, &(size as libc::c_int))
            .map_err(io_err("set UDP_SEGMENT (UDP GSO needs Linux 4.18 or later)"))?;
    }
    Ok(sockets)
}

/// Datagrams per message: `batch`, at most [`MAX_SEGMENTS`], and no more
/// than fit one 64 KB UDP message.
pub fn segments_per_message(size: usize, batch: usize) -> usize {
    batch.min(MAX_SEGMENTS).min(65_000 / size.max(1)).max(1)
}

/// Sends `size`-byte datagrams round-robin over `sockets`, `segments` of
/// them per message and up to [`MESSAGES`] messages per `sendmmsg`, as long
/// as `budget` allows.
pub fn send(
    sockets: &[Socket],
    size: usize,
    segments: usize,
    budget: &mut Budget,
) -> Result<SendOutcome, TrafficError> {
    let payload = vec![0x5a_u8; size * segments];
    let mut iovs: Vec<libc::iovec> = (0..MESSAGES)
        .map(|_| libc::iovec { iov_base: payload.as_ptr() as *mut libc::c_void, iov_len: payload.len() })
        .collect();
    let mut headers = sockopt::mmsg_headers(&mut iovs);
    let mut outcome = SendOutcome::default();
    let mut next_socket = 0;
    while let Some(n) = budget.wait_next(segments * MESSAGES) {
        // Full messages, then one with the rest.
        let messages = n.div_ceil(segments).min(MESSAGES);
        let mut in_message = [0usize; MESSAGES];
        for (m, count) in in_message.iter_mut().enumerate().take(messages) {
            *count = (n - m * segments).min(segments);
            iovs[m].iov_len = *count * size;
        }
        let fd = sockets[next_socket].as_raw_fd();
        next_socket = (next_socket + 1) % sockets.len();
        // SAFETY: `headers` point at `iovs`, which point into `payload`; all
        // outlive the call, and the kernel only reads the payload.
        let sent = unsafe { libc::sendmmsg(fd, headers.as_mut_ptr(), messages as libc::c_uint, 0) };
        if sent >= 0 {
            let packets: usize = in_message[..sent as usize].iter().sum();
            budget.record(packets as u64);
            outcome.packets += packets as u64;
            continue;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::ENOBUFS | libc::EAGAIN | libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH) => {
                outcome.errors += 1;
                budget.record(in_message[0] as u64);
            }
            Some(libc::EIO) => {
                return Err(TrafficError::Io {
                    what: "sendmmsg with UDP_SEGMENT (UDP GSO needs checksum offload on the outgoing interface)".into(),
                    source: err,
                })
            }
            _ => return Err(io_err("sendmmsg with UDP_SEGMENT")(err)),
        }
    }
    // The headers hold raw pointers into `iovs`; keep both alive to here.
    drop(headers);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_stay_within_the_kernel_limits() {
        assert_eq!(segments_per_message(64, 64), 64);
        assert_eq!(segments_per_message(64, 1024), MAX_SEGMENTS);
        assert_eq!(segments_per_message(64, 8), 8);
        assert_eq!(segments_per_message(1400, 64), 46);
        assert!(segments_per_message(1472, 64) * 1472 <= 65_000);
    }
}
