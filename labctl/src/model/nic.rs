//! Real devices in a lab: a whole NIC claimed into a node, a macvlan on a
//! NIC the host keeps, SR-IOV VFs created on a PF and claimed into nodes,
//! and the lab parameters (`param()`, `--set`) that name them.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::MacAddr;
use crate::diag::Origin;

/// A lab parameter: `param("nic", "veth")`, set with `--set nic=enp3s0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    /// The default, as the script gave it (a string, number or boolean, as text).
    pub default: String,
    /// What the script got: the `--set` value, else the default.
    pub value: String,
    /// Whether `--set` gave it.
    pub set: bool,
    pub origin: Origin,
}

/// A host device the lab takes into a node, or puts a macvlan on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NicClaim {
    pub node: String,
    /// Its name inside the node.
    pub ifname: String,
    pub source: NicSource,
    pub addresses: Vec<IpNet>,
    pub mtu: Option<u32>,
    /// Claim it even though it has addresses or the default route.
    pub force: bool,
    pub origin: Origin,
}

/// Where a claimed device comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NicSource {
    /// `r1:nic("enp3s0", ...)`: the device itself moves into the node.
    Whole { host: String },
    /// `r1:macvlan("enp3s0", ...)`: a new macvlan on the host device; the host keeps it.
    Macvlan { host: String, mode: MacvlanMode },
    /// `h1:vf("enp3s0", 0, ...)`: VF `index` of PF `pf`, its netdev moves into the node.
    Vf { pf: String, index: u32 },
}

impl NicSource {
    /// The host device named in the script (the PF, for a VF).
    pub fn host(&self) -> &str {
        match self {
            NicSource::Whole { host } | NicSource::Macvlan { host, .. } => host,
            NicSource::Vf { pf, .. } => pf,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MacvlanMode {
    Bridge,
    Private,
    Vepa,
    Passthru,
}

impl MacvlanMode {
    pub const NAMES: &[&str] = &["bridge", "private", "vepa", "passthru"];

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "bridge" => Self::Bridge,
            "private" => Self::Private,
            "vepa" => Self::Vepa,
            "passthru" => Self::Passthru,
            _ => return None,
        })
    }
}

impl std::fmt::Display for MacvlanMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Self::Bridge => "bridge",
            Self::Private => "private",
            Self::Vepa => "vepa",
            Self::Passthru => "passthru",
        };
        f.write_str(name)
    }
}

/// `sriov("enp3s0", { vfs = 4, vf = { [0] = { mac = ..., vlan = ... } } })`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sriov {
    pub pf: String,
    /// How many VFs the PF gets (sriov_numvfs).
    pub vfs: u32,
    /// PF-side settings of some VFs, by index.
    pub settings: Vec<VfSettings>,
    pub origin: Origin,
}

/// What the PF sets for one VF; unset fields keep the driver's values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VfSettings {
    pub index: u32,
    pub mac: Option<MacAddr>,
    pub vlan: Option<u32>,
    /// 802.1p priority of the VLAN tag (needs `vlan`).
    pub qos: Option<u32>,
    pub spoofchk: Option<bool>,
    pub trust: Option<bool>,
    pub link_state: Option<VfLinkState>,
    /// Mbit/s.
    pub min_tx_rate: Option<u32>,
    /// Mbit/s.
    pub max_tx_rate: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VfLinkState {
    Auto,
    Enable,
    Disable,
}

impl VfLinkState {
    pub const NAMES: &[&str] = &["auto", "enable", "disable"];

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "auto" => Self::Auto,
            "enable" => Self::Enable,
            "disable" => Self::Disable,
            _ => return None,
        })
    }

    /// IFLA_VF_LINK_STATE_* values.
    pub fn to_kernel(self) -> u32 {
        match self {
            Self::Auto => 0,
            Self::Enable => 1,
            Self::Disable => 2,
        }
    }
}
