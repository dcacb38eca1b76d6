//! The drop-reason tracer: which packets the kernel dropped, where (network
//! namespace and interface) and why (`enum skb_drop_reason`, e.g.
//! `IP_INNOROUTES`, `NETFILTER_DROP`, `IP_RPFILTER`), and the code that
//! dropped them (`ip_error`, `nf_hook_slow`, ...). The BPF side is
//! `drops.bpf.c` beside this file, compiled on first use and cached.
//!
//! ```no_run
//! # fn main() -> labctl::bpf::Result<()> {
//! let tracer = labctl::bpf::DropTracer::start()?;
//! // ... traffic ...
//! for drop in tracer.stop()? {
//!     println!("netns {} if {} {} x{}", drop.netns_inode, drop.ifindex, drop.reason, drop.count);
//! }
//! # Ok(()) }
//! ```
//!
//! [`by_node`] turns records into a lab's names (`"r1:eth0"`), keeping only
//! the lab's own namespaces.

use std::collections::BTreeMap;
use std::fs::File;

use aya::maps::{MapData, PerCpuArray, PerCpuHashMap};
use aya::{Ebpf, Pod};
use serde::Serialize;

use super::kallsyms::Symbols;
use super::places::Places;
pub use super::places::{inode, inodes};
use super::{
    attach_tracepoints, btf, compile_embedded, load, map_error, missing_map, percpu_hash, sum_percpu_hash,
    watch_namespaces, BpfError, Result,
};

const SOURCE: &str = include_str!("drops.bpf.c");

/// (program in drops.c, kernel tracepoint it attaches to)
const PROGRAMS: [(&str, &str); 3] =
    [("drops_kfree_skb", "kfree_skb"), ("drops_rx", "netif_receive_skb"), ("drops_tx", "net_dev_xmit")];

/// (program in drops.c, tracepoint), attached only when receive work is
/// timed: the ends of receive work, which close the time of the packet
/// under way (see `struct rx_open` in drops.c).
const RX_TIMING: [(&str, &str); 2] =
    [("drops_rx_poll_end", "napi_poll"), ("drops_rx_call_end", "netif_receive_skb_exit")];

const REASON_PREFIX: &str = "SKB_DROP_REASON_";

/// `struct drop_key` of drops.c.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct DropKey {
    netns: u64,
    location: u64,
    ifindex: u32,
    reason: u32,
}
// SAFETY: repr(C), plain integers, no padding (8 + 8 + 4 + 4).
unsafe impl Pod for DropKey {}

/// `struct path_key` of drops.c.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct PathKey {
    netns: u64,
    ifindex: u32,
    dir: u32,
}
// SAFETY: repr(C), plain integers, no padding (8 + 4 + 4).
unsafe impl Pod for PathKey {}

/// Packets dropped at one place for one reason.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DropRecord {
    /// Inode of the network namespace (as `stat -L /run/netns/<name>` shows
    /// it); 0 when the skb had neither a device nor a socket.
    pub netns_inode: u64,
    /// The skb's device (or, without one, the device it came in on); 0: none.
    pub ifindex: u32,
    /// The kernel's name without `SKB_DROP_REASON_`: `NO_SOCKET`, `IP_INNOROUTES`, ...
    pub reason: String,
    /// The kernel function that dropped it, when /proc/kallsyms tells.
    pub location: Option<String>,
    pub count: u64,
}

/// Packets received and transmitted by one interface while tracing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PathRecord {
    pub netns_inode: u64,
    pub ifindex: u32,
    pub rx: u64,
    pub tx: u64,
    /// `rx` by the CPU that received each packet (index = CPU number): where
    /// the receive work of this interface ran, unlike softnet's counters,
    /// which add up every interface of the machine.
    pub rx_per_cpu: Vec<u64>,
    /// Nanoseconds the kernel's receive path (from the packet's
    /// `netif_receive_skb` event to the next receive event on its CPU or
    /// the end of the poll: protocol handlers, netfilter, routing, delivery
    /// to a socket) spent on this interface's packets; 0 unless the tracer
    /// was started with [`DropTracer::start_timing_rx`]. Time in softirq
    /// context, which other programs on the machine cannot stretch.
    pub rx_ns: u64,
}

/// Everything the tracer counted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KernelPath {
    pub drops: Vec<DropRecord>,
    pub path: Vec<PathRecord>,
    /// Events not counted because a map was full.
    pub lost: u64,
}

/// Attached tracepoint programs; dropping it (or [`DropTracer::stop`])
/// detaches and unloads them.
pub struct DropTracer {
    ebpf: Ebpf,
    reasons: BTreeMap<u64, String>,
    program_ids: Vec<u32>,
}

impl DropTracer {
    /// Traces drops in every network namespace of the machine.
    pub fn start() -> Result<DropTracer> {
        DropTracer::start_with(None, false)
    }

