//! The lab as plain data: what the script declared, nothing live.
//!
//! Everything `plan`, `graph` and `show --json` print comes from here. The
//! script stage builds a [`Lab`]; [`crate::validate`] checks it; the plan
//! stage turns it into kernel steps.

pub mod impair;
pub mod index;
pub mod ipsec;
pub mod l2;
pub mod layout;
mod mac;
pub mod neighbour;
pub mod nic;
pub mod routing;
pub mod xdp;

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::diag::Origin;
pub use impair::{ImpairSettings, Impairment};
pub use ipsec::{Backend, Cipher, Ipsec, IpsecMode};
pub use l2::{BridgeOptions, Devices, PortOptions, Vlan, VlanProtocol, Vrf};
pub use mac::MacAddr;
pub use neighbour::{Neighbour, NeighbourEntry};
pub use nic::{MacvlanMode, NicClaim, NicSource, Param, Sriov, VfLinkState, VfSettings};
pub use routing::{Hop, Nexthop, RouteSpec, RouteType, Routing, Rule};
pub use xdp::{Xdp, XdpMode, XdpObject};

/// Name of the bridge device inside a bridge node's namespace.
pub const BRIDGE_DEVICE: &str = "br0";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lab {
    pub name: String,
    pub description: Option<String>,
    /// The script the lab was read from.
    pub file: PathBuf,
    pub nodes: Vec<Node>,
    pub links: Vec<Link>,
    pub experiments: Vec<Experiment>,
    /// IPsec links declared with `ipsec { ... }` (model/ipsec.rs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipsec: Vec<Ipsec>,
    /// XDP programs attached at `up`: `xdp("r1:eth0", { ... })` (model/xdp.rs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xdp: Vec<Xdp>,
    /// Parameters the script read with `param()` (model/nic.rs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    /// Host devices claimed into nodes, macvlans and VFs (model/nic.rs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nics: Vec<NicClaim>,
    /// PFs whose VFs the lab creates and sets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sriov: Vec<Sriov>,
    /// `lab { exclusive = true }`: `labctl test` runs this lab while no other
    /// lab runs (it changes something machine-wide, or measures the machine).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exclusive: bool,
    /// Link impairments, one per impaired end (model/impair.rs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub impairments: Vec<Impairment>,
    /// `lab { static_neighbours = true }`: a permanent neighbour entry for
    /// every lab address on every connected subnet (model/neighbour.rs).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub static_neighbours: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A network namespace with the lab's interfaces in it.
    Host,
    /// A namespace holding one Linux bridge ([`BRIDGE_DEVICE`]); every link to it is a port.
    Bridge,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub kind: NodeKind,
    /// ip_forward on, for IPv4 and IPv6.
    pub forwarding: bool,
    pub routes: Vec<Route>,
    pub sysctls: Vec<Sysctl>,
    /// Per-interface tuning: `h1:tune("eth0", { ... })`.
    #[serde(default)]
    pub tunings: Vec<Tuning>,
    /// `node("h1", { cpu = "50%" })`: the CPU its commands may use, in
    /// percent of one CPU (cgroup v2 `cpu.max`, apply/cgroup.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<u32>,
    /// Permanent neighbour entries: `h1:neighbour("eth0", ip, mac)` (model/neighbour.rs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub neighbours: Vec<Neighbour>,
    /// Routes with options and policy rules (model/routing.rs).
    #[serde(default, skip_serializing_if = "Routing::is_empty")]
    pub routing: Routing,
    /// VRFs, VLANs, bridge and port options (model/l2.rs).
    #[serde(default, skip_serializing_if = "Devices::is_empty")]
    pub devices: Devices,
    pub origin: Origin,
}

/// A veth pair between two nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub ends: [Endpoint; 2],
    pub mtu: Option<u32>,
    /// Number of TX and RX queues on both ends.
    pub queues: Option<u32>,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub node: String,
    /// Interface name inside the node (`eth0`, ... unless named in the script).
    pub ifname: String,
    pub addresses: Vec<IpNet>,
    /// Given in the script; otherwise derived (see [`MacAddr::derive`]).
    pub mac: Option<MacAddr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// `0.0.0.0/0` or `::/0` for "default" (family taken from the gateway).
    pub destination: IpNet,
    pub via: IpAddr,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sysctl {
    /// Dotted key, e.g. `net.ipv4.conf.all.rp_filter`.
    pub key: String,
    pub value: String,
    pub origin: Origin,
}

