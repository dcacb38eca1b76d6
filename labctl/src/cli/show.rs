//! `labctl show LAB`: what a running lab is made of, and whether each of its
//! namespaces (and XDP programs) is still there.

use labctl::apply::{ipsec, netns, state::LabState};
use labctl::model::Lab;
use serde::Serialize;

use super::overlays::{self, TunnelRow, XdpRow};
use super::{lab_name_from, running_lab, table, Failure};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab's name, or its script
    lab: String,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Shown<'a> {
    name: &'a str,
    state: &'static str,
    script: String,
    namespaces: Vec<NamespaceState>,
    interfaces: Vec<table::InterfaceRow>,
    /// XDP programs per interface, with whether each is still pinned (attached).
    xdp: Vec<XdpRow>,
    /// IPsec tunnels between gateways (or hosts, in transport mode).
    ipsec: Vec<TunnelRow>,
    lab: &'a Lab,
}

#[derive(Debug, Serialize)]
struct NamespaceState {
    node: String,
    netns: String,
    present: bool,
}

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
    let shown = Shown {
        name: &name,
        state,
        script: recorded.script.display().to_string(),
        namespaces,
        interfaces: table::interface_rows(lab),
        xdp: overlays::xdp_rows(lab),
        ipsec: started_tunnels(lab),
        lab,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&shown).expect("serializes"));
        return Ok(());
    }
    println!("lab {name} ({state}) from {}", shown.script);
    if let Some(d) = &lab.description {
        println!("  {d}");
    }
    for line in super::params::describe(&lab.params) {
        println!("  {line}");
    }
    for ns in shown.namespaces.iter().filter(|n| !n.present) {
        println!("  missing namespace: {} (node {})", ns.netns, ns.node);
    }
    println!("\n{}", table::render(&shown.interfaces));
    let routes: Vec<String> = lab
        .nodes
        .iter()
        .flat_map(|n| n.routes.iter().map(move |r| format!("  {}: {} via {}", n.name, r.destination, r.via)))
        .collect();
    if !routes.is_empty() {
        println!("\nroutes:\n{}", routes.join("\n"));
    }
    if !shown.xdp.is_empty() {
        println!("\nxdp:\n{}", shown.xdp.iter().map(xdp_line).collect::<Vec<_>>().join("\n"));
    }
    if !shown.ipsec.is_empty() {
        println!("\nipsec:\n{}", shown.ipsec.iter().map(tunnel_line).collect::<Vec<_>>().join("\n"));
    }
    Ok(())
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
        row.started_backend = ipsec::started_backend(&labctl::plan::ipsec_state_dir(&lab.name, &row.left));
    }
    rows
}
