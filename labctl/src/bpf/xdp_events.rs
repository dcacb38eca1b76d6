//! The XDP event counter behind `x:xdp_events(...)`: the kernel's xdp:
//! tracepoints (exceptions, redirects and their errors, device-map and
//! XDP_TX transmits and drops), counted per namespace and interface while
//! it runs. The BPF side is `xdp_events.bpf.c` beside this file, compiled on first
//! use and cached, like the drop tracer.

use std::collections::BTreeMap;
use std::fs::File;

use aya::maps::{MapData, PerCpuArray, PerCpuHashMap};
use aya::{Ebpf, Pod};

use super::places::Places;
use super::{
    attach_tracepoints, compile_embedded, load, map_error, missing_map, sum_percpu_hash, watch_namespaces, BpfError,
    Result,
};

const SOURCE: &str = include_str!("xdp_events.bpf.c");

/// (program in xdp_events.c, kernel tracepoint)
const PROGRAMS: [(&str, &str); 5] = [
    ("xdp_events_exception", "xdp_exception"),
    ("xdp_events_redirect", "xdp_redirect"),
    ("xdp_events_redirect_err", "xdp_redirect_err"),
    ("xdp_events_devmap_xmit", "xdp_devmap_xmit"),
    ("xdp_events_bulk_tx", "xdp_bulk_tx"),
];

/// `enum event` of xdp_events.c, as the results name them.
const EVENTS: [&str; 7] = [
    "xdp_exception",
    "xdp_redirect",
    "xdp_redirect_err",
    "xdp_devmap_xmit.sent",
    "xdp_devmap_xmit.drops",
    "xdp_bulk_tx.sent",
    "xdp_bulk_tx.drops",
];

/// `struct event_key` of xdp_events.c.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct EventKey {
    netns: u64,
    ifindex: u32,
    event: u32,
}
// SAFETY: repr(C), plain integers, no padding (8 + 4 + 4).
unsafe impl Pod for EventKey {}

/// Events by place (`"r1:eth0"`), then by name (`"xdp_redirect"`).
pub type EventTable = BTreeMap<String, BTreeMap<String, u64>>;

/// Attached tracepoint programs; dropping it detaches them.
pub struct XdpEventCounter {
    ebpf: Ebpf,
}

impl XdpEventCounter {
    /// Counts events of devices in the namespaces with these inodes only.
    pub fn start_in(netns_inodes: &[u64]) -> Result<XdpEventCounter> {
        let object = compile_embedded("xdp_events.c", SOURCE)?;
        let btf = super::kernel_btf()?;
        let mut ebpf = load(&object, &btf, |loader| {
            loader.override_global("only_watched", &1u8, true);
        })?;
        watch_namespaces(&mut ebpf, "xdp_events.c", netns_inodes)?;
        attach_tracepoints(&mut ebpf, &btf, "xdp_events.c", &PROGRAMS)?;
        Ok(XdpEventCounter { ebpf })
    }

    /// Detaches, then returns the events counted, in the lab's names: a
    /// node's namespace becomes the node, an ifindex the interface's name
    /// there (`"r1:eth0"`). Fails if some events were lost to a full map.
    pub fn stop(mut self, nodes: &BTreeMap<String, File>) -> Result<EventTable> {
        let events = self.ebpf.take_map("events").ok_or_else(|| missing_map("events", "xdp_events.c"))?;
        let lost = self.ebpf.take_map("lost").ok_or_else(|| missing_map("lost", "xdp_events.c"))?;
        drop(self.ebpf);
        let events: PerCpuHashMap<MapData, EventKey, u64> =
            PerCpuHashMap::try_from(events).map_err(map_error("events"))?;
        let lost: PerCpuArray<MapData, u64> = PerCpuArray::try_from(lost).map_err(map_error("lost"))?;
        let lost: u64 = lost.get(&0, 0).map_err(map_error("lost"))?.iter().sum();
        if lost > 0 {
            return Err(BpfError::Map {
                map: "events".into(),
                message: format!("{lost} events were not counted: the map was full"),
            });
        }
        let counted = sum_percpu_hash(&events, "events")?;
        let places = Places::of(counted.iter().map(|(key, _)| (key.netns, key.ifindex)), nodes)?;
        let mut table = EventTable::new();
        for (key, count) in counted {
            let Some(place) = places.name(key.netns, key.ifindex) else { continue };
            let event = EVENTS.get(key.event as usize).map_or_else(|| format!("event{}", key.event), |e| e.to_string());
            *table.entry(place).or_default().entry(event).or_default() += count;
        }
        Ok(table)
    }
}
