//! tc filters on an interface and what the kernel counts for them, over
//! rtnetlink (RTM_GETTFILTER dumps of its ingress, egress and root blocks).
//!
//! The kernel keeps statistics per *action*, not per filter (`tc -s filter
//! show` prints them under each action): every packet a filter matched
//! passed through its first action, so a filter's counters here are its
//! first action's. A filter without actions (a `classid`-only match, a BPF
//! program in direct-action mode) has none to read.

use std::fs::File;

use futures::TryStreamExt;
use rtnetlink::packet_core::{Nla, NlaBuffer, NlasIterator, Parseable};
use rtnetlink::packet_route::tc::{
    TcAction, TcActionAttribute, TcAttribute, TcFilterBpfOption, TcFilterFlowerOption, TcFilterMatchAllOption,
    TcFilterU32Option, TcMessage, TcOption, TcStats2,
};
use rtnetlink::Handle;
use serde::{Deserialize, Serialize};

use super::link::link_index;
use crate::observe::error::{ObserveError, Result};
use crate::observe::netlink::query;

/// The blocks a filter can sit in, as `tc filter show dev X <block>` names them.
pub const BLOCKS: [&str; 3] = ["ingress", "egress", "root"];

/// One filter and the counters of its first action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcFilter {
    /// `ingress`, `egress` (clsact or ingress qdisc) or `root` (the root qdisc's).
    pub block: String,
    /// The filter's priority (tc's `pref`).
    pub pref: u16,
    /// `u32`, `bpf`, `matchall`, `flower`, ...
    pub kind: String,
    /// As tc prints it: `800::800` for u32, `0x1` for the others.
    pub handle: String,
    /// A BPF filter's program name (`tc ... bpf obj x.o sec s` names it), if any.
    pub name: Option<String>,
    /// The kinds of its actions, in order (`mirred`, `gact`, ...).
    pub actions: Vec<String>,
    pub packets: u64,
    pub bytes: u64,
    pub drops: u64,
    pub overlimits: u64,
}

impl TcFilter {
    /// `ingress/10/0x1`: how `x:counters` names it.
    pub fn name(&self) -> String {
        format!("{}/{}/{}", self.block, self.pref, self.handle)
    }

    /// True if `ingress/10`, `ingress/10/0x1` or (for a named BPF program) `ingress/prog` names it.
    pub fn is(&self, block: &str, which: &str, handle: Option<&str>) -> bool {
        let by_pref = which.parse::<u16>().ok() == Some(self.pref);
        let by_name = self.name.as_deref() == Some(which);
        self.block == block && (by_pref || by_name) && handle.is_none_or(|h| h == self.handle)
    }

    /// False for a filter without actions: the kernel keeps no counters for it.
    pub fn is_counted(&self) -> bool {
        !self.actions.is_empty()
    }