    /// Traces drops only in the namespaces with these inodes (see
    /// [`inodes`]); the filter runs in the kernel, so the rest of the machine
    /// costs a map lookup per packet and fills nothing.
    pub fn start_in(netns_inodes: &[u64]) -> Result<DropTracer> {
        DropTracer::start_with(Some(netns_inodes), false)
    }

    /// [`start_in`](Self::start_in), also timing each watched interface's
    /// receive path ([`PathRecord::rx_ns`]).
    pub fn start_timing_rx(netns_inodes: &[u64]) -> Result<DropTracer> {
        DropTracer::start_with(Some(netns_inodes), true)
    }

    fn start_with(filter: Option<&[u64]>, time_rx: bool) -> Result<DropTracer> {
        // Reason names and values come from this kernel, never from a table.
        let reasons = btf::kernel_enum("skb_drop_reason")?;
        let consumed =
            reasons.iter().find(|(_, name)| *name == "SKB_CONSUMED").map_or(u32::MAX, |(value, _)| *value as u32);
        let only_watched = u8::from(filter.is_some());
        let timed = u8::from(time_rx);

        let object = compile_embedded("drops.c", SOURCE)?;
        let btf = super::kernel_btf()?;
        let mut ebpf = load(&object, &btf, |loader| {
            loader.override_global("consumed_reason", &consumed, true);
            loader.override_global("only_watched", &only_watched, true);
            loader.override_global("time_rx", &timed, true);
        })?;

        if let Some(inodes) = filter {
            watch_namespaces(&mut ebpf, "drops.c", inodes)?;
        }

        let mut program_ids = attach_tracepoints(&mut ebpf, &btf, "drops.c", &PROGRAMS)?;
        if time_rx {
            program_ids.extend(attach_tracepoints(&mut ebpf, &btf, "drops.c", &RX_TIMING)?);
        }
        Ok(DropTracer { ebpf, reasons, program_ids })
    }

    /// The kernel ids of the loaded programs (`bpftool prog show id N`).
    pub fn program_ids(&self) -> &[u32] {
        &self.program_ids
    }

    /// Detaches and unloads the programs, then returns the drops counted,
    /// sorted. Fails if some drops could not be counted (a full map).
    pub fn stop(self) -> Result<Vec<DropRecord>> {
        let all = self.stop_with_path()?;
        if all.lost > 0 {
            return Err(BpfError::Map {
                map: "drops".into(),
                message: format!("{} events were not counted: the map was full", all.lost),
            });
        }
        Ok(all.drops)
    }

    /// Like [`stop`](Self::stop), with the packets each interface received
    /// and transmitted, and the count of events lost to full maps.
    pub fn stop_with_path(mut self) -> Result<KernelPath> {
        let drops = self.ebpf.take_map("drops").ok_or_else(|| missing_map("drops", "drops.c"))?;
        let path = self.ebpf.take_map("path").ok_or_else(|| missing_map("path", "drops.c"))?;
        let rx_time = self.ebpf.take_map("rx_time").ok_or_else(|| missing_map("rx_time", "drops.c"))?;
        let lost = self.ebpf.take_map("lost").ok_or_else(|| missing_map("lost", "drops.c"))?;
        let reasons = std::mem::take(&mut self.reasons);
        // Detach and unload now: the counts stop moving.
        drop(self.ebpf);

        let drops: PerCpuHashMap<MapData, DropKey, u64> = PerCpuHashMap::try_from(drops).map_err(map_error("drops"))?;
        let path: PerCpuHashMap<MapData, PathKey, u64> = PerCpuHashMap::try_from(path).map_err(map_error("path"))?;
        let rx_time: PerCpuHashMap<MapData, PathKey, u64> =
            PerCpuHashMap::try_from(rx_time).map_err(map_error("rx_time"))?;
        let lost: PerCpuArray<MapData, u64> = PerCpuArray::try_from(lost).map_err(map_error("lost"))?;

        let raw = sum_percpu_hash(&drops, "drops")?;
        let symbols = if raw.is_empty() { None } else { Some(Symbols::load()) };
        let mut merged: BTreeMap<(u64, u32, String, Option<String>), u64> = BTreeMap::new();
        for (key, count) in raw {
            let reason = reason_name(&reasons, key.reason);
            let location = symbols.as_ref().and_then(|s| s.lookup(key.location)).map(String::from);
            *merged.entry((key.netns, key.ifindex, reason, location)).or_default() += count;
        }
        let drops = merged
            .into_iter()
            .map(|((netns_inode, ifindex, reason, location), count)| DropRecord {
                netns_inode,
                ifindex,
                reason,
                location,
                count,
            })
            .collect();

        let mut by_if: BTreeMap<(u64, u32), PathRecord> = BTreeMap::new();
        for (key, per_cpu) in percpu_hash(&path, "path")? {
            let entry = by_if.entry((key.netns, key.ifindex)).or_insert_with(|| PathRecord {
                netns_inode: key.netns,
                ifindex: key.ifindex,
                rx: 0,
                tx: 0,
                rx_per_cpu: vec![0; per_cpu.len()],
                rx_ns: 0,
            });
            let count: u64 = per_cpu.iter().sum();
            if key.dir == 0 {
                entry.rx += count;
                entry.rx_per_cpu = per_cpu;
            } else {
                entry.tx += count;
            }
        }
        for (key, ns) in sum_percpu_hash(&rx_time, "rx_time")? {
            if let Some(entry) = by_if.get_mut(&(key.netns, key.ifindex)) {
                entry.rx_ns += ns;
            }
        }
        let path = by_if.into_values().collect();

        let mut lost_total = 0;
        for slot in 0..3 {
            let values = lost.get(&slot, 0).map_err(map_error("lost"))?;
            lost_total += values.iter().sum::<u64>();
        }
        Ok(KernelPath { drops, path, lost: lost_total })
    }
}

