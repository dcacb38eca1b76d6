//! Validation: every mistake a user can make in a lab, caught before the
//! kernel is touched, each with file:line and what to do.
//!
//! The script stage only rejects what the model cannot hold (a malformed
//! address, an unknown option); everything else is checked here, so a lab
//! built any other way gets the same checks.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::diag::{Diagnostic, Diagnostics, Origin};
use crate::model::index::LabIndex;
use crate::model::{Lab, Link, Node, NodeKind, BRIDGE_DEVICE};

pub mod impair;
mod ipsec;
mod l2;
mod limits;
mod neighbour;
mod nic;
mod routing;
mod xdp;

/// Lab names end up in `<lab>-<node>` netns names and state file names.
const MAX_LAB_NAME: usize = 32;
/// Node names as short as interface names, so `<lab>-<node>` stays readable.
const MAX_NODE_NAME: usize = 15;
/// IFNAMSIZ - 1.
const MAX_IFNAME: usize = 15;
const MAX_EXPERIMENT_NAME: usize = 64;
const MTU_RANGE: std::ops::RangeInclusive<u32> = 68..=65535;
/// IPv6 needs an MTU of at least 1280; the kernel disables it below that.
const IPV6_MIN_MTU: u32 = 1280;
const QUEUES_RANGE: std::ops::RangeInclusive<u32> = 1..=64;

pub fn validate(lab: &Lab) -> Result<(), Diagnostics> {
    let mut found = Vec::new();
    if let Err((mut message, help)) = check_lab_name(&lab.name) {
        if lab.file.file_stem().is_some_and(|stem| *stem == *lab.name) {
            message.push_str(" (taken from the file name)");
        }
        found.push(Diagnostic::new(Origin::new(&lab.file, 1), message).help(help));
    }
    // Per-node questions through one index: a 10,000-node lab validates in linear time.
    let index = LabIndex::new(lab);
    check_nodes(lab, &mut found);
    check_links(lab, &index, &mut found);
    check_unique_addresses(lab, &mut found);
    for node in &lab.nodes {
        check_routes(&index, node, &mut found);
        check_sysctls(&index, node, &mut found);
        check_tunings(lab, &index, node, &mut found);
        neighbour::check(lab, node, &mut found);
        routing::check(lab, node, &mut found);
        l2::check(lab, node, &mut found);
    }
    check_experiments(lab, &mut found);
    limits::check(lab, &index, &mut found);
    ipsec::check(lab, &mut found);
    xdp::check(lab, &mut found);
    nic::check(lab, &mut found);
    impair::check(lab, &mut found);
    if found.is_empty() {
        return Ok(());
    }
    // File order: the lab file first, then modules it required; stable within a line.
    found.sort_by_key(|d| (d.origin.file != lab.file, d.origin.file.clone(), d.origin.line));
    Err(Diagnostics(found))
}

/// `tune` names an interface the node has, once per interface; bridges have no queues to tune here.
fn check_tunings(lab: &Lab, index: &LabIndex, node: &Node, found: &mut Vec<Diagnostic>) {
    let mut seen = std::collections::HashSet::new();
    for tuning in &node.tunings {
        let has = index.endpoints_of(&node.name).any(|e| e.ifname == tuning.ifname);
        if !has {
            let names = lab.interface_names(&node.name);
            found.push(
                Diagnostic::new(
                    tuning.origin.clone(),
                    format!("tune(): node {} has no interface {:?}", node.name, tuning.ifname),
                )
                .help(if names.is_empty() {
                    "the node has no links yet".to_string()
                } else {
                    format!("its interfaces: {}", names.join(", "))
                }),
            );
        } else if !seen.insert(tuning.ifname.clone()) {
            found.push(
                Diagnostic::new(
                    tuning.origin.clone(),
                    format!("tune(): {}:{} is tuned twice", node.name, tuning.ifname),
                )
                .help("put all settings of an interface in one tune call"),
            );
        }
    }
}

