//! Lab -> Plan. Pure: the same lab always gives the same plan.

use std::collections::HashMap;

use ipnet::{IpNet, Ipv6Net};

use super::{Device, Plan, Step};
use crate::model::{Lab, NodeKind, BRIDGE_DEVICE};

/// Every node gets no automatic IPv6 link-local addresses: each would bring
/// DAD, router solicitations and MLD reports, packets in every counter.
/// `default` is written before any device exists, so every device inherits it.
/// ICMP datagram ("ping") sockets are open to every group, as most
/// distributions set it on the host: ping tools, labctl's own among them,
/// use them so echo replies are delivered rather than dropped as NO_SOCKET.
/// And no IGMP reports for link-local groups (224.0.0.x need none): a bridge
/// joins 224.0.0.106 and would repeat its report up to a second after `up`.
pub const NODE_DEFAULTS: &[(&str, &str)] = &[
    ("net.ipv6.conf.default.addr_gen_mode", "1"),
    ("net.ipv4.ping_group_range", "0 2147483647"),
    ("net.ipv4.igmp_link_local_mcast_reports", "0"),
];

/// Nodes without any IPv6 address have IPv6 switched off altogether: even
/// without link-local addresses, a forwarding node joins the all-routers
/// groups and sends MLD reports its neighbours then drop.
pub const IPV6_OFF: &[(&str, &str)] = &[("net.ipv6.conf.default.disable_ipv6", "1")];

/// Nodes with IPv6 addresses also get no DAD, autoconf, router advertisements
/// or solicitations. Their interfaces get an explicit EUI-64 link-local
/// address instead of an automatic one: a router needs one to solicit
/// neighbours for forwarded packets.
///
/// MLD, IPv6's IGMP, has no switch for link-local groups (the solicited-node
/// groups every address joins are reported), so its reports are made to end
/// during `up` instead ([`Step::SettleIpv6`] waits for that): MLDv1, which
/// reports a group as it is joined and repeats it once after a random delay
/// below 1 ms, and sends nothing when an address leaves DAD, rather than
/// MLDv2, which reports again when it does; and the start of DAD (which
/// ends at once without `accept_dad`) without its random delay of up to a
/// second, after which a forwarding node joins more groups.
pub const QUIET_IPV6_ADDRESSED: &[(&str, &str)] = &[
    ("net.ipv6.conf.default.accept_dad", "0"),
    ("net.ipv6.conf.default.autoconf", "0"),
    ("net.ipv6.conf.default.accept_ra", "0"),
    ("net.ipv6.conf.default.router_solicitations", "0"),
    ("net.ipv6.conf.default.router_solicitation_delay", "0"),
    ("net.ipv6.conf.default.force_mld_version", "1"),
    ("net.ipv6.conf.default.mldv1_unsolicited_report_interval", "1"),
];

