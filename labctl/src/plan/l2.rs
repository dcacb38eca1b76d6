//! Steps of VRFs, VLANs, bridge and port options (model/l2.rs), and how
//! `labctl plan` prints them. VRFs and VLANs take the ifindexes after the
//! node's links, in declaration order.

use std::collections::HashMap;
use std::fmt;

use super::{Device, Step};
use crate::model::{BridgeOptions, Lab, NodeKind, PortOptions, BRIDGE_DEVICE};

/// The kernel's default pvid of a new port.
const KERNEL_DEFAULT_PVID: u16 = 1;

pub(super) fn steps(
    lab: &Lab,
    ifindex_of: &mut HashMap<(String, String), u32>,
    take_index: &mut dyn FnMut(&str) -> u32,
    bridge_index: &HashMap<&str, u32>,
) -> Vec<Step> {
    let mut steps = Vec::new();
    for node in &lab.nodes {
        let name = &node.name;
        let mut device = |ifname: &str, ifindex_of: &mut HashMap<(String, String), u32>| {
            let ifindex = take_index(name);
            ifindex_of.insert((name.clone(), ifname.to_string()), ifindex);
            Device { node: name.clone(), ifname: ifname.into(), ifindex }
        };
        for vrf in &node.devices.vrfs {
            let dev = device(&vrf.name, ifindex_of);
            steps.push(Step::CreateVrf { device: dev.clone(), table: vrf.table });
            steps.push(Step::SetUp { device: dev });
        }
        for vlan in &node.devices.vlans {
            let parent = ifindex_of.get(&(name.clone(), vlan.parent.clone())).copied().unwrap_or(0);
            let dev = device(&vlan.name, ifindex_of);
            steps.push(Step::CreateVlan { device: dev.clone(), parent, id: vlan.id, protocol: vlan.protocol });
            for address in &vlan.addresses {
                steps.push(Step::AddAddress { device: dev.clone(), address: *address });
            }
        }
        for vrf in &node.devices.vrfs {
            let master = ifindex_of[&(name.clone(), vrf.name.clone())];
            for ifname in &vrf.interfaces {
                let ifindex = ifindex_of.get(&(name.clone(), ifname.clone())).copied().unwrap_or(0);
                let dev = Device { node: name.clone(), ifname: ifname.clone(), ifindex };
                steps.push(Step::SetMaster { device: dev, master, master_name: vrf.name.clone() });
            }
        }
        if node.kind != NodeKind::Bridge {
            continue;
        }
        let Some(&br) = bridge_index.get(name.as_str()) else { continue };
        let options = &node.devices.bridge;
        if !options.is_default() {
            let dev = Device { node: name.clone(), ifname: BRIDGE_DEVICE.into(), ifindex: br };
            steps.push(Step::ConfigureBridge { device: dev, options: options.clone() });
        }
        let default_pvid = options.default_pvid.unwrap_or(KERNEL_DEFAULT_PVID);
        for port in &node.devices.ports {
            let ifindex = ifindex_of.get(&(name.clone(), port.ifname.clone())).copied().unwrap_or(0);
            let dev = Device { node: name.clone(), ifname: port.ifname.clone(), ifindex };
            // A port given its VLANs carries only those: the default pvid goes unless listed.
            let drop_vlan = (port.has_vlans() && default_pvid != 0 && !port.all_vlans().contains(&default_pvid))
                .then_some(default_pvid);
            steps.push(Step::ConfigurePort { device: dev, options: port.clone(), drop_vlan });
        }
    }
    steps
}

pub(super) fn describe_bridge(f: &mut fmt::Formatter<'_>, device: &Device, options: &BridgeOptions) -> fmt::Result {
    let mut parts = Vec::new();
    if options.vlan_filtering {
        parts.push("vlan_filtering 1".to_string());
    }
    if let Some(pvid) = options.default_pvid {
        parts.push(format!("vlan_default_pvid {pvid}"));
    }
    if let Some(ageing) = options.ageing {
        parts.push(format!("ageing_time {}", ageing.as_millis() / 10));
    }
    if let Some(on) = options.multicast_snooping {
        parts.push(format!("mcast_snooping {}", u8::from(on)));
    }
    parts.push(format!("stp_state {}", u8::from(options.stp)));
    write!(f, "{device}: link set type bridge {}", parts.join(" "))
}

pub(super) fn describe_port(
    f: &mut fmt::Formatter<'_>,
    device: &Device,
    port: &PortOptions,
    drop_vlan: Option<u16>,
) -> fmt::Result {
    let mut parts = Vec::new();
    for vid in port.all_vlans() {
        let mut vlan = format!("vlan add vid {vid}");
        if port.pvid == Some(vid) {
            vlan.push_str(" pvid");
        }
        if port.untagged.contains(&vid) {
            vlan.push_str(" untagged");
        }
        parts.push(vlan);
    }
    if let Some(vid) = drop_vlan {
        parts.push(format!("vlan del vid {vid}"));
    }
    if let Some(on) = port.learning {
        parts.push(format!("learning {}", if on { "on" } else { "off" }));
    }
    if let Some(on) = port.flood {
        parts.push(format!("flood {}", if on { "on" } else { "off" }));
    }
    write!(f, "{device}: bridge port {}", parts.join(", "))
}