/// Lab names: what the script stage checks `lab { name = ... }` with too.
pub fn check_lab_name(name: &str) -> Result<(), (String, String)> {
    let lower = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if name.starts_with(lower) && name.len() <= MAX_LAB_NAME && name.chars().all(|c| lower(c) || c == '-' || c == '_') {
        return Ok(());
    }
    Err((
        format!("{name:?} is not a valid lab name"),
        format!(
            "name the lab with lab {{ name = \"...\" }}: lowercase letters, digits, - and _, starting with a letter or digit, at most {MAX_LAB_NAME} characters"
        ),
    ))
}

fn error(origin: &Origin, message: impl Into<String>, help: impl Into<String>) -> Diagnostic {
    Diagnostic::new(origin.clone(), message).help(help)
}

/// "line 3", or the full place when it is in another file.
fn place(first: &Origin, here: &Origin) -> String {
    if first.file == here.file {
        format!("line {}", first.line)
    } else {
        first.to_string()
    }
}

fn is_identifier(name: &str, max: usize) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.len() <= max
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn check_nodes(lab: &Lab, found: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<&str, &Origin> = HashMap::new();
    for node in &lab.nodes {
        if !is_identifier(&node.name, MAX_NODE_NAME) {
            found.push(error(
                &node.origin,
                format!("{:?} is not a valid node name", node.name),
                format!(
                    "use letters, digits, - and _, starting with a letter or digit, at most {MAX_NODE_NAME} characters"
                ),
            ));
        }
        if let Some(first) = seen.insert(&node.name, &node.origin) {
            found.push(error(
                &node.origin,
                format!("there is already a node named {:?} (at {})", node.name, place(first, &node.origin)),
                "give every node and bridge its own name",
            ));
        }
        if node.kind == NodeKind::Bridge && node.forwarding {
            found.push(error(
                &node.origin,
                format!("bridge {} cannot forward", node.name),
                "a bridge switches frames; route on a node(..., { forwarding = true })",
            ));
        }
    }
}

fn check_links(lab: &Lab, index: &LabIndex, found: &mut Vec<Diagnostic>) {
    let mut ifnames: HashMap<(&str, &str), &Origin> = HashMap::new();
    let mut macs = HashMap::new();
    for link in &lab.links {
        let origin = &link.origin;
        let [a, b] = &link.ends;
        if a.node == b.node {
            found.push(error(
                origin,
                format!("link(): both ends are on {}", a.node),
                "a link joins two different nodes",
            ));
        }
        for end in &link.ends {
            let Some(node) = index.node(&end.node) else {
                found.push(error(
                    origin,
                    format!("link(): there is no node named {:?}", end.node),
                    format!("declare it with node({:?}) or bridge({:?}), or fix the name", end.node, end.node),
                ));
                continue;
            };
            if let Err(problem) = check_ifname(&end.ifname, node.kind) {
                found.push(error(
                    origin,
                    format!("link(): interface name {:?} on {}: {problem}", end.ifname, end.node),
                    "pick another name in names = { ... }",
                ));
            }
            if let Some(first) = ifnames.insert((&end.node, &end.ifname), origin) {
                found.push(error(
                    origin,
                    format!(
                        "{} already has an interface named {} (from {})",
                        end.node,
                        end.ifname,
                        place(first, origin)
                    ),
                    "name the interfaces apart with names = { ... } in link()",
                ));
            }
            if node.kind == NodeKind::Bridge && !end.addresses.is_empty() {
                found.push(error(
                    origin,
                    format!(
                        "link(): bridge ports carry no addresses, but the {} end is given {}",
                        end.node,
                        list(&end.addresses)
                    ),
                    "put the address on the node at the other end; write false for the bridge's end",
                ));
            }
            if let Some(mac) = end.mac {
                if !mac.is_unicast() || mac.0 == [0; 6] {
                    found.push(error(
                        origin,
                        format!("link(): mac {mac} of {}:{} is not a unicast address", end.node, end.ifname),
                        "the first byte must be even, e.g. 02:00:00:00:00:01 (locally administered)",
                    ));
                }
                let here = format!("{}:{}", end.node, end.ifname);
                if let Some((owner, first)) = macs.insert(mac, (here, origin)) {
                    found.push(error(
                        origin,
                        format!("link(): mac {mac} is used twice (also by {owner} at {})", place(first, origin)),
                        "give every interface its own mac, or leave mac out to get a derived one",
                    ));
                }
            }
        }
        check_link_numbers(link, found);
    }
}

