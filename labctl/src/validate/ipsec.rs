//! Checks of `ipsec { ... }` declarations: the nodes exist and are hosts,
//! the tunnel endpoints are addresses of those nodes (on the link between
//! them unless given), the protected subnets fit the mode and do not
//! overlap, and the backend can do the mode.

use std::collections::HashMap;
use std::net::IpAddr;

use super::error;
use crate::diag::{Diagnostic, Origin};
use crate::model::{Backend, Ipsec, IpsecMode, Lab, NodeKind};

pub(super) fn check(lab: &Lab, found: &mut Vec<Diagnostic>) {
    let mut pairs: HashMap<(&str, &str), &Origin> = HashMap::new();
    // One implementation per node: one charon, or the kernel's XFRM.
    let mut backends: HashMap<&str, (Backend, &Origin)> = HashMap::new();
    for ipsec in &lab.ipsec {
        let origin = &ipsec.origin;
        for node in [&ipsec.left, &ipsec.right] {
            match backends.get(node.as_str()) {
                Some((backend, first)) if *backend != ipsec.backend => found.push(error(
                    origin,
                    format!(
                        "ipsec(): {node} already uses backend = \"{backend}\" (at {}), here \"{}\"",
                        super::place(first, origin),
                        ipsec.backend
                    ),
                    "give every IPsec link of a node the same backend",
                )),
                Some(_) => {}
                None => {
                    backends.insert(node, (ipsec.backend, origin));
                }
            }
        }
        let mut nodes_ok = true;
        for (side, name) in [("left", &ipsec.left), ("right", &ipsec.right)] {
            match lab.node(name) {
                None => {
                    nodes_ok = false;
                    let names: Vec<&str> = lab.nodes.iter().map(|n| n.name.as_str()).collect();
                    found.push(error(
                        origin,
                        format!("ipsec(): {side} = {name:?} is not a node of the lab"),
                        format!("declare it with node({name:?}) first; the lab's nodes: {}", names.join(", ")),
                    ));
                }
                Some(node) if node.kind == NodeKind::Bridge => {
                    nodes_ok = false;
                    found.push(error(
                        origin,
                        format!("ipsec(): {side} = {name:?} is a bridge"),
                        "IPsec runs between nodes with addresses: a gateway node(...) or a host",
                    ));
                }
                Some(_) => {}
            }
        }
        if ipsec.left == ipsec.right {
            found.push(error(
                origin,
                format!("ipsec(): left and right are both {:?}", ipsec.left),
                "an IPsec link joins two different nodes",
            ));
            continue;
        }
        let key = if ipsec.left < ipsec.right {
            (ipsec.left.as_str(), ipsec.right.as_str())
        } else {
            (ipsec.right.as_str(), ipsec.left.as_str())
        };
        if let Some(first) = pairs.insert(key, origin) {
            found.push(error(
                origin,
                format!(
                    "ipsec(): there is already an IPsec link between {} and {} (at {})",
                    ipsec.left,
                    ipsec.right,
                    super::place(first, origin)
                ),
                "declare one ipsec { ... } per pair of nodes",
            ));
        }
        if nodes_ok {
            check_endpoints(lab, ipsec, found);
        }
        check_subnets(ipsec, found);
        if ipsec.backend == Backend::Strongswan && ipsec.mode == IpsecMode::Transport {
            found.push(error(
                origin,
                "ipsec(): the strongswan backend cannot do transport mode",
                "strongSwan's kernel-libipsec (user-space ESP) does tunnel mode only; use backend = \"kernel\" or mode = \"tunnel\"",
            ));
        }
    }
}

fn addresses_of(lab: &Lab, node: &str) -> Vec<IpAddr> {
    lab.endpoints_of(node).flat_map(|e| e.addresses.iter().map(|a| a.addr())).collect()
}

fn check_endpoints(lab: &Lab, ipsec: &Ipsec, found: &mut Vec<Diagnostic>) {
    let origin = &ipsec.origin;
    let mut given_ok = true;
    for (side, node, given) in [("left", &ipsec.left, ipsec.left_address), ("right", &ipsec.right, ipsec.right_address)]
    {
        if let Some(address) = given {
            let own = addresses_of(lab, node);
            if !own.contains(&address) {
                given_ok = false;
                let list: Vec<String> = own.iter().map(|a| a.to_string()).collect();
                found.push(error(
                    origin,
                    format!("ipsec(): {side}_address {address} is not an address of {node}"),
                    if list.is_empty() {
                        format!("{node} has no addresses; give it one with link(...)")
                    } else {
                        format!("{node}'s addresses: {}", list.join(", "))
                    },
                ));
            }
        }
    }
    if !given_ok {
        return;
    }
    match ipsec.outer_addresses(lab) {
        None => found.push(error(
            origin,
            format!(
                "ipsec(): {} and {} have no addresses on a common link, so the tunnel endpoints are unknown",
                ipsec.left, ipsec.right
            ),
            format!(
                "give them: left_address = \"...\" (an address of {}), right_address = \"...\" (one of {})",
                ipsec.left, ipsec.right
            ),
        )),
        Some((l, r)) if l.is_ipv4() != r.is_ipv4() => found.push(error(
            origin,
            format!("ipsec(): the endpoints {l} and {r} are of different IP families"),
            "give a left_address and a right_address of the same family",
        )),
        Some(_) => {}
    }
}

fn check_subnets(ipsec: &Ipsec, found: &mut Vec<Diagnostic>) {
    let origin = &ipsec.origin;
    match (ipsec.mode, ipsec.left_subnet, ipsec.right_subnet) {
        (IpsecMode::Transport, None, None) => {}
        (IpsecMode::Transport, _, _) => found.push(error(
            origin,
            "ipsec(): transport mode protects the traffic between the two nodes themselves; it takes no subnets",
            "remove left_subnet and right_subnet, or use mode = \"tunnel\"",
        )),
        (IpsecMode::Tunnel, Some(l), Some(r)) => {
            if l.addr().is_ipv4() != r.addr().is_ipv4() {
                found.push(error(
                    origin,
                    format!("ipsec(): left_subnet {l} and right_subnet {r} are of different IP families"),
                    "protect subnets of one family per ipsec { ... }",
                ));
            } else if l.contains(&r) || r.contains(&l) {
                found.push(error(
                    origin,
                    format!("ipsec(): left_subnet {l} and right_subnet {r} overlap"),
                    "the two sides of a tunnel need distinct subnets, e.g. 198.19.10.0/24 and 198.19.20.0/24",
                ));
            }
        }
        (IpsecMode::Tunnel, _, _) => found.push(error(
            origin,
            "ipsec(): tunnel mode needs left_subnet and right_subnet (the networks behind each gateway)",
            r#"write left_subnet = "198.19.10.0/24", right_subnet = "198.19.20.0/24", or mode = "transport" between two hosts"#,
        )),
    }
}
