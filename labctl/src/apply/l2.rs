//! RTM_NEWLINK/RTM_SETLINK for VRFs, VLANs, bridge and port options
//! (model/l2.rs), and the preflight that refuses VRF, VLAN and
//! VLAN-filtering labs on a kernel without them, before anything is created. The messages are built
//! by pure functions the unit tests below read back.

use rtnetlink::packet_route::link::{
    BridgeStpState, BridgeVlanInfoFlags, InfoBridge, InfoData, InfoKind, LinkMessage, VlanFlags, VlanProtocol as NlVlan,
};
use rtnetlink::{Handle, LinkBridgePort, LinkBridgeVlan, LinkMessageBuilder, LinkUnspec, LinkVlan, LinkVrf};

use super::netlink::Error;
use crate::diag::Diagnostic;
use crate::model::{BridgeOptions, Lab, PortOptions, VlanProtocol};
use crate::plan::Device;

/// STP's forward delay when a lab turns STP on: the kernel's floor (2 s,
/// in centiseconds), so ports forward after 4 s rather than 30.
const STP_FORWARD_DELAY: u32 = 200;

pub fn vrf_message(device: &Device, table: u32) -> LinkMessage {
    LinkVrf::new(&device.ifname, table).index(device.ifindex).build()
}

pub fn vlan_message(device: &Device, parent: u32, id: u16, protocol: VlanProtocol) -> LinkMessage {
    let protocol = match protocol {
        VlanProtocol::Dot1Q => NlVlan::Ieee8021Q,
        VlanProtocol::Dot1Ad => NlVlan::Ieee8021Ad,
    };
    // Loose binding: created up while its parent may still be down (a
    // veth peer is brought up later in the same stream); it follows the
    // parent's carrier all the same.
    let loose = VlanFlags::LooseBinding | VlanFlags::ReorderHdr;
    LinkVlan::new(&device.ifname, parent, id).protocol(protocol).flags(loose, loose).index(device.ifindex).up().build()
}

pub fn master_message(ifindex: u32, master: u32) -> LinkMessage {
    LinkUnspec::new_with_index(ifindex).controller(master).build()
}

/// The bridge's options, sent as IFLA_LINKINFO data on the existing br0.
pub fn bridge_message(ifindex: u32, options: &BridgeOptions) -> LinkMessage {
    // Only when asked: a kernel without VLAN filtering refuses the attribute even as 0.
    let mut data = Vec::new();
    if options.vlan_filtering {
        data.push(InfoBridge::VlanFiltering(true));
    }
    if let Some(pvid) = options.default_pvid {
        data.push(InfoBridge::VlanDefaultPvid(pvid));
    }
    if let Some(ageing) = options.ageing {
        let centiseconds = u32::try_from(ageing.as_millis() / 10).unwrap_or(u32::MAX);
        data.push(InfoBridge::AgeingTime(centiseconds));
    }
    if let Some(on) = options.multicast_snooping {
        data.push(InfoBridge::MulticastSnooping(on));
    }
    if options.stp {
        data.push(InfoBridge::ForwardDelay(STP_FORWARD_DELAY));
        data.push(InfoBridge::StpState(BridgeStpState::KernelStp));
    } else {
        data.push(InfoBridge::StpState(BridgeStpState::Disabled));
    }
    LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Bridge)
        .index(ifindex)
        .set_info_data(InfoData::Bridge(data))
        .build()
}

/// Learning and flooding of a port (IFLA_INFO_SLAVE_DATA), if either is set.
pub fn port_flags_message(ifindex: u32, port: &PortOptions) -> Option<LinkMessage> {
    if port.learning.is_none() && port.flood.is_none() {
        return None;
    }
    let mut msg = LinkBridgePort::new(ifindex);
    if let Some(on) = port.learning {
        msg = msg.learning(on);
    }
    if let Some(on) = port.flood {
        msg = msg.flood(on);
    }
    Some(msg.build())
}

/// The port's VLANs (AF_BRIDGE IFLA_AF_SPEC), if it has any.
pub fn port_vlans_message(ifindex: u32, port: &PortOptions) -> Option<LinkMessage> {
    if !port.has_vlans() {
        return None;
    }
    let mut msg = LinkBridgeVlan::new(ifindex);
    for vid in port.all_vlans() {
        let mut flags = BridgeVlanInfoFlags::empty();
        if port.pvid == Some(vid) {
            flags |= BridgeVlanInfoFlags::Pvid;
        }
        if port.untagged.contains(&vid) {
            flags |= BridgeVlanInfoFlags::Untagged;
        }
        msg = msg.vlan(vid, flags);
    }
    Some(msg.build())
}

pub fn drop_vlan_message(ifindex: u32, vid: u16) -> LinkMessage {
    LinkBridgeVlan::new(ifindex).vlan(vid, BridgeVlanInfoFlags::empty()).build()
}

pub async fn create(handle: &Handle, msg: LinkMessage) -> Result<(), Error> {
    Ok(handle.link().add(msg).execute().await?)
}

pub async fn set_master(handle: &Handle, ifindex: u32, master: u32) -> Result<(), Error> {
    Ok(handle.link().set(master_message(ifindex, master)).execute().await?)
}

