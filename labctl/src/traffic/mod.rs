//! Built-in traffic: ping, UDP and TCP flows and a packet load generator,
//! run from inside the lab's namespaces with no external binaries.
//!
//! Every function takes the namespaces it works in (`&File`, from
//! [`crate::sys::netns::open`]), opens its sockets there through
//! [`crate::sys::netns::run_in`], then drives them from ordinary threads:
//! a socket keeps the namespace it was created in. Everything is bounded in
//! time and count, and sends only to the address it is given.
//!
//! - [`ping`]: ICMP echo over raw sockets, reporting TTL expiry and unreachables.
//! - [`udp_flow`], [`tcp_flow`]: one flow from a sender node to a sink node.
//! - [`send`]: crafted packets (spoofed sources, TTL, DSCP, flags) over AF_PACKET.
//! - [`blast`]: UDP load generation with `sendmmsg`, UDP GSO, an AF_PACKET TX
//!   ring or an AF_XDP socket.

mod blast;
mod checksum;
mod cpu;
mod craft;
mod flow;
mod frame;
mod icmp;
mod pacing;
mod ping;
mod sink;

use std::io;
use std::net::IpAddr;

pub use blast::{blast, BlastMode, BlastOptions, BlastReport};
pub use cpu::CpuTime;
pub use craft::{
    is_lab_address, send, tcp_flags, Crafted, Proto, SendReport, MAX_COUNT as CRAFT_MAX_COUNT,
    MAX_PAYLOAD as CRAFT_MAX_PAYLOAD,
};
pub use flow::{tcp_flow, udp_flow, FlowReport, TcpFlow, UdpFlow};
pub use ping::{ping, PingOptions, PingReport, Reply};

use crate::sys::netns::NetnsError;

#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error("cannot run in the node's network namespace: {0}")]
    Netns(#[from] NetnsError),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("invalid traffic options: {0}")]
    Options(String),
}

/// Wraps an `io::Error` with what was being done, for `map_err`.
fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> TrafficError {
    let what = what.into();
    move |source| TrafficError::Io { what, source }
}

/// Traffic goes to one host: refuse addresses that would reach many
/// (broadcast, multicast) or none (unspecified).
fn check_unicast(to: IpAddr) -> Result<(), TrafficError> {
    let ok = match to {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_broadcast() || a.is_multicast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast()),
    };
    if ok {
        Ok(())
    } else {
        Err(TrafficError::Options(format!("{to} is not a unicast address")))
    }
}

/// The longest any sender runs when it is given a count but no duration,
/// so a slow or broken path can never keep a test waiting for ever.
pub const MAX_RUN: std::time::Duration = std::time::Duration::from_secs(300);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unicast_destinations_are_accepted() {
        assert!(check_unicast("198.18.0.2".parse().unwrap()).is_ok());
        assert!(check_unicast("2001:db8::2".parse().unwrap()).is_ok());
        for bad in ["0.0.0.0", "255.255.255.255", "224.0.0.1", "::", "ff02::1"] {
            assert!(check_unicast(bad.parse().unwrap()).is_err(), "{bad}");
        }
    }
}
