//! The rtnetlink requests for host devices: what a device is and carries
//! (read), and each change claiming and restoring it makes (write), all by
//! ifindex in the namespace the handle was opened in.

use std::fs::File;
use std::future::Future;
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{
    LinkAttribute, LinkExtentMask, LinkFlags, LinkVfInfo, Prop, VfInfo, VfInfoMac, VfInfoRate, VfInfoSpoofCheck,
    VfInfoTrust, VfInfoVlan,
};
use rtnetlink::packet_route::route::{RouteAttribute, RouteType};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkMacVlan, LinkUnspec};

use super::saved::{Identity, SavedAddress, VfState};
use super::NicError;
use crate::apply::netns::run_in;
use crate::model::{MacAddr, MacvlanMode};

/// One device as the kernel describes it.
#[derive(Debug, Clone, Default)]
pub struct Live {
    pub ifindex: u32,
    pub name: String,
    pub mtu: u32,
    pub mac: Option<MacAddr>,
    /// The MAC burnt into the hardware; none on virtual devices.
    pub perm_mac: Option<MacAddr>,
    /// Bus and device of the parent (`pci`, `0000:01:00.0`); none on virtual devices.
    pub parent_bus: Option<String>,
    pub parent_dev: Option<String>,
    pub alias: Option<String>,
    pub altnames: Vec<String>,
    pub up: bool,
    pub vfs: Vec<VfState>,
    pub kind: Option<String>,
    pub rx_queues: u32,
    pub tx_queues: u32,
    pub carrier: bool,
}

fn mac_of(bytes: &[u8]) -> Option<MacAddr> {
    let bytes: [u8; 6] = bytes.try_into().ok()?;
    (bytes != [0; 6]).then_some(MacAddr(bytes))
}

impl Live {
    fn parse(msg: &rtnetlink::packet_route::link::LinkMessage) -> Self {
        let mut live =
            Live { ifindex: msg.header.index, up: msg.header.flags.contains(LinkFlags::Up), ..Live::default() };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => live.name = n.clone(),
                LinkAttribute::Mtu(m) => live.mtu = *m,
                LinkAttribute::Address(a) => live.mac = mac_of(a),
                LinkAttribute::PermAddress(a) => live.perm_mac = mac_of(a),
                LinkAttribute::ParentDevBusName(b) => live.parent_bus = Some(b.clone()),
                LinkAttribute::ParentDevName(d) => live.parent_dev = Some(d.clone()),
                LinkAttribute::IfAlias(a) if !a.is_empty() => live.alias = Some(a.clone()),
                LinkAttribute::PropList(props) => live.altnames.extend(props.iter().filter_map(|p| match p {
                    Prop::AltIfName(n) => Some(n.clone()),
                    _ => None,
                })),
                LinkAttribute::VfInfoList(list) => live.vfs = list.iter().filter_map(VfState::parse).collect(),
                LinkAttribute::NumRxQueues(n) => live.rx_queues = *n,
                LinkAttribute::NumTxQueues(n) => live.tx_queues = *n,
                LinkAttribute::Carrier(c) => live.carrier = *c != 0,
                LinkAttribute::LinkInfo(infos) => {
                    live.kind = infos.iter().find_map(|i| match i {
                        rtnetlink::packet_route::link::LinkInfo::Kind(k) => Some(k.to_string()),
                        _ => None,
                    })
                }
                _ => {}
            }
        }
        live
    }
}

impl Identity {
    pub fn of(live: &Live) -> Self {
        Identity {
            perm_mac: live.perm_mac,
            parent_bus: live.parent_bus.clone(),
            parent_dev: live.parent_dev.clone(),
            ifindex: live.ifindex,
            mac: live.mac,
        }
    }

