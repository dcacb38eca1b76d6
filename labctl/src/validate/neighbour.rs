//! Checks of `h1:neighbour(ifname, address, mac)`: the interface is one of
//! the node's link ends, the address is on one of its subnets and not its
//! own, and without a MAC the address is some lab interface's.

use std::net::IpAddr;

use super::error;
use crate::diag::Diagnostic;
use crate::model::{Lab, Node};

pub(super) fn check(lab: &Lab, node: &Node, found: &mut Vec<Diagnostic>) {
    for n in &node.neighbours {
        let Some(end) = lab.endpoints_of(&node.name).find(|e| e.ifname == n.ifname) else {
            let names = lab.interface_names(&node.name);
            found.push(error(
                &n.origin,
                format!("neighbour(): node {} has no interface {:?}", node.name, n.ifname),
                if names.is_empty() {
                    "the node has no links yet".to_string()
                } else {
                    format!("its interfaces: {}", names.join(", "))
                },
            ));
            continue;
        };
        let here = format!("{}:{}", node.name, n.ifname);
        let link_local = matches!(n.address, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80);
        let has_v6 = end.addresses.iter().any(|a| a.addr().is_ipv6());
        let on_subnet = end.addresses.iter().any(|a| a.contains(&n.address)) || (link_local && has_v6);
        if end.addresses.iter().any(|a| a.addr() == n.address) {
            found.push(error(
                &n.origin,
                format!("neighbour(): {} is {here}'s own address", n.address),
                "a neighbour entry is for another host on the link",
            ));
        } else if !on_subnet {
            let subnets: Vec<String> = end.addresses.iter().map(|a| a.trunc().to_string()).collect();
            found.push(error(
                &n.origin,
                format!("neighbour(): {} is not on a subnet of {here}", n.address),
                if subnets.is_empty() {
                    format!("{here} has no addresses; give it one in link(...)")
                } else {
                    format!("{here} is on {}; pick an address there", subnets.join(", "))
                },
            ));
        } else if n.mac.is_none() && lab.mac_of_address(n.address).is_none() {
            found.push(error(
                &n.origin,
                format!("neighbour(): no interface of the lab has {}, so its MAC is unknown", n.address),
                format!(
                    "give the MAC: {}:neighbour({:?}, \"{}\", \"02:00:00:00:00:02\")",
                    node.name, n.ifname, n.address
                ),
            ));
        }
    }
}