/// Receive/transmit tuning of one interface, from `h1:tune("eth0", {...})`.
/// Unset fields keep the kernel's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tuning {
    pub ifname: String,
    /// RPS: hex CPU mask for every receive queue (`/sys/class/net/<if>/queues/rx-*/rps_cpus`).
    pub rps_cpus: Option<String>,
    /// XPS: hex CPU mask for every transmit queue.
    pub xps_cpus: Option<String>,
    /// RFS: flow table entries per receive queue (`rps_flow_cnt`).
    pub rps_flow_cnt: Option<u32>,
    /// Offloads by name: `gro`, `gso`, `tso`, `rx_checksum`, `tx_checksum`.
    pub offloads: std::collections::BTreeMap<String, bool>,
    /// NAPI in kernel threads instead of softirq (`/sys/class/net/<if>/threaded`).
    pub threaded: Option<bool>,
    pub origin: Origin,
}

/// The offloads `tune` can switch.
pub const OFFLOADS: &[&str] = &["gro", "gso", "tso", "rx_checksum", "tx_checksum"];

/// An experiment declared with `experiment("name", fn)`; the function itself
/// stays in the script's Lua state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    pub name: String,
    pub origin: Origin,
    /// `experiment(name, fn, { timeout = "10m" })`; unset means the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<std::time::Duration>,
}

impl Lab {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The network namespace name of a node: `<lab>-<node>`.
    pub fn netns_name(&self, node: &str) -> String {
        netns_name(&self.name, node)
    }

    /// Devices claimed into `node` (whole NICs, macvlans, VFs), in declaration order.
    pub fn nics_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a NicClaim> + 'a {
        self.nics.iter().filter(move |n| n.node == node)
    }

    /// Every address of `node`: on its link ends, then on its claimed devices, then on its VLANs.
    pub fn addresses_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = IpNet> + 'a {
        let links = self.endpoints_of(node).flat_map(|e| e.addresses.iter().copied());
        let vlans =
            self.node(node).into_iter().flat_map(|n| n.devices.vlans.iter().flat_map(|v| v.addresses.iter().copied()));
        links.chain(self.nics_of(node).flat_map(|n| n.addresses.iter().copied())).chain(vlans)
    }

    /// Every link end that sits in `node`, in declaration order.
    pub fn endpoints_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Endpoint> + 'a {
        self.links.iter().flat_map(|l| l.ends.iter()).filter(move |e| e.node == node)
    }

    /// The interface names of `node`, each once, in declaration order (a
    /// name declared twice is a mistake validation reports; listing it
    /// twice in a help line would only confuse).
    pub fn interface_names(&self, node: &str) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for end in self.endpoints_of(node) {
            if !names.contains(&end.ifname) {
                names.push(end.ifname.clone());
            }
        }
        names
    }

    /// The impairment of one end, if the lab declares one.
    pub fn impairment_of(&self, node: &str, ifname: &str) -> Option<&Impairment> {
        self.impairments.iter().find(|i| i.node == node && i.ifname == ifname)
    }

    /// The other end of the link `node`'s `ifname` is on.
    pub fn peer_of(&self, node: &str, ifname: &str) -> Option<&Endpoint> {
        self.links.iter().find_map(|l| match &l.ends {
            [a, b] if a.node == node && a.ifname == ifname => Some(b),
            [a, b] if b.node == node && b.ifname == ifname => Some(a),
            _ => None,
        })
    }

    /// The MAC an endpoint gets: the script's, or one derived from lab, node and interface.
    pub fn mac_of(&self, end: &Endpoint) -> MacAddr {
        end.mac.unwrap_or_else(|| MacAddr::derive(&self.name, &end.node, &end.ifname))
    }
}

pub fn netns_name(lab: &str, node: &str) -> String {
    format!("{lab}-{node}")
}