fn check_link_numbers(link: &Link, found: &mut Vec<Diagnostic>) {
    let origin = &link.origin;
    if let Some(mtu) = link.mtu {
        if !MTU_RANGE.contains(&mtu) {
            found.push(error(
                origin,
                format!("link(): mtu {mtu} is out of range"),
                format!("use an mtu between {} and {}", MTU_RANGE.start(), MTU_RANGE.end()),
            ));
        } else if mtu < IPV6_MIN_MTU && link.ends.iter().flat_map(|e| &e.addresses).any(|a| matches!(a, IpNet::V6(_))) {
            found.push(error(
                origin,
                format!("link(): mtu {mtu} is too small for IPv6"),
                format!("IPv6 needs an mtu of at least {IPV6_MIN_MTU}"),
            ));
        }
    }
    if let Some(queues) = link.queues {
        if !QUEUES_RANGE.contains(&queues) {
            found.push(error(
                origin,
                format!("link(): {queues} queues is out of range"),
                format!("use between {} and {} queues", QUEUES_RANGE.start(), QUEUES_RANGE.end()),
            ));
        }
    }
}

/// The kernel's rules for interface names (dev_valid_name), plus the names
/// a lab namespace already has.
fn check_ifname(name: &str, kind: NodeKind) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_IFNAME {
        return Err(format!("must be 1 to {MAX_IFNAME} bytes long"));
    }
    if name == "." || name == ".." || name.contains(['/', ':']) || name.contains(char::is_whitespace) {
        return Err("must not be . or .. or contain /, : or spaces".into());
    }
    if name == "lo" || (kind == NodeKind::Bridge && name == BRIDGE_DEVICE) {
        return Err("the node already has a device with that name".into());
    }
    Ok(())
}

