//! A bridge's forwarding database (`bridge fdb show br br0`) and a
//! namespace's policy rules (`ip rule`), as sorted plain records.
//!
//! Learned FDB entries age out (the bridge's `ageing`); a snapshot that
//! must be deterministic should keep to entries it caused, e.g. by MAC.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::neighbour::{NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::IpVersion;
use serde::{Deserialize, Serialize};

use crate::model::MacAddr;
use crate::observe::error::{ObserveError, Result};
use crate::observe::netlink::{link_names, query};

/// One forwarding entry: where the bridge sends frames for `mac`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FdbEntry {
    /// The port (or the bridge itself, for its own addresses).
    pub port: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    pub mac: MacAddr,
    /// `learned` (from traffic), `permanent` (the bridge's and ports' own
    /// addresses), `static`; then `self`, `master`, `extern_learn`, `sticky`, `offload`.
    pub flags: Vec<String>,
}

/// The FDB entries of the bridge `bridge` (by name) in the namespace behind `netns`.
pub fn fdb(netns: &File, bridge: &str) -> Result<Vec<FdbEntry>> {
    let bridge = bridge.to_string();
    query(netns, |handle| async move {
        let names = link_names(&handle).await?;
        let Some(br) = names.iter().find(|(_, n)| **n == bridge).map(|(i, _)| *i) else {
            return Err(ObserveError::NoSuchInterface { ifname: bridge.clone() });
        };
        let mut dump = handle.neighbours().get().set_address_family(AddressFamily::Bridge).execute();
        let mut table = Vec::new();
        while let Some(msg) = dump.try_next().await.map_err(ObserveError::netlink("dump the FDB"))? {
            if let Some(entry) = entry_of(&msg, br, &names) {
                table.push(entry);
            }
        }
        table.sort();
        Ok(table)
    })
}

fn entry_of(msg: &NeighbourMessage, bridge: u32, names: &BTreeMap<u32, String>) -> Option<FdbEntry> {
    let (mut mac, mut vlan, mut master) = (None, None, None);
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::LinkLayerAddress(m) => mac = <[u8; 6]>::try_from(m.as_slice()).ok().map(MacAddr),
            NeighbourAttribute::Vlan(v) => vlan = Some(*v),
            NeighbourAttribute::Controller(m) => master = Some(*m),
            _ => {}
        }
    }
    // This bridge's entries: on its ports, or on the bridge itself.
    if master != Some(bridge) && msg.header.ifindex != bridge {
        return None;
    }
    let state = msg.header.state;
    let mut flags = vec![match state {
        NeighbourState::Permanent => "permanent",
        NeighbourState::Noarp => "static",
        _ => "learned",
    }
    .to_string()];
    let f = msg.header.flags;
    for (flag, name) in [
        (NeighbourFlags::Own, "self"),
        (NeighbourFlags::Controller, "master"),
        (NeighbourFlags::ExtLearned, "extern_learn"),
        (NeighbourFlags::Sticky, "sticky"),
        (NeighbourFlags::Offloaded, "offload"),
    ] {
        if f.contains(flag) {
            flags.push(name.into());
        }
    }
    let port = names.get(&msg.header.ifindex).cloned().unwrap_or_else(|| format!("if{}", msg.header.ifindex));
    Some(FdbEntry { port, vlan, mac: mac?, flags })
}

/// One policy rule, as `ip rule` shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RuleEntry {
    pub priority: u32,
    /// 4 or 6.
    pub family: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<IpNet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<IpNet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iif: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    /// The table looked up (`main` 254, `local` 255, `default` 253, ...).
    pub table: u32,
    /// `lookup`, or `blackhole`, `unreachable`, `prohibit`, `goto`, ...
    pub action: String,
}

/// IPv4 then IPv6 rules, by priority.
pub fn rules(netns: &File) -> Result<Vec<RuleEntry>> {
    query(netns, |handle| async move {
        let mut table = Vec::new();
        for version in [IpVersion::V4, IpVersion::V6] {
            let mut dump = handle.rule().get(version).execute();
            while let Some(msg) = dump.try_next().await.map_err(ObserveError::netlink("dump rules"))? {
                table.push(rule_of(&msg));
            }
        }
        table.sort_by_key(|r: &RuleEntry| (r.family, r.priority));
        Ok(table)
    })
}

fn rule_of(msg: &RuleMessage) -> RuleEntry {
    let h = &msg.header;
    let net = |a: IpAddr, len: u8| IpNet::new(a, len).ok();
    let mut rule = RuleEntry {
        priority: 0,
        family: if h.family == AddressFamily::Inet6 { 6 } else { 4 },
        from: None,
        to: None,
        iif: None,
        fwmark: None,
        table: u32::from(h.table),
        action: match h.action {
            RuleAction::ToTable => "lookup".into(),
            other => format!("{other:?}").to_lowercase(),
        },
    };
    for attr in &msg.attributes {
        match attr {
            RuleAttribute::Priority(p) => rule.priority = *p,
            RuleAttribute::Source(a) => rule.from = net(*a, h.src_len),
            RuleAttribute::Destination(a) => rule.to = net(*a, h.dst_len),
            RuleAttribute::Iifname(n) => rule.iif = Some(n.clone()),
            RuleAttribute::FwMark(m) => rule.fwmark = Some(*m),
            RuleAttribute::Table(t) => rule.table = *t,
            _ => {}
        }
    }
    rule
}
