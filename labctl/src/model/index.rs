//! Lookups by name over a whole lab, built once in one pass.
//!
//! [`Lab::node`](super::Lab::node) and [`Lab::endpoints_of`](super::Lab::endpoints_of)
//! walk every node or link: fine for one question, quadratic when asked
//! for every node of a 10,000-node lab (validation, the plan, the
//! interface table). Code that asks per node builds a [`LabIndex`] first.

use std::collections::HashMap;

use ipnet::IpNet;

use super::{Endpoint, Lab, Link, NicClaim, Node};

pub struct LabIndex<'a> {
    lab: &'a Lab,
    /// Node name -> position in `lab.nodes` (the first, if declared twice).
    nodes: HashMap<&'a str, usize>,
    /// Node name -> (link position, end 0 or 1), in declaration order.
    ends: HashMap<&'a str, Vec<(usize, usize)>>,
    nics: HashMap<&'a str, Vec<usize>>,
}

impl<'a> LabIndex<'a> {
    pub fn new(lab: &'a Lab) -> Self {
        let mut nodes = HashMap::with_capacity(lab.nodes.len());
        for (i, node) in lab.nodes.iter().enumerate() {
            nodes.entry(node.name.as_str()).or_insert(i);
        }
        let mut ends: HashMap<&str, Vec<(usize, usize)>> = HashMap::with_capacity(lab.nodes.len());
        for (i, link) in lab.links.iter().enumerate() {
            for (side, end) in link.ends.iter().enumerate() {
                ends.entry(end.node.as_str()).or_default().push((i, side));
            }
        }
        let mut nics: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, nic) in lab.nics.iter().enumerate() {
            nics.entry(nic.node.as_str()).or_default().push(i);
        }
        LabIndex { lab, nodes, ends, nics }
    }

    pub fn lab(&self) -> &'a Lab {
        self.lab
    }

    /// The node named `name`, as [`Lab::node`] finds it.
    pub fn node(&self, name: &str) -> Option<&'a Node> {
        let lab = self.lab;
        self.nodes.get(name).map(|&i| &lab.nodes[i])
    }

    /// Each link with an end in `node`, and which end (0 or 1), in declaration order.
    pub fn links_of(&self, node: &str) -> impl Iterator<Item = (&'a Link, usize)> + '_ {
        let lab = self.lab;
        self.ends.get(node).into_iter().flatten().map(move |&(i, side)| (&lab.links[i], side))
    }

    /// What [`Lab::endpoints_of`] returns, without walking every link.
    pub fn endpoints_of(&self, node: &str) -> impl Iterator<Item = &'a Endpoint> + '_ {
        self.links_of(node).map(|(link, side)| &link.ends[side])
    }

    /// What [`Lab::nics_of`] returns.
    pub fn nics_of(&self, node: &str) -> impl Iterator<Item = &'a NicClaim> + '_ {
        let lab = self.lab;
        self.nics.get(node).into_iter().flatten().map(move |&i| &lab.nics[i])
    }

    /// What [`Lab::addresses_of`] returns: link ends first, then claimed
    /// devices, then VLAN sub-interfaces.
    pub fn addresses_of(&self, node: &str) -> impl Iterator<Item = IpNet> + '_ {
        let links = self.endpoints_of(node).flat_map(|e| e.addresses.iter().copied());
        let vlans =
            self.node(node).into_iter().flat_map(|n| n.devices.vlans.iter().flat_map(|v| v.addresses.iter().copied()));
        links.chain(self.nics_of(node).flat_map(|n| n.addresses.iter().copied())).chain(vlans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Origin;

    fn node(name: &str) -> Node {
        let origin = Origin::new("t.lua", 1);
        serde_json::from_value(serde_json::json!({
            "name": name, "kind": "host", "forwarding": false, "routes": [], "sysctls": [], "origin": origin,
        }))
        .expect("a minimal node")
    }

    fn end(node: &str, ifname: &str, address: Option<&str>) -> Endpoint {
        Endpoint {
            node: node.into(),
            ifname: ifname.into(),
            addresses: address.into_iter().map(|a| a.parse().unwrap()).collect(),
            mac: None,
        }
    }

    #[test]
    fn answers_as_the_lab_does() {
        let link = |a, b| Link { ends: [a, b], mtu: None, queues: None, origin: Origin::new("t.lua", 2) };
        // Through serde, so fields added to Lab later (all defaulted) need no change here.
        let mut lab: Lab = serde_json::from_value(serde_json::json!({
            "name": "t", "description": null, "file": "t.lua", "nodes": [], "links": [], "experiments": [],
        }))
        .expect("a minimal lab");
        lab.nodes = vec![node("a"), node("b"), node("c")];
        lab.links = vec![
            link(end("a", "eth0", Some("198.18.0.1/24")), end("b", "eth0", Some("198.18.0.2/24"))),
            link(end("c", "eth0", None), end("a", "eth1", Some("198.18.1.1/24"))),
        ];
        let index = LabIndex::new(&lab);
        for name in ["a", "b", "c", "nope"] {
            assert_eq!(index.node(name), lab.node(name));
            assert_eq!(index.endpoints_of(name).collect::<Vec<_>>(), lab.endpoints_of(name).collect::<Vec<_>>());
            assert_eq!(index.addresses_of(name).collect::<Vec<_>>(), lab.addresses_of(name).collect::<Vec<_>>());
        }
        assert_eq!(index.links_of("a").map(|(_, side)| side).collect::<Vec<_>>(), vec![0, 1]);
    }
}
