//! Static neighbours: permanent ARP/NDP entries, `h1:neighbour("eth0",
//! "198.18.0.2", "02:00:00:00:00:02")` (the MAC may be left out for an
//! address of the lab: the owner's derived MAC), and `lab {
//! static_neighbours = true }` for every address on every connected subnet
//! (Mininet's autoStaticArp). Plan turns them into [`crate::plan::Step::AddNeighbour`].

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Lab, MacAddr};
use crate::diag::Origin;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    pub ifname: String,
    pub address: IpAddr,
    /// Given in the script; otherwise the MAC of the lab interface that has `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    pub origin: Origin,
}

/// One permanent entry: on `node`'s `ifname`, `address` is at `mac`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NeighbourEntry {
    pub node: String,
    pub ifname: String,
    pub address: IpAddr,
    pub mac: MacAddr,
}

impl Lab {
    /// The MAC of the lab interface that has `address`, if one has.
    pub fn mac_of_address(&self, address: IpAddr) -> Option<MacAddr> {
        let end =
            self.links.iter().flat_map(|l| l.ends.iter()).find(|e| e.addresses.iter().any(|a| a.addr() == address))?;
        Some(self.mac_of(end))
    }

    /// Every permanent entry the lab asks for: each node's own
    /// `neighbour(...)` calls, then (with `static_neighbours`) one for every
    /// other lab address on a subnet of each interface. Each (node,
    /// interface, address) once; a declared entry wins.
    pub fn neighbour_entries(&self) -> Vec<NeighbourEntry> {
        let mut entries: Vec<NeighbourEntry> = Vec::new();
        let mut push = |entry: NeighbourEntry| {
            let same =
                |e: &NeighbourEntry| e.node == entry.node && e.ifname == entry.ifname && e.address == entry.address;
            if !entries.iter().any(same) {
                entries.push(entry);
            }
        };
        for node in &self.nodes {
            for n in &node.neighbours {
                if let Some(mac) = n.mac.or_else(|| self.mac_of_address(n.address)) {
                    push(NeighbourEntry { node: node.name.clone(), ifname: n.ifname.clone(), address: n.address, mac });
                }
            }
        }
        if !self.static_neighbours {
            return entries;
        }
        let ends: Vec<_> = self.links.iter().flat_map(|l| l.ends.iter()).collect();
        for end in &ends {
            for net in &end.addresses {
                for other in ends.iter().filter(|o| !(o.node == end.node && o.ifname == end.ifname)) {
                    for address in other.addresses.iter().map(|a| a.addr()) {
                        let link_local = matches!(address, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80);
                        if net.contains(&address) && !link_local && net.addr() != address {
                            push(NeighbourEntry {
                                node: end.node.clone(),
                                ifname: end.ifname.clone(),
                                address,
                                mac: self.mac_of(other),
                            });
                        }
                    }
                }
            }
        }
        entries
    }
}