pub async fn configure_bridge(handle: &Handle, ifindex: u32, options: &BridgeOptions) -> Result<(), Error> {
    Ok(handle.link().change(bridge_message(ifindex, options)).execute().await?)
}

pub async fn configure_port(
    handle: &Handle,
    ifindex: u32,
    port: &PortOptions,
    drop_vlan: Option<u16>,
) -> Result<(), Error> {
    if let Some(msg) = port_flags_message(ifindex, port) {
        handle.link().set_port(msg).execute().await?;
    }
    if let Some(msg) = port_vlans_message(ifindex, port) {
        handle.link().set(msg).execute().await?;
    }
    if let Some(vid) = drop_vlan {
        handle.link().del_with_message(drop_vlan_message(ifindex, vid)).execute().await?;
    }
    Ok(())
}

/// A kernel feature a lab needs, and how to tell whether it is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feature {
    Vrf,
    Vlan,
    VlanFiltering,
    Nexthop,
}

impl Feature {
    fn config(self) -> &'static str {
        match self {
            Feature::Vrf => "CONFIG_NET_VRF",
            Feature::Vlan => "CONFIG_VLAN_8021Q",
            Feature::VlanFiltering => "CONFIG_BRIDGE_VLAN_FILTERING",
            Feature::Nexthop => "nexthop objects (Linux 5.3 and later)",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Feature::Vrf => "vrf",
            Feature::Vlan => "vlan",
            Feature::VlanFiltering => "bridge",
            Feature::Nexthop => "nexthop",
        }
    }

    /// Tries to create one in the calling thread's (scratch) namespace.
    async fn probe(self, handle: &Handle) -> Result<(), String> {
        const BASE: u32 = 100;
        if self == Feature::Nexthop {
            return super::nexthop::probe();
        }
        let msg = match self {
            Feature::Vrf => LinkVrf::new("probe-vrf", 10).build(),
            Feature::Vlan => {
                // On a veth: lo takes no VLANs on any kernel.
                let peer = LinkUnspec::new_with_name("probe1").build();
                let veth = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
                    .name("probe0")
                    .index(BASE)
                    .set_info_data(InfoData::Veth(rtnetlink::packet_route::link::InfoVeth::Peer(peer)))
                    .build();
                handle.link().add(veth).execute().await.map_err(|e| format!("a veth to probe on: {e}"))?;
                LinkVlan::new("probe0.10", BASE, 10).build()
            }
            Feature::VlanFiltering => rtnetlink::LinkBridge::new("probe-br").vlan_filtering(true).build(),
            Feature::Nexthop => unreachable!("probed above"),
        };
        handle.link().add(msg).execute().await.map_err(|e| e.to_string())
    }
}

/// Every use of a VRF or VLAN in a lab whose kernel lacks them, as a
/// diagnostic at the declaration. Probes in a scratch namespace once per feature.
pub fn preflight(lab: &Lab) -> Vec<Diagnostic> {
    let mut uses: Vec<(Feature, &crate::diag::Origin)> = Vec::new();
    for node in &lab.nodes {
        uses.extend(node.devices.vrfs.iter().map(|v| (Feature::Vrf, &v.origin)));
        uses.extend(node.devices.vlans.iter().map(|v| (Feature::Vlan, &v.origin)));
        if node.devices.bridge.vlan_filtering {
            uses.push((Feature::VlanFiltering, &node.origin));
        }
        uses.extend(node.routing.nexthops.iter().map(|n| (Feature::Nexthop, &n.origin)));
    }
    let mut found = Vec::new();
    for feature in [Feature::Vrf, Feature::Vlan, Feature::VlanFiltering, Feature::Nexthop] {
        let Some((_, origin)) = uses.iter().find(|(f, _)| *f == feature) else { continue };
        if let Err(reason) = probe(feature) {
            let cannot = match feature {
                Feature::VlanFiltering => "filter VLANs on a bridge".to_string(),
                Feature::Nexthop => "keep nexthop objects".to_string(),
                other => format!("create {} devices", other.what()),
            };
            found.push(
                Diagnostic::new(
                    (*origin).clone(),
                    format!(
                        "{}(): this kernel cannot {cannot} ({} absent: {reason})",
                        feature.what(),
                        feature.config()
                    ),
                )
                .help("run the lab on a kernel with it, e.g. in a VM with Debian's kernel: .ci/vm-lane"),
            );
        }
    }
    found
}

/// Each device kind labs may ask for and whether this kernel makes it
/// (`labctl doctor`): `("vrf (CONFIG_NET_VRF)", Ok(()))`, ...
pub fn kernel_features() -> Vec<(String, Result<(), String>)> {
    [Feature::Vrf, Feature::Vlan, Feature::VlanFiltering, Feature::Nexthop]
        .into_iter()
        .map(|f| {
            let name = match f {
                Feature::VlanFiltering => "bridge VLAN filtering",
                other => other.what(),
            };
            (format!("{name} ({})", f.config()), probe(f))
        })
        .collect()
}

