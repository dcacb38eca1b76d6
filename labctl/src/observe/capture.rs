//! Packet capture inside a node: an AF_PACKET socket bound to one interface
//! of the node's namespace, read by a background thread until [`Capture::stop`].
//!
//! The socket is opened on a thread inside the namespace (an AF_PACKET socket
//! belongs to the namespace it was created in and binds by ifindex there);
//! the file descriptor stays valid on any thread afterwards. No tcpdump.

mod socket;
mod stamps;

use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::observe::error::{ObserveError, Result};
use crate::sys::netns::run_in;
use socket::PacketSocket;
pub use stamps::wait_for_kernel_timestamps;

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packet {
    /// Where it was captured: the interface name, or the label given with
    /// [`Capture::labelled`] (labctl uses `node:ifname`).
    pub ifname: String,
    /// Kernel receive timestamp, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Sent by this interface (PACKET_OUTGOING); otherwise received.
    pub outgoing: bool,
    /// Length on the wire; larger than `data.len()` only if the frame was
    /// bigger than the capture buffer (a GSO super-packet, say).
    pub orig_len: u32,
    /// The frame from the Ethernet header on, with a stripped VLAN tag put back.
    pub data: Vec<u8>,
}

/// What the kernel counted for the socket (PACKET_STATISTICS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureStats {
    /// Frames that reached the socket.
    pub received: u64,
    /// Frames dropped because the socket's receive buffer was full.
    pub dropped: u64,
}

/// A capture in progress.
pub struct Capture {
    label: String,
    stop: Arc<AtomicBool>,
    reader: JoinHandle<Result<(Vec<socket::Frame>, CaptureStats)>>,
}

/// How often the reader looks at the stop flag while the interface is quiet.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

impl Capture {
    /// Starts capturing both directions of `ifname` in the namespace behind
    /// `netns`. Frames are seen from the moment this returns.
    pub fn start(netns: &File, ifname: &str) -> Result<Capture> {
        let socket = run_in(netns, || PacketSocket::open(ifname))??;
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("capture-{ifname}"))
                .spawn(move || read_until_stopped(socket, &stop))
                .map_err(ObserveError::socket("start the capture thread"))?
        };
        Ok(Capture { label: ifname.to_string(), stop, reader })
    }

    /// Names the capture point in the packets' `ifname`, e.g. `h1:eth0`.
    pub fn labelled(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// Stops and returns every frame queued before the call, oldest first.
    pub fn stop(self) -> Result<Vec<Packet>> {
        Ok(self.stop_with_stats()?.0)
    }

    /// Like [`Capture::stop`], with the kernel's count of frames the socket
    /// dropped (non-zero means the trace is incomplete).
    pub fn stop_with_stats(self) -> Result<(Vec<Packet>, CaptureStats)> {
        self.stop.store(true, Ordering::Release);
        let (frames, stats) = self.reader.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        let packets = frames
            .into_iter()
            .map(|f| Packet {
                ifname: self.label.clone(),
                ts_ns: f.ts_ns,
                outgoing: f.outgoing,
                orig_len: f.orig_len,
                data: f.data,
            })
            .collect();
        Ok((packets, stats))
    }
}

/// Reads until told to stop, then drains what is still queued: a frame the
/// kernel queued before `stop` was called is never lost to the poll timeout.
fn read_until_stopped(mut socket: PacketSocket, stop: &AtomicBool) -> Result<(Vec<socket::Frame>, CaptureStats)> {
    let mut frames = Vec::new();
    loop {
        let stopping = stop.load(Ordering::Acquire);
        if !stopping {
            socket.wait_readable(POLL_INTERVAL)?;
        }
        while let Some(frame) = socket.try_recv()? {
            frames.push(frame);
        }
        if stopping {
            break;
        }
    }
    let stats = socket.stats()?;
    Ok((frames, stats))
}
