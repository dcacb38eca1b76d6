//! The IPsec steps of a plan: one [`Step::StartIpsec`] per node that is on
//! an IPsec link, in the order the nodes first appear in `ipsec { ... }`
//! declarations, right sides (responders) first so that an initiator never
//! talks to a peer that is not listening yet.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::Step;
use crate::model::ipsec::derive;
use crate::model::{layout, Backend, Cipher, IpsecMode, Lab};

/// One IPsec link as seen from one of its nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpsecTunnel {
    /// Connection name, the same on both sides: `<left>-<right>`.
    pub name: String,
    pub peer: String,
    /// The left side starts the IKE negotiation.
    pub initiator: bool,
    pub local: IpAddr,
    pub remote: IpAddr,
    /// Protected subnets; `None` in transport mode (the two addresses).
    pub local_subnet: Option<IpNet>,
    pub remote_subnet: Option<IpNet>,
    pub mode: IpsecMode,
    pub cipher: Cipher,
    /// Pre-shared key (IKE); the kernel backend derives its ESP keys from it.
    pub psk: String,
    /// SPIs of the kernel backend's SAs, derived from the lab so runs repeat.
    pub spi_out: u32,
    pub spi_in: u32,
    pub reqid: u32,
}

impl IpsecTunnel {
    /// Traffic selectors: the subnets, or the two hosts in transport mode.
    pub fn selectors(&self) -> (IpNet, IpNet) {
        let host = |a: IpAddr| IpNet::from(a);
        (self.local_subnet.unwrap_or_else(|| host(self.local)), self.remote_subnet.unwrap_or_else(|| host(self.remote)))
    }
}

/// A deterministic SPI for the direction `from` -> `to` of a link: never
/// below 0x100 (reserved), the same on every run.
fn spi(lab: &str, left: &str, right: &str, from: &str, to: &str) -> u32 {
    let h = derive(&["spi", lab, left, right, from, to]);
    u32::from_be_bytes([h[0], h[1], h[2], h[3]]) | 0x1000_0000
}

pub(super) fn steps(lab: &Lab) -> Vec<Step> {
    let mut order: Vec<&str> = Vec::new();
    for ipsec in &lab.ipsec {
        for node in [&ipsec.right, &ipsec.left] {
            if !order.contains(&node.as_str()) {
                order.push(node);
            }
        }
    }
    order
        .into_iter()
        .map(|node| {
            let mut backend = Backend::Auto;
            let mut tunnels = Vec::new();
            for (i, ipsec) in lab.ipsec.iter().enumerate() {
                let initiator = ipsec.left == node;
                if !initiator && ipsec.right != node {
                    continue;
                }
                backend = ipsec.backend;
                let (left, right) = ipsec.outer_addresses(lab).expect("validated: the endpoints are known");
                let (l, r) = (ipsec.left.as_str(), ipsec.right.as_str());
                let (spi_lr, spi_rl) = (spi(&lab.name, l, r, l, r), spi(&lab.name, l, r, r, l));
                let peer = if initiator { r } else { l };
                let (local, remote, local_subnet, remote_subnet, spi_out, spi_in) = if initiator {
                    (left, right, ipsec.left_subnet, ipsec.right_subnet, spi_lr, spi_rl)
                } else {
                    (right, left, ipsec.right_subnet, ipsec.left_subnet, spi_rl, spi_lr)
                };
                tunnels.push(IpsecTunnel {
                    name: format!("{l}-{r}"),
                    peer: peer.to_string(),
                    initiator,
                    local,
                    remote,
                    local_subnet,
                    remote_subnet,
                    mode: ipsec.mode,
                    cipher: ipsec.cipher,
                    psk: ipsec.psk(&lab.name),
                    spi_out,
                    spi_in,
                    reqid: i as u32 + 1,
                });
            }
            Step::StartIpsec { node: node.to_string(), backend, dir: layout::ipsec_state_dir(&lab.name, node), tunnels }
        })
        .collect()
}

/// `gw1: ipsec (backend auto) tunnel to gw2: 198.18.1.1 <-> 198.18.2.1, 198.19.10.0/24 <-> 198.19.20.0/24, aes-gcm-128, initiator`
pub(super) fn describe(
    f: &mut fmt::Formatter<'_>,
    node: &str,
    backend: Backend,
    tunnels: &[IpsecTunnel],
) -> fmt::Result {
    write!(f, "{node}: ipsec start (backend {backend})")?;
    for (i, t) in tunnels.iter().enumerate() {
        let sep = if i == 0 { "" } else { ";" };
        write!(f, "{sep} {} to {}: {} <-> {}", t.mode, t.peer, t.local, t.remote)?;
        if let (Some(l), Some(r)) = (t.local_subnet, t.remote_subnet) {
            write!(f, ", {l} <-> {r}")?;
        }
        write!(f, ", {}, {}", t.cipher, if t.initiator { "initiator" } else { "responder" })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lab read from a script, so the test does not depend on the model's fields.
    fn lab() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.lua");
        std::fs::write(
            &file,
            r#"local gw1, gw2 = node("gw1"), node("gw2")
               link(gw1, gw2, { "198.18.1.1/24", "198.18.1.2/24" })
               ipsec { left = gw1, right = gw2, left_subnet = "198.19.10.0/24", right_subnet = "198.19.20.0/24" }"#,
        )
        .unwrap();
        let script = crate::script::load(&file).unwrap_or_else(|e| panic!("{e}"));
        script.lab
    }

    #[test]
    fn responder_first_endpoints_from_the_common_link_mirrored_spis() {
        let lab = lab();
        let steps = steps(&lab);
        let nodes: Vec<&str> = steps.iter().map(|s| s.node()).collect();
        assert_eq!(nodes, ["gw2", "gw1"], "the responder is started first");
        let tunnel = |i: usize| match &steps[i] {
            Step::StartIpsec { tunnels, dir, .. } => {
                assert!(dir.ends_with(format!("t/ipsec/{}", nodes[i])));
                tunnels[0].clone()
            }
            other => panic!("{other:?}"),
        };
        let (right, left) = (tunnel(0), tunnel(1));
        assert!(left.initiator && !right.initiator);
        assert_eq!((left.local.to_string(), left.remote.to_string()), ("198.18.1.1".into(), "198.18.1.2".into()));
        assert_eq!((left.spi_out, left.spi_in), (right.spi_in, right.spi_out));
        assert_eq!(left.psk, right.psk);
        assert_eq!(left.remote_subnet, right.local_subnet);
        assert_eq!(steps, super::steps(&lab), "the same lab gives the same steps (keys, SPIs)");
    }
}
