//! The plan: the ordered kernel steps that build a validated lab. Pure data,
//! computed without root; `labctl plan` prints it, apply executes it.
//!
//! Interface indexes are chosen here: every namespace is new, `lo` is 1 and
//! the lab's interfaces follow in declaration order, so addresses and routes
//! can name their device by index and ifindexes are the same on every run.

mod build;
mod display;
mod impair;
mod ipsec;
mod l2;
mod nic;
mod routing;
mod xdp;

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::model::MacAddr;
pub use build::{plan, IPV6_OFF, NODE_DEFAULTS, QUIET_IPV6_ADDRESSED};
pub use ipsec::IpsecTunnel;
pub use routing::{route_text, rule_text};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub lab: String,
    pub steps: Vec<Step>,
}

/// Where a step happens: a node's namespace and, for link steps, a device in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub node: String,
    pub ifname: String,
    pub ifindex: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// A new network namespace, bound at `/run/netns/<netns>`.
    CreateNamespace {
        node: String,
        netns: String,
    },
    /// The sysctls of [`NODE_DEFAULTS`], and [`QUIET_IPV6_ADDRESSED`] or
    /// [`IPV6_OFF`] by whether the node has IPv6 addresses; before any device exists.
    NodeDefaults {
        node: String,
        ipv6: bool,
    },
    /// Write `/proc/sys/<key as path>` inside the node's namespace.
    Sysctl {
        node: String,
        key: String,
        value: String,
    },
    /// A Linux bridge, up.
    CreateBridge {
        device: Device,
        mac: MacAddr,
    },
    /// A veth pair created directly in both namespaces. The first end is
    /// created up (and enslaved to `master` if given); the peer is brought up
    /// by a later [`Step::SetUp`] (the kernel refuses peer flags on create).
    CreateVeth {
        device: Device,
        mac: MacAddr,
        master: Option<u32>,
        peer: Device,
        peer_mac: MacAddr,
        mtu: Option<u32>,
        queues: Option<u32>,
    },
    /// RPS/XPS/RFS, offloads and NAPI threading of one interface.
    Tune {
        device: Device,
        tuning: crate::model::Tuning,
    },
    SetUp {
        device: Device,
    },
    AddAddress {
        device: Device,
        address: IpNet,
    },
    AddRoute {
        node: String,
        destination: IpNet,
        via: IpAddr,
    },
    /// IPsec on one node, for every IPsec link it is on (plan/ipsec.rs): a
    /// strongSwan charon of its own (pid in `dir`/charon.pid, which
    /// teardown kills), or XFRM states and policies (gone with the
    /// namespace). `backend` may still be `auto`: apply probes the kernel.
    StartIpsec {
        node: String,
        backend: crate::model::Backend,
        /// `/run/labctl/<lab>/ipsec/<node>`: config, socket, pidfile, log.
        dir: std::path::PathBuf,
        tunnels: Vec<IpsecTunnel>,
    },
    /// Waits until the node's IPv6 is quiet: no address still tentative and
    /// no MLD report still to be sent (plan/build.rs, `QUIET_IPV6_ADDRESSED`),
    /// so nothing after `up` sees one. Creates nothing.
    SettleIpv6 {
        node: String,
    },
    /// An XDP program loaded (compiled first if from C) and attached to a
    /// device inside its node, its link, program and maps pinned in `pins`
    /// (`/sys/fs/bpf/labctl/<lab>/<node>-<ifname>`), which teardown removes.
    AttachXdp {
        device: Device,
        object: crate::model::XdpObject,
        program: Option<String>,
        mode: crate::model::XdpMode,
        pins: std::path::PathBuf,
        #[serde(default, skip_serializing_if = "crate::model::xdp::CompileOptions::is_empty")]
        compile: crate::model::xdp::CompileOptions,
        /// Maps pinned in the lab's `shared/` folder rather than in `pins`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        share_maps: Vec<String>,
    },
    /// SR-IOV on a PF in labctl's own namespace (apply/nic/sriov.rs): its
    /// VF count (through 0 when it changes), then each VF's PF-side
    /// settings. The PF's count and VF settings are saved first and put back by teardown.
    ConfigureSriov {
        pf: String,
        vfs: u32,
        settings: Vec<crate::model::VfSettings>,
    },
    /// A host device into a node (apply/nic/): a whole NIC or a VF netdev
    /// moved and renamed (what it was is saved first, and put back by
    /// teardown), or a macvlan on a host NIC created there; then its MTU,
    /// addresses and up. Its ifindex in the node is the kernel's choice.
    ClaimNic {
        node: String,
        ifname: String,
        source: crate::model::NicSource,
        mtu: Option<u32>,
        addresses: Vec<IpNet>,
    },
    /// A permanent neighbour (ARP/NDP) entry: RTM_NEWNEIGH, NUD_PERMANENT.
    AddNeighbour {
        device: Device,
        address: IpAddr,
        mac: MacAddr,
    },
    /// Egress qdiscs of an impaired end (apply/impair/qdisc.rs): tbf for
    /// rate and limit, netem (under it) for delay, jitter, corruption.
    /// Gone with the namespace.
    ShapeEgress {
        device: Device,
        settings: crate::model::ImpairSettings,
        /// The link's MTU (1500 unless set): tbf's burst and limit follow it.
        mtu: u32,
    },
    /// The seeded loss program (apply/impair/loss.bpf.c) at the ingress of
    /// `device`, the receiving end of `from`'s packets (tcx), its link,
    /// program and state map pinned in `pins`, which teardown removes.
    AttachLoss {
        device: Device,
        from: Device,
        ppm: u32,
        seed: u64,
        pins: std::path::PathBuf,
    },
    /// A route with options (plan/routing.rs): `ifindexes` per hop, `None`
    /// where apply looks the device up by name.
    AddRouteSpec {
        node: String,
        route: crate::model::RouteSpec,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ifindexes: Vec<Option<u32>>,
    },
    /// A nexthop object (plan/routing.rs), before the routes that name it;
    /// its device is looked up by name in the node.
    AddNexthop {
        node: String,
        nexthop: crate::model::Nexthop,
    },
    /// A policy rule (plan/routing.rs).
    AddRule {
        node: String,
        rule: crate::model::Rule,
    },
    /// A VRF device bound to `table` (plan/l2.rs).
    CreateVrf {
        device: Device,
        table: u32,
    },
    /// A VLAN sub-interface on `parent` (an ifindex in the same node), up.
    CreateVlan {
        device: Device,
        parent: u32,
        id: u16,
        protocol: crate::model::VlanProtocol,
    },
    /// `device` enslaved to `master` (a VRF).
    SetMaster {
        device: Device,
        master: u32,
        master_name: String,
    },
    /// The options of a bridge node's bridge, once its ports exist.
    ConfigureBridge {
        device: Device,
        options: crate::model::BridgeOptions,
    },
    /// A bridge port's VLANs, learning and flooding; `drop_vlan`: the
    /// default pvid the kernel gave the port, which it is not to carry.
    ConfigurePort {
        device: Device,
        options: crate::model::PortOptions,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        drop_vlan: Option<u16>,
    },
}