    /// Is `live` this device? By parent device where it has one (real
    /// hardware, VFs), else by permanent MAC, else by MAC.
    pub fn matches(&self, live: &Live) -> bool {
        if self.parent_dev.is_some() {
            return live.parent_dev == self.parent_dev && live.parent_bus == self.parent_bus;
        }
        if self.perm_mac.is_some() {
            return live.perm_mac == self.perm_mac;
        }
        live.parent_dev.is_none() && live.perm_mac.is_none() && live.mac.is_some() && live.mac == self.mac
    }
}

impl VfState {
    fn parse(info: &LinkVfInfo) -> Option<Self> {
        let mut vf = VfState::default();
        let mut seen = false;
        for item in &info.0 {
            match item {
                VfInfo::Mac(m) => {
                    vf.index = m.vf_id;
                    vf.mac = MacAddr(m.mac[..6].try_into().expect("32 bytes"));
                    seen = true;
                }
                VfInfo::Vlan(v) => {
                    vf.vlan = v.vlan_id;
                    vf.qos = v.qos;
                }
                VfInfo::SpoofCheck(s) => vf.spoofchk = Some(s.enabled),
                VfInfo::Trust(t) => vf.trust = Some(t.enabled),
                VfInfo::LinkState(l) => {
                    vf.link_state = match l.state {
                        rtnetlink::packet_route::link::VfLinkState::Auto => 0,
                        rtnetlink::packet_route::link::VfLinkState::Enable => 1,
                        rtnetlink::packet_route::link::VfLinkState::Disable => 2,
                        rtnetlink::packet_route::link::VfLinkState::Other(n) => n,
                        _ => 0,
                    }
                }
                VfInfo::Rate(r) => {
                    vf.min_tx_rate = r.min_tx_rate;
                    vf.max_tx_rate = r.max_tx_rate;
                }
                _ => {}
            }
        }
        seen.then_some(vf)
    }
}

/// Runs `f` with a fresh rtnetlink handle inside the namespace behind `netns`.
pub fn in_netns<T, F, Fut>(netns: &File, f: F) -> Result<T, NicError>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = Result<T, NicError>>,
{
    run_in(netns, || crate::sys::rtnl::with_handle(f).map_err(NicError::Runtime)?)?
}

fn nl(what: &'static str) -> impl FnOnce(rtnetlink::Error) -> NicError {
    move |source| NicError::Netlink { what, source }
}

/// Every device in the handle's namespace, with VF info.
pub async fn dump(handle: &Handle) -> Result<Vec<Live>, NicError> {
    let mut stream = handle.link().get().set_filter_mask(AddressFamily::Unspec, vec![LinkExtentMask::Vf]).execute();
    let mut all = Vec::new();
    while let Some(msg) = stream.try_next().await.map_err(nl("dump links"))? {
        all.push(Live::parse(&msg));
    }
    Ok(all)
}

pub async fn by_name(handle: &Handle, name: &str) -> Result<Option<Live>, NicError> {
    Ok(dump(handle).await?.into_iter().find(|l| l.name == name))
}

pub async fn by_index(handle: &Handle, ifindex: u32) -> Result<Option<Live>, NicError> {
    Ok(dump(handle).await?.into_iter().find(|l| l.ifindex == ifindex))
}

/// Addresses of one device, as `addr/prefix` with their broadcast.
pub async fn addresses(handle: &Handle, ifindex: u32) -> Result<Vec<SavedAddress>, NicError> {
    let mut stream = handle.address().get().set_link_index_filter(ifindex).execute();
    let mut all = Vec::new();
    while let Some(msg) = stream.try_next().await.map_err(nl("dump addresses"))? {
        if msg.header.index != ifindex {
            continue;
        }
        let address = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        });
        let broadcast = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Broadcast(b) => Some(*b),
            _ => None,
        });
        if let Some(address) = address.and_then(|ip| IpNet::new(ip, msg.header.prefix_len).ok()) {
            all.push(SavedAddress { address, broadcast });
        }
    }
    Ok(all)
}

