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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, Link, Node, NodeKind};

    fn node(name: &str) -> Node {
        Node {
            name: name.into(),
            kind: NodeKind::Host,
            forwarding: false,
            routes: vec![],
            sysctls: vec![],
            tunings: vec![],
            neighbours: vec![],
            cpu_percent: None,
            routing: Default::default(),
            devices: Default::default(),
            origin: Origin::new("t.lua", 1),
        }
    }

    fn end(node: &str, addresses: &[&str]) -> Endpoint {
        Endpoint {
            node: node.into(),
            ifname: "eth0".into(),
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            mac: None,
        }
    }

    /// a -- b on 198.18.0.0/24 and 2001:db8::/64; c -- d on another subnet.
    fn lab(static_neighbours: bool) -> Lab {
        let link = |x, y| Link { ends: [x, y], mtu: None, queues: None, origin: Origin::new("t.lua", 2) };
        Lab {
            name: "n".into(),
            description: None,
            file: "t.lua".into(),
            nodes: ["a", "b", "c", "d"].map(node).to_vec(),
            links: vec![
                link(end("a", &["198.18.0.1/24", "2001:db8::1/64"]), end("b", &["198.18.0.2/24", "2001:db8::2/64"])),
                link(end("c", &["198.18.1.1/24"]), end("d", &["198.18.1.2/24"])),
            ],
            experiments: vec![],
            ipsec: vec![],
            xdp: vec![],
            params: vec![],
            nics: vec![],
            sriov: vec![],
            exclusive: false,
            impairments: vec![],
            static_neighbours,
        }
    }

    #[test]
    fn static_neighbours_cover_every_address_on_each_connected_subnet() {
        let lab = lab(true);
        let entries = lab.neighbour_entries();
        let of = |node: &str| -> Vec<String> {
            entries.iter().filter(|e| e.node == node).map(|e| e.address.to_string()).collect()
        };
        assert_eq!(of("a"), ["198.18.0.2", "2001:db8::2"]);
        assert_eq!(of("d"), ["198.18.1.1"]);
        let b_mac = lab.mac_of(&lab.links[0].ends[1]);
        assert!(entries.iter().filter(|e| e.node == "a").all(|e| e.mac == b_mac));
        assert_eq!(entries.len(), 6);
    }

    #[test]
    fn a_declared_entry_wins_and_a_missing_mac_is_the_owners() {
        let mut lab = lab(true);
        let given = MacAddr([2, 0, 0, 0, 0, 0x22]);
        let origin = Origin::new("t.lua", 3);
        lab.nodes[0].neighbours = vec![
            Neighbour {
                ifname: "eth0".into(),
                address: "198.18.0.2".parse().unwrap(),
                mac: Some(given),
                origin: origin.clone(),
            },
            Neighbour { ifname: "eth0".into(), address: "2001:db8::2".parse().unwrap(), mac: None, origin },
        ];
        let entries = lab.neighbour_entries();
        let a: Vec<_> = entries.iter().filter(|e| e.node == "a").collect();
        assert_eq!(a.len(), 2, "each address once: {a:?}");
        assert_eq!(a[0].mac, given);
        assert_eq!(a[1].mac, lab.mac_of(&lab.links[0].ends[1]));
        lab.static_neighbours = false;
        assert_eq!(lab.neighbour_entries().len(), 2, "only the declared ones without the switch");
    }
}
