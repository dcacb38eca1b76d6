//! `labctl graph FILE`: the topology as Mermaid (renders on GitHub) or DOT.

use std::fmt::Write;
use std::path::PathBuf;

use labctl::model::{Lab, NicClaim, NicSource, NodeKind};

use super::overlays::{self, TunnelRow};
use super::Failure;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Mermaid,
    Dot,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab script, or the name of a running lab
    file: PathBuf,
    #[arg(long, value_enum, default_value = "mermaid")]
    format: Format,
    #[command(flatten)]
    set: super::params::SetArgs,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let lab = lab_of(&args.file, &args.set.params())?;
    let text = match args.format {
        Format::Mermaid => mermaid(&lab),
        Format::Dot => dot(&lab),
    };
    print!("{text}");
    Ok(())
}

/// The lab of a script, or of a running lab named so (`labctl graph part1`:
/// the lab as it was brought up).
fn lab_of(arg: &std::path::Path, params: &labctl::script::Params) -> Result<Lab, Failure> {
    let name = arg.to_string_lossy();
    let is_script = arg.exists() || name.ends_with(".lua") || name.contains('/');
    if !is_script {
        if let Some(state) = labctl::apply::state::LabState::open(&name) {
            return Ok(state.recorded().map_err(|e| Failure::new(super::EXIT_FAILURE, e))?.lab);
        }
        return Err(Failure::bad_input(anyhow::anyhow!(
            "{name}: no such lab script, and no lab of that name is running"
        ))
        .help("give a lab script (labs/part1.lua) or the name of a running lab (see `labctl ls`)"));
    }
    Ok(labctl::load_and_plan_with(arg, params)?.0.lab)
}

/// Addresses of a node, one per line, for its label.
fn addresses(lab: &Lab, node: &str) -> Vec<String> {
    let links = lab.endpoints_of(node).flat_map(|e| e.addresses.iter().map(move |a| format!("{}: {a}", e.ifname)));
    let nics = lab.nics_of(node).flat_map(|n| n.addresses.iter().map(move |a| format!("{}: {a}", n.ifname)));
    links.chain(nics).collect()
}

/// The host devices the lab uses, once each: a NIC (claimed whole or
/// shared by macvlans) or a PF whose VFs are claimed, with its label.
fn host_devices(lab: &Lab) -> Vec<(String, String)> {
    let mut devices: Vec<(String, String)> = Vec::new();
    for nic in &lab.nics {
        let host = nic.source.host().to_string();
        let label = match &nic.source {
            NicSource::Vf { .. } => {
                let vfs = lab.sriov.iter().find(|s| s.pf == host).map_or(String::new(), |s| format!(", {} VFs", s.vfs));
                format!("PF {host}{vfs}")
            }
            _ => format!("host NIC {host}"),
        };
        if !devices.iter().any(|(h, _)| *h == host) {
            devices.push((host, label));
        }
    }
    devices
}

/// The edge label from a node to the host device it uses.
fn device_edge(nic: &NicClaim) -> String {
    match &nic.source {
        NicSource::Whole { .. } => format!("{} (claimed)", nic.ifname),
        NicSource::Macvlan { mode, .. } => format!("{} (macvlan {mode})", nic.ifname),
        NicSource::Vf { index, .. } => format!("{} (VF {index})", nic.ifname),
    }
}

/// XDP programs of a node, one line per interface: `eth0 xdp: xdp_redirect`.
fn xdp_marks(lab: &Lab, node: &str) -> Vec<String> {
    overlays::xdp_in_order(lab)
        .into_iter()
        .filter(|x| x.node == node)
        .map(|x| format!("{} {}", x.ifname, overlays::xdp_label(x)))
        .collect()
}

/// VRFs, VLANs and VLAN-filtering ports of a node, one line each:
/// `vrf blue (table 10): eth0, eth1`, `vlan eth0.10 (802.1q 10 on eth0): 198.18.10.1/24`,
/// `eth0: vlans 10 20, pvid 10`.
fn l2_marks(lab: &Lab, node: &str) -> Vec<String> {
    let Some(node) = lab.node(node) else { return vec![] };
    let mut lines = Vec::new();
    for vrf in &node.devices.vrfs {
        lines.push(format!("vrf {} (table {}): {}", vrf.name, vrf.table, vrf.interfaces.join(", ")));
    }
    for vlan in &node.devices.vlans {
        let addresses: Vec<String> = vlan.addresses.iter().map(ToString::to_string).collect();
        let on = format!("vlan {} ({} {} on {})", vlan.name, vlan.protocol.name(), vlan.id, vlan.parent);
        lines.push(if addresses.is_empty() { on } else { format!("{on}: {}", addresses.join(" ")) });
    }
    if node.devices.bridge.vlan_filtering {
        lines.push("vlan filtering".into());
    }
    for port in node.devices.ports.iter().filter(|p| p.has_vlans()) {
        let vids: Vec<String> = port.all_vlans().iter().map(ToString::to_string).collect();
        let pvid = port.pvid.map(|p| format!(", pvid {p}")).unwrap_or_default();
        lines.push(format!("{}: vlans {}{pvid}", port.ifname, vids.join(" ")));
    }
    lines
}

