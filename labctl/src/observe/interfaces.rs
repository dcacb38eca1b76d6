//! The interfaces of a namespace as the kernel has them: name, MAC, MTU,
//! state and addresses, as `ip addr` shows them. `labctl show` compares
//! them with what the lab declared.

use std::collections::BTreeMap;
use std::fs::File;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use serde::{Deserialize, Serialize};

use crate::model::MacAddr;
use crate::observe::counters::{neighbours_on, routes_on, Neighbour, Route};
use crate::observe::error::{ObserveError, Result};
use crate::observe::netlink::query;
use rtnetlink::Handle;

/// One interface, sorted by name in [`interfaces`]'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    pub mtu: Option<u32>,
    /// Set up by its owner (IFF_UP).
    pub admin_up: bool,
    /// The kernel's operational state: `up`, `down`, `lowerlayerdown`, ...
    pub state: String,
    /// Addresses with their prefix length, in the kernel's order.
    pub addresses: Vec<IpNet>,
}

/// Every interface of the namespace behind `netns`, `lo` included.
pub fn interfaces(netns: &File) -> Result<Vec<Interface>> {
    query(netns, |handle| async move { interfaces_on(&handle).await })
}

/// Interfaces, routes and neighbours of one namespace over one connection
/// on one thread: `labctl show` reads every node of a 10,000-node lab.
pub fn tables(netns: &File) -> Result<(Vec<Interface>, Vec<Route>, Vec<Neighbour>)> {
    query(netns, |handle| async move {
        Ok((interfaces_on(&handle).await?, routes_on(&handle).await?, neighbours_on(&handle).await?))
    })
}

async fn interfaces_on(handle: &Handle) -> Result<Vec<Interface>> {
    {
        let mut by_index = BTreeMap::new();
        let mut links = handle.link().get().execute();
        while let Some(msg) = links.try_next().await.map_err(ObserveError::netlink("dump links"))? {
            by_index.insert(msg.header.index, interface_of(&msg));
        }
        let mut addresses = handle.address().get().execute();
        while let Some(msg) = addresses.try_next().await.map_err(ObserveError::netlink("dump addresses"))? {
            let Some(interface) = by_index.get_mut(&msg.header.index) else { continue };
            // IPv4 has both; IFA_LOCAL is the interface's own (IFA_ADDRESS is the peer on point-to-point links).
            let local = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let address = local.or_else(|| {
                msg.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            if let Some(net) = address.and_then(|ip| IpNet::new(ip, msg.header.prefix_len).ok()) {
                interface.addresses.push(net);
            }
        }
        let mut all: Vec<Interface> = by_index.into_values().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }
}

fn interface_of(msg: &LinkMessage) -> Interface {
    let mut interface = Interface {
        name: format!("if{}", msg.header.index),
        mac: None,
        mtu: None,
        admin_up: msg.header.flags.contains(LinkFlags::Up),
        state: "unknown".into(),
        addresses: vec![],
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => interface.name = name.clone(),
            LinkAttribute::Address(bytes) => interface.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(MacAddr),
            LinkAttribute::Mtu(mtu) => interface.mtu = Some(*mtu),
            LinkAttribute::OperState(state) => interface.state = state.to_string().to_lowercase(),
            _ => {}
        }
    }
    interface
}
