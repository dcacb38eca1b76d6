//! Per-interface counters over rtnetlink: stats64 and qdisc statistics.

use std::collections::BTreeMap;
use std::fs::File;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage, Stats64};
use rtnetlink::packet_route::tc::{TcAttribute, TcHandle, TcMessage, TcStats2};
use rtnetlink::Handle;
use serde::{Deserialize, Serialize};

use crate::observe::error::{ObserveError, Result};
use crate::observe::netlink::{is_no_such_device, query};

/// The interface's `rtnl_link_stats64`, every field by its kernel name
/// (`rx_packets`, `tx_dropped`, `rx_nohandler`, ...), via RTM_GETLINK (IFLA_STATS64).
pub fn link_stats(netns: &File, ifname: &str) -> Result<BTreeMap<String, u64>> {
    query(netns, |handle| async move {
        let stats = stats64(&handle, ifname).await?;
        Ok(stats64_map(&stats))
    })
}

/// The interface's RTM_GETLINK answer; a missing interface is named as such.
async fn link_by_name(handle: &Handle, ifname: &str) -> Result<LinkMessage> {
    let no_such = || ObserveError::NoSuchInterface { ifname: ifname.into() };
    handle
        .link()
        .get()
        .match_name(ifname.to_string())
        .execute()
        .try_next()
        .await
        .map_err(|e| {
            if is_no_such_device(&e) {
                no_such()
            } else {
                ObserveError::netlink(format!("get link {ifname}"))(e)
            }
        })?
        .ok_or_else(no_such)
}

/// The interface's index, by name.
pub(super) async fn link_index(handle: &Handle, ifname: &str) -> Result<u32> {
    Ok(link_by_name(handle, ifname).await?.header.index)
}

async fn stats64(handle: &Handle, ifname: &str) -> Result<Stats64> {
    let msg = link_by_name(handle, ifname).await?;
    msg.attributes
        .into_iter()
        .find_map(|a| match a {
            LinkAttribute::Stats64(s) => Some(s),
            _ => None,
        })
        .ok_or_else(|| ObserveError::Socket {
            what: format!("link {ifname}"),
            source: std::io::Error::other("the kernel sent no IFLA_STATS64"),
        })
}