/// The lines of a node's label: its name, addresses, then XDP programs, VRFs and VLANs.
fn label_lines(lab: &Lab, node: &str) -> Vec<String> {
    let mut lines = vec![node.to_string()];
    lines.extend(addresses(lab, node));
    lines.extend(xdp_marks(lab, node));
    // node("h1", { cpu = "50%" }): its commands' CPU limit.
    lines.extend(lab.node(node).and_then(|n| n.cpu_percent).map(|p| format!("cpu {p}%")));
    lines.extend(l2_marks(lab, node));
    lines
}

/// The label of a tunnel edge, lines joined by `newline`: what, then what it protects.
fn tunnel_edge_label(tunnel: &TunnelRow, newline: &str) -> String {
    format!("{}{newline}{}", overlays::tunnel_label(tunnel), overlays::protected_traffic(tunnel))
}

/// A link end on an edge: its interface, and what it does to the packets
/// it sends if the lab impairs it (`eth0 (rate 10mbit, loss 1% (seed 7))`).
fn end_label(lab: &Lab, end: &labctl::model::Endpoint) -> String {
    match lab.impairment_of(&end.node, &end.ifname) {
        Some(i) => format!("{} ({})", end.ifname, i.settings.describe()),
        None => end.ifname.clone(),
    }
}

fn mermaid(lab: &Lab) -> String {
    let mut out = String::from("graph LR\n");
    // Mermaid ids are positional: node names may contain '-', which Mermaid reads as an edge.
    let id = |name: &str| format!("n{}", lab.nodes.iter().position(|n| n.name == name).unwrap_or(0));
    for node in &lab.nodes {
        let label = label_lines(lab, &node.name).join("<br/>");
        let _ = match node.kind {
            NodeKind::Bridge => writeln!(out, "  {}{{{{\"{label}\"}}}}", id(&node.name)),
            NodeKind::Host if node.forwarding => writeln!(out, "  {}([\"{label}\"])", id(&node.name)),
            NodeKind::Host => writeln!(out, "  {}[\"{label}\"]", id(&node.name)),
        };
    }
    for link in &lab.links {
        let [a, b] = &link.ends;
        let (a_end, b_end) = (end_label(lab, a), end_label(lab, b));
        let _ = writeln!(out, "  {} ---|\"{a_end} - {b_end}\"| {}", id(&a.node), id(&b.node));
    }
    // Dotted: a tunnel is not a wire, it rides on the links above.
    for tunnel in overlays::tunnel_rows(lab) {
        let label = tunnel_edge_label(&tunnel, "<br/>");
        let _ = writeln!(out, "  {} -.-|\"{label}\"| {}", id(&tunnel.left), id(&tunnel.right));
    }
    // Host devices: a parallelogram each, a thick edge to each node using it.
    let devices = host_devices(lab);
    let device_id = |host: &str| format!("d{}", devices.iter().position(|(h, _)| h == host).unwrap_or(0));
    for (host, label) in &devices {
        let _ = writeln!(out, "  {}[/\"{label}\"/]", device_id(host));
    }
    for nic in &lab.nics {
        let _ = writeln!(out, "  {} ===|\"{}\"| {}", id(&nic.node), device_edge(nic), device_id(nic.source.host()));
    }
    out
}

fn dot(lab: &Lab) -> String {
    let mut out = format!("graph \"{}\" {{\n  node [fontname=\"monospace\"];\n", lab.name);
    for node in &lab.nodes {
        let label = label_lines(lab, &node.name);
        let shape = match node.kind {
            NodeKind::Bridge => "hexagon",
            NodeKind::Host if node.forwarding => "ellipse",
            NodeKind::Host => "box",
        };
        let _ = writeln!(out, "  \"{}\" [shape={shape}, label=\"{}\"];", node.name, label.join("\\n"));
    }
    for link in &lab.links {
        let [a, b] = &link.ends;
        let _ = writeln!(
            out,
            "  \"{}\" -- \"{}\" [taillabel=\"{}\", headlabel=\"{}\"];",
            a.node,
            b.node,
            end_label(lab, a),
            end_label(lab, b)
        );
    }
    // Dashed and without layout weight: a tunnel rides on the links, it must not pull nodes together.
    for tunnel in overlays::tunnel_rows(lab) {
        let _ = writeln!(
            out,
            "  \"{}\" -- \"{}\" [style=dashed, constraint=false, label=\"{}\"];",
            tunnel.left,
            tunnel.right,
            tunnel_edge_label(&tunnel, "\\n")
        );
    }
    for (host, label) in host_devices(lab) {
        let _ = writeln!(out, "  \"host:{host}\" [shape=parallelogram, style=bold, label=\"{label}\"];");
    }
    for nic in &lab.nics {
        let _ = writeln!(
            out,
            "  \"{}\" -- \"host:{}\" [style=bold, label=\"{}\"];",
            nic.node,
            nic.source.host(),
            device_edge(nic)
        );
    }
    out.push_str("}\n");
    out
}
