//! Layer-2 and VRF devices of a node: `h1:vrf(...)`, `h1:vlan(...)`, a
//! bridge's options (`bridge("sw", { vlan_filtering = true })`) and its
//! ports' (`sw:port("eth0", { pvid = 10 })`).

use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::diag::Origin;

/// `h1:vrf("blue", { table = 10, interfaces = { "eth0" } })`: a VRF device
/// bound to a routing table, the named interfaces enslaved to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vrf {
    pub name: String,
    pub table: u32,
    pub interfaces: Vec<String>,
    pub origin: Origin,
}

/// The tag a VLAN sub-interface adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum VlanProtocol {
    /// 802.1Q, ethertype 0x8100.
    #[default]
    #[serde(rename = "802.1q")]
    Dot1Q,
    /// 802.1ad (QinQ's outer tag), ethertype 0x88a8.
    #[serde(rename = "802.1ad")]
    Dot1Ad,
}

impl VlanProtocol {
    pub fn ethertype(self) -> u16 {
        match self {
            VlanProtocol::Dot1Q => 0x8100,
            VlanProtocol::Dot1Ad => 0x88a8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            VlanProtocol::Dot1Q => "802.1q",
            VlanProtocol::Dot1Ad => "802.1ad",
        }
    }
}

/// `h1:vlan("eth0", 10, { addresses = { "198.18.10.1/24" } })`: a VLAN
/// sub-interface `name` (default `<parent>.<id>`) on `parent`, which may be
/// another VLAN (QinQ).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vlan {
    pub name: String,
    pub parent: String,
    pub id: u16,
    #[serde(default)]
    pub protocol: VlanProtocol,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<IpNet>,
    pub origin: Origin,
}

/// `bridge("sw", { ... })`. Unset fields keep the kernel's defaults, except
/// STP, which a lab bridge has off unless asked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BridgeOptions {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vlan_filtering: bool,
    /// The pvid new ports get (kernel default 1; 0 means none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_pvid: Option<u16>,
    /// How long a learned FDB entry lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ageing: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multicast_snooping: Option<bool>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stp: bool,
}

impl BridgeOptions {
    pub fn is_default(&self) -> bool {
        *self == BridgeOptions::default()
    }
}

/// `sw:port("eth0", { vlans = { 10, 20 }, pvid = 10, untagged = { 10 }, learning = false })`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PortOptions {
    pub ifname: String,
    /// VLANs the port is a member of (needs `vlan_filtering`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vlans: Vec<u16>,
    /// The VLAN untagged frames arriving on the port belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvid: Option<u16>,
    /// VLANs sent out of the port without their tag.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub untagged: Vec<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning: Option<bool>,
    /// Unknown-unicast flooding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flood: Option<bool>,
    pub origin: Origin,
}

impl PortOptions {
    /// Every VLAN the port carries, each once: `vlans`, the pvid, the untagged ones.
    pub fn all_vlans(&self) -> Vec<u16> {
        let mut all: Vec<u16> = self.vlans.iter().chain(self.pvid.iter()).chain(&self.untagged).copied().collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    pub fn has_vlans(&self) -> bool {
        !self.vlans.is_empty() || self.pvid.is_some() || !self.untagged.is_empty()
    }
}

/// The VRFs, VLANs, bridge options and port options of one node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Devices {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrfs: Vec<Vrf>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vlans: Vec<Vlan>,
    #[serde(default, skip_serializing_if = "BridgeOptions::is_default")]
    pub bridge: BridgeOptions,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortOptions>,
}

impl Devices {
    pub fn is_empty(&self) -> bool {
        self.vrfs.is_empty() && self.vlans.is_empty() && self.bridge.is_default() && self.ports.is_empty()
    }
}
