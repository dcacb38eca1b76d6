//! `labctl show LAB`: a running lab as the kernel has it (interfaces,
//! addresses, state, routes, neighbours, read over rtnetlink inside each
//! node), with every difference from what the script declared.

use std::collections::BTreeMap;

use labctl::apply::{ipsec, state::LabState};
use labctl::model::Lab;
use labctl::observe::{counters, interfaces};
use labctl::sys::netns;
use serde::Serialize;

use super::drift::{self, Actual, Drift};
use super::out::say;
use super::overlays::{self, TunnelRow, XdpRow};
use super::{lab_name_from, running_lab, table, Failure};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab's name, or its script
    lab: String,
    /// Print the declaration, the kernel's side and the drift as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Shown<'a> {
    name: &'a str,
    state: &'static str,
    script: String,
    namespaces: Vec<NamespaceState>,
    /// The interfaces as declared (see `actual` for the kernel's).
    interfaces: Vec<table::InterfaceRow>,
    /// XDP programs per interface, with whether each is still pinned (attached).
    xdp: Vec<XdpRow>,
    /// IPsec tunnels between gateways (or hosts, in transport mode).
    ipsec: Vec<TunnelRow>,
    /// Each node as the kernel has it: interfaces (MAC, MTU, state,
    /// addresses), routes and neighbours. Absent without root.
    #[serde(skip_serializing_if = "Option::is_none")]
    actual: Option<BTreeMap<String, Actual>>,
    /// Where the kernel differs from the declaration.
    drift: Vec<Drift>,
    /// The lab as declared.
    lab: &'a Lab,
}

#[derive(Debug, Serialize)]
struct NamespaceState {
    node: String,
    netns: String,
    present: bool,
}

/// At most this many differences in the text; `--json` has them all.
const DRIFT_LINES: usize = 20;

pub fn run(args: Args) -> Result<(), Failure> {
    let name = lab_name_from(&args.lab)?;
    let recorded = running_lab(&name)?;
    let lab = &recorded.lab;
    let ready = LabState::open(&name).is_some_and(|s| s.is_ready());
    let namespaces: Vec<NamespaceState> = lab
        .nodes
        .iter()
        .map(|n| {
            let netns = lab.netns_name(&n.name);
            NamespaceState { node: n.name.clone(), present: netns::exists(&netns), netns }
        })
        .collect();
    let state = match (ready, namespaces.iter().all(|n| n.present)) {
        (true, true) => "up",
        (true, false) => "damaged",
        (false, _) => "incomplete",
    };
    let actual = labctl::apply::check_privileges().is_ok().then(|| read_kernel(lab));
    let drift = actual.as_ref().map(|a| drift_of(lab, a)).unwrap_or_default();
    let shown = Shown {
        name: &name,
        state,
        script: recorded.script.display().to_string(),
        namespaces,
        interfaces: table::interface_rows(lab),
        xdp: overlays::xdp_rows(lab),
        ipsec: started_tunnels(lab),
        actual,
        drift,
        lab,
    };
    if args.json {
        say!("{}", serde_json::to_string_pretty(&shown).expect("serializes"));
        return Ok(());
    }
    say!("lab {name} ({state}) from {}", shown.script);
    if let Some(d) = &lab.description {
        say!("  {d}");
    }
    for line in super::params::describe(&lab.params) {
        say!("  {line}");
    }
    if state == "incomplete" {
        print_incomplete(&shown);
        return Ok(());
    }
    match &shown.actual {
        Some(actual) => print_kernel(lab, actual),
        None => {
            say!("\n{}", table::render(&shown.interfaces));
            say!("\n(as declared: run `labctl show` as root to read the kernel and compare)");
        }
    }
    if !shown.xdp.is_empty() {
        say!("\nxdp:\n{}", shown.xdp.iter().map(xdp_line).collect::<Vec<_>>().join("\n"));
    }
    if !lab.impairments.is_empty() {
        say!("\nimpairments (what each end sends):\n{}", impairment_lines(lab).join("\n"));
    }
    if !shown.ipsec.is_empty() {
        say!("\nipsec:\n{}", shown.ipsec.iter().map(tunnel_line).collect::<Vec<_>>().join("\n"));
    }
    if shown.actual.is_some() {
        print_drift(&shown);
    }
    Ok(())
}

