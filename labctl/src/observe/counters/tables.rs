//! The neighbour and route tables of a namespace, as sorted plain records.
//!
//! Neighbour states (reachable, stale, ...) change with time; a snapshot that
//! must be deterministic should redact or drop `state`.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourState};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, RouteMessageBuilder};
use serde::{Deserialize, Serialize};

use crate::model::MacAddr;
use crate::observe::error::{ObserveError, Result};
use crate::observe::netlink::{link_names, query};

/// One neighbour (ARP / NDP) entry, as `ip neigh` shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Neighbour {
    pub dev: String,
    pub dst: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lladdr: Option<MacAddr>,
    /// `reachable`, `stale`, `permanent`, `failed`, ...
    pub state: String,
}

/// The IPv4 and IPv6 neighbour entries, by interface then address. Like
/// `ip neigh`, NOARP entries (multicast, loopback) are left out.
pub fn neighbours(netns: &File) -> Result<Vec<Neighbour>> {
    query(netns, |handle| async move { neighbours_on(&handle).await })
}

/// [`neighbours`] over a connection already inside the namespace.
pub(crate) async fn neighbours_on(handle: &Handle) -> Result<Vec<Neighbour>> {
    {
        let names = link_names(handle).await?;
        let mut dump = handle.neighbours().get().execute();
        let mut table = Vec::new();
        while let Some(msg) = dump.try_next().await.map_err(ObserveError::netlink("dump neighbours"))? {
            if msg.header.state == NeighbourState::Noarp {
                continue;
            }
            let mut dst = None;
            let mut lladdr = None;
            for attr in &msg.attributes {
                match attr {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => dst = Some(IpAddr::V4(*a)),
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => dst = Some(IpAddr::V6(*a)),
                    NeighbourAttribute::LinkLayerAddress(mac) => {
                        lladdr = <[u8; 6]>::try_from(mac.as_slice()).ok().map(MacAddr)
                    }
                    _ => {}
                }
            }
            let Some(dst) = dst else { continue };
            table.push(Neighbour {
                dev: dev_name(&names, msg.header.ifindex),
                dst,
                lladdr,
                state: msg.header.state.to_string(),
            });
        }
        table.sort();
        Ok(table)
    }
}

/// One route, as `ip route` / `ip -6 route` show it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Route {
    /// `0.0.0.0/0` or `::/0` for a default route.
    pub dst: IpNet,
    /// Not set for the main table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// `kernel` (connected routes), `static` (labctl's), `ra`, ...
    pub proto: String,
    /// `link` for connected routes, `universe` for routes via a gateway.
    pub scope: String,
    /// `unicast`, or `blackhole`, `unreachable`, ...
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src: Option<IpAddr>,
}

/// IPv4 then IPv6 routes of every table but `local` (the kernel's own
/// addresses and broadcasts, which `ip route` hides too), sorted.
/// Multipath routes show their first next hop only.
pub fn routes(netns: &File) -> Result<Vec<Route>> {
    query(netns, |handle| async move { routes_on(&handle).await })
}

/// [`routes`] over a connection already inside the namespace.
pub(crate) async fn routes_on(handle: &Handle) -> Result<Vec<Route>> {
    {
        let names = link_names(handle).await?;
        let mut table = Vec::new();
        for request in [RouteMessageBuilder::<Ipv4Addr>::new().build(), RouteMessageBuilder::<Ipv6Addr>::new().build()]
        {
            let mut dump = handle.route().get(request).execute();
            while let Some(msg) = dump.try_next().await.map_err(ObserveError::netlink("dump routes"))? {
                if let Some(route) = route_from(&msg, &names) {
                    table.push(route);
                }
            }
        }
        table.sort();
        Ok(table)
    }
}

const RT_TABLE_LOCAL: u32 = 255;

fn route_from(msg: &RouteMessage, names: &BTreeMap<u32, String>) -> Option<Route> {
    let mut table = u32::from(msg.header.table);
    let (mut dst, mut via, mut dev, mut metric, mut src) = (None, None, None, None, None);
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(a) => dst = ip_of(a),
            RouteAttribute::Gateway(a) => via = ip_of(a),
            RouteAttribute::Oif(i) => dev = Some(dev_name(names, *i)),
            RouteAttribute::Priority(p) => metric = Some(*p),
            RouteAttribute::PrefSource(a) => src = ip_of(a),
            RouteAttribute::MultiPath(hops) if via.is_none() && dev.is_none() => {
                if let Some(hop) = hops.first() {
                    dev = Some(dev_name(names, hop.interface_index));
                    via = hop.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Gateway(a) => ip_of(a),
                        _ => None,
                    });
                }
            }
            _ => {}
        }
    }
    if table == RT_TABLE_LOCAL {
        return None;
    }
    let len = msg.header.destination_prefix_length;
    let dst = match (msg.header.address_family, dst) {
        (_, Some(addr)) => IpNet::new(addr, len).ok()?,
        (AddressFamily::Inet, None) => IpNet::new(Ipv4Addr::UNSPECIFIED.into(), 0).ok()?,
        (AddressFamily::Inet6, None) => IpNet::new(Ipv6Addr::UNSPECIFIED.into(), 0).ok()?,
        _ => return None,
    };
    Some(Route {
        dst,
        table: (table != u32::from(RouteHeader::RT_TABLE_MAIN)).then_some(table),
        via,
        dev,
        proto: msg.header.protocol.to_string(),
        scope: msg.header.scope.to_string(),
        kind: route_kind(msg.header.kind),
        metric,
        src,
    })
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

fn route_kind(kind: RouteType) -> String {
    match kind {
        RouteType::Unicast => "unicast".into(),
        RouteType::Local => "local".into(),
        RouteType::Broadcast => "broadcast".into(),
        RouteType::Anycast => "anycast".into(),
        RouteType::Multicast => "multicast".into(),
        RouteType::BlackHole => "blackhole".into(),
        RouteType::Unreachable => "unreachable".into(),
        RouteType::Prohibit => "prohibit".into(),
        RouteType::Throw => "throw".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn dev_name(names: &BTreeMap<u32, String>, index: u32) -> String {
    names.get(&index).cloned().unwrap_or_else(|| format!("if{index}"))
}
