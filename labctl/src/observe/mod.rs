//! Observe: what a running lab did, read from the kernel inside each node.
//!
//! - [`counters`]: link stats64, per-namespace SNMP/netstat, softnet and
//!   softirq per CPU, neighbour and route tables, qdisc stats, and [`Delta`]
//!   to keep only what an experiment moved.
//! - [`interfaces`]: a namespace's interfaces with MAC, MTU, state and addresses.
//! - [`capture`]: AF_PACKET captures inside a node's namespace.
//! - [`pcapng`]: captured packets to (and from) a pcapng file for Wireshark.
//! - [`normalize`]: captured packets as deterministic one-line text for snapshots.
//!
//! Everything namespace-specific takes the namespace as an open file (see
//! [`crate::sys::netns::open`]) and does its kernel access on a short-lived
//! thread inside it, so the caller's thread never moves.

pub mod capture;
pub mod counters;
mod error;
pub mod interfaces;
pub(crate) mod netlink;
pub mod normalize;
pub mod pcapng;
pub mod xdp;

pub use capture::{Capture, CaptureStats, Packet};
pub use counters::Delta;
pub use error::{ObserveError, Result};