fn list(addresses: &[IpNet]) -> String {
    addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn check_unique_addresses(lab: &Lab, found: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<IpAddr, (String, &Origin)> = HashMap::new();
    let links = lab
        .links
        .iter()
        .flat_map(|l| l.ends.iter().map(move |e| (e.node.as_str(), e.ifname.as_str(), &e.addresses, &l.origin)));
    let nics = lab.nics.iter().map(|n| (n.node.as_str(), n.ifname.as_str(), &n.addresses, &n.origin));
    for (node, ifname, addresses, origin) in links.chain(nics) {
        for address in addresses {
            let here = format!("{node}:{ifname}");
            if let Some((owner, first)) = seen.insert(address.addr(), (here, origin)) {
                found.push(error(
                    origin,
                    format!(
                        "address {} is assigned twice (also to {owner} at {})",
                        address.addr(),
                        place(first, origin)
                    ),
                    "every address in a lab must be unique",
                ));
            }
        }
    }
}

fn check_routes(index: &LabIndex, node: &Node, found: &mut Vec<Diagnostic>) {
    let connected: Vec<IpNet> = index.addresses_of(&node.name).collect();
    let mut destinations: HashMap<IpNet, &Origin> = HashMap::new();
    for route in &node.routes {
        let (origin, dest, via) = (&route.origin, route.destination, route.via);
        if node.kind == NodeKind::Bridge {
            found.push(error(
                origin,
                format!("route(): {} is a bridge and has no routes", node.name),
                "add routes to the hosts and routers on the bridge",
            ));
            continue;
        }
        if let Some(first) = destinations.insert(dest, origin) {
            found.push(error(
                origin,
                format!("route(): {} already has a route to {dest} (at {})", node.name, place(first, origin)),
                "keep one route per destination",
            ));
        }
        if dest != dest.trunc() {
            found.push(error(
                origin,
                format!("route(): destination {dest} has host bits set"),
                format!("write the network: {}", dest.trunc()),
            ));
        }
        if dest.addr().is_ipv4() != via.is_ipv4() {
            found.push(error(
                origin,
                format!("route(): the destination {dest} and the gateway {via} are of different IP versions"),
                "use an IPv4 gateway for IPv4 routes and an IPv6 one for IPv6 routes",
            ));
        } else if connected.iter().any(|net| net.addr() == via) {
            found.push(error(
                origin,
                format!("route(): the gateway {via} is {}'s own address", node.name),
                "the gateway is the neighbour that forwards the packets, e.g. the router's address",
            ));
        } else if !connected.iter().any(|net| net.contains(&via)) {
            let mut subnets: Vec<IpNet> = Vec::new();
            // Two addresses on one subnet: the subnet once.
            for net in connected.iter().filter(|n| n.addr().is_ipv4() == via.is_ipv4()).map(IpNet::trunc) {
                if !subnets.contains(&net) {
                    subnets.push(net);
                }
            }
            let help = if subnets.is_empty() {
                format!(
                    "{} has no {} address; add one to a link first",
                    node.name,
                    if via.is_ipv4() { "IPv4" } else { "IPv6" }
                )
            } else {
                format!("the gateway must be a neighbour on one of {}'s subnets: {}", node.name, list(&subnets))
            };
            found.push(error(
                origin,
                format!("route(): the gateway {via} is not on any subnet of {}", node.name),
                help,
            ));
        }
    }
}

fn check_sysctls(index: &LabIndex, node: &Node, found: &mut Vec<Diagnostic>) {
    for sysctl in &node.sysctls {
        let (origin, key) = (&sysctl.origin, sysctl.key.as_str());
        let well_formed = !key.is_empty()
            && !key.starts_with('.')
            && !key.ends_with('.')
            && !key.contains("..")
            && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
        if !well_formed {
            found.push(error(
                origin,
                format!("sysctl(): {key:?} is not a sysctl key"),
                "write it dotted, like net.ipv4.conf.all.rp_filter",
            ));
            continue;
        }
        if !key.starts_with("net.") {
            found.push(error(
                origin,
                format!("sysctl(): {key} is not a net.* sysctl"),
                "a lab only changes the network settings of its own namespaces (net.*)",
            ));
            continue;
        }
        // net.ipv4.conf.<dev>.x and net.ipv6.neigh.<dev>.x need the device.
        let parts: Vec<&str> = key.split('.').collect();
        if let ["net", "ipv4" | "ipv6", "conf" | "neigh", dev, _, ..] = parts.as_slice() {
            let known = ["all", "default", "lo"].contains(dev)
                || (node.kind == NodeKind::Bridge && *dev == BRIDGE_DEVICE)
                || index.endpoints_of(&node.name).any(|e| e.ifname == *dev);
            if !known {
                found.push(error(
                    origin,
                    format!("sysctl(): {} has no interface {dev}", node.name),
                    "name one of the node's interfaces, or all/default",
                ));
            }
        }
        if sysctl.value.is_empty() || sysctl.value.contains('\n') {
            found.push(error(
                origin,
                format!("sysctl(): {key} is given the value {:?}", sysctl.value),
                "give a number, string or boolean on one line",
            ));
        }
    }
}

fn check_experiments(lab: &Lab, found: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<&str, &Origin> = HashMap::new();
    for experiment in &lab.experiments {
        let origin = &experiment.origin;
        if !is_identifier(&experiment.name, MAX_EXPERIMENT_NAME) {
            found.push(error(
                origin,
                format!("{:?} is not a valid experiment name", experiment.name),
                format!(
                    "use letters, digits, - and _, at most {MAX_EXPERIMENT_NAME} characters (it names snapshot files)"
                ),
            ));
        }
        if let Some(first) = seen.insert(&experiment.name, origin) {
            found.push(error(
                origin,
                format!("there is already an experiment named {:?} (at {})", experiment.name, place(first, origin)),
                "give every experiment its own name",
            ));
        }
    }
}
