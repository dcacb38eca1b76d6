//! What a lab adds on top of its topology: XDP programs on interfaces and
//! IPsec tunnels between nodes, as rows for `show` and labels for `graph`.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Serialize;

use labctl::model::{Backend, Cipher, Ipsec, IpsecMode, Lab, Xdp, XdpMode, XdpObject};

/// One XDP program on one interface, as declared in the script.
#[derive(Debug, Serialize)]
pub struct XdpRow {
    pub node: String,
    pub interface: String,
    /// The program's function name (or, if the script named none, the object's file stem).
    pub program: String,
    pub mode: XdpMode,
    /// C compiled by labctl at `up`; `None` for a prebuilt object.
    pub source: Option<PathBuf>,
    /// A prebuilt object file; `None` for C source.
    pub object: Option<PathBuf>,
    /// Live: its link is pinned in labctl's bpffs folder, i.e. still attached.
    pub pinned: bool,
}

/// One IPsec tunnel between two gateways (or two hosts, in transport mode).
#[derive(Debug, Serialize)]
pub struct TunnelRow {
    /// The connection name both sides use: `<left>-<right>`.
    pub name: String,
    pub left: String,
    pub right: String,
    /// Outer addresses: the script's, or those on the link between the two.
    pub left_address: Option<IpAddr>,
    pub right_address: Option<IpAddr>,
    pub mode: IpsecMode,
    pub backend: Backend,
    /// Live: the backend `up` started (what `auto` resolved to), if it did.
    pub started_backend: Option<Backend>,
    pub cipher: Cipher,
    /// What each side protects: its subnet (tunnel mode) or its own address (transport mode).
    pub left_protects: Option<IpNet>,
    pub right_protects: Option<IpNet>,
}

/// The XDP attachments of a lab, node by node in declaration order, then by
/// interface: the order every view lists them in.
pub fn xdp_in_order(lab: &Lab) -> Vec<&Xdp> {
    let node_order = |name: &str| lab.nodes.iter().position(|n| n.name == name);
    let mut all: Vec<&Xdp> = lab.xdp.iter().collect();
    all.sort_by(|a, b| (node_order(&a.node), &a.ifname).cmp(&(node_order(&b.node), &b.ifname)));
    all
}

/// The XDP attachments of a lab with their live pin state, for `show`.
pub fn xdp_rows(lab: &Lab) -> Vec<XdpRow> {
    xdp_in_order(lab).into_iter().map(|x| xdp_row(lab, x)).collect()
}

fn xdp_row(lab: &Lab, x: &Xdp) -> XdpRow {
    let (source, object) = match &x.object {
        XdpObject::Source(p) => (Some(p.clone()), None),
        XdpObject::Object(p) => (None, Some(p.clone())),
    };
    XdpRow {
        node: x.node.clone(),
        interface: x.ifname.clone(),
        program: program_name(x),
        mode: x.mode,
        source,
        object,
        pinned: labctl::model::layout::pin_dir(&lab.name, &x.node, &x.ifname).join("link").exists(),
    }
}

/// The IPsec tunnels of a lab, in declaration order.
pub fn tunnel_rows(lab: &Lab) -> Vec<TunnelRow> {
    lab.ipsec.iter().map(|t| tunnel_row(lab, t)).collect()
}

fn tunnel_row(lab: &Lab, t: &Ipsec) -> TunnelRow {
    let outer = t.outer_addresses(lab);
    let (left_address, right_address) = (outer.map(|(l, _)| l), outer.map(|(_, r)| r));
    // Transport mode protects the traffic between the two hosts themselves.
    let (left_protects, right_protects) = match t.mode {
        IpsecMode::Tunnel => (t.left_subnet, t.right_subnet),
        IpsecMode::Transport => (left_address.map(IpNet::from), right_address.map(IpNet::from)),
    };
    TunnelRow {
        name: format!("{}-{}", t.left, t.right),
        left: t.left.clone(),
        right: t.right.clone(),
        left_address,
        right_address,
        mode: t.mode,
        backend: t.backend,
        started_backend: None,
        cipher: t.cipher,
        left_protects,
        right_protects,
    }
}

/// The name a user knows an XDP program by: its function, else its file's stem.
pub fn program_name(x: &Xdp) -> String {
    match &x.program {
        Some(name) => name.clone(),
        None => x.object.path().file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
    }
}

/// The label suffix `graph` puts on an interface with XDP: `xdp: xdp_pass`.
pub fn xdp_label(x: &Xdp) -> String {
    format!("xdp: {}", program_name(x))
}

/// The backend in words: `strongswan`, or `strongswan (auto)` once `up`
/// resolved an `auto`.
pub fn backend_text(t: &TunnelRow) -> String {
    match t.started_backend {
        Some(started) if started != t.backend => format!("{started} ({})", t.backend),
        _ => t.backend.to_string(),
    }
}

/// The label `graph` puts on a tunnel edge: `IPsec tunnel (strongswan)`.
pub fn tunnel_label(t: &TunnelRow) -> String {
    format!("IPsec {} ({})", t.mode, t.backend)
}

/// The traffic a tunnel protects: `198.19.10.0/24 <-> 198.19.20.0/24`.
pub fn protected_traffic(t: &TunnelRow) -> String {
    let side = |net: Option<IpNet>| net.map_or_else(|| "?".to_string(), |n| n.to_string());
    format!("{} <-> {}", side(t.left_protects), side(t.right_protects))
}
