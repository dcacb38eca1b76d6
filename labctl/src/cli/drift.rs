//! What `labctl show` compares: each node as the kernel has it against what
//! the lab declared, as a list of differences (missing, added, changed).
//! Pure: the kernel was read before (see show.rs).

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use labctl::model::index::LabIndex;
use labctl::model::{Lab, MacAddr, NodeKind, BRIDGE_DEVICE};
use labctl::observe::counters::{Neighbour, Route, RuleEntry};
use labctl::observe::interfaces::Interface;
use serde::Serialize;

/// A node's interfaces, routes and neighbours, read from its namespace.
#[derive(Debug, Clone, Serialize)]
pub struct Actual {
    pub interfaces: Vec<Interface>,
    pub routes: Vec<Route>,
    /// Policy rules but the kernel's three defaults (local, main, default).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleEntry>,
    pub neighbours: Vec<Neighbour>,
}

/// Leaves out the rules every namespace starts with.
pub fn non_default_rules(rules: Vec<RuleEntry>) -> Vec<RuleEntry> {
    let default = |r: &RuleEntry| {
        r.from.is_none()
            && r.to.is_none()
            && r.iif.is_none()
            && r.fwmark.is_none()
            && matches!((r.priority, r.table), (0, 255) | (32766, 254) | (32767, 253))
    };
    rules.into_iter().filter(|r| !default(r)).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Declared, not in the kernel.
    Missing,
    /// In the kernel, not declared.
    Added,
    /// In both, different.
    Changed,
}

/// One difference between the declaration and the kernel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Drift {
    pub node: String,
    pub kind: Kind,
    /// `interface eth1`, `address 198.18.9.9/24 on eth0`, `route default via 198.18.1.2`, ...
    pub what: String,
    /// How it differs, for `changed`: `mac 02:.. (declared 02:..)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Where the script declared it (`labs/part1.lua:20`), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_at: Option<String>,
}

/// Interfaces a new namespace gets by itself when tunnel modules are loaded
/// (and strongSwan's user-space ESP device): not the lab's, not drift.
const KERNEL_OWN: &[&str] =
    &["lo", "tunl0", "sit0", "ip6tnl0", "gre0", "gretap0", "erspan0", "ip_vti0", "ip6_vti0", "ip6gre0", "ipsec0"];

/// An interface as declared: name, MAC, MTU (if set) and addresses.
struct Declared {
    name: String,
    /// `None` for VRFs (a random MAC) and VLANs (their parent's).
    mac: Option<MacAddr>,
    mtu: Option<u32>,
    addresses: Vec<IpNet>,
    origin: String,
}

fn declared_interfaces(index: &LabIndex, node: &str) -> Vec<Declared> {
    let lab = index.lab();
    let mut declared = Vec::new();
    if let Some(bridge) = index.node(node).filter(|n| n.kind == NodeKind::Bridge) {
        let origin = bridge.origin.to_string();
        let mac = MacAddr::derive(&lab.name, node, BRIDGE_DEVICE);
        declared.push(Declared { name: BRIDGE_DEVICE.into(), mac: Some(mac), mtu: None, addresses: vec![], origin });
    }
    for (link, side) in index.links_of(node) {
        let end = &link.ends[side];
        declared.push(Declared {
            name: end.ifname.clone(),
            mac: Some(lab.mac_of(end)),
            mtu: link.mtu,
            addresses: end.addresses.clone(),
            origin: link.origin.to_string(),
        });
    }
    // VRFs and VLANs (model/l2.rs).
    let devices = lab.node(node).map(|n| &n.devices);
    for vrf in devices.iter().flat_map(|d| &d.vrfs) {
        let origin = vrf.origin.to_string();
        declared.push(Declared { name: vrf.name.clone(), mac: None, mtu: None, addresses: vec![], origin });
    }
    for vlan in devices.iter().flat_map(|d| &d.vlans) {
        let (name, addresses, origin) = (vlan.name.clone(), vlan.addresses.clone(), vlan.origin.to_string());
        declared.push(Declared { name, mac: None, mtu: None, addresses, origin });
    }
    declared
}

/// Every difference on `node`; `actual` None means its namespace is gone.
#[cfg(test)]
pub fn of_node(lab: &Lab, node: &str, actual: Option<&Actual>) -> Vec<Drift> {
    of_node_in(&LabIndex::new(lab), node, actual)
}

/// [`of_node`] through an index of the lab: `show` asks it for every node.
pub fn of_node_in(index: &LabIndex, node: &str, actual: Option<&Actual>) -> Vec<Drift> {
    let origin = index.node(node).map(|n| n.origin.to_string());
    let Some(actual) = actual else {
        return vec![drift(node, Kind::Missing, "namespace", None, origin)];
    };
    let mut found = interfaces(node, &declared_interfaces(index, node), &actual.interfaces);
    found.extend(routes(index, node, &actual.routes));
    found.extend(rules(index.lab(), node, &actual.rules));
    found.sort();
    found
}

