//! The XDP event counter behind `x:xdp_events(...)`: the kernel's xdp:
//! tracepoints (exceptions, redirects and their errors, device-map and
//! XDP_TX transmits and drops), counted per namespace and interface while
//! it runs. The BPF side is `fixtures/bpf/xdp_events.c`, compiled on first
//! use and cached, like the drop tracer.

use std::collections::BTreeMap;
use std::fs::File;

use aya::maps::{HashMap, MapData, PerCpuArray, PerCpuHashMap};
use aya::programs::BtfTracePoint;
use aya::{Ebpf, Pod};

use super::{compile_embedded, load, program_error, sum_percpu_hash, BpfError, Result};
use crate::apply::netns;

const SOURCE: &str = include_str!("../../../fixtures/bpf/xdp_events.c");

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
        {
            let map = ebpf.map_mut("watched").ok_or_else(|| missing("watched"))?;
            let mut watched: HashMap<&mut MapData, u64, u8> = HashMap::try_from(map).map_err(map_error("watched"))?;
            for inode in netns_inodes {
                watched.insert(inode, 1, 0).map_err(map_error("watched"))?;
            }
        }
        for (name, tracepoint) in PROGRAMS {
            let program: &mut BtfTracePoint = ebpf
                .program_mut(name)
                .ok_or_else(|| BpfError::Program { program: name.into(), message: "not in xdp_events.c".into() })?
                .try_into()
                .map_err(|e| program_error(name, e))?;
            program.load(tracepoint, &btf).map_err(|e| program_error(name, e))?;
            program.attach().map_err(|e| program_error(name, e))?;
        }
        Ok(XdpEventCounter { ebpf })
    }

    /// Detaches, then returns the events counted, in the lab's names: a
    /// node's namespace becomes the node, an ifindex the interface's name
    /// there (`"r1:eth0"`). Fails if some events were lost to a full map.
    pub fn stop(mut self, nodes: &BTreeMap<String, File>) -> Result<EventTable> {
        let events = self.ebpf.take_map("events").ok_or_else(|| missing("events"))?;
        let lost = self.ebpf.take_map("lost").ok_or_else(|| missing("lost"))?;
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
        let mut names = BTreeMap::new();
        for (node, file) in nodes {
            names.insert(super::drops::inode(file)?, (node.as_str(), file));
        }
        let mut table = EventTable::new();
        for (key, count) in sum_percpu_hash(&events, "events")? {
            let Some((node, file)) = names.get(&key.netns) else { continue };
            let ifname = netns::run_in(file, || ifname(key.ifindex))
                .map_err(|e| BpfError::Io {
                    what: format!("cannot enter node {node}"),
                    source: std::io::Error::other(e),
                })?
                .unwrap_or_else(|| format!("if{}", key.ifindex));
            let event = EVENTS.get(key.event as usize).map_or_else(|| format!("event{}", key.event), |e| e.to_string());
            *table.entry(format!("{node}:{ifname}")).or_default().entry(event).or_default() += count;
        }
        Ok(table)
    }
}

fn missing(name: &str) -> BpfError {
    BpfError::Map { map: name.into(), message: "not in xdp_events.c".into() }
}

fn map_error(name: &'static str) -> impl Fn(aya::maps::MapError) -> BpfError {
    move |e| BpfError::Map { map: name.into(), message: e.to_string() }
}

/// The name of interface `ifindex` in the calling thread's namespace.
fn ifname(ifindex: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success buf holds a NUL-terminated name.
    Some(unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned())
}
