//! Mode (a): ordinary connected UDP sockets, one per flow, fed 64+
//! datagrams per system call with `sendmmsg`. Goes through the whole
//! kernel UDP/IP stack and the qdisc, like real applications.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};

use super::SendOutcome;
use crate::sys::sockopt;
use crate::traffic::pacing::Budget;
use crate::traffic::{io_err, TrafficError};

/// Opens one connected socket per flow source; call inside the sender's
/// namespace. The kernel picks a distinct ephemeral port for each, which
/// is what spreads the flows over RSS/RPS queues.
pub fn open_flows(to: SocketAddr, sources: &[Option<IpAddr>]) -> Result<Vec<Socket>, TrafficError> {
    sources
        .iter()
        .map(|source| {
            let sock = Socket::new(Domain::for_address(to), Type::DGRAM, Some(Protocol::UDP))
                .map_err(io_err("open a UDP socket"))?;
            if let Some(ip) = source {
                sock.bind(&SocketAddr::new(*ip, 0).into()).map_err(io_err(format!("bind to source {ip}")))?;
            }
            sock.connect(&to.into()).map_err(io_err(format!("connect a UDP socket to {to}")))?;
            Ok(sock)
        })
        .collect()
}

/// Sends `size`-byte datagrams round-robin over `sockets`, `batch` per
/// `sendmmsg`, as long as `budget` allows.
///
/// By hand over libc: the headers are built once and reused for every
/// call (nix's `sendmmsg` rebuilds them each time, which costs more than
/// the 64-byte datagrams themselves).
pub fn send(sockets: &[Socket], size: usize, batch: usize, budget: &mut Budget) -> Result<SendOutcome, TrafficError> {
    let payload = vec![0x5a_u8; size];
    let mut iovs = vec![libc::iovec { iov_base: payload.as_ptr() as *mut libc::c_void, iov_len: size }; batch];
    let mut headers = sockopt::mmsg_headers(&mut iovs);
    let mut outcome = SendOutcome::default();
    let mut next_socket = 0;
    while let Some(n) = budget.wait_next(batch) {
        let fd = sockets[next_socket].as_raw_fd();
        next_socket = (next_socket + 1) % sockets.len();
        // SAFETY: `headers` (n <= batch of them), `iovs` and `payload` outlive the call;
        // the kernel only reads the payload.
        let sent = unsafe { libc::sendmmsg(fd, headers.as_mut_ptr(), n as libc::c_uint, 0) };
        if sent >= 0 {
            budget.record(sent as u64);
            outcome.packets += sent as u64;
            continue;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => {}
            // Queue full, or an ICMP error reported on this socket: the
            // datagram is lost, the run goes on (and stays bounded).
            Some(libc::ENOBUFS | libc::EAGAIN | libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH) => {
                outcome.errors += 1;
                budget.record(1);
            }
            _ => return Err(io_err("sendmmsg")(err)),
        }
    }
    Ok(outcome)
}