/// Steps of one phase depend only on steps of earlier phases, so apply may
/// run a phase's steps in any order or all at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Namespaces,
    NamespaceSysctls,
    Bridges,
    Veths,
    /// Host devices: SR-IOV first, then claims (plan/nic.rs); after every
    /// namespace and veth, before device sysctls and routes, which may name them.
    Nics,
    DeviceSysctls,
    Configure,
    /// Nexthop objects, one after another (a group after its members).
    Nexthops,
    Routes,
    /// IPv6 settled, before anything counts packets.
    Settle,
    /// XDP programs, once devices are tuned and routes exist (plan/xdp.rs).
    Xdp,
    /// After routes: IKE needs the peer reachable.
    Ipsec,
    /// Loss programs, once every device exists (plan/impair.rs).
    Impair,
}

impl Step {
    pub fn phase(&self) -> Phase {
        match self {
            Step::CreateNamespace { .. } => Phase::Namespaces,
            // Sysctls that name a device must wait for it; the rest (the
            // IPv6 defaults among them) must come before any device exists.
            Step::Sysctl { key, .. } if sysctl_names_device(key) => Phase::DeviceSysctls,
            Step::NodeDefaults { .. } | Step::Sysctl { .. } => Phase::NamespaceSysctls,
            Step::Tune { .. } => Phase::DeviceSysctls,
            Step::CreateBridge { .. } => Phase::Bridges,
            Step::CreateVeth { .. } => Phase::Veths,
            Step::SetUp { .. } | Step::AddAddress { .. } => Phase::Configure,
            Step::AddRoute { .. } => Phase::Routes,
            Step::SettleIpv6 { .. } => Phase::Settle,
            Step::StartIpsec { .. } => Phase::Ipsec,
            Step::AttachXdp { .. } => Phase::Xdp,
            Step::ConfigureSriov { .. } | Step::ClaimNic { .. } => Phase::Nics,
            Step::AddNeighbour { .. } | Step::ShapeEgress { .. } => Phase::Routes,
            Step::AttachLoss { .. } => Phase::Impair,
            Step::AddRouteSpec { .. } | Step::AddRule { .. } => Phase::Routes,
            Step::AddNexthop { .. } => Phase::Nexthops,
            Step::CreateVrf { .. } => Phase::Bridges,
            Step::CreateVlan { .. } => Phase::Veths,
            Step::SetMaster { .. } | Step::ConfigureBridge { .. } | Step::ConfigurePort { .. } => Phase::Configure,
        }
    }

