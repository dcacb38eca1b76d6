//! Counter readers. Each returns plain serde-serializable data with a
//! deterministic order (BTreeMap, sorted lists), ready for a snapshot.
//!
//! Per-namespace: [`link_stats`], [`qdisc_stats`], [`snmp`], [`neighbours`],
//! [`routes`], [`nft_counters`] (nftables rule counters), [`tc_filters`] (tc filters and their actions' counters). Global (per CPU, not per namespace): [`softnet`], [`softirqs`], [`cpu_times`].
//! [`Delta`] turns two snapshots of a counter map into what moved.

mod delta;
mod fdb;
mod link;
mod nft;
mod procfs;
mod tables;
mod tc_filters;

pub use delta::Delta;
pub use fdb::{fdb, rules, FdbEntry, RuleEntry};
pub use link::{link_stats, qdisc_stats, QdiscStats};
pub use nft::{nft_counters, nft_rules, NftRule, FAMILIES as NFT_FAMILIES};
pub use procfs::{
    cpu_times, parse_cpu_times, parse_netstat, parse_snmp6, parse_softirqs, parse_softnet, snmp, softirqs, softnet,
    CpuTimes, SoftnetRow,
};
pub use tables::{neighbours, routes, Neighbour, Route};
pub(crate) use tables::{neighbours_on, routes_on};
pub use tc_filters::{tc_filters, TcFilter, BLOCKS as TC_BLOCKS};
