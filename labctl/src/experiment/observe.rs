//! What `x:counters`, `x:delta` and `x:capture` read, addressed by the lab's
//! names: `"h1:eth0"` (link stats64), `"r1"` (the node's SNMP and netstat
//! counters), `"r1:nft:..."` (nftables rules), `"r1:eth0:tc:..."` (tc filters), `"softnet"`, `"softirqs"` and `"cputime"` (per CPU, machine-wide).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use crate::model::{Lab, MacAddr, BRIDGE_DEVICE};
use crate::observe::{self, counters, normalize, Capture, Packet};

/// Counters by group (`"h1:eth0"`, `"r1"`, `"softnet"`), then by name.
pub type Counters = BTreeMap<String, BTreeMap<String, u64>>;

#[derive(Debug, thiserror::Error)]
pub enum LookError {
    #[error("{what}: {source}")]
    Observe { what: String, source: crate::observe::ObserveError },
    #[error("{what}: {source}")]
    Xdp { what: String, source: crate::observe::xdp::XdpMapError },
    #[error("the lab has no node {0:?}")]
    NoNode(String),
    #[error("capture {0:?}: name an interface as \"node:ifname\"")]
    NotAnInterface(String),
    #[error("{}: {source}", path.display())]
    Write { path: std::path::PathBuf, source: crate::observe::ObserveError },
    #[error("softnet: {0}")]
    Softnet(#[from] serde_json::Error),
    #[error("{0:?}: {NFT_SPEC_HELP}")]
    NftSpec(String),
    #[error("{spec}: no nftables rule {rule:?} with a counter in {node} (its counted rules: {known})")]
    NoNftRule { spec: String, node: String, rule: String, known: String },
    #[error("{0:?}: {TC_SPEC_HELP}")]
    TcSpec(String),
    #[error("{spec}: no tc filter {filter:?} on {interface} (its filters: {known})")]
    NoTcFilter { spec: String, interface: String, filter: String, known: String },
    #[error(
        "{spec}: the kernel counts nothing for {filter}: it has no actions (a classid-only match or a \
         direct-action BPF program), and tc keeps statistics per action; give it one (tc's `action ...`)"
    )]
    TcFilterUncounted { spec: String, filter: String },
}

/// How an nftables counter is named in `x:counters`.
pub const NFT_SPEC_HELP: &str =
    "name an nftables rule's counter as \"r1:nft:<family>/<table>/<chain>/<comment or handle>\" \
     (family one of inet, ip, ip6, arp, bridge, netdev), or all of a node's as \"r1:nft\"";

/// How a tc filter's counters are named in `x:counters`.
pub const TC_SPEC_HELP: &str = "name a tc filter's counters as \"r1:eth0:tc:<block>/<pref>[/<handle>]\" \
     (block one of ingress, egress, root; a BPF filter's program name may stand for its pref), \
     or all of an interface's as \"r1:eth0:tc\"";

/// A tc filter as `x:counters` names it: block, pref (or BPF program name), handle.
type TcFilterName<'a> = (&'a str, &'a str, Option<&'a str>);

/// True for a name of the nftables form (`"r1:nft..."`), well formed or not.
pub fn is_nft(spec: &str) -> bool {
    spec.split(':').nth(1) == Some("nft")
}

/// True for a name of the tc form (`"r1:eth0:tc..."`), well formed or not.
pub fn is_tc(spec: &str) -> bool {
    spec.split(':').nth(2) == Some("tc")
}

/// `"r1:eth0:tc"` → (r1, eth0, None); `"r1:eth0:tc:ingress/10/800::800"` → (r1, eth0, Some((ingress, 10, Some(800::800)))).
pub fn tc_spec(spec: &str) -> std::result::Result<(&str, &str, Option<TcFilterName<'_>>), ()> {
    let mut parts = spec.splitn(4, ':');
    let (node, ifname, _tc) = (parts.next().ok_or(())?, parts.next().ok_or(())?, parts.next().ok_or(())?);
    if node.is_empty() || ifname.is_empty() {
        return Err(());
    }
    let Some(filter) = parts.next() else { return Ok((node, ifname, None)) };
    let mut path = filter.splitn(3, '/');
    let (block, which, handle) = (path.next().ok_or(())?, path.next().ok_or(())?, path.next());
    if !counters::TC_BLOCKS.contains(&block) || which.is_empty() || handle == Some("") {
        return Err(());
    }
    Ok((node, ifname, Some((block, which, handle))))
}