fn drift(node: &str, kind: Kind, what: impl Into<String>, detail: Option<String>, at: Option<String>) -> Drift {
    Drift { node: node.to_string(), kind, what: what.into(), detail, declared_at: at }
}

fn interfaces(node: &str, declared: &[Declared], actual: &[Interface]) -> Vec<Drift> {
    let mut found = Vec::new();
    for want in declared {
        let at = Some(want.origin.clone());
        let Some(have) = actual.iter().find(|i| i.name == want.name) else {
            found.push(drift(node, Kind::Missing, format!("interface {}", want.name), None, at));
            continue;
        };
        let mut changes = Vec::new();
        if let (Some(have_mac), Some(want_mac)) = (have.mac, want.mac) {
            if have_mac != want_mac {
                changes.push(format!("mac {have_mac} (declared {want_mac})"));
            }
        }
        if let (Some(want_mtu), Some(have_mtu)) = (want.mtu, have.mtu) {
            if want_mtu != have_mtu {
                changes.push(format!("mtu {have_mtu} (declared {want_mtu})"));
            }
        }
        if !have.admin_up {
            changes.push("state down (set down; declared up)".to_string());
        } else if have.state != "up" && have.state != "unknown" {
            changes.push(format!("state {} (declared up)", have.state));
        }
        if !changes.is_empty() {
            let what = format!("interface {}", want.name);
            found.push(drift(node, Kind::Changed, what, Some(changes.join(", ")), at.clone()));
        }
        for address in want.addresses.iter().filter(|a| !have.addresses.contains(a)) {
            found.push(drift(node, Kind::Missing, format!("address {address} on {}", want.name), None, at.clone()));
        }
        for address in have.addresses.iter().filter(|a| !want.addresses.contains(a) && !is_link_local(a)) {
            found.push(drift(node, Kind::Added, format!("address {address} on {}", want.name), None, None));
        }
    }
    let names: BTreeSet<&str> = declared.iter().map(|d| d.name.as_str()).collect();
    for extra in actual.iter().filter(|i| !names.contains(i.name.as_str()) && !KERNEL_OWN.contains(&i.name.as_str())) {
        found.push(drift(node, Kind::Added, format!("interface {}", extra.name), None, None));
    }
    found
}

/// Link-local IPv6 addresses: the kernel's (or labctl's EUI-64) own.
pub fn is_link_local(address: &IpNet) -> bool {
    matches!(address.addr(), IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80)
}

/// Declared routes against the kernel's main table and the tables the
/// node's routes with options name, leaving out the routes the kernel
/// makes for connected subnets (proto kernel).
fn routes(index: &LabIndex, node: &str, actual: &[Route]) -> Vec<Drift> {
    let Some(declared) = index.node(node) else { return vec![] };
    let tables: BTreeSet<Option<u32>> =
        declared.routing.routes.iter().map(|r| r.table.filter(|t| *t != MAIN_TABLE)).chain([None]).collect();
    let chosen: Vec<&Route> = actual.iter().filter(|r| tables.contains(&r.table) && r.proto != "kernel").collect();
    let mut wanted: Vec<Wanted> = declared
        .routes
        .iter()
        .map(|r| Wanted {
            dst: r.destination,
            via: Some(r.via),
            table: None,
            kind: "unicast",
            text: route_text(&r.destination, Some(r.via)),
            at: r.origin.to_string(),
        })
        .collect();
    // A route through a nexthop object shows as the nexthop resolves: a
    // group by its first member, a blackhole nexthop as a blackhole route.
    let nexthop = |id: u32| declared.routing.nexthops.iter().find(|n| n.id == id);
    let resolved = |r: &labctl::model::RouteSpec| -> (Option<IpAddr>, &'static str) {
        let Some(nh) = r.nexthop.and_then(nexthop) else {
            return (r.hops.first().and_then(|h| h.via), r.kind.name());
        };
        let first = nh.group.first().and_then(|(id, _)| nexthop(*id)).unwrap_or(nh);
        (first.via, if first.blackhole { "blackhole" } else { "unicast" })
    };
    wanted.extend(declared.routing.routes.iter().map(|r| Wanted {
        dst: r.destination,
        via: resolved(r).0,
        table: r.table.filter(|t| *t != MAIN_TABLE),
        kind: resolved(r).1,
        text: labctl::plan::route_text(r),
        at: r.origin.to_string(),
    }));
    let mut found = Vec::new();
    let mut explained = BTreeSet::new();
    for want in &wanted {
        let at = Some(want.at.clone());
        let what = format!("route {}", want.text);
        let same_place = |r: &&&Route| r.dst == want.dst && r.table == want.table;
        if chosen.iter().any(|r| same_place(&r) && r.via == want.via && r.kind == want.kind) {
            explained.insert((want.dst, want.via, want.table));
            continue;
        }
        match chosen.iter().find(|r| same_place(r)) {
            Some(other) => {
                explained.insert((other.dst, other.via, other.table));
                let now = observed_text(other);
                found.push(drift(node, Kind::Changed, what, Some(format!("now {now}")), at));
            }
            None => found.push(drift(node, Kind::Missing, what, None, at)),
        }
    }
    for extra in chosen.iter().filter(|r| !explained.contains(&(r.dst, r.via, r.table))) {
        found.push(drift(node, Kind::Added, format!("route {}", observed_text(extra)), None, None));
    }
    found
}