/// `  h4:eth0 rate 10mbit, loss 0% (seed 7); loss program at s1:eth3 (pinned)`
fn impairment_lines(lab: &Lab) -> Vec<String> {
    lab.impairments
        .iter()
        .map(|i| {
            let mut line = format!("  {}:{} {}", i.node, i.ifname, i.settings.describe());
            if let (Some(_), Some(peer)) = (i.settings.loss, lab.peer_of(&i.node, &i.ifname)) {
                let pins = labctl::model::layout::loss_pin_dir(&lab.name, &peer.node, &peer.ifname);
                let state = if pins.join("link").exists() { "pinned" } else { "not pinned" };
                line.push_str(&format!("; loss program at {}:{} ({state})", peer.node, peer.ifname));
            }
            line
        })
        .collect()
}

/// Every node's interfaces, routes and neighbours, from inside its namespace;
/// a node whose namespace is gone (or unreadable) is left out.
fn read_kernel(lab: &Lab) -> BTreeMap<String, Actual> {
    let mut all = BTreeMap::new();
    for node in &lab.nodes {
        let Ok(ns) = netns::open(&lab.netns_name(&node.name)) else { continue };
        if let Ok((interfaces, routes, neighbours)) = interfaces::tables(&ns) {
            let rules = counters::rules(&ns).map(drift::non_default_rules).unwrap_or_default();
            all.insert(node.name.clone(), Actual { interfaces, routes, rules, neighbours });
        }
    }
    all
}

fn drift_of(lab: &Lab, actual: &BTreeMap<String, Actual>) -> Vec<Drift> {
    let index = labctl::model::index::LabIndex::new(lab);
    lab.nodes.iter().flat_map(|n| drift::of_node_in(&index, &n.name, actual.get(&n.name))).collect()
}

/// A lab whose `up` never finished: a short account and what to do.
fn print_incomplete(shown: &Shown) {
    let present = shown.namespaces.iter().filter(|n| n.present).count();
    say!(
        "  `labctl up` did not finish (it was killed, or is still running): {present} of {} namespaces exist.",
        shown.namespaces.len()
    );
    say!("  help: run `labctl down {}` to remove what it built, then `labctl up` again", shown.name);
}

/// The interfaces, routes and neighbours as the kernel has them.
fn print_kernel(lab: &Lab, actual: &BTreeMap<String, Actual>) {
    let mut rows = comfy_table::Table::new();
    rows.load_preset(comfy_table::presets::NOTHING).set_header([
        "NODE",
        "INTERFACE",
        "MAC",
        "STATE",
        "ADDRESSES",
        "PEER",
    ]);
    let peers: BTreeMap<(String, String), String> =
        table::interface_rows(lab).into_iter().map(|r| ((r.node, r.interface), r.peer)).collect();
    let mut routes = Vec::new();
    let mut rules = Vec::new();
    let mut neighbours = Vec::new();
    for node in &lab.nodes {
        let Some(actual) = actual.get(&node.name) else { continue };
        for i in actual.interfaces.iter().filter(|i| i.name != "lo") {
            let addresses: Vec<String> =
                i.addresses.iter().filter(|a| !drift::is_link_local(a)).map(|a| a.to_string()).collect();
            let peer = peers.get(&(node.name.clone(), i.name.clone())).map_or("(not declared)", String::as_str);
            rows.add_row([
                node.name.as_str(),
                &i.name,
                &i.mac.map_or_else(|| "-".to_string(), |m| m.to_string()),
                &i.state,
                &if addresses.is_empty() { "-".to_string() } else { addresses.join(" ") },
                peer,
            ]);
        }
        // Unicast routes and the dropping kinds a lab declares; other tables than main say which.
        let shown_kind = |k: &str| matches!(k, "unicast" | "blackhole" | "unreachable" | "prohibit");
        // Tables other than main only where the lab declares routes (an IPsec daemon keeps its own, 220).
        let declared_table = |t: Option<u32>| t.is_none() || node.routing.routes.iter().any(|d| d.table == t);
        for r in actual
            .routes
            .iter()
            .filter(|r| !drift::is_link_local(&r.dst) && shown_kind(&r.kind) && declared_table(r.table))
        {
            let dev = r.dev.as_deref().map(|d| format!(" dev {d}")).unwrap_or_default();
            let connected = if r.proto == "kernel" { " (connected)" } else { "" };
            let kind = if r.kind == "unicast" { String::new() } else { format!("{} ", r.kind) };
            let table = r.table.map(|t| format!(" table {t}")).unwrap_or_default();
            let route = drift::route_text(&r.dst, r.via);
            routes.push(format!("  {}: {kind}{route}{dev}{table}{connected}", node.name));
        }
        for r in actual.rules.iter().filter(|_| !node.routing.rules.is_empty()) {
            rules.push(format!("  {}: {}", node.name, rule_line(r)));
        }
        for n in &actual.neighbours {
            let mac = n.lladdr.map(|m| format!(" lladdr {m}")).unwrap_or_default();
            neighbours.push(format!("  {}: {} dev {}{mac} {}", node.name, n.dst, n.dev, n.state));
        }
    }
    say!("\n{rows}");
    say!("\nroutes (from the kernel):\n{}", if routes.is_empty() { "  none".into() } else { routes.join("\n") });
    if !rules.is_empty() {
        say!("\nrules (from the kernel, the default three left out):\n{}", rules.join("\n"));
    }
    if !neighbours.is_empty() {
        say!("\nneighbours (from the kernel):\n{}", neighbours.join("\n"));
    }
}