fn stats64_map(s: &Stats64) -> BTreeMap<String, u64> {
    // Stats64 is non-exhaustive: list the fields by hand, named as in if_link.h.
    [
        ("rx_packets", s.rx_packets),
        ("tx_packets", s.tx_packets),
        ("rx_bytes", s.rx_bytes),
        ("tx_bytes", s.tx_bytes),
        ("rx_errors", s.rx_errors),
        ("tx_errors", s.tx_errors),
        ("rx_dropped", s.rx_dropped),
        ("tx_dropped", s.tx_dropped),
        ("multicast", s.multicast),
        ("collisions", s.collisions),
        ("rx_length_errors", s.rx_length_errors),
        ("rx_over_errors", s.rx_over_errors),
        ("rx_crc_errors", s.rx_crc_errors),
        ("rx_frame_errors", s.rx_frame_errors),
        ("rx_fifo_errors", s.rx_fifo_errors),
        ("rx_missed_errors", s.rx_missed_errors),
        ("tx_aborted_errors", s.tx_aborted_errors),
        ("tx_carrier_errors", s.tx_carrier_errors),
        ("tx_fifo_errors", s.tx_fifo_errors),
        ("tx_heartbeat_errors", s.tx_heartbeat_errors),
        ("tx_window_errors", s.tx_window_errors),
        ("rx_compressed", s.rx_compressed),
        ("tx_compressed", s.tx_compressed),
        ("rx_nohandler", s.rx_nohandler),
        ("rx_otherhost_dropped", s.rx_otherhost_dropped),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// One queueing discipline on an interface and its counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QdiscStats {
    /// `noqueue`, `fq_codel`, `htb`, `tbf`, `ingress`, ...
    pub kind: String,
    /// As tc prints it, hex: `1:0`; `0:0` for the built-in noqueue.
    pub handle: String,
    /// `root`, `ingress`, or the parent's handle.
    pub parent: String,
    pub bytes: u64,
    pub packets: u64,
    pub drops: u64,
    pub overlimits: u64,
    pub requeues: u64,
    /// Bytes queued when read.
    pub backlog: u64,
    /// Packets queued when read.
    pub qlen: u64,
}

impl QdiscStats {
    /// The counters as a map, to take a [`super::Delta`] of.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        [
            ("bytes", self.bytes),
            ("packets", self.packets),
            ("drops", self.drops),
            ("overlimits", self.overlimits),
            ("requeues", self.requeues),
            ("backlog", self.backlog),
            ("qlen", self.qlen),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// Every qdisc on `ifname` (root first, then by handle), via an RTM_GETQDISC
/// dump filtered here: the kernel dumps all interfaces regardless.
pub fn qdisc_stats(netns: &File, ifname: &str) -> Result<Vec<QdiscStats>> {
    query(netns, |handle| async move {
        let index = link_index(&handle, ifname).await?;
        let mut dump = handle.qdisc().get().execute();
        let mut qdiscs = Vec::new();
        while let Some(msg) = dump.try_next().await.map_err(ObserveError::netlink("dump qdiscs"))? {
            if msg.header.index as u32 == index {
                qdiscs.push(qdisc_from(&msg));
            }
        }
        qdiscs.sort_by_key(|q| (q.parent != "root", q.handle.clone()));
        Ok(qdiscs)
    })
}

fn tc_handle(h: TcHandle) -> String {
    match h {
        TcHandle::ROOT => "root".into(),
        TcHandle::INGRESS => "ingress".into(),
        TcHandle { major, minor } => format!("{major:x}:{minor:x}"),
    }
}

fn qdisc_from(msg: &TcMessage) -> QdiscStats {
    let mut q =
        QdiscStats { handle: tc_handle(msg.header.handle), parent: tc_handle(msg.header.parent), ..Default::default() };
    let mut stats2 = None;
    let mut compat = None;
    for attr in &msg.attributes {
        match attr {
            TcAttribute::Kind(k) => q.kind = k.clone(),
            TcAttribute::Stats2(parts) => stats2 = Some(parts),
            TcAttribute::Stats(s) => compat = Some(s),
            _ => {}
        }
    }
    // TCA_STATS2 has 64-bit bytes and the requeue count; the old TCA_STATS is the fallback.
    if let Some(parts) = stats2 {
        for part in parts {
            match part {
                TcStats2::Basic(b) => {
                    q.bytes = b.bytes;
                    q.packets = b.packets.into();
                }
                TcStats2::Queue(s) => {
                    q.drops = s.drops.into();
                    q.overlimits = s.overlimits.into();
                    q.requeues = s.requeues.into();
                    q.backlog = s.backlog.into();
                    q.qlen = s.qlen.into();
                }
                _ => {}
            }
        }
    } else if let Some(s) = compat {
        q.bytes = s.bytes;
        q.packets = s.packets.into();
        q.drops = s.drops.into();
        q.overlimits = s.overlimits.into();
        q.backlog = s.backlog.into();
        q.qlen = s.qlen.into();
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stats64_field_has_a_key() {
        let mut s = Stats64::default();
        (s.rx_packets, s.tx_dropped, s.rx_otherhost_dropped) = (3, 1, 2);
        let m = stats64_map(&s);
        assert_eq!(m.len(), 25);
        assert_eq!((m["rx_packets"], m["tx_dropped"], m["rx_otherhost_dropped"], m["multicast"]), (3, 1, 2, 0));
    }

    #[test]
    fn handles_print_like_tc() {
        assert_eq!(tc_handle(TcHandle::ROOT), "root");
        assert_eq!(tc_handle(TcHandle::INGRESS), "ingress");
        assert_eq!(tc_handle(TcHandle { major: 0x10, minor: 1 }), "10:1");
    }
}
