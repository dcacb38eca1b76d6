//! RTM_NEWROUTE for routes with options and RTM_NEWRULE for policy rules
//! (model/routing.rs). The messages are built by pure functions, which the
//! unit tests below read back attribute by attribute.

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteNextHop, RouteProtocol, RouteScope, RouteType as Kt,
};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::Handle;

use super::netlink::Error;
use crate::model::{RouteSpec, RouteType, Rule};

fn family(ipv4: bool) -> AddressFamily {
    if ipv4 {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn address(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

fn table_in(header_table: &mut u8, attributes: &mut Vec<RouteAttribute>, table: u32) {
    // The header holds 8 bits; larger tables go in RTA_TABLE (always sent, as iproute2 does).
    *header_table = u8::try_from(table).unwrap_or(0);
    attributes.push(RouteAttribute::Table(table));
}

/// The RTM_NEWROUTE message of `route`; `ifindexes[i]` is hop i's device
/// (already resolved, `None` for a hop without a device).
pub fn route_message(route: &RouteSpec, ifindexes: &[Option<u32>]) -> RouteMessage {
    let ipv4 = route.is_ipv4();
    let mut msg = RouteMessage::default();
    msg.header.address_family = family(ipv4);
    msg.header.destination_prefix_length = route.destination.prefix_len();
    msg.header.protocol = RouteProtocol::Static;
    msg.header.kind = match route.kind {
        RouteType::Unicast => Kt::Unicast,
        RouteType::Blackhole => Kt::BlackHole,
        RouteType::Unreachable => Kt::Unreachable,
        RouteType::Prohibit => Kt::Prohibit,
    };
    // A device route without a gateway reaches its destination directly.
    let direct = route.hops.len() == 1 && route.hops[0].via.is_none() && !route.multipath;
    msg.header.scope = if direct { RouteScope::Link } else { RouteScope::Universe };
    let mut attributes = Vec::new();
    table_in(&mut msg.header.table, &mut attributes, route.table.unwrap_or(u32::from(RouteHeader::RT_TABLE_MAIN)));
    if route.destination.prefix_len() > 0 {
        attributes.push(RouteAttribute::Destination(address(route.destination.network())));
    }
    if let Some(src) = route.src {
        attributes.push(RouteAttribute::PrefSource(address(src)));
    }
    if let Some(metric) = route.metric {
        attributes.push(RouteAttribute::Priority(metric));
    }
    let ifindex = |i: usize| ifindexes.get(i).copied().flatten();
    if let Some(id) = route.nexthop {
        attributes.push(RouteAttribute::NhId(id));
    } else if route.multipath {
        let hops = route
            .hops
            .iter()
            .enumerate()
            .map(|(i, hop)| {
                let mut next = RouteNextHop::default();
                // The kernel counts weight - 1.
                next.hops = hop.weight.map_or(0, |w| (w - 1) as u8);
                next.interface_index = ifindex(i).unwrap_or(0);
                next.attributes = hop.via.map(|v| vec![RouteAttribute::Gateway(address(v))]).unwrap_or_default();
                next
            })
            .collect();
        attributes.push(RouteAttribute::MultiPath(hops));
    } else if let Some(hop) = route.hops.first() {
        if let Some(via) = hop.via {
            attributes.push(RouteAttribute::Gateway(address(via)));
        }
        if let Some(index) = ifindex(0) {
            attributes.push(RouteAttribute::Oif(index));
        }
    }
    msg.attributes = attributes;
    msg
}

/// The RTM_NEWRULE message of `rule`.
pub fn rule_message(rule: &Rule) -> RuleMessage {
    let mut msg = RuleMessage::default();
    msg.header.family = family(!rule.ipv6);
    msg.header.action = RuleAction::ToTable;
    msg.header.table = u8::try_from(rule.table).unwrap_or(0);
    let mut attributes = vec![RuleAttribute::Table(rule.table)];
    if let Some(from) = rule.from {
        msg.header.src_len = from.prefix_len();
        attributes.push(RuleAttribute::Source(from.network()));
    }
    if let Some(to) = rule.to {
        msg.header.dst_len = to.prefix_len();
        attributes.push(RuleAttribute::Destination(to.network()));
    }
    if let Some(iif) = &rule.iif {
        attributes.push(RuleAttribute::Iifname(iif.clone()));
    }
    if let Some(mark) = rule.fwmark {
        attributes.push(RuleAttribute::FwMark(mark));
    }
    if let Some(priority) = rule.priority {
        attributes.push(RuleAttribute::Priority(priority));
    }
    msg.attributes = attributes;
    msg
}

/// Hop devices the plan could not number (claimed devices), by name.
async fn resolve(handle: &Handle, route: &RouteSpec, planned: &[Option<u32>]) -> Result<Vec<Option<u32>>, Error> {
    let mut out = Vec::with_capacity(route.hops.len());
    for (i, hop) in route.hops.iter().enumerate() {
        match (planned.get(i).copied().flatten(), &hop.dev) {
            (Some(index), _) => out.push(Some(index)),
            (None, Some(dev)) => {
                let mut links = handle.link().get().match_name(dev.clone()).execute();
                let link = links.try_next().await?.ok_or_else(|| Error::Route(format!("no device {dev}")))?;
                out.push(Some(link.header.index));
            }
            (None, None) => out.push(None),
        }
    }
    Ok(out)
}

pub async fn add_route(handle: &Handle, route: &RouteSpec, ifindexes: &[Option<u32>]) -> Result<(), Error> {
    let ifindexes = resolve(handle, route, ifindexes).await?;
    Ok(handle.route().add(route_message(route, &ifindexes)).execute().await?)
}

pub async fn add_rule(handle: &Handle, rule: &Rule) -> Result<(), Error> {
    let mut request = handle.rule().add();
    *request.message_mut() = rule_message(rule);
    Ok(request.execute().await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Origin;
    use crate::model::Hop;
    use rtnetlink::packet_route::rule::RuleAttribute as R;

    fn spec(dest: &str) -> RouteSpec {
        RouteSpec::unicast(dest.parse().unwrap(), Origin::new("t.lua", 1))
    }

    #[test]
    fn a_blackhole_route_in_a_table_with_a_metric() {
        let route =
            RouteSpec { kind: RouteType::Blackhole, table: Some(100), metric: Some(7), ..spec("198.19.9.0/24") };
        let msg = route_message(&route, &[]);
        assert_eq!(msg.header.kind, Kt::BlackHole);
        assert_eq!(msg.header.table, 100);
        assert_eq!(msg.header.destination_prefix_length, 24);
        assert!(msg.attributes.contains(&RouteAttribute::Table(100)));
        assert!(msg.attributes.contains(&RouteAttribute::Priority(7)));
        assert!(!msg.attributes.iter().any(|a| matches!(a, RouteAttribute::Gateway(_) | RouteAttribute::Oif(_))));
    }

    #[test]
    fn a_device_route_has_link_scope_and_its_oif() {
        let hop = Hop { via: None, dev: Some("eth1".into()), weight: None };
        let route = RouteSpec { hops: vec![hop], src: Some("198.18.1.1".parse().unwrap()), ..spec("198.19.0.0/16") };
        let msg = route_message(&route, &[Some(3)]);
        assert_eq!(msg.header.scope, RouteScope::Link);
        assert!(msg.attributes.contains(&RouteAttribute::Oif(3)));
        assert!(msg
            .attributes
            .contains(&RouteAttribute::PrefSource(RouteAddress::Inet("198.18.1.1".parse().unwrap()))));
    }

    #[test]
    fn multipath_weights_are_sent_less_one() {
        let hops = vec![
            Hop { via: Some("198.18.1.2".parse().unwrap()), dev: None, weight: Some(1) },
            Hop { via: Some("198.18.2.2".parse().unwrap()), dev: None, weight: Some(3) },
        ];
        let route = RouteSpec { hops, multipath: true, ..spec("0.0.0.0/0") };
        let msg = route_message(&route, &[None, None]);
        let Some(RouteAttribute::MultiPath(hops)) =
            msg.attributes.iter().find(|a| matches!(a, RouteAttribute::MultiPath(_)))
        else {
            panic!("no RTA_MULTIPATH: {:?}", msg.attributes)
        };
        assert_eq!(hops.iter().map(|h| h.hops).collect::<Vec<_>>(), [0, 2]);
        assert!(!msg.attributes.iter().any(|a| matches!(a, RouteAttribute::Destination(_))), "default has no RTA_DST");
    }

    #[test]
    fn a_route_through_a_nexthop_object_carries_only_its_id() {
        let route = RouteSpec { nexthop: Some(3), ..spec("198.19.64.0/18") };
        let msg = route_message(&route, &[]);
        assert!(msg.attributes.contains(&RouteAttribute::NhId(3)), "{:?}", msg.attributes);
        assert!(!msg.attributes.iter().any(|a| matches!(a, RouteAttribute::MultiPath(_) | RouteAttribute::Gateway(_))));
    }

    #[test]
    fn a_rule_selects_its_table_from_a_source() {
        let rule = Rule {
            from: Some("198.18.1.0/24".parse().unwrap()),
            to: None,
            iif: Some("eth0".into()),
            fwmark: Some(7),
            priority: Some(100),
            table: 100,
            ipv6: false,
            origin: Origin::new("t.lua", 1),
        };
        let msg = rule_message(&rule);
        assert_eq!(msg.header.family, AddressFamily::Inet);
        assert_eq!(msg.header.action, RuleAction::ToTable);
        assert_eq!((msg.header.src_len, msg.header.dst_len, msg.header.table), (24, 0, 100));
        for want in [R::Table(100), R::Iifname("eth0".into()), R::FwMark(7), R::Priority(100)] {
            assert!(msg.attributes.contains(&want), "{want:?} missing from {:?}", msg.attributes);
        }
        assert!(msg.attributes.iter().any(|a| matches!(a, R::Source(_))));
    }
}