/// `100: from 198.18.1.0/24 lookup 100`, as `ip rule` shows it.
fn rule_line(r: &counters::RuleEntry) -> String {
    let mut text = format!("{}: from {}", r.priority, r.from.map_or("all".into(), |n| n.to_string()));
    if let Some(to) = r.to {
        text.push_str(&format!(" to {to}"));
    }
    if let Some(iif) = &r.iif {
        text.push_str(&format!(" iif {iif}"));
    }
    if let Some(mark) = r.fwmark {
        text.push_str(&format!(" fwmark {mark:#x}"));
    }
    if r.family == 6 {
        text.push_str(" (IPv6)");
    }
    format!("{text} {} {}", r.action, r.table)
}

/// `drift from the script (2):` and one line per difference, or "none".
fn print_drift(shown: &Shown) {
    if shown.drift.is_empty() {
        say!("\nthe kernel matches {}: no drift", shown.script);
        return;
    }
    say!("\ndrift from {} ({}):", shown.script, shown.drift.len());
    for d in shown.drift.iter().take(DRIFT_LINES) {
        say!("  {}", drift_line(d));
    }
    if shown.drift.len() > DRIFT_LINES {
        say!("  ... and {} more (`labctl show {} --json` lists them all)", shown.drift.len() - DRIFT_LINES, shown.name);
    }
    say!("  help: `labctl down {name}` and `labctl up` again rebuild it as declared", name = shown.name);
}

/// `h1: missing route default via 198.18.1.2 (declared at labs/part1.lua:20)`
fn drift_line(d: &Drift) -> String {
    let kind = match d.kind {
        drift::Kind::Missing => "missing",
        drift::Kind::Added => "added",
        drift::Kind::Changed => "changed",
    };
    let detail = d.detail.as_ref().map(|x| format!(": {x}")).unwrap_or_default();
    let at = d.declared_at.as_ref().map(|x| format!(" (declared at {x})")).unwrap_or_default();
    format!("{}: {kind} {}{detail}{at}", d.node, d.what)
}

/// `  r1: eth0 xdp_redirect (native) compiled from labs/../fixtures/xdp/xdp_redirect.c`
fn xdp_line(row: &XdpRow) -> String {
    let from = match (&row.source, &row.object) {
        (Some(source), _) => format!("compiled from {}", source.display()),
        (None, Some(object)) => format!("loaded from {}", object.display()),
        (None, None) => String::new(),
    };
    // Like a missing namespace: the lab says attached, the kernel no longer has it.
    let missing = if row.pinned { "" } else { " [not attached]" };
    format!("  {}: {} {} ({}) {from}{missing}", row.node, row.interface, row.program, row.mode)
}

/// `  gw_cloud 198.18.1.1 <-> gw_onprem 198.18.2.1: tunnel, strongswan, aes-gcm-128, protects A <-> B`
fn tunnel_line(row: &TunnelRow) -> String {
    let address = |a: Option<std::net::IpAddr>| a.map_or_else(|| "?".to_string(), |a| a.to_string());
    format!(
        "  {} {} <-> {} {}: {} mode, backend {}, {}, protects {}",
        row.left,
        address(row.left_address),
        row.right,
        address(row.right_address),
        row.mode,
        overlays::backend_text(row),
        row.cipher,
        overlays::protected_traffic(row)
    )
}

/// The lab's tunnels, each with the backend its left gateway was started with.
fn started_tunnels(lab: &Lab) -> Vec<TunnelRow> {
    let mut rows = overlays::tunnel_rows(lab);
    for row in &mut rows {
        row.started_backend = ipsec::started_backend(&labctl::model::layout::ipsec_state_dir(&lab.name, &row.left));
    }
    rows
}
