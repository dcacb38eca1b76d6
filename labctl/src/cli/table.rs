//! The interface table `up` and `show` print: one row per interface.

use comfy_table::{presets, Table};
use serde::Serialize;

use labctl::model::{Lab, MacAddr, NicSource, NodeKind, BRIDGE_DEVICE};

#[derive(Debug, Serialize)]
pub struct InterfaceRow {
    pub node: String,
    pub netns: String,
    pub interface: String,
    /// None for a host device: it keeps its own.
    pub mac: Option<MacAddr>,
    pub addresses: Vec<String>,
    /// `node:interface` at the other end of the veth, "(bridge)", or the
    /// host device it is (`host NIC enp3s0`, `VF 0 of enp3s0`, `macvlan on enp3s0`).
    pub peer: String,
}

pub fn interface_rows(lab: &Lab) -> Vec<InterfaceRow> {
    let mut rows = Vec::new();
    let index = labctl::model::index::LabIndex::new(lab);
    for node in &lab.nodes {
        let netns = lab.netns_name(&node.name);
        if node.kind == NodeKind::Bridge {
            rows.push(InterfaceRow {
                node: node.name.clone(),
                netns: netns.clone(),
                interface: BRIDGE_DEVICE.into(),
                mac: Some(MacAddr::derive(&lab.name, &node.name, BRIDGE_DEVICE)),
                addresses: vec![],
                peer: "(bridge)".into(),
            });
        }
        for (link, i) in index.links_of(&node.name) {
            let (end, other) = (&link.ends[i], &link.ends[1 - i]);
            rows.push(InterfaceRow {
                node: node.name.clone(),
                netns: netns.clone(),
                interface: end.ifname.clone(),
                mac: Some(lab.mac_of(end)),
                addresses: end.addresses.iter().map(|a| a.to_string()).collect(),
                peer: format!("{}:{}", other.node, other.ifname),
            });
        }
        for nic in index.nics_of(&node.name) {
            rows.push(InterfaceRow {
                node: node.name.clone(),
                netns: netns.clone(),
                interface: nic.ifname.clone(),
                mac: None,
                addresses: nic.addresses.iter().map(|a| a.to_string()).collect(),
                peer: host_device(&nic.source),
            });
        }
    }
    rows
}

/// What a claimed device is, for the PEER column and graphs.
pub fn host_device(source: &NicSource) -> String {
    match source {
        NicSource::Whole { host } => format!("host NIC {host}"),
        NicSource::Macvlan { host, mode } => format!("macvlan on {host} ({mode})"),
        NicSource::Vf { pf, index } => format!("VF {index} of {pf}"),
    }
}

pub fn render(rows: &[InterfaceRow]) -> String {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_header(["NODE", "NETNS", "INTERFACE", "MAC", "ADDRESSES", "PEER"]);
    for r in rows {
        let addresses = if r.addresses.is_empty() { "-".to_string() } else { r.addresses.join(" ") };
        let mac = r.mac.map_or_else(|| "(its own)".to_string(), |m| m.to_string());
        table.add_row([&r.node, &r.netns, &r.interface, &mac, &addresses, &r.peer]);
    }
    table.to_string()
}