/// `IP_INNOROUTES` for `SKB_DROP_REASON_IP_INNOROUTES`; a value this kernel
/// does not name (a subsystem's reason) as `REASON_0x...`.
fn reason_name(reasons: &BTreeMap<u64, String>, value: u32) -> String {
    match reasons.get(&(value as u64)) {
        Some(name) => name.strip_prefix(REASON_PREFIX).unwrap_or(name).to_string(),
        None => format!("REASON_{value:#x}"),
    }
}

/// Drops counted per place, then per reason: `{"r1:eth0": {"IP_INNOROUTES": 3}}`.
pub type DropTable = BTreeMap<String, BTreeMap<String, u64>>;

/// Records in the lab's names: a node's namespace becomes the node's name,
/// an ifindex the interface's name inside that node (`"r1:eth0"`), and a
/// drop without a device just the node (`"r1"`). Records from namespaces
/// that are not the lab's are left out. With `locations`, each reason also
/// says which kernel function dropped the packets: `"IP_INNOROUTES (ip_error)"`.
pub fn by_node(records: &[DropRecord], nodes: &BTreeMap<String, File>, locations: bool) -> Result<DropTable> {
    let places = Places::of(records.iter().map(|r| (r.netns_inode, r.ifindex)), nodes)?;
    let mut table = DropTable::new();
    for record in records {
        let Some(place) = places.name(record.netns_inode, record.ifindex) else { continue };
        let reason = match (&record.location, locations) {
            (Some(location), true) => format!("{} ({location})", record.reason),
            _ => record.reason.clone(),
        };
        *table.entry(place).or_default().entry(reason).or_default() += record.count;
    }
    Ok(table)
}

/// Packets each interface received (`rx`) and transmitted (`tx`), by the
/// kernel's own tracepoints: `{"r1:eth0": {"rx": 3, "tx": 3}}`; with
/// [`PathColumns::per_cpu`], also what each CPU received: `"rx.cpu0"`,
/// `"rx.cpu1"`, ...; with [`PathColumns::rx_ns`], `"rx_ns"`.
pub type PathTable = BTreeMap<String, BTreeMap<String, u64>>;

/// What a [`PathTable`] shows beside `rx` and `tx`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PathColumns {
    /// `rx` by CPU.
    pub per_cpu: bool,
    /// The receive path's time ([`PathRecord::rx_ns`]).
    pub rx_ns: bool,
}

/// Path records in the lab's names, as [`by_node`] names drops.
pub fn path_by_interface(
    records: &[PathRecord],
    nodes: &BTreeMap<String, File>,
    columns: PathColumns,
) -> Result<PathTable> {
    let places = Places::of(records.iter().map(|r| (r.netns_inode, r.ifindex)), nodes)?;
    let mut table = PathTable::new();
    for record in records {
        let Some(place) = places.name(record.netns_inode, record.ifindex) else { continue };
        let counts = table.entry(place).or_default();
        *counts.entry("rx".into()).or_default() += record.rx;
        *counts.entry("tx".into()).or_default() += record.tx;
        if columns.per_cpu {
            for (cpu, count) in record.rx_per_cpu.iter().enumerate() {
                *counts.entry(format!("rx.cpu{cpu}")).or_default() += count;
            }
        }
        if columns.rx_ns {
            *counts.entry("rx_ns".into()).or_default() += record.rx_ns;
        }
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_names_drop_the_prefix() {
        let reasons = BTreeMap::from([(2, "SKB_DROP_REASON_NOT_SPECIFIED".to_string()), (1, "SKB_CONSUMED".into())]);
        assert_eq!(reason_name(&reasons, 2), "NOT_SPECIFIED");
        assert_eq!(reason_name(&reasons, 1), "SKB_CONSUMED");
        assert_eq!(reason_name(&reasons, 0x10001), "REASON_0x10001");
    }
}
