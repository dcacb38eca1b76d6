//! The interface table `up` and `show` print: one row per interface.

use comfy_table::{presets, Table};
use serde::Serialize;

use labctl::model::{Lab, MacAddr, NodeKind, BRIDGE_DEVICE};

#[derive(Debug, Serialize)]
pub struct InterfaceRow {
    pub node: String,
    pub netns: String,
    pub interface: String,
    pub mac: MacAddr,
    pub addresses: Vec<String>,
    /// `node:interface` at the other end of the veth, or "bridge".
    pub peer: String,
}

pub fn interface_rows(lab: &Lab) -> Vec<InterfaceRow> {
    let mut rows = Vec::new();
    for node in &lab.nodes {
        let netns = lab.netns_name(&node.name);
        if node.kind == NodeKind::Bridge {
            rows.push(InterfaceRow {
                node: node.name.clone(),
                netns: netns.clone(),
                interface: BRIDGE_DEVICE.into(),
                mac: MacAddr::derive(&lab.name, &node.name, BRIDGE_DEVICE),
                addresses: vec![],
                peer: "(bridge)".into(),
            });
        }
        for link in &lab.links {
            for (i, end) in link.ends.iter().enumerate().filter(|(_, e)| e.node == node.name) {
                let other = &link.ends[1 - i];
                rows.push(InterfaceRow {
                    node: node.name.clone(),
                    netns: netns.clone(),
                    interface: end.ifname.clone(),
                    mac: lab.mac_of(end),
                    addresses: end.addresses.iter().map(|a| a.to_string()).collect(),
                    peer: format!("{}:{}", other.node, other.ifname),
                });
            }
        }
    }
    rows
}

pub fn render(rows: &[InterfaceRow]) -> String {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_header(["NODE", "NETNS", "INTERFACE", "MAC", "ADDRESSES", "PEER"]);
    for r in rows {
        let addresses = if r.addresses.is_empty() { "-".to_string() } else { r.addresses.join(" ") };
        table.add_row([&r.node, &r.netns, &r.interface, &r.mac.to_string(), &addresses, &r.peer]);
    }
    table.to_string()
}