/// Devices a default route (IPv4 or IPv6, main table) leaves through.
pub async fn default_route_devices(handle: &Handle) -> Result<Vec<u32>, NicError> {
    let filters = [
        rtnetlink::RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
        rtnetlink::RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
    ];
    let mut devices = Vec::new();
    for filter in filters {
        let mut stream = handle.route().get(filter).execute();
        while let Some(route) = stream.try_next().await.map_err(nl("dump routes"))? {
            if route.header.destination_prefix_length != 0 || route.header.kind != RouteType::Unicast {
                continue;
            }
            devices.extend(route.attributes.iter().filter_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            }));
        }
    }
    Ok(devices)
}

/// Moves a device into the namespace behind `to`, named `name` there (one
/// message: the kernel closes it, moves it, then renames it). `new_index`
/// asks for an ifindex there (kernels from 6.7 honour it; older ones ignore it).
pub async fn move_to(
    handle: &Handle,
    ifindex: u32,
    to: &File,
    name: &str,
    new_index: Option<u32>,
) -> Result<(), NicError> {
    let mut msg = LinkUnspec::new_with_index(ifindex).setns_by_fd(to.as_raw_fd()).name(name.to_string());
    if let Some(index) = new_index {
        msg = msg.append_extra_attribute(LinkAttribute::NewIfIndex(index as i32));
    }
    let msg = msg.build();
    handle.link().set(msg).execute().await.map_err(nl("move the device"))
}

pub async fn set_down(handle: &Handle, ifindex: u32) -> Result<(), NicError> {
    let msg = LinkUnspec::new_with_index(ifindex).down().build();
    handle.link().set(msg).execute().await.map_err(nl("set the device down"))
}

pub async fn set_up(handle: &Handle, ifindex: u32) -> Result<(), NicError> {
    let msg = LinkUnspec::new_with_index(ifindex).up().build();
    handle.link().set(msg).execute().await.map_err(nl("set the device up"))
}

pub async fn rename(handle: &Handle, ifindex: u32, name: &str) -> Result<(), NicError> {
    let msg = LinkUnspec::new_with_index(ifindex).name(name.to_string()).build();
    handle.link().set(msg).execute().await.map_err(nl("rename the device"))
}

pub async fn set_mtu(handle: &Handle, ifindex: u32, mtu: u32) -> Result<(), NicError> {
    let msg = LinkUnspec::new_with_index(ifindex).mtu(mtu).build();
    handle.link().set(msg).execute().await.map_err(nl("set the MTU"))
}

pub async fn set_mac(handle: &Handle, ifindex: u32, mac: MacAddr) -> Result<(), NicError> {
    let msg = LinkUnspec::new_with_index(ifindex).address(mac.0.to_vec()).build();
    handle.link().set(msg).execute().await.map_err(nl("set the MAC"))
}

pub async fn set_alias(handle: &Handle, ifindex: u32, alias: &str) -> Result<(), NicError> {
    let msg = LinkUnspec::new_with_index(ifindex).alias(alias.to_string()).build();
    handle.link().set(msg).execute().await.map_err(nl("set the alias"))
}

pub async fn add_altname(handle: &Handle, ifindex: u32, name: &str) -> Result<(), NicError> {
    handle.link().property_add(ifindex).alt_ifname(&[name]).execute().await.map_err(nl("add an altname"))
}

pub async fn del_altname(handle: &Handle, ifindex: u32, name: &str) -> Result<(), NicError> {
    handle.link().property_del(ifindex).alt_ifname(&[name]).execute().await.map_err(nl("remove an altname"))
}

/// Adds an address; one already there is fine.
pub async fn add_address(handle: &Handle, ifindex: u32, address: IpNet) -> Result<(), NicError> {
    add_request(handle.address().add(ifindex, address.addr(), address.prefix_len())).await
}

/// Adds an address back as it was saved: with its broadcast, or without one.
pub async fn restore_address(handle: &Handle, ifindex: u32, saved: &SavedAddress) -> Result<(), NicError> {
    let mut request = handle.address().add(ifindex, saved.address.addr(), saved.address.prefix_len());
    let attributes = &mut request.message_mut().attributes;
    attributes.retain(|a| !matches!(a, AddressAttribute::Broadcast(_)));
    attributes.extend(saved.broadcast.map(AddressAttribute::Broadcast));
    add_request(request).await
}