    /// The node whose namespace this step works in.
    pub fn node(&self) -> &str {
        match self {
            Step::CreateNamespace { node, .. }
            | Step::NodeDefaults { node, .. }
            | Step::Sysctl { node, .. }
            | Step::AddRoute { node, .. }
            | Step::SettleIpv6 { node }
            | Step::StartIpsec { node, .. }
            | Step::ClaimNic { node, .. }
            | Step::AddRouteSpec { node, .. }
            | Step::AddNexthop { node, .. }
            | Step::AddRule { node, .. } => node,
            // In labctl's own namespace, which is no node's.
            Step::ConfigureSriov { .. } => "",
            Step::CreateBridge { device, .. }
            | Step::CreateVeth { device, .. }
            | Step::Tune { device, .. }
            | Step::SetUp { device }
            | Step::AddAddress { device, .. }
            | Step::AttachXdp { device, .. }
            | Step::AddNeighbour { device, .. }
            | Step::ShapeEgress { device, .. }
            | Step::AttachLoss { device, .. }
            | Step::CreateVrf { device, .. }
            | Step::CreateVlan { device, .. }
            | Step::SetMaster { device, .. }
            | Step::ConfigureBridge { device, .. }
            | Step::ConfigurePort { device, .. } => &device.node,
        }
    }
}

/// `net.ipv4.conf.eth0.rp_filter` names a device; `...conf.all...`, `...conf.default...` do not.
fn sysctl_names_device(key: &str) -> bool {
    let parts: Vec<&str> = key.split('.').collect();
    matches!(parts.as_slice(), ["net", "ipv4" | "ipv6", "conf" | "neigh", dev, ..] if *dev != "all" && *dev != "default")
}

impl Step {
    /// The sysctls a namespace-level step writes, in order.
    pub fn sysctls(&self) -> Vec<(&str, &str)> {
        match self {
            Step::NodeDefaults { ipv6: true, .. } => {
                NODE_DEFAULTS.iter().chain(QUIET_IPV6_ADDRESSED).copied().collect()
            }
            Step::NodeDefaults { ipv6: false, .. } => NODE_DEFAULTS.iter().chain(IPV6_OFF).copied().collect(),
            Step::Sysctl { key, value, .. } => vec![(key.as_str(), value.as_str())],
            _ => vec![],
        }
    }
}

impl Plan {
    /// The steps grouped by phase, in phase order.
    pub fn phases(&self) -> Vec<(Phase, Vec<(usize, &Step)>)> {
        let mut phases: Vec<(Phase, Vec<(usize, &Step)>)> = Vec::new();
        let mut indexed: Vec<(usize, &Step)> = self.steps.iter().enumerate().collect();
        indexed.sort_by_key(|(i, s)| (s.phase(), *i));
        for (i, step) in indexed {
            match phases.last_mut() {
                Some((phase, steps)) if *phase == step.phase() => steps.push((i, step)),
                _ => phases.push((step.phase(), vec![(i, step)])),
            }
        }
        phases
    }
}