/// The counters of one tc filter (summed over the handles a pref holds), or of every counted filter on the interface.
fn tc(
    netns: &File,
    spec: &str,
    (node, ifname): (&str, &str),
    filter: Option<TcFilterName<'_>>,
) -> Result<BTreeMap<String, u64>> {
    let filters = counters::tc_filters(netns, ifname).map_err(at(spec))?;
    let Some((block, which, handle)) = filter else {
        return Ok(filters
            .iter()
            .filter(|f| f.is_counted())
            .flat_map(|f| f.counters().map(|(k, v)| (format!("{}.{k}", f.name()), v)))
            .collect());
    };
    let found: Vec<&counters::TcFilter> = filters.iter().filter(|f| f.is(block, which, handle)).collect();
    if found.is_empty() {
        let known: Vec<String> = filters.iter().map(|f| f.name()).collect();
        return Err(LookError::NoTcFilter {
            spec: spec.to_string(),
            interface: format!("{node}:{ifname}"),
            filter: [block, which].into_iter().chain(handle).collect::<Vec<_>>().join("/"),
            known: if known.is_empty() { "none".into() } else { known.join(", ") },
        });
    }
    let counted: Vec<&&counters::TcFilter> = found.iter().filter(|f| f.is_counted()).collect();
    if counted.is_empty() {
        return Err(LookError::TcFilterUncounted { spec: spec.to_string(), filter: found[0].name() });
    }
    let mut sum = BTreeMap::new();
    for (k, v) in counted.iter().flat_map(|f| f.counters()) {
        *sum.entry(k.to_string()).or_insert(0) += v;
    }
    Ok(sum)
}

/// `"r1:nft"` → (r1, None); `"r1:nft:inet/filter/input/drop-udp"` → (r1, Some([inet, filter, input, drop-udp])).
pub fn nft_spec(spec: &str) -> std::result::Result<(&str, Option<[&str; 4]>), ()> {
    let mut parts = spec.splitn(3, ':');
    let (node, _nft, rule) = (parts.next().ok_or(())?, parts.next().ok_or(())?, parts.next());
    let Some(rule) = rule else { return Ok((node, None)) };
    let path: Vec<&str> = rule.split('/').collect();
    let [family, table, chain, last] = path[..] else { return Err(()) };
    if node.is_empty() || [table, chain, last].iter().any(|p| p.is_empty()) {
        return Err(());
    }
    if !counters::NFT_FAMILIES.iter().any(|(name, _)| *name == family) {
        return Err(());
    }
    Ok((node, Some([family, table, chain, last])))
}

/// The counters of one rule (`packets`, `bytes`), or of all counted rules.
fn nft(netns: &File, spec: &str, rule: Option<[&str; 4]>) -> Result<BTreeMap<String, u64>> {
    let Some([family, table, chain, last]) = rule else {
        return counters::nft_counters(netns).map_err(at(spec));
    };
    let rules = counters::nft_rules(netns).map_err(at(spec))?;
    let found = rules.iter().find(|r| r.family == family && r.table == table && r.chain == chain && r.is(last));
    match found {
        Some(r) => Ok(BTreeMap::from([("packets".to_string(), r.packets), ("bytes".to_string(), r.bytes)])),
        None => {
            let known: Vec<String> = rules.iter().map(|r| r.name()).collect();
            Err(LookError::NoNftRule {
                spec: spec.to_string(),
                node: spec.split(':').next().unwrap_or_default().to_string(),
                rule: format!("{family}/{table}/{chain}/{last}"),
                known: if known.is_empty() { "none".into() } else { known.join(", ") },
            })
        }
    }
}

type Result<T> = std::result::Result<T, LookError>;

fn at(what: &str) -> impl FnOnce(crate::observe::ObserveError) -> LookError + '_ {
    move |source| LookError::Observe { what: what.to_string(), source }
}

