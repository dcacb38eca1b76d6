//! Checks of VRFs, VLANs, bridge and port options (model/l2.rs): the
//! interfaces they name exist on the node, names are free and short, VLAN
//! settings only where the bridge filters VLANs. (Whether this kernel has
//! VRF and 802.1Q is found out by apply's preflight, still before anything
//! is created.)

use std::collections::{HashMap, HashSet};

use ipnet::IpNet;

use super::{error, place, MAX_IFNAME};
use crate::diag::{Diagnostic, Origin};
use crate::model::{Lab, Node, NodeKind, BRIDGE_DEVICE};

/// Every interface name `node` will have: link ends, claimed devices,
/// VLANs, VRFs, and `br0` on a bridge.
pub(super) fn interface_names(lab: &Lab, node: &Node) -> Vec<String> {
    let mut names = lab.interface_names(&node.name);
    names.extend(lab.nics_of(&node.name).map(|n| n.ifname.clone()));
    names.extend(node.devices.vlans.iter().map(|v| v.name.clone()));
    names.extend(node.devices.vrfs.iter().map(|v| v.name.clone()));
    if node.kind == NodeKind::Bridge {
        names.push(BRIDGE_DEVICE.into());
    }
    names
}

pub(super) fn names_help(names: &[String]) -> String {
    if names.is_empty() {
        "the node has no interfaces yet; add a link first".into()
    } else {
        format!("its interfaces: {}", names.join(", "))
    }
}

/// The addresses on one interface of a node (link end, claimed device or VLAN).
pub(super) fn addresses_on(lab: &Lab, node: &str, ifname: &str) -> Vec<IpNet> {
    let ends = lab.endpoints_of(node).filter(|e| e.ifname == ifname).flat_map(|e| e.addresses.iter().copied());
    let nics = lab.nics_of(node).filter(|n| n.ifname == ifname).flat_map(|n| n.addresses.iter().copied());
    let vlans = lab
        .node(node)
        .into_iter()
        .flat_map(|n| n.devices.vlans.iter())
        .filter(|v| v.name == ifname)
        .flat_map(|v| v.addresses.iter().copied());
    ends.chain(nics).chain(vlans).collect()
}

pub(super) fn check(lab: &Lab, node: &Node, found: &mut Vec<Diagnostic>) {
    check_vlans(lab, node, found);
    check_vrfs(lab, node, found);
    check_bridge(lab, node, found);
}

fn check_name(
    name: &str,
    call: &str,
    origin: &Origin,
    taken: &mut HashMap<String, Origin>,
    found: &mut Vec<Diagnostic>,
) {
    if name.is_empty() || name.len() > MAX_IFNAME || name.contains(['/', ' ', ':']) {
        found.push(error(
            origin,
            format!("{call}(): {name:?} is not a valid interface name"),
            format!("use at most {MAX_IFNAME} characters, without '/', ':' or spaces"),
        ));
    }
    if let Some(first) = taken.insert(name.to_string(), origin.clone()) {
        found.push(error(
            origin,
            format!("{call}(): the name {name} is already taken (at {})", place(&first, origin)),
            "give every interface of a node its own name",
        ));
    }
}

/// Names the node's links and claimed devices already use.
fn taken_names(lab: &Lab, node: &Node) -> HashMap<String, Origin> {
    let ends = lab.links.iter().flat_map(|l| l.ends.iter().map(move |e| (e, &l.origin)));
    let mut taken: HashMap<String, Origin> =
        ends.filter(|(e, _)| e.node == node.name).map(|(e, o)| (e.ifname.clone(), o.clone())).collect();
    taken.extend(lab.nics_of(&node.name).map(|n| (n.ifname.clone(), n.origin.clone())));
    taken
}

fn check_vlans(lab: &Lab, node: &Node, found: &mut Vec<Diagnostic>) {
    let vlans = &node.devices.vlans;
    if vlans.is_empty() {
        return;
    }
    if node.kind == NodeKind::Bridge {
        found.push(error(
            &vlans[0].origin,
            format!("vlan(): {} is a bridge; its ports carry VLANs instead", node.name),
            format!(
                r#"give the bridge vlan_filtering = true and its ports VLANs: {}:port("eth0", {{ vlans = {{ 10 }} }})"#,
                node.name
            ),
        ));
        return;
    }
    let mut taken = taken_names(lab, node);
    let mut parents: HashSet<(String, u16)> = HashSet::new();
    let names = interface_names(lab, node);
    for (i, vlan) in vlans.iter().enumerate() {
        check_name(&vlan.name, "vlan", &vlan.origin, &mut taken, found);
        // A parent is a device declared earlier: a link end, a device, or an earlier VLAN (QinQ).
        let earlier = vlans[..i].iter().any(|v| v.name == vlan.parent);
        let base = lab.endpoints_of(&node.name).any(|e| e.ifname == vlan.parent);
        if lab.nics_of(&node.name).any(|n| n.ifname == vlan.parent) {
            // Claimed devices arrive after VLANs are made (plan/l2.rs).
            found.push(error(
                &vlan.origin,
                format!(
                    "vlan(): {}:{} is a claimed host device; VLANs go on link ends and other VLANs",
                    node.name, vlan.parent
                ),
                "claim the VLAN itself from the host, or put it on a veth link end",
            ));
        } else if !earlier && !base {
            found.push(error(
                &vlan.origin,
                format!("vlan(): {} has no interface {:?} to put VLAN {} on", node.name, vlan.parent, vlan.id),
                names_help(&names),
            ));
        }
        if !parents.insert((vlan.parent.clone(), vlan.id)) {
            found.push(error(
                &vlan.origin,
                format!("vlan(): {}:{} already has VLAN {}", node.name, vlan.parent, vlan.id),
                "one sub-interface per VLAN id and parent",
            ));
        }
    }
}

