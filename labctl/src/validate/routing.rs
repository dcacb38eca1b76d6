//! Checks of routes with options and policy rules (model/routing.rs):
//! every gateway on a connected subnet (of its dev, if named), a src that
//! is the node's own, weights only in multipath, no reserved table, every
//! table a rule or VRF uses has routes and every table with routes is used.

use ipnet::IpNet;
use std::collections::{BTreeSet, HashMap};

use super::{error, list, place};
use crate::diag::{Diagnostic, Origin};
use crate::model::routing::RESERVED_TABLES;
use crate::model::{Hop, Lab, Node, NodeKind, RouteSpec, RouteType, Rule};

const MAIN: u32 = 254;
const DEFAULT: u32 = 253;

pub(super) fn check(lab: &Lab, node: &Node, found: &mut Vec<Diagnostic>) {
    let routing = &node.routing;
    if routing.is_empty() {
        return;
    }
    if node.kind == NodeKind::Bridge {
        let origin = routing.routes.first().map(|r| &r.origin).or(routing.rules.first().map(|r| &r.origin));
        if let Some(origin) = origin {
            found.push(error(
                origin,
                format!("{} is a bridge and has no routes or rules", node.name),
                "add routes and rules to the hosts and routers on the bridge",
            ));
        }
        return;
    }
    let ifnames = super::l2::interface_names(lab, node);
    let mut seen: HashMap<(u32, IpNet, Option<u32>), &Origin> = HashMap::new();
    for plain in &node.routes {
        seen.insert((MAIN, plain.destination, None), &plain.origin);
    }
    for route in &routing.routes {
        let key = (table_of(route.table), route.destination, route.metric);
        if let Some(first) = seen.insert(key, &route.origin) {
            found.push(error(
                &route.origin,
                format!(
                    "route(): {} already has a route to {} in table {} (at {})",
                    node.name,
                    route.destination,
                    table_name(key.0),
                    place(first, &route.origin)
                ),
                "keep one route per destination and table, or give them different metrics",
            ));
        }
        check_route(lab, node, route, &ifnames, found);
    }
    for rule in &routing.rules {
        check_rule(node, rule, &ifnames, found);
    }
    check_nexthops(lab, node, &ifnames, found);
    check_tables_used(node, found);
}

fn table_of(table: Option<u32>) -> u32 {
    table.unwrap_or(MAIN)
}

fn table_name(table: u32) -> String {
    match table {
        MAIN => "main".into(),
        DEFAULT => "default".into(),
        n => n.to_string(),
    }
}

fn reserved(table: u32) -> Option<&'static str> {
    RESERVED_TABLES.iter().find(|(n, _)| *n == table && *n != MAIN).map(|(_, name)| *name)
}