fn xdp_at(what: &str) -> impl FnOnce(crate::observe::xdp::XdpMapError) -> LookError + '_ {
    move |source| LookError::Xdp { what: what.to_string(), source }
}

pub fn read(specs: &[String], netns: &BTreeMap<String, File>) -> Result<Counters> {
    let mut all = Counters::new();
    for spec in specs {
        let group = match spec.as_str() {
            "softnet" => softnet()?,
            "softirqs" => softirqs()?,
            "cputime" => cpu_times()?,
            // "r1:eth0:xdp": the counters in the maps of the XDP program on r1:eth0.
            _ if spec.ends_with(":xdp") && spec.matches(':').count() == 2 => {
                let (node, rest) = spec.split_once(':').expect("two colons");
                let ifname = rest.trim_end_matches(":xdp");
                crate::observe::xdp::counters(node_ns(netns, node)?, ifname).map_err(xdp_at(spec))?
            }
            // "r1:xdp": the same for every interface of r1 with an XDP program, as "eth0.actions.XDP_PASS".
            _ if spec.ends_with(":xdp") && spec.matches(':').count() == 1 => {
                crate::observe::xdp::node_counters(node_ns(netns, spec.trim_end_matches(":xdp"))?)
                    .map_err(xdp_at(spec))?
            }
            // "r1:eth0:qdisc": every qdisc of the interface, as "fq_codel 0:0.drops".
            _ if spec.ends_with(":qdisc") && spec.matches(':').count() == 2 => {
                let (node, rest) = spec.split_once(':').expect("two colons");
                qdiscs(node_ns(netns, node)?, rest.trim_end_matches(":qdisc")).map_err(at(spec))?
            }
            // "r1:nft": every nftables rule with a counter; "r1:nft:inet/filter/input/drop-udp": one.
            _ if is_nft(spec) => {
                let (node, rule) = nft_spec(spec).map_err(|_| LookError::NftSpec(spec.clone()))?;
                nft(node_ns(netns, node)?, spec, rule)?
            }
            // "r1:eth0:tc": every tc filter with actions on r1:eth0; "r1:eth0:tc:ingress/10": one.
            _ if is_tc(spec) => {
                let (node, ifname, filter) = tc_spec(spec).map_err(|_| LookError::TcSpec(spec.clone()))?;
                tc(node_ns(netns, node)?, spec, (node, ifname), filter)?
            }
            _ => match spec.split_once(':') {
                Some((node, ifname)) => counters::link_stats(node_ns(netns, node)?, ifname).map_err(at(spec))?,
                None => counters::snmp(node_ns(netns, spec)?).map_err(at(spec))?,
            },
        };
        all.insert(spec.clone(), group);
    }
    Ok(all)
}

fn qdiscs(netns: &File, ifname: &str) -> crate::observe::Result<BTreeMap<String, u64>> {
    let mut flat = BTreeMap::new();
    for qdisc in counters::qdisc_stats(netns, ifname)? {
        for (name, value) in qdisc.counters() {
            flat.insert(format!("{} {}.{name}", qdisc.kind, qdisc.handle), value);
        }
    }
    Ok(flat)
}

fn node_ns<'a>(netns: &'a BTreeMap<String, File>, node: &str) -> Result<&'a File> {
    netns.get(node).ok_or_else(|| LookError::NoNode(node.into()))
}

/// Per-CPU softnet columns as `cpu0.processed`, `cpu0.dropped`, ...
fn softnet() -> Result<BTreeMap<String, u64>> {
    let rows = counters::softnet().map_err(at("softnet"))?;
    let mut flat = BTreeMap::new();
    for row in rows {
        let cpu = row.cpu;
        let fields = serde_json::to_value(&row)?;
        for (name, value) in fields.as_object().into_iter().flatten() {
            if let (Some(v), true) = (value.as_u64(), name != "cpu") {
                flat.insert(format!("cpu{cpu}.{name}"), v);
            }
        }
    }
    Ok(flat)
}