fn check_vrfs(lab: &Lab, node: &Node, found: &mut Vec<Diagnostic>) {
    let vrfs = &node.devices.vrfs;
    if vrfs.is_empty() {
        return;
    }
    if node.kind == NodeKind::Bridge {
        found.push(error(
            &vrfs[0].origin,
            format!("vrf(): {} is a bridge and has no routing tables", node.name),
            "put VRFs on hosts and routers",
        ));
        return;
    }
    let mut taken = taken_names(lab, node);
    taken.extend(node.devices.vlans.iter().map(|v| (v.name.clone(), v.origin.clone())));
    let names = interface_names(lab, node);
    let mut tables: HashMap<u32, &Origin> = HashMap::new();
    let mut enslaved: HashMap<&str, &str> = HashMap::new();
    for vrf in vrfs {
        check_name(&vrf.name, "vrf", &vrf.origin, &mut taken, found);
        if matches!(vrf.table, 0 | 253..=255) {
            found.push(error(
                &vrf.origin,
                format!("vrf({:?}): table {} is one of the kernel's own tables", vrf.name, vrf.table),
                "give the VRF a table of its own, 1 to 252",
            ));
        } else if let Some(first) = tables.insert(vrf.table, &vrf.origin) {
            found.push(error(
                &vrf.origin,
                format!(
                    "vrf({:?}): table {} already belongs to a VRF (at {})",
                    vrf.name,
                    vrf.table,
                    place(first, &vrf.origin)
                ),
                "every VRF has a table of its own",
            ));
        }
        for ifname in &vrf.interfaces {
            if lab.nics_of(&node.name).any(|n| &n.ifname == ifname) {
                found.push(error(
                    &vrf.origin,
                    format!("vrf({:?}): {ifname} is a claimed host device, enslaved before it arrives", vrf.name),
                    "enslave link ends and VLANs; route a claimed device's traffic with rules instead",
                ));
            } else if !names.contains(ifname) || vrfs.iter().any(|v| &v.name == ifname) {
                found.push(error(
                    &vrf.origin,
                    format!("vrf({:?}): {} has no interface {ifname:?} to enslave", vrf.name, node.name),
                    names_help(&names),
                ));
            } else if let Some(other) = enslaved.insert(ifname, &vrf.name) {
                found.push(error(
                    &vrf.origin,
                    format!("vrf({:?}): {ifname} is already in VRF {other}", vrf.name),
                    "an interface belongs to one VRF",
                ));
            }
        }
    }
}

fn check_bridge(lab: &Lab, node: &Node, found: &mut Vec<Diagnostic>) {
    let devices = &node.devices;
    if node.kind == NodeKind::Host {
        if let Some(port) = devices.ports.first() {
            found.push(error(
                &port.origin,
                format!("port(): {} is not a bridge", node.name),
                format!("port options belong to a bridge's ports: declare it with bridge(\"{}\")", node.name),
            ));
        }
        return;
    }
    let options = &devices.bridge;
    if options.default_pvid.is_some() && !options.vlan_filtering {
        found.push(error(
            &node.origin,
            format!("bridge(): default_pvid is set on {}, which does not filter VLANs", node.name),
            "add vlan_filtering = true",
        ));
    }
    if let Some(ageing) = options.ageing {
        // The kernel takes it in centiseconds, in 32 bits.
        if ageing.as_secs() > 1_000_000 {
            found.push(error(
                &node.origin,
                format!("bridge(): ageing {ageing:?} is too long"),
                "give at most 1000000s",
            ));
        }
    }
    let ports = lab.interface_names(&node.name);
    let mut seen: HashMap<&str, &Origin> = HashMap::new();
    for port in &devices.ports {
        if !ports.contains(&port.ifname) {
            found.push(error(
                &port.origin,
                format!("port(): {} has no port {:?}", node.name, port.ifname),
                if ports.is_empty() {
                    "link a node to the bridge first".into()
                } else {
                    format!("its ports: {}", ports.join(", "))
                },
            ));
        }
        if let Some(first) = seen.insert(&port.ifname, &port.origin) {
            found.push(error(
                &port.origin,
                format!("port(): {}:{} is set twice (first at {})", node.name, port.ifname, place(first, &port.origin)),
                "put all options of a port in one port call",
            ));
        }
        if port.has_vlans() && !options.vlan_filtering {
            found.push(error(
                &port.origin,
                format!("port({:?}): VLANs on a port of {}, which does not filter VLANs", port.ifname, node.name),
                format!("declare it bridge(\"{}\", {{ vlan_filtering = true }})", node.name),
            ));
        }
    }
}
