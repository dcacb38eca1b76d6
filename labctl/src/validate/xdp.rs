//! Checks of `xdp("node:ifname", { ... })` declarations: the node and its
//! interface exist, the C source or object file is there, and each
//! interface gets one program. (Whether the C compiles and the verifier
//! accepts it is found out by apply's prepare step, still before anything
//! is created.)

use std::collections::HashMap;

use super::error;
use crate::diag::{Diagnostic, Origin};
use crate::model::layout::pin_dir_name;
use crate::model::{Lab, XdpObject};

pub(super) fn check(lab: &Lab, found: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<(&str, &str), &Origin> = HashMap::new();
    let mut pin_names: HashMap<String, (String, &Origin)> = HashMap::new();
    for xdp in &lab.xdp {
        let origin = &xdp.origin;
        let here = format!("{}:{}", xdp.node, xdp.ifname);
        match lab.node(&xdp.node) {
            None => {
                let nodes: Vec<&str> = lab.nodes.iter().map(|n| n.name.as_str()).collect();
                found.push(error(
                    origin,
                    format!("xdp({here:?}): there is no node named {:?}", xdp.node),
                    if nodes.is_empty() {
                        "declare the node with node(...) first".to_string()
                    } else {
                        format!("the lab's nodes: {}", nodes.join(", "))
                    },
                ));
            }
            Some(node) => {
                if !lab.endpoints_of(&node.name).any(|e| e.ifname == xdp.ifname) {
                    let names = lab.interface_names(&node.name);
                    found.push(error(
                        origin,
                        format!("xdp({here:?}): node {} has no interface {:?}", node.name, xdp.ifname),
                        if names.is_empty() {
                            "the node has no links yet".to_string()
                        } else {
                            format!("its interfaces: {}", names.join(", "))
                        },
                    ));
                } else if let Some(first) = seen.insert((&xdp.node, &xdp.ifname), origin) {
                    found.push(error(
                        origin,
                        format!("xdp(): {here} already has an XDP program (at {})", super::place(first, origin)),
                        "an interface runs one XDP program; chain the logic in one program",
                    ));
                } else if let Some((other, first)) =
                    pin_names.insert(pin_dir_name(&xdp.node, &xdp.ifname), (here.clone(), origin))
                {
                    found.push(error(
                        origin,
                        format!(
                            "xdp(): {here} and {other} (at {}) would share the pin folder {}",
                            super::place(first, origin),
                            pin_dir_name(&xdp.node, &xdp.ifname)
                        ),
                        "rename a node or an interface: pins live in <node>-<ifname>",
                    ));
                }
            }
        }
        let (what, path) = match &xdp.object {
            XdpObject::Source(p) => ("C source", p),
            XdpObject::Object(p) => ("object file", p),
        };
        if !path.is_file() {
            found.push(error(
                origin,
                format!("xdp({here:?}): {what} {} does not exist", path.display()),
                "paths are relative to the folder of the lab file, e.g. src = \"../fixtures/xdp/xdp_count.c\" from labs/",
            ));
        }
    }
}
