//! `setsockopt`/`getsockopt` for the options socket2 has no method for
//! (ICMP filters, IPV6_RECVHOPLIMIT, SO_RCVBUFFORCE, PACKET_*, TCP_INFO).
//! Written by hand: each is one plain-old-data value, so a generic wrapper
//! over libc is all that is needed.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsFd, AsRawFd};

/// Sets a socket option whose value is the plain-old-data `value`.
pub fn set<T: Copy>(sock: &impl AsFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live, initialized T of the size we pass.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_fd().as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads a socket option into a zeroed T (the kernel may fill less of it).
pub fn get<T: Copy>(sock: &impl AsFd, level: libc::c_int, name: libc::c_int) -> io::Result<T> {
    let mut value = MaybeUninit::<T>::zeroed();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: the buffer is size_of::<T>() bytes; only POD types are used here.
    let rc = unsafe { libc::getsockopt(sock.as_fd().as_raw_fd(), level, name, value.as_mut_ptr().cast(), &mut len) };
    if rc == 0 {
        // SAFETY: zero-initialized and then (partly) written by the kernel.
        Ok(unsafe { value.assume_init() })
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A large receive buffer, past `net.core.rmem_max` when running as root,
/// so a sink measures the path and not its own socket queue.
pub fn grow_receive_buffer(sock: &socket2::Socket, bytes: usize) {
    let forced = set(sock, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &(bytes as libc::c_int));
    if forced.is_err() {
        let _ = sock.set_recv_buffer_size(bytes);
    }
}

/// One `mmsghdr` per iovec, each pointing at it, for `sendmmsg`/`recvmmsg`:
/// no address (connected or bound sockets), no control data. The iovecs
/// must stay where they are for as long as the headers are used.
pub fn mmsg_headers(iovs: &mut [libc::iovec]) -> Vec<libc::mmsghdr> {
    iovs.iter_mut()
        .map(|iov| {
            // SAFETY: an all-zero mmsghdr is valid: no name, no control.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect()
}
