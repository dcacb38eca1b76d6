//! Steps of routes with options and policy rules (model/routing.rs), and
//! how `labctl plan` prints them.

use std::collections::HashMap;
use std::fmt;

use super::Step;
use crate::model::{Lab, Nexthop, Node, RouteSpec, RouteType, Rule};

/// One node's routes with options and rules. A hop's device is given by
/// ifindex where the plan chose it (`None`: a claimed device, whose index
/// is the kernel's; apply looks it up by name).
pub(super) fn steps(lab: &Lab, node: &Node, ifindex_of: &HashMap<(String, String), u32>) -> Vec<Step> {
    let mut steps = Vec::new();
    for nexthop in &node.routing.nexthops {
        let mut nexthop = nexthop.clone();
        // The kernel wants a gateway's device: the interface on its subnet.
        if let (Some(via), None) = (nexthop.via, &nexthop.dev) {
            nexthop.dev = lab
                .endpoints_of(&node.name)
                .find(|e| e.addresses.iter().any(|a| a.contains(&via)))
                .map(|e| e.ifname.clone());
        }
        steps.push(Step::AddNexthop { node: node.name.clone(), nexthop });
    }
    for route in &node.routing.routes {
        let ifindexes = route
            .hops
            .iter()
            .map(|h| h.dev.as_ref().and_then(|d| ifindex_of.get(&(node.name.clone(), d.clone())).copied()))
            .collect();
        steps.push(Step::AddRouteSpec { node: node.name.clone(), route: route.clone(), ifindexes });
    }
    for rule in &node.routing.rules {
        steps.push(Step::AddRule { node: node.name.clone(), rule: rule.clone() });
    }
    steps
}

/// `198.19.0.0/16 via 198.18.1.2 dev eth0 metric 10 table 100`, as `ip route` writes it.
pub fn route_text(route: &RouteSpec) -> String {
    let mut text = String::new();
    if route.kind != RouteType::Unicast {
        text.push_str(route.kind.name());
        text.push(' ');
    }
    let dest = if route.destination.prefix_len() == 0 { "default".to_string() } else { route.destination.to_string() };
    text.push_str(&dest);
    if let Some(id) = route.nexthop {
        text.push_str(&format!(" nhid {id}"));
    }
    let hop_text = |h: &crate::model::Hop| {
        let mut t = String::new();
        if let Some(via) = h.via {
            t.push_str(&format!(" via {via}"));
        }
        if let Some(dev) = &h.dev {
            t.push_str(&format!(" dev {dev}"));
        }
        if let Some(w) = h.weight {
            t.push_str(&format!(" weight {w}"));
        }
        t
    };
    if route.multipath {
        for hop in &route.hops {
            text.push_str(" nexthop");
            text.push_str(&hop_text(hop));
        }
    } else if let Some(hop) = route.hops.first() {
        text.push_str(&hop_text(hop));
    }
    if let Some(src) = route.src {
        text.push_str(&format!(" src {src}"));
    }
    if let Some(metric) = route.metric {
        text.push_str(&format!(" metric {metric}"));
    }
    if let Some(table) = route.table {
        text.push_str(&format!(" table {table}"));
    }
    text
}

/// `from 198.18.1.0/24 iif eth0 fwmark 0x7 priority 100 lookup 100`, as `ip rule` writes it.
pub fn rule_text(rule: &Rule) -> String {
    let mut parts = Vec::new();
    if let Some(p) = rule.priority {
        parts.push(format!("priority {p}"));
    }
    parts.push(format!("from {}", rule.from.map_or("all".to_string(), |n| n.to_string())));
    if let Some(to) = rule.to {
        parts.push(format!("to {to}"));
    }
    if let Some(iif) = &rule.iif {
        parts.push(format!("iif {iif}"));
    }
    if let Some(mark) = rule.fwmark {
        parts.push(format!("fwmark {mark:#x}"));
    }
    parts.push(format!("lookup {}", rule.table));
    parts.join(" ")
}

pub(super) fn describe_route(f: &mut fmt::Formatter<'_>, node: &str, route: &RouteSpec) -> fmt::Result {
    let family = if route.is_ipv4() { "" } else { " -6" };
    write!(f, "{node}: route{family} add {}", route_text(route))
}

pub(super) fn describe_rule(f: &mut fmt::Formatter<'_>, node: &str, rule: &Rule) -> fmt::Result {
    let family = if rule.ipv6 { " -6" } else { "" };
    write!(f, "{node}: rule{family} add {}", rule_text(rule))
}

/// `id 1 via 198.18.1.2 dev eth0`, `id 3 group 1/2,3`, `id 4 blackhole`, as `ip nexthop` writes them.
pub fn nexthop_text(nh: &Nexthop) -> String {
    let mut text = format!("id {}", nh.id);
    if let Some(via) = nh.via {
        text.push_str(&format!(" via {via}"));
    }
    if let Some(dev) = &nh.dev {
        text.push_str(&format!(" dev {dev}"));
    }
    if nh.blackhole {
        text.push_str(" blackhole");
    }
    if !nh.group.is_empty() {
        let members: Vec<String> =
            nh.group.iter().map(|(id, w)| if *w == 1 { id.to_string() } else { format!("{id},{w}") }).collect();
        text.push_str(&format!(" group {}", members.join("/")));
    }
    text
}

pub(super) fn describe_nexthop(f: &mut fmt::Formatter<'_>, node: &str, nh: &Nexthop) -> fmt::Result {
    write!(f, "{node}: nexthop add {}", nexthop_text(nh))
}