const MAIN_TABLE: u32 = 254;

/// Declared policy rules against the kernel's (its default three left out),
/// on nodes that declare rules: elsewhere rules are an IPsec daemon's (220).
fn rules(lab: &Lab, node: &str, actual: &[RuleEntry]) -> Vec<Drift> {
    let Some(declared) = lab.node(node).filter(|n| !n.routing.rules.is_empty()) else { return vec![] };
    let mut matched = vec![false; actual.len()];
    let mut found = Vec::new();
    for want in &declared.routing.rules {
        let same = |r: &RuleEntry| {
            r.from == want.from
                && r.to == want.to
                && r.iif == want.iif
                && r.fwmark == want.fwmark
                && r.table == want.table
                && (r.family == 6) == want.ipv6
                && want.priority.is_none_or(|p| p == r.priority)
        };
        match actual.iter().enumerate().find(|(i, r)| !matched[*i] && same(r)) {
            Some((i, _)) => matched[i] = true,
            None => found.push(drift(
                node,
                Kind::Missing,
                format!("rule {}", labctl::plan::rule_text(want)),
                None,
                Some(want.origin.to_string()),
            )),
        }
    }
    for (r, _) in actual.iter().zip(&matched).filter(|(_, m)| !**m) {
        let from = r.from.map_or("all".into(), |n| n.to_string());
        found.push(drift(
            node,
            Kind::Added,
            format!("rule {}: from {from} lookup {}", r.priority, r.table),
            None,
            None,
        ));
    }
    found
}

/// A declared route, plain or with options, as drift compares it.
struct Wanted {
    dst: IpNet,
    via: Option<IpAddr>,
    table: Option<u32>,
    kind: &'static str,
    text: String,
    at: String,
}

/// A kernel route as `route_text` writes it, with its kind and table when not plain.
fn observed_text(r: &Route) -> String {
    let mut text = route_text(&r.dst, r.via);
    if r.kind != "unicast" {
        text = format!("{} {text}", r.kind);
    }
    if let Some(table) = r.table {
        text.push_str(&format!(" table {table}"));
    }
    text
}

/// `default via 198.18.1.2`, `198.19.0.0/16 via 198.18.1.2`, `198.19.5.0/24`.
pub fn route_text(dst: &IpNet, via: Option<IpAddr>) -> String {
    let dst = if dst.prefix_len() == 0 { "default".to_string() } else { dst.to_string() };
    match via {
        Some(via) => format!("{dst} via {via}"),
        None => dst,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> Lab {
        let source = "lab { name = \"d\" }\nlocal a, b = node(\"a\"), node(\"b\")\n\
                      link(a, b, { \"198.18.0.1/24\", \"198.18.0.2/24\" })\n\
                      a:route(\"default\", \"198.18.0.2\")\n";
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("d.lua");
        std::fs::write(&file, source).unwrap();
        labctl::script::load(&file).unwrap().lab
    }

    fn as_declared(lab: &Lab) -> Actual {
        let end = &lab.links[0].ends[0];
        let eth0 = Interface {
            name: "eth0".into(),
            mac: Some(lab.mac_of(end)),
            mtu: Some(1500),
            admin_up: true,
            state: "up".into(),
            addresses: end.addresses.clone(),
        };
        let route = Route {
            dst: "0.0.0.0/0".parse().unwrap(),
            table: None,
            via: Some("198.18.0.2".parse().unwrap()),
            dev: Some("eth0".into()),
            proto: "static".into(),
            scope: "universe".into(),
            kind: "unicast".into(),
            metric: None,
            src: None,
        };
        Actual { interfaces: vec![eth0], routes: vec![route], rules: vec![], neighbours: vec![] }
    }

    #[test]
    fn a_node_as_declared_has_no_drift() {
        let lab = lab();
        assert_eq!(of_node(&lab, "a", Some(&as_declared(&lab))), vec![]);
    }

    #[test]
    fn a_deleted_route_an_added_address_and_a_downed_link_are_drift() {
        let lab = lab();
        let mut actual = as_declared(&lab);
        actual.routes.clear();
        actual.interfaces[0].addresses.push("198.18.9.9/24".parse().unwrap());
        actual.interfaces[0].admin_up = false;
        let found: Vec<(Kind, String)> =
            of_node(&lab, "a", Some(&actual)).into_iter().map(|d| (d.kind, d.what)).collect();
        assert_eq!(
            found,
            vec![
                (Kind::Missing, "route default via 198.18.0.2".to_string()),
                (Kind::Added, "address 198.18.9.9/24 on eth0".to_string()),
                (Kind::Changed, "interface eth0".to_string()),
            ]
        );
    }

    #[test]
    fn a_gone_namespace_is_one_missing_item() {
        let found = of_node(&lab(), "b", None);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].kind, found[0].what.as_str()), (Kind::Missing, "namespace"));
    }
}