fn probe(feature: Feature) -> Result<(), String> {
    crate::sys::netns::in_scratch(|| {
        crate::sys::rtnl::with_handle(|handle| async move { feature.probe(&handle).await })
            .map_err(|e| e.to_string())?
    })
    .map_err(|e| e.to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Origin;
    use rtnetlink::packet_route::link::{
        AfSpecBridge, BridgeVlanInfo, InfoBridgePort, InfoPortData, InfoVlan, InfoVrf, LinkAttribute, LinkInfo,
    };
    use rtnetlink::packet_route::AddressFamily;

    fn dev(name: &str, ifindex: u32) -> Device {
        Device { node: "r1".into(), ifname: name.into(), ifindex }
    }

    fn info(msg: &LinkMessage) -> Vec<LinkInfo> {
        msg.attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(i) => Some(i.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_vrf_is_a_vrf_link_with_its_table() {
        let msg = vrf_message(&dev("blue", 7), 10);
        assert_eq!(msg.header.index, 7);
        assert!(msg.attributes.contains(&LinkAttribute::IfName("blue".into())));
        let info = info(&msg);
        assert!(info.contains(&LinkInfo::Kind(InfoKind::Vrf)), "{info:?}");
        assert!(info.contains(&LinkInfo::Data(InfoData::Vrf(vec![InfoVrf::TableId(10)]))), "{info:?}");
    }

    #[test]
    fn a_qinq_vlan_names_its_parent_id_and_protocol() {
        let msg = vlan_message(&dev("eth0.100", 9), 2, 100, VlanProtocol::Dot1Ad);
        assert!(msg.attributes.contains(&LinkAttribute::Link(2)), "{:?}", msg.attributes);
        let info = info(&msg);
        assert!(info.contains(&LinkInfo::Kind(InfoKind::Vlan)));
        let Some(LinkInfo::Data(InfoData::Vlan(data))) = info.iter().find(|i| matches!(i, LinkInfo::Data(_))) else {
            panic!("no vlan data: {info:?}")
        };
        assert!(data.contains(&InfoVlan::Id(100)));
        assert!(data.contains(&InfoVlan::Protocol(NlVlan::Ieee8021Ad)));
    }

    /// Emitted to bytes as the kernel receives them, and parsed back.
    fn on_the_wire(msg: &LinkMessage) -> LinkMessage {
        use netlink_packet_core::{Emitable, Parseable};
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        LinkMessage::parse(buf.as_slice()).expect("parses back")
    }

    #[test]
    fn vrf_and_vlan_messages_survive_the_wire() {
        for msg in [vrf_message(&dev("blue", 7), 10), vlan_message(&dev("eth0.100", 9), 2, 100, VlanProtocol::Dot1Ad)] {
            let back = on_the_wire(&msg);
            assert_eq!(back.header.index, msg.header.index);
            assert_eq!(info(&back), info(&msg));
        }
    }

    #[test]
    fn enslaving_sets_the_master() {
        assert!(master_message(3, 7).attributes.contains(&LinkAttribute::Controller(7)));
    }

    #[test]
    fn bridge_options_are_bridge_info_data() {
        let options = BridgeOptions {
            vlan_filtering: true,
            ageing: Some(std::time::Duration::from_secs(30)),
            multicast_snooping: Some(false),
            ..Default::default()
        };
        let info = info(&bridge_message(2, &options));
        let Some(LinkInfo::Data(InfoData::Bridge(data))) = info.iter().find(|i| matches!(i, LinkInfo::Data(_))) else {
            panic!("no bridge data: {info:?}")
        };
        for want in [
            InfoBridge::VlanFiltering(true),
            InfoBridge::AgeingTime(3000),
            InfoBridge::MulticastSnooping(false),
            InfoBridge::StpState(BridgeStpState::Disabled),
        ] {
            assert!(data.contains(&want), "{want:?} missing from {data:?}");
        }
    }

    fn port() -> PortOptions {
        PortOptions {
            ifname: "eth0".into(),
            vlans: vec![20],
            pvid: Some(10),
            untagged: vec![10],
            learning: Some(false),
            flood: None,
            origin: Origin::new("t.lua", 1),
        }
    }

    #[test]
    fn port_vlans_are_af_bridge_vlan_infos() {
        let msg = port_vlans_message(4, &port()).unwrap();
        assert_eq!(msg.header.interface_family, AddressFamily::Bridge);
        let spec = msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::AfSpecBridge(s) => Some(s.clone()),
            _ => None,
        });
        let want = vec![
            AfSpecBridge::VlanInfo(BridgeVlanInfo {
                vid: 10,
                flags: BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged,
            }),
            AfSpecBridge::VlanInfo(BridgeVlanInfo { vid: 20, flags: BridgeVlanInfoFlags::empty() }),
        ];
        assert_eq!(spec, Some(want));
    }

    #[test]
    fn port_learning_is_bridge_port_data() {
        let msg = port_flags_message(4, &port()).unwrap();
        let info = info(&msg);
        assert!(
            info.contains(&LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::Learning(false)]))),
            "{info:?}"
        );
        let quiet = PortOptions { learning: None, ..port() };
        assert!(port_flags_message(4, &quiet).is_none());
    }
}