/// Builds the plan of a validated lab.
pub fn plan(lab: &Lab) -> Plan {
    let mut steps = Vec::new();
    // Next free ifindex per node; 1 is lo.
    let mut next_index: HashMap<&str, u32> = lab.nodes.iter().map(|n| (n.name.as_str(), 2)).collect();
    let mut take_index = |node: &str| {
        let i = next_index.get_mut(node).expect("validated: link ends name nodes");
        *i += 1;
        *i - 1
    };
    let device = |node: &str, ifname: &str, ifindex| Device { node: node.into(), ifname: ifname.into(), ifindex };

    let mut ipv6_nodes = Vec::new();
    let index = crate::model::index::LabIndex::new(lab);
    for node in &lab.nodes {
        steps.push(Step::CreateNamespace { node: node.name.clone(), netns: lab.netns_name(&node.name) });
        let ipv6 = index.addresses_of(&node.name).any(|a| matches!(a, IpNet::V6(_)));
        steps.push(Step::NodeDefaults { node: node.name.clone(), ipv6 });
        if ipv6 {
            ipv6_nodes.push(node.name.clone());
        }
        steps.push(Step::SetUp { device: device(&node.name, "lo", 1) });
    }

    let mut bridge_index = HashMap::new();
    for node in lab.nodes.iter().filter(|n| n.kind == NodeKind::Bridge) {
        let ifindex = take_index(&node.name);
        bridge_index.insert(node.name.as_str(), ifindex);
        let mac = crate::model::MacAddr::derive(&lab.name, &node.name, BRIDGE_DEVICE);
        steps.push(Step::CreateBridge { device: device(&node.name, BRIDGE_DEVICE, ifindex), mac });
    }

    let mut configure = Vec::new();
    // Where each interface ended up, for steps that name it later.
    let mut ifindex_of: HashMap<(String, String), u32> = HashMap::new();
    for link in &lab.links {
        // Create from the bridge side when there is one, so the port is
        // enslaved and up in the create message itself.
        let [a, b] = &link.ends;
        let (main, peer) = if bridge_index.contains_key(b.node.as_str()) && !bridge_index.contains_key(a.node.as_str())
        {
            (b, a)
        } else {
            (a, b)
        };
        let main_dev = device(&main.node, &main.ifname, take_index(&main.node));
        let peer_dev = device(&peer.node, &peer.ifname, take_index(&peer.node));
        steps.push(Step::CreateVeth {
            device: main_dev.clone(),
            mac: lab.mac_of(main),
            master: bridge_index.get(main.node.as_str()).copied(),
            peer: peer_dev.clone(),
            peer_mac: lab.mac_of(peer),
            mtu: link.mtu,
            queues: link.queues,
        });
        configure.push(Step::SetUp { device: peer_dev.clone() });
        for dev in [&main_dev, &peer_dev] {
            ifindex_of.insert((dev.node.clone(), dev.ifname.clone()), dev.ifindex);
        }
        for (end, dev) in [(main, &main_dev), (peer, &peer_dev)] {
            if end.addresses.iter().any(|a| matches!(a, IpNet::V6(_))) {
                let link_local = Ipv6Net::new(lab.mac_of(end).link_local(), 64).expect("64 is a valid prefix");
                configure.push(Step::AddAddress { device: dev.clone(), address: IpNet::V6(link_local) });
            }
            for address in &end.addresses {
                configure.push(Step::AddAddress { device: dev.clone(), address: *address });
            }
        }
    }
    steps.extend(configure);
    steps.extend(super::l2::steps(lab, &mut ifindex_of, &mut take_index, &bridge_index));

    for node in &lab.nodes {
        if node.forwarding {
            for key in ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"] {
                steps.push(Step::Sysctl { node: node.name.clone(), key: key.into(), value: "1".into() });
            }
        }
        for sysctl in &node.sysctls {
            steps.push(Step::Sysctl { node: node.name.clone(), key: sysctl.key.clone(), value: sysctl.value.clone() });
        }
        for tuning in &node.tunings {
            let ifindex = ifindex_of[&(node.name.clone(), tuning.ifname.clone())];
            steps.push(Step::Tune { device: device(&node.name, &tuning.ifname, ifindex), tuning: tuning.clone() });
        }
        for route in &node.routes {
            steps.push(Step::AddRoute { node: node.name.clone(), destination: route.destination, via: route.via });
        }
        steps.extend(super::routing::steps(lab, node, &ifindex_of));
    }
    steps.extend(ipv6_nodes.into_iter().map(|node| Step::SettleIpv6 { node }));
    steps.extend(super::nic::steps(lab));
    steps.extend(super::ipsec::steps(lab));
    steps.extend(super::xdp::steps(lab, &ifindex_of));
    steps.extend(super::impair::steps(lab, &ifindex_of));
    steps.sort_by_key(Step::phase); // stable: keeps declaration order within a phase
    Plan { lab: lab.name.clone(), steps }
}