/// Per-CPU time in microseconds as `cpu0.softirq_us`, `cpu0.system_us`, ...
fn cpu_times() -> Result<BTreeMap<String, u64>> {
    let mut flat = BTreeMap::new();
    for row in counters::cpu_times().map_err(at("cputime"))? {
        let cpu = row.cpu;
        for (name, value) in [
            ("user_us", row.user_us),
            ("system_us", row.system_us),
            ("irq_us", row.irq_us),
            ("softirq_us", row.softirq_us),
        ] {
            flat.insert(format!("cpu{cpu}.{name}"), value);
        }
    }
    Ok(flat)
}

/// NET_RX and NET_TX softirq counts as `NET_RX.cpu0`, ...
fn softirqs() -> Result<BTreeMap<String, u64>> {
    let table = counters::softirqs().map_err(at("softirqs"))?;
    Ok(table
        .into_iter()
        .flat_map(|(name, per_cpu)| {
            per_cpu.into_iter().enumerate().map(move |(cpu, v)| (format!("{name}.cpu{cpu}"), v))
        })
        .collect())
}

/// after - before, keeping only counters that moved.
pub fn delta(before: &Counters, after: &Counters) -> Counters {
    after
        .iter()
        .map(|(group, values)| {
            let moved = values
                .iter()
                .filter_map(|(name, v)| {
                    let old = before.get(group).and_then(|g| g.get(name)).copied().unwrap_or(0);
                    let d = v.saturating_sub(old);
                    (d > 0).then(|| (name.clone(), d))
                })
                .collect();
            (group.clone(), moved)
        })
        .collect()
}

/// The lab's own MACs by name, so traces say `h1:eth0` instead of a MAC.
pub fn mac_names(lab: &Lab) -> BTreeMap<MacAddr, String> {
    let mut names: BTreeMap<MacAddr, String> = lab
        .links
        .iter()
        .flat_map(|l| l.ends.iter())
        .map(|e| (lab.mac_of(e), format!("{}:{}", e.node, e.ifname)))
        .collect();
    for node in lab.nodes.iter().filter(|n| n.kind == crate::model::NodeKind::Bridge) {
        names.insert(MacAddr::derive(&lab.name, &node.name, BRIDGE_DEVICE), format!("{}:{BRIDGE_DEVICE}", node.name));
    }
    names
}

/// Captures started on `"node:ifname"` points.
pub struct Captures(Vec<(String, Capture)>);

impl Captures {
    pub fn start(points: &[String], netns: &BTreeMap<String, File>) -> Result<Self> {
        let mut started = Vec::new();
        for point in points {
            let (node, ifname) = point.split_once(':').ok_or_else(|| LookError::NotAnInterface(point.clone()))?;
            let capture = Capture::start(node_ns(netns, node)?, ifname).map_err(at(&format!("capture {point}")))?;
            started.push((point.clone(), capture.labelled(point.clone())));
        }
        // So that packets of several points merge in the order they passed.
        if !points.is_empty() {
            crate::observe::capture::wait_for_kernel_timestamps();
        }
        Ok(Captures(started))
    }

    /// Stops all captures; packets of all points merged in time order. Each
    /// point's packets are also written as `<node>-<ifname>.pcapng` to `dir`.
    pub fn stop(self, dir: Option<&Path>) -> Result<Vec<Packet>> {
        let mut all = Vec::new();
        for (point, capture) in self.0 {
            let packets = capture.stop().map_err(at(&format!("capture {point}")))?;
            if let Some(dir) = dir {
                let _ = std::fs::create_dir_all(dir);
                let file = dir.join(format!("{}.pcapng", point.replace(':', "-")));
                observe::pcapng::write_file(&file, &packets)
                    .map_err(|source| LookError::Write { path: file.clone(), source })?;
            }
            all.extend(packets);
        }
        all.sort_by_key(|p| p.ts_ns);
        Ok(all)
    }
}

/// Normalized trace lines; with several capture points each line says where.
pub fn trace_lines(packets: &[Packet], lab: &Lab, points: usize) -> Vec<String> {
    let options = normalize::Options { capture_point: points > 1, ..normalize::Options::default() };
    normalize::lines(packets, &mac_names(lab), &options)
}