    /// packets, bytes, drops, overlimits: to take a [`super::Delta`] of.
    pub fn counters(&self) -> [(&'static str, u64); 4] {
        [("packets", self.packets), ("bytes", self.bytes), ("drops", self.drops), ("overlimits", self.overlimits)]
    }
}

/// Every filter on `ifname` in its ingress, egress and root blocks, in that
/// order, then by pref and handle; filters without actions included.
pub fn tc_filters(netns: &File, ifname: &str) -> Result<Vec<TcFilter>> {
    query(netns, |handle| async move {
        let index = link_index(&handle, ifname).await? as i32;
        let mut filters = Vec::new();
        for block in BLOCKS {
            filters.extend(dump_block(&handle, index, block).await?);
        }
        Ok(filters)
    })
}

async fn dump_block(handle: &Handle, index: i32, block: &str) -> Result<Vec<TcFilter>> {
    let request = handle.traffic_filter(index).get();
    let request = match block {
        "ingress" => request.ingress(),
        "egress" => request.egress(),
        _ => request.root(),
    };
    let mut dump = request.execute();
    let mut filters = Vec::new();
    while let Some(msg) = dump.try_next().await.map_err(ObserveError::netlink(format!("dump {block} filters")))? {
        filters.extend(filter_from(&msg, block));
    }
    filters.sort_by_key(|f| (f.pref, f.handle.clone()));
    Ok(filters)
}

/// A filter from its RTM_NEWTFILTER; `None` for the per-pref chain head the
/// dump also sends (handle 0, no options).
fn filter_from(msg: &TcMessage, block: &str) -> Option<TcFilter> {
    let raw_handle = u32::from(msg.header.handle);
    if raw_handle == 0 {
        return None;
    }
    let mut filter = TcFilter { block: block.into(), pref: (msg.header.info >> 16) as u16, ..Default::default() };
    let mut actions = Vec::new();
    for attr in &msg.attributes {
        match attr {
            TcAttribute::Kind(kind) => filter.kind = kind.clone(),
            TcAttribute::Options(options) => {
                for option in options {
                    actions.extend(actions_of(option));
                    if let TcOption::Bpf(TcFilterBpfOption::ProgName(name)) = option {
                        filter.name = Some(name.clone());
                    }
                }
            }
            _ => {}
        }
    }
    filter.handle = print_handle(&filter.kind, raw_handle);
    filter.actions = actions.iter().map(action_kind).collect();
    if let Some(first) = actions.first() {
        (filter.packets, filter.bytes, filter.drops, filter.overlimits) = action_stats(first);
    }
    Some(filter)
}

/// TCA_BPF_ACT: netlink-packet-route leaves it unparsed.
const TCA_BPF_ACT: u16 = 1;

/// The actions a filter option carries, whatever the classifier.
fn actions_of(option: &TcOption) -> Vec<TcAction> {
    match option {
        TcOption::U32(TcFilterU32Option::Action(a)) => a.clone(),
        TcOption::MatchAll(TcFilterMatchAllOption::Action(a)) => a.clone(),
        TcOption::Flower(TcFilterFlowerOption::Actions(a)) => a.clone(),
        TcOption::Bpf(TcFilterBpfOption::Other(nla)) if nla.kind() & !NESTED_FLAGS == TCA_BPF_ACT => {
            let mut value = vec![0; nla.value_len()];
            nla.emit_value(&mut value);
            parse_actions(&value)
        }
        _ => Vec::new(),
    }
}

/// NLA_F_NESTED | NLA_F_NET_BYTEORDER, which a DefaultNla keeps in its kind.
const NESTED_FLAGS: u16 = 0xc000;

/// A nest of actions (each attribute one action, numbered by its order).
fn parse_actions(nest: &[u8]) -> Vec<TcAction> {
    NlasIterator::new(nest)
        .filter_map(|nla| nla.ok())
        .filter_map(|nla: NlaBuffer<&[u8]>| TcAction::parse(&nla).ok())
        .collect()
}

fn action_kind(action: &TcAction) -> String {
    action
        .attributes
        .iter()
        .find_map(|a| match a {
            TcActionAttribute::Kind(k) => Some(k.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// (packets, bytes, drops, overlimits) from the action's TCA_ACT_STATS.
fn action_stats(action: &TcAction) -> (u64, u64, u64, u64) {
    let mut stats = (0, 0, 0, 0);
    for attr in &action.attributes {
        let TcActionAttribute::Stats(parts) = attr else { continue };
        for part in parts {
            match part {
                TcStats2::Basic(b) => (stats.0, stats.1) = (b.packets.into(), b.bytes),
                TcStats2::Queue(q) => (stats.2, stats.3) = (q.drops.into(), q.overlimits.into()),
                _ => {}
            }
        }
    }
    stats
}

/// tc's spelling: u32's `htid:hash:node` (`800::800`, a hash table `800:`), hex for the others (`0x1`).
fn print_handle(kind: &str, raw: u32) -> String {
    if kind != "u32" {
        return format!("{raw:#x}");
    }
    let (htid, hash, node) = (raw >> 20, (raw >> 12) & 0xff, raw & 0xfff);
    let mut printed = if htid == 0 { String::new() } else { format!("{htid:x}:") };
    if hash != 0 {
        printed += &format!("{hash:x}");
    }
    if node != 0 {
        printed += &format!(":{node:x}");
    }
    printed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_print_like_tc() {
        assert_eq!(print_handle("u32", 0x8000_0800), "800::800");
        assert_eq!(print_handle("u32", 0x8000_1801), "800:1:801");
        assert_eq!(print_handle("u32", 0x8000_0000), "800:");
        assert_eq!(print_handle("bpf", 1), "0x1");
    }

    #[test]
    fn a_filter_is_named_by_pref_handle_or_program() {
        let f = TcFilter {
            block: "ingress".into(),
            pref: 10,
            handle: "0x1".into(),
            name: Some("count_udp".into()),
            ..Default::default()
        };
        assert_eq!(f.name(), "ingress/10/0x1");
        assert!(
            f.is("ingress", "10", None) && f.is("ingress", "10", Some("0x1")) && f.is("ingress", "count_udp", None)
        );
        assert!(!f.is("egress", "10", None) && !f.is("ingress", "11", None) && !f.is("ingress", "10", Some("0x2")));
    }
}