async fn add_request(request: rtnetlink::AddressAddRequest) -> Result<(), NicError> {
    match request.execute().await {
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
        other => other.map_err(nl("add an address")),
    }
}

/// A macvlan on `parent` (an ifindex here), created directly in the namespace behind `to`.
pub async fn create_macvlan(
    handle: &Handle,
    parent: u32,
    mode: MacvlanMode,
    to: &File,
    name: &str,
) -> Result<(), NicError> {
    use rtnetlink::packet_route::link::MacVlanMode as M;
    let mode = match mode {
        MacvlanMode::Bridge => M::Bridge,
        MacvlanMode::Private => M::Private,
        MacvlanMode::Vepa => M::Vepa,
        MacvlanMode::Passthru => M::Passthrough,
    };
    let msg = LinkMacVlan::new(name, parent, mode).setns_by_fd(to.as_raw_fd()).build();
    handle.link().add(msg).execute().await.map_err(nl("create the macvlan"))
}

/// One VF attribute set on the PF (one message per setting, so a driver
/// that lacks one of them names it in the error).
pub async fn set_vf(handle: &Handle, pf: u32, item: VfInfo) -> Result<(), NicError> {
    let what = match &item {
        VfInfo::Mac(_) => "set a VF's MAC",
        VfInfo::Vlan(_) => "set a VF's VLAN",
        VfInfo::SpoofCheck(_) => "set a VF's spoofchk",
        VfInfo::Trust(_) => "set a VF's trust",
        VfInfo::LinkState(_) => "set a VF's link state",
        VfInfo::Rate(_) => "set a VF's TX rate",
        _ => "set a VF attribute",
    };
    let msg = LinkUnspec::new_with_index(pf)
        .append_extra_attribute(LinkAttribute::VfInfoList(vec![LinkVfInfo(vec![item])]))
        .build();
    handle.link().set(msg).execute().await.map_err(nl(what))
}

/// The VF attributes that turn `current` into `wanted`, only those that differ.
pub fn vf_changes(current: &VfState, wanted: &VfState) -> Vec<VfInfo> {
    let id = wanted.index;
    let mut changes = Vec::new();
    if current.mac != wanted.mac {
        changes.push(VfInfo::Mac(VfInfoMac::new(id, &wanted.mac.0)));
    }
    if (current.vlan, current.qos) != (wanted.vlan, wanted.qos) {
        changes.push(VfInfo::Vlan(VfInfoVlan::new(id, wanted.vlan, wanted.qos)));
    }
    if let (Some(want), true) = (wanted.spoofchk, current.spoofchk != wanted.spoofchk) {
        changes.push(VfInfo::SpoofCheck(VfInfoSpoofCheck::new(id, want)));
    }
    if let (Some(want), true) = (wanted.trust, current.trust != wanted.trust) {
        changes.push(VfInfo::Trust(VfInfoTrust::new(id, want)));
    }
    if current.link_state != wanted.link_state {
        let state = match wanted.link_state {
            0 => rtnetlink::packet_route::link::VfLinkState::Auto,
            1 => rtnetlink::packet_route::link::VfLinkState::Enable,
            2 => rtnetlink::packet_route::link::VfLinkState::Disable,
            n => rtnetlink::packet_route::link::VfLinkState::Other(n),
        };
        changes.push(VfInfo::LinkState(rtnetlink::packet_route::link::VfInfoLinkState::new(id, state)));
    }
    if (current.min_tx_rate, current.max_tx_rate) != (wanted.min_tx_rate, wanted.max_tx_rate) {
        changes.push(VfInfo::Rate(VfInfoRate::new(id, wanted.min_tx_rate, wanted.max_tx_rate)));
    }
    changes
}