fn check_route(lab: &Lab, node: &Node, route: &RouteSpec, ifnames: &[String], found: &mut Vec<Diagnostic>) {
    let (origin, dest) = (&route.origin, route.destination);
    if dest != dest.trunc() {
        found.push(error(
            origin,
            format!("route(): destination {dest} has host bits set"),
            format!("write the network: {}", dest.trunc()),
        ));
    }
    if let Some(name) = route.table.and_then(reserved) {
        found.push(error(
            origin,
            format!("route(): table {} is the kernel's {name} table", route.table.unwrap_or_default()),
            "use a table number from 1 to 252 (or leave table out for main)",
        ));
    }
    if let Some(id) = route.nexthop {
        if !route.hops.is_empty() || route.kind != RouteType::Unicast {
            found.push(error(
                origin,
                format!("route(): the route to {dest} names nexthop {id} and also its own next hops or type"),
                "give either nexthop = id, or via/dev/multipath/type",
            ));
        } else if !node.routing.nexthops.iter().any(|n| n.id == id) {
            found.push(error(
                origin,
                format!("route(): {} has no nexthop {id}", node.name),
                format!(r#"declare it first: {}:nexthop({id}, {{ via = "198.18.0.254" }})"#, node.name),
            ));
        }
        return;
    }
    match (route.kind, route.hops.is_empty()) {
        (RouteType::Unicast, true) => found.push(error(
            origin,
            format!("route(): the route to {dest} has no next hop"),
            r#"give a gateway, dev = "eth0", multipath = { ... }, or type = "blackhole""#,
        )),
        (RouteType::Unicast, false) => {}
        (kind, false) => found.push(error(
            origin,
            format!("route(): a {} route drops its packets and takes no gateway or dev", kind.name()),
            format!(r#"write h1:route("{dest}", {{ type = "{}" }})"#, kind.name()),
        )),
        (_, true) => {}
    }
    if let Some(weight) = route.stray_weight {
        found.push(error(
            origin,
            format!("route(): weight {weight} is given to a route with a single next hop"),
            r#"weights share traffic between next hops: multipath = { { via = "198.18.1.2", weight = 1 }, { via = "198.18.2.2", weight = 3 } }"#,
        ));
    }
    let own: Vec<IpNet> = lab.addresses_of(&node.name).collect();
    if let Some(src) = route.src {
        if src.is_ipv4() != dest.addr().is_ipv4() {
            found.push(error(
                origin,
                format!("route(): src {src} and the destination {dest} are of different IP versions"),
                "use a source of the route's IP version",
            ));
        } else if !own.iter().any(|n| n.addr() == src) {
            let mine: Vec<IpNet> =
                own.iter().filter(|n| n.addr().is_ipv4() == src.is_ipv4()).map(|n| IpNet::from(n.addr())).collect();
            found.push(error(
                origin,
                format!("route(): src {src} is not an address of {}", node.name),
                if mine.is_empty() {
                    format!("{} has no address of that IP version", node.name)
                } else {
                    format!("src is one of the node's own addresses: {}", list(&mine))
                },
            ));
        }
    }
    let mut gateways = BTreeSet::new();
    for hop in &route.hops {
        check_hop(lab, node, route, hop, ifnames, &own, found);
        if let Some(via) = hop.via {
            if !gateways.insert((via, hop.dev.clone())) {
                found.push(error(
                    origin,
                    format!("route(): next hop {via} is given twice"),
                    "give each next hop once, with a weight for a larger share",
                ));
            }
        }
    }
}

fn check_hop(
    lab: &Lab,
    node: &Node,
    route: &RouteSpec,
    hop: &Hop,
    ifnames: &[String],
    own: &[IpNet],
    found: &mut Vec<Diagnostic>,
) {
    let (origin, dest) = (&route.origin, route.destination);
    if let Some(dev) = &hop.dev {
        if !ifnames.contains(dev) {
            found.push(error(
                origin,
                format!("route(): {} has no interface {dev:?}", node.name),
                super::l2::names_help(ifnames),
            ));
            return;
        }
    }
    let Some(via) = hop.via else { return };
    if via.is_ipv4() != dest.addr().is_ipv4() {
        found.push(error(
            origin,
            format!("route(): the destination {dest} and the gateway {via} are of different IP versions"),
            "use an IPv4 gateway for IPv4 routes and an IPv6 one for IPv6 routes",
        ));
        return;
    }
    if own.iter().any(|n| n.addr() == via) {
        found.push(error(
            origin,
            format!("route(): the gateway {via} is {}'s own address", node.name),
            "the gateway is the neighbour that forwards the packets, e.g. the router's address",
        ));
        return;
    }
    // On the named device's subnets, or any of the node's.
    let subnets: Vec<IpNet> = match &hop.dev {
        Some(dev) => super::l2::addresses_on(lab, &node.name, dev),
        None => own.to_vec(),
    };
    if !subnets.iter().any(|n| n.contains(&via)) {
        let mut nets: Vec<IpNet> = Vec::new();
        for net in subnets.iter().filter(|n| n.addr().is_ipv4() == via.is_ipv4()).map(IpNet::trunc) {
            if !nets.contains(&net) {
                nets.push(net);
            }
        }
        let on = hop.dev.as_ref().map(|d| format!(" on {d}")).unwrap_or_default();
        found.push(error(
            origin,
            format!("route(): the gateway {via} is not on any subnet of {}{on}", node.name),
            if nets.is_empty() {
                format!("{}{on} has no address of that IP version; add one to a link first", node.name)
            } else {
                format!("the gateway must be a neighbour on one of {}'s subnets{on}: {}", node.name, list(&nets))
            },
        ));
    }
}

fn check_rule(node: &Node, rule: &Rule, ifnames: &[String], found: &mut Vec<Diagnostic>) {
    let origin = &rule.origin;
    if rule.table == 0 || rule.table == 255 {
        found.push(error(
            origin,
            format!("rule(): table {} is the kernel's {} table", rule.table, reserved(rule.table).unwrap_or("local")),
            "select a table of your routes (1 to 252), or main (254)",
        ));
    }
    if rule.priority == Some(0) {
        found.push(error(
            origin,
            "rule(): priority 0 is the kernel's rule for the local table".to_string(),
            "use a priority from 1 to 32765 (lower is tried first; main is 32766)",
        ));
    }
    for (key, net) in [("from", rule.from), ("to", rule.to)] {
        let Some(net) = net else { continue };
        if net.addr().is_ipv6() != rule.ipv6 {
            found.push(error(
                origin,
                format!("rule(): {key} {net} is not of the rule's IP version"),
                "give from and to of one IP version (family = 4 or 6)",
            ));
        }
        if net != net.trunc() {
            found.push(error(
                origin,
                format!("rule(): {key} {net} has host bits set"),
                format!("write the network: {}", net.trunc()),
            ));
        }
    }
    if let Some(iif) = &rule.iif {
        if iif != "lo" && !ifnames.contains(iif) {
            found.push(error(
                origin,
                format!("rule(): {} has no interface {iif:?}", node.name),
                super::l2::names_help(ifnames),
            ));
        }
    }
}

/// A table some route fills and no rule or VRF selects is never looked up;
/// a rule selecting a table no route fills sends its packets nowhere.
fn check_tables_used(node: &Node, found: &mut Vec<Diagnostic>) {
    let vrf_tables: Vec<u32> = node.devices.vrfs.iter().map(|v| v.table).collect();
    let rules = &node.routing.rules;
    let routes = &node.routing.routes;
    let mut reported = BTreeSet::new();
    for route in routes {
        let Some(table) = route.table.filter(|t| *t != MAIN && reserved(*t).is_none()) else { continue };
        let used = rules.iter().any(|r| r.table == table && r.ipv6 != route.is_ipv4()) || vrf_tables.contains(&table);
        if !used && reported.insert(table) {
            found.push(error(
                &route.origin,
                format!("route(): table {table} of {} is used by no rule", node.name),
                format!(
                    r#"add a rule that selects it, e.g. {}:rule {{ from = "198.18.1.0/24", table = {table} }}"#,
                    node.name
                ),
            ));
        }
    }
    for rule in rules {
        let table = rule.table;
        if table == MAIN || table == DEFAULT || reserved(table).is_some() || vrf_tables.contains(&table) {
            continue;
        }
        let filled = routes.iter().any(|r| r.table == Some(table) && r.is_ipv4() != rule.ipv6);
        if !filled {
            let version = if rule.ipv6 { "IPv6" } else { "IPv4" };
            found.push(error(
                &rule.origin,
                format!("rule(): table {table} of {} has no {version} routes", node.name),
                format!(
                    r#"add routes to it, e.g. {}:route("default", "198.18.0.254", {{ table = {table} }})"#,
                    node.name
                ),
            ));
        }
    }
}

/// Nexthop objects: ids unique and not 0; each one kind (gateway and/or
/// device, blackhole, group); group members declared before and not groups;
/// gateways on a subnet of the node (or of its dev).
fn check_nexthops(lab: &Lab, node: &Node, ifnames: &[String], found: &mut Vec<Diagnostic>) {
    let own: Vec<IpNet> = lab.addresses_of(&node.name).collect();
    let nexthops = &node.routing.nexthops;
    let mut seen: HashMap<u32, &Origin> = HashMap::new();
    for (i, nh) in nexthops.iter().enumerate() {
        let origin = &nh.origin;
        if nh.id == 0 {
            found.push(error(origin, "nexthop(): id 0 is not a nexthop id", "use ids from 1"));
        } else if let Some(first) = seen.insert(nh.id, origin) {
            found.push(error(
                origin,
                format!("nexthop(): {} already has nexthop {} (at {})", node.name, nh.id, place(first, origin)),
                "give every nexthop its own id",
            ));
        }
        let kinds = usize::from(nh.via.is_some() || nh.dev.is_some())
            + usize::from(nh.blackhole)
            + usize::from(!nh.group.is_empty());
        if kinds != 1 {
            found.push(error(
                origin,
                format!("nexthop({}): give one of via/dev, blackhole = true or group", nh.id),
                r#"a nexthop is a gateway ({ via = "198.18.0.254" }), a drop ({ blackhole = true }) or a group ({ group = { 1, 2 } })"#,
            ));
            continue;
        }
        for &(member, _) in &nh.group {
            match nexthops[..i].iter().find(|n| n.id == member) {
                None => found.push(error(
                    origin,
                    format!("nexthop({}): group member {member} is not a nexthop declared before it", nh.id),
                    "declare the members first, then the group",
                )),
                Some(m) if !m.group.is_empty() => found.push(error(
                    origin,
                    format!("nexthop({}): group member {member} is itself a group", nh.id),
                    "a group's members are single nexthops",
                )),
                Some(_) => {}
            }
        }
        if nh.via.is_some() || nh.dev.is_some() {
            let destination = match nh.via {
                Some(std::net::IpAddr::V6(_)) => IpNet::V6(Default::default()),
                _ => IpNet::V4(Default::default()),
            };
            let as_route = RouteSpec::unicast(destination, origin.clone());
            let hop = Hop { via: nh.via, dev: nh.dev.clone(), weight: None };
            let mut problems = Vec::new();
            check_hop(lab, node, &as_route, &hop, ifnames, &own, &mut problems);
            for p in problems {
                let message = p.message.replacen("route():", &format!("nexthop({}):", nh.id), 1);
                found.push(Diagnostic { message, ..p });
            }
        }
    }
}
